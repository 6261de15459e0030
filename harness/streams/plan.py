"""What the parent resolves once, before any stream starts, and hands to each stream.

The command line is read once (``arguments.Options``); the parent turns it into the model to load, how the
engine runs it (device, precision, execution plan: objects, not words), the workload, MLPerf LoadGen-style
test settings (stopping rule, warm-up, synchronization cadence, seeds) and the output folder's layout. A
stream receives a ``StreamPlan`` made of these, never the options. No torch here: the objects are built by
the modules that own them and only referred to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from harness.measure.stop import StopRule
from harness.results.outputs import OutputLayout
from harness.results.records import RunConfig

if TYPE_CHECKING:
    from harness.loadgen.settings import LoadGenPlan
    from rife.engine import Precision
    from rife.execution import ExecutionPlan
    from rife.loader import ModelChoice

WARMUP_SEED_OFFSET = 1000


@dataclass(frozen=True)
class Seeds:
    """Separate seeds for the timed inputs, the warm-up inputs and random-init weights, derived from --seed
    (the offsets keep every earlier run's inputs and weights for the same --seed)."""

    inputs: int
    warmup: int
    weights: int

    @classmethod
    def derived(cls, seed: int) -> Seeds:
        return cls(inputs=seed, warmup=seed + WARMUP_SEED_OFFSET, weights=seed)

    def stream_inputs(self, stream: int) -> int:
        """Stream n's own random inputs."""
        return self.inputs + stream


@dataclass(frozen=True)
class TestSettings:
    """How a stream is timed, as MLPerf LoadGen's test settings."""

    stop: StopRule
    warmup_pairs: int
    sync_every: int  # calls between synchronizations; 0: only at the end
    seeds: Seeds
    timing_lock: Path | None = None  # held from the first warm-up call's end to the timed loop's (runs take turns)
    repeat: int = 1  # timed loops after the one warm-up
    loadgen: LoadGenPlan | None = None  # an MLPerf LoadGen scenario instead of the timed loop


@dataclass(frozen=True)
class Workload:
    """What a stream interpolates."""

    dummy: bool  # performance mode: random frames; else quality mode on ``data``
    frame_size: tuple[int, int]  # (height, width)
    batch_size: int
    interpolation: int  # frames generated per pair
    input_pool: int
    transfers: bool
    data: Path | None = None
    num_inputs: int = 0  # quality mode: the most triplets read
    skip_bad: bool = False
    preload_mb: int = 0
    saveimages: bool = False
    psnr_threshold: float = 0.0
    min_pass_pct: float = 0.0


@dataclass(frozen=True)
class EngineSpec:
    """How the model runs: precision and execution plan as resolved (and checked) for the platform, and the flow's
    scale."""

    precision: Precision
    execution: ExecutionPlan  # with IPEX on an XPU when asked
    scale: float = 1.0  # flow resolution (vs-rife's scale)


@dataclass(frozen=True)
class StreamPlan:
    """Everything a stream process needs (picklable: streams start with ``spawn``)."""

    index: int  # 1-based
    streams: int
    device: str  # e.g. cuda:1
    cpu_threads: int
    model: ModelChoice
    engine: EngineSpec
    workload: Workload
    settings: TestSettings
    layout: OutputLayout
    quality_indices: tuple[int, ...] = ()
    rank: int | None = None  # under torchrun
    config: RunConfig = field(default_factory=RunConfig)  # the results document's config
