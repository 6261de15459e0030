#!/usr/bin/env bash
# Maintainers' GPU figures: lone runs of inference.py on dummy 1280x720 frames, one after another, each run's
# results.json and output.log kept under OUT_DIR/figures/NAME, packed into OUT_DIR/figures.tgz.
# Usage: dev/gpu_figures.sh OUT_DIR [NAME...]   (no NAME: all of them)
set -u
out=${1:?output folder}; shift
wanted=" $* "
w=${RIFE_CACHE:?}/v4.0/flownet.pkl
common=(--dummy --arch v4.0 --precision fp16 --num-inputs 1000 --pretrained-weights "$w")
run() {
  local name=$1; shift
  [[ $wanted == "  " || $wanted == *" $name "* ]] || return 0
  local dir=/tmp/fig/$name
  mkdir -p "$dir" "$out/figures/$name"
  local t0=$SECONDS
  timeout 240 python3 inference.py "$@" --output-dir "$dir" > "$out/figures/$name/console.txt" 2>&1
  echo "$name rc=$? wall=$((SECONDS - t0))s" | tee -a "$out/figures/index.txt"
  cp "$dir"/results.json "$dir"/output.log "$out/figures/$name/" 2>/dev/null
  cp "$dir"/mlperf_log_summary.txt "$out/figures/$name/" 2>/dev/null
  tar czf "$out/figures.tgz" -C "$out" figures  # what came so far, should the call end early
}
run paper-default --dummy --num-inputs 1000
run upstream-eager "${common[@]}" --model-impl upstream
run fast-streams "${common[@]}"
run fast-repeat3 "${common[@]}" --repeat 3
run upstream-repeat3 "${common[@]}" --model-impl upstream --repeat 3
run fast-singlestream "${common[@]}" --scenario SingleStream
run fast-offline-b8 "${common[@]}" --scenario Offline --batch-size 8
run fast-server-peak "${common[@]}" --scenario Server --find-peak
rm -r "$out/figures"
