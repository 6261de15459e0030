#!/usr/bin/env bash
# The fast path on the H200 (device tool): the fused warp against PyTorch's, real-frame sameness of fp16 fast,
# every mode at 720p next to the upstream code run the reference's way, the kernel profile of fast, and the
# harness in performance and quality mode. Same carried files as dev/device_run.sh. Compiles are cached by
# inductor across the processes of one machine.
set -u
source dev/device_common.sh
python3 -m dev.verify_gpu --weights train_log/v4.0/flownet.pkl --videos .carry/videos --paper-code model \
  --out "$OUT" --calls "${CALLS:-300}" --skip-checks --warp --quality-configs fp16:fast,bf16:fast \
  --archs v4.0,paper --sizes "${SIZES:-1280x720}" --precisions fp16 --modes eager,graph,fast --profile \
  2>&1 | tee "$OUT/verify.log"
build_builtin || exit 1
run v4_dummy_fp16_fast --dummy --arch v4.0 --num-inputs 2000
run v4_quality_fp16_fast --arch v4.0 --num-inputs 65
run paper_dummy_fp16_fast --dummy --num-inputs 2000
cat "$OUT/harness_table.txt"
