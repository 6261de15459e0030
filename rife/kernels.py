"""What an IFNet computes with besides its layers: the interfaces of the kernels an execution mode may give it
(``Kernels``; ``rife.triton_warp`` and ``rife.fused_conv`` implement them) and the records they exchange."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol, TypeVar

from torch import Tensor, nn


class WarpKernel(Protocol):
    """A fused backward warp with ``Warper``'s fp32 semantics (``rife.triton_warp.fused_warp``)."""

    def __call__(self, img: Tensor, flow: Tensor) -> Tensor: ...


A = TypeVar("A")


B = TypeVar("B")


class ForkJoin(Protocol):
    """How two computations that do not depend on each other run: both results, in order."""

    def __call__(self, first: Callable[[], A], second: Callable[[], B]) -> tuple[A, B]: ...


def one_after_another(first: Callable[[], A], second: Callable[[], B]) -> tuple[A, B]:
    return first(), second()


class Candidate(NamedTuple):
    """A block output, its scale, and the running flow and mask it is added to (None for the first block)."""

    out: Tensor
    scale: float
    prev_flow: Tensor | None
    prev_mask: Tensor | None


@dataclass(frozen=True)
class StepForm:
    """What a flow step does besides the paper / 4.0 arithmetic (the defaults): the block output is at
    1 / (scale * ``head_factor``) of the frame; ``mask_adds`` False: the block's mask replaces the running one
    (Practical-RIFE 4.7+); ``fp32_state``: the flow and mask stored in fp32 whatever the block output's dtype;
    ``ensemble``: the block output is a batch of 2N, the second N the same block with the frames' roles exchanged
    (``rife.families.FusedPass``): the two are averaged, and the state is stored for both directions' next blocks
    (2N: the second N with the flow's halves swapped and the mask negated); ``phases``: the block output comes before
    the last ``phases`` pixel shuffles (by 2) of its head (``Kernels.head_phases``), and the step reads each pixel
    where the shuffles would have put it."""

    head_factor: int = 2
    mask_adds: bool = True
    fp32_state: bool = False
    ensemble: bool = False
    phases: int = 0


class StepKernel(Protocol):
    """``FlowStep`` in one fused kernel: (flow, mask, warped0, warped1, peaks), the warped frames None unless
    ``warp_frames``, the peaks None unless ``measure`` (``rife.triton_warp.step``); ``form``: another family's
    step."""

    def __call__(self, out: Tensor, scale: float, prev_flow: Tensor | None, prev_mask: Tensor | None, img0: Tensor,
                 img1: Tensor, measure: bool, warp_frames: bool = True, form: StepForm | None = None
                 ) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None, Tensor | None]: ...


class SettleKernel(Protocol):
    """``FlowStep.settle`` in one fused kernel: the state (flow, mask, warped0, warped1), or with ``blend`` the
    blended frame alone, (frame,) (``rife.triton_warp.settle``)."""

    def __call__(self, take_b: Tensor | None, a: Candidate, b: Candidate | None, img0: Tensor, img1: Tensor,
                 blend: bool, form: StepForm | None = None) -> tuple[Tensor, ...]: ...


class GatherGroup(NamedTuple):
    """A group of a block input's channels for a ``GatherKernel``: ``src`` (pairs * N, C, H, W) resized into channels
    ``at`` onwards (both halves of a pair side by side), warped first by the flow where ``warped``, divided by
    ``divisor``. With ``upsampled`` (not warped), ``src`` stands for itself resized by that factor and stored in
    its dtype (a block's carried channels at the frame's size), which is never written; with ``phases`` too, ``src``
    comes before that many pixel shuffles (by 2) and stands for their output (an unshuffled head's, see
    ``StepForm.phases``)."""

    src: Tensor
    at: int
    warped: bool = False
    pairs: int = 1
    divisor: float = 1.0
    upsampled: float = 1.0
    phases: int = 0

    @property
    def channels(self) -> int:
        """The channels of one part of the source this group stands for (after its pixel shuffles)."""
        return self.src.shape[1] // 4 ** self.phases

    @property
    def size(self) -> tuple[int, int]:
        """The size (height, width) of the source this group stands for after its pixel shuffles."""
        h, w = self.src.shape[2:]
        return h * 2 ** self.phases, w * 2 ** self.phases


class GatherKernel(Protocol):
    """Groups of channels resized (and optionally warped first) into a block input (``rife.triton_warp.gather``)."""

    def __call__(self, groups: Sequence[GatherGroup], out: Tensor, factor: float, flow: Tensor | None = None,
                 zero_from: int | None = None) -> Tensor: ...


class FeedKernel(Protocol):
    """``BlockFeed`` in one fused kernel, from the running flow and mask (``rife.triton_warp.feed``)."""

    def __call__(self, names: tuple[str, ...], channels: int, scale: float, img0: Tensor, img1: Tensor,
                 t_plane: Tensor | None, flow: Tensor | None, mask: Tensor | None) -> Tensor: ...


class ConvKernel(Protocol):
    """A module computing a loaded convolution unit (``rife.layers.is_conv_unit``: a convolution and its PReLU or
    LeakyReLU, optionally taking the residual add after it, see ``residual_through``; or a ``ResConv``), or the unit
    itself where it has none for it (``rife.fused_conv.fused_units``); ``IFNet.with_kernels`` puts it in place of
    each unit."""

    def __call__(self, unit: nn.Module) -> nn.Module: ...


@dataclass(frozen=True)
class Kernels:
    """How an IFNet computes its parts besides its layers' weights (an execution choice: ``rife.execution``).
    None is PyTorch's own operations; the defaults are the reference's way."""

    warp: WarpKernel | None = None
    step: StepKernel | None = None
    settle: SettleKernel | None = None
    feed: FeedKernel | None = None
    # The other families' block inputs and carried channels (``rife.families.FusedPass``).
    gather: GatherKernel | None = None
    conv: ConvKernel | None = None
    # The PyTorch warps (and flow steps) in fp32 whatever the images' dtype (``Warper``).
    fp32_warps: bool = False
    # The PyTorch warps keep their base grids (compiled code builds them itself, fused).
    cache_grids: bool = True
    # The large-motion retry decided on the device: both candidates computed, the last flow step choosing per
    # sample, with no sync. Otherwise on the host after the retry block, as upstream (one sync per frame).
    retry_on_device: bool = False
    # How two computations that do not depend on each other run (the device-decided retry's two candidates, the
    # paper refinement's first level and context network): ``rife.execution.TwoStreams`` puts them on two CUDA
    # streams.
    fork_join: ForkJoin = one_after_another
    # The blocks' heads end before their last pixel shuffles (``rife.execution.unshuffled_heads``), which the step
    # and settle kernels undo as they read (``StepForm.phases``): the shuffles' copies are never written.
    head_phases: int = 0

    def __post_init__(self) -> None:
        if self.head_phases and (self.step is None or self.settle is None):
            raise ValueError("unshuffled block heads need the step and settle kernels, which read them")
