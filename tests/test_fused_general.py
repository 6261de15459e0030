"""The general path's Triton pass (``rife.families.FusedPass``: v3.5+ and Practical-RIFE 4.2+ under ``fast`` on CUDA) against
the general path in PyTorch: the gather kernel on its own, and whole passes of the structures it runs, on CPU
through Triton's interpreter (in a child process, which must choose the interpreter before Triton is imported), on
CUDA where there is one."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import Tensor

from rife import registry
from rife.ifnet import IFNet
from rife.kernels import GatherGroup, Kernels
from rife.layers import Warper, resize

ROOT = Path(__file__).resolve().parent.parent
# One release of each structure the pass runs, with the ensemble or without: shuffle head, carried channels,
# 4-channel encoder, mask replaced (4.25); deconv head, mask accumulated, no encoder (4.6); the ensemble with an
# encoder and a timestep (4.15);
# 8-channel encoder, four blocks (4.22); zero start, two-stage split heads, the ensemble (v3.6). v3.8's adaptive scale
# has a check of its own (``check_adaptive_scale``).
RELEASES = (("4.25", False), ("4.6", False), ("4.22", False), ("v3.6", True), ("4.15", True))


def fused_kernels() -> Kernels:
    from rife import triton_warp

    return Kernels(gather=triton_warp.gather, step=triton_warp.step, settle=triton_warp.settle, feed=triton_warp.feed)


def gather_case(dtype: torch.dtype, factor: float, warped: bool, device: str) -> tuple[list[GatherGroup], Tensor,
                                                                                           Tensor, Tensor]:
    """Three groups (a warped or plain pair of 3 channels, one plain channel, a flow divided by 2) in a block
    input with one channel no group writes and three zeroed; the expected input from PyTorch's warp and resize."""
    n, h, w = 2, 16, 24
    torch.manual_seed(0)
    pair = torch.rand(2 * n, 3, h, w, device=device).to(dtype).contiguous(memory_format=torch.channels_last)
    plane = torch.rand(n, 1, h, w, device=device).to(dtype)
    flow = (torch.randn(n, 4, h, w, device=device) * 6).contiguous(memory_format=torch.channels_last)
    groups = [GatherGroup(pair, 0, warped, pairs=2), GatherGroup(plane, 6), GatherGroup(flow, 7, divisor=2.0)]
    size = (n, 15, math.floor(h * factor), math.floor(w * factor))
    out = torch.full(size, 7.0, dtype=dtype, device=device).contiguous(memory_format=torch.channels_last)
    warp = Warper(fp32=True)
    halves = [warp(pair[k * n:(k + 1) * n], flow[:, 2 * k:2 * k + 2]) if warped else pair[k * n:(k + 1) * n]
              for k in range(2)]
    parts = [resize(t.float(), factor) for t in (*halves, plane)] + [resize(flow, factor) / 2.0]
    # Channel 11 no group writes; 12-14 are zeroed (``zero_from``).
    expected = torch.cat([*parts, torch.full_like(parts[0][:, :1], 7.0), torch.zeros_like(parts[0])], 1)
    return groups, out, flow, expected


def amplified(release: str, ensemble: bool = False, seed: int = 0) -> IFNet:
    """The release's network with seeded random weights and its heads' last transposed convolutions scaled up:
    flows of several pixels, so that the warps move the frames."""
    torch.manual_seed(seed)
    net = IFNet(registry.get_variant(release), ensemble=ensemble).eval()
    with torch.no_grad():
        for block in net.blocks():
            head = block.lastconv if hasattr(block, "lastconv") else block.conv1
            last = [m for m in head.modules() if isinstance(m, torch.nn.ConvTranspose2d)][-1]
            for p in last.parameters():
                p.mul_(8)
    return net


def scene(device: str, h: int = 64, w: int = 128) -> tuple[Tensor, Tensor]:
    """A smooth random frame and the same frame moved by a few pixels."""
    torch.manual_seed(1)
    img0 = resize(torch.rand(1, 3, h // 8, w // 8), 8.0).to(device)
    return img0, img0.roll((2, 5), (2, 3)).mul(0.9).add(0.05)


def psnr(a: Tensor, b: Tensor) -> float:
    mse = (a.double() - b.double()).pow(2).mean().item()
    return math.inf if mse == 0 else -10 * math.log10(mse)


def check_gather(device: str) -> None:
    from rife import triton_warp

    for dtype, factor, warped in itertools.product((torch.float32, torch.float16), (1.0, 0.25, 4.0), (False, True)):
        groups, out, flow, expected = gather_case(dtype, factor, warped, device)
        got = triton_warp.gather(groups, out, factor, flow, zero_from=12).float()
        tol = 1e-5 if dtype == torch.float32 else 4e-3
        err = (got - expected).abs().max().item()
        assert err < tol, f"gather {dtype} factor {factor} warped={warped}: max error {err}"
    check_upsampled_gather(device)


def check_upsampled_gather(device: str) -> None:
    """A group that stands for its source resized up and stored (a block's carried channels at the frame's size)
    against PyTorch's two resizes with the stored rounding between them, beside a plain group."""
    from rife import triton_warp

    n, h, w = 2, 16, 24
    for dtype, up, factor in itertools.product((torch.float32, torch.float16), (4.0, 2.0), (1.0, 0.5, 0.25)):
        torch.manual_seed(3)
        src = torch.randn(n, 16, h, w, device=device).to(dtype).contiguous(memory_format=torch.channels_last)
        carried = src[:, 5:13]  # a slice of a block's output, as the pass reads it
        plane = torch.rand(n, 1, int(h * up), int(w * up), device=device).to(dtype)
        size = (n, 9, math.floor(h * up * factor), math.floor(w * up * factor))
        out = torch.empty(size, dtype=dtype, device=device).contiguous(memory_format=torch.channels_last)
        got = triton_warp.gather([GatherGroup(plane, 0), GatherGroup(carried, 1, upsampled=up)], out, factor)
        stored = resize(carried.float(), up).to(dtype)
        expected = torch.cat([resize(plane.float(), factor), resize(stored.float(), factor)], 1)
        tol = 1e-5 if dtype == torch.float32 else 4e-3
        err = (got.float() - expected).abs().max().item()
        assert err < tol, f"upsampled gather {dtype} up {up} factor {factor}: max error {err}"
    out = torch.empty(n, 16, h * 2, w * 2, dtype=dtype, device=device)
    flow = torch.zeros(n, 2, h * 2, w * 2, device=device)
    with pytest.raises(ValueError, match="warped: True, upsampled 2.0"):  # the warp reads stored values only
        triton_warp.gather([GatherGroup(src, 0, warped=True, upsampled=2.0)], out, 1.0, flow)


def check_passes(device: str, releases: tuple[tuple[str, bool], ...] = RELEASES) -> None:
    img0, img1 = scene(device)
    for release, ensemble in releases:
        net = amplified(release, ensemble).to(device)
        fused = net.with_kernels(fused_kernels())
        assert fused.fused_general and not net.fused_general
        for block in copy.deepcopy(net).blocks():  # as fast pads them: input channels to multiples of 8
            block.pad_input(8)
            assert block.in_channels % 8 == 0
        padded = copy.deepcopy(net).with_kernels(fused_kernels())
        for block in padded.blocks():
            block.pad_input(8)
        with torch.no_grad():
            want = net(img0, img1, 0.5)
            got = fused(img0, img1, 0.5)
            moved = (want - img0).abs().max().item()
            assert moved > 0.1, f"{release}: the scene hardly moved ({moved}): the warps are not exercised"
            err = (got - want).abs().max().item()
            assert err < 1e-4, f"{release} (ensemble {ensemble}) fp32: max error {err} against the PyTorch general path"
            # Zero weights on zero channels: the same numbers up to the order of the sums (garbage there would show,
            # NaN above all).
            pad_err = (padded(img0, img1, 0.5) - got).abs().max().item()
            assert pad_err < 1e-5, f"{release}: padded block inputs change the output by {pad_err}"
            if (release, ensemble) == releases[0]:  # a video's next pair, its first frame's features kept from this call
                after = img1.roll((1, 3), (2, 3))
                followed = fused(img1, after, 0.5, follows=True)
                # Bit for bit on the CPU; on CUDA the encoder's one frame and two frames may take different
                # convolution algorithms, whose sums differ in the last bits.
                follow_err = (followed - fused(img1, after, 0.5)).abs().max().item()
                assert follow_err <= (0.0 if device == "cpu" else 1e-5), f"{release}: following changes the frame " \
                                                                         f"by {follow_err}"
            half = net.half().with_kernels(fused_kernels())
            db = psnr(half(img0.half(), img1.half(), 0.5).float(), want)
            assert db >= 45.0, f"{release} (ensemble {ensemble}) fp16: {db:.1f} dB against fp32 (at least 45)"


def v3_8_net(wanting: bool) -> IFNet:
    """v3.8 with amplified random weights whose trial, on ``scene``, wants the doubled scales (its first flow head
    scaled up 30 times more; with the ensemble) or does not (without)."""
    net = amplified("v3.8", ensemble=wanting)
    if wanting:
        with torch.no_grad():
            for p in net.blocks()[0].conv1[-1].parameters():
                p.mul_(30)
    return net


def check_adaptive_scale(device: str) -> None:
    """v3.8's doubled scales split as the host decides them (``IFNet.head``: the trial; ``tail``: the pass at the
    normal scales), for a network whose trial wants them doubled and one whose trial does not (``v3_8_net``),
    against the PyTorch general path."""
    img0, img1 = scene(device)
    for wanting in (False, True):
        net = v3_8_net(wanting).to(device)
        normal = copy.deepcopy(net)
        normal.variant = dataclasses.replace(net.variant, adaptive_scale=False)
        fused = net.with_kernels(fused_kernels())
        with torch.no_grad():
            state, wants = fused.head(img0, img1)
            assert state is None and wants.tolist() == [wanting], f"v3.8 trial: {wants.tolist()}, not [{wanting}]"
            tail, whole = fused.tail(img0, img1, None), fused(img0, img1)
            tail_err = (tail - normal(img0, img1)).abs().max().item()
            whole_err = (whole - net(img0, img1)).abs().max().item()
        assert tail_err < 1e-4, f"v3.8 (trial wanting {wanting}) pass at the normal scales: max error {tail_err}"
        assert whole_err < 1e-4, f"v3.8 (trial wanting {wanting}) whole pass: max error {whole_err}"
        assert wanting or torch.equal(tail, whole), "v3.8: with no frame wanting doubled scales, tail is the pass"


# One release of each head whose pixel shuffles the kernels may read through: v4.0's transposed convolution (one
# shuffle; the classic pass, the retry's peaks), the paper's (its refinement reads the settled state), 4.25's shuffled
# head with carried channels (two; the gather's carried group too). The ensemble's reads have a check of their own
# (tests/test_triton_warp.py).
UNSHUFFLED = (("v4.0", False, 1), ("paper", False, 1), ("4.25", False, 2))


def check_unshuffled_heads(device: str) -> None:
    """The blocks' heads with their pixel shuffles left to the kernels' reads (``unshuffled_heads``, as ``fast``
    runs them) give the frames of the shuffled heads: bit for bit on the CPU (the same values, read elsewhere), within
    fp32 rounding on CUDA (each network's convolutions may take their own algorithms)."""
    from rife.execution import subpixel_deconvs, unshuffled_heads

    img0, img1 = scene(device)
    for release, ensemble, phases in UNSHUFFLED:
        net = amplified(release, ensemble).to(device)
        subpixel_deconvs(net)
        shuffled = copy.deepcopy(net).with_kernels(fused_kernels())
        assert unshuffled_heads(net) == phases, release
        unshuffled = net.with_kernels(dataclasses.replace(fused_kernels(), head_phases=phases))
        with torch.no_grad():
            want, got = shuffled(img0, img1, 0.5), unshuffled(img0, img1, 0.5)
        err = (got - want).abs().max().item()
        assert err <= (0.0 if device == "cpu" else 1e-5), f"{release}: unshuffled heads change the frame by {err}"
        assert (want - img0).abs().max().item() > 0.1, f"{release}: the scene hardly moved"


def interpreter_checks() -> None:
    check_gather("cpu")
    check_unshuffled_heads("cpu")
    check_adaptive_scale("cpu")
    check_passes("cpu")


@pytest.mark.slow
def test_the_pass_matches_pytorch_in_the_interpreter() -> None:
    pytest.importorskip("triton", reason="rife.triton_warp needs Triton")
    proc = subprocess.run([sys.executable, "-m", "tests.test_fused_general"], cwd=ROOT, capture_output=True,
                          text=True, timeout=1800, env={**os.environ, "TRITON_INTERPRET": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_pass_takes_the_releases_it_computes() -> None:
    from rife.families import FusedPass

    fits = {name for name in registry.NAMES if FusedPass.fits(registry.get_variant(name), False)}
    assert {"v3.5", "v3.6", "v3.8", "4.2", "4.6", "4.7", "4.13", "4.22", "4.22.lite", "4.25", "4.26",
            "4.26.heavy"} <= fits
    assert not fits & {"paper", "v4.0", "4.1", "v3.1"}
    assert FusedPass.fits(registry.get_variant("4.6"), True) and FusedPass.fits(registry.get_variant("v3.6"), True)
    # The ensemble's second direction would read the first's carried channels: it runs the PyTorch general path.
    assert not FusedPass.fits(registry.get_variant("4.25"), True)


@pytest.mark.cuda
def test_the_pass_matches_pytorch_on_cuda() -> None:
    pytest.importorskip("triton", reason="rife.triton_warp needs Triton")
    check_gather("cuda")
    # fp32 convolutions as fp32, not TF32 (cuDNN's default on CUDA): TF32 rounds each convolution's inputs to 10
    # mantissa bits, so the kernels' last-bit differences from PyTorch's resampling would grow past the fp32 bound.
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        check_adaptive_scale("cuda")
        check_unshuffled_heads("cuda")
        check_passes("cuda", (*RELEASES, ("v3.8", True), ("4.26.heavy", False), ("4.22.lite", False)))
    finally:
        torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.cuda
@pytest.mark.parametrize("wanting", [False, True])
def test_v3_8_doubled_scales_decided_on_the_host_on_cuda(wanting: bool) -> None:
    """``fast``'s head / tail / whole graphs for v3.8 (``GraphedRetryOnHost``: the trial, the pass at the normal
    scales, both passes chosen per frame) against one graph of the whole pass."""
    pytest.importorskip("triton", reason="rife.triton_warp needs Triton")
    from rife.execution import GraphedNet, GraphedRetryOnHost, for_network, plan_for, rebuilt, settings_for, wrapped

    net = v3_8_net(wanting).cuda().half()
    plan = for_network(plan_for("fast", torch.device("cuda")), net)
    fast = wrapped(rebuilt(net, plan), plan, torch.float16)
    assert isinstance(fast, GraphedRetryOnHost)
    whole = GraphedNet(fast.net)
    x0, x1 = (x.half().contiguous(memory_format=torch.channels_last) for x in scene("cuda"))
    with torch.inference_mode(), settings_for(plan).applied():
        a, b = fast(x0, x1, 0.5), whole(x0, x1, 0.5)
        assert bool(fast._graphs[next(iter(fast._graphs))].wants_retry_host) == wanting
    assert (a.float() - b.float()).abs().max().item() <= 2e-3


if __name__ == "__main__":  # python -m tests.test_fused_general
    interpreter_checks()
