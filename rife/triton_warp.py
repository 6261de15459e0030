"""Triton kernels of the fast path: the backward warp, and a block's whole flow step with its two warps.

- ``warp``: bilinear, border padding, align_corners=True; the result of ``rife.layers.Warper`` with ``fp32=True``
  (coordinates and interpolation in fp32, output in the image's dtype).
- ``step``: what ``rife.ifnet.FlowStep`` does after a block (resize its output to the frame, scale the flow part,
  add to the running flow and mask, optionally warp both frames by the new flow and the peaks of the change) in one
  pass over the frame instead of five or six kernels, all arithmetic in fp32.
- ``feed``: what ``rife.ifnet.BlockFeed`` does before a block (the frames it reads, warped where needed, the
  timestep, mask and flow, resized to the block's scale and concatenated with zero channels) in one pass over the
  block's input: the frames are warped only at the pixels the resize reads, and nothing at full size is written.
- ``gather``: the same for the other families' block inputs, from up to six groups of channels (frames, encoder
  features, warped or not, the carried channels, the flow) in one launch, and their carried channels brought to the
  frame after a block (``rife.families.FusedPass``).

``fused_warp`` goes through the custom op ``rife::warp``, which torch.compile keeps inside its graph (and a CUDA
graph). ``step`` and ``feed`` are called outside compiled code: as a custom op with several outputs, PyTorch 2.11's inductor
failed on it (``KeyError`` in its scheduler). All need Triton: check ``available()`` first.
"""

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import Tensor

from rife.kernels import Candidate, GatherGroup, StepForm
from rife.layers import memory_format_of
from rife.variants import CHANNELS_PER_INPUT, FLOW_CHANNELS

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
    def _bilinear(ix, iy, W, H):
        """The top-left source pixel, the four weights of grid_sample's CUDA kernel (term for term), and whether
        the right and lower neighbours exist (after the border clip only they can fall outside; their weight is 0)."""
        x0 = tl.floor(ix)
        y0 = tl.floor(iy)
        w_nw = (x0 + 1.0 - ix) * (y0 + 1.0 - iy)
        w_ne = (ix - x0) * (y0 + 1.0 - iy)
        w_sw = (x0 + 1.0 - ix) * (iy - y0)
        w_se = (ix - x0) * (iy - y0)
        x0 = x0.to(tl.int32)
        y0 = y0.to(tl.int32)
        return x0, y0, w_nw, w_ne, w_sw, w_se, x0 + 1 < W, y0 + 1 < H

    @triton.jit
    def _gather(src, img_sh, img_sw, w_nw, w_ne, w_sw, w_se, ok, x1_ok, y1_ok):
        """The bilinear sum at top-left sources ``src`` (any shape, the weights and masks broadcast to it), in fp32,
        in grid_sample's order; a neighbour that does not exist is read as 0 (its weight is 0 anyway)."""
        acc = tl.load(src, mask=ok, other=0.0).to(tl.float32) * w_nw
        acc += tl.load(src + img_sw, mask=ok & x1_ok, other=0.0).to(tl.float32) * w_ne
        acc += tl.load(src + img_sh, mask=ok & y1_ok, other=0.0).to(tl.float32) * w_sw
        acc += tl.load(src + img_sh + img_sw, mask=ok & x1_ok & y1_ok, other=0.0).to(tl.float32) * w_se
        return acc

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

        x0, y0, w_nw, w_ne, w_sw, w_se, x1_ok, y1_ok = _bilinear(ix, iy, W, H)
        nw = img + n * img_sn + y0.to(tl.int64) * img_sh + x0.to(tl.int64) * img_sw
        o = out + n * out_sn + y * out_sh + x.to(tl.int64) * out_sw

        ok = x_ok[:, None] & (c < C)[None, :]
        src = nw[:, None] + c.to(tl.int64)[None, :] * img_sc
        acc = _gather(src, img_sh, img_sw, w_nw[:, None], w_ne[:, None], w_sw[:, None], w_se[:, None],
                      ok, x1_ok[:, None], y1_ok[:, None])
        dst = o[:, None] + c.to(tl.int64)[None, :] * out_sc
        tl.store(dst, acc.to(out.dtype.element_ty), mask=ok)

    @triton.jit
    def _resize_index(i, inv_k, size):
        """Bilinear resize's source (align_corners=False, scale_factor semantics): first index, second, weight."""
        src = tl.maximum(inv_k * (i + 0.5) - 0.5, 0.0)
        i0 = src.to(tl.int32)
        return i0, tl.minimum(i0 + 1, size - 1), src - i0

    @triton.jit
    def _resized(top, bottom, xa, xb, lx, ly, ok):
        """One channel of the resized block output: rows ``top`` and ``bottom``, columns ``xa``/``xb`` (offsets)."""
        up = (1.0 - lx) * tl.load(top + xa, mask=ok).to(tl.float32) + lx * tl.load(top + xb, mask=ok).to(tl.float32)
        down = (1.0 - lx) * tl.load(bottom + xa, mask=ok).to(tl.float32) + lx * tl.load(bottom + xb, mask=ok).to(
            tl.float32)
        return (1.0 - ly) * up + ly * down

    @triton.jit
    def _row_segment(width, BLOCK_P: tl.constexpr):
        """The pixels of this program (grid: row segments, rows, frames): columns, row, frame, which columns exist."""
        x = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
        return x, tl.program_id(1), tl.program_id(2).to(tl.int64), x < width

    @triton.jit
    def _warped(img, x, y, fx, fy, W, H, ok, img_sc, img_sh, img_sw):
        """Pixels (x, y) of one 3-channel image (``img`` points at it) warped by the flow (fx, fy): three fp32
        channels, each rounded to the image's dtype as a stored warp would be."""
        ix = _source_coord(x, fx, W)
        iy = _source_coord(y, fy, H)
        x0, y0, w_nw, w_ne, w_sw, w_se, x1_ok, y1_ok = _bilinear(ix, iy, W, H)
        src = img + y0.to(tl.int64) * img_sh + x0.to(tl.int64) * img_sw
        dt = img.dtype.element_ty
        c0 = _gather(src, img_sh, img_sw, w_nw, w_ne, w_sw, w_se, ok, x1_ok, y1_ok).to(dt).to(tl.float32)
        c1 = _gather(src + img_sc, img_sh, img_sw, w_nw, w_ne, w_sw, w_se, ok, x1_ok, y1_ok).to(dt).to(tl.float32)
        c2 = _gather(src + 2 * img_sc, img_sh, img_sw, w_nw, w_ne, w_sw, w_se, ok, x1_ok, y1_ok).to(dt).to(tl.float32)
        return c0, c1, c2

    @triton.jit
    def _store3(out, out_sc, c0, c1, c2, ok):
        dt = out.dtype.element_ty
        tl.store(out, c0.to(dt), mask=ok)
        tl.store(out + out_sc, c1.to(dt), mask=ok)
        tl.store(out + 2 * out_sc, c2.to(dt), mask=ok)

    @triton.jit
    def _phased(i, stride, t_sc, PHASES: tl.constexpr, ROWS: tl.constexpr):
        """The offset of row (``ROWS``) or column ``i`` of a block output read before its last ``PHASES`` pixel
        shuffles: position ``i >> PHASES`` of the unshuffled output, and in its channels, for each shuffle, the phase
        that a bit of ``i`` selects (the last shuffle's from bit 0; a shuffle's channels go by row phase, then
        column phase)."""
        off = (i >> PHASES).to(tl.int64) * stride
        for j in tl.static_range(PHASES):
            off += ((i >> j) & 1).to(tl.int64) * ((1 << (2 * (PHASES - 1 - j) + ROWS)) * t_sc)
        return off

    @triton.jit
    def _flow_and_mask(frame, ra, rb, ca, cb, lx, ly, k, t_sc, ok):
        """One frame's block output resized to the frame at the row segment's pixels (rows at offsets ``ra``, ``rb``,
        columns at ``ca``, ``cb``; channels ``t_sc`` apart): its four flow channels scaled by ``k``, and its mask."""
        top = frame + ra
        bottom = frame + rb
        d0 = _resized(top, bottom, ca, cb, lx, ly, ok) * k
        d1 = _resized(top + t_sc, bottom + t_sc, ca, cb, lx, ly, ok) * k
        d2 = _resized(top + 2 * t_sc, bottom + 2 * t_sc, ca, cb, lx, ly, ok) * k
        d3 = _resized(top + 3 * t_sc, bottom + 3 * t_sc, ca, cb, lx, ly, ok) * k
        dm = _resized(top + 4 * t_sc, bottom + 4 * t_sc, ca, cb, lx, ly, ok)
        return d0, d1, d2, d3, dm

    @triton.jit
    def _quad(col, c0, c1, c2, c3):
        """Four per-pixel values as one (pixels, 4) tile, to be stored at once (adjacent in channels_last: one store
        each would write every sector four times)."""
        return tl.where(col == 0, c0[:, None], tl.where(col == 1, c1[:, None], tl.where(col == 2, c2[:, None],
                                                                                        c3[:, None])))

    @triton.jit
    def _candidate(t, prev_flow, prev_mask, h, w, inv_k, k, t_sn, t_sc, t_sh, t_sw, pf_sn, pf_sc, pf_sh, pf_sw,
                   pm_sn, pm_sh, pm_sw, x, y, n, ok, other, HAS_PREV: tl.constexpr, MASK_ADDS: tl.constexpr,
                   ENSEMBLE: tl.constexpr, PHASES: tl.constexpr):
        """A block output brought to the frame at pixels (x, y) of row y, scaled and added to the running flow and
        mask (or, without MASK_ADDS, replacing it): the four flow channels and the mask in fp32, and the change of
        the flow in the frames' own direction (for the retry's peaks). With ENSEMBLE, output ``other`` is the same
        block's with the frames' roles exchanged: each resized and scaled, then averaged (flow halves swapped back,
        mask negated), as the PyTorch general path averages them."""
        # h, w: the output's size as the head's shuffles would make it (PHASES: those left to this read).
        ya, yb, ly = _resize_index(y, inv_k, h)
        xa, xb, lx = _resize_index(x, inv_k, w)
        ra = _phased(ya, t_sh, t_sc, PHASES, 1)
        rb = _phased(yb, t_sh, t_sc, PHASES, 1)
        ca = _phased(xa, t_sw, t_sc, PHASES, 0)
        cb = _phased(xb, t_sw, t_sc, PHASES, 0)
        c_sc = t_sc << (2 * PHASES)
        d0, d1, d2, d3, dm = _flow_and_mask(t + n * t_sn, ra, rb, ca, cb, lx, ly, k, c_sc, ok)
        p01 = tl.maximum(tl.abs(d0), tl.abs(d1))
        p23 = tl.maximum(tl.abs(d2), tl.abs(d3))
        if ENSEMBLE:
            e0, e1, e2, e3, em = _flow_and_mask(t + other * t_sn, ra, rb, ca, cb, lx, ly, k, c_sc, ok)
            d0, d1, d2, d3 = (d0 + e2) / 2, (d1 + e3) / 2, (d2 + e0) / 2, (d3 + e1) / 2
            dm = (dm - em) / 2
        if HAS_PREV:
            pf = prev_flow + n * pf_sn + y.to(tl.int64) * pf_sh + x.to(tl.int64) * pf_sw
            d0 += tl.load(pf, mask=ok).to(tl.float32)
            d1 += tl.load(pf + pf_sc, mask=ok).to(tl.float32)
            d2 += tl.load(pf + 2 * pf_sc, mask=ok).to(tl.float32)
            d3 += tl.load(pf + 3 * pf_sc, mask=ok).to(tl.float32)
            if MASK_ADDS:
                dm += tl.load(prev_mask + n * pm_sn + y.to(tl.int64) * pm_sh + x.to(tl.int64) * pm_sw, mask=ok).to(
                    tl.float32)
        return d0, d1, d2, d3, dm, p01, p23

    @triton.jit
    def _step_kernel(
        ta, pfa, pma, tb, pfb, pmb, take_b, img0, img1, flow, mask, out0, out1, peaks,
        ha, wa, inv_ka, ka, hb, wb, inv_kb, kb, H, W,
        N, ta_sn, ta_sc, ta_sh, ta_sw, pfa_sn, pfa_sc, pfa_sh, pfa_sw, pma_sn, pma_sh, pma_sw,
        tb_sn, tb_sc, tb_sh, tb_sw, pfb_sn, pfb_sc, pfb_sh, pfb_sw, pmb_sn, pmb_sh, pmb_sw,
        img_sn, img_sc, img_sh, img_sw,
        f_sn, f_sc, f_sh, f_sw,
        m_sn, m_sh, m_sw,
        o_sn, o_sc, o_sh, o_sw,
        HAS_PREV: tl.constexpr, HAS_B: tl.constexpr, MEASURE: tl.constexpr, WARP: tl.constexpr,
        BLEND: tl.constexpr, MASK_ADDS: tl.constexpr, ENSEMBLE: tl.constexpr, PHASES: tl.constexpr,
        BLOCK_P: tl.constexpr,
    ):
        # A program takes one row segment of one frame: the block output's two source rows are shared by all.
        # With HAS_B, each frame takes candidate B (another block output, scale and running state) where take_b says
        # so, else A: the large-motion retry's choice, made here so that only the chosen candidate is computed.
        # With ENSEMBLE the N frames' block outputs come with the other direction's (frames N to 2N - 1), and the
        # state is stored for both directions' next blocks: frame N + n with its flow halves swapped and its mask
        # negated.
        x, y, n, ok = _row_segment(W, BLOCK_P)
        pick_b = False
        if HAS_B:
            pick_b = tl.load(take_b + n) != 0
        if pick_b:
            d0, d1, d2, d3, dm, p01, p23 = _candidate(
                tb, pfb, pmb, hb, wb, inv_kb, kb, tb_sn, tb_sc, tb_sh, tb_sw, pfb_sn, pfb_sc, pfb_sh, pfb_sw,
                pmb_sn, pmb_sh, pmb_sw, x, y, n, ok, n + N, HAS_PREV, MASK_ADDS, ENSEMBLE, PHASES)
        else:
            d0, d1, d2, d3, dm, p01, p23 = _candidate(
                ta, pfa, pma, ha, wa, inv_ka, ka, ta_sn, ta_sc, ta_sh, ta_sw, pfa_sn, pfa_sc, pfa_sh, pfa_sw,
                pma_sn, pma_sh, pma_sw, x, y, n, ok, n + N, HAS_PREV, MASK_ADDS, ENSEMBLE, PHASES)
        if MEASURE:
            tl.atomic_max(peaks + 2 * n, tl.max(tl.where(ok, p01, 0.0), axis=0))
            tl.atomic_max(peaks + 2 * n + 1, tl.max(tl.where(ok, p23, 0.0), axis=0))
        y64 = y.to(tl.int64)
        x64 = x.to(tl.int64)
        # Rounded to the state's dtype; the warps use the rounded values, as separate kernels would.
        dt = flow.dtype.element_ty
        f0, f1, f2, f3, fm = d0.to(dt), d1.to(dt), d2.to(dt), d3.to(dt), dm.to(dt)
        if BLEND:  # only the blended frame: nothing of the state is stored
            a0, a1, a2 = _warped(img0 + n * img_sn, x, y, f0.to(tl.float32), f1.to(tl.float32), W, H, ok,
                                 img_sc, img_sh, img_sw)
            b0, b1, b2 = _warped(img1 + n * img_sn, x, y, f2.to(tl.float32), f3.to(tl.float32), W, H, ok,
                                 img_sc, img_sh, img_sw)
            m = tl.sigmoid(fm.to(tl.float32))
            _store3(out0 + n * o_sn + y64 * o_sh + x64 * o_sw, o_sc, a0 * m + b0 * (1.0 - m), a1 * m + b1 * (1.0 - m),
                    a2 * m + b2 * (1.0 - m), ok)
        else:
            f = flow + n * f_sn + y64 * f_sh + x64 * f_sw
            col = tl.arange(0, 4)[None, :]
            tl.store(f[:, None] + col.to(tl.int64) * f_sc, _quad(col, f0, f1, f2, f3), mask=ok[:, None])
            tl.store(mask + n * m_sn + y64 * m_sh + x64 * m_sw, fm, mask=ok)
            if ENSEMBLE:
                f_other = flow + (n + N) * f_sn + y64 * f_sh + x64 * f_sw
                tl.store(f_other[:, None] + col.to(tl.int64) * f_sc, _quad(col, f2, f3, f0, f1), mask=ok[:, None])
                tl.store(mask + (n + N) * m_sn + y64 * m_sh + x64 * m_sw, -fm, mask=ok)
            if WARP:
                o = n * o_sn + y64 * o_sh + x64 * o_sw
                a0, a1, a2 = _warped(img0 + n * img_sn, x, y, f0.to(tl.float32), f1.to(tl.float32), W, H, ok,
                                     img_sc, img_sh, img_sw)
                _store3(out0 + o, o_sc, a0, a1, a2, ok)
                b0, b1, b2 = _warped(img1 + n * img_sn, x, y, f2.to(tl.float32), f3.to(tl.float32), W, H, ok,
                                     img_sc, img_sh, img_sw)
                _store3(out1 + o, o_sc, b0, b1, b2, ok)

    @triton.jit
    def _tap(ya, yb, xa, xb, lx, ly, TAP: tl.constexpr):
        """Row, columns and weight of one of the four source pixels of a bilinear resize."""
        if TAP // 2 == 0:
            ty = ya
            wy = 1.0 - ly
        else:
            ty = yb
            wy = ly
        if TAP % 2 == 0:
            tx = xa
            wx = 1.0 - lx
        else:
            tx = xb
            wx = lx
        return ty, tx, wy * wx

    @triton.jit
    def _resampled(src, sh, sw, ya, yb, xa, xb, lx, ly, ok, TAPS: tl.constexpr):
        """One full-size channel (``src`` points at it) at the resized pixels, in fp32."""
        acc = tl.zeros(lx.shape, tl.float32)
        for tap in tl.static_range(TAPS):
            ty, tx, wt = _tap(ya, yb, xa, xb, lx, ly, tap)
            acc += wt * tl.load(src + ty.to(tl.int64) * sh + tx.to(tl.int64) * sw, mask=ok).to(tl.float32)
        return acc

    @triton.jit
    def _resampled_warp(img, flow, FC: tl.constexpr, img_sc, img_sh, img_sw, f_sc, f_sh, f_sw, W, H,
                        ya, yb, xa, xb, lx, ly, ok, TAPS: tl.constexpr):
        """The image (3 channels) warped by flow channels FC and FC + 1 at each source pixel, rounded to the image's
        dtype as a stored warp would be, then resized: three fp32 channels."""
        dt = img.dtype.element_ty
        c0 = tl.zeros(lx.shape, tl.float32)
        c1 = tl.zeros(lx.shape, tl.float32)
        c2 = tl.zeros(lx.shape, tl.float32)
        for tap in tl.static_range(TAPS):
            ty, tx, wt = _tap(ya, yb, xa, xb, lx, ly, tap)
            f = flow + ty.to(tl.int64) * f_sh + tx.to(tl.int64) * f_sw
            ix = _source_coord(tx, tl.load(f + FC * f_sc, mask=ok).to(tl.float32), W)
            iy = _source_coord(ty, tl.load(f + (FC + 1) * f_sc, mask=ok).to(tl.float32), H)
            x0, y0, w_nw, w_ne, w_sw, w_se, x1_ok, y1_ok = _bilinear(ix, iy, W, H)
            s0 = img + y0.to(tl.int64) * img_sh + x0.to(tl.int64) * img_sw
            c0 += wt * _gather(s0, img_sh, img_sw, w_nw, w_ne, w_sw, w_se, ok, x1_ok, y1_ok).to(dt).to(tl.float32)
            c1 += wt * _gather(s0 + img_sc, img_sh, img_sw, w_nw, w_ne, w_sw, w_se, ok, x1_ok, y1_ok).to(dt).to(
                tl.float32)
            c2 += wt * _gather(s0 + 2 * img_sc, img_sh, img_sw, w_nw, w_ne, w_sw, w_se, ok, x1_ok, y1_ok).to(dt).to(
                tl.float32)
        return c0, c1, c2

    @triton.jit
    def _put(t0, t1, t2, t3, C: tl.constexpr, v):
        """The four channel tiles (pixels x 8 channels each) with channel C set to ``v``."""
        col = tl.arange(0, 8)[None, :]
        if C < 8:
            t0 = tl.where(col == C, v[:, None], t0)
        elif C < 16:
            t1 = tl.where(col == C - 8, v[:, None], t1)
        elif C < 24:
            t2 = tl.where(col == C - 16, v[:, None], t2)
        else:
            t3 = tl.where(col == C - 24, v[:, None], t3)
        return t0, t1, t2, t3

    @triton.jit
    def _put3(t0, t1, t2, t3, C: tl.constexpr, c0, c1, c2):
        """The channel tiles with channels C, C + 1 and C + 2 set."""
        t0, t1, t2, t3 = _put(t0, t1, t2, t3, C, c0)
        t0, t1, t2, t3 = _put(t0, t1, t2, t3, C + 1, c1)
        return _put(t0, t1, t2, t3, C + 2, c2)

    @triton.jit
    def _put_image(t0, t1, t2, t3, C: tl.constexpr, img, img_sc, img_sh, img_sw, ya, yb, xa, xb, lx, ly, ok,
                   TAPS: tl.constexpr):
        """The channel tiles with a 3-channel frame (``img`` points at it), resized, at channels C to C + 2."""
        for c in tl.static_range(3):
            v = _resampled(img + c * img_sc, img_sh, img_sw, ya, yb, xa, xb, lx, ly, ok, TAPS)
            t0, t1, t2, t3 = _put(t0, t1, t2, t3, C + c, v)
        return t0, t1, t2, t3

    @triton.jit
    def _store_tile(o, o_sc, tile, FIRST: tl.constexpr, CHANNELS: tl.constexpr, ok):
        cols = tl.arange(0, tile.shape[1])
        tl.store(o[:, None] + (FIRST + cols)[None, :] * o_sc, tile.to(o.dtype.element_ty),
                 mask=ok[:, None] & (FIRST + cols < CHANNELS)[None, :])

    @triton.jit
    def _feed_kernel(
        img0, img1, tp, flow, mask, feed,
        H, W, w, inv_s, scale,
        img_sn, img_sc, img_sh, img_sw,
        t_sn, t_sh, t_sw,
        f_sn, f_sc, f_sh, f_sw,
        m_sn, m_sh, m_sw,
        o_sn, o_sc, o_sh, o_sw,
        AT_IMG0: tl.constexpr, AT_IMG1: tl.constexpr, AT_WARPED0: tl.constexpr, AT_WARPED1: tl.constexpr,
        AT_TIMESTEP: tl.constexpr, AT_MASK: tl.constexpr, AT_FLOW: tl.constexpr, CHANNELS: tl.constexpr,
        TAPS: tl.constexpr, BLOCK_P: tl.constexpr,
    ):
        # AT_*: the channel each input starts at in the block input, -1 where the block does not read it.
        # A program takes one row segment of the block input; each pixel reads TAPS (1 or 4) frame pixels. The
        # channels are gathered into tiles of 8 and each stored at once: one pixel's channels are adjacent in
        # channels_last, and a store per channel would write each memory sector many times. (Tiles of 16 and 8
        # channels, or one of 32, were several times slower with Triton 3.6.)
        x, y, n, ok = _row_segment(w, BLOCK_P)
        ya, yb, ly = _resize_index(y, inv_s, H)
        xa, xb, lx = _resize_index(x, inv_s, W)
        t0 = tl.zeros([BLOCK_P, 8], tl.float32)  # the zero channels stay zero
        t1 = tl.zeros([BLOCK_P, 8], tl.float32)
        t2 = tl.zeros([BLOCK_P, 8], tl.float32)
        t3 = tl.zeros([BLOCK_P, 8], tl.float32)
        if AT_IMG0 >= 0:
            t0, t1, t2, t3 = _put_image(t0, t1, t2, t3, AT_IMG0, img0 + n * img_sn, img_sc, img_sh, img_sw,
                                        ya, yb, xa, xb, lx, ly, ok, TAPS)
        if AT_IMG1 >= 0:
            t0, t1, t2, t3 = _put_image(t0, t1, t2, t3, AT_IMG1, img1 + n * img_sn, img_sc, img_sh, img_sw,
                                        ya, yb, xa, xb, lx, ly, ok, TAPS)
        if AT_WARPED0 >= 0:
            c0, c1, c2 = _resampled_warp(img0 + n * img_sn, flow + n * f_sn, 0, img_sc, img_sh, img_sw, f_sc, f_sh,
                                         f_sw, W, H, ya, yb, xa, xb, lx, ly, ok, TAPS)
            t0, t1, t2, t3 = _put3(t0, t1, t2, t3, AT_WARPED0, c0, c1, c2)
        if AT_WARPED1 >= 0:
            c0, c1, c2 = _resampled_warp(img1 + n * img_sn, flow + n * f_sn, 2, img_sc, img_sh, img_sw, f_sc, f_sh,
                                         f_sw, W, H, ya, yb, xa, xb, lx, ly, ok, TAPS)
            t0, t1, t2, t3 = _put3(t0, t1, t2, t3, AT_WARPED1, c0, c1, c2)
        if AT_TIMESTEP >= 0:
            v = _resampled(tp + n * t_sn, t_sh, t_sw, ya, yb, xa, xb, lx, ly, ok, TAPS)
            t0, t1, t2, t3 = _put(t0, t1, t2, t3, AT_TIMESTEP, v)
        if AT_MASK >= 0:
            v = _resampled(mask + n * m_sn, m_sh, m_sw, ya, yb, xa, xb, lx, ly, ok, TAPS)
            t0, t1, t2, t3 = _put(t0, t1, t2, t3, AT_MASK, v)
        if AT_FLOW >= 0:
            for c in tl.static_range(4):
                v = _resampled(flow + n * f_sn + c * f_sc, f_sh, f_sw, ya, yb, xa, xb, lx, ly, ok, TAPS)
                t0, t1, t2, t3 = _put(t0, t1, t2, t3, AT_FLOW + c, tl.math.div_rn(v, scale))
        o = feed + n * o_sn + y.to(tl.int64) * o_sh + x.to(tl.int64) * o_sw
        _store_tile(o, o_sc, t0, 0, CHANNELS, ok)
        if CHANNELS > 8:
            _store_tile(o, o_sc, t1, 8, CHANNELS, ok)
        if CHANNELS > 16:
            _store_tile(o, o_sc, t2, 16, CHANNELS, ok)
        if CHANNELS > 24:
            _store_tile(o, o_sc, t3, 24, CHANNELS, ok)

    @triton.jit
    def _gather_group(src, s_sn, s_sc, s_sh, s_sw, flow, f_sn, f_sc, f_sh, f_sw, out_px, o_sc, N, n, x_ok,
                      ya, yb, ly, xa, xb, lx, H, W, C: tl.constexpr, AT: tl.constexpr, WARP: tl.constexpr,
                      PAIRS: tl.constexpr, divisor, TAPS: tl.constexpr, BLOCK_C: tl.constexpr,
                      UP: tl.constexpr, inv_up, uH, uW, UP_PHASES: tl.constexpr):
        """One source group at this program's output pixels (``out_px``): source frames n and, for a pair, N + n
        (flow channels 0-1 and 2-3), resized and optionally warped first, into channels AT onwards. With ``UP``
        the source (uH x uW) stands for itself resized to H x W (by 1 / ``inv_up``) and stored: each value of that
        is computed from it where the resize reads one, rounded as the stored copy would be; with ``UP_PHASES`` the
        source comes before that many pixel shuffles, and uH x uW is their output's size."""
        c = tl.arange(0, BLOCK_C)
        ok = x_ok[:, None] & (c < C)[None, :]
        channel = c.to(tl.int64)[None, :] * s_sc
        phased_channel = channel << (2 * UP_PHASES)  # an upsampled source's channels, before its pixel shuffles
        for half in tl.static_range(PAIRS):
            frame = src + (half * N + n) * s_sn
            acc = tl.zeros([xa.shape[0], BLOCK_C], tl.float32)
            for tap in tl.static_range(TAPS):
                ty, tx, wt = _tap(ya, yb, xa, xb, lx, ly, tap)
                if WARP:
                    f = flow + n * f_sn + (2 * half) * f_sc + ty.to(tl.int64) * f_sh + tx.to(tl.int64) * f_sw
                    ix = _source_coord(tx, tl.load(f, mask=x_ok, other=0.0).to(tl.float32), W)
                    iy = _source_coord(ty, tl.load(f + f_sc, mask=x_ok, other=0.0).to(tl.float32), H)
                    x0, y0, w_nw, w_ne, w_sw, w_se, x1_ok, y1_ok = _bilinear(ix, iy, W, H)
                    nw = frame + y0.to(tl.int64) * s_sh + x0.to(tl.int64) * s_sw
                    v = _gather(nw[:, None] + channel, s_sh, s_sw, w_nw[:, None], w_ne[:, None], w_sw[:, None],
                                w_se[:, None], ok, x1_ok[:, None], y1_ok[:, None])
                    v = v.to(src.dtype.element_ty).to(tl.float32)  # rounded as a stored warp would be
                elif UP:
                    ua, ub, uly = _resize_index(ty, inv_up, uH)
                    va, vb, ulx = _resize_index(tx, inv_up, uW)
                    v = tl.zeros([xa.shape[0], BLOCK_C], tl.float32)
                    for inner in tl.static_range(4):
                        sy, sx, w_inner = _tap(ua, ub, va, vb, ulx, uly, inner)
                        at = frame + _phased(sy, s_sh, s_sc, UP_PHASES, 1) + _phased(sx, s_sw, s_sc, UP_PHASES, 0)
                        v += w_inner[:, None] * tl.load(at[:, None] + phased_channel, mask=ok, other=0.0).to(
                            tl.float32)
                    v = v.to(src.dtype.element_ty).to(tl.float32)
                else:
                    at = frame + ty.to(tl.int64) * s_sh + tx.to(tl.int64) * s_sw
                    v = tl.load(at[:, None] + channel, mask=ok, other=0.0).to(tl.float32)
                acc += wt[:, None] * v
            acc = tl.math.div_rn(acc, divisor)
            dst = out_px[:, None] + (AT + half * C + c).to(tl.int64)[None, :] * o_sc
            tl.store(dst, acc.to(out_px.dtype.element_ty), mask=ok)

    @triton.jit
    def _gather_kernel(
        flow, out, H, W, w, N, inv_s,
        f_sn, f_sc, f_sh, f_sw, o_sn, o_sc, o_sh, o_sw,
        src0, s0_sn, s0_sc, s0_sh, s0_sw, div0, src1, s1_sn, s1_sc, s1_sh, s1_sw, div1,
        src2, s2_sn, s2_sc, s2_sh, s2_sw, div2, src3, s3_sn, s3_sc, s3_sh, s3_sw, div3,
        src4, s4_sn, s4_sc, s4_sh, s4_sw, div4, src5, s5_sn, s5_sc, s5_sh, s5_sw, div5,
        C0: tl.constexpr, C1: tl.constexpr, C2: tl.constexpr, C3: tl.constexpr, C4: tl.constexpr, C5: tl.constexpr,
        AT0: tl.constexpr, AT1: tl.constexpr, AT2: tl.constexpr, AT3: tl.constexpr, AT4: tl.constexpr,
        AT5: tl.constexpr,
        WARP0: tl.constexpr, WARP1: tl.constexpr, WARP2: tl.constexpr, WARP3: tl.constexpr, WARP4: tl.constexpr,
        WARP5: tl.constexpr,
        PAIRS0: tl.constexpr, PAIRS1: tl.constexpr, PAIRS2: tl.constexpr, PAIRS3: tl.constexpr,
        PAIRS4: tl.constexpr, PAIRS5: tl.constexpr,
        BC0: tl.constexpr, BC1: tl.constexpr, BC2: tl.constexpr, BC3: tl.constexpr, BC4: tl.constexpr,
        BC5: tl.constexpr,
        UP0: tl.constexpr, UP1: tl.constexpr, UP2: tl.constexpr, UP3: tl.constexpr, UP4: tl.constexpr,
        UP5: tl.constexpr, inv_up, uH, uW, UP_PHASES: tl.constexpr,
        G: tl.constexpr, ZERO_AT: tl.constexpr, ZEROS: tl.constexpr, BLOCK_Z: tl.constexpr, TAPS: tl.constexpr,
        BLOCK_P: tl.constexpr,
    ):
        # Groups (up to six) of one output row segment are neighbouring programs (the group varies fastest), so
        # the parts of each pixel's channels they write meet in the L2 cache rather than in memory; a program takes
        # all the channels of its group.
        g = tl.program_id(0) % G
        x = tl.program_id(0) // G * BLOCK_P + tl.arange(0, BLOCK_P)
        y = tl.program_id(1)
        n = tl.program_id(2).to(tl.int64)
        x_ok = x < w
        ya, yb, ly = _resize_index(y, inv_s, H)
        xa, xb, lx = _resize_index(x, inv_s, W)
        out_px = out + n * o_sn + y.to(tl.int64) * o_sh + x.to(tl.int64) * o_sw
        if g == 0:
            if ZEROS > 0:  # channels that no group writes (zero weights read them) are zeros
                z = tl.arange(0, BLOCK_Z)
                tl.store(out_px[:, None] + (ZERO_AT + z).to(tl.int64)[None, :] * o_sc,
                         tl.zeros([BLOCK_P, BLOCK_Z], out.dtype.element_ty), mask=x_ok[:, None] & (z < ZEROS)[None, :])
            _gather_group(src0, s0_sn, s0_sc, s0_sh, s0_sw, flow, f_sn, f_sc, f_sh, f_sw, out_px, o_sc, N, n, x_ok,
                          ya, yb, ly, xa, xb, lx, H, W, C0, AT0, WARP0, PAIRS0, div0, TAPS, BC0,
                          UP0, inv_up, uH, uW, UP_PHASES)
        if G > 1 and g == 1:
            _gather_group(src1, s1_sn, s1_sc, s1_sh, s1_sw, flow, f_sn, f_sc, f_sh, f_sw, out_px, o_sc, N, n, x_ok,
                          ya, yb, ly, xa, xb, lx, H, W, C1, AT1, WARP1, PAIRS1, div1, TAPS, BC1,
                          UP1, inv_up, uH, uW, UP_PHASES)
        if G > 2 and g == 2:
            _gather_group(src2, s2_sn, s2_sc, s2_sh, s2_sw, flow, f_sn, f_sc, f_sh, f_sw, out_px, o_sc, N, n, x_ok,
                          ya, yb, ly, xa, xb, lx, H, W, C2, AT2, WARP2, PAIRS2, div2, TAPS, BC2,
                          UP2, inv_up, uH, uW, UP_PHASES)
        if G > 3 and g == 3:
            _gather_group(src3, s3_sn, s3_sc, s3_sh, s3_sw, flow, f_sn, f_sc, f_sh, f_sw, out_px, o_sc, N, n, x_ok,
                          ya, yb, ly, xa, xb, lx, H, W, C3, AT3, WARP3, PAIRS3, div3, TAPS, BC3,
                          UP3, inv_up, uH, uW, UP_PHASES)
        if G > 4 and g == 4:
            _gather_group(src4, s4_sn, s4_sc, s4_sh, s4_sw, flow, f_sn, f_sc, f_sh, f_sw, out_px, o_sc, N, n, x_ok,
                          ya, yb, ly, xa, xb, lx, H, W, C4, AT4, WARP4, PAIRS4, div4, TAPS, BC4,
                          UP4, inv_up, uH, uW, UP_PHASES)
        if G > 5 and g == 5:
            _gather_group(src5, s5_sn, s5_sc, s5_sh, s5_sw, flow, f_sn, f_sc, f_sh, f_sw, out_px, o_sc, N, n, x_ok,
                          ya, yb, ly, xa, xb, lx, H, W, C5, AT5, WARP5, PAIRS5, div5, TAPS, BC5,
                          UP5, inv_up, uH, uW, UP_PHASES)

    @triton_op("rife::warp", mutates_args=())
    def _warp_op(img: Tensor, flow: Tensor) -> Tensor:
        return _launch(img, flow, wrap_triton(_warp_kernel))


@dataclass(frozen=True)
class Strided:
    """Tensor arguments of a kernel that share one set of strides: the tensors by parameter name, and the strides
    as ``<prefix>_s<dim>`` for the dimensions in ``dims`` (of n, c, h, w)."""

    prefix: str
    tensors: dict[str, Tensor]
    strides: tuple[int, ...]  # n, c, h, w
    dims: str = "nchw"

    @classmethod
    def of(cls, prefix: str, dims: str = "nchw", **tensors: Tensor) -> "Strided":
        # Compared, never hashed: under torch.compile with dynamic shapes the strides are SymInts, which a set or a
        # dict cannot hold.
        first, *others = tensors.values()
        strides = tuple(first.stride())
        if any(tuple(t.stride()) != strides for t in others):
            raise ValueError(f"{', '.join(tensors)} do not share their strides: "
                             f"{[tuple(t.stride()) for t in tensors.values()]}")
        return cls(prefix, tensors, strides, dims)

    def args(self) -> dict[str, Any]:
        return {**self.tensors, **{f"{self.prefix}_s{d}": self.strides["nchw".index(d)] for d in self.dims}}


def arguments(kernel: Any, *groups: Strided, **scalars: Any) -> dict[str, Any]:
    """``kernel``'s arguments by its parameters' names: one the kernel does not take, or a parameter left without
    one, is an error here (Triton would drop an unknown name silently)."""
    args = dict(scalars)
    for group in groups:
        named = group.args()
        if named.keys() & args.keys():
            raise TypeError(f"arguments {sorted(named.keys() & args.keys())} given twice")
        args.update(named)
    fn = jit_function(kernel)
    if set(args) != set(fn.arg_names):
        raise TypeError(f"{fn.arg_names[0]}...: arguments {sorted(set(args) ^ set(fn.arg_names))} do not match "
                        "the kernel's parameters")
    return args


def jit_function(kernel: Any) -> Any:
    """The ``triton.jit`` function of a kernel (wrap_triton's wrapper holds the kernel it wraps)."""
    return getattr(kernel, "kernel", None) or kernel


def _run(kernel: Any, grid: tuple[int, int, int], *groups: Strided, **scalars: Any) -> None:
    """``kernel`` over ``grid`` with its ``arguments``."""
    args = arguments(kernel, *groups, **scalars)
    if any(isinstance(t, Tensor) and t.is_meta for t in args.values()):
        return  # meta tensors (a trace of shapes alone) hold no data: the arguments are checked, nothing is launched
    kernel[grid](**args)


def _launch(img: Tensor, flow: Tensor, kernel: Any) -> Tensor:
    n, c, h, w = img.shape
    if tuple(flow.shape) != (n, 2, h, w):
        raise ValueError(f"flow of shape {tuple(flow.shape)} for an image of shape {tuple(img.shape)}")
    out = torch.empty_like(img)
    block_c = min(triton.next_power_of_2(c), 32)
    block_p = min(max(2048 // block_c, 32), 256, triton.next_power_of_2(w))
    # Grid dimensions 1 and 2 allow 65535 rows and images.
    grid = (triton.cdiv(w, block_p) * triton.cdiv(c, block_c), h, n)
    _run(kernel, grid, Strided.of("img", img=img), Strided.of("flow", flow=flow), Strided.of("out", out=out),
         C=c, H=h, W=w, BLOCK_P=block_p, BLOCK_C=block_c)
    return out


@dataclass(frozen=True)
class _StepCandidate:
    """A candidate as the flow step kernel takes it: its block output ``t``, scale factor ``k`` (scale times the
    head's factor: 2 for the paper / 4.0 blocks, see ``rife.variants.Variant.head_factor``) and
    running flow ``pf`` and mask ``pm``, each named with the candidate's suffix (``ta``, ``pfa``, ...)."""

    out: Tensor
    prev_flow: Tensor
    prev_mask: Tensor
    k: float
    size: tuple[int, int]  # the output's size as the head's pixel shuffles would make it

    @classmethod
    def of(cls, c: Candidate, img0: Tensor, form: StepForm) -> "_StepCandidate":
        out, scale, prev_flow, prev_mask = c
        n, channels, h, w = out.shape
        k = scale * form.head_factor
        directions = 2 if form.ensemble else 1
        grow = 2 ** form.phases  # the pixel shuffles still to come: each quarters the channels, doubles the size
        if channels < 5 * grow * grow or (int(h * grow * k), int(w * grow * k)) != tuple(img0.shape[2:]) \
                or n != img0.shape[0] * directions:
            raise ValueError(f"block output {tuple(out.shape)} ({form.phases} pixel shuffles to come) at scale "
                             f"{scale} for frames {tuple(img0.shape)}")
        # Arguments the kernel does not touch get ``out``, which it only reads.
        pf, pm = (prev_flow, prev_mask) if prev_flow is not None else (out, out)
        return cls(out, pf, cast(Tensor, pm), k, (h * grow, w * grow))  # a running flow comes with its mask

    def groups(self, x: str) -> tuple[Strided, ...]:
        # The keyword arguments are tensors alone (mypy cannot tell that none of them is ``dims``).
        return (Strided.of(f"t{x}", **{f"t{x}": self.out}),  # type: ignore[arg-type]
                Strided.of(f"pf{x}", **{f"pf{x}": self.prev_flow}),  # type: ignore[arg-type]
                Strided.of(f"pm{x}", "nhw", **{f"pm{x}": self.prev_mask}))

    def scalars(self, x: str) -> dict[str, Any]:
        h, w = self.size  # the kernel resizes from the size the shuffles would give
        return {f"h{x}": h, f"w{x}": w, f"inv_k{x}": 1.0 / self.k, f"k{x}": self.k}


def _launch_step(a: Candidate, b: Candidate | None, take_b: Tensor | None, img0: Tensor, img1: Tensor, *,
                 measure: bool, warp_frames: bool, blend: bool, kernel: Any, form: StepForm | None = None
                 ) -> tuple[Tensor | None, ...]:
    form = form or StepForm()
    out, _, prev_flow, _ = a
    n = img0.shape[0]
    if form.ensemble and (measure or b is not None):
        raise ValueError("the ensemble's flow step has one candidate and no peaks")
    H, W = img0.shape[2:]
    if img1.stride() != img0.stride() or (b is not None and (b[2] is None) != (prev_flow is None)):
        raise ValueError("the flow step's frames or candidates do not match")
    cand_a = _StepCandidate.of(a, img0, form)
    cand_b = _StepCandidate.of(b, img0, form) if b is not None else cand_a
    dtype = out.dtype if prev_flow is None else torch.promote_types(out.dtype, prev_flow.dtype)
    if form.fp32_state:
        dtype = torch.float32
    fmt = memory_format_of(img0)
    state = not blend
    stored_n = 2 * n if form.ensemble else n  # the ensemble's state: both directions' (``StepForm``)
    flow = torch.empty((stored_n, 4, H, W), dtype=dtype, device=out.device, memory_format=fmt) if state else None
    mask = torch.empty((stored_n, 1, H, W), dtype=dtype, device=out.device, memory_format=fmt) if state else None
    frame = torch.empty_like(img0) if blend else None
    warped = (torch.empty_like(img0), torch.empty_like(img1)) if state and warp_frames else (None, None)
    peaks = torch.zeros((n, 2), dtype=torch.float32, device=out.device) if measure else None
    if state:
        stored = (Strided.of("f", flow=cast(Tensor, flow)), Strided.of("m", "nhw", mask=cast(Tensor, mask)))
    else:
        # Only the blended frame is stored: the state's arguments are placeholders the kernel does not touch, the
        # flow one in the dtype of the state it would be (``dtype``), the kernel's rounding.
        stored = (Strided("f", {"flow": torch.empty((1,), dtype=dtype, device=out.device)}, (0, 0, 0, 0)),
                  Strided("m", {"mask": img0}, (0, 0, 0, 0), "nhw"))
    o0, o1 = (frame, frame) if blend else (warped if warp_frames else (img0, img0))
    block_p = min(256, triton.next_power_of_2(W))
    grid = (triton.cdiv(W, block_p), H, n)
    # Arguments the kernel does not touch get ``img0``, which it only reads; the warped frames and the blended one
    # have the frames' strides.
    _run(kernel, grid, *cand_a.groups("a"), *cand_b.groups("b"), Strided.of("img", img0=img0, img1=img1), *stored,
         Strided("o", {"out0": cast(Tensor, o0), "out1": cast(Tensor, o1)}, img0.stride()),
         take_b=take_b if take_b is not None else img0, peaks=peaks if measure else img0,
         **cand_a.scalars("a"), **cand_b.scalars("b"), H=H, W=W, N=n,
         HAS_PREV=prev_flow is not None, HAS_B=b is not None, MEASURE=measure, WARP=warp_frames, BLEND=blend,
         MASK_ADDS=form.mask_adds, ENSEMBLE=form.ensemble, PHASES=form.phases, BLOCK_P=block_p)
    if blend:
        return (frame,)
    return flow, mask, *warped, peaks


def _feed_layout(names: tuple[str, ...], with_flow: bool) -> tuple[dict[str, int], int]:
    """The channel each input starts at in a block input (the kernel's ``AT_*``, -1 for one it does not read),
    and the channels used."""
    at, used = {}, 0
    for name in names:
        at[name] = used
        used += CHANNELS_PER_INPUT[name]
    if with_flow:
        at["flow"] = used
        used += FLOW_CHANNELS
    places = ("img0", "img1", "warped0", "warped1", "timestep", "mask", "flow")
    return {f"AT_{place.upper()}": at.get(place, -1) for place in places}, used


def _launch_feed(names: tuple[str, ...], channels: int, scale: float, img0: Tensor, img1: Tensor,
                 t_plane: Tensor | None, flow: Tensor | None, mask: Tensor | None, *, kernel: Any) -> Tensor:
    n, _, H, W = img0.shape
    at, used = _feed_layout(names, flow is not None)
    needs_state = {"warped0", "warped1", "mask"} & set(names)
    if used > channels or (needs_state and flow is None) or ("timestep" in names and t_plane is None) \
            or img1.stride() != img0.stride():
        raise ValueError(f"block input {names} of {channels} channels for frames {tuple(img0.shape)}")
    if channels > 32:
        raise ValueError(f"block input of {channels} channels: the feed kernel stores at most 32")
    # F.interpolate's sizes and source scale for scale_factor=1 / scale (recompute_scale_factor=False).
    factor = 1.0 / scale
    h, w = (H, W) if scale == 1 else (math.floor(H * factor), math.floor(W * factor))
    sources = [t for t in (img0, t_plane if "timestep" in names else None, flow, mask if needs_state else None)
               if t is not None]
    dtype = functools.reduce(torch.promote_types, (t.dtype for t in sources))
    feed = torch.empty((n, channels, h, w), dtype=dtype, device=img0.device, memory_format=memory_format_of(img0))
    # Arguments the kernel does not touch get ``img0``, which it only reads.
    tp = cast(Tensor, t_plane) if "timestep" in names else img0  # checked above
    fl = flow if flow is not None else img0
    ms = cast(Tensor, mask) if needs_state else img0  # a state has its mask
    block_p = min(128, triton.next_power_of_2(w))
    grid = (triton.cdiv(w, block_p), h, n)
    _run(kernel, grid, Strided.of("img", img0=img0, img1=img1), Strided.of("t", "nhw", tp=tp),
         Strided.of("f", flow=fl), Strided.of("m", "nhw", mask=ms), Strided.of("o", feed=feed),
         H=H, W=W, w=w, inv_s=1.0 / factor, scale=scale, **at, CHANNELS=channels, TAPS=1 if scale == 1 else 4,
         BLOCK_P=block_p)
    return feed


MAX_GROUPS = 6


def _stored_size(g: GatherGroup) -> tuple[int, int]:
    """The size of the source ``g`` stands for: its own, or upsampled (``GatherGroup.upsampled``, after its pixel
    shuffles)."""
    h, w = g.size
    return math.floor(h * g.upsampled), math.floor(w * g.upsampled)


def _launch_gather(groups: Sequence[GatherGroup], out: Tensor, factor: float, flow: Tensor | None, kernel: Any,
                   zero_from: int | None) -> None:
    n, c_out, h, w = out.shape
    H, W = _stored_size(groups[0])
    if not 0 < len(groups) <= MAX_GROUPS or (h, w) != (math.floor(H * factor), math.floor(W * factor)):
        raise ValueError(f"{len(groups)} groups (1 to {MAX_GROUPS}) resized by {factor} into {tuple(out.shape)}")
    upsampled = {(g.upsampled, g.size, g.phases) for g in groups if g.upsampled != 1}
    if len(upsampled) > 1:
        raise ValueError(f"upsampled groups of more than one source size, factor or phases: {sorted(upsampled)}")
    for g in groups:
        pn, c = g.src.shape[0], g.channels
        if pn != n * g.pairs or _stored_size(g) != (H, W) or g.at + g.pairs * c > c_out or c > 32 or \
                (g.warped and (g.upsampled != 1 or flow is None or tuple(flow.shape) != (n, 2 * g.pairs, H, W))) \
                or (g.phases and (g.upsampled == 1 or c * 4 ** g.phases != g.src.shape[1])):
            raise ValueError(f"a group of {tuple(g.src.shape)} at channel {g.at} ({g.pairs} part(s), warped: "
                             f"{g.warped}, upsampled {g.upsampled}, {g.phases} pixel shuffles to come) for "
                             f"{tuple(out.shape)} from {(H, W)}, flow {None if flow is None else tuple(flow.shape)}")
    up = next((g for g in groups if g.upsampled != 1), None)
    slots = [*groups, *[GatherGroup(out, 0)] * (MAX_GROUPS - len(groups))]  # unused slots: never read
    per_slot: dict[str, Any] = {}
    for k, g in enumerate(slots):
        c = g.channels if k < len(groups) else 1
        per_slot |= {f"div{k}": float(g.divisor), f"C{k}": c, f"AT{k}": g.at, f"WARP{k}": g.warped,
                     f"PAIRS{k}": g.pairs, f"BC{k}": triton.next_power_of_2(c), f"UP{k}": g.upsampled != 1}
    zeros = 0 if zero_from is None else c_out - zero_from
    if zero_from is not None and any(g.at + g.pairs * g.channels > zero_from for g in groups):
        raise ValueError(f"zero channels {zero_from} to {c_out}: after every group's")
    block_p = min(64, triton.next_power_of_2(w))
    grid = (len(groups) * triton.cdiv(w, block_p), h, n)
    uH, uW = up.size if up else (1, 1)
    # Without a warped group the kernel reads no flow: its arguments get ``out``.
    _run(kernel, grid, Strided.of("f", flow=flow if flow is not None else out), Strided.of("o", out=out),
         *(Strided.of(f"s{k}", **{f"src{k}": g.src}) for k, g in enumerate(slots)),  # type: ignore[arg-type]
         H=H, W=W, w=w, N=n, inv_s=1.0 / factor, G=len(groups), ZERO_AT=zero_from or 0, ZEROS=zeros,
         BLOCK_Z=triton.next_power_of_2(max(zeros, 1)),
         TAPS=1 if factor == 1 else 4, BLOCK_P=block_p,
         inv_up=1.0 / (up.upsampled if up else 1.0), uH=uH, uW=uW, UP_PHASES=up.phases if up else 0,
         **per_slot)


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


def step(out: Tensor, scale: float, prev_flow: Tensor | None, prev_mask: Tensor | None, img0: Tensor, img1: Tensor,
         measure: bool, warp_frames: bool = True, form: StepForm | None = None
         ) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None, Tensor | None]:
    """``rife.ifnet.FlowStep`` in one kernel: (flow, mask, warped0, warped1, peaks); peaks are None unless
    ``measure``, the warped frames None unless ``warp_frames``; ``form``: another family's step (``StepForm``)."""
    _require_triton()
    results = _launch_step(Candidate(out, scale, prev_flow, prev_mask), None, None, img0, img1, measure=measure,
                           warp_frames=warp_frames, blend=False, kernel=_step_kernel, form=form)
    return cast("tuple[Tensor, Tensor, Tensor | None, Tensor | None, Tensor | None]", results)  # the state's, stored


def settle(take_b: Tensor | None, a: Candidate, b: Candidate | None, img0: Tensor, img1: Tensor,
           blend: bool, form: StepForm | None = None) -> tuple[Tensor, ...]:
    """The final flow step of two candidates at once (``rife.ifnet.FlowStep.settle``): per frame, candidate ``b``
    where ``take_b`` (N booleans) is true, else ``a``, computing only the chosen one. Returns (flow, mask, warped0,
    warped1), or with ``blend`` (the frame, ) the warped frames blended by the mask (``rife.ifnet.blend``)."""
    _require_triton()
    if (b is None) != (take_b is None):
        raise ValueError("a second candidate needs the choice of each frame, and only it")
    results = _launch_step(a, b, take_b, img0, img1, measure=False, warp_frames=True, blend=blend,
                           kernel=_step_kernel, form=form)
    return cast("tuple[Tensor, ...]", results if blend else results[:4])  # every result computed


def feed(names: tuple[str, ...], channels: int, scale: float, img0: Tensor, img1: Tensor, t_plane: Tensor | None,
         flow: Tensor | None, mask: Tensor | None) -> Tensor:
    """``rife.ifnet.BlockFeed`` in one kernel: a block's input built from the frames, the timestep plane and the
    running flow and mask, warping the frames it needs at the pixels the resize reads (in fp32, each warped value
    rounded to the frames' dtype as a stored warp would be)."""
    _require_triton()
    return _launch_feed(names, channels, scale, img0, img1, t_plane, flow, mask, kernel=_feed_kernel)


def gather(groups: Sequence[GatherGroup], out: Tensor, factor: float, flow: Tensor | None = None,
           zero_from: int | None = None) -> Tensor:
    """Writes into ``out`` (N, C, h, w) each of ``groups`` (``rife.kernels.GatherGroup``: up to six) resized bilinearly
    by ``factor`` (``rife.layers.resize``: align_corners=False, scale-factor semantics); a warped group's source pixels
    that the resize reads are first warped (``rife.layers.Warper`` with fp32) by ``flow`` (N, 2 * pairs, H, W), channels
    2k and 2k + 1 for part k of a pair, each warped value rounded to the source's dtype as a stored warp would be.
    Source frame k * N + i goes to sample i: both frames of a pair, or both frames' features, in one group. Channels of
    ``out`` no group writes are left as they are, but those from ``zero_from`` on (after the groups') are set to zero.
    Returns ``out``."""
    _require_triton()
    _launch_gather(groups, out, factor, flow, _gather_kernel, zero_from)
    return out
