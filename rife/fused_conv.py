"""Convolutions with their epilogues fused, through cuDNN's runtime fusion (the ``nvidia-cudnn-frontend`` package).

A RIFE convolution unit is a 3x3 convolution, its bias and a PReLU with a slope per channel or a LeakyReLU (and, at
the end of a v4.0 block's convolution stack, the block's residual add; in Practical-RIFE 4.5+'s ``ResConv``, the
unit's input added before the activation). Run by PyTorch these are a cuDNN convolution and a separate
elementwise kernel that reads and writes the activation once more; at the small activations of batch 1 the second
kernel costs about as much as the convolution. ``FusedConvUnit`` computes all of it in one cuDNN graph (the
convolution with a pointwise epilogue computed in fp32 before the one rounding to fp16/bf16), built once per input
shape. Where fusion does not pay (large activations, where cuDNN's plain convolution is faster than its fused
engines) or cannot run (not CUDA, no frontend, a graph cuDNN does not support), it is the unit as PyTorch runs it,
traced by ``torch.compile`` like any other module.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any, NamedTuple, cast

import torch
from torch import Tensor, nn

from rife.kernels import ConvKernel
from rife.layers import ResConv, is_conv_unit, replace_conv_units

try:
    import cudnn
except ImportError:  # the package is optional: without it the units run as PyTorch runs them
    cudnn = None

# Fuse where the output has at most this many pixels (batch x height x width) and a channel count cuDNN's fused
# engines handle well (up to 128, or a multiple of 64). Chosen on an H200 from every unit shape of both models at
# 720p, batch 1 and 8 (dev/conv_shapes.py), and from whole frames: on larger activations cuDNN's plain convolution
# plus a separate epilogue is faster than its fused engines, and on 160 or 240 output channels (paper's blocks) the
# fused engines are up to 1.8x slower than the plain convolution.
FUSE_MAX_PIXELS = 131072
FUSE_ANY_CHANNELS_UP_TO = 128
FUSE_CHANNEL_MULTIPLE = 64
# Input and output channels in multiples of 8 (fp16/bf16 tensor-core rows) only: v3.x's 45- and 90-channel units,
# fused, lost 40 dB against fp32 on an H100 (36.5 dB with the real v3.6 weights, unfused 77), where every unit with
# channel counts in multiples of 8 kept the fp32 figures.
FUSE_TENSOR_CORE_MULTIPLE = 8
# Tuning (``CudnnContext.tune``): the first plans of cuDNN's heuristic ranking timed on a unit's first input, the
# fastest whose output matches the first plan's kept. Plans are built (and their kernels compiled) only here.
TUNED_PLANS = 6
TUNE_CALLS = 20
QUEUE_FILL_CYCLES = 5_000_000  # a few milliseconds of GPU clock: longer than the host takes to queue the calls


def fusable_shape(c_in: int, c_out: int, out_pixels: int) -> bool:
    """Whether a unit fuses where it may (CUDA, fp16/bf16, channels_last), by its channels and its output's pixels
    (batch x height x width)."""
    tensor_core_rows = c_in % FUSE_TENSOR_CORE_MULTIPLE == 0 and c_out % FUSE_TENSOR_CORE_MULTIPLE == 0
    engines_win = c_out <= FUSE_ANY_CHANNELS_UP_TO or c_out % FUSE_CHANNEL_MULTIPLE == 0
    return tensor_core_rows and engines_win and out_pixels <= FUSE_MAX_PIXELS


def available() -> bool:
    """Whether the cuDNN frontend imports (``pip install nvidia-cudnn-frontend``)."""
    return cudnn is not None


class CudnnContext:
    """The cuDNN handle the fused graphs of one device run on (its stream set to the caller's before each call);
    ``tune``: each graph runs the fastest of its first ``TUNED_PLANS`` plans on its first input, else cuDNN's first
    choice."""

    def __init__(self, device: torch.device, tune: bool = False) -> None:
        with torch.cuda.device(device):
            self.handle = cudnn.create_handle()
        self.device = device
        self.tune = tune
        self.graphs: dict[tuple, _Graph] = {}  # built once per unit shape, shared by the units of that shape

    def on_current_stream(self) -> Any:
        cudnn.set_stream(handle=self.handle, stream=torch.cuda.current_stream(self.device).cuda_stream)
        return self.handle


_CUDNN_TYPES = {torch.float16: "HALF", torch.bfloat16: "BFLOAT16", torch.float32: "FLOAT"}


class FusedConvUnit(nn.Module):
    """A convolution unit (``rife.layers.is_conv_unit``) as one fused cuDNN graph per input shape where ``fuses``
    says so; the unit as PyTorch runs it otherwise (and on every failure to build). Either
    ``nn.Sequential(Conv2d(3x3, padding 1), PReLU or LeakyReLU)``, optionally followed by a residual add, or a
    ``ResConv`` (``LeakyReLU(conv(x) * beta + x)``: ``beta`` folded into the weights and bias, ``x`` added before
    the activation)."""

    takes_residual = True
    wraps_unit = True

    def __init__(self, unit: nn.Module, context: CudnnContext | None) -> None:
        super().__init__()
        self.unit = unit  # one that ``fits``
        self.context = context
        self._graphs: dict[tuple, _Fused | None] = {}

    @property
    def conv(self) -> nn.Conv2d:
        return cast(nn.Conv2d, self.unit.conv if isinstance(self.unit, ResConv) else cast(nn.Sequential, self.unit)[0])

    @staticmethod
    def fits(unit: nn.Module) -> bool:
        if isinstance(unit, ResConv):
            conv: nn.Module = unit.conv
        elif is_conv_unit(unit):
            conv, act = cast(nn.Sequential, unit)[0], cast(nn.Sequential, unit)[1]
            if isinstance(act, nn.PReLU) and act.num_parameters != cast(nn.Conv2d, conv).out_channels:
                return False  # one slope shared by every channel
        else:
            return False
        assert isinstance(conv, nn.Conv2d)
        return (conv.kernel_size == (3, 3) and conv.padding == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1
                and conv.bias is not None)

    def fuses(self, x: Tensor) -> bool:
        """Decided from static facts only (device, dtype, layout, shape), so that ``torch.compile`` specialises on
        it: fused shapes become a call outside the compiled graph, the others compile as before."""
        if self.context is None or x.device.type != "cuda" or x.dtype not in (torch.float16, torch.bfloat16):
            return False
        if not x.is_contiguous(memory_format=torch.channels_last):
            return False
        n, c, h, w = x.shape
        stride = self.conv.stride[0]
        return fusable_shape(c, self.conv.out_channels, n * -(-h // stride) * -(-w // stride))

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        if self.fuses(x):
            return self._fused(x, residual)
        return self.unfused(x, residual)

    def unfused(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        y = self.unit(x)
        return y if residual is None else y + residual

    def folded(self) -> tuple[Tensor, Tensor, Tensor]:
        """The fused graph's weight, bias and per-channel negative slope (a ``ResConv``'s ``beta`` folded into the
        first two: ``conv(x) * beta = conv'(x)`` with ``w' = w * beta``, ``b' = b * beta``), in fp32."""
        conv = self.conv
        k = conv.out_channels
        weight, bias = conv.weight.detach().float(), cast(Tensor, conv.bias).detach().float()
        if isinstance(self.unit, ResConv):
            beta = self.unit.beta.detach().float().reshape(k)
            return weight * beta.view(k, 1, 1, 1), bias * beta, torch.full_like(bias, self.unit.relu.negative_slope)
        act = cast(nn.Sequential, self.unit)[1]
        if isinstance(act, nn.PReLU):
            return weight, bias, act.weight.detach().float()
        return weight, bias, torch.full_like(bias, cast(nn.LeakyReLU, act).negative_slope)

    @torch.compiler.disable
    def _fused(self, x: Tensor, residual: Tensor | None) -> Tensor:
        key = (tuple(x.shape), x.dtype, x.device, residual is not None)
        if key not in self._graphs:
            self._graphs[key] = self._build(x, residual)
        fused = self._graphs[key]
        if fused is None:
            return self.unfused(x, residual)
        return fused(x, residual, cast(CudnnContext, self.context).on_current_stream())  # ``fuses``: a context

    def _build(self, x: Tensor, residual: Tensor | None) -> _Fused | None:
        context = cast(CudnnContext, self.context)  # ``fuses``: a context
        tensors = _UnitTensors.of(*self.folded(), x.dtype)
        stride, input_residual = self.conv.stride[0], isinstance(self.unit, ResConv)
        key = (tuple(x.shape), x.dtype, x.device, tensors.weight.shape[0], stride, input_residual, residual is not None)
        try:
            if key not in context.graphs:
                handle = context.on_current_stream()
                graph = _Graph(tensors, stride, x, residual, input_residual, handle)
                if context.tune and not torch.cuda.is_current_stream_capturing():
                    graph.tune(x, tensors, residual, handle)
                context.graphs[key] = graph
            return _Fused(tensors, context.graphs[key])
        except Exception as e:  # cuDNN has no engine for this graph here: PyTorch's way for this shape
            warnings.warn(f"fused convolution {tuple(x.shape)} -> {self.conv.out_channels} unsupported by cuDNN "
                          f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); running it unfused",
                          stacklevel=2)
            return None


class _UnitTensors(NamedTuple):
    """A unit's folded weight, bias and slope (``FusedConvUnit.folded``) in the graph's dtype and layout."""

    weight: Tensor
    bias: Tensor
    slope: Tensor

    @classmethod
    def of(cls, weight: Tensor, bias: Tensor, slope: Tensor, dtype: torch.dtype) -> _UnitTensors:
        k = weight.shape[0]
        return cls(weight.to(dtype).contiguous(memory_format=torch.channels_last), bias.to(dtype).view(1, k, 1, 1),
                   slope.to(dtype).view(1, k, 1, 1))


class _Fused:
    """One unit's fused form: its tensors, and the graph of its shape (shared by every unit of that shape)."""

    def __init__(self, tensors: _UnitTensors, graph: _Graph) -> None:
        self.tensors = tensors
        self.graph = graph

    def __call__(self, x: Tensor, residual: Tensor | None, handle: Any) -> Tensor:
        return self.graph(x, self.tensors, residual, handle)


class _Graph:
    """One built cuDNN graph: conv + bias, [+ the input x (``input_residual``)], the activation (slope · min(y, 0) +
    max(y, 0), composed), [+ residual]. The unit's tensors are operands, so that units of one shape share it."""

    def __init__(self, unit: _UnitTensors, stride: int, x: Tensor, residual: Tensor | None, input_residual: bool,
                 handle: Any) -> None:
        io = getattr(cudnn.data_type, _CUDNN_TYPES[x.dtype])
        fp32 = cudnn.data_type.FLOAT
        k = unit.weight.shape[0]
        n, _, h, w = x.shape
        ho, wo = -(-h // stride), -(-w // stride)
        self.out_shape = (n, k, ho, wo)
        g = cudnn.pygraph(io_data_type=io, intermediate_data_type=fp32, compute_data_type=fp32, handle=handle,
                          is_cuda_graph_replay_expected=True)
        self.x_t, self.w_t = g.tensor_like(x), g.tensor_like(unit.weight)
        self.b_t, self.s_t = g.tensor_like(unit.bias), g.tensor_like(unit.slope)
        y = g.conv_fprop(image=self.x_t, weight=self.w_t, padding=[1, 1], stride=[stride, stride], dilation=[1, 1],
                         compute_data_type=fp32)
        y = g.add(a=y, b=self.b_t)
        # The input again, as a tensor of its own (the same memory at execution): the epilogue's operand.
        self.x_again_t = g.tensor_like(x) if input_residual else None
        if self.x_again_t is not None:
            y = g.add(a=y, b=self.x_again_t)
        pos = g.relu(input=y)
        out = g.add(a=pos, b=g.mul(a=g.sub(a=y, b=pos), b=self.s_t))
        self.r_t = None
        if residual is not None:
            self.r_t = g.tensor_like(residual.contiguous(memory_format=torch.channels_last))
            out = g.add(a=out, b=self.r_t)
        out.set_output(True).set_data_type(io).set_dim(list(self.out_shape)).set_stride([ho * wo * k, 1, wo * k, k])
        self.o_t = out
        g.build([cudnn.heur_mode.A, cudnn.heur_mode.FALLBACK])
        self.graph = g
        self.workspace = torch.empty(g.get_workspace_size(), device=x.device, dtype=torch.uint8)

    def __call__(self, x: Tensor, unit: _UnitTensors, residual: Tensor | None, handle: Any) -> Tensor:
        out = torch.empty(self.out_shape, device=x.device, dtype=x.dtype, memory_format=torch.channels_last)
        self.graph.execute(self._pack(x, unit, residual, out), self.workspace, handle=handle)
        return out

    def _pack(self, x: Tensor, unit: _UnitTensors, residual: Tensor | None, out: Tensor) -> dict:
        pack = {self.x_t: x, self.w_t: unit.weight, self.b_t: unit.bias, self.s_t: unit.slope, self.o_t: out}
        if self.x_again_t is not None:
            pack[self.x_again_t] = x
        if self.r_t is not None:
            pack[self.r_t] = cast(Tensor, residual).contiguous(memory_format=torch.channels_last)
        return pack

    def tune(self, x: Tensor, unit: _UnitTensors, residual: Tensor | None, handle: Any) -> None:
        """Selects the fastest of the first ``TUNED_PLANS`` plans on ``x`` whose output is within a few units in
        the last place of the first choice's (a plan that builds but computes otherwise is never taken)."""
        pack = self._pack(x, unit, residual, self(x, unit, residual, handle))
        first = pack[self.o_t]
        tolerance = 4 * torch.finfo(x.dtype).eps * max(1.0, float(first.float().abs().max()))
        pack[self.o_t] = torch.empty_like(first)
        timings: dict[int, float] = {}
        for index in range(min(TUNED_PLANS, self.graph.get_execution_plan_count())):
            try:
                timings[index] = self._timed_plan(index, pack, first, tolerance, handle)
            except Exception:  # a plan that does not build, run or agree here is not a candidate
                continue
        if not timings:  # the graph's selection was moved by the tries: not the first choice any more
            raise RuntimeError(f"none of the first {TUNED_PLANS} plans runs")
        self.graph.build_plan_at_index(min(timings, key=timings.__getitem__))
        self.workspace = torch.empty(self.graph.get_workspace_size(), device=x.device, dtype=torch.uint8)

    def _timed_plan(self, index: int, pack: dict, first: Tensor, tolerance: float, handle: Any) -> float:
        """Plan ``index``'s mean time on ``pack`` in milliseconds, its calls timed back to back (as in a CUDA graph,
        without the host's time between them); raises where its output differs from ``first``."""
        self.graph.build_plan_at_index(index)
        workspace = torch.empty(self.graph.get_workspace_size_plan_at_index(index), device=first.device,
                                dtype=torch.uint8)
        self.graph.execute_plan_at_index(pack, workspace, index=index, handle=handle)
        if float((pack[self.o_t].float() - first.float()).abs().max()) > tolerance:
            raise ValueError(f"plan {index} differs from the first choice")
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda._sleep(QUEUE_FILL_CYCLES)  # the calls queue up meanwhile and then run back to back
        start.record()
        for _ in range(TUNE_CALLS):
            self.graph.execute_plan_at_index(pack, workspace, index=index, handle=handle)
        stop.record()
        stop.synchronize()
        return start.elapsed_time(stop) / TUNE_CALLS


def status() -> str:
    """What ``fast`` on CUDA does with its convolution units, for the results."""
    if cudnn is None:
        return "unfused: nvidia-cudnn-frontend is not installed (setup.sh installs it where a CUDA torch is present)"
    return (f"fused by cuDNN (frontend {getattr(cudnn, '__version__', '?')}) up to {FUSE_MAX_PIXELS} output pixels "
            f"and up to {FUSE_ANY_CHANNELS_UP_TO} channels or multiples of {FUSE_CHANNEL_MULTIPLE}, in rows of "
            f"{FUSE_TENSOR_CORE_MULTIPLE} channels; one graph per unit shape, the fastest of cuDNN's first "
            f"{TUNED_PLANS} plans on its first input")


def fused_units(context: CudnnContext | None) -> ConvKernel:
    """``rife.kernels.Kernels.conv``: each convolution unit that ``FusedConvUnit`` computes as one, on ``context``."""

    def fused(unit: nn.Module) -> nn.Module:
        return FusedConvUnit(unit, context) if FusedConvUnit.fits(unit) else unit

    return fused


def fuse_conv_units(net: nn.Module, context: CudnnContext | None) -> int:
    """Every convolution unit of ``net`` that fits replaced by a ``FusedConvUnit``; returns how many."""
    return replace_conv_units(net, fused_units(context))


def reference(x: Tensor, unit: nn.Module, residual: Tensor | None = None) -> Tensor:
    """The unit (``FusedConvUnit.fits``) in fp32 (for checks), [+ residual]."""
    y = copy.deepcopy(unit).float()(x.float())
    return y if residual is None else y + residual.float()
