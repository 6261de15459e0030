#!/usr/bin/env bash
# setup.sh: makes this folder ready to run on a fresh machine.
#   - numactl through apt, only when run as root with apt-get present (never fails because of it);
#   - a virtual environment .venv; an installed torch is kept (the venv sees system packages),
#     otherwise TORCH_SPEC is installed first (default torch==2.13.0), never an unpinned torch;
#   - pip install -r requirements.txt;
#   - the development tools of requirements-dev.txt (pytest, ruff, mypy, hadolint) and, where no Triton imports,
#     triton for the kernels' tests (its interpreter), unless DEV_TOOLS=no (run_model.sh and the container
#     images set it). CUDA builds of torch bring their own Triton, so a run never needs this one.
# pip shows its progress (downloads can be large); PIP_QUIET=1 quiets it.
set -eu
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
VENV="$HERE/.venv"

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && ! command -v numactl >/dev/null 2>&1; then
  echo "setup: installing numactl with apt-get"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq numactl; } >/dev/null 2>&1 \
    || echo "setup: note: numactl could not be installed; runs go without CPU binding"
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PYTHON" -m venv --system-site-packages "$VENV"
  # When $PYTHON itself runs in a virtual environment (some images install torch in one), the new venv sees
  # only the base interpreter's packages: point it at that environment's too, so its torch is kept.
  outer="$("$PYTHON" -c 'import sys, sysconfig; print(sysconfig.get_paths()["purelib"] if sys.prefix != sys.base_prefix else "")')"
  if [ -n "$outer" ]; then
    inner="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    printf '%s\n' "$outer" > "$inner/outer-environment.pth"
    echo "setup: $PYTHON runs in a virtual environment; its packages stay visible ($outer)"
  fi
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
if "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  echo "setup: keeping the installed torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"
else
  echo "setup: installing $TORCH_SPEC"
  "${PIP[@]}" install "$TORCH_SPEC"
fi
echo "setup: installing requirements.txt"
"${PIP[@]}" install -r "$HERE/requirements.txt"
if [ "${DEV_TOOLS:-yes}" != no ]; then
  echo "setup: installing requirements-dev.txt (DEV_TOOLS=no leaves the development tools out)"
  "${PIP[@]}" install -r "$HERE/requirements-dev.txt"
fi
# Triton for the tests: its interpreter checks the Triton kernels on machines without a GPU. Runs need none
# (CUDA builds of torch bring theirs; XPU builds ship their own triton package, which PyPI's would replace).
if [ "${DEV_TOOLS:-yes}" != no ] && ! "$VENV/bin/python" -c "import triton" >/dev/null 2>&1 \
   && [ "$(uname -sm)" = "Linux x86_64" ]; then
  echo "setup: installing triton for the kernels' tests (about 1 GB)"
  "${PIP[@]}" install "triton>=3.2" || echo "setup: note: triton could not be installed; its tests will be skipped"
fi
# The cuDNN frontend: on CUDA, fast computes its convolutions with their bias and PReLU as one cuDNN graph through it.
# Only for a CUDA build of torch; without it fast runs those convolutions unfused (results.json says which).
if "$VENV/bin/python" -c "import sys, torch; sys.exit(0 if torch.version.cuda else 1)" >/dev/null 2>&1 \
   && ! "$VENV/bin/python" -c "import cudnn" >/dev/null 2>&1; then
  echo "setup: installing nvidia-cudnn-frontend (fast fuses convolution epilogues with it on CUDA)"
  "${PIP[@]}" install "nvidia-cudnn-frontend>=1.32" \
    || echo "setup: note: nvidia-cudnn-frontend could not be installed; fast runs its convolutions unfused"
fi
echo "setup: ready ($VENV)"
