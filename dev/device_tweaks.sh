#!/usr/bin/env bash
# What pays in fast (device tool, H200): the Triton kernels' CUDA tests, real-frame sameness of fast, every mode
# at 720p beside the upstream code, one fast frame kernel by kernel (timeline-<model>.csv in $OUT), and fast at
# 1280x720 fp16 with single changes (TWEAKS, see verify_gpu.py). The tweaks that change cuDNN's or inductor's
# autotuning run in processes of their own, so that nothing tuned before is reused. Same carried files as
# dev/device_run.sh.
set -u
source dev/device_common.sh
[ -n "${PYTEST:-1}" ] && python3 -m pytest -q -p no:cacheprovider tests/test_triton_warp.py 2>&1 | tail -3 | tee "$OUT/pytest.log"
verify=(python3 -m dev.verify_gpu --weights train_log/v4.0/flownet.pkl --videos .carry/videos --paper-code model
  --calls "${CALLS:-300}" --skip-checks --archs v4.0,paper --sizes 1280x720 --precisions fp16)
"${verify[@]}" --out "$OUT" --quality-configs "${QUALITY:-fp16:fast,bf16:fast}" --modes "${MODES:-eager,graph,fast}" \
  --timeline --tweaks "${TWEAKS:-fast,one-stream,no-retry-bound}" 2>&1 | tee "$OUT/verify.log"
for tweak in ${OWN_PROCESS_TWEAKS:-cudnn-try-all max-autotune}; do
  TORCHINDUCTOR_CACHE_DIR="/tmp/inductor-$tweak" timeout "${TWEAK_TIMEOUT:-240}" \
    "${verify[@]}" --out "$OUT/$tweak" --quality-configs "" --modes "" --tweaks "$tweak" 2>&1 | tee "$OUT/$tweak.log" \
    | sed -n '/^## tweaks/,$p'
done
