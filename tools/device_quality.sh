#!/usr/bin/env bash
# On the H200 (device tool): quality mode against performance mode with the fast path and NVML telemetry,
# then the kernel profile of fast. Carries what tools/device_run.sh carries.
set -u
source tools/device_common.sh
build_builtin || exit 1
run v4_dummy_fp16_fast_65 --dummy --arch v4.0 --num-inputs 65
run v4_quality_fp16_fast --arch v4.0 --num-inputs 65
run v4_dummy_fp16_fast_2000 --dummy --arch v4.0 --num-inputs 2000
run v4_quality_fp16_fast_again --arch v4.0 --num-inputs 65
run paper_dummy_fp16_fast_2000 --dummy --num-inputs 2000
cp /tmp/runs/v4_quality_fp16_fast/results.json "$OUT/quality_results.json"
cp /tmp/runs/v4_dummy_fp16_fast_2000/telemetry_1.json "$OUT/telemetry_v4_dummy.json"
python3 tools/verify_gpu.py --weights train_log/v4.0/flownet.pkl --videos .carry/videos --paper-code model \
  --out "$OUT" --skip-checks --quality-configs "" --modes "" --profile 2>&1 | tee "$OUT/verify.log"
cat "$OUT/harness_table.txt"
