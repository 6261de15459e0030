"""What torch.compile traces on a GPU, traced here on the CPU under symbolic shapes: every Triton launcher and the
``rife::warp`` op's fake implementation, and the CUDA ``fast`` pass of every release family at two input sizes, so
that dynamo recompiles it with dynamic shapes as it does when a run meets a second size.

The tensors live on the meta device: they carry shapes, strides and dtypes and no data, so nothing is launched
(``rife.triton_warp`` checks a launch's arguments and stops there) and no GPU is needed. Real Triton kernels (not the
interpreter's) are what the compiled graph holds, as on a GPU."""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest
import torch
from torch import Tensor
from torch._dynamo.utils import counters

from rife import registry
from rife.ifnet import IFNet
from tests.test_triton_warp import FEED_NAMES, feed_channels, feed_inputs, settle_inputs, step_inputs
from tools.kernel_compile import fast_engine_on_meta

pytest.importorskip("triton", reason="rife.triton_warp needs Triton")
from rife import triton_warp  # noqa: E402

META = torch.device("meta")
# The two sizes each trace meets; the second is not a multiple of the first, so no size is specialised by accident.
SIZES = ((64, 96), (96, 160))
# One release of each structure in the registry (``structure``): the families the GPU acceptance command runs, and
# the releases whose structure none of them has.
FAMILIES = (*registry.FAMILIES, "v3.5", "4.2", "4.7", "4.10", "4.13")
# The fast tier traces v4.0 (the Triton kernels; the paper network takes twice as long); the rest are slow.
QUICK_FAMILIES = ("v4.0",)


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


def traced_twice(fn: Callable[..., object], make: Callable[[int], tuple], backend: str = "eager") -> list[object]:
    """``fn`` compiled with symbolic shapes (one graph, no breaks) and called on the inputs ``make`` gives for the
    two sizes; the results, each checked against ``fn`` called eagerly on the same meta inputs."""
    compiled = torch.compile(fn, backend=backend, dynamic=True, fullgraph=True)
    results = []
    for k in (1, 2):
        args = make(k)
        got, want = compiled(*args), fn(*args)
        assert_same_layout(got, want)
        results.append(got)
    return results


def assert_same_layout(got: object, want: object) -> None:
    if isinstance(want, Tensor):
        assert isinstance(got, Tensor)
        assert (got.shape, got.stride(), got.dtype, got.device) == (want.shape, want.stride(), want.dtype, want.device)
    elif isinstance(want, tuple | list):
        assert isinstance(got, tuple | list) and len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert_same_layout(g, w)
    else:
        assert got is None and want is None


def frames(k: int, channels: int = 3, dtype: torch.dtype = torch.float16) -> Tensor:
    h, w = SIZES[k - 1]
    return torch.empty(1, channels, h, w, dtype=dtype, device=META).contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("name", ["warp", "fused_warp"])
def test_the_warp_launchers_trace_under_symbolic_shapes(name: str) -> None:
    launcher = getattr(triton_warp, name)
    out = traced_twice(lambda img, flow: launcher(img, flow), lambda k: (frames(k, 16), frames(k, 2)))
    assert [tuple(o.shape) for o in out] == [(1, 16, *s) for s in SIZES]  # type: ignore[attr-defined]


def test_the_warp_op_decomposes_under_symbolic_shapes() -> None:
    """aot_eager: the functionalisation and decomposition inductor applies to ``rife::warp`` before lowering it (the
    fake implementation traced with SymInts, where a set of strides once failed)."""
    traced_twice(lambda img, flow: triton_warp.fused_warp(img, flow) * 2, lambda k: (frames(k), frames(k, 2)),
                 backend="aot_eager")


@pytest.mark.parametrize("with_prev", [False, True])
@pytest.mark.parametrize("measure", [False, True])
def test_the_flow_step_traces_under_symbolic_shapes(with_prev: bool, measure: bool) -> None:
    def make(k: int) -> tuple:
        h, w = SIZES[k - 1]
        return step_inputs((1, h, w, 2.0), torch.float16, True, with_prev, "meta")

    traced_twice(lambda *args: triton_warp.step(*args, measure), make)


@pytest.mark.parametrize("blend", [False, True])
def test_the_final_step_traces_under_symbolic_shapes(blend: bool) -> None:
    def make(k: int) -> tuple:
        h, w = SIZES[k - 1]
        return settle_inputs((2, h, w, 1.0), torch.float16, True, "meta")

    traced_twice(lambda take_b, a, b, img0, img1: triton_warp.settle(take_b, a, b, img0, img1, blend), make)


@pytest.mark.parametrize("names,with_state", FEED_NAMES)
@pytest.mark.parametrize("scale", [1.0, 4.0])
def test_the_block_input_traces_under_symbolic_shapes(names: tuple[str, ...], with_state: bool, scale: float) -> None:
    channels = feed_channels(names, with_state)

    def make(k: int) -> tuple:
        h, w = SIZES[k - 1]
        return feed_inputs((1, h, w, scale), torch.float16, True, with_state, "meta")

    traced_twice(lambda *args: triton_warp.feed(names, channels, scale, *args), make)


def test_a_launch_on_meta_tensors_checks_its_arguments() -> None:
    """Nothing is launched for meta tensors, but the arguments are still checked as for a real launch."""
    img, flow = frames(1), frames(1, 2)
    with pytest.raises(ValueError, match="flow of shape"):
        triton_warp.warp(img, flow[:, :, 1:])
    with pytest.raises(ValueError, match="do not share their strides"):
        triton_warp.Strided.of("img", img0=img, img1=img.contiguous())


def trace_fast_pass(arch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The compile's backend traces (dynamo, with fake tensors) and runs the graph on meta tensors: no inductor code.
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    engine = fast_engine_on_meta(arch)
    assert engine.plan.compile
    graphs = []
    for h, w in SIZES:
        padded = engine.to_model_input(torch.empty(1, 3, h, w, dtype=torch.uint8, device=META))
        out = engine.interpolate(padded, padded, 1, (h, w))
        assert [tuple(o.shape) for o in out] == [(1, 3, h, w)] and out[0].dtype == torch.float16
        graphs.append(counters["stats"]["unique_graphs"])
    # Dynamo's automatic dynamic shapes: a graph met with a second shape recompiles with symbolic ones. That is at
    # the second size, or already at the first where blocks of one structure and width share their code (v3.x).
    assert 0 < graphs[0] <= graphs[1] and max(graphs) > 1


def test_v3_8_s_host_decided_parts_trace_under_symbolic_shapes(monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``GraphedRetryOnHost`` captures for v3.8 under ``fast``: the trial (``IFNet.head``: per frame, whether
    the doubled scales are wanted) and the pass at the normal scales (``IFNet.tail``), at both sizes."""
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    engine = fast_engine_on_meta("v3.8")
    assert engine.plan.retry_on_host
    net = engine.net
    assert isinstance(net, IFNet) and net.decides_on_host
    for k in (1, 2):
        x = frames(k)
        state, wants = net.head(x, x)
        assert state is None and wants.shape == (1,) and wants.dtype == torch.bool
        assert tuple(net.tail(x, x, None).shape) == tuple(x.shape)


def structure(arch: str) -> tuple:
    """What decides the code a release's network runs (its layers' kinds and the passes' logic), not its widths."""
    v = registry.release(arch).variant
    return (v.activation, v.body, v.head, v.encoder.kind if v.encoder else None, v.fusion_refine, v.refine_unet,
            v.zero_start, v.adaptive_scale, v.large_motion_retry is not None, v.has_timestep, v.mask_accumulates,
            v.carry_channels > 0, v.num_blocks)


def test_every_structure_is_traced() -> None:
    assert {structure(name) for name in registry.NAMES} == {structure(name) for name in FAMILIES}


@pytest.mark.parametrize("arch", QUICK_FAMILIES)
def test_the_fast_pass_recompiles_with_dynamic_shapes(arch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    trace_fast_pass(arch, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("arch", [f for f in FAMILIES if f not in QUICK_FAMILIES])
def test_every_family_s_fast_pass_recompiles_with_dynamic_shapes(arch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    trace_fast_pass(arch, monkeypatch)
