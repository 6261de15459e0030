"""rife.triton_conv against PyTorch's convolutions: on CPU through Triton's interpreter (fp16: its bf16 dot products
are not emulated faithfully), on CUDA where there is one (fp16 and bf16, compiled)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

ROOT = Path(__file__).resolve().parent.parent


def layer_inputs(n: int, c_in: int, c_out: int, h: int, w: int, dtype: torch.dtype, channels_last: bool,
                 transposed: bool, device: str) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """An input, weights scaled to keep outputs near 1, biases and PReLU slopes (some negative, as trained ones)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    taps = 4 if transposed else 9
    shape = (c_in, c_out, 4, 4) if transposed else (c_out, c_in, 3, 3)
    x = torch.randn(n, c_in, h, w, device=device).to(dtype).contiguous(memory_format=fmt)
    weight = (torch.randn(shape, device=device) / (c_in * taps) ** 0.5).to(dtype).contiguous(memory_format=fmt)
    bias = torch.randn(c_out, device=device).to(dtype)
    slope = (torch.rand(c_out, device=device) - 0.3).to(dtype)
    return x, weight, bias, slope


def reference(x: Tensor, weight: Tensor, bias: Tensor, slope: Tensor | None, residual: Tensor | None, stride: int,
              transposed: bool) -> Tensor:
    """The layer in fp32 from the same (rounded) inputs."""
    args = (x.float(), weight.float(), bias.float())
    out = F.conv_transpose2d(*args, 2, 1) if transposed else F.conv2d(*args, stride, 1)
    if slope is not None:
        out = F.prelu(out, slope.float())
    return out if residual is None else out + residual.float()


def assert_layer_matches(got: Tensor, want: Tensor, x: Tensor, where: str) -> None:
    assert got.shape == want.shape and got.dtype == x.dtype, where
    assert got.is_contiguous(memory_format=torch.channels_last) == x.is_contiguous(memory_format=torch.channels_last)
    # fp32 sums of the same products, rounded once to the half dtype (the sums' order differs from cuDNN's).
    eps = torch.finfo(x.dtype).eps
    torch.testing.assert_close(got.float(), want, rtol=2 * eps, atol=2 * eps, msg=lambda m: f"{where}: {m}")


# (batch, in channels, out channels, height, width): channel counts below, at and across a 16- and 32-wide chunk.
CONV_SHAPES = [(1, 8, 16, 7, 9), (2, 24, 40, 5, 6), (1, 48, 32, 4, 11), (1, 16, 8, 1, 1)]


def interpreter_checks() -> None:
    """Run in a child process with TRITON_INTERPRET=1, where the kernel runs on CPU tensors."""
    from rife.triton_conv import conv3x3, deconv4x4, fused_conv3x3, fused_deconv4x4

    torch.manual_seed(0)
    for shape, channels_last, stride, with_slope, with_res in itertools.product(
            CONV_SHAPES, (False, True), (1, 2), (False, True), (False, True)):
        if stride == 2 and with_res:
            continue  # the model adds residuals to stride-1 layers only
        n, c_in, c_out, h, w = shape
        x, weight, bias, slope = layer_inputs(n, c_in, c_out, h, w, torch.float16, channels_last, False, "cpu")
        slope = slope if with_slope else None
        oh, ow = (h - 1) // stride + 1, (w - 1) // stride + 1
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        res = torch.randn(n, c_out, oh, ow).half().contiguous(memory_format=fmt) if with_res else None
        where = f"conv {shape} channels_last={channels_last} stride={stride} prelu={with_slope} residual={with_res}"
        want = reference(x, weight, bias, slope, res, stride, False)
        assert_layer_matches(conv3x3(x, weight, bias, slope, res, stride), want, x, where)
        assert_layer_matches(conv3x3(x, weight, bias, slope, res, stride, tiles={"BLOCK_M": 16, "BLOCK_N": 32,
                                                                               "BLOCK_K": 32}), want, x, where)
        if stride == 1 and not with_res:
            xt, wt, bt, st = layer_inputs(n, c_in, c_out, h, w, torch.float16, channels_last, True, "cpu")
            st = st if with_slope else None
            want = reference(xt, wt, bt, st, None, 2, True)
            assert_layer_matches(deconv4x4(xt, wt, bt, st), want, xt, f"de{where}")
            if shape == CONV_SHAPES[1]:  # the custom ops run the same kernel: one shape shows they are wired through
                assert_layer_matches(fused_deconv4x4(xt, wt, bt, st), want, xt, f"op de{where}")
        if shape == CONV_SHAPES[1]:
            assert_layer_matches(fused_conv3x3(x, weight, bias, slope, res, stride),
                                 reference(x, weight, bias, slope, res, stride, False), x, f"op {where}")


def test_interpreter_matches_pytorch() -> None:
    pytest.importorskip("triton", reason="rife.triton_conv needs Triton")
    # The interpreter must be chosen before triton is imported, so the checks run in a fresh process.
    proc = subprocess.run([sys.executable, __file__], env={**os.environ, "TRITON_INTERPRET": "1"}, cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_refuses_what_it_cannot_compute() -> None:
    pytest.importorskip("triton", reason="rife.triton_conv needs Triton")
    from rife.triton_conv import conv3x3

    x, weight, bias, slope = layer_inputs(1, 8, 16, 4, 4, torch.float16, True, False, "cpu")
    with pytest.raises(ValueError, match="fp16 or bf16"):
        conv3x3(x.float(), weight.float(), bias)
    with pytest.raises(ValueError, match="for an input of 8 channels"):
        conv3x3(x, weight[:, :4].contiguous(), bias)
    with pytest.raises(ValueError, match="residual"):
        conv3x3(x, weight, bias, residual=torch.zeros(1, 16, 2, 2, dtype=torch.float16))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_pytorch_and_compiles() -> None:
    pytest.importorskip("triton", reason="rife.triton_conv needs Triton")
    from torch._dynamo.utils import counters

    from rife.triton_conv import fused_conv3x3, fused_deconv4x4

    torch.manual_seed(0)
    # Shapes of the fast network at 720p: a block's stride-2 input layer, its body, the refinement's deconvolution.
    for dtype, (n, c_in, c_out, h, w, stride) in itertools.product(
            (torch.float16, torch.bfloat16), ((1, 16, 32, 720, 1280, 2), (1, 96, 96, 90, 160, 1),
                                              (2, 240, 240, 23, 40, 1), (1, 32, 8, 5, 3, 1))):
        x, weight, bias, slope = layer_inputs(n, c_in, c_out, h, w, dtype, True, False, "cuda")
        res = torch.randn(n, c_out, (h - 1) // stride + 1, (w - 1) // stride + 1, device="cuda").to(dtype).contiguous(
            memory_format=torch.channels_last) if stride == 1 else None
        where = f"conv {(n, c_in, c_out, h, w, stride)} {dtype}"
        assert_layer_matches(fused_conv3x3(x, weight, bias, slope, res, stride),
                             reference(x, weight, bias, slope, res, stride, False), x, where)
        xt, wt, bt, st = layer_inputs(n, c_in, c_out, h, w, dtype, True, True, "cuda")
        assert_layer_matches(fused_deconv4x4(xt, wt, bt, st), reference(xt, wt, bt, st, None, 2, True), xt,
                             f"de{where}")

    # The ops stay in the graph (fullgraph) and in its CUDA graph (reduce-overhead); several calls replay them.
    _, wt, bt, _ = layer_inputs(1, c_out, 16, 1, 1, dtype, True, True, "cuda")

    def layers(a: Tensor) -> Tensor:
        return fused_deconv4x4(fused_conv3x3(a, weight, bias, slope, None, 1), wt, bt, None)

    counters.clear()
    compiled = torch.compile(layers, fullgraph=True, mode="reduce-overhead")
    want = layers(x)
    for _ in range(3):
        got = compiled(x).clone()
    assert torch.equal(got, want)
    assert counters["inductor"]["cudagraph_skips"] == 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    interpreter_checks()
