"""Execution modes: how the system under test runs the network.

- ``eager``: the reference's way (model cast to the precision, NCHW, no autotuning).
- ``graph``: the whole forward captured in one CUDA graph over static buffers, one graph per
  input shape and timestep, captured on first use (that is, during the warm-up).
- ``compile``: ``torch.compile`` (default mode).
- ``fast``: our optimised path. On CUDA: convolution widths padded with zero weights to multiples
  of 16 and the channel counts at the sub-networks' edges to multiples of 8 (exact), channels_last,
  cuDNN autotuning, the transposed convolutions as forward convolutions and a pixel shuffle (exact,
  ``SubpixelDeconv``; in the blocks' heads the last shuffles are left to the kernels that read them,
  ``unshuffled_heads``), each block's input (the frames warped where it reads them, resized and concatenated), each
  block's flow step (resize, scale, add; the last block's also both warps, the retry's choice of candidate and, for
  v4.0, the blend) and each other warp one Triton kernel computing in fp32 (``rife.triton_warp``), the
  large-motion retry decided on the device with its two candidates on two CUDA streams at once (and the paper
  refinement's first level beside its context network, the same way),
  ``torch.compile`` of each stage of the forward (which fuses the PReLUs, adds and concatenations
  into a few generated kernels; it compiles once per input shape during the warm-up, about a
  minute), and one CUDA graph around it all. On the CPU and XPU: channels_last and fp32 warps.
  Under autocast (the CPU's bf16, ``--amp``) the convolution weights are stored in the autocast dtype.

A plan is carried out in three parts: ``rebuilt`` (the network as the plan computes it: widths, transposed
convolutions, ``rife.kernels.Kernels``), ``wrapped`` (torch.compile, the CUDA graph, IPEX) and ``settings_for`` (the
process-wide torch settings it runs under, set around each call and recorded in the results).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rife import families, fused_conv
from rife.ifnet import IFNet
from rife.kernels import A, B, Kernels, one_after_another
from rife.layers import memory_format_of, round_up
from rife.vocabulary import EXECUTIONS

WIDTH_MULTIPLE = 16
EDGE_MULTIPLE = 8  # fp16 tensor-core convolutions want channel counts in multiples of 8
# The Triton block-input kernel writes 32 channels in half the time of 24 (H200, 720p): paper's 17-channel inputs.
INPUT_MULTIPLE = 16
HIGH_PRIORITY = -1  # CUDA stream priorities: lower is higher; 0 is the default
T = TypeVar("T")
# The graph breaks at each flow step make every block, at each of its scales, a frame of its own: more than dynamo's
# default of 8 recompiles per function, after which it would run them uncompiled.
STAGE_RECOMPILE_LIMIT = 64


class ExecutionError(Exception):
    pass


@dataclass(frozen=True)
class ExecutionPlan:
    mode: str
    channels_last: bool
    widen: bool
    graph: bool
    compile: bool
    cudnn_benchmark: bool
    fused_kernels: bool
    two_streams: bool  # independent parts of a frame on two CUDA streams, each stage compiled on its own
    subpixel_deconvs: bool  # transposed convolutions as forward convolutions and a pixel shuffle
    # The blocks' heads' last pixel shuffles left to the flow step's reads (``unshuffled_heads``)
    unshuffled_heads: bool = False
    retry_on_host: bool = False  # the large-motion retry run only when the host sees a sample want it
    fused_convs: bool = False  # conv + bias + PReLU (+ residual) as one cuDNN graph where it pays (rife.fused_conv)
    tuned_convs: bool = False  # each fused graph runs the fastest of cuDNN's first plans, timed on its first input
    ipex: bool = False  # Intel XPU: the network through ipex.optimize


def default_execution(impl: str) -> str:
    """``fast`` for our implementation; the upstream code runs the reference's way."""
    return "fast" if impl == "ours" else "eager"


def plan_for(mode: str, device: torch.device, ours: bool = True, ipex: bool = False) -> ExecutionPlan:
    """How ``mode`` runs on ``device``; ``ours`` is False for the upstream code; ``ipex``: on an XPU, through
    ipex.optimize."""
    if mode not in EXECUTIONS:
        raise ExecutionError(f"--execution {mode!r} is not one of {', '.join(EXECUTIONS)}")
    cuda = device.type == "cuda"
    if not ours and cuda and mode in ("graph", "fast"):
        raise ExecutionError(f"--execution {mode} runs our implementation only (the upstream code decides its retry on "
                             "the host, which a CUDA graph cannot hold); use eager or compile with --model-impl upstream")
    if mode == "fast" and cuda and ours:
        _fused_kernels()  # refused here, before any stream starts, when Triton is missing
    if mode == "graph" and not cuda:
        raise ExecutionError(f"--execution graph needs CUDA graphs, which the {device.type} platform does not have; "
                             "use eager, compile or fast")
    return ExecutionPlan(
        mode=mode,
        channels_last=mode == "fast",
        widen=mode == "fast" and cuda,
        graph=mode == "graph" or (mode == "fast" and cuda),
        compile=mode == "compile" or (mode == "fast" and cuda),
        cudnn_benchmark=mode == "fast" and cuda,
        fused_kernels=mode == "fast" and cuda,
        two_streams=mode == "fast" and cuda,
        subpixel_deconvs=mode == "fast" and cuda,
        unshuffled_heads=mode == "fast" and cuda,
        retry_on_host=mode == "fast" and cuda,
        fused_convs=mode == "fast" and cuda,
        tuned_convs=mode == "fast" and cuda,
        ipex=ipex and device.type == "xpu",
    )


def widened(net: IFNet, multiple: int = WIDTH_MULTIPLE, edge_multiple: int = EDGE_MULTIPLE,
            input_multiple: int = INPUT_MULTIPLE) -> IFNet:
    """The same network with block widths rounded up to ``multiple``, the channel counts at the edges
    (the 5-channel flow/mask outputs, the context network's input, the refinement's output) to ``edge_multiple``,
    and the block and refinement inputs to ``input_multiple``.
    The added channels have zero weights and biases, so they stay zero through PReLU and add nothing:
    the output is unchanged."""
    variant = net.variant
    widths = tuple(round_up(w, multiple) for w in variant.block_widths)
    if variant.body_groups > 1 and widths != variant.block_widths:
        raise ValueError(f"{variant.name}: grouped convolutions cannot be widened by appending channels")
    wide = IFNet(dataclasses.replace(variant, block_widths=widths), channel_multiple=edge_multiple,
                 input_multiple=input_multiple, ensemble=net.ensemble, kernels=net.kernels)
    new_state = wide.state_dict()
    for key, old in net.state_dict().items():
        target = torch.zeros_like(new_state[key], dtype=old.dtype, device=old.device)
        target[tuple(slice(0, n) for n in old.shape)] = old
        new_state[key] = target
    wide.load_state_dict(new_state, assign=True)  # on the network's own device (the meta device too)
    first = next(net.parameters())
    return wide.to(device=first.device, dtype=first.dtype)


class SubpixelDeconv(nn.Module):
    """``nn.ConvTranspose2d(kernel 4, stride 2, padding 1)`` as a 3x3 convolution (padding 1) to the four output
    phases (row and column parity), then a pixel shuffle. Each output pixel gets the same four products per input
    channel (the other taps of the 3x3 kernel are exact zeros), summed in another order; cuDNN's forward
    convolutions are faster than its transposed ones here, and the shuffle fuses into the next elementwise kernel."""

    @staticmethod
    def fits(deconv: nn.ConvTranspose2d) -> bool:
        return (deconv.kernel_size, deconv.stride, deconv.padding, deconv.output_padding, deconv.groups,
                deconv.dilation) == ((4, 4), (2, 2), (1, 1), (0, 0), 1, (1, 1))

    def __init__(self, deconv: nn.ConvTranspose2d, shuffled: bool = True) -> None:
        super().__init__()
        # Unshuffled, the output is the convolution's: the four phases as channels, left to the flow step's reads
        # (``unshuffled_heads``).
        self.shuffled = shuffled
        if not self.fits(deconv):
            raise ValueError(f"{deconv} is not a kernel-4, stride-2, padding-1 transposed convolution")
        weight = deconv.weight.detach()  # (in, out, 4, 4)
        c_in, c_out = weight.shape[:2]
        phases = weight.new_zeros(c_out, 2, 2, c_in, 3, 3)  # output channel co * 4 + py * 2 + px, as pixel_shuffle
        for py, px, jy, jx in itertools.product((0, 1), repeat=4):
            # Output row 2m + py takes input rows m + py - jy through kernel rows 1 - py + 2 jy (the same for columns).
            phases[:, py, px, :, py - jy + 1, px - jx + 1] = weight[:, :, 1 - py + 2 * jy, 1 - px + 2 * jx].t()
        self.conv = nn.Conv2d(c_in, 4 * c_out, 3, 1, 1, bias=deconv.bias is not None).to(weight)
        with torch.no_grad():
            self.conv.weight.copy_(phases.reshape(4 * c_out, c_in, 3, 3))
            if deconv.bias is not None:
                cast(Tensor, self.conv.bias).copy_(deconv.bias.detach().repeat_interleave(4))

    def forward(self, x: Tensor) -> Tensor:
        if not self.shuffled:
            return self.conv(x)
        # In the input's memory format: compiled, the shuffle's kernel then writes whole pixels, not channel planes.
        return F.pixel_shuffle(self.conv(x), 2).contiguous(memory_format=memory_format_of(x))


def subpixel_deconvs(net: nn.Module) -> None:
    """Every transposed convolution in ``net`` that ``SubpixelDeconv`` computes replaced by it."""
    for module in list(net.modules()):
        for name, child in module.named_children():
            if isinstance(child, nn.ConvTranspose2d) and SubpixelDeconv.fits(child):
                setattr(module, name, SubpixelDeconv(child))


def unshuffled_heads(net: IFNet) -> int:
    """Each block's head with its last pixel shuffles left to the flow step's kernels (``Kernels.head_phases``), where
    only they read the block outputs (and the gather kernel a block's carried channels): a ``SubpixelDeconv`` head
    (one shuffle) or one followed by a pixel shuffle (two), where no trial reads them (v3.8's). Returns how many
    shuffles each head leaves (0: none, the network as it was)."""
    blocks: list[nn.Module] = list(net.blocks())  # a head's type differs by family
    heads = [getattr(block, "lastconv", None) for block in blocks]
    if net.variant.adaptive_scale:
        return 0
    if all(isinstance(h, SubpixelDeconv) for h in heads):
        phases = 1
    elif all(isinstance(h, nn.Sequential) and len(h) == 2 and isinstance(h[0], SubpixelDeconv)
             and isinstance(h[1], nn.PixelShuffle) and h[1].upscale_factor == 2 for h in heads):
        phases = 2
    else:
        return 0
    for block, head in zip(blocks, heads, strict=True):
        deconv = cast(SubpixelDeconv, head if phases == 1 else cast(nn.Sequential, head)[0])
        deconv.shuffled = False
        block.lastconv = deconv
    return phases


def capture(fn: Callable[[], T], device: torch.device, priority: int = 0) -> tuple[T, torch.cuda.CUDAGraph]:
    """``fn``'s work as a CUDA graph, and its outputs, which each replay rewrites. ``fn`` runs three times on a
    side stream first: autotuning, grid caches and lazy initialisation happen outside the capture."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    # The priority of the stream captured into (lower is higher; a CUDA graph keeps each kernel's priority).
    with torch.cuda.graph(graph, stream=torch.cuda.Stream(device, priority=priority)):
        out = fn()
    return out, graph


class GraphedNet(nn.Module):
    """Replays one CUDA graph per (shape, dtype, timestep, scale); inputs are copied into static buffers."""

    def __init__(self, net: nn.Module, capture_priority: int = 0) -> None:
        super().__init__()
        self.net = net
        self.capture_priority = capture_priority
        self._graphs: dict[tuple, tuple[Tensor, Tensor, Tensor, torch.cuda.CUDAGraph]] = {}

    def forward(self, img0: Tensor, img1: Tensor, timestep: float = 0.5, scale: float = 1.0,
                follows: bool = False) -> Tensor:
        features = getattr(self.net, "frame_features", None)
        kept = features if follows and features is not None and features.held else None
        key = (*graph_key(img0, timestep, scale), kept is not None)
        entry = self._graphs.get(key) or self._capture(key, img0, img1, float(timestep), scale, kept)
        static0, static1, out, graph = entry
        static0.copy_(img0)
        static1.copy_(img1)
        graph.replay()
        return out.clone()  # the next replay overwrites ``out``; recursive midpoints feed outputs back in

    def _capture(self, key: tuple, img0: Tensor, img1: Tensor, timestep: float, scale: float,
                 kept: families.FrameFeatures | None):
        """``kept``: the network's kept features, where the captured call follows the last (``IFNet.forward``'s
        ``follows``, passed only then: other networks do not take it)."""
        static0, static1 = img0.clone(), img1.clone()
        kwargs = {"follows": True} if kept is not None else {}
        # The capture's warm-up calls keep their own frames' features: the call being captured follows the last
        # call before them.
        with kept.unchanged() if kept is not None else contextlib.nullcontext():
            out, graph = capture(lambda: self.net(static0, static1, timestep, scale, **kwargs), img0.device,
                                 self.capture_priority)
        self._graphs[key] = (static0, static1, out, graph)
        return self._graphs[key]


def graph_key(img0: Tensor, timestep: float, scale: float) -> tuple:
    return (tuple(img0.shape), img0.dtype, img0.is_contiguous(memory_format=torch.channels_last), float(timestep),
            float(scale))


class GraphedRetryOnHost(nn.Module):
    """An IFNet whose second pass the host decides (``IFNet.decides_on_host``): v4.0's large-motion retry, run as the
    normal pass to the retry's block (``IFNet.head``), then at once the rest of it (``IFNet.tail``); or v3.8's trial
    block (``head``), then at once the pass at the normal scales (``tail``). Only when a sample wants the second pass
    is the whole pass run again with both candidates, chosen per sample (``IFNet.forward`` decided on the device).
    Frames without large motion so skip the retry's work (a fifth of a v4.0 frame, half of a v3.8 one); the output
    is ``forward``'s in either case.

    Three CUDA graphs per input key: head (which also copies whether any sample wants the second pass to pinned host
    memory), tail and the whole pass. The tail is queued before the host waits for the head's answer, so the device
    does not wait for the host."""

    def __init__(self, net: IFNet, capture_priority: int = 0) -> None:
        super().__init__()
        self.net = net
        self.capture_priority = capture_priority
        self._graphs: dict[tuple, _RetryGraphs] = {}

    def forward(self, img0: Tensor, img1: Tensor, timestep: float = 0.5, scale: float = 1.0) -> Tensor:
        key = graph_key(img0, timestep, scale)
        g = self._graphs.get(key) or self._capture(key, img0, img1, float(timestep), scale)
        g.img0.copy_(img0)
        g.img1.copy_(img1)
        g.head.replay()
        answered = torch.cuda.Event()
        answered.record()
        g.tail.replay()
        answered.synchronize()
        if bool(g.wants_retry_host):
            g.whole.replay()
            return g.whole_out.clone()
        return g.tail_out.clone()

    def _capture(self, key: tuple, img0: Tensor, img1: Tensor, timestep: float, scale: float) -> _RetryGraphs:
        net, device, priority = self.net, img0.device, self.capture_priority
        static0, static1 = img0.clone(), img1.clone()
        flag = torch.zeros((), dtype=torch.bool, pin_memory=True)

        def head():
            state, wants_retry = net.head(static0, static1, timestep, scale)
            flag.copy_(wants_retry.any(), non_blocking=True)
            return state

        state, head_graph = capture(head, device, priority)
        tail_out, tail_graph = capture(lambda: net.tail(static0, static1, state, timestep, scale), device, priority)
        whole_out, whole_graph = capture(lambda: net(static0, static1, timestep, scale), device, priority)
        self._graphs[key] = _RetryGraphs(static0, static1, flag, head_graph, tail_graph, tail_out, whole_graph,
                                         whole_out)
        return self._graphs[key]


class _RetryGraphs(NamedTuple):
    img0: Tensor
    img1: Tensor
    wants_retry_host: Tensor
    head: torch.cuda.CUDAGraph
    tail: torch.cuda.CUDAGraph
    tail_out: Tensor
    whole: torch.cuda.CUDAGraph
    whole_out: Tensor


class TwoStreams:
    """Runs the second of two independent computations on a side CUDA stream while the first runs on the
    current one, then joins them: a fork and a join that a CUDA graph capture keeps as parallel branches."""

    def __init__(self, device: torch.device, priority: int = 0) -> None:
        self.side = torch.cuda.Stream(device, priority=priority)

    def __call__(self, first: Callable[[], A], second: Callable[[], B]) -> tuple[A, B]:
        main = torch.cuda.current_stream(self.side.device)
        self.side.wait_stream(main)
        with torch.cuda.stream(self.side):
            b = second()
        a = first()
        main.wait_stream(self.side)
        if not torch.cuda.is_current_stream_capturing():  # a capture keeps its memory until the graph is freed
            for t in _tensors(b):
                t.record_stream(main)  # made on the side stream, used and freed on this one
        return a, b


def _tensors(x: object) -> Iterator[Tensor]:
    if isinstance(x, Tensor):
        yield x
    elif isinstance(x, tuple | list):
        for item in x:
            yield from _tensors(item)


def _fused_kernels() -> Kernels:
    """The Triton warp, flow steps and block input (``rife.triton_warp``), or one clear refusal."""
    from rife import triton_warp

    if not triton_warp.available():
        raise ExecutionError("--execution fast on CUDA needs Triton and PyTorch 2.6 or later for its fused warp "
                             "(PyTorch's CUDA wheels bring Triton): install them, or use --execution graph")
    # The steps and the block input run between compiled graphs (graph breaks, free under the CUDA graph): see
    # rife.triton_warp.
    return Kernels(warp=triton_warp.fused_warp, step=torch.compiler.disable(triton_warp.step),
                   settle=torch.compiler.disable(triton_warp.settle), feed=torch.compiler.disable(triton_warp.feed),
                   gather=torch.compiler.disable(triton_warp.gather))


def kernels_for(plan: ExecutionPlan, device: torch.device) -> Kernels:
    """How our network computes under ``plan`` on ``device``."""
    fused = _fused_kernels() if plan.fused_kernels else Kernels()
    return dataclasses.replace(
        fused,
        fp32_warps=plan.mode == "fast",
        cache_grids=not plan.compile,  # compiled code builds the base grid itself, fused
        retry_on_device=plan.graph or plan.compile,
        fork_join=TwoStreams(device) if plan.two_streams and device.type == "cuda" else one_after_another,
        conv=fused_conv.fused_units(fused_conv.CudnnContext(device, tune=plan.tuned_convs))
        if plan.fused_convs and fused_conv.available() else None,
    )


def store_conv_weights(net: nn.Module, dtype: torch.dtype) -> None:
    """Convolution weights kept in the autocast dtype. Autocast casts them to it the same way (round to
    nearest) on every call, and its cache is emptied when each call's autocast region ends: storing them
    cast gives the same numbers without those copies (14% of a v4.0 frame on the CPU)."""
    for module in net.modules():
        if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
            module.to(dtype)


def for_network(plan: ExecutionPlan, net: nn.Module) -> ExecutionPlan:
    """What of ``plan`` a network takes: the families beyond the paper / 4.0 arithmetic (``IFNet.general``: v3.x,
    Practical-RIFE 4.2+) have no second stream, and only their block widths are widened. On CUDA, ``fast`` runs
    v3.5-v3.8 and Practical-RIFE 4.2+ (the ensemble too, where no channels are carried) through the Triton kernels
    (``rife.families.FusedPass``) with block inputs padded to multiples of 8 channels (zero weights), subpixel
    transposed convolutions and each block and the encoder compiled, v3.8's doubled scales decided on the host
    (``GraphedRetryOnHost``); the others (v3.1, the ensemble with carried channels) with fp32 warps and
    ``torch.compile`` of the whole forward; all with fused convolution units (``rife.fused_conv``), channels_last,
    cuDNN autotuning and CUDA graphs."""
    if isinstance(net, IFNet) and net.general:
        fused = plan.fused_kernels and families.FusedPass.fits(net.variant, net.ensemble)
        return dataclasses.replace(plan, fused_kernels=fused, two_streams=False,
                                   subpixel_deconvs=plan.subpixel_deconvs and fused,
                                   unshuffled_heads=plan.unshuffled_heads and fused,
                                   retry_on_host=plan.retry_on_host and fused and net.variant.adaptive_scale)
    return plan


def rebuilt(net: nn.Module, plan: ExecutionPlan, autocast_dtype: torch.dtype | None = None) -> nn.Module:
    """The network as ``plan`` computes it (already on its device and in its dtype; ``autocast_dtype`` when it
    runs under autocast): our IFNet with its widths, transposed convolutions and kernels; every network in
    ``plan``'s memory format."""
    if isinstance(net, IFNet):
        if plan.widen and net.general:
            # Widths to multiples of 16, so that they and the first units' halves are rows of 8 for the tensor cores
            # and the fused units: v3.x's 90 and 4.25.lite's 24; the others are there already. Only the Triton pass
            # zero-fills the padded channels of a block's input.
            net = widened(net, WIDTH_MULTIPLE, edge_multiple=1, input_multiple=1)
            if plan.fused_kernels:
                for block in net.blocks():
                    cast(families.FamilyBlock, block).pad_input(EDGE_MULTIPLE)
        elif plan.widen:
            net = widened(net)
        kernels = kernels_for(plan, next(net.parameters()).device)
        if plan.subpixel_deconvs:
            subpixel_deconvs(net)
            if plan.unshuffled_heads and plan.fused_kernels:
                kernels = dataclasses.replace(kernels, head_phases=unshuffled_heads(net))
        net = net.with_kernels(kernels)
    if plan.mode == "fast" and autocast_dtype is not None:
        store_conv_weights(net, autocast_dtype)
    if plan.channels_last:
        net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs omit it
    return net


def wrapped(net: nn.Module, plan: ExecutionPlan, dtype: torch.dtype) -> nn.Module:
    """``rebuilt``'s network run as ``plan`` runs it: compiled (with two streams, stage by stage: the streams switch
    between the stages, outside compiled code), in one CUDA graph, through IPEX (``dtype``: the precision's)."""
    if plan.compile and isinstance(net, IFNet) and net.fused_general:
        for part in net.compiled_parts():
            part.compile()
    elif plan.compile and plan.two_streams and isinstance(net, IFNet):
        net.classic.compile_stages(torch.compile)
    elif plan.compile:
        net = cast(nn.Module, torch.compile(net))  # a module's compiled form is a module
    if plan.graph:
        # With two streams, the captured (main) one gets the higher priority: v4.0's retry candidate on the side
        # stream then fills the SMs the main pass leaves idle instead of delaying it (+1-3% at 720p, measured).
        priority = HIGH_PRIORITY if plan.two_streams else 0
        if plan.retry_on_host and isinstance(net, IFNet) and net.decides_on_host:
            net = GraphedRetryOnHost(net, capture_priority=priority)
        else:
            net = GraphedNet(net, capture_priority=priority)
    if plan.ipex:
        net = ipex_optimized(net, dtype)
    return net


def ipex_optimized(net: nn.Module, dtype: torch.dtype) -> nn.Module:
    try:
        import intel_extension_for_pytorch as ipex  # noqa: F401 (XPU users only)
    except ImportError:
        raise ExecutionError("IPEX=yes but intel_extension_for_pytorch does not import; install it or set IPEX=no "
                             "to use PyTorch's own XPU backend") from None
    return ipex.optimize(net, dtype=dtype)


@dataclass(frozen=True)
class TorchSettings:
    """The process-wide torch settings a plan runs under, set around each call of the network and restored after
    it (``applied``), so that other work in the process (other engines, the quality scores) keeps its own. None
    leaves a setting as it is."""

    cudnn_benchmark: bool | None = None  # cuDNN autotuning of each convolution shape
    recompile_limit: int | None = None  # dynamo's recompiles per function, at least (default 8)

    def record(self) -> dict[str, bool | int]:
        """The settings made, by torch's names, for the results."""
        named = {"torch.backends.cudnn.benchmark": self.cudnn_benchmark,
                 "torch._dynamo.config.recompile_limit": self.recompile_limit}
        return {name: value for name, value in named.items() if value is not None}

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        saved_benchmark = torch.backends.cudnn.benchmark
        if self.cudnn_benchmark is not None:
            torch.backends.cudnn.benchmark = self.cudnn_benchmark
        limited: Any = None  # dynamo's config module, whose settings mypy does not see
        if self.recompile_limit is not None:
            from torch._dynamo import config

            limited, saved_limit = config, config.recompile_limit
            config.recompile_limit = max(saved_limit, self.recompile_limit)
        try:
            yield
        finally:
            torch.backends.cudnn.benchmark = saved_benchmark
            if limited is not None:
                limited.recompile_limit = saved_limit


def settings_for(plan: ExecutionPlan) -> TorchSettings:
    """What ``plan`` sets while its network runs (compiled stage by stage, with two streams: many recompiles)."""
    return TorchSettings(cudnn_benchmark=True if plan.cudnn_benchmark else None,
                         recompile_limit=STAGE_RECOMPILE_LIMIT if plan.compile and plan.two_streams else None)
