#!/usr/bin/env bash
# Maintainers' GPU call: the general path's release table with one release's profile, the CUDA tests of its
# kernels, the encode-once A/B, each step's output in $OUT/r, packed into $OUT/r.tgz as it ends.
# Usage: STEPS="table tests encode" TABLE=4.25,4.22 PROFILE=4.25 dev/gpu_session.sh   (assets in .carry/rife-cache)
# PROFILE= (empty) profiles none. ENCODE names the encode-once A/B's release (default 4.25: one with an encoder);
# concurrency runs K v4.0 engines on K CUDA streams of one process (ENGINES=1,2,3).
set -u
out=${OUT:-./gpu-out}/r; mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .carry/whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 RIFE_CACHE=$PWD/.carry/rife-cache TORCH_LOGS=-dynamo
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv > "$out/gpu.txt"
git log -1 --format=%h >> "$out/gpu.txt" 2>/dev/null
first_profile=${PROFILE:-4.25}; first_profile=${first_profile%%,*}
step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" > "$out/$name.txt" 2>&1
  echo "$name rc=$? wall=$((SECONDS - t0))s" | tee -a "$out/index.txt"
  tar czf "${out%/r}/r.tgz" -C "$out" --exclude '*.pkl' .
}
for s in ${STEPS:-table tests encode}; do
  case $s in
    table) step table "${TABLE_S:-400}" python3 -m tools.gpu_table --releases "${TABLE:-4.25}" \
             --profile "${PROFILE-4.25}" --sizes 1280x720 --calls 300 --out /tmp/t ;;
    tests) step tests "${TESTS_S:-300}" python3 -m pytest -q -p no:cacheprovider -m cuda ${TESTS:-tests/test_fused_general.py tests/test_triton_warp.py} ;;
    encode) step encode "${ENCODE_S:-100}" python3 -m dev.encode_once_ab "${ENCODE:-4.25}" \
             --video .carry/rife-cache/videos/bigbuckbunny.mp4 --out /tmp/t ;;
    ab) for r in ${AB_RELEASES:-$first_profile}; do
          step "ab-$r" "${AB_S:-200}" python3 -m dev.release_ab "$r" --out /tmp/t ${AB:+--configs $AB}
        done ;;
    acceptance) step acceptance "${ACC_S:-300}" python3 -m tools.gpu_acceptance --assets .carry/rife-cache \
             --families "${FAMILIES:-v4.0,4.25}" --executions fast --precisions fp16 --batches 1 --no-tier --out "$out/acc" ;;
    concurrency) step concurrency "${CONC_S:-150}" python3 -m dev.concurrency_probe --weights "$RIFE_CACHE/v4.0/flownet.pkl" \
             --engines "${ENGINES:-1,2,3}" --batch "${CONC_BATCH:-1}" --seconds 8 --out "$out" ;;
    run:*) r=${s#run:}; w=/tmp/t/random-weights/$r/flownet.pkl; [[ -f $w ]] || w=$RIFE_CACHE/$r/flownet.pkl
           for impl in ours upstream; do
             step "run-$r-$impl" "${RUN_S:-150}" python3 inference.py --dummy --arch "$r" --precision fp16 --num-inputs 1000 \
               --pretrained-weights "$w" --model-impl "$impl" --output-dir "/tmp/runs/$r-$impl"
           done ;;
  esac
done
rm -f "$out"/*/*.pkl
