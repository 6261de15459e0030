"""Backward warp (bilinear, border padding, align_corners=True) as one Triton kernel.

Same result as ``rife.ifnet.Warper`` with ``fp32=True``: coordinates and interpolation in fp32, output in the
image's dtype. ``warp`` launches the kernel; ``fused_warp`` goes through the ``rife::warp`` custom op, which
torch.compile traces into its graph (and into a CUDA graph). Both need Triton: check ``available()`` first.
"""

from typing import Any

import torch
from torch import Tensor

try:
    import triton
    import triton.language as tl
    from torch.library import triton_op, wrap_triton  # PyTorch 2.6 and later
except ImportError:
    triton = None


def available() -> bool:
    """Whether Triton and PyTorch's Triton custom ops import, so that ``warp`` and ``fused_warp`` can run."""
    return triton is not None


if triton is not None:

    @triton.jit
    def _source_coord(i, d, size):
        """grid_sample's source coordinate of output index ``i`` displaced by ``d`` pixels, clipped to the border.

        Done as grid_sample does it (linspace grid + normalised flow, then unnormalised) rather than as ``i + d``,
        to round as the reference does. Scalars stay free of ``.to()``: Triton may pass a size of 1 as a constant.
        """
        span = tl.maximum(size - 1, 1) * 1.0  # size 1: no division by zero; the clip below then gives 0, as torch
        step = tl.math.div_rn(2.0, span)  # linspace's step, and 1 / ((size - 1) / 2); `/` would be approximate
        base = tl.where(i < size // 2, -1.0 + step * i, 1.0 - step * (size - 1 - i))  # torch.linspace's formula
        coord = (base + d * step + 1.0) * 0.5 * span
        return tl.minimum(tl.maximum(coord, 0.0), (size - 1) * 1.0)

    @triton.jit
    def _warp_kernel(
        img, flow, out,
        C, H, W,
        img_sn, img_sc, img_sh, img_sw,
        flow_sn, flow_sc, flow_sh, flow_sw,
        out_sn, out_sc, out_sh, out_sw,
        BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
    ):
        # A program takes one channel tile of one row segment: no per-pixel divisions, and neighbours gather neighbours.
        tiles_c = tl.cdiv(C, BLOCK_C)
        x = tl.program_id(0) // tiles_c * BLOCK_P + tl.arange(0, BLOCK_P)
        c = tl.program_id(0) % tiles_c * BLOCK_C + tl.arange(0, BLOCK_C)
        # int64 offsets: a batch of feature maps can hold more than 2**31 elements.
        y = tl.program_id(1).to(tl.int64)
        n = tl.program_id(2).to(tl.int64)
        x_ok = x < W

        f = flow + n * flow_sn + y * flow_sh + x.to(tl.int64) * flow_sw
        ix = _source_coord(x, tl.load(f, mask=x_ok, other=0.0).to(tl.float32), W)
        iy = _source_coord(y, tl.load(f + flow_sc, mask=x_ok, other=0.0).to(tl.float32), H)

        x0 = tl.floor(ix)
        y0 = tl.floor(iy)
        # The weights of grid_sample's CUDA kernel, term for term.
        w_nw = (x0 + 1.0 - ix) * (y0 + 1.0 - iy)
        w_ne = (ix - x0) * (y0 + 1.0 - iy)
        w_sw = (x0 + 1.0 - ix) * (iy - y0)
        w_se = (ix - x0) * (iy - y0)
        x0 = x0.to(tl.int32)
        y0 = y0.to(tl.int32)
        # After the clip only the right and lower neighbours can fall outside; their weight is then 0.
        x1_ok = x0 + 1 < W
        y1_ok = y0 + 1 < H
        nw = img + n * img_sn + y0.to(tl.int64) * img_sh + x0.to(tl.int64) * img_sw
        o = out + n * out_sn + y * out_sh + x.to(tl.int64) * out_sw

        m_nw = x_ok[:, None] & (c < C)[None, :]
        m_ne = m_nw & x1_ok[:, None]
        m_sw = m_nw & y1_ok[:, None]
        m_se = m_ne & y1_ok[:, None]
        src = nw[:, None] + c.to(tl.int64)[None, :] * img_sc
        acc = tl.load(src, mask=m_nw, other=0.0).to(tl.float32) * w_nw[:, None]
        acc += tl.load(src + img_sw, mask=m_ne, other=0.0).to(tl.float32) * w_ne[:, None]
        acc += tl.load(src + img_sh, mask=m_sw, other=0.0).to(tl.float32) * w_sw[:, None]
        acc += tl.load(src + img_sh + img_sw, mask=m_se, other=0.0).to(tl.float32) * w_se[:, None]
        dst = o[:, None] + c.to(tl.int64)[None, :] * out_sc
        tl.store(dst, acc.to(out.dtype.element_ty), mask=m_nw)

    @triton_op("rife::warp", mutates_args=())
    def _warp_op(img: Tensor, flow: Tensor) -> Tensor:
        return _launch(img, flow, wrap_triton(_warp_kernel))


def _launch(img: Tensor, flow: Tensor, kernel: Any) -> Tensor:
    n, c, h, w = img.shape
    if tuple(flow.shape) != (n, 2, h, w):
        raise ValueError(f"flow of shape {tuple(flow.shape)} for an image of shape {tuple(img.shape)}")
    out = torch.empty_like(img)
    block_c = min(triton.next_power_of_2(c), 32)
    block_p = min(max(2048 // block_c, 32), 256, triton.next_power_of_2(w))
    # Grid dimensions 1 and 2 allow 65535 rows and images.
    grid = (triton.cdiv(w, block_p) * triton.cdiv(c, block_c), h, n)
    kernel[grid](
        img, flow, out, c, h, w, *img.stride(), *flow.stride(), *out.stride(), BLOCK_P=block_p, BLOCK_C=block_c,
    )
    return out


def _require_triton() -> None:
    if triton is None:
        raise RuntimeError("rife.triton_warp needs Triton and PyTorch 2.6 or later, which do not import here")


def warp(img: Tensor, flow: Tensor) -> Tensor:
    """Backward-warp ``img`` (N, C, H, W) by ``flow`` (N, 2, H, W, in pixels); any strides, any float dtypes.

    The output has the image's shape, dtype and memory format."""
    _require_triton()
    return _launch(img, flow, _warp_kernel)


def fused_warp(img: Tensor, flow: Tensor) -> Tensor:
    """``warp`` through the ``rife::warp`` custom op, for code that torch.compile compiles."""
    _require_triton()
    return torch.ops.rife.warp(img, flow)
