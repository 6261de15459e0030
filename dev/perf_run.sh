#!/usr/bin/env bash
# Maintainer's GPU run of the fast path: kernel tests on CUDA, sameness and speed against upstream eager
# (dev/verify_gpu.py), then the harness in performance mode at batch 1 and 8 and with two streams on one GPU,
# each row a line of $OUT/harness_table.txt. Needs: train_log/v4.0/flownet.pkl, .carry/videos, .carry/*.whl.
# STEPS picks sections (tests, convs, verify, harness, streams, concurrency, releases); TESTS the test files; ALL_STREAMS=1 adds the
# two-stream run without MPS and four streams.
set -u
source dev/device_common.sh
STEPS="${STEPS:-tests verify harness streams}"
r() {  # run, and the end of its log where it wrote no results
  run "$@"
  [ -f "/tmp/runs/$1/results.json" ] || tail -4 "/tmp/runs-$1.log" >> "$OUT/harness.log"
}
has() { case " $STEPS " in *" $1 "*) return 0 ;; esac; return 1; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader | tee "$OUT/gpu.txt"
if has tests; then
  python3 -m pytest -q -p no:cacheprovider ${TESTS:-tests/test_triton_warp.py tests/test_execution.py tests/test_fused_conv.py} -k "cuda or CUDA" 2>&1 | tail -5 | tee "$OUT/tests.log"
fi
if has convs; then
  python3 dev/conv_shapes.py --out "$OUT" 2>&1 | tee "$OUT/convs.log" | tail -60
fi
if has verify; then
  python3 -m dev.verify_gpu --weights train_log/v4.0/flownet.pkl --videos .carry/videos --out "$OUT/v" \
    --calls "${CALLS:-300}" --archs v4.0 --sizes "${SIZES:-1280x720}" --precisions fp16 --modes eager,fast \
    --quality-configs fp16:fast --batches "${BATCHES:-1,8}" 2>&1 | tee "$OUT/verify.log" | tail -40
fi
if has harness; then
  r v4_b1 --dummy --arch v4.0 --num-inputs 3000
  r v4_b8 --dummy --arch v4.0 --num-inputs 4000 --batch-size 8
  r paper_b1 --dummy --num-inputs 2000
  r paper_b8 --dummy --num-inputs 2000 --batch-size 8
fi
if has streams; then
  r v4_s2_mps --dummy --arch v4.0 --num-inputs 3000 --streams 2 --mps on
  if [ -n "${ALL_STREAMS:-}" ]; then
    r v4_s2_nomps --dummy --arch v4.0 --num-inputs 3000 --streams 2 --mps off
    r v4_s4_mps --dummy --arch v4.0 --num-inputs 2000 --streams 4 --mps on
  fi
  grep -h '"mps"' -A5 /tmp/runs/v4_s2_mps/results.json | head -8 >> "$OUT/harness.log"
fi
if has concurrency; then  # several engines on CUDA streams of one process, against the streams' MPS row above
  python3 -m dev.concurrency_probe --out "$OUT" 2>&1 | tee "$OUT/concurrency.log" | tail -8
fi
if has releases; then  # the family table: upstream code from RIFE_CACHE (python -m rife.assets --arch ...)
  RIFE_CACHE="${RIFE_CACHE:-.carry/rife-cache}" python3 -m tools.verify_releases --size 1280x720 --paper-code model \
    --out "$OUT" 2>&1 | tee "$OUT/releases.log" | tail -12
fi
cat "$OUT/harness_table.txt" 2>/dev/null
