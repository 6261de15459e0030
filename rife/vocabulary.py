"""The words options and results use for the system under test, in one place and without torch, so that
options can be checked before torch is imported."""

from __future__ import annotations

# --platform: the user's word (lower-cased) -> the torch device type ("auto": the best one present)
PLATFORMS = {"auto": "auto", "flex": "xpu", "max": "xpu", "xpu": "xpu", "cuda": "cuda", "cpu": "cpu"}
PLATFORM_NAMES = {"cpu": "CPU", "xpu": "XPU", "cuda": "CUDA"}
PRECISIONS = ("fp16", "bf16", "fp32")
DTYPE_NAMES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}  # as results.json names them
EXECUTIONS = ("eager", "graph", "compile", "fast")
ARCHITECTURES = ("paper", "v4.0")
DEFAULT_ARCHITECTURE = "paper"
IMPLEMENTATIONS = ("ours", "upstream")
MPS_MODES = ("auto", "on", "off")  # --mps: CUDA MPS for stream processes that share a GPU
