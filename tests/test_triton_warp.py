"""rife.triton_warp against PyTorch (grid_sample, rife.ifnet.FlowStep): on CPU through Triton's interpreter, on CUDA
where there is one."""

from __future__ import annotations

import importlib.util
import itertools
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

ROOT = Path(__file__).resolve().parent.parent

# 80 channels take three channel tiles; sizes of 1 divide by zero in the reference, which then samples index 0.
SHAPES = [(2, 3, 5, 17), (1, 16, 6, 11), (1, 16, 1, 9), (1, 3, 7, 1), (1, 3, 1, 1), (1, 80, 3, 5)]
# fp16 works under the interpreter too: it computes with numpy, which has float16 (bf16 it emulates).
DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def reference_warp(img: Tensor, flow: Tensor) -> Tensor:
    """rife.layers.Warper with fp32=True."""
    n, _, h, w = flow.shape
    f = flow.float()
    xs = torch.linspace(-1.0, 1.0, w, device=flow.device, dtype=torch.float32).view(1, 1, 1, w).expand(n, 1, h, w)
    ys = torch.linspace(-1.0, 1.0, h, device=flow.device, dtype=torch.float32).view(1, 1, h, 1).expand(n, 1, h, w)
    grid = torch.cat([xs, ys], 1) + torch.cat([f[:, 0:1] / ((w - 1.0) / 2.0), f[:, 1:2] / ((h - 1.0) / 2.0)], 1)
    out = F.grid_sample(img.float(), grid.permute(0, 2, 3, 1), mode="bilinear", padding_mode="border",
                        align_corners=True)
    return out.to(img.dtype)


def make_inputs(shape: tuple[int, int, int, int], dtype: torch.dtype, channels_last: bool, device: str,
                reach: float) -> tuple[Tensor, Tensor]:
    """A random image and a flow of up to ``reach`` pixels, sliced from a 4-channel tensor as IFNet's flows are."""
    n, c, h, w = shape
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    img = torch.randn(shape, device=device).to(dtype).contiguous(memory_format=fmt)
    flow4 = ((torch.rand(n, 4, h, w, device=device) * 2 - 1) * reach).to(dtype).contiguous(memory_format=fmt)
    return img, flow4[:, 2:4]


def assert_matches(out: Tensor, ref: Tensor, img: Tensor, where: str, atol: float = 1e-5) -> None:
    assert out.dtype == img.dtype and out.shape == img.shape and out.stride() == img.stride(), where
    # The fp32 results differ by rounding; a half result may then round one ulp away.
    rtol = 0.0 if img.dtype == torch.float32 else torch.finfo(img.dtype).eps
    torch.testing.assert_close(out.float(), ref.float(), rtol=rtol, atol=atol, msg=lambda m: f"{where}: {m}")


def coordinate_atol(img: Tensor) -> float:
    """How much source coordinates a few fp32 ulps apart can change the result.

    A coordinate near W has an ulp of about W * 2**-23, and the kernel rounds differently from PyTorch (fused
    multiply-adds), so on a noise image as wide as a video frame the results differ by more than 1e-5."""
    x = img.float()
    steepest = torch.cat([x.diff(dim=-1).flatten(), x.diff(dim=-2).flatten(), x.new_zeros(1)]).abs().max().item()
    return max(1e-5, 4 * torch.finfo(torch.float32).eps * max(img.shape[2:]) * steepest)


def op_runs_interpreted(fused_warp: Callable[[Tensor, Tensor], Tensor]) -> bool:
    """Whether rife::warp can run the interpreter's kernel in this torch.

    torch.library.wrap_triton accepts it since pytorch/pytorch#185597 (in torch 2.13); older versions, such as
    2.11, raise "wrap_triton only works on functions annotated with triton.jit", and only ``warp`` is checked."""
    try:
        fused_warp(*make_inputs((1, 1, 2, 2), torch.float32, False, "cpu", reach=1.0))
    except RuntimeError as error:
        if "wrap_triton only works" not in str(error):
            raise
        return False
    return True


# (frames, height, width, block scale): the block output is at 1 / (2 * scale) of the frame; 0.5 is a user scale of 2.
STEP_SHAPES = [(1, 16, 24, 1.0), (2, 32, 16, 4.0), (1, 8, 8, 0.5), (1, 64, 96, 8.0)]


def step_inputs(shape: tuple[int, int, int, float], dtype: torch.dtype, channels_last: bool, with_prev: bool,
                device: str) -> tuple[Tensor, float, Tensor | None, Tensor | None, Tensor, Tensor]:
    """A block output of 8 channels (5 used, as the widened fast network has), frames, and a previous state."""
    n, h, w, scale = shape
    fmt = torch.channels_last if channels_last else torch.contiguous_format

    def make(c: int, hh: int, ww: int, spread: float) -> Tensor:
        return (torch.randn(n, c, hh, ww, device=device) * spread).to(dtype).contiguous(memory_format=fmt)

    small = (int(h / (2 * scale)), int(w / (2 * scale)))
    prev = (make(4, h, w, 4.0), make(1, h, w, 1.0)) if with_prev else (None, None)
    return make(8, *small, 3.0), scale, *prev, make(3, h, w, 1.0), make(3, h, w, 1.0)


def reference_step(out: Tensor, scale: float, prev_flow: Tensor | None, prev_mask: Tensor | None, img0: Tensor,
                   img1: Tensor, measure: bool) -> tuple[Tensor, ...]:
    """rife.ifnet.FlowStep in fp32 with fp32 warps."""
    from rife.ifnet import FlowState, FlowStep
    from rife.layers import Warper

    warp = Warper(fp32=True)
    state = None if prev_flow is None else FlowState(prev_flow.float(), prev_mask.float(), img0, img1)
    new, peaks = FlowStep(warp)(out.float(), scale, state, img0.float(), img1.float(), measure)
    return (*new, peaks)


def assert_step_matches(got: tuple[Tensor, ...], ref: tuple[Tensor, ...], img0: Tensor, img1: Tensor, measure: bool,
                        where: str) -> None:
    flow, mask, warped0, warped1, peaks = got
    assert flow.dtype == img0.dtype and flow.shape == (img0.shape[0], 4, *img0.shape[2:]), where
    assert warped0.stride() == img0.stride() and warped1.shape == img0.shape, where
    for name, a, b in zip(("flow", "mask"), (flow, mask), ref[:2], strict=True):
        # fp32 arithmetic rounded once to the dtype; the reference rounds the same numbers (up to fused adds).
        tol = 1e-5 if a.dtype == torch.float32 else torch.finfo(a.dtype).eps * 2
        torch.testing.assert_close(a.float(), b, rtol=tol, atol=tol, msg=lambda m, n=name: f"{where} {n}: {m}")
    # The kernel warps by the flow it stored (rounded to the dtype), as separate kernels would.
    assert_matches(warped0, reference_warp(img0, flow[:, 0:2]), img0, f"{where} warped0", coordinate_atol(img0))
    assert_matches(warped1, reference_warp(img1, flow[:, 2:4]), img1, f"{where} warped1", coordinate_atol(img1))
    if measure:
        torch.testing.assert_close(peaks, ref[4], rtol=1e-5, atol=1e-5, msg=lambda m: f"{where} peaks: {m}")


def settle_inputs(shape: tuple[int, int, int, float], dtype: torch.dtype, with_prev: bool, device: str) -> tuple:
    """Two candidates for the same frames (the second at twice the scale, as the retried pass) and the choice of
    each frame: the first frame takes the second candidate."""
    out_a, scale, *prev_a, img0, img1 = step_inputs(shape, dtype, True, with_prev, device)
    out_b, scale_b, *prev_b, _, _ = step_inputs((*shape[:3], shape[3] * 2), dtype, True, with_prev, device)
    take_b = torch.arange(shape[0], device=device) == 0
    return take_b, (out_a, scale, *prev_a), (out_b, scale_b, *prev_b), img0, img1


def reference_settle(take_b: Tensor, a: tuple, b: tuple, img0: Tensor, img1: Tensor) -> tuple[Tensor, ...]:
    """rife.ifnet.FlowStep.settle in fp32 with fp32 warps."""
    from rife.ifnet import FlowState, FlowStep, Pending
    from rife.layers import Warper

    warp = Warper(fp32=True)

    def pending(c: tuple) -> Pending:
        out, scale, flow, mask = c
        return Pending(None if flow is None else FlowState(flow.float(), mask.float(), None, None), out.float(), scale)

    return FlowStep(warp).settle(take_b, pending(a), pending(b), img0.float(), img1.float())


def assert_settle_matches(take_b: Tensor, a: tuple, b: tuple, img0: Tensor, img1: Tensor, where: str) -> None:
    from rife.ifnet import FlowState, blend
    from rife.triton_warp import settle

    ref = reference_settle(take_b, a, b, img0, img1)
    got = settle(take_b, a, b, img0, img1, blend=False)
    assert_step_matches((*got, None), (*ref, None), img0, img1, False, where)
    frame = settle(take_b, a, b, img0, img1, blend=True)[0]
    # The kernel blends in fp32 the warped frames and mask rounded to their dtype, as stored ones would be.
    ref_frame = blend(FlowState(*(t.float() for t in got))).to(img0.dtype)
    assert_matches(frame, ref_frame, img0, f"{where} blend", coordinate_atol(img0))


def shuffled(raw: Tensor, phases: int) -> Tensor:
    """``raw`` through ``phases`` pixel shuffles by 2, in its memory format, as a head would store it."""
    out = raw
    for _ in range(phases):
        out = F.pixel_shuffle(out, 2)
    return out.contiguous(memory_format=torch.channels_last if raw.is_contiguous(
        memory_format=torch.channels_last) and not raw.is_contiguous() else torch.contiguous_format)


# (phases, frames, height, width, block scale, dtype, channels_last, previous state, ensemble): one shuffle after a
# transposed convolution's head (head factor 2), two after a shuffled head's (head factor 1).
UNSHUFFLED_CASES = [(1, 2, 32, 48, 2.0, torch.float16, True, True, False),
                    (2, 1, 32, 64, 4.0, torch.float32, False, False, False),
                    (2, 1, 32, 48, 2.0, torch.float16, True, True, True)]


def check_unshuffled_reads(device: str, cases: list[tuple] = UNSHUFFLED_CASES) -> None:
    """The step and settle kernels reading a block output before its last pixel shuffles (``StepForm.phases``) give,
    bit for bit, what they give reading the shuffled output: the state, the warped frames, the retry's peaks, the
    blend of two candidates, the ensemble's averaged state."""
    from rife.kernels import Candidate, StepForm
    from rife.triton_warp import settle, step

    for phases, n, h, w, scale, dtype, channels_last, with_prev, ensemble in cases:
        where = f"unshuffled {phases} {(n, h, w, scale)} {dtype} prev={with_prev} ensemble={ensemble}"
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        head_factor = 2 if phases == 1 else 1
        small = (int(h / (scale * head_factor)) >> phases, int(w / (scale * head_factor)) >> phases)
        directions = 2 if ensemble else 1
        raw = (torch.randn(directions * n, 8 * 4 ** phases, *small, device=device) * 3).to(dtype).contiguous(
            memory_format=fmt)
        img0, img1 = (torch.rand(n, 3, h, w, device=device).to(dtype).contiguous(memory_format=fmt) for _ in "01")
        prev = (None, None)
        if with_prev:
            prev = ((torch.randn(directions * n, 4, h, w, device=device) * 4).to(dtype).contiguous(memory_format=fmt),
                    torch.randn(directions * n, 1, h, w, device=device).to(dtype).contiguous(memory_format=fmt))
        form = StepForm(head_factor=head_factor, ensemble=ensemble)
        read = StepForm(head_factor=head_factor, ensemble=ensemble, phases=phases)
        out = shuffled(raw, phases)
        measure = not ensemble  # the ensemble's step measures no peaks
        want = step(out, scale, *prev, img0, img1, measure, warp_frames=not ensemble, form=form)
        got = step(raw, scale, *prev, img0, img1, measure, warp_frames=not ensemble, form=read)
        assert all(a is b is None or torch.equal(a, b) for a, b in zip(want, got, strict=True)), where
        if not ensemble:  # the second candidate: another block output at twice the scale, taken by frame 0
            raw_b = (torch.randn_like(raw.float()) * 3).to(dtype).contiguous(memory_format=fmt)
            raw_b = raw_b[..., : max(1, small[0] // 2), : max(1, small[1] // 2)].contiguous(memory_format=fmt)
            take_b = torch.arange(n, device=device) == 0
            a, a_raw = Candidate(out, scale, *prev), Candidate(raw, scale, *prev)
            b, b_raw = Candidate(shuffled(raw_b, phases), scale * 2, *prev), Candidate(raw_b, scale * 2, *prev)
            for blend in (False, True):
                want = settle(take_b, a, b, img0, img1, blend=blend, form=form)
                got = settle(take_b, a_raw, b_raw, img0, img1, blend=blend, form=read)
                assert all(torch.equal(x, y) for x, y in zip(want, got, strict=True)), f"{where} settle {blend}"
        with pytest.raises(ValueError, match="pixel shuffles to come"):  # the shuffled output read as unshuffled
            step(out, scale, *prev, img0, img1, False, warp_frames=False, form=read)


# (frames, height, width, block scale); 0.5 is a user scale of 2 (the block input is then larger than the frame).
FEED_SHAPES = [(1, 16, 24, 1.0), (2, 32, 16, 4.0), (1, 8, 12, 0.5), (1, 24, 40, 2.0)]
# The blocks' inputs of both variants: the first block's, then the later blocks' (with the running flow).
FEED_NAMES = [(("img0", "img1", "timestep"), False), (("warped0", "warped1", "timestep", "mask"), True),
              (("img0", "img1"), False), (("img0", "img1", "warped0", "warped1", "mask"), True)]


def feed_inputs(shape: tuple[int, int, int, float], dtype: torch.dtype, channels_last: bool, with_state: bool,
                device: str) -> tuple[Tensor, Tensor, Tensor, Tensor | None, Tensor | None]:
    """Frames, a timestep plane expanded from one value per frame (as IFNet makes it), and a running flow of a
    few pixels and raw mask."""
    n, h, w, _ = shape
    fmt = torch.channels_last if channels_last else torch.contiguous_format

    def make(c: int, spread: float) -> Tensor:
        return (torch.randn(n, c, h, w, device=device) * spread).to(dtype).contiguous(memory_format=fmt)

    t_plane = torch.rand(n, device=device).to(dtype).view(n, 1, 1, 1).expand(n, 1, h, w)
    state = (make(4, 3.0), make(1, 1.0)) if with_state else (None, None)
    return make(3, 1.0), make(3, 1.0), t_plane, *state


def reference_feed(names: tuple[str, ...], channels: int, scale: float, img0: Tensor, img1: Tensor, t_plane: Tensor,
                   flow: Tensor | None, mask: Tensor | None) -> Tensor:
    """rife.ifnet.BlockFeed with fp32 warps, warping the frames itself (the state has none)."""
    from rife.ifnet import BlockFeed, FlowState
    from rife.layers import Warper

    warp = Warper(fp32=True)
    state = None if flow is None else FlowState(flow, mask, None, None)
    return BlockFeed(warp)(names, channels, scale, img0, img1, t_plane, state)


def assert_feed_matches(got: Tensor, ref: Tensor, img0: Tensor, where: str) -> None:
    assert got.shape == ref.shape and got.dtype == ref.dtype, where
    assert got.is_contiguous(memory_format=torch.channels_last) == img0.is_contiguous(
        memory_format=torch.channels_last), where
    # fp32 arithmetic rounded once to the dtype, where the reference rounds the resize and the division apart.
    tol = 1e-5 if got.dtype == torch.float32 else torch.finfo(got.dtype).eps * 4
    torch.testing.assert_close(got.float(), ref.float(), rtol=tol, atol=max(tol, coordinate_atol(img0)),
                               msg=lambda m: f"{where}: {m}")


def feed_channels(names: tuple[str, ...], with_state: bool) -> int:
    """The block input's width with zero channels up to a multiple of 8, as the fast path pads it."""
    from rife.layers import round_up
    from rife.variants import CHANNELS_PER_INPUT, FLOW_CHANNELS

    return round_up(sum(CHANNELS_PER_INPUT[n] for n in names) + (FLOW_CHANNELS if with_state else 0), 8)


def feed_cases() -> list[tuple]:
    """Every shape with every block's input, in fp32 NCHW and fp16 channels_last (the interpreter is slow)."""
    return [(shape, names, *kind) for shape, names in itertools.product(FEED_SHAPES, FEED_NAMES)
            for kind in ((torch.float32, False), (torch.float16, True))]


def interpreter_checks() -> None:
    """Run in a child process with TRITON_INTERPRET=1, where the kernel runs on CPU tensors."""
    from rife.triton_warp import feed, fused_warp, step, warp

    torch.manual_seed(0)
    op_ok = op_runs_interpreted(fused_warp)
    for shape, dtype, channels_last in itertools.product(SHAPES, DTYPES, (False, True)):
        # Flow of up to 1.5 times the size: many samples fall outside and are clipped to the border.
        img, flow = make_inputs(shape, dtype, channels_last, "cpu", reach=1.5 * max(shape[2:]))
        ref = reference_warp(img, flow)
        where = f"{shape} {dtype} channels_last={channels_last}"
        assert_matches(warp(img, flow), ref, img, f"warp {where}")
        # The op runs the same kernel: every dtype and layout of one shape shows that it is wired through.
        if op_ok and shape == SHAPES[0]:
            assert_matches(fused_warp(img, flow), ref, img, f"fused_warp {where}")
    for shape, dtype, channels_last, with_prev, measure in itertools.product(
            STEP_SHAPES, (torch.float32, torch.float16), (False, True), (False, True), (False, True)):
        args = step_inputs(shape, dtype, channels_last, with_prev, "cpu")
        where = f"step {shape} {dtype} channels_last={channels_last} prev={with_prev} measure={measure}"
        got = step(*args, measure)
        assert_step_matches(got, reference_step(*args, measure), args[4], args[5], measure, where)
        if not measure:  # without the warps: the same flow and mask
            flow, mask, warped0, warped1, _ = step(*args, measure, warp_frames=False)
            assert warped0 is None and warped1 is None and torch.equal(flow, got[0]) and torch.equal(mask, got[1])
    for shape, dtype, with_prev in itertools.product(((2, 16, 24, 1.0), (2, 32, 16, 2.0)), (torch.float32,
                                                                                          torch.float16), (False, True)):
        assert_settle_matches(*settle_inputs(shape, dtype, with_prev, "cpu"), f"settle {shape} {dtype} {with_prev}")
    check_unshuffled_reads("cpu")
    for shape, (names, with_state), dtype, channels_last in feed_cases():
        args = feed_inputs(shape, dtype, channels_last, with_state, "cpu")
        where = f"feed {shape} {names} {dtype} channels_last={channels_last}"
        c = feed_channels(names, with_state)
        assert_feed_matches(feed(names, c, shape[3], *args), reference_feed(names, c, shape[3], *args), args[0], where)


@pytest.mark.slow
def test_interpreter_matches_reference() -> None:
    pytest.importorskip("triton", reason="rife.triton_warp needs Triton")
    # The interpreter must be chosen before triton is imported, so the checks run in a fresh process.
    proc = subprocess.run([sys.executable, "-m", "tests.test_triton_warp"], env={**os.environ, "TRITON_INTERPRET": "1"}, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_imports_without_triton(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "triton", None)
    monkeypatch.setitem(sys.modules, "triton.language", None)
    spec = importlib.util.spec_from_file_location("triton_warp_without_triton", ROOT / "rife" / "triton_warp.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert not module.available()
    img, flow = make_inputs((1, 3, 4, 5), torch.float32, False, "cpu", reach=2.0)
    with pytest.raises(RuntimeError, match="needs Triton"):
        module.warp(img, flow)


@pytest.mark.cuda
def test_cuda_matches_reference_and_compiles() -> None:
    pytest.importorskip("triton", reason="rife.triton_warp needs Triton")
    from torch._dynamo.utils import counters

    from rife.triton_warp import feed, fused_warp, step, warp

    torch.manual_seed(0)
    # The small shapes check the compiled kernel where Triton turns sizes or strides of 1 into constants.
    cases = [(shape, torch.float32, channels_last, 1.5 * max(shape[2:]))
             for shape, channels_last in itertools.product(SHAPES, (False, True))]
    cases += [((1, 3, 768, 1280), torch.float16, True, 40.0), ((2, 64, 192, 320), torch.bfloat16, False, 40.0),
              ((1, 16, 96, 160), torch.float32, True, 40.0)]
    for shape, dtype, channels_last, reach in cases:
        img, flow = make_inputs(shape, dtype, channels_last, "cuda", reach)
        out = warp(img, flow)
        where = f"{shape} {dtype} channels_last={channels_last}"
        assert_matches(out, reference_warp(img, flow), img, where, coordinate_atol(img))
        assert torch.equal(fused_warp(img, flow), out)

    for shape, dtype, with_prev in (((1, 768, 1280, 8.0), torch.float16, False), ((1, 768, 1280, 1.0), torch.float16,
                                     True), ((2, 256, 448, 2.0), torch.bfloat16, True), ((1, 64, 96, 4.0), torch.float32, True)):
        args = step_inputs(shape, dtype, True, with_prev, "cuda")
        got = step(*args, True)
        assert_step_matches(got, reference_step(*args, True), args[4], args[5], True, f"step {shape} {dtype}")
    for shape, (names, with_state), dtype, channels_last in feed_cases():
        args = feed_inputs(shape, dtype, channels_last, with_state, "cuda")
        c = feed_channels(names, with_state)
        assert_feed_matches(feed(names, c, shape[3], *args), reference_feed(names, c, shape[3], *args), args[0],
                            f"feed {shape} {names} {dtype} channels_last={channels_last}")
    for shape in ((2, 768, 1280, 1.0), (2, 256, 448, 2.0)):
        assert_settle_matches(*settle_inputs(shape, torch.float16, True, "cuda"), f"settle {shape}")
    # At 720p, where the last blocks' heads are (v4.0's at scale 1, 4.25's at 1 and 2).
    check_unshuffled_reads("cuda", [*UNSHUFFLED_CASES, (1, 1, 768, 1280, 1.0, torch.float16, True, True, False),
                                    (2, 1, 768, 1280, 1.0, torch.float16, True, True, False),
                                    (2, 2, 768, 1280, 2.0, torch.float16, True, True, True)])
    for shape in ((1, 768, 1280, 2.0), (1, 768, 1280, 1.0), (2, 256, 448, 8.0)):  # the sizes of a 720p frame
        args = feed_inputs(shape, torch.float16, True, True, "cuda")
        names = FEED_NAMES[1][0]
        assert_feed_matches(feed(names, 16, shape[3], *args), reference_feed(names, 16, shape[3], *args), args[0],
                            f"feed {shape}")

    # The op stays in the graph (fullgraph) and in its CUDA graph (reduce-overhead); several calls replay it.
    counters.clear()
    compiled = torch.compile(lambda i, f: fused_warp(i, f) * 2, fullgraph=True, mode="reduce-overhead")
    for _ in range(3):
        got = compiled(img, flow).clone()
    assert torch.equal(got, out * 2)
    assert counters["inductor"]["cudagraph_skips"] == 0


if __name__ == "__main__":  # python -m tests.test_triton_warp
    interpreter_checks()
