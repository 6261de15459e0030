#!/usr/bin/env bash
# What pays in fast (device tool, H200): real-frame sameness of fp16 fast, one fast frame kernel by kernel
# (timeline-<model>.csv in $OUT), and fast at 1280x720 fp16 with single changes (TWEAKS, see verify_gpu.py).
# Same carried files as tools/device_run.sh.
set -u
source tools/device_common.sh
python3 tools/verify_gpu.py --weights train_log/v4.0/flownet.pkl --videos .carry/videos --out "$OUT" \
  --calls "${CALLS:-300}" --skip-checks --quality-configs "${QUALITY:-fp16:fast}" --modes "" --timeline \
  --tweaks "${TWEAKS:-fast,one-stream,no-retry-bound,cudnn-try-all,max-autotune}" 2>&1 | tee "$OUT/verify.log"
