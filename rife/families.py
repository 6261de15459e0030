"""The RIFE families beyond the paper / 4.0 arithmetic, as ``IFNet``'s general path: the HD v3.x models and
Practical-RIFE 4.2-4.26 (see ``rife.variants`` for what each field means).

Module names and shapes follow the upstream checkpoints, so their ``flownet.pkl`` files load strictly. The
forward pass follows the upstream order of operations (resize, then scale; average the two directions, then add).
On CUDA, ``fast`` runs v3.5-v3.8 and Practical-RIFE 4.2+ through ``FusedPass`` (Triton kernels), v3.1 and the
ensemble of releases that carry channels through ``torch.compile`` and one CUDA graph.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import cast

import torch
from torch import Tensor, nn

from rife.kernels import Candidate, GatherGroup, Kernels, StepForm
from rife.layers import (
    ContextUNet,
    Conv2,
    ResConv,
    Warper,
    flow_peaks,
    memory_format_of,
    residual_through,
    resize,
    warp_both,
)
from rife.variants import FLOW_CHANNELS, SWAPPED_INPUT, LargeMotionRetry, Variant


def activation(kind: str, channels: int) -> nn.Module:
    return nn.PReLU(channels) if kind == "prelu" else nn.LeakyReLU(0.2, True)


def unit(variant: Variant, in_ch: int, out_ch: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=True), activation(variant.activation, out_ch))


def two_stage_head(width: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(width, width // 2, 4, 2, 1), nn.PReLU(width // 2),
                         nn.ConvTranspose2d(width // 2, out_ch, 4, 2, 1))


class FamilyBlock(nn.Module):
    """A flow block of any family: two strided conv units, the body, the head. ``forward`` returns flow change (4),
    mask (1) and extra channels at 1 / (scale * ``variant.head_factor``) of the frame."""

    def __init__(self, variant: Variant, in_ch: int, width: int) -> None:
        super().__init__()
        self.body = variant.body
        self.head = variant.head
        self.conv0 = nn.Sequential(unit(variant, in_ch, width // 2, 2), unit(variant, width // 2, width, 2))
        self.pairs = {"pairs4": 4, "pairs3": 3}.get(variant.body, 0)
        if self.pairs:
            for i in range(self.pairs):
                setattr(self, f"convblock{i}", nn.Sequential(unit(variant, width, width), unit(variant, width, width)))
        elif variant.body == "resconv8":
            self.convblock = nn.Sequential(*(ResConv(width, variant.body_groups) for _ in range(8)))
        else:
            self.convblock = nn.Sequential(*(unit(variant, width, width) for _ in range(8)))
        # The head's modules differ in type by family.
        self.lastconv: nn.Module
        self.conv1: nn.Module
        self.conv2: nn.Module
        if variant.head == "deconv":
            self.lastconv = nn.ConvTranspose2d(width, variant.head_channels, 4, 2, 1)
        elif variant.head == "shuffle":
            self.lastconv = nn.Sequential(nn.ConvTranspose2d(width, 4 * variant.head_channels, 4, 2, 1),
                                          nn.PixelShuffle(2))
        elif variant.head == "flow":
            self.conv1 = nn.ConvTranspose2d(width, FLOW_CHANNELS, 4, 2, 1)
        elif variant.head == "split":
            self.conv1 = nn.Sequential(nn.ConvTranspose2d(width, FLOW_CHANNELS, 4, 2, 1))
            self.conv2 = nn.ConvTranspose2d(width, 1, 4, 2, 1)
        else:
            self.conv1 = two_stage_head(width, FLOW_CHANNELS)
            self.conv2 = two_stage_head(width, 1)

    def _first_unit(self) -> nn.Sequential:
        return cast(nn.Sequential, self.conv0[0])

    @property
    def in_channels(self) -> int:
        """The channels its input has: the variant's, or more where an execution mode padded the first convolution
        with zero weights (``pad_input``)."""
        return next(m for m in self.conv0[0].modules() if isinstance(m, nn.Conv2d)).in_channels

    def pad_input(self, multiple: int) -> None:
        """The first convolution reading ``in_channels`` rounded up to ``multiple`` (the added channels' weights are
        zero: exact), so that tensor-core convolutions need no padded copy of the input."""
        conv = cast(nn.Conv2d, self._first_unit()[0])
        extra = -conv.in_channels % multiple
        if extra:
            wide = nn.Conv2d(conv.in_channels + extra, conv.out_channels, 3, 2, 1, bias=conv.bias is not None)
            wide = wide.to(device=conv.weight.device, dtype=conv.weight.dtype)
            with torch.no_grad():
                wide.weight.zero_()
                wide.weight[:, :conv.in_channels] = conv.weight
                if conv.bias is not None:
                    cast(Tensor, wide.bias).copy_(conv.bias)
            self._first_unit()[0] = wide

    def forward(self, x: Tensor) -> Tensor:
        feat = self.conv0(x)
        if self.pairs:
            for i in range(self.pairs):
                feat = residual_through(getattr(self, f"convblock{i}"), feat)
        elif self.body == "conv8_skip":
            feat = residual_through(self.convblock, feat)
        else:
            feat = self.convblock(feat)
        if self.head == "shuffle":
            out = self.lastconv(feat)
            # In channels_last, kept so: compiled, the shuffle's kernel then writes whole pixels, not channel planes.
            # (A 1x1 or single-channel tensor is both NCHW and channels_last, and stays as it is.)
            if feat.is_contiguous(memory_format=torch.channels_last) and not feat.is_contiguous():
                return out.contiguous(memory_format=torch.channels_last)
            return out
        if self.head == "deconv":
            return self.lastconv(feat)
        if self.head == "flow":
            return self.conv1(feat)
        return torch.cat((self.conv1(feat), self.conv2(feat)), 1)


class FeatureHead(nn.Module):
    """Practical-RIFE 4.13+'s frame encoder (keys ``cnn0``-``cnn3``)."""

    def __init__(self, width: int, channels: int) -> None:
        super().__init__()
        self.cnn0 = nn.Conv2d(3, width, 3, 2, 1)
        self.cnn1 = nn.Conv2d(width, width, 3, 1, 1)
        self.cnn2 = nn.Conv2d(width, width, 3, 1, 1)
        self.cnn3 = nn.ConvTranspose2d(width, channels, 4, 2, 1)
        self.relu = nn.LeakyReLU(0.2, True)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.cnn0(x.clamp(0.0, 1.0)))
        x = self.relu(self.cnn1(x))
        x = self.relu(self.cnn2(x))
        return self.cnn3(x)


def encoder(variant: Variant) -> nn.Module:
    enc = variant.encoder
    assert enc is not None  # called for the variants with an encoder
    if enc.kind == "head":
        return FeatureHead(enc.width, enc.channels)
    if enc.kind == "pair":
        return nn.Sequential(nn.Conv2d(3, enc.width, 3, 2, 1), nn.ConvTranspose2d(enc.width, enc.channels, 4, 2, 1))
    leaky = nn.LeakyReLU(0.2, True)
    return nn.Sequential(nn.Conv2d(3, enc.width, 3, 2, 1), leaky, nn.Conv2d(enc.width, enc.width, 3, 1, 1), leaky,
                         nn.Conv2d(enc.width, enc.width, 3, 1, 1), leaky, nn.ConvTranspose2d(enc.width, enc.channels, 4, 2, 1))


def swap_halves(flow: Tensor) -> Tensor:
    return torch.cat((flow[:, 2:4], flow[:, :2]), 1)


class FrameFeatures:
    """The encoder's features of a call's frames, each frame of a video encoded once (as vs-rife does): the
    features of a call's last second frame are kept, and a call that ``follows`` it (sample k's first frame is
    sample k - 1's second frame, sample 0's the kept one: consecutive pairs of a video) encodes only its second
    frames. The kept features are one buffer that every call writes, so that the CUDA graphs of calls that follow
    and of calls that do not share it."""

    def __init__(self) -> None:
        self._last: Tensor | None = None

    def pair(self, encode: nn.Module, img0: Tensor, img1: Tensor, follows: bool) -> tuple[Tensor, Tensor]:
        """The features of ``img0`` and of ``img1``."""
        feat1 = encode(img1)
        feat0 = self._followed(feat1) if follows else None
        if feat0 is None:
            feat0 = encode(img0)
        self._keep(feat1[-1:])
        return feat0, feat1

    def both(self, encode: nn.Module, pair: Tensor, follows: bool) -> Tensor:
        """``pair``'s features (the first frames of a call, then its second frames), the frames encoded in one batch
        unless the call follows the last."""
        if follows and self.held:
            img0, img1 = pair.chunk(2)
            return torch.cat(self.pair(encode, img0, img1, follows=True))
        both = encode(pair)
        self._keep(both[-1:])
        return both

    def _followed(self, feat1: Tensor) -> Tensor | None:
        """The first frames' features of a call whose second frames' are ``feat1`` and that follows the last: the kept
        ones, then all of ``feat1`` but its last; None where none are kept for features of this size."""
        if self._last is None or self._last.shape[1:] != feat1.shape[1:]:
            return None
        return torch.cat((self._last, feat1[:-1]))

    @property
    def held(self) -> bool:
        """Whether features of a last frame are kept (a call may follow)."""
        return self._last is not None

    @contextlib.contextmanager
    def unchanged(self) -> Iterator[None]:
        """The kept features as they were before the block (which may run calls that change them: a CUDA graph's
        warm-up), restored in their own buffer."""
        saved = None if self._last is None else self._last.clone()
        try:
            yield
        finally:
            if saved is not None and self._last is not None and self._last.shape == saved.shape:
                self._last.copy_(saved)
            elif saved is not None:
                self._last = saved

    def _keep(self, last: Tensor) -> None:
        if self._last is not None and (self._last.shape, self._last.dtype, self._last.device) == (
                last.shape, last.dtype, last.device):
            self._last.copy_(last)
        else:
            self._last = last.clone()


class GeneralPass:
    """One forward pass of a non-classic variant over ``blocks`` (``IFNet``'s general path)."""

    def __init__(self, variant: Variant, blocks: Sequence[nn.Module], encode: nn.Module | None, warp: Warper,
                 ensemble: bool, decide_on_device: bool, features: FrameFeatures) -> None:
        self.v = variant
        self.blocks = blocks
        self.encode = encode
        self.warp = warp
        self.ensemble = ensemble
        self.decide_on_device = decide_on_device
        self.features = features

    def __call__(self, img0: Tensor, img1: Tensor, t_plane: Tensor | None, scales: list[float],
                 follows: bool = False) -> Tensor:
        img0, img1 = img0.clamp(0.0, 1.0), img1.clamp(0.0, 1.0)
        frames = {"img0": img0, "img1": img1, "timestep": t_plane}
        if self.encode is not None:
            frames["feat0"], frames["feat1"] = self.features.pair(self.encode, img0, img1, follows)
        if self.v.large_motion_retry is not None:
            return self._with_retry(frames, scales, self.v.large_motion_retry)
        if not self.v.adaptive_scale:
            return self._run(frames, scales)[0]
        doubled = [s * 2 for s in scales]
        wants = self._wants_double_scale(frames, scales)
        if not self.decide_on_device:  # upstream's way: one decision for the batch, on the host
            return self._run(frames, doubled if bool(wants.any()) else scales)[0]
        # On the device (a CUDA graph cannot hold a host decision): both candidates, chosen per sample.
        return torch.where(wants.view(-1, 1, 1, 1), self._run(frames, doubled)[0], self._run(frames, scales)[0])

    def _with_retry(self, frames: dict, scales: list[float], retry: LargeMotionRetry) -> Tensor:
        """4.0 / 4.1 with the ensemble: where the change of flow of the retry's block, in the frames' own direction
        (before the average), exceeds the threshold in both directions, the pass again at twice every scale, its
        first block one way only, as upstream runs it. Per sample (upstream decides for the batch: the same at
        batch 1); on the device, both candidates."""
        normal, wants = self._run(frames, scales, retry)
        assert wants is not None  # measured at the retry's block
        if not self.decide_on_device and not bool(wants.any()):
            return normal
        retried = self._run(frames, [s * 2 for s in scales], one_way_first=True)[0]
        return torch.where(wants.view(-1, 1, 1, 1), retried, normal)

    def _wants_double_scale(self, frames: dict, scales: list[float]) -> Tensor:
        """v3.8: a trial of the first block at twice its scale; a change of flow above 16 x its scale (pixels)
        doubles every scale. Per sample (N,); upstream takes the batch's maximum, the same for batch 1."""
        flow, mask = self._zero_state(frames["img0"])
        frames = {**frames, "warped0": frames["img0"], "warped1": frames["img1"], "mask": mask}
        trial = self._block(0, frames, flow, scales[0] * 2, swapped=False)[0]
        return trial.abs().amax(dim=(1, 2, 3)) > scales[0] * 16

    @staticmethod
    def _zero_state(img: Tensor) -> tuple[Tensor, Tensor]:
        n, _, h, w = img.shape
        return img.new_zeros((n, FLOW_CHANNELS, h, w)), img.new_zeros((n, 1, h, w))

    def _run(self, frames: dict, scales: list[float], retry: LargeMotionRetry | None = None,
             one_way_first: bool = False) -> tuple[Tensor, Tensor | None]:
        """The interpolated frame and, with ``retry``, whether each sample wants it; ``one_way_first``: the first
        block without the ensemble's second direction."""
        img0, img1 = frames["img0"], frames["img1"]
        flow = mask = wants = None
        frames = {**frames, "warped0": img0, "warped1": img1}
        if self.v.zero_start:
            flow, mask = self._zero_state(img0)
        for i, scale in enumerate(scales):
            if flow is not None:
                frames["mask"] = mask
                if "wfeat0" in self.v.refine_inputs:
                    frames["wfeat0"], frames["wfeat1"] = warp_both(self.warp, frames["feat0"], frames["feat1"], flow)
            d_flow, d_mask, carry = self._block(i, frames, flow, scale, swapped=False)
            if retry is not None and i == retry.at_block:
                wants = retry.wanted(flow_peaks(d_flow))
            if self.ensemble and not (one_way_first and i == 0):
                o_flow, o_mask, _ = self._block(i, frames, flow, scale, swapped=True)
                d_flow = (d_flow + swap_halves(o_flow)) / 2
                d_mask = (d_mask + (-o_mask)) / 2
            flow = d_flow if flow is None else flow + d_flow
            mask = d_mask if mask is None or not self.v.mask_accumulates else mask + d_mask
            frames["carry"] = carry
            frames["warped0"], frames["warped1"] = warp_both(self.warp, img0, img1, flow)
        assert mask is not None  # set by the first of the scales
        m = torch.sigmoid(mask)
        return frames["warped0"] * m + frames["warped1"] * (1 - m), wants

    def _block(self, i: int, frames: dict, flow: Tensor | None, scale: float,
               swapped: bool) -> tuple[Tensor, Tensor, Tensor]:
        """Block ``i``'s change of flow and mask and its carried channels, at the frame's size; ``swapped``: the
        pass with the frames' roles exchanged (timestep 1 - t, mask negated, flow halves swapped)."""
        names = self.v.first_inputs if flow is None else self.v.refine_inputs
        parts = []
        for name in names:
            value = frames[SWAPPED_INPUT.get(name, name) if swapped else name]
            if swapped and name == "timestep":
                value = 1 - value
            elif swapped and name == "mask":
                value = -value
            parts.append(value)
        x = resize(torch.cat(parts, 1), 1.0 / scale)
        if flow is not None:
            flow_in = swap_halves(flow) if swapped else flow
            x = torch.cat((x, resize(flow_in, 1.0 / scale) / scale), 1)
        factor = scale * self.v.head_factor
        out = resize(self.blocks[i](x), factor)
        return out[:, :FLOW_CHANNELS] * factor, out[:, FLOW_CHANNELS:FLOW_CHANNELS + 1], out[:, 5:5 + self.v.carry_channels]


# A block input's frames and features come in pairs, each pair gathered in one launch (``FusedPass``): the first
# name of a pair, the pair's source and whether it is warped by the running flow.
PAIRED_INPUTS = {"img0": ("img", False), "warped0": ("img", True), "feat0": ("feat", False),
                 "wfeat0": ("feat", True)}


class FusedPass:
    """``GeneralPass``'s arithmetic for v3.5-v3.8 and Practical-RIFE 4.2+ (``fits``), with the Triton kernels of
    ``Kernels``: each block's input assembled in place at its scale in one launch (``gather``: frames and features
    warped only at the pixels the resize reads; a block's carried channels read through both resizes, from its output
    to the frame and from the frame to the next block's scale), each flow step one kernel (``step``, in fp32), and
    the last step, warps and blend one kernel (``settle``). At full size only the running flow and mask (fp32) and
    the output are written. Both frames are encoded in one batch (``FrameFeatures``).

    With the ensemble, each block runs once on a batch of 2N, the second N with the frames' roles exchanged (the
    gather reads the frames in the order 0, 1, 1, 0 and the state the step stores for both directions), and the
    step averages the two (``StepForm.ensemble``). v3.8's adaptive scale runs its trial block, then both passes,
    each frame taking its own (the decision stays on the device, as one CUDA graph needs); an execution mode that
    decides on the host runs the trial alone (``wants_double_scale``), then the pass at the normal scales
    (``adapt`` False), and the whole pass only when a frame wants the doubled scales."""

    def __init__(self, variant: Variant, blocks: Sequence[nn.Module], encode: nn.Module | None,
                 kernels: Kernels, features: FrameFeatures, ensemble: bool) -> None:
        assert kernels.gather is not None and kernels.step is not None and kernels.settle is not None
        self.v = variant
        self.blocks = blocks
        self.encode = encode
        self.features = features
        self.gather = kernels.gather
        self.step = kernels.step
        self.settle = kernels.settle
        self.ensemble = ensemble
        self.form = StepForm(head_factor=variant.head_factor, mask_adds=variant.mask_accumulates, fp32_state=True,
                             ensemble=ensemble, phases=kernels.head_phases)

    @staticmethod
    def fits(variant: Variant, ensemble: bool) -> bool:
        """Whether ``variant`` (run with ``ensemble`` or not) is one this pass computes: not the paper / 4.0
        arithmetic, v3.1's half-size flows or the large-motion retry; the ensemble without carried channels."""
        return (not variant.classic and not variant.fusion_refine and variant.large_motion_retry is None
                and variant.head != "flow" and variant.head_channels >= 5 + variant.carry_channels
                and not (ensemble and variant.carry_channels))

    def __call__(self, img0: Tensor, img1: Tensor, t_plane: Tensor | None, scales: list[float],
                 follows: bool = False, adapt: bool = True) -> Tensor:
        """The interpolated frames; ``adapt`` False: v3.8's pass at ``scales`` as if no frame wanted them doubled
        (``wants_double_scale`` decides that)."""
        n = img0.shape[0]
        frames = torch.cat((img0, img1, img1, img0) if self.ensemble else (img0, img1)).clamp(0.0, 1.0)
        img0, img1 = frames[:n], frames[n:2 * n]
        feats = None if self.encode is None else self.features.both(self.encode, frames[:2 * n], follows)
        if self.ensemble:  # the other direction reads the other frame's features and the other timestep
            feats = None if feats is None else torch.cat((feats, feats[n:], feats[:n]))
            t_plane = None if t_plane is None else torch.cat((t_plane, 1 - t_plane))
        sources = {"img": frames, "feat": feats, "timestep": t_plane}
        if not (self.v.adaptive_scale and adapt):
            return self._run(sources, img0, img1, scales)
        doubled = [s * 2 for s in scales]
        wants = self._trial(frames[:2 * n], scales)
        return torch.where(wants.view(-1, 1, 1, 1), self._run(sources, img0, img1, doubled),
                           self._run(sources, img0, img1, scales))

    def wants_double_scale(self, img0: Tensor, img1: Tensor, scales: list[float]) -> Tensor:
        """v3.8, per frame: whether its pass runs at twice ``scales`` (the trial of ``GeneralPass``), with no host
        sync, so that an execution mode can decide on the host which pass to run."""
        if not self.v.adaptive_scale:
            raise ValueError(f"the {self.v.name} model has no adaptive scale")
        return self._trial(torch.cat((img0, img1)).clamp(0.0, 1.0), scales)

    def _trial(self, pair: Tensor, scales: list[float]) -> Tensor:
        """v3.8's trial (``GeneralPass._wants_double_scale``): the first block at twice its scale, in the frames' own
        direction, from the frames and a zero state."""
        scale = scales[0] * 2
        factor = scale * self.v.head_factor
        out = self.blocks[0](self._feed(0, scale, {"img": pair}, None, None))
        trial = resize(out[:, :FLOW_CHANNELS], factor) * factor
        return trial.abs().amax(dim=(1, 2, 3)) > scales[0] * 16

    def _run(self, sources: dict[str, Tensor | None], img0: Tensor, img1: Tensor, scales: list[float]) -> Tensor:
        sources = dict(sources)  # the running mask joins them
        flow = mask = carried = None
        last = len(scales) - 1
        for i, scale in enumerate(scales):
            out = self.blocks[i](self._feed(i, scale, sources, flow, carried))
            if i == last:
                return self.settle(None, Candidate(out, scale, flow, mask), None, img0, img1, blend=True,
                                   form=self.form)[0]
            flow, mask = self.step(out, scale, flow, mask, img0, img1, measure=False, warp_frames=False,
                                   form=self.form)[:2]
            sources["mask"] = mask
            if self.v.carry_channels:  # read at the frame's size, as the block's output resized, never stored
                per = 4 ** self.form.phases  # an unshuffled head's channels: each output channel's phases
                carried = GatherGroup(out[:, 5 * per:(5 + self.v.carry_channels) * per], 0,
                                      upsampled=scale * self.v.head_factor, phases=self.form.phases)
        raise AssertionError("a variant has at least one block")

    def _feed(self, i: int, scale: float, sources: dict[str, Tensor | None], flow: Tensor | None,
              carried: GatherGroup | None) -> Tensor:
        """Block ``i``'s input at 1 / ``scale`` of the frame, all its channel groups in one launch; ``carried``: the
        last block's carried channels."""
        names = self.v.first_inputs if flow is None else self.v.refine_inputs
        pair = cast(Tensor, sources["img"])
        n, _, H, W = pair.shape[0] // 2, *pair.shape[1:]
        factor = 1.0 / scale
        size = (n, cast(FamilyBlock, self.blocks[i]).in_channels, math.floor(H * factor), math.floor(W * factor))
        x = torch.empty(size, dtype=pair.dtype, device=pair.device, memory_format=memory_format_of(pair))
        if flow is None and self.v.zero_start:  # the frames as they are, a zero mask and flow (and zero padding)
            if names[:2] != ("warped0", "warped1"):
                raise ValueError(f"{self.v.name}: a zero start reads the frames first, not {names[:2]}")
            return self.gather([GatherGroup(pair, 0, pairs=2)], x, factor, None, zero_from=6)
        groups, at, k = [], 0, 0
        while k < len(names):
            name = names[k]
            if name in PAIRED_INPUTS:
                source, warped = PAIRED_INPUTS[name]
                if names[k + 1:k + 2] != (SWAPPED_INPUT[name],):
                    raise ValueError(f"{self.v.name}: {name} is not followed by {SWAPPED_INPUT[name]}")
                group, k = GatherGroup(cast(Tensor, sources[source]), at, warped, pairs=2), k + 2
            elif name == "carry":
                group, k = cast(GatherGroup, carried)._replace(at=at), k + 1
            else:
                group, k = GatherGroup(cast(Tensor, sources[name]), at), k + 1
            groups.append(group)
            at += group.pairs * group.channels
        if flow is not None:
            groups.append(GatherGroup(flow, at, divisor=scale))
            at += FLOW_CHANNELS
        if at != self.v.block_in_channels(i):
            raise ValueError(f"{self.v.name}: block {i}'s input has {self.v.block_in_channels(i)} channels, its "
                             f"sources {at}")
        return self.gather(groups, x, factor, flow, zero_from=at if at < size[1] else None)


FUSION_WIDTH = 32


class ContextNet31(nn.Module):
    """v3.1's context network: the frame's features at 1/4 ... 1/32 of its size, each warped by the flow there."""

    def __init__(self, c: int = FUSION_WIDTH) -> None:
        super().__init__()
        self.conv0 = Conv2(3, c)
        self.conv1 = Conv2(c, c)
        self.conv2 = Conv2(c, 2 * c)
        self.conv3 = Conv2(2 * c, 4 * c)
        self.conv4 = Conv2(4 * c, 8 * c)

    def forward(self, x: Tensor, flow: Tensor, warp: Warper) -> list[Tensor]:
        """``flow`` at half the frame's size."""
        x = self.conv0(x)
        features = []
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            x = conv(x)
            flow = resize(flow, 0.5) * 0.5
            features.append(warp(x, flow))
        return features


class FusionNet31(ContextUNet):
    """v3.1's fusion network: from both warped frames, the flow and the context features, the residual (channels
    0-2) and the mask (channel 3), before their sigmoids."""

    def __init__(self, c: int = FUSION_WIDTH) -> None:
        super().__init__()
        self.conv0 = Conv2(10, c)
        self.down0 = Conv2(c, 2 * c)
        self._add_levels(c)
        self.conv = nn.ConvTranspose2d(c, 4, 4, 2, 1)

    def forward(self, warped0: Tensor, warped1: Tensor, flow: Tensor, ctx0: list[Tensor],
                ctx1: list[Tensor]) -> Tensor:
        s0 = self.down0(self.conv0(torch.cat((warped0, warped1, flow), 1)))
        return self.conv(self.levels(s0, ctx0, ctx1))


class HalfFlowPass:
    """v3.1's forward pass: flows at half the frame's size (each block's output resized by its scale), each block
    after the first reading both frames warped by the flow brought to full size; then the context and fusion
    networks make the residual and the mask."""

    def __init__(self, blocks: Sequence[nn.Module], contextnet: ContextNet31, fusion: FusionNet31,
                 warp: Warper) -> None:
        self.blocks = blocks
        self.contextnet = contextnet
        self.fusion = fusion
        self.warp = warp

    def _block(self, i: int, x: Tensor, flow: Tensor | None, scale: float) -> Tensor:
        x = resize(x, 1.0 / scale)
        if flow is not None:
            x = torch.cat((x, resize(flow, 1.0 / scale) * (1.0 / scale)), 1)
        out = self.blocks[i](x)
        return resize(out, scale) * scale if scale != 1 else out

    def __call__(self, img0: Tensor, img1: Tensor, scales: list[float]) -> Tensor:
        warped0, warped1, flow, total = img0, img1, None, None
        for i, scale in enumerate(scales):
            d_flow = self._block(i, torch.cat((warped0, warped1), 1), flow, scale)
            total = d_flow if total is None else total + d_flow
            flow = resize(total, 2.0) * 2.0
            warped0, warped1 = warp_both(self.warp, img0, img1, flow)
        assert total is not None  # set by the first of the scales
        ctx0 = self.contextnet(img0, total[:, :2], self.warp)
        ctx1 = self.contextnet(img1, total[:, 2:4], self.warp)
        out = self.fusion(warped0, warped1, flow, ctx0, ctx1)
        res = torch.sigmoid(out[:, :3]) * 2 - 1
        mask = torch.sigmoid(out[:, 3:4])
        return torch.clamp(warped0 * mask + warped1 * (1 - mask) + res, 0, 1)
