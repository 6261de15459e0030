"""Execution modes on the CPU: exact width padding, mode selection and its errors, the CPU fast path."""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness.measure.inputs import random_scene
from harness.system.device import cpu_has_bf16, default_precision
from rife.engine import Engine, resolve_precision
from rife.execution import (
    ExecutionError,
    SubpixelDeconv,
    TorchSettings,
    default_execution,
    kernels_for,
    plan_for,
    rebuilt,
    settings_for,
    subpixel_deconvs,
    unshuffled_heads,
    widened,
    wrapped,
)
from rife.ifnet import BlockFeed, FlowState, IFNet
from rife.kernels import Kernels
from rife.layers import Warper
from rife.loader import ModelChoice, load_model
from rife.registry import VARIANTS

CPU = torch.device("cpu")


def _random_ifnet(arch: str, seed: int = 0) -> IFNet:
    torch.manual_seed(seed)
    net = IFNet(VARIANTS[arch]).eval()
    with torch.no_grad():
        for p in net.parameters():  # weights that make every channel matter
            p.normal_(0, 0.05) if p.dim() > 1 else p.uniform_(0.0, 0.3)
    return net


@pytest.mark.parametrize("arch", ["paper", "v4.0"])
def test_width_and_edge_padding_is_exact(arch):
    net = _random_ifnet(arch)
    wide = widened(net)
    if arch == "paper":
        assert wide.variant.block_widths == (240, 160, 96)
        assert wide.block1.convblock[0][0].weight.shape == (160, 160, 3, 3)
        assert wide.block1.conv0[0][0].weight.shape[1] == 32  # 17 inputs
        assert wide.unet.down0.conv1[0].weight.shape[1] == 32 and wide.contextnet.conv1.conv1[0].weight.shape[1] == 8
    else:
        assert wide.variant.block_widths == (192, 128, 96, 64)
        assert [b.conv0[0][0].weight.shape[1] for b in wide.blocks()] == [16, 16, 16, 16]  # 7 and 12 inputs
    assert all(b.lastconv.weight.shape[1] == 8 for b in wide.blocks())  # 5 outputs
    x0, x1 = torch.rand(1, 3, 64, 128), torch.rand(1, 3, 64, 128)
    with torch.inference_mode():
        ours, padded = net(x0, x1), wide(x0, x1)
    # Zero channels add exact zeros; only the convolution kernels' summation order may change.
    assert (ours - padded).abs().max().item() < 1e-5


@pytest.mark.parametrize("c_in,c_out,bias", [(8, 8, True), (64, 16, True), (24, 5, False)])
def test_subpixel_deconv_is_the_transposed_convolution(c_in, c_out, bias):
    torch.manual_seed(0)
    deconv = torch.nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=bias).double()
    x = torch.randn(2, c_in, 5, 7, dtype=torch.float64)
    with torch.no_grad():
        want, got = deconv(x), SubpixelDeconv(deconv)(x)
    assert got.shape == want.shape == (2, c_out, 10, 14)
    # The same products in another order: in float64 they agree to rounding.
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="not a kernel-4, stride-2"):
        SubpixelDeconv(torch.nn.ConvTranspose2d(4, 4, 3, 2, 1))


@pytest.mark.parametrize("arch", ["paper", "v4.0"])
def test_subpixel_deconvs_give_the_same_frames(arch):
    net = _random_ifnet(arch)
    swapped = widened(net)
    subpixel_deconvs(swapped)
    deconvs = [m for m in swapped.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert not deconvs and isinstance(swapped.block0.lastconv, SubpixelDeconv)
    if arch == "paper":
        assert isinstance(swapped.unet.up3[0], SubpixelDeconv)  # its PReLU follows in the same unit
    # In float64, so that what is left is the summation order's rounding, not fp32's amplified by random flows.
    x0, x1 = torch.rand(1, 3, 64, 128, dtype=torch.float64), torch.rand(1, 3, 64, 128, dtype=torch.float64)
    with torch.inference_mode():
        assert (net.double()(x0, x1) - swapped.double()(x0, x1)).abs().max().item() < 1e-9


@pytest.mark.parametrize("arch,phases", [("v4.0", 1), ("paper", 1), ("4.25", 2), ("4.6", 2), ("v3.6", 0),
                                         ("v3.8", 0)])
def test_unshuffled_heads_leave_their_shuffles_to_the_reads(arch, phases):
    """``fast``'s heads without their last pixel shuffles: the output is the shuffles' input, channel for channel
    (the step and gather kernels' reads are checked in tests/test_triton_warp.py and tests/test_fused_general.py);
    heads with no subpixel form (v3.x's two-stage ones) and v3.8's trial, which reads them in PyTorch, keep theirs."""
    torch.manual_seed(0)
    net = IFNet(VARIANTS[arch]).eval()
    subpixel_deconvs(net)
    before = [copy.deepcopy(b.lastconv) if hasattr(b, "lastconv") else None for b in net.blocks()]
    assert unshuffled_heads(net) == phases
    for block, head in zip(net.blocks(), before, strict=True):
        if not phases:
            assert head is None or not isinstance(block.lastconv, SubpixelDeconv) or block.lastconv.shuffled
            continue
        assert isinstance(block.lastconv, SubpixelDeconv) and not block.lastconv.shuffled
        x = torch.rand(1, block.lastconv.conv.in_channels, 3, 5)
        with torch.no_grad():
            raw, want = block.lastconv(x), head(x)
        for _ in range(phases):
            raw = torch.nn.functional.pixel_shuffle(raw, 2)
        assert torch.equal(raw, want)
    with pytest.raises(ValueError, match="need the step and settle kernels"):
        Kernels(head_phases=1)


def test_mode_selection_and_errors(monkeypatch):
    from rife import triton_warp

    monkeypatch.setattr(triton_warp, "available", lambda: True)  # a CUDA machine has Triton (PyTorch brings it)
    cuda = torch.device("cuda")
    assert default_execution("ours") == "fast" and default_execution("upstream") == "eager"
    fast_gpu = plan_for("fast", cuda)
    assert fast_gpu.graph and fast_gpu.widen and fast_gpu.channels_last and fast_gpu.cudnn_benchmark
    assert fast_gpu.fused_kernels and not plan_for("graph", cuda).fused_kernels
    assert fast_gpu.subpixel_deconvs and not plan_for("fast", CPU).subpixel_deconvs
    assert fast_gpu.unshuffled_heads and not plan_for("fast", CPU).unshuffled_heads
    assert fast_gpu.fused_convs and fast_gpu.tuned_convs and not plan_for("fast", CPU).tuned_convs
    fast_cpu = plan_for("fast", CPU)
    assert fast_cpu.channels_last and not fast_cpu.graph and not fast_cpu.widen
    eager = plan_for("eager", cuda)
    assert not (eager.graph or eager.channels_last or eager.compile or eager.cudnn_benchmark)
    with pytest.raises(ExecutionError, match="--execution graph needs CUDA graphs"):
        plan_for("graph", CPU)
    with pytest.raises(ExecutionError, match="runs our implementation only"):
        plan_for("fast", cuda, ours=False)
    with pytest.raises(ExecutionError, match="not one of"):
        plan_for("turbo", CPU)


def test_cpu_default_precision_follows_the_hardware():
    assert default_precision(CPU) == ("bf16" if cpu_has_bf16() else "fp32")


def _fast_vs_eager_fp32(make_net, precision: str, size: tuple[int, int]) -> float:
    """Relative error (METHOD.md) of the CPU fast path against eager fp32, on fresh random frames."""
    net = make_net()
    reference = Engine(make_net(), net.variant, CPU, resolve_precision(CPU, "fp32", False))
    fast = Engine(net, net.variant, CPU, resolve_precision(CPU, precision, False), execution="fast")
    frames = random_scene(*size)
    a = reference.interpolate(*(reference.to_model_input(f) for f in frames), 1, size)[0]
    b = fast.interpolate(*(fast.to_model_input(f) for f in frames), 1, size)[0]
    assert fast.to_model_input(frames[0]).is_contiguous(memory_format=torch.channels_last)
    return ((a.double() - b.double()).norm() / a.double().norm()).item()


def test_cpu_fast_fp32_matches_eager_fp32_on_random_inputs():
    # Other convolution kernels sum in another order and warps amplify that at a few pixels: compare norms.
    assert _fast_vs_eager_fp32(lambda: _random_ifnet("paper", seed=1), "fp32", (72, 100)) <= 1e-3


def test_cpu_fast_bf16_stays_close_on_random_inputs(v4_weights):
    assert _fast_vs_eager_fp32(lambda: load_model(ModelChoice(weights=v4_weights)).net, "bf16", (128, 192)) <= 2e-2


@pytest.mark.parametrize("clip", ["bunny crop", pytest.param("bunny", marks=pytest.mark.slow)])  # slow: at 720p
def test_cpu_fast_bf16_keeps_real_frames(v4_weights, clips, clip):
    loaded = load_model(ModelChoice(weights=v4_weights))
    ref_engine = Engine(loaded.net, loaded.variant, CPU, resolve_precision(CPU, "fp32", False))
    fast_engine = Engine(load_model(ModelChoice(weights=v4_weights)).net, loaded.variant, CPU,
                         resolve_precision(CPU, "bf16", False), execution="fast")
    a, b = clips[clip][0], clips[clip][2]
    outs = [e.interpolate(e.to_model_input(a), e.to_model_input(b), 1, a.shape[-2:])[0] for e in (ref_engine, fast_engine)]
    mse = (outs[0].double() - outs[1].double()).pow(2).mean().item()
    assert -10 * math.log10(mse) >= 50.0


@pytest.mark.slow
def test_harness_records_the_execution_and_precision_run(tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    out = tmp_path / "o"
    env = {**os.environ, "PLATFORM": "CPU"}
    r = subprocess.run([sys.executable, str(root / "inference.py"), "--dummy", "--data-height", "32", "--data-width",
                        "32", "--num-inputs", "1", "--warmup", "0", "--execution", "eager", "--precision", "fp32",
                        "--output-dir", str(out)], env=env, capture_output=True, text=True, cwd=root, timeout=300)
    assert r.returncode == 0, r.stderr
    doc = json.loads((out / "results.json").read_text())
    assert doc["config"]["workload"]["model"]["execution"] == "eager"
    assert doc["streams"][0]["model"]["precision_run"] == "fp32"
    r = subprocess.run([sys.executable, str(root / "inference.py"), "--dummy", "--execution", "graph",
                        "--output-dir", str(out)], env=env, capture_output=True, text=True, cwd=root, timeout=300)
    assert r.returncode == 2 and r.stderr.strip().startswith("error: --execution graph needs CUDA graphs")


FUSED_WARP_MODEL_CHECK = """
import torch
from rife import triton_warp
from rife.execution import widened
from rife.kernels import Kernels
from rife.ifnet import IFNet
from rife.registry import VARIANTS
for arch in ("v4.0", "paper"):
    torch.manual_seed(0)
    net = IFNet(VARIANTS[arch], kernels=Kernels(fp32_warps=True)).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.05) if p.dim() > 1 else p.uniform_(0.0, 0.3)
    x0, x1 = torch.rand(1, 3, 64, 128), torch.rand(1, 3, 64, 128)
    with torch.inference_mode():
        plain = net(x0, x1)
        fast = widened(net).with_kernels(Kernels(warp=triton_warp.warp, step=triton_warp.step,
                                                 settle=triton_warp.settle, feed=triton_warp.feed, fp32_warps=True))
        fused = fast(x0.contiguous(memory_format=torch.channels_last), x1.contiguous(memory_format=torch.channels_last))
    err = (plain - fused).abs().max().item()
    print(arch, err)
    # Random paper weights make flows of ~1000 px, where channels_last's summation order alone moves 1e-3.
    assert err < (1e-4 if arch == "v4.0" else 3e-3), (arch, err)
"""


@pytest.mark.slow
def test_fused_kernels_and_padding_give_the_fp32_frames():
    """The fast path's model changes on the CPU (Triton's interpreter): fused warp and flow step, padded widths, channels_last
    against the plain fp32 network, on random inputs, both variants."""
    pytest.importorskip("triton", reason="Triton is not installed here (setup.sh installs it on Linux x86_64)")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, "-c", FUSED_WARP_MODEL_CHECK], env=env, capture_output=True, text=True,
                          timeout=600, cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stdout + done.stderr


def test_fast_on_cuda_without_triton_is_one_clear_refusal(monkeypatch):
    from rife import triton_warp

    monkeypatch.setattr(triton_warp, "available", lambda: False)
    with pytest.raises(ExecutionError, match="needs Triton"):
        plan_for("fast", torch.device("cuda"))
    assert plan_for("fast", torch.device("cpu")).mode == "fast"  # the CPU fast path has no Triton kernel


@pytest.mark.skipif(not cpu_has_bf16(), reason="bf16 autocast on the CPU needs AVX512-BF16 or AMX")
def test_autocast_fast_stores_conv_weights_cast_with_the_same_frames(monkeypatch):
    from rife import execution

    frames = random_scene(64, 128)
    outs = []
    for store in (False, True):
        if not store:
            monkeypatch.setattr(execution, "store_conv_weights", lambda net, dtype: None)
        else:
            monkeypatch.undo()
        e = Engine(_random_ifnet("v4.0"), VARIANTS["v4.0"], CPU, resolve_precision(CPU, "bf16", False), execution="fast")
        a, b = e.to_model_input(frames[0]), e.to_model_input(frames[1])
        outs.append(e.interpolate(a, b, 1, (64, 128))[0])
    assert e.net.block0.conv0[0][0].weight.dtype == torch.bfloat16
    assert e.net.block0.conv0[0][1].weight.dtype == torch.float32  # PReLU stays as autocast leaves it
    assert torch.equal(outs[0], outs[1])  # autocast casts the weights the same way on every call


@pytest.mark.cuda
@pytest.mark.parametrize("threshold", [-1.0, 1e9])
def test_cuda_fast_retry_on_host_matches_the_whole_graph(threshold):
    """fast's head / tail / whole graphs (``GraphedRetryOnHost``) against the one graph of the whole pass, for a
    retry every sample wants (threshold -1) and one none wants (1e9), on fresh random frames."""
    from rife.execution import GraphedNet, GraphedRetryOnHost
    from rife.variants import LargeMotionRetry

    variant = dataclasses.replace(VARIANTS["v4.0"], large_motion_retry=LargeMotionRetry(1, threshold))
    torch.manual_seed(1)
    net = IFNet(variant).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.05) if p.dim() > 1 else p.uniform_(0.0, 0.3)
    plan = plan_for("fast", torch.device("cuda"))
    fast = wrapped(rebuilt(net.cuda().half(), plan), plan, torch.float16)
    assert isinstance(fast, GraphedRetryOnHost)
    whole = GraphedNet(fast.net)
    x0, x1 = (torch.rand(2, 3, 128, 192, device="cuda").half().contiguous(memory_format=torch.channels_last)
              for _ in range(2))
    with torch.inference_mode(), settings_for(plan).applied():
        a, b = fast(x0, x1, 0.5), whole(x0, x1, 0.5)
        assert bool(fast._graphs[next(iter(fast._graphs))].wants_retry_host) == (threshold < 0)
    assert (a.float() - b.float()).abs().max().item() <= 2e-3


class _ConvThenPReLU(torch.nn.Module):
    """What a fused convolution unit computes, as ``Kernels.conv`` makes one."""

    def __init__(self, unit: torch.nn.Sequential) -> None:
        super().__init__()
        self.conv, self.prelu = unit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(self.conv(x))


@pytest.mark.parametrize("arch", ["paper", "v4.0"])
def test_ifnet_rebuilt_with_its_kernels_calls_them(arch):
    net = _random_ifnet(arch)
    calls = []

    def warp(img, flow):
        calls.append("warp")
        return Warper(fp32=True)(img, flow)

    def feed(names, channels, scale, img0, img1, t_plane, flow, mask):
        calls.append("feed")
        state = None if flow is None else FlowState(flow, mask, None, None)
        return BlockFeed(Warper(fp32=True))(names, channels, scale, img0, img1, t_plane, state)

    x0, x1 = torch.rand(1, 3, 64, 128), torch.rand(1, 3, 64, 128)
    with torch.inference_mode():
        want = net.with_kernels(Kernels(fp32_warps=True))(x0, x1)
        rebuilt_net = net.with_kernels(Kernels(warp=warp, feed=feed, conv=_ConvThenPReLU, fp32_warps=True))
        got = rebuilt_net(x0, x1)
    assert torch.equal(got, want)
    assert calls.count("feed") >= net.variant.num_blocks + net.variant.refine_unet and "warp" in calls
    units = [m for m in rebuilt_net.modules() if isinstance(m, torch.nn.Sequential) and len(m) == 2
             and isinstance(m[0], torch.nn.Conv2d) and isinstance(m[1], torch.nn.PReLU)]
    assert not units and isinstance(rebuilt_net.block0.conv0[0], _ConvThenPReLU)
    assert rebuilt_net.kernels.fp32_warps and rebuilt_net.warp.fp32 and rebuilt_net.step.warp is rebuilt_net.warp


@pytest.mark.parametrize("arch", ["v4.0", "paper"])
def test_classic_pass_runs_through_each_compiled_stage(arch):
    """``fast`` compiles the classic pass stage by stage (``ClassicPass.compile_stages``): every stage it names is
    the pass's, a call goes through them, and the frame is the uncompiled one."""
    net = _random_ifnet(arch)
    x0, x1 = torch.rand(1, 3, 64, 128), torch.rand(1, 3, 64, 128)
    with torch.inference_mode():
        want = net(x0, x1)
    ran = []

    def recorded(stage):
        def run(*args, **kwargs):
            ran.append(stage.__name__)
            return stage(*args, **kwargs)
        return run

    net.classic.compile_stages(recorded)
    with torch.inference_mode():
        got = net(x0, x1)
    assert torch.equal(got, want)
    expected = {"advance", "pending", "finish"} if arch == "v4.0" else {"advance", "pending", "encode", "context",
                                                                         "refine"}
    assert set(ran) == expected and set(ran) <= set(net.classic.STAGES)


def test_kernels_follow_the_plan():
    fast_cpu = kernels_for(plan_for("fast", CPU), CPU)
    assert fast_cpu.fp32_warps and fast_cpu.cache_grids and not fast_cpu.retry_on_device and fast_cpu.warp is None
    eager = kernels_for(plan_for("eager", CPU), CPU)
    assert eager == Kernels()
    compiled = kernels_for(plan_for("compile", CPU), CPU)
    assert compiled.retry_on_device and not compiled.cache_grids and not compiled.fp32_warps
    with pytest.raises(dataclasses.FrozenInstanceError):
        eager.retry_on_device = True


def test_torch_settings_are_made_around_each_call_and_restored():
    saved = torch.backends.cudnn.benchmark, torch._dynamo.config.recompile_limit
    settings = TorchSettings(cudnn_benchmark=not saved[0], recompile_limit=saved[1] + 56)
    with settings.applied():
        assert torch.backends.cudnn.benchmark is not saved[0]
        assert torch._dynamo.config.recompile_limit == saved[1] + 56
    assert (torch.backends.cudnn.benchmark, torch._dynamo.config.recompile_limit) == saved
    with pytest.raises(RuntimeError), settings.applied():
        raise RuntimeError("a failing call")
    assert (torch.backends.cudnn.benchmark, torch._dynamo.config.recompile_limit) == saved
    assert settings.record() == {"torch.backends.cudnn.benchmark": not saved[0],
                                 "torch._dynamo.config.recompile_limit": saved[1] + 56}
    assert TorchSettings().record() == {}


def test_fast_on_cuda_records_its_settings(monkeypatch):
    from rife import triton_warp

    monkeypatch.setattr(triton_warp, "available", lambda: True)
    assert settings_for(plan_for("fast", torch.device("cuda"))).record() == {
        "torch.backends.cudnn.benchmark": True, "torch._dynamo.config.recompile_limit": 64}
    assert settings_for(plan_for("compile", torch.device("cuda"))).record() == {}
    assert settings_for(plan_for("fast", CPU)).record() == {}


def test_ipex_is_part_of_the_plan():
    xpu = torch.device("xpu")
    assert plan_for("eager", xpu, ipex=True).ipex and not plan_for("eager", xpu).ipex
    assert not plan_for("eager", CPU, ipex=True).ipex  # IPEX applies to XPUs only
    plan = dataclasses.replace(plan_for("eager", CPU), ipex=True)
    if importlib.util.find_spec("intel_extension_for_pytorch") is None:
        with pytest.raises(ExecutionError, match="IPEX=yes but intel_extension_for_pytorch does not import"):
            wrapped(_random_ifnet("v4.0"), plan, torch.float32)
