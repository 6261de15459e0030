"""RIFE model variants as data: one IFNet implementation reads these descriptions.

A later Practical-RIFE release is a new ``Variant`` entry, not new model code.
Input names used by ``first_inputs`` / ``refine_inputs``:
``img0``, ``img1`` (the two frames), ``warped0``, ``warped1`` (frames warped by
the current flow), ``timestep`` (constant plane), ``mask`` (raw running mask).
"""

from __future__ import annotations

from dataclasses import dataclass

from rife.vocabulary import DEFAULT_ARCHITECTURE

CHANNELS_PER_INPUT = {"img0": 3, "img1": 3, "warped0": 3, "warped1": 3, "timestep": 1, "mask": 1}
FLOW_CHANNELS = 4


@dataclass(frozen=True)
class LargeMotionRetry:
    """Practical-RIFE's inference-time retry: when the flow update of ``at_block``
    exceeds ``threshold`` pixels in both directions, every scale is doubled and
    the blocks up to ``at_block`` are run again."""

    at_block: int
    threshold: float


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

    def __post_init__(self) -> None:
        retry = self.large_motion_retry
        if retry is not None and not 0 <= retry.at_block < self.num_blocks - 1:
            raise ValueError(f"{self.name}: the large-motion retry's block must come before the last block")

    @property
    def num_blocks(self) -> int:
        return len(self.block_widths)

    def block_in_channels(self, index: int) -> int:
        if index == 0:
            return sum(CHANNELS_PER_INPUT[n] for n in self.first_inputs)
        return sum(CHANNELS_PER_INPUT[n] for n in self.refine_inputs) + FLOW_CHANNELS


VARIANTS: dict[str, Variant] = {
    "paper": Variant(
        name="paper",
        block_widths=(240, 150, 90),
        scales=(4, 2, 1),
        first_inputs=("img0", "img1"),
        refine_inputs=("img0", "img1", "warped0", "warped1", "mask"),
        has_timestep=False,
        refine_unet=True,
        pad_multiple=32,
        teacher_in_channels=20,
    ),
    "v4.0": Variant(
        name="v4.0",
        block_widths=(192, 128, 96, 64),
        scales=(8, 4, 2, 1),
        first_inputs=("img0", "img1", "timestep"),
        refine_inputs=("warped0", "warped1", "timestep", "mask"),
        has_timestep=True,
        refine_unet=False,
        pad_multiple=64,
        teacher_in_channels=21,
        large_motion_retry=LargeMotionRetry(at_block=1, threshold=32.0),
    ),
}

DEFAULT_VARIANT = DEFAULT_ARCHITECTURE


def get_variant(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown model variant {name!r}; choose one of {', '.join(VARIANTS)}") from None
