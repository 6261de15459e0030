"""The building blocks the RIFE networks share (``rife.ifnet``'s and ``rife.families``'): convolution units, the
context levels, the bilinear resize and the backward warp, with upstream's module names and arithmetic."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rife.kernels import ConvKernel, WarpKernel


def conv_unit(in_ch: int, out_ch: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=True), nn.PReLU(out_ch))


class ResConv(nn.Module):
    """Practical-RIFE 4.5+: ``LeakyReLU(conv(x) * beta + x)`` with a learned per-channel ``beta``."""

    def __init__(self, channels: int, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1, groups=groups)
        self.beta = nn.Parameter(torch.ones((1, channels, 1, 1)))
        self.relu = nn.LeakyReLU(0.2, True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.conv(x) * self.beta + x)


def is_conv_unit(module: nn.Module) -> bool:
    """A convolution unit: ``nn.Sequential`` of a convolution and its PReLU or LeakyReLU, or a ``ResConv``."""
    if isinstance(module, ResConv):
        return True
    return (isinstance(module, nn.Sequential) and len(module) == 2 and isinstance(module[0], nn.Conv2d)
            and isinstance(module[1], nn.PReLU | nn.LeakyReLU))


def residual_through(stack: nn.Sequential, x: Tensor) -> Tensor:
    """``stack(x) + x``, the add taken by the last unit where it can fuse it (``rife.fused_conv.FusedConvUnit``)."""
    *head, last = stack
    y = x
    for unit in head:
        y = unit(y)
    if getattr(last, "takes_residual", False):
        return last(y, residual=x)
    return last(y) + x


def replace_conv_units(net: nn.Module, kernel: ConvKernel) -> int:
    """Every convolution unit in ``net`` (``is_conv_unit``) replaced by ``kernel``'s module for it; returns how many
    it replaced. A module that computes a unit it holds (``wraps_unit``) keeps it."""
    count = 0
    for module in list(net.modules()):
        if getattr(module, "wraps_unit", False):
            continue
        for name, child in module.named_children():
            if is_conv_unit(child):
                replacement = kernel(child)
                if replacement is not child:
                    setattr(module, name, replacement)
                    count += 1
    return count


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def memory_format_of(t: Tensor) -> torch.memory_format:
    """channels_last where ``t`` is laid out so, else the contiguous (NCHW) format."""
    return torch.channels_last if t.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format


def cat_padded(parts: Sequence[Tensor], channels: int) -> Tensor:
    """``parts`` concatenated on the channel axis with zero channels appended up to ``channels`` (their weights
    are zero: exact), as one concatenation rather than a concatenation and a pad."""
    extra = channels - sum(p.shape[1] for p in parts)
    if extra:
        first = parts[0]
        zeros = torch.zeros((first.shape[0], extra, *first.shape[2:]), dtype=first.dtype, device=first.device)
        parts = (*parts, zeros.contiguous(memory_format=memory_format_of(first)))
    return torch.cat(tuple(parts), 1) if len(parts) > 1 else parts[0]


def resize(x: Tensor, factor: float) -> Tensor:
    # scale_factor semantics (not size=), as upstream: they round differently on some sizes.
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False, recompute_scale_factor=False)


class Warper:
    """Backward warp with the base sampling grid cached per (device, dtype, shape).

    The grid has the image's dtype: under autocast the images stay fp32, so the grid
    arithmetic does too (a bf16 grid is too coarse to address pixels of a large frame).
    ``fp32``: sample in fp32 whatever the images' dtype (a half-precision grid is too coarse); ``FlowStep`` then
    also resizes and sums the flow in fp32. ``cached``: keep the base grids (compiled code builds them itself,
    fused). ``kernel``: warp with it instead."""

    def __init__(self, fp32: bool = False, cached: bool = True, kernel: WarpKernel | None = None) -> None:
        self._grids: dict[tuple, tuple[Tensor, Tensor]] = {}
        self.fp32 = fp32
        self.cached = cached
        self.kernel = kernel

    def base_grid(self, flow: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """The sampling grid of no motion, (N, H, W, 2) as grid_sample takes it, and the half sizes
        ((W - 1) / 2, (H - 1) / 2) that normalise a flow in pixels to it."""
        n, _, h, w = flow.shape
        key = (flow.device, dtype, n, h, w)
        grid = self._grids.get(key) if self.cached else None
        if grid is None:
            xs = torch.linspace(-1.0, 1.0, w, device=flow.device, dtype=dtype).view(1, 1, w).expand(n, h, w)
            ys = torch.linspace(-1.0, 1.0, h, device=flow.device, dtype=dtype).view(1, h, 1).expand(n, h, w)
            # Made by full, not torch.tensor, which dynamo would keep as a real constant in a trace on the meta device.
            half = torch.stack([torch.full((), (size - 1.0) / 2.0, device=flow.device, dtype=dtype) for size in (w, h)])
            grid = (torch.stack((xs, ys), -1), half)
            if self.cached:
                self._grids[key] = grid
        return grid

    def __call__(self, img: Tensor, flow: Tensor) -> Tensor:
        if self.kernel is not None:
            return self.kernel(img, flow)
        dtype = torch.float32 if self.fp32 else img.dtype
        base, half = self.base_grid(flow, dtype)
        grid = base + flow.permute(0, 2, 3, 1).to(dtype) / half  # upstream's numbers, in grid_sample's layout
        out = F.grid_sample(img.to(dtype), grid, mode="bilinear", padding_mode="border", align_corners=True)
        return out.to(img.dtype)


class Conv2(nn.Module):
    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv1 = conv_unit(in_ch, out_ch, 2)
        self.conv2 = conv_unit(out_ch, out_ch, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(self.conv1(x))


def deconv_unit(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(in_ch, out_ch, 4, 2, 1), nn.PReLU(out_ch))


class ContextUNet(nn.Module):
    """The levels that the paper's refinement network and v3.1's fusion network share (their keys ``down1`` …
    ``down3``, ``up0`` … ``up3``): three levels down, each also reading both frames' context features, then four up,
    each also reading the level beside it."""

    def _add_levels(self, c: int) -> None:
        """The levels after ``down0`` (which makes ``2 * c`` channels), registered in upstream's key order."""
        self.down1 = Conv2(4 * c, 4 * c)
        self.down2 = Conv2(8 * c, 8 * c)
        self.down3 = Conv2(16 * c, 16 * c)
        self.up0 = deconv_unit(32 * c, 8 * c)
        self.up1 = deconv_unit(16 * c, 4 * c)
        self.up2 = deconv_unit(8 * c, 2 * c)
        self.up3 = deconv_unit(4 * c, c)

    def levels(self, s0: Tensor, ctx0: list[Tensor], ctx1: list[Tensor]) -> Tensor:
        """From ``down0``'s output and both frames' context features, the last level's (``c`` channels)."""
        s1 = self.down1(torch.cat((s0, ctx0[0], ctx1[0]), 1))
        s2 = self.down2(torch.cat((s1, ctx0[1], ctx1[1]), 1))
        s3 = self.down3(torch.cat((s2, ctx0[2], ctx1[2]), 1))
        x = self.up0(torch.cat((s3, ctx0[3], ctx1[3]), 1))
        x = self.up1(torch.cat((x, s2), 1))
        x = self.up2(torch.cat((x, s1), 1))
        return self.up3(torch.cat((x, s0), 1))


def warp_both(warp: Warper, img0: Tensor, img1: Tensor, flow: Tensor) -> tuple[Tensor, Tensor]:
    """Both frames warped by their halves of the flow, in one batch: one launch, and the CPU's grid_sample
    spreads its threads over the batch."""
    warped0, warped1 = warp(torch.cat((img0, img1)), torch.cat((flow[:, 0:2], flow[:, 2:4]))).chunk(2)
    return warped0, warped1


def flow_peaks(d_flow: Tensor) -> Tensor:
    """(N, 2): the largest absolute change of each frame's flow (channels 0-1 and 2-3), for the retry's test."""
    return torch.stack((d_flow[:, 0:2].abs().amax(dim=(1, 2, 3)), d_flow[:, 2:4].abs().amax(dim=(1, 2, 3))), 1)
