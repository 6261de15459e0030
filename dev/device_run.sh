#!/usr/bin/env bash
# GPU verification through the device tool (see docs/performance.md): sameness, precision, eager speed,
# and the harness end to end (dummy and quality mode). Expects the carried folder .carry/ (videos and
# the pytorch-msssim wheel), train_log/ (v4.0 weights) and model/ (patched upstream paper code).
# Writes at most 8 files to $OUT.
set -u
source dev/device_common.sh
nvidia-smi --query-gpu=name,driver_version,clocks.sm,power.draw --format=csv | tee "$OUT/gpu.txt"
python3 -m dev.verify_gpu --weights train_log/v4.0/flownet.pkl --videos .carry/videos --paper-code model \
  --out "$OUT" --calls "${CALLS:-200}" ${COMPILE:+--compile} 2>&1 | tee "$OUT/verify.log"
build_builtin || exit 1
run paper_dummy_fp16_fast --dummy --num-inputs 1000
run paper_dummy_fp16_eager --dummy --num-inputs 300 --execution eager
run paper_dummy_fp16_upstream --dummy --num-inputs 300 --model-impl upstream --modelsdir model
run v4_dummy_fp16_fast --dummy --arch v4.0 --num-inputs 1000
run v4_dummy_fp16_eager --dummy --arch v4.0 --num-inputs 300 --execution eager
run v4_dummy_fp16_fast_transfers --dummy --arch v4.0 --num-inputs 1000 --transfers
run v4_quality_fp16_fast --arch v4.0 --num-inputs 65
run v4_quality_fp16_eager --arch v4.0 --num-inputs 65 --execution eager
run v4_quality_fp32_eager --arch v4.0 --num-inputs 65 --precision fp32 --execution eager
run paper_dummy_fp16_fast_2streams --dummy --num-inputs 1000 --streams 2
cat "$OUT/harness_table.txt"
