"""Triton convolutions of the fast path with their epilogues fused: bias, PReLU and a residual add are applied to the
accumulator before the one store, instead of in a kernel of their own after cuDNN's convolution (15-17% of a fp16
720p frame was those kernels).

- ``conv3x3``: ``nn.Conv2d(k=3, padding=1, stride 1 or 2)`` then optionally PReLU, then optionally ``+ residual``.
- ``deconv4x4``: ``nn.ConvTranspose2d(k=4, stride=2, padding=1)`` then optionally PReLU. Each of the four output
  phases (row and column parity) is a 2x2 convolution of the input; a program computes one phase.

Both are one implicit-GEMM kernel (``_conv_kernel``): rows are output pixels, columns output channels, and the
reduction runs over taps and input channels with fp32 accumulation; inputs in fp16 or bf16, any strides (channels_last
gives contiguous channel loads). ``fused_conv3x3`` / ``fused_deconv4x4`` go through custom ops (``rife::conv3x3``,
``rife::deconv4x4``) that torch.compile keeps in its graph; their kernel picks its tile sizes per shape by timing
(``triton.autotune``) on its first call, which the warm-up makes.
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

HALF_DTYPES = (torch.float16, torch.bfloat16)
SMALL_TILES = {"BLOCK_M": 32, "BLOCK_N": 16, "BLOCK_K": 16}
INTERPRETER_TILES = {"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 32}  # numpy runs large blocks as fast as small ones


def available() -> bool:
    return triton is not None


if triton is not None:

    @triton.jit
    def _conv_kernel(
        x, w, bias, slope, res, out,
        M, C_in, H, W, C_out, OH, OW,
        x_sn, x_sc, x_sh, x_sw,
        w_si, w_so, w_sh, w_sw,
        r_sn, r_sc, r_sh, r_sw,
        o_sn, o_sc, o_sh, o_sw,
        STRIDE: tl.constexpr, TRANSPOSED: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_PRELU: tl.constexpr,
        HAS_RES: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    ):
        # Rows: M pixels of the output (a transposed convolution: of one phase, at the input's resolution).
        m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
        co = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
        if TRANSPOSED:  # output pixel (2 * gy + py, 2 * gx + px) of phase (py, px)
            py = tl.program_id(2) // 2
            px = tl.program_id(2) % 2
            gx = m % W
            gy = (m // W) % H
            n = m // (W * H)
            TAPS: tl.constexpr = 4
        else:
            gx = m % OW
            gy = (m // OW) % OH
            n = m // (OW * OH)
            TAPS: tl.constexpr = 9
        m_ok = m < M
        co_ok = co < C_out
        x_pix = x + n.to(tl.int64) * x_sn
        k_chunks = tl.cdiv(C_in, BLOCK_K)
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        # One loop over (tap, channel chunk), so that Triton pipelines the loads across taps.
        for step in range(TAPS * k_chunks):
            tap = step // k_chunks
            ci = (step - tap * k_chunks) * BLOCK_K + tl.arange(0, BLOCK_K)
            if TRANSPOSED:
                # Output row 2 * gy + py gathers input rows gy + py - j through kernel rows 1 - py + 2 * j (j = 0, 1).
                jy = tap // 2
                jx = tap % 2
                iy = gy + py - jy
                ix = gx + px - jx
                ky = 1 - py + 2 * jy
                kx = 1 - px + 2 * jx
            else:
                ky = tap // 3
                kx = tap % 3
                iy = gy * STRIDE - 1 + ky
                ix = gx * STRIDE - 1 + kx
            pix_ok = m_ok & (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W)
            ci_ok = ci < C_in
            a_ptr = x_pix + iy.to(tl.int64) * x_sh + ix.to(tl.int64) * x_sw
            a = tl.load(a_ptr[:, None] + ci[None, :] * x_sc, mask=pix_ok[:, None] & ci_ok[None, :], other=0.0)
            b_ptr = w + ky * w_sh + kx * w_sw + ci[:, None] * w_si + co[None, :] * w_so
            b = tl.load(b_ptr, mask=ci_ok[:, None] & co_ok[None, :], other=0.0)
            acc = tl.dot(a, b, acc)
        if HAS_BIAS:
            acc += tl.load(bias + co, mask=co_ok, other=0.0).to(tl.float32)[None, :]
        if HAS_PRELU:
            a_neg = tl.load(slope + co, mask=co_ok, other=0.0).to(tl.float32)[None, :]
            acc = tl.where(acc > 0, acc, acc * a_neg)
        if TRANSPOSED:
            oy = 2 * gy + py
            ox = 2 * gx + px
        else:
            oy = gy
            ox = gx
        ok = m_ok[:, None] & co_ok[None, :]
        if HAS_RES:
            r_ptr = res + n.to(tl.int64) * r_sn + oy.to(tl.int64) * r_sh + ox.to(tl.int64) * r_sw
            acc += tl.load(r_ptr[:, None] + co[None, :] * r_sc, mask=ok, other=0.0).to(tl.float32)
        o_ptr = out + n.to(tl.int64) * o_sn + oy.to(tl.int64) * o_sh + ox.to(tl.int64) * o_sw
        tl.store(o_ptr[:, None] + co[None, :] * o_sc, acc.to(out.dtype.element_ty), mask=ok)

    def _tile_configs() -> list:
        shapes = [  # (BLOCK_M, BLOCK_N, BLOCK_K, warps, stages): small and large layers of both models
            (128, 64, 32, 4, 3), (128, 128, 32, 8, 3), (64, 64, 32, 4, 4), (64, 128, 32, 4, 3), (128, 32, 32, 4, 4),
            (64, 32, 32, 4, 4), (128, 64, 64, 4, 3), (256, 64, 32, 8, 3), (128, 64, 16, 4, 4), (64, 32, 16, 2, 4),
        ]
        return [triton.Config({"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk}, num_warps=nw, num_stages=ns)
                for bm, bn, bk, nw, ns in shapes]

    _conv_tuned = triton.autotune(configs=_tile_configs(), key=["M", "C_in", "C_out", "STRIDE", "TRANSPOSED"])(
        _conv_kernel)

    def _kernel_for(x: Tensor) -> tuple[Any, dict[str, int]]:
        """The autotuned kernel; CPU tensors (Triton's interpreter, with no GPU to time on) get fixed tiles."""
        return (_conv_kernel, INTERPRETER_TILES) if x.device.type == "cpu" else (_conv_tuned, {})

    @triton_op("rife::conv3x3", mutates_args=())
    def _conv3x3_op(x: Tensor, weight: Tensor, bias: Tensor | None, slope: Tensor | None, residual: Tensor | None,
                    stride: int) -> Tensor:
        kernel, tiles = _kernel_for(x)
        return _launch(x, weight, bias, slope, residual, stride, False, wrap_triton(kernel), tiles)

    @triton_op("rife::deconv4x4", mutates_args=())
    def _deconv4x4_op(x: Tensor, weight: Tensor, bias: Tensor | None, slope: Tensor | None) -> Tensor:
        kernel, tiles = _kernel_for(x)
        return _launch(x, weight, bias, slope, None, 2, True, wrap_triton(kernel), tiles)


def _launch(x: Tensor, weight: Tensor, bias: Tensor | None, slope: Tensor | None, residual: Tensor | None,
            stride: int, transposed: bool, kernel: Any, tiles: dict[str, int]) -> Tensor:
    """``tiles``: BLOCK_M, BLOCK_N, BLOCK_K and num_warps for the plain kernel; empty for the autotuned one."""
    n, c_in, h, w = x.shape
    if transposed:
        c_out, (oh, ow), kernel_size = weight.shape[1], (2 * h, 2 * w), 4
        m, (w_si, w_so) = n * h * w, weight.stride()[:2]  # ConvTranspose2d weights are (in, out, kh, kw)
    else:
        c_out, (oh, ow), kernel_size = weight.shape[0], ((h - 1) // stride + 1, (w - 1) // stride + 1), 3
        m, (w_so, w_si) = n * oh * ow, weight.stride()[:2]
    if x.dtype not in HALF_DTYPES or weight.dtype != x.dtype or tuple(weight.shape[2:]) != (kernel_size, kernel_size):
        raise ValueError(f"input {tuple(x.shape)} {x.dtype} with weights {tuple(weight.shape)} {weight.dtype}: "
                         f"needs {kernel_size}x{kernel_size} weights and fp16 or bf16 for both")
    if (weight.shape[0] if transposed else weight.shape[1]) != c_in:
        raise ValueError(f"weights {tuple(weight.shape)} for an input of {c_in} channels")
    fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    out = torch.empty((n, c_out, oh, ow), dtype=x.dtype, device=x.device, memory_format=fmt)
    # Arguments the kernel does not read get ``out``.
    res = residual if residual is not None else out
    if res.shape != out.shape:
        raise ValueError(f"residual {tuple(res.shape)} for an output of shape {tuple(out.shape)}")

    def grid(meta: dict) -> tuple[int, int, int]:
        return triton.cdiv(m, meta["BLOCK_M"]), triton.cdiv(c_out, meta["BLOCK_N"]), 4 if transposed else 1

    kernel[grid](
        x, weight, out if bias is None else bias, out if slope is None else slope, res, out,
        m, c_in, h, w, c_out, oh, ow, *x.stride(), w_si, w_so, *weight.stride()[2:], *res.stride(), *out.stride(),
        STRIDE=stride, TRANSPOSED=transposed, HAS_BIAS=bias is not None, HAS_PRELU=slope is not None,
        HAS_RES=residual is not None, **tiles,
    )
    return out


def _require_triton() -> None:
    if triton is None:
        raise RuntimeError("rife.triton_conv needs Triton and PyTorch 2.6 or later, which do not import here")


def conv3x3(x: Tensor, weight: Tensor, bias: Tensor | None = None, slope: Tensor | None = None,
            residual: Tensor | None = None, stride: int = 1, tiles: dict[str, int] | None = None) -> Tensor:
    """``prelu(conv2d(x, weight, bias, stride, padding=1), slope) + residual`` (each part optional) in one kernel of
    fixed ``tiles`` (default: small ones); ``fused_conv3x3`` is the tuned op."""
    _require_triton()
    return _launch(x, weight, bias, slope, residual, stride, False, _conv_kernel, tiles or SMALL_TILES)


def deconv4x4(x: Tensor, weight: Tensor, bias: Tensor | None = None, slope: Tensor | None = None,
              tiles: dict[str, int] | None = None) -> Tensor:
    """``prelu(conv_transpose2d(x, weight, bias, stride=2, padding=1), slope)`` in one kernel (see ``conv3x3``)."""
    _require_triton()
    return _launch(x, weight, bias, slope, None, 2, True, _conv_kernel, tiles or SMALL_TILES)


def fused_conv3x3(x: Tensor, weight: Tensor, bias: Tensor | None, slope: Tensor | None, residual: Tensor | None,
                  stride: int) -> Tensor:
    _require_triton()
    return torch.ops.rife.conv3x3(x, weight, bias, slope, residual, stride)


def fused_deconv4x4(x: Tensor, weight: Tensor, bias: Tensor | None, slope: Tensor | None) -> Tensor:
    _require_triton()
    return torch.ops.rife.deconv4x4(x, weight, bias, slope)
