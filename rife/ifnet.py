"""One IFNet for every RIFE variant (see ``rife.variants``).

Module names and shapes follow the upstream checkpoints exactly, so an upstream
``flownet.pkl`` loads with strict key checking (``rife.checkpoint``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, cast

import torch
from torch import Tensor, nn

from rife import families
from rife.kernels import Candidate, FeedKernel, Kernels, SettleKernel, StepForm, StepKernel
from rife.layers import (
    ContextUNet,
    Conv2,
    Warper,
    cat_padded,
    conv_unit,
    flow_peaks,
    replace_conv_units,
    residual_through,
    resize,
    round_up,
    warp_both,
)
from rife.variants import CHANNELS_PER_INPUT, FLOW_CHANNELS, LargeMotionRetry, Variant


class IFBlock(nn.Module):
    """``channel_multiple`` > 1 rounds the output channel count up, ``input_multiple`` the input's (zero channels,
    zero weights)."""

    def __init__(self, in_ch: int, width: int, channel_multiple: int = 1, input_multiple: int = 1) -> None:
        super().__init__()
        self.in_channels = round_up(in_ch, input_multiple)
        self.conv0 = nn.Sequential(conv_unit(self.in_channels, width // 2, 2), conv_unit(width // 2, width, 2))
        self.convblock = nn.Sequential(*(conv_unit(width, width) for _ in range(8)))
        self.lastconv = nn.ConvTranspose2d(width, round_up(5, channel_multiple), 4, 2, 1)

    def forward(self, feed: Tensor) -> Tensor:
        """From the block's input (``BlockFeed``, at 1 / scale of the frame), the changes of flow (channels 0-3)
        and raw mask (channel 4) at 1 / (2 * scale) of the frame size; ``FlowStep`` brings them to full size."""
        feat = self.conv0(feed)
        return self.lastconv(residual_through(self.convblock, feat))


class ContextNet(nn.Module):
    def __init__(self, width: int, channel_multiple: int = 1) -> None:
        super().__init__()
        self.in_channels = round_up(3, channel_multiple)
        self.conv1 = Conv2(self.in_channels, width)
        self.conv2 = Conv2(width, 2 * width)
        self.conv3 = Conv2(2 * width, 4 * width)
        self.conv4 = Conv2(4 * width, 8 * width)

    def forward(self, x: Tensor, flow: Tensor, warp: Warper) -> list[Tensor]:
        features = []
        x = cat_padded([x], self.in_channels)
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            x = conv(x)
            flow = resize(flow, 0.5) * 0.5
            features.append(warp(x, flow))
        return features


class UNet(ContextUNet):
    """The refinement network of the paper model (17 input channels: ``INPUTS`` and the flow)."""

    def __init__(self, c: int, channel_multiple: int = 1, input_multiple: int = 1) -> None:
        super().__init__()
        self.in_channels = round_up(sum(CHANNELS_PER_INPUT[n] for n in self.INPUTS) + FLOW_CHANNELS, input_multiple)
        self.down0 = Conv2(self.in_channels, 2 * c)
        self._add_levels(c)
        self.conv = nn.Conv2d(c, round_up(3, channel_multiple), 3, 1, 1)  # callers read channels 0-2

    # What the first level reads (then the flow), as a ``BlockFeed`` at the frame's size builds it.
    INPUTS = ("img0", "img1", "warped0", "warped1", "mask")

    def encode(self, feed: Tensor) -> Tensor:
        """The first level, which needs no context features."""
        return self.down0(feed)

    def decode(self, s0: Tensor, ctx0: list[Tensor], ctx1: list[Tensor]) -> Tensor:
        """The rest, from ``encode``'s output and both frames' context features."""
        return torch.sigmoid(self.conv(self.levels(s0, ctx0, ctx1)))


class FlowState(NamedTuple):
    """What the blocks pass along: running flow and raw mask, and the frames warped by that flow (None where
    only the next block's input needed them and ``BlockFeed`` warped them there)."""

    flow: Tensor
    mask: Tensor
    warped0: Tensor | None
    warped1: Tensor | None

    def select(self, take_other: Tensor, other: FlowState) -> FlowState:
        """Per sample: ``other`` where ``take_other`` (shape N) is true, else self; both hold their warped frames."""
        pick = take_other.view(-1, 1, 1, 1)
        return FlowState(*(torch.where(pick, b, a) for a, b in zip(self, other, strict=True)))  # type: ignore[arg-type]


class Pending(NamedTuple):
    """The last block's output, not yet brought into the running state (``FlowStep.settle`` does that, for one
    candidate or, choosing per sample, for two)."""

    state: FlowState | None
    out: Tensor
    scale: float


def blend(state: FlowState) -> Tensor:
    """The frames warped by the flow, mixed by the sigmoid of the raw mask."""
    assert state.warped0 is not None and state.warped1 is not None  # a final state: its frames are warped
    mask = torch.sigmoid(state.mask)
    return state.warped0 * mask + state.warped1 * (1 - mask)


class FlowStep:
    """A block's output brought into the running state: resized to the frame (factor 2 * scale), the flow
    part multiplied by 2 * scale, added to the running flow and raw mask, and, with ``warp_frames``, both frames
    warped by the new flow. With ``measure`` it also returns ``flow_peaks`` of the change. ``kernel`` may do all
    of it in one fused kernel with these semantics, taking and returning plain tensors (``rife.triton_warp.step``),
    and ``settle_kernel`` the final step of ``settle`` and ``blended`` (``rife.triton_warp.settle``); the kernels
    read the block outputs as ``form`` says (``StepForm.phases``)."""

    def __init__(self, warp: Warper, kernel: StepKernel | None = None, settle_kernel: SettleKernel | None = None,
                 form: StepForm | None = None) -> None:
        self.warp = warp
        self.kernel = kernel
        self.settle_kernel = settle_kernel
        self.form = form or StepForm()

    def __call__(self, out: Tensor, scale: float, state: FlowState | None, img0: Tensor, img1: Tensor,
                 measure: bool, warp_frames: bool = True) -> tuple[FlowState, Tensor | None]:
        prev_flow, prev_mask = (None, None) if state is None else (state.flow, state.mask)
        if self.kernel is not None:
            flow, mask, warped0, warped1, peaks = self.kernel(out, scale, prev_flow, prev_mask, img0, img1,
                                                              measure=measure, warp_frames=warp_frames, form=self.form)
            return FlowState(flow, mask, warped0, warped1), peaks
        if self.warp.fp32:  # flow arithmetic in fp32, in the layout the CPU resizes fastest (3.5x channels_last bf16)
            out = out.float().contiguous()
        out = resize(out, scale * 2)
        flow, mask = out[:, :4] * scale * 2, out[:, 4:5]
        peaks = flow_peaks(flow) if measure else None
        if state is not None:
            flow, mask = state.flow + flow, state.mask + mask
        warped = warp_both(self.warp, img0, img1, flow) if warp_frames else (None, None)
        return FlowState(flow, mask, *warped), peaks

    def settle(self, take_b: Tensor | None, a: Pending, b: Pending | None, img0: Tensor, img1: Tensor) -> FlowState:
        """The final state: per sample, candidate ``b`` brought into its state where ``take_b`` is true, else ``a``
        (``b`` and ``take_b`` None: ``a``)."""
        if self.settle_kernel is not None:
            return FlowState(*self.settle_kernel(take_b, _candidate(a), _candidate_or_none(b), img0, img1,
                                                 blend=False, form=self.form))
        state = self(a.out, a.scale, a.state, img0, img1, measure=False)[0]
        if b is None:
            return state
        assert take_b is not None  # given with ``b`` (``IFNet._choice``)
        return state.select(take_b, self(b.out, b.scale, b.state, img0, img1, measure=False)[0])

    def blended(self, take_b: Tensor | None, a: Pending, b: Pending | None, img0: Tensor, img1: Tensor) -> Tensor:
        """``blend`` of ``settle``'s state; the kernel computes it without storing the state."""
        if self.settle_kernel is not None:
            return self.settle_kernel(take_b, _candidate(a), _candidate_or_none(b), img0, img1, blend=True,
                                      form=self.form)[0]
        return blend(self.settle(take_b, a, b, img0, img1))


def _candidate(pending: Pending) -> Candidate:
    state = pending.state
    return Candidate(pending.out, pending.scale, None if state is None else state.flow,
                     None if state is None else state.mask)


def _candidate_or_none(pending: Pending | None) -> Candidate | None:
    return None if pending is None else _candidate(pending)


class BlockFeed:
    """A block's input: the frames it reads (``Variant.first_inputs`` or ``refine_inputs``: the two frames, the
    timestep plane, and from the state the raw mask and the frames warped by its flow, warped here where the step
    did not) and, after the first block, the running flow, all resized to 1 / scale of the frame (the flow also
    divided by scale) and concatenated, with zero channels appended up to ``channels``. ``kernel`` may build it in
    one kernel with these semantics (``rife.triton_warp.feed``), warping the frames itself."""

    def __init__(self, warp: Warper, kernel: FeedKernel | None = None) -> None:
        self.warp = warp
        self.kernel = kernel

    def __call__(self, names: tuple[str, ...], channels: int, scale: float, img0: Tensor, img1: Tensor,
                 t_plane: Tensor | None, state: FlowState | None) -> Tensor:
        flow, mask = (None, None) if state is None else (state.flow, state.mask)
        if self.kernel is not None:
            return self.kernel(names, channels, scale, img0, img1, t_plane, flow, mask)
        frames = {"img0": img0, "img1": img1, "timestep": t_plane}
        if state is not None:
            warped = (state.warped0, state.warped1)
            if warped[0] is None and ("warped0" in names or "warped1" in names):
                warped = warp_both(self.warp, img0, img1, state.flow)
            frames.update(warped0=warped[0], warped1=warped[1], mask=mask)
        x = torch.cat([frames[n] for n in names], 1)  # type: ignore[misc]  # names: only inputs the variant has
        if scale != 1:
            x = resize(x, 1.0 / scale)
        parts = [x]
        if flow is not None:
            parts.append(flow if scale == 1 else resize(flow, 1.0 / scale) / scale)
        return cat_padded(parts, channels)


class IFNet(nn.Module):
    """Inputs are padded frames in [0, 1] (N, 3, H, W), H and W multiples of ``variant.pad_multiple``.

    ``channel_multiple`` > 1 (an execution choice, see ``rife.execution.widened``) rounds the channel
    counts at the edges of each sub-network up, for tensor-core kernels without cuDNN's padding;
    ``input_multiple`` does the same for the inputs that ``BlockFeed`` builds (the blocks' and the refinement's).
    ``kernels``: how it computes besides its layers (``Kernels``; ``with_kernels`` rebuilds a loaded network)."""

    # The refinement's networks: the paper model's (``refine_unet``) or v3.1's (``fusion_refine``, general path).
    contextnet: ContextNet | families.ContextNet31
    unet: UNet | families.FusionNet31

    def __init__(self, variant: Variant, channel_multiple: int = 1, input_multiple: int = 1,
                 ensemble: bool = False, kernels: Kernels | None = None) -> None:
        super().__init__()
        self.variant = variant
        self._use(kernels or Kernels())
        self.frame_features = families.FrameFeatures()
        if ensemble and variant.ensemble == "none":
            raise ValueError(f"the {variant.name} model has no ensemble (bidirectional) mode")
        # Both directions of every block, averaged (v3.x, Practical-RIFE's ensemble): the general path.
        self.ensemble = ensemble
        if not variant.classic:
            self._build_family(variant)
        for i, width in enumerate(variant.block_widths if variant.classic else ()):
            setattr(self, f"block{i}", IFBlock(variant.block_in_channels(i), width, channel_multiple, input_multiple))
        if variant.refine_unet:
            self.contextnet = ContextNet(variant.context_width, channel_multiple)
            self.unet = UNet(variant.context_width, channel_multiple, input_multiple)

    def _use(self, kernels: Kernels) -> None:
        self.kernels = kernels
        self.warp = Warper(fp32=kernels.fp32_warps, cached=kernels.cache_grids, kernel=kernels.warp)
        self.step = FlowStep(self.warp, kernel=kernels.step, settle_kernel=kernels.settle,
                             form=StepForm(phases=kernels.head_phases))
        self.feed = BlockFeed(self.warp, kernel=kernels.feed)
        self.retry_on_device = kernels.retry_on_device
        self.fork_join = kernels.fork_join
        self.classic = ClassicPass(self)

    def with_kernels(self, kernels: Kernels) -> IFNet:
        """This network computing with ``kernels``: a new IFNet that takes over this one's layers (their weights,
        device, dtype and any replaced modules; use it in place of this one), with ``kernels.conv`` in place of
        each convolution unit."""
        with torch.device("meta"):  # the layers built here are replaced at once: no memory, no initialisation
            net = IFNet(self.variant, ensemble=self.ensemble, kernels=kernels)
        for name, module in self.named_children():
            setattr(net, name, module)
        if kernels.conv is not None:
            replace_conv_units(net, kernels.conv)
        return net.train(self.training)

    def blocks(self) -> list[IFBlock]:
        return [getattr(self, f"block{i}") for i in range(self.variant.num_blocks)]

    @property
    def general(self) -> bool:
        """Whether this network runs the general path (``rife.families``) rather than the fused one: every
        variant but the paper / 4.0 arithmetic, and that one with the ensemble."""
        return not self.variant.classic or self.ensemble

    def _build_family(self, variant: Variant) -> None:
        for i, width in enumerate(variant.block_widths):
            setattr(self, f"block{i}", families.FamilyBlock(variant, variant.block_in_channels(i), width))
        if variant.encoder is not None:
            self.encode = families.encoder(variant)
        if variant.fusion_refine:
            self.contextnet = families.ContextNet31()
            self.unet = families.FusionNet31()

    @property
    def fused_general(self) -> bool:
        """Whether this network runs the general path through the Triton kernels (``rife.families.FusedPass``)."""
        return self.general and self.kernels.gather is not None and families.FusedPass.fits(self.variant,
                                                                                                self.ensemble)

    def compiled_parts(self) -> list[nn.Module]:
        """The modules of ``fused_general``'s pass that an execution mode compiles (the kernels run between them)."""
        return [*self.blocks(), *([self.encode] if self.variant.encoder is not None else [])]

    def _fused_pass(self) -> families.FusedPass:
        if not self.fused_general:
            raise ValueError(f"the {self.variant.name} model does not run the Triton pass with these kernels")
        return families.FusedPass(self.variant, self.blocks(), getattr(self, "encode", None), self.kernels,
                                  self.frame_features, self.ensemble)

    def _general_forward(self, img0: Tensor, img1: Tensor, t_plane: Tensor | None, scales: list[float],
                         follows: bool) -> Tensor:
        if self.fused_general:
            return self._fused_pass()(img0, img1, t_plane, scales, follows)
        if self.variant.fusion_refine:
            return families.HalfFlowPass(self.blocks(), cast(families.ContextNet31, self.contextnet),
                                         cast(families.FusionNet31, self.unet), self.warp)(img0, img1, scales)
        run = families.GeneralPass(self.variant, self.blocks(), getattr(self, "encode", None), self.warp,
                                   self.ensemble, decide_on_device=self.retry_on_device,
                                   features=self.frame_features)
        return run(img0, img1, t_plane, scales, follows)

    def forward(self, img0: Tensor, img1: Tensor, timestep: float | Tensor = 0.5, scale: float = 1.0,
                follows: bool = False) -> Tensor:
        """``follows``: the call's first frames are the last call's second frames, shifted by one sample (consecutive
        pairs of a video): a release with an encoder then encodes only the second frames (``FrameFeatures``); the
        output is the same."""
        t_plane = self.timestep_plane(img0, timestep) if self.variant.has_timestep else None
        scales = self.scales_for(scale)
        if self.general:
            return self._general_forward(img0, img1, t_plane, scales, follows)
        return self.classic.run(img0, img1, t_plane, scales)

    @property
    def decides_on_host(self) -> bool:
        """Whether an execution mode may run this network's second pass only where the host sees a sample want it
        (``head`` and ``tail``): v4.0's large-motion retry, or v3.8's doubled scales in the Triton pass."""
        return self.variant.large_motion_retry is not None or (self.fused_general and self.variant.adaptive_scale)

    def head(self, img0: Tensor, img1: Tensor, timestep: float | Tensor = 0.5, scale: float = 1.0
             ) -> tuple[FlowState | None, Tensor]:
        """The part of the pass that decides, per sample and with no host sync, whether the second pass is wanted:
        ``ClassicPass.head`` (the normal pass up to the large-motion retry's block, and its state), or v3.8's trial
        (``FusedPass.wants_double_scale``, no state)."""
        if self.variant.large_motion_retry is None:
            return None, self._fused_pass().wants_double_scale(img0, img1, self.scales_for(scale))
        return self.classic.head(img0, img1, timestep, scale)

    def tail(self, img0: Tensor, img1: Tensor, state: FlowState | None, timestep: float | Tensor = 0.5,
             scale: float = 1.0) -> Tensor:
        """The output as if no sample wanted the second pass, from ``head``'s state: ``ClassicPass.tail``, or v3.8's
        pass at the normal scales."""
        if state is None:
            t_plane = self.timestep_plane(img0, timestep) if self.variant.has_timestep else None
            return self._fused_pass()(img0, img1, t_plane, self.scales_for(scale), adapt=False)
        return self.classic.tail(img0, img1, state, timestep, scale)

    def scales_for(self, scale: float) -> list[float]:
        return [s / scale for s in self.variant.scales]

    @staticmethod
    def timestep_plane(img0: Tensor, timestep: float | Tensor) -> Tensor:
        n, _, h, w = img0.shape
        if isinstance(timestep, Tensor):
            return timestep.to(img0.dtype).reshape(-1, 1, 1, 1).expand(n, 1, h, w)
        return torch.full((n, 1, h, w), float(timestep), dtype=img0.dtype, device=img0.device)


class ClassicPass:
    """The forward pass of the paper / 4.0 arithmetic without the ensemble (``IFNet``'s fused path) over ``net``'s
    layers and kernels, in stages (``STAGES``) that an execution mode may compile one by one, leaving
    ``net.fork_join`` between them."""

    STAGES = ("advance", "pending", "finish", "encode", "context", "refine")

    def __init__(self, net: IFNet) -> None:
        self.net = net

    def compile_stages(self, compile: Callable[[Callable], Callable]) -> None:
        """Each of ``STAGES`` replaced by ``compile`` of it (``torch.compile``) on this pass."""
        for stage in self.STAGES:
            setattr(self, stage, compile(getattr(self, stage)))

    def run(self, img0: Tensor, img1: Tensor, t_plane: Tensor | None, scales: list[float]) -> Tensor:
        """The interpolated frame: the normal pass and, where wanted, the large-motion retry at twice every scale
        (on the device: both at once on ``fork_join``'s two streams, chosen per sample)."""
        doubled = [s * 2 for s in scales]
        if self.net.retry_on_device and self.net.variant.large_motion_retry is not None:
            (normal, wants_retry), (retried, _) = self.net.fork_join(
                lambda: self.estimate(img0, img1, t_plane, scales, check_retry=True),
                lambda: self.estimate(img0, img1, t_plane, doubled, check_retry=False))
        else:
            normal, wants_retry = self.estimate(img0, img1, t_plane, scales, check_retry=True)
            retried = None if wants_retry is None else self.estimate(img0, img1, t_plane, doubled, check_retry=False)[0]
        return self.output(img0, img1, self.choice(normal, wants_retry, retried))

    def head(self, img0: Tensor, img1: Tensor, timestep: float | Tensor = 0.5, scale: float = 1.0
             ) -> tuple[FlowState, Tensor]:
        """The normal pass up to and including the large-motion retry's block, with no host sync: its state and,
        per sample, whether the retry is wanted. With ``tail`` it is ``forward`` for the samples that want none,
        so that an execution mode can decide on the host, after this part, whether the retry runs at all."""
        retry = self.retry()
        t_plane = self.net.timestep_plane(img0, timestep) if self.net.variant.has_timestep else None
        state, wants_retry = self.advance(img0, img1, t_plane, self.net.scales_for(scale), None,
                                          range(retry.at_block + 1), retry)
        assert state is not None and wants_retry is not None
        return state, wants_retry

    def tail(self, img0: Tensor, img1: Tensor, state: FlowState, timestep: float | Tensor = 0.5,
             scale: float = 1.0) -> Tensor:
        """The rest of the normal pass from ``head``'s state, and the output, as if no sample wanted the retry."""
        t_plane = self.net.timestep_plane(img0, timestep) if self.net.variant.has_timestep else None
        scales = self.net.scales_for(scale)
        first = self.retry().at_block + 1
        advanced = self.advance(img0, img1, t_plane, scales, state, range(first, self.net.variant.num_blocks - 1),
                                None)[0]
        return self.output(img0, img1, (None, self.pending(img0, img1, t_plane, scales, advanced), None))

    def retry(self) -> LargeMotionRetry:
        retry = self.net.variant.large_motion_retry
        if retry is None:
            raise ValueError(f"the {self.net.variant.name} model has no large-motion retry to split its pass at")
        return retry

    def output(self, img0: Tensor, img1: Tensor, choice: tuple[Tensor | None, Pending, Pending | None]) -> Tensor:
        """The interpolated frame from the retry's choice: the last flow step and the blend, or the refinement."""
        if not self.net.variant.refine_unet:
            return self.finish(img0, img1, *choice)
        state = self.net.step.settle(*choice, img0, img1)
        # The refinement's first level and the context network need only the final state: they may overlap.
        encoded, context = self.net.fork_join(lambda: self.encode(img0, img1, state),
                                              lambda: self.context(img0, img1, state))
        return self.refine(state, encoded, *context)

    def finish(self, img0: Tensor, img1: Tensor, take_retried: Tensor | None, normal: Pending,
               retried: Pending | None) -> Tensor:
        """The final flow step of the chosen candidates, and the blend of the warped frames."""
        return self.net.step.blended(take_retried, normal, retried, img0, img1)

    @staticmethod
    def choice(normal: Pending | None, wants_retry: Tensor | None, retried: Pending | None
               ) -> tuple[Tensor | None, Pending, Pending | None]:
        """``FlowStep.settle``'s arguments for the retry's choice: per sample the retried pass where the retry was
        wanted; the normal pass alone when there was no retry, the retried one alone when there is no normal
        pass (every sample restarted, see ``_estimate``)."""
        if normal is None:
            assert retried is not None  # no normal pass: every sample wanted the retry, which ran
            return None, retried, None
        if wants_retry is None or retried is None:
            return None, normal, None
        return wants_retry, normal, retried

    def encode(self, img0: Tensor, img1: Tensor, state: FlowState) -> Tensor:
        unet = cast(UNet, self.net.unet)
        return unet.encode(self.net.feed(UNet.INPUTS, unet.in_channels, 1.0, img0, img1, None, state))

    def context(self, img0: Tensor, img1: Tensor, state: FlowState) -> tuple[list[Tensor], list[Tensor]]:
        """Both frames' context features, computed in one batch: half the launches, the same per-sample arithmetic."""
        both = self.net.contextnet(torch.cat((img0, img1)), torch.cat((state.flow[:, 0:2], state.flow[:, 2:4])),
                                   self.net.warp)
        ctx0, ctx1 = zip(*(f.chunk(2) for f in both), strict=True)
        return list(ctx0), list(ctx1)

    def refine(self, state: FlowState, encoded: Tensor, ctx0: list[Tensor], ctx1: list[Tensor]) -> Tensor:
        res = cast(UNet, self.net.unet).decode(encoded, ctx0, ctx1)
        return torch.clamp(blend(state) + (res[:, :3] * 2 - 1), 0, 1)

    def estimate(self, img0: Tensor, img1: Tensor, t_plane: Tensor | None, scales: list[float],
                 check_retry: bool) -> tuple[Pending | None, Tensor | None]:
        """The last block's output with the state before it, and with ``check_retry`` whether each sample wants
        the large-motion retry (None: no sample does, when decided on the host). Decided on the host, a pass that
        every sample restarts stops there and gives nothing."""
        retry = self.net.variant.large_motion_retry if check_retry else None
        state, wants_retry = None, None
        if retry is not None and not self.net.retry_on_device:  # decided on the host, as upstream: one sync per frame
            state, wants_retry = self.advance(img0, img1, t_plane, scales, None, range(retry.at_block + 1), retry)
            assert wants_retry is not None  # the retry's block was among those run
            if not bool(wants_retry.any()):
                wants_retry = None
            elif bool(wants_retry.all()):
                return None, wants_retry  # every sample restarts: the rest of this pass is unused
            done = range(retry.at_block + 1, self.net.variant.num_blocks - 1)
        else:
            done = range(self.net.variant.num_blocks - 1)
        state, measured = self.advance(img0, img1, t_plane, scales, state, done, retry)
        return self.pending(img0, img1, t_plane, scales, state), wants_retry if measured is None else measured

    def advance(self, img0: Tensor, img1: Tensor, t_plane: Tensor | None, scales: list[float],
                state: FlowState | None, indices: range, retry: LargeMotionRetry | None
                ) -> tuple[FlowState | None, Tensor | None]:
        """The state after the blocks ``indices`` (none of them the last), and where ``retry``'s block is among
        them, whether each sample wants the retry."""
        blocks, wants_retry = self.net.blocks(), None
        for i in indices:
            at_retry = retry is not None and i == retry.at_block
            # Only the final state needs the warped frames at full size (blend, refinement); a block's input
            # needs them resized, which ``self.net.feed`` may compute without writing them out.
            state, peaks = self.net.step(self.block_output(blocks[i], scales[i], img0, img1, t_plane, state),
                                         scales[i], state, img0, img1, measure=at_retry, warp_frames=False)
            if at_retry:
                assert retry is not None and peaks is not None  # measured at the retry's block
                wants_retry = retry.wanted(peaks)
        return state, wants_retry

    def pending(self, img0: Tensor, img1: Tensor, t_plane: Tensor | None, scales: list[float],
                state: FlowState | None) -> Pending:
        """The last block's output; its step is the retry's choice's (``FlowStep.settle``)."""
        last = self.net.variant.num_blocks - 1
        return Pending(state, self.block_output(self.net.blocks()[last], scales[last], img0, img1, t_plane, state),
                       scales[last])

    def block_output(self, block: IFBlock, scale: float, img0: Tensor, img1: Tensor, t_plane: Tensor | None,
                     state: FlowState | None) -> Tensor:
        names = self.net.variant.first_inputs if state is None else self.net.variant.refine_inputs
        return block(self.net.feed(names, block.in_channels, scale, img0, img1, t_plane, state))
