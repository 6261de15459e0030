"""The words options and results use for the system under test, in one place and without torch, so that
options can be checked before torch is imported."""

from __future__ import annotations

from rife import registry  # the release table (no torch either)

# --platform: the user's word (lower-cased) -> the torch device type ("auto": the best one present)
PLATFORMS = {"auto": "auto", "flex": "xpu", "max": "xpu", "xpu": "xpu", "cuda": "cuda", "cpu": "cpu"}
PLATFORM_NAMES = {"cpu": "CPU", "xpu": "XPU", "cuda": "CUDA"}
PRECISIONS = ("fp16", "bf16", "fp32")
DTYPE_NAMES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}  # as results.json names them
EXECUTIONS = ("eager", "graph", "compile", "fast")
ARCHITECTURES = tuple(registry.BY_NAME)  # every release, as results name it
ARCHITECTURE_WORDS = registry.NAMES  # what --arch accepts: the releases and their aliases (4.0 for v4.0)
DEFAULT_ARCHITECTURE = registry.DEFAULT_VARIANT
USER_SCALES = registry.USER_SCALES  # --scale
IMPLEMENTATIONS = ("ours", "upstream")
MPS_MODES = ("auto", "on", "off")  # --mps: CUDA MPS for stream processes that share a GPU
