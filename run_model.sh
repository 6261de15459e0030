#!/usr/bin/env bash
# run_model.sh: the RIFE benchmark, with the reference sample's variables and flags.
# Every option is a flag or an environment variable (a flag wins); `./run_model.sh --help` lists them.
# It runs get_model.sh first (GET_MODEL=no skips it), runs inference.py under
# `numactl --cpunodebind=0` where that works, copies its stdout and stderr (each kept as such) to
# OUTPUT_DIR/output.log, and exits with the program's exit code.
# Several GPUs of one host: --streams N spreads the streams round-robin over DEVICE_IDS (default: all).
# Several machines: run inference.py under torchrun on every host (one stream per rank, rank 0 writes
# results.json), e.g. on each of 2 hosts with 8 GPUs:
#   torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 inference.py --dummy
set -u
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="$HERE/.venv/bin/python"

for arg in "$@"; do
  if [ "$arg" = "-h" ] || [ "$arg" = "--help" ]; then
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
    echo
    if [ -x "$PY" ]; then "$PY" "$HERE/inference.py" --help; else echo "(run ./setup.sh to see every option)"; fi
    exit 0
  fi
done

# The few options this script itself needs: flag first, then variable, then default.
flag_value() {  # flag_value --name DEFAULT "$@"
  local name="$1" value="$2"; shift 2
  while [ $# -gt 0 ]; do
    case "$1" in
      "$name") [ $# -ge 2 ] && value="$2"; shift ;;
      "$name"=*) value="${1#*=}" ;;
    esac
    shift
  done
  printf '%s' "$value"
}
OUTPUT_DIR_EFF="$(flag_value --output-dir "${OUTPUT_DIR:-./output-dir}" "$@")"
MODELS_DIR_EFF="$(flag_value --modelsdir "${MODELS_DIR:-$HERE/model}" "$@")"
WEIGHTS_EFF="$(flag_value --pretrained-weights "${LOAD_PATH:-}" "$@")"

if [ ! -x "$PY" ]; then
  echo "run_model: no environment yet: running setup.sh first"
  "$HERE/setup.sh" || { echo "error: setup.sh failed; fix the message above and run it again" >&2; exit 1; }
fi

if ! mkdir -p -- "$OUTPUT_DIR_EFF" 2>/dev/null || [ ! -w "$OUTPUT_DIR_EFF" ]; then
  echo "error: --output-dir / OUTPUT_DIR $OUTPUT_DIR_EFF cannot be written; choose another folder" >&2
  exit 2
fi
LOG="$OUTPUT_DIR_EFF/output.log"
: > "$LOG"
# The progress bar draws on the terminal itself: through tee, stderr is a pipe.
if [ -t 2 ] && [ -w /dev/tty ]; then export RIFE_PROGRESS_TTY=/dev/tty; fi
# stdout and stderr each reach output.log and stay what they were.
exec 3>&1 4>&2
exec > >(tee -i -a -- "$LOG")
tee_out=$!
exec 2> >(tee -i -a -- "$LOG" >&2)
tee_err=$!

echo "run_model: $(date -u +%Y-%m-%dT%H:%M:%SZ) $0 $*"
if [ "${GET_MODEL:-yes}" != "no" ]; then
  "$HERE/get_model.sh" "$MODELS_DIR_EFF" "$WEIGHTS_EFF"
fi

launcher=()
if command -v numactl >/dev/null 2>&1 && numactl --cpunodebind=0 true >/dev/null 2>&1; then
  launcher=(numactl --cpunodebind=0)
  echo "run_model: running under numactl --cpunodebind=0"
else
  echo "run_model: note: numactl or NUMA node 0 not available; running without CPU binding"
fi

# The program gets the signals; this script waits for it and keeps its exit code.
PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}" "${launcher[@]}" "$PY" "$HERE/inference.py" "$@" &
pid=$!
trap 'kill -INT "$pid" 2>/dev/null' INT
trap 'kill -TERM "$pid" 2>/dev/null' TERM
wait "$pid"
while kill -0 "$pid" 2>/dev/null; do wait "$pid"; done
wait "$pid"
rc=$?
exec 1>&3 2>&4 3>&- 4>&-  # close the log pipes and let tee finish writing before we return
wait "$tee_out" "$tee_err" 2>/dev/null
exit "$rc"
