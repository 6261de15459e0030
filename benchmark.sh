#!/usr/bin/env bash
# benchmark.sh: runs every row of a CSV profile through run_model.sh, each in OUTPUT_DIR/test_<i>/,
# then writes summary.csv and summary.png across the rows, and compares the rows that ran (compare.py
# OUTPUT_DIR: the table in benchmark.log, compare.csv).
#   PROFILE=profiles/rife.fp16.csv [OUTPUT_DIR=./benchmark-output] [IMAGE=image] [OVERWRITE=yes] ./benchmark.sh
#   flags win over variables: --profile FILE, --output-dir DIR, --image IMAGE, --overwrite, -h / --help
# A column names a run variable: its name upper-cased (data_height -> DATA_HEIGHT; model_name is a label;
# an empty cell leaves the variable alone). Rows run in performance mode (DUMMY=yes) unless DUMMY or
# DATASET_DIR is set. Each row gets a clean copy of this environment plus its own variables. Without IMAGE
# rows run here (no root needed); with IMAGE, in that container (docker run ... "$IMAGE" ./run_model.sh),
# with --gpus all for PLATFORM=CUDA or --device /dev/dri/ for Flex / Max (PLATFORM: the row, else this
# environment, else the image's default). Also written: a copy of the profile, sysinfo.json, svr-info's
# report when svr-info is on the PATH, and benchmark.log. An existing non-empty OUTPUT_DIR is refused
# unless OVERWRITE=yes and it holds a previous benchmark (its benchmark.log): then it is emptied first.
# Exit status: 0 every row passed, 1 a row failed (the others still run), 2 usage errors, 130 / 143 interrupted.
set -u
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage_error() {
  echo "error: $*" >&2
  exit 2
}

profile="${PROFILE:-}"
out_dir="${OUTPUT_DIR:-./benchmark-output}"
image="${IMAGE:-}"
overwrite="${OVERWRITE:-no}"
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --overwrite) overwrite=yes ;;
    --profile|--output-dir|--image)
      [ $# -ge 2 ] || usage_error "$1 needs a value"
      case "$1" in
        --profile) profile="$2" ;;
        --output-dir) out_dir="$2" ;;
        --image) image="$2" ;;
      esac
      shift ;;
    *) usage_error "unknown argument $1 (see ./benchmark.sh --help)" ;;
  esac
  shift
done
case "${overwrite,,}" in yes|true|1|on|y) overwrite=yes ;; *) overwrite=no ;; esac

[ -n "$profile" ] || usage_error "no profile: set PROFILE (or --profile), e.g. PROFILE=profiles/rife.fp16.csv ./benchmark.sh"
[ -f "$profile" ] || usage_error "PROFILE $profile: no such file"
[ -z "$image" ] || command -v docker >/dev/null 2>&1 || usage_error "IMAGE is set but docker is not on the PATH"

PY="$HERE/.venv/bin/python"
if [ ! -x "$PY" ]; then
  if [ -n "$image" ]; then
    PY="$(command -v python3)" || usage_error "no python3 here to read the profile; run ./setup.sh"
  else
    echo "benchmark: no environment yet: running setup.sh first"
    DEV_TOOLS="${DEV_TOOLS:-no}" "$HERE/setup.sh" || { echo "error: setup.sh failed; fix the message above and run it again" >&2; exit 1; }
  fi
fi
harness() {  # harness ARGS...: python -m harness.results.summary ARGS...
  PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m harness.results.summary "$@"
}

rows="$(harness --check "$profile")" || exit 2
if [ -d "$out_dir" ] && [ -n "$(ls -A -- "$out_dir")" ]; then
  [ "$overwrite" = yes ] || usage_error "OUTPUT_DIR $out_dir is not empty; choose another folder or set OVERWRITE=yes (--overwrite)"
  [ -f "$out_dir/benchmark.log" ] || usage_error "OUTPUT_DIR $out_dir holds files but no benchmark.log:" \
    "it is not a previous benchmark's output, so it is not emptied; choose another folder"
  case "$(realpath -- "$profile")" in
    "$(realpath -- "$out_dir")"/*) usage_error "PROFILE $profile is inside OUTPUT_DIR $out_dir, which would be emptied;" \
      "copy it elsewhere first" ;;
  esac
  find "$out_dir" -mindepth 1 -delete || usage_error "OUTPUT_DIR $out_dir could not be emptied"
fi
mkdir -p -- "$out_dir" && [ -w "$out_dir" ] || usage_error "OUTPUT_DIR $out_dir cannot be written; choose another folder"
out_dir="$(cd -- "$out_dir" && pwd)"

# benchmark.log's tee ignores the stopping signals (a signal to the whole process group must not cut the
# log short); it ends when this script closes the pipe.
trap '' PIPE
exec 3>&1 4>&2
exec > >(trap '' INT TERM HUP; exec tee -a -- "$out_dir/benchmark.log") 2>&1
tee_pid=$!

echo "benchmark: $(date -u +%Y-%m-%dT%H:%M:%SZ) $rows rows of $profile into $out_dir${image:+ in container $image}"
cp -- "$profile" "$out_dir/"
harness --prepare "$profile" "$out_dir" >/dev/null || exit 2
"$PY" "$HERE/harness/system/sysinfo.py" "$out_dir/sysinfo.json" || echo "benchmark: note: sysinfo.json could not be written"
if command -v svr-info >/dev/null 2>&1; then
  echo "benchmark: svr-info report into $out_dir/svr-info"
  mkdir -p -- "$out_dir/svr-info" && svr-info -output "$out_dir/svr-info" \
    || echo "benchmark: note: svr-info failed; going on without its report"
fi

image_platform=""
if [ -n "$image" ]; then
  image_platform="$(docker image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$image" 2>/dev/null \
    | sed -n 's/^PLATFORM=//p' | head -n 1)"
fi

in_container() {  # in_container ROW_DIR NAME=value...: the reference's docker run line, in place of this shell
  local row_dir="$1" platform="$image_platform" kv
  shift
  local args=(run --rm --ipc=host --cap-add SYS_NICE -e OUTPUT_DIR=/tmp/output -v "$row_dir":/tmp/output)
  for kv in "$@"; do
    case "$kv" in
      DATASET_DIR=*) args+=(-e DATASET_DIR=/dataset -v "$(realpath -- "${kv#*=}")":/dataset:ro); continue ;;
      PLATFORM=*) platform="${kv#*=}" ;;
    esac
    args+=(-e "$kv")
  done
  case "${platform,,}" in
    cuda) args+=(--gpus all) ;;
    flex|max|xpu) args+=(--device /dev/dri/) ;;
  esac
  exec docker "${args[@]}" "$image" /bin/bash -c "./run_model.sh"
}

on_metal() {  # on_metal ROW_DIR NAME=value...: run_model.sh in place of this shell
  local row_dir="$1"
  shift
  exec env "$@" OUTPUT_DIR="$row_dir" "$HERE/run_model.sh"
}

# A row runs in the background (the functions above exec, so $! is the row's own process) so that a signal
# reaches this script at once; it is passed on as SIGTERM (run_model.sh then stops its streams and still
# writes what they measured).
child="" interrupted=""
# shellcheck disable=SC2329  # called by the traps below
stop_sweep() {
  interrupted="$1"
  [ -z "$child" ] || kill -TERM "$child" 2>/dev/null
}
trap 'stop_sweep 130' INT
trap 'stop_sweep 143' TERM
trap 'stop_sweep 129' HUP

failed=0
for ((i = 1; i <= rows; i++)); do
  row_dir="$out_dir/test_$i"
  if ! text="$(harness --variables "$row_dir/row.csv" ${image:+--inherit})"; then
    failed=1
    continue
  fi
  vars=()
  [ -z "$text" ] || mapfile -t vars <<< "$text"
  echo "benchmark: test_$i of $rows: ${vars[*]}"
  if [ -n "$image" ]; then
    in_container "$row_dir" "${vars[@]}" &
  else
    on_metal "$row_dir" "${vars[@]}" &
  fi
  child=$!
  while :; do
    wait "$child"
    rc=$?  # the row's status, or 128+N when a signal's trap ended the wait
    kill -0 "$child" 2>/dev/null || break
  done
  child=""
  echo "$rc" > "$row_dir/exit_code"
  if [ "$rc" -ne 0 ] || [ ! -s "$row_dir/results.json" ]; then
    failed=1
    echo "benchmark: test_$i failed (exit code $rc); going on"
  fi
  [ -z "$interrupted" ] || { echo "benchmark: interrupted: stopping after test_$i"; break; }
done

harness "$out_dir" || failed=1
# The rows side by side, each against the first, swept over the profile columns they differ in (the rows
# without results are noted); when no row produced results there is nothing to compare.
if compgen -G "$out_dir/test_*/results.json" >/dev/null; then
  PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}" "$PY" "$HERE/compare.py" --csv "$out_dir/compare.csv" "$out_dir" \
    || echo "benchmark: note: compare.py failed"
fi
exec 1>&3 2>&4 3>&- 4>&-  # close the log pipe and let tee finish writing before we return
wait "$tee_pid" 2>/dev/null
[ -z "$interrupted" ] || exit "$interrupted"
exit "$failed"
