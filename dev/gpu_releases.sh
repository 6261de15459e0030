#!/usr/bin/env bash
# Maintainers' GPU figures for the releases of the general path: tools.gpu_table's release table (fast fp16 against
# the upstream code eager fp16, PSNR against our fp32 eager) and a profile of one release's fast call, then lone
# inference.py runs of the headline releases, ours fast and the upstream code eager, each packed into
# OUT_DIR/releases.tgz as it ends.
# and the A/B of the profiled release's fast choices (dev.release_ab).
# Usage: RIFE_CACHE=assets dev/gpu_releases.sh OUT_DIR TABLE_RELEASES PROFILE_RELEASE [RUN_RELEASE...]
set -u
out=${1:?output folder}; table=${2:?releases}; profile=${3:?release to profile}; shift 3
mkdir -p "$out/releases"
pack() { tar czf "$out/releases.tgz" -C "$out" releases; }
t0=$SECONDS
timeout 420 python3 -m tools.gpu_table --releases "$table" --profile "$profile" --sizes 1280x720 --calls 300 \
  --out "$out/releases/table" > "$out/releases/table.txt" 2>&1
echo "table rc=$? wall=$((SECONDS - t0))s" | tee -a "$out/releases/index.txt"
pack
t0=$SECONDS
timeout 240 python3 -m dev.release_ab "$profile" --out "$out/releases/table" > "$out/releases/ab.txt" 2>&1
echo "ab rc=$? wall=$((SECONDS - t0))s" | tee -a "$out/releases/index.txt"
pack
for release in "$@"; do
  w=$out/releases/table/random-weights/$release/flownet.pkl
  [[ -f $w ]] || w=$RIFE_CACHE/$release/flownet.pkl
  for impl in ours upstream; do
    name=$release-$impl dir=/tmp/rel/$release-$impl
    mkdir -p "$dir" "$out/releases/$name"
    t0=$SECONDS
    timeout 200 python3 inference.py --dummy --arch "$release" --precision fp16 --num-inputs 1000 \
      --pretrained-weights "$w" --model-impl "$impl" --output-dir "$dir" > "$out/releases/$name/console.txt" 2>&1
    echo "$name rc=$? wall=$((SECONDS - t0))s" | tee -a "$out/releases/index.txt"
    cp "$dir"/results.json "$dir"/output.log "$out/releases/$name/" 2>/dev/null
    pack
  done
done
# The random checkpoints are large and can be written again from their seed.
find "$out/releases" -name '*.pkl' -delete
pack
rm -r "$out/releases"
