# Sourced by the dev/device_*.sh scripts on the device machine: the carried wheels, $OUT, and
# run NAME ARGS...: the harness on CUDA; its summary to $OUT/harness.log, one line to $OUT/harness_table.txt.
OUT="${OUT:-./device-out}"
mkdir -p "$OUT" /tmp/runs
python3 -m pip install -q --no-index --no-deps --target /tmp/site .carry/*.whl && export PYTHONPATH="/tmp/site:$PWD"
export RIFE_BUILTIN_DIR=/tmp/builtin

build_builtin() {  # the built-in quality set from the carried videos
  python3 -c "import dataset, pathlib; dataset.ensure_builtin(videos_dir=pathlib.Path('.carry/videos'))"
}

run() {  # run NAME ARGS...: the harness, its summary kept in harness.log, its results.json in $OUT
  local name="$1"; shift
  python3 inference.py --platform CUDA --output-dir "/tmp/runs/$name" "$@" > "/tmp/runs-$name.log" 2>&1
  echo "== $name (exit $?): $*" >> "$OUT/harness.log"
  sed -n '/RIFE benchmark results/,$p' "/tmp/runs-$name.log" >> "$OUT/harness.log"
  python3 -m harness.results.document "$name" "/tmp/runs/$name/results.json" >> "$OUT/harness_table.txt"
}
