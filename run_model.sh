#!/usr/bin/env bash
# run_model.sh: the RIFE benchmark, with the reference sample's variables and flags.
# Every option is a flag or an environment variable (a flag wins); `./run_model.sh --help` lists them.
# It checks the options first (nothing is written before they are valid), runs get_model.sh (GET_MODEL=no
# skips it), runs inference.py under `numactl --cpunodebind=0` where that works, appends everything printed
# to OUTPUT_DIR/output.log (after a header line per run), and exits with the program's exit code.
# Several GPUs of one host: --streams N spreads the streams round-robin over DEVICE_IDS (default: all).
# Several machines: run inference.py under torchrun on every host (one stream per rank, rank 0 writes
# results.json), e.g. on each of 2 hosts with 8 GPUs:
#   torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 inference.py --dummy
set -u
trap '' PIPE  # a console that goes away must not kill the run: output.log keeps everything
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export RIFE_HOME="${RIFE_HOME:-$HERE}"  # weights, upstream code, built-in sets: this folder unless set
PY="$HERE/.venv/bin/python"

# A stop (SIGINT, SIGTERM, SIGHUP: to this script alone or to its whole process group) is passed on to the
# step running (get_model.sh, then the program, which writes what it measured); between steps it ends
# this script at once with the signal's exit code.
child="" stopped=""
on_stop() {  # on_stop EXIT_CODE SIGNAL
  stopped="$1"
  [ -z "$child" ] || kill -"$2" "$child" 2>/dev/null
}
trap 'on_stop 130 INT' INT
trap 'on_stop 143 TERM' TERM
trap 'on_stop 129 HUP' HUP
step() {  # step COMMAND...: runs it in the background (so that a signal is handled at once), returns its status
  "$@" &
  child=$!
  local rc resent=""
  while :; do
    wait "$child"
    rc=$?  # the command's status, or 128+N when a signal's trap ended the wait
    kill -0 "$child" 2>/dev/null || break
    # A background command starts with SIGINT ignored until it installs its own handler: one that came in
    # those first moments is lost, so it is said once more.
    if [ "$stopped" = 130 ] && [ -z "$resent" ]; then
      resent=yes
      sleep 1
      kill -INT "$child" 2>/dev/null
    fi
  done
  child=""
  return "$rc"
}
stop_if_stopped() {
  [ -z "$stopped" ] || exit "$stopped"
}

for arg in "$@"; do
  if [ "$arg" = "-h" ] || [ "$arg" = "--help" ]; then
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"  # the comment block above
    echo
    if [ -x "$PY" ]; then "$PY" "$HERE/inference.py" --help; else echo "(run ./setup.sh to see every option)"; fi
    exit 0
  fi
done

if [ ! -x "$PY" ]; then
  echo "run_model: no environment yet: running setup.sh first"
  DEV_TOOLS="${DEV_TOOLS:-no}" "$HERE/setup.sh" || { echo "error: setup.sh failed; fix the message above and run it again" >&2; exit 1; }
fi

# The options, checked as inference.py checks them (one line and exit 2 when one is wrong), and the paths
# this script needs: OUTPUT_DIR_EFF, MODELS_DIR_EFF, WEIGHTS_EFF, ARCH_EFF (quoted for the shell).
resolved="$(PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}" "$PY" "$HERE/arguments.py" "$@")" || exit 2
eval "$resolved"
stop_if_stopped
[ -n "$MODELS_DIR_EFF" ] || MODELS_DIR_EFF="$RIFE_HOME/model"

if ! mkdir -p -- "$OUTPUT_DIR_EFF" 2>/dev/null || [ ! -w "$OUTPUT_DIR_EFF" ]; then
  echo "error: --output-dir / OUTPUT_DIR $OUTPUT_DIR_EFF cannot be written; choose another folder" >&2
  exit 2
fi
LOG="$OUTPUT_DIR_EFF/output.log"
say() {  # a line on the console and in the log
  printf '%s\n' "$*"
  printf '%s\n' "$*" >> "$LOG"
}

say "===== run_model: $(date -u +%Y-%m-%dT%H:%M:%SZ) $0 $*"
stop_if_stopped
if [ "${GET_MODEL:-yes}" != "no" ]; then
  ARCH="$ARCH_EFF" GET_MODEL_LOG="$LOG" step "$HERE/get_model.sh" "$MODELS_DIR_EFF" "$WEIGHTS_EFF"
  stop_if_stopped
fi

launcher=()
if command -v numactl >/dev/null 2>&1 && numactl --cpunodebind=0 true >/dev/null 2>&1; then
  launcher=(numactl --cpunodebind=0)
  say "run_model: running under numactl --cpunodebind=0"
else
  say "run_model: note: numactl or NUMA node 0 not available; running without CPU binding"
fi
stop_if_stopped

# The program writes its own output to the console and to output.log. Should this script die, the kernel
# signals the program (RIFE_PARENT_PID), which still writes what it measured.
RIFE_PARENT_PID=$$ PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}" step "${launcher[@]}" "$PY" "$HERE/inference.py" "$@"
exit $?
