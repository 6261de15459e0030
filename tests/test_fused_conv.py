"""rife.fused_conv: the fused conv + bias + PReLU (+ residual) units. On the CPU they must be the modules they
replace, exactly; on CUDA with the cuDNN frontend the fused graphs are checked against fp32 on fresh random inputs."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from rife import fused_conv
from rife.fused_conv import FusedConvUnit, fuse_conv_units
from rife.ifnet import IFNet
from rife.layers import ResConv, conv_unit, residual_through
from rife.registry import VARIANTS


def _random_ifnet(arch: str) -> IFNet:
    torch.manual_seed(0)
    net = IFNet(VARIANTS[arch]).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.05) if p.dim() > 1 else p.uniform_(0.0, 0.3)
    return net


@pytest.mark.parametrize("arch", ["paper", "v4.0", "4.25", "4.22.lite"])
def test_units_without_a_cudnn_context_are_the_modules_they_replace(arch):
    net = _random_ifnet(arch)
    fused = copy.deepcopy(net)
    count = fuse_conv_units(fused, None)
    assert count == sum(1 for m in net.modules() if FusedConvUnit.fits(m)) > 0
    assert sum(isinstance(m, FusedConvUnit) for m in fused.modules()) == count
    assert fuse_conv_units(fused, None) == 0  # the units a FusedConvUnit holds stay as they are
    if net.general:  # the fused pass sizes each block's input by its first convolution, replaced or not
        assert [b.in_channels for b in fused.blocks()] == [b.in_channels for b in net.blocks()]
    x0, x1 = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(net(x0, x1), fused(x0, x1))


def test_fits_only_what_the_fused_graph_computes():
    assert FusedConvUnit.fits(conv_unit(8, 16)) and FusedConvUnit.fits(conv_unit(8, 16, 2))
    assert not FusedConvUnit.fits(nn.Sequential(nn.Conv2d(8, 16, 3, 1, 1, bias=False), nn.PReLU(16)))
    assert not FusedConvUnit.fits(nn.Sequential(nn.Conv2d(8, 16, 1), nn.PReLU(16)))
    assert not FusedConvUnit.fits(nn.Sequential(nn.Conv2d(8, 16, 3, 1, 1), nn.PReLU()))  # one shared slope
    assert not FusedConvUnit.fits(nn.Sequential(nn.Conv2d(8, 16, 3, 1, 1), nn.ReLU()))
    assert FusedConvUnit.fits(nn.Sequential(nn.Conv2d(8, 16, 3, 2, 1), nn.LeakyReLU(0.2)))
    assert FusedConvUnit.fits(ResConv(16)) and not FusedConvUnit.fits(ResConv(16, groups=2))


def _leaky_unit(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1), nn.LeakyReLU(0.2))


def _res_conv(channels: int) -> ResConv:
    unit = ResConv(channels)
    with torch.no_grad():
        unit.beta.uniform_(-1.5, 1.5)  # negative scales too: folded into the weights
    return unit


def test_folded_weights_compute_the_unit():
    """What the fused graph computes, written with PyTorch's operations from ``folded``: the unit in fp32."""
    torch.manual_seed(3)
    x = torch.randn(2, 16, 11, 13)
    for unit in (conv_unit(16, 24, 2), _leaky_unit(16, 24), _res_conv(16)):
        fused = FusedConvUnit(unit, None)
        weight, bias, slope = fused.folded()
        y = torch.nn.functional.conv2d(x, weight, bias, fused.conv.stride, 1)
        if isinstance(unit, ResConv):
            y = y + x
        y = torch.where(y > 0, y, y * slope.view(1, -1, 1, 1))
        with torch.inference_mode():
            assert torch.allclose(y, unit(x), rtol=1e-5, atol=1e-5), type(unit)


def test_residual_through_is_the_stack_plus_its_input():
    torch.manual_seed(1)
    stack = nn.Sequential(*(conv_unit(8, 8) for _ in range(3)))
    fused = nn.Sequential(*(FusedConvUnit(u, None) for u in copy.deepcopy(stack)))
    x = torch.randn(2, 8, 9, 7)
    with torch.inference_mode():
        assert torch.equal(residual_through(stack, x), stack(x) + x)
        assert torch.equal(residual_through(fused, x), stack(x) + x)


def test_the_shapes_that_fuse():
    shape = fused_conv.fusable_shape
    assert shape(16, 96, out_pixels=45 * 80) and shape(192, 192, out_pixels=23 * 40)
    assert not shape(90, 90, out_pixels=45 * 80)  # v3.x's widths: off the tensor cores' rows of 8
    assert not shape(7, 48, out_pixels=90 * 160) and not shape(48, 45, out_pixels=45 * 80)
    assert not shape(160, 160, out_pixels=96 * 160)  # over 128 and not a multiple of 64
    assert shape(32, 32, out_pixels=fused_conv.FUSE_MAX_PIXELS)
    assert not shape(32, 32, out_pixels=fused_conv.FUSE_MAX_PIXELS + 1)


def test_cpu_and_fp32_never_fuse():
    unit = FusedConvUnit(conv_unit(8, 8), None)
    assert not unit.fuses(torch.rand(1, 8, 4, 4))


@pytest.mark.cuda
@pytest.mark.skipif(not (torch.cuda.is_available() and fused_conv.available()),
                    reason="needs a CUDA GPU and nvidia-cudnn-frontend")
@pytest.mark.parametrize("dtype, tune", [(torch.float16, False), (torch.bfloat16, False), (torch.float16, True)])
def test_cuda_fused_units_match_fp32(dtype, tune):
    context = fused_conv.CudnnContext(torch.device("cuda"), tune=tune)
    torch.manual_seed(2)
    for kind, c_in, c_out, stride, n, h, w, residual in [
            ("prelu", 16, 96, 2, 1, 90, 160, False), ("prelu", 96, 96, 1, 1, 45, 80, True),
            ("prelu", 192, 192, 1, 2, 23, 40, True), ("prelu", 64, 64, 1, 1, 92, 160, False),
            ("prelu", 32, 48, 2, 1, 37, 51, False), ("leaky", 24, 96, 2, 1, 180, 320, False),
            ("leaky", 96, 192, 2, 1, 45, 80, False), ("res", 192, 192, 1, 1, 12, 20, False),
            ("res", 32, 32, 1, 1, 180, 320, False), ("res", 64, 64, 1, 2, 90, 160, False)]:
        if kind == "prelu":
            unit = conv_unit(c_in, c_out, stride).cuda()
            with torch.no_grad():
                unit[1].weight.uniform_(-0.5, 0.5)  # negative slopes too
        else:
            unit = (_leaky_unit(c_in, c_out, stride) if kind == "leaky" else _res_conv(c_in)).cuda()
        fused = FusedConvUnit(unit, context).cuda().to(dtype).to(memory_format=torch.channels_last)
        x = torch.randn(n, c_in, h, w, device="cuda", dtype=dtype).contiguous(memory_format=torch.channels_last)
        res = None
        if residual:
            res = torch.randn(n, c_out, h, w, device="cuda", dtype=dtype).contiguous(memory_format=torch.channels_last)
        assert fused.fuses(x)
        with torch.inference_mode():
            out = fused(x, res)
            ref = fused_conv.reference(x, fused.unit, res)
        assert fused._graphs[next(iter(fused._graphs))] is not None, "cuDNN built no fused graph"
        if kind == "res":  # a unit of the same shape (a residual stack's next) shares the graph, with its weights
            twin = FusedConvUnit(_res_conv(c_in).cuda(), context).cuda().to(dtype)
            with torch.inference_mode():
                twin_out, twin_ref = twin(x, res), fused_conv.reference(x, twin.unit, res)
            assert twin._graphs[next(iter(twin._graphs))].graph is fused._graphs[next(iter(fused._graphs))].graph
            rel = ((twin_out.float() - twin_ref).norm() / twin_ref.norm()).item()
            assert rel < (2e-3 if dtype == torch.float16 else 1e-2), ("twin", c_in, rel)
        assert out.shape == ref.shape and out.is_contiguous(memory_format=torch.channels_last)
        rel = ((out.float() - ref).norm() / ref.norm()).item()
        assert rel < (2e-3 if dtype == torch.float16 else 1e-2), (kind, c_in, c_out, stride, n, h, w, residual, rel)
        graph = torch.cuda.CUDAGraph()  # fast replays the units inside one CUDA graph
        with torch.inference_mode():
            with torch.cuda.graph(graph):
                captured = fused(x, res)
            captured.fill_(float("nan"))
            x.copy_(torch.randn_like(x))
            graph.replay()
            ref = fused_conv.reference(x, fused.unit, res)
        assert ((captured.float() - ref).norm() / ref.norm()).item() < (2e-3 if dtype == torch.float16 else 1e-2)
