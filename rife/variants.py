"""RIFE architectures as data: one IFNet implementation reads these descriptions.

A ``Variant`` says what a release's flow network is made of; ``rife.registry`` pairs each with its name, weights
and upstream code. Input names used by ``first_inputs`` / ``refine_inputs``:
``img0``, ``img1`` (the two frames), ``warped0``, ``warped1`` (frames warped by the current flow), ``timestep``
(constant plane), ``mask`` (raw running mask), ``feat0``, ``feat1`` (the frames' encoder features, 4.7+),
``wfeat0``, ``wfeat1`` (those features warped by the current flow), ``carry`` (the previous block's extra outputs,
4.21+).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the vocabulary stays torch-free at run time
    from torch import Tensor

CHANNELS_PER_INPUT = {"img0": 3, "img1": 3, "warped0": 3, "warped1": 3, "timestep": 1, "mask": 1}
FLOW_CHANNELS = 4
FLOW_AND_MASK = 5

# The bidirectional (ensemble) pass reads the other frame's input where this one reads its own.
SWAPPED_INPUT = {"img0": "img1", "img1": "img0", "warped0": "warped1", "warped1": "warped0",
                 "feat0": "feat1", "feat1": "feat0", "wfeat0": "wfeat1", "wfeat1": "wfeat0"}

ACTIVATIONS = ("prelu", "leaky")
# The blocks' bodies: 8 conv units with one skip around them (paper, 4.0, 4.1), without it (4.2-4.4), 8 residual
# convolutions with a learned per-channel beta (4.5+), or 4 (v3.5+) or 3 (v3.1) pairs of conv units, each pair with
# a skip.
BODIES = ("conv8_skip", "conv8", "resconv8", "pairs4", "pairs3")
# The blocks' heads: one transposed convolution to flow + mask at 1 / (2 scale) (``deconv``); one to 4 k channels
# and a pixel shuffle, k channels at 1 / scale (``shuffle``); separate flow and mask transposed convolutions at
# 1 / (2 scale) (``split``, v3.5) or two-stage ones at 1 / scale (``split2``, v3.6, v3.8); or a flow alone at
# 1 / (2 scale) (``flow``, v3.1, whose flows stay at half the frame's size and whose mask the fusion network makes).
HEADS = ("deconv", "shuffle", "split", "split2", "flow")
ENCODERS = ("pair", "seq", "head")


@dataclass(frozen=True)
class LargeMotionRetry:
    """Practical-RIFE's inference-time retry: when the flow update of ``at_block``
    exceeds ``threshold`` pixels in both directions, every scale is doubled and
    the blocks up to ``at_block`` are run again."""

    at_block: int
    threshold: float

    def wanted(self, peaks: Tensor) -> Tensor:
        """Per sample, from the block's ``rife.layers.flow_peaks`` (N, 2): whether the retry is wanted."""
        return (peaks[:, 0] > self.threshold) & (peaks[:, 1] > self.threshold)


@dataclass(frozen=True)
class Encoder:
    """Practical-RIFE 4.7+'s per-frame feature encoder, run once per frame at full size: ``pair`` is a strided
    convolution and a transposed one (4.7-4.9, keys ``encode.0``/``encode.1``); ``seq`` three convolutions with
    LeakyReLU and a transposed one (keys ``encode.0/2/4/6``); ``head`` the same as named modules
    ``cnn0``-``cnn3`` (4.13+)."""

    kind: str
    width: int
    channels: int


@dataclass(frozen=True)
class Variant:
    name: str
    block_widths: tuple[int, ...]
    scales: tuple[float, ...]
    first_inputs: tuple[str, ...]
    refine_inputs: tuple[str, ...]
    has_timestep: bool
    refine_unet: bool
    pad_multiple: int
    teacher_in_channels: int
    large_motion_retry: LargeMotionRetry | None = None
    context_width: int = 16
    activation: str = "prelu"
    body: str = "conv8_skip"
    body_groups: int = 1
    head: str = "deconv"
    head_channels: int = FLOW_AND_MASK  # what a block outputs: flow (4), mask (1), then extras (unused or carried)
    encoder: Encoder | None = None
    carry_channels: int = 0  # block outputs after flow and mask that the next block reads (``carry``)
    mask_accumulates: bool = True  # False: each block's mask replaces the running one (4.7+)
    zero_start: bool = False  # the first block reads the refine inputs with zero flow and mask (v3.x)
    adaptive_scale: bool = False  # v3.8: a trial first block at twice the scale may double every scale
    ensemble: str = "none"  # "none" (not offered), "off" or "on": offered, and the default
    # v3.1: a context network and a fusion network (keys ``contextnet.*``, ``unet.*``, each in a file of its own
    # beside flownet.pkl) refine the half-size flow into the frame, and make the mask.
    fusion_refine: bool = False

    def __post_init__(self) -> None:
        retry = self.large_motion_retry
        if retry is not None and not 0 <= retry.at_block < self.num_blocks - 1:
            raise ValueError(f"{self.name}: the large-motion retry's block must come before the last block")
        for field, value, allowed in (("activation", self.activation, ACTIVATIONS), ("body", self.body, BODIES),
                                      ("head", self.head, HEADS), ("ensemble", self.ensemble, ("none", "off", "on"))):
            if value not in allowed:
                raise ValueError(f"{self.name}: {field} {value!r} is not one of {', '.join(allowed)}")
        if self.encoder is not None and self.encoder.kind not in ENCODERS:
            raise ValueError(f"{self.name}: encoder {self.encoder.kind!r} is not one of {', '.join(ENCODERS)}")
        if len(self.scales) != self.num_blocks:
            raise ValueError(f"{self.name}: one scale per block")

    @property
    def num_blocks(self) -> int:
        return len(self.block_widths)

    @property
    def classic(self) -> bool:
        """The paper / 4.0 block and flow arithmetic, which the fused ``fast`` path (``BlockFeed``, ``FlowStep`` and
        their Triton kernels) computes; other variants run ``IFNet``'s general path."""
        return (self.activation, self.body, self.head, self.head_channels, self.encoder, self.carry_channels,
                self.mask_accumulates, self.zero_start, self.adaptive_scale) == (
                    "prelu", "conv8_skip", "deconv", FLOW_AND_MASK, None, 0, True, False, False)

    @property
    def companions(self) -> tuple[str, ...]:
        """Sub-networks whose weights come in files of their own beside flownet.pkl (``NAME.pkl``)."""
        return ("contextnet", "unet") if self.fusion_refine else ()

    @property
    def head_factor(self) -> int:
        """A block's output is at 1 / (scale * head_factor) of the frame."""
        return 2 if self.head in ("deconv", "split", "flow") else 1

    def input_channels(self, name: str) -> int:
        if name in ("feat0", "feat1", "wfeat0", "wfeat1"):
            return self.encoder.channels if self.encoder is not None else 0
        if name == "carry":
            return self.carry_channels
        return CHANNELS_PER_INPUT[name]

    def block_in_channels(self, index: int) -> int:
        if index == 0 and not self.zero_start:
            return sum(self.input_channels(n) for n in self.first_inputs)
        return sum(self.input_channels(n) for n in self.refine_inputs) + FLOW_CHANNELS
