#!/usr/bin/env bash
# On the H200 (device tool): quality mode against performance mode (fast path; the built-in 65-triplet
# 720p set and bigbuckbunny.mp4 read as an own video, the same 65 triplets), then the reference's three profiles
# through benchmark.sh at 1, 2, 4 streams with NVML telemetry (EXECUTION=graph: no compile per row).
set -u
source dev/device_common.sh
build_builtin || exit 1
run v4_dummy_fp16_fast_65 --dummy --arch v4.0 --num-inputs 65
run v4_quality_fp16_fast_65 --arch v4.0 --num-inputs 65
run v4_dummy_fp16_fast_130 --dummy --arch v4.0 --num-inputs 130
run v4_quality_fp16_fast_video --arch v4.0 --data .carry/videos/bigbuckbunny.mp4
cat "$OUT/harness_table.txt"
# run_model.sh's interpreter on this machine: a wrapper (a symbolic link to a venv's python loses the venv;
# rm first, so that nothing is ever written through an old link)
mkdir -p .venv/bin && rm -f .venv/bin/python
printf '#!/bin/sh\nexec %s "$@"\n' "$(command -v python3)" > .venv/bin/python && chmod +x .venv/bin/python
for p in fp16 bf16 fp32; do
  PROFILE="profiles/rife.$p.csv" OUTPUT_DIR="/tmp/bench-$p" PLATFORM=CUDA EXECUTION=graph GET_MODEL=no \
    timeout 170 ./benchmark.sh > "/tmp/bench-$p.log" 2>&1
  echo "== rife.$p.csv (exit $?)" >> "$OUT/summary.txt"
  cat "/tmp/bench-$p/summary.csv" >> "$OUT/summary.txt" 2>/dev/null
  cp "/tmp/bench-$p/summary.png" "$OUT/summary-$p.png" 2>/dev/null
  cp "/tmp/bench-$p.log" "$OUT/" 2>/dev/null
  for t in /tmp/bench-$p/test_*/; do cp "$t/results.json" "$OUT/bench-$p-$(basename "$t").json" 2>/dev/null; done
done
cat "$OUT/summary.txt"
