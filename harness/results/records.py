"""What crosses processes and files, typed: a stream's record and the run's results document.

A stream builds a ``StreamRecord``; it travels to the parent by pickle (torchrun's gather) or in its
``results_<n>.json``, which is a ``RunDocument`` of that one stream, the same format as ``results.json``.
``to_json`` gives the reference's key tree (plus our additions) and ``from_json`` reads it back; readers of
old or partial files get the defaults. No torch here: the parent and the summary tools read these without it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

SCHEMA = "rife-bench/results/v1"

JsonDict = dict[str, Any]


class StreamStatus(str, Enum):
    """Where a stream got to; ``failed`` until it says otherwise."""

    FAILED = "failed"
    WARMED_UP = "warmed-up"
    RUNNING = "running"
    COMPLETED = "completed"
    INTERRUPTED = "interrupted"


class RunStatus(str, Enum):
    PASSED = "passed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


class BarrierState(str, Enum):
    PASSED = "passed"
    BROKEN = "broken"  # another stream died or the run was interrupted: this one went on alone


def _opt(cls: Any, value: Any) -> Any:
    """``cls.from_json(value)``, or None for a missing value."""
    return None if value is None else cls.from_json(value)


def _enum(cls: Any, value: Any, default: Any) -> Any:
    try:
        return cls(value)
    except ValueError:
        return default


def _plain(value: Any) -> Any:
    """Enums as their words, tuples as lists, nested records as their JSON."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if hasattr(value, "to_json"):
        return value.to_json()
    return value


def _flat(record: Any, omit_none: Iterable[str] = ()) -> JsonDict:
    """A record's fields as JSON, in field order; those in ``omit_none`` are left out when None."""
    skip = set(omit_none)
    return {f.name: _plain(getattr(record, f.name)) for f in dataclasses.fields(record)
            if not (f.name in skip and getattr(record, f.name) is None)}


def _known(cls: Any, data: Mapping[str, Any]) -> JsonDict:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}


# --- a stream's parts ------------------------------------------------------------------------
@dataclass(frozen=True)
class Placement:
    """Where a GPU stream pinned itself: its GPU's PCI address, NUMA node and CPUs (or why it did not)."""

    pci_address: str | None
    numa_node: int | None
    cpus: tuple[int, ...] | None
    note: str | None = None

    def to_json(self) -> JsonDict:
        return _flat(self, omit_none=("note",))

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Placement:
        cpus = d.get("cpus")
        return cls(d.get("pci_address"), d.get("numa_node"), None if cpus is None else tuple(cpus), d.get("note"))


@dataclass(frozen=True)
class Warmup:
    calls: int
    pairs: int
    seconds: float

    def to_json(self) -> JsonDict:
        return _flat(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Warmup:
        return cls(d.get("calls", 0), d.get("pairs", 0), d.get("seconds", 0.0))


@dataclass(frozen=True)
class CallLog:
    """Every timed call: when it was issued (seconds since the stream's timed loop began, host clock), its
    latency (ms, as ``harness.measure.core.Meter`` measures it) and the frame pairs it carried. Columns, not rows: a long
    run holds hundreds of thousands of calls."""

    start_s: tuple[float, ...]
    latency_ms: tuple[float, ...]
    pairs: tuple[int, ...]

    def to_json(self) -> JsonDict:
        return {"start_s": [round(t, 6) for t in self.start_s], "latency_ms": [round(v, 6) for v in self.latency_ms],
                "pairs": list(self.pairs)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CallLog:
        return cls(tuple(d.get("start_s") or ()), tuple(d.get("latency_ms") or ()), tuple(d.get("pairs") or ()))


@dataclass(frozen=True)
class HostLoad:
    """How busy the stream's host was during its timed loop: the 1-minute load average at the start and the end,
    the CPU time the whole machine spent busy (from /proc/stat) and this stream's process spent, both in cores
    (CPU seconds over the loop's seconds). None where the system does not tell."""

    cores: int
    load_avg_start: float | None
    load_avg_end: float | None
    busy_cores: float | None
    own_cores: float | None

    def to_json(self) -> JsonDict:
        return _flat(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> HostLoad:
        return cls(**_known(cls, d))


@dataclass(frozen=True)
class Energy:
    mean_power_w: float | None = None
    energy_per_frame_j: float | None = None
    frames_per_joule: float | None = None

    def to_json(self) -> JsonDict:
        return _flat(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Energy:
        return cls(**_known(cls, d))


@dataclass(frozen=True)
class ModelRun:
    """The model as a stream ran it."""

    variant: str
    impl: str
    weights: str
    weights_sha256: str | None
    precision_run: str
    execution: str
    autocast: bool
    # The process-wide torch settings made around each call (rife.execution.TorchSettings), by torch's names.
    torch_settings: Mapping[str, bool | int] = dataclasses.field(default_factory=dict)

    def to_json(self) -> JsonDict:
        return _flat(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ModelRun | None:
        return cls(**_known(cls, d)) if d else None


@dataclass(frozen=True)
class Measurements:
    """The timed loop's numbers. ``window`` is on the monotonic clock; add ``clock_offset_s`` for a clock shared
    across hosts. ``checkpoints``: (seconds since the start, frames done), thinned."""

    pairs: int
    frames: int
    calls: int
    elapsed_s: float
    window: tuple[float, float]
    clock_offset_s: float
    checkpoints: tuple[tuple[float, int], ...]
    throughput_fps: float
    latency_wall_ms: float | None
    latency_ms: LatencyStats | None
    shortfalls: tuple[str, ...]
    peak_memory_bytes: int | None
    energy: Energy
    frame_size: tuple[int, int]
    padded_size: tuple[int, int]
    model: ModelRun | None
    pid: int
    repeat_fps: tuple[float, ...] = ()  # --repeat N: each timed loop's throughput (frames/s)

    def to_json(self) -> JsonDict:
        out = _flat(self)
        out["latency_ms"] = self.latency_ms.to_json() if self.latency_ms else {}
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Measurements | None:
        if "pairs" not in d:
            return None
        return cls(
            pairs=d["pairs"], frames=d.get("frames", 0), calls=d.get("calls", 0), elapsed_s=d.get("elapsed_s", 0.0),
            window=tuple(d.get("window") or (0.0, 0.0)),
            clock_offset_s=d.get("clock_offset_s", 0.0),
            checkpoints=tuple((t, f) for t, f in d.get("checkpoints") or ()),
            throughput_fps=d.get("throughput_fps") or 0.0, latency_wall_ms=d.get("latency_wall_ms"),
            latency_ms=LatencyStats.from_json(d["latency_ms"]) if d.get("latency_ms") else None,
            shortfalls=tuple(d.get("shortfalls") or ()), peak_memory_bytes=d.get("peak_memory_bytes"),
            energy=Energy.from_json(d.get("energy") or {}),
            frame_size=tuple(d.get("frame_size") or (0, 0)),
            padded_size=tuple(d.get("padded_size") or (0, 0)),
            model=ModelRun.from_json(d.get("model") or {}), pid=d.get("pid", 0),
            repeat_fps=tuple(d.get("repeat_fps") or ()),
        )


@dataclass(frozen=True)
class FrameScore:
    name: str
    psnr: float
    ssim: float
    passed: bool

    @classmethod
    def judged(cls, name: str, psnr: float, ssim: float, threshold_db: float) -> FrameScore:
        """A frame passes at ``threshold_db`` (--psnr-threshold) or above."""
        return cls(name, psnr, ssim, psnr >= threshold_db)

    def to_json(self) -> JsonDict:
        return _flat(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> FrameScore:
        return cls(d["name"], d["psnr"], d["ssim"], d["passed"])


@dataclass(frozen=True)
class DataSource:
    """The quality data a stream read."""

    layout: str
    root: str
    content_hash: str
    bad: tuple[str, ...] = ()

    def to_json(self) -> JsonDict:
        return _flat(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> DataSource:
        return cls(d.get("layout", ""), d.get("root", ""), d.get("content_hash", ""), tuple(d.get("bad") or ()))


@dataclass(frozen=True)
class QualityOutcome:
    """Counts, accuracy and the decision, in the reference's quality_data terms, plus PSNR and SSIM."""

    test_count: int
    test_pass: int
    test_fail: int
    test_pass_pct: float
    test_fail_pct: float
    decision_pass: bool
    psnr_mean_db: float
    psnr_min_db: float
    ssim_mean: float
    failed_frames: tuple[str, ...]
    data: DataSource | None = None

    @classmethod
    def of(cls, frames: Sequence[FrameScore], min_pass_pct: float, data: DataSource | None = None) -> QualityOutcome:
        passed = sum(f.passed for f in frames)
        count = len(frames)
        pct = 100.0 * passed / count if count else math.nan
        psnrs = [f.psnr for f in frames]
        return cls(
            test_count=count, test_pass=passed, test_fail=count - passed, test_pass_pct=pct,
            test_fail_pct=100.0 - pct if count else math.nan, decision_pass=bool(count) and pct >= min_pass_pct,
            psnr_mean_db=sum(psnrs) / count if count else math.nan, psnr_min_db=min(psnrs) if count else math.nan,
            ssim_mean=sum(f.ssim for f in frames) / count if count else math.nan,
            failed_frames=tuple(f.name for f in frames if not f.passed), data=data,
        )

    def to_json(self) -> JsonDict:
        return _flat(self, omit_none=("data",))

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> QualityOutcome:
        known = _known(cls, d)
        known["failed_frames"] = tuple(known.get("failed_frames") or ())
        known["data"] = _opt(DataSource, d.get("data"))
        nan = {name: math.nan if known.get(name) is None else known[name]  # JSON wrote NaN as null
               for name in ("test_pass_pct", "test_fail_pct", "psnr_mean_db", "psnr_min_db", "ssim_mean")}
        return cls(**{**known, **nan})


@dataclass(frozen=True)
class Sheet:
    """The comparison picture drawn for a frame under the threshold."""

    name: str
    psnr: float
    ssim: float
    sheet: str

    def to_json(self) -> JsonDict:
        return _flat(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Sheet:
        return cls(d["name"], d["psnr"], d["ssim"], d["sheet"])


# --- a stream -------------------------------------------------------------------------------
_OPTIONAL = ("rank", "device_name", "start_barrier", "end_barrier", "data_preloaded", "warmup", "telemetry",
             "quality_note", "quality", "signal", "traceback", "host_load", "call_log", "loadgen")


@dataclass(frozen=True)
class StreamRecord:
    """One stream's run, from its start to what it measured. In JSON the measurements are at the top level
    (the reference's flat stream entries), the optional parts appear only when set, and the per-frame scores
    (``quality_frames``) live beside the streams, in the document."""

    stream: int  # 1-based
    status: StreamStatus = StreamStatus.FAILED
    error: str | None = None
    host: str | None = None
    device: str | None = None
    rank: int | None = None  # under torchrun
    placement: Placement | None = None
    device_name: str | None = None
    data_preloaded: bool | None = None
    warmup: Warmup | None = None
    start_barrier: BarrierState | None = None
    telemetry: Mapping[str, Any] | None = None  # harness.system.telemetry's summary, without its samples
    end_barrier: BarrierState | None = None
    measurements: Measurements | None = None
    quality_note: str | None = None
    quality: QualityOutcome | None = None
    quality_frames: tuple[FrameScore, ...] = ()
    sheets: tuple[Sheet, ...] = ()
    signal: str | None = None  # the signal that stopped a torchrun rank
    traceback: str | None = None
    host_load: HostLoad | None = None
    call_log: CallLog | None = None  # in the stream's own document only (results.json: latencies.csv holds them)
    loadgen: LoadGenOutcome | None = None  # the stream that ran LoadGen's test

    # shortcuts for the readers of measurements
    @property
    def pairs(self) -> int:
        return self.measurements.pairs if self.measurements else 0

    @property
    def frames(self) -> int:
        return self.measurements.frames if self.measurements else 0

    @property
    def throughput_fps(self) -> float:
        return self.measurements.throughput_fps if self.measurements else 0.0

    def replace(self, **changes: Any) -> StreamRecord:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> JsonDict:
        """The stream's entry of a document (``quality_frames`` apart: the document holds them)."""
        out: JsonDict = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "measurements":
                out.update(value.to_json() if value is not None else {})
            elif f.name == "telemetry":
                if value is not None:
                    out["telemetry"] = dict(value)
            elif f.name in ("quality_frames",) or (f.name in _OPTIONAL and value is None):
                continue
            elif f.name == "sheets" and not value:
                continue
            else:
                out[f.name] = _plain(value)
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any], quality_frames: Iterable[Mapping[str, Any]] = ()) -> StreamRecord:
        return cls(
            stream=d["stream"], status=_enum(StreamStatus, d.get("status"), StreamStatus.FAILED),
            error=d.get("error"), host=d.get("host"), device=d.get("device"), rank=d.get("rank"),
            placement=_opt(Placement, d.get("placement")), device_name=d.get("device_name"),
            data_preloaded=d.get("data_preloaded"), warmup=_opt(Warmup, d.get("warmup")),
            start_barrier=_enum(BarrierState, d.get("start_barrier"), None),
            telemetry=d.get("telemetry"), end_barrier=_enum(BarrierState, d.get("end_barrier"), None),
            measurements=Measurements.from_json(d), quality_note=d.get("quality_note"),
            quality=_opt(QualityOutcome, d.get("quality")),
            quality_frames=tuple(FrameScore.from_json(f) for f in quality_frames),
            sheets=tuple(Sheet.from_json(s) for s in d.get("sheets") or ()), signal=d.get("signal"),
            traceback=d.get("traceback"), host_load=_opt(HostLoad, d.get("host_load")),
            call_log=_opt(CallLog, d.get("call_log")), loadgen=_opt(LoadGenOutcome, d.get("loadgen")),
        )


# --- the results document ----------------------------------------------------------------------
@dataclass(frozen=True)
class Metric:
    """One metric as the reference's results.json holds it: across streams, and its unit."""

    avg: float | None
    min: float | None
    max: float | None
    stdev: float | None
    units: str
    applicable: bool | None = None  # False: the reference's "not applicable" (accuracy in performance mode)

    def to_json(self) -> JsonDict:
        return _flat(self, omit_none=("applicable",))

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Metric:
        return cls(d.get("avg"), d.get("min"), d.get("max"), d.get("stdev"), d.get("units", ""), d.get("applicable"))


@dataclass(frozen=True)
class Overlap:
    seconds: float
    fraction: float | None

    def to_json(self) -> JsonDict:
        return _flat(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Overlap:
        return cls(d.get("seconds", 0.0), d.get("fraction"))


@dataclass(frozen=True)
class Share:
    """The throughput of a device or a host, and its streams."""

    throughput: float
    streams: tuple[int, ...]
    device_name: str | None = None  # per device
    ranks: tuple[int, ...] | None = None  # per host, under torchrun

    def to_json(self) -> JsonDict:
        return _flat(self, omit_none=("device_name", "ranks"))

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Share:
        ranks = d.get("ranks")
        return cls(d.get("throughput", 0.0), tuple(d.get("streams") or ()), d.get("device_name"),
                   None if ranks is None else tuple(ranks))


@dataclass(frozen=True)
class Percentile:
    """A latency percentile of the pooled calls, and whether enough calls were seen to establish it."""

    ms: float | None
    established: bool
    samples_needed: int

    def to_json(self) -> JsonDict:
        return _flat(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Percentile:
        return cls(d.get("ms"), bool(d.get("established")), d.get("samples_needed", 0))


@dataclass(frozen=True)
class LatencyStats:
    """Per-call latency (ms) of one stream's calls or of every stream's calls pooled: percentiles with their
    sample-size verdicts, and the spread (interquartile range over the median) that torch.utils.benchmark warns on.
    The one summary of latencies (``harness.measure.latency.describe``)."""

    samples: int
    percentiles: Mapping[str, Percentile]
    max_ms: float | None
    mean_ms: float | None
    median_ms: float | None
    iqr_ms: float | None
    iqr_over_median: float | None
    min_ms: float | None = None
    stdev_ms: float | None = None

    def percentile(self, name: str) -> float | None:
        """``p50`` ... ``p99.9`` in ms (None where not computed)."""
        p = self.percentiles.get(name)
        return None if p is None else p.ms

    def to_json(self) -> JsonDict:
        out = _flat(self)
        out["percentiles"] = {k: p.to_json() for k, p in self.percentiles.items()}
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> LatencyStats:
        if "percentiles" not in d and "count" in d:  # a stream's summary as older results wrote it
            return cls._from_flat_summary(d)
        return cls(d.get("samples", 0), {k: Percentile.from_json(p) for k, p in (d.get("percentiles") or {}).items()},
                   d.get("max_ms"), d.get("mean_ms"), d.get("median_ms"), d.get("iqr_ms"), d.get("iqr_over_median"),
                   d.get("min_ms"), d.get("stdev_ms"))

    @classmethod
    def _from_flat_summary(cls, d: Mapping[str, Any]) -> LatencyStats:
        names = ("p50", "p90", "p95", "p99", "p99.9")
        return cls(d.get("count", 0), {k: Percentile(d.get(k), False, 0) for k in names if d.get(k) is not None},
                   d.get("max"), d.get("mean"), d.get("p50"), None, None, d.get("min"), d.get("stdev"))


@dataclass(frozen=True)
class Repeats:
    """``--repeat N``: the timed measurement run N times in one process after one warm-up. The run's throughput
    (frames/s, all streams together) of each repeat, their median and range, and a distribution-free interval for
    the median (order statistics; with fewer than six repeats the range itself, at the confidence it has)."""

    count: int
    throughput_fps: tuple[float, ...]
    median_fps: float
    min_fps: float
    max_fps: float
    interval_fps: tuple[float, float]
    confidence: float  # of interval_fps, 0-1

    @property
    def spread(self) -> float | None:
        """(max - min) / median."""
        return (self.max_fps - self.min_fps) / self.median_fps if self.median_fps > 0 else None

    def to_json(self) -> JsonDict:
        return _flat(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Repeats:
        lo, hi = d.get("interval_fps") or (math.nan, math.nan)
        return cls(d.get("count", 0), tuple(d.get("throughput_fps") or ()), d.get("median_fps", math.nan),
                   d.get("min_fps", math.nan), d.get("max_fps", math.nan), (lo, hi), d.get("confidence", 0.0))


@dataclass(frozen=True)
class LoadGenOutcome:
    """What MLPerf LoadGen said of one test (from its detail log): its verdict and the reasons, its figures
    (latencies in ms, rates in samples/s), and, in quality mode, the scored accuracy log and the TEST01-style
    check of performance-mode outputs against accuracy-mode outputs."""

    scenario: str
    mode: str
    validity: str  # VALID | INVALID
    reasons: tuple[str, ...] = ()
    samples_per_s: float | None = None  # completed (Server), samples/s (Offline), QPS w/ overhead x samples/query
    scheduled_per_s: float | None = None  # Server: the Poisson arrivals' rate
    target_qps: float | None = None
    latency_bound_ms: float | None = None
    percentiles_ms: Mapping[str, float] = field(default_factory=dict)  # p50 ... p99.9, as LoadGen names them
    mean_ms: float | None = None
    max_ms: float | None = None
    queries: int | None = None
    samples_per_query: int = 1
    early_stopping: tuple[str, ...] = ()
    logs: tuple[str, ...] = ()  # LoadGen's own files, relative to the output folder
    accuracy_psnr_db: float | None = None
    accuracy_ssim: float | None = None
    accuracy_samples: int = 0
    audit_checked: int = 0
    audit_mismatched: tuple[int, ...] = ()  # sample indices whose performance-mode frame differs

    @property
    def audit_passed(self) -> bool | None:
        return None if not self.audit_checked else not self.audit_mismatched

    def to_json(self) -> JsonDict:
        out = _flat(self)
        out["percentiles_ms"] = dict(self.percentiles_ms)
        out["audit_passed"] = self.audit_passed
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> LoadGenOutcome:
        known = _known(cls, d)
        for name in ("reasons", "early_stopping", "logs", "audit_mismatched"):
            known[name] = tuple(known.get(name) or ())
        return cls(**known)


@dataclass(frozen=True)
class RunResults:
    date: str
    tester: str
    metrics: Mapping[str, Metric]
    status: RunStatus
    validity: str
    invalid_reasons: tuple[str, ...]
    overlap: Overlap
    per_device: Mapping[str, Share]
    hosts: Mapping[str, Share]
    latency: LatencyStats | None = None
    warnings: tuple[str, ...] = ()  # what makes the figures less trustworthy without making the run invalid
    repeats: Repeats | None = None  # --repeat N > 1
    loadgen: LoadGenOutcome | None = None  # --scenario other than streams

    def metric(self, name: str) -> Metric | None:
        return self.metrics.get(name)

    def to_json(self) -> JsonDict:
        per_device = {k: {**s.to_json(), "device_name": s.device_name} for k, s in self.per_device.items()}
        return {
            "metadata": {"date": self.date, "tester": self.tester},
            "metrics": {k: m.to_json() for k, m in self.metrics.items()},
            "status": self.status.value, "validity": self.validity, "invalid_reasons": list(self.invalid_reasons),
            "overlap": self.overlap.to_json(), "per_device": per_device,
            "hosts": {k: s.to_json() for k, s in self.hosts.items()},
            "latency": self.latency.to_json() if self.latency else None, "warnings": list(self.warnings),
            "repeats": self.repeats.to_json() if self.repeats else None,
            "loadgen": self.loadgen.to_json() if self.loadgen else None,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> RunResults:
        meta = d.get("metadata") or {}
        return cls(
            date=meta.get("date", ""), tester=meta.get("tester", ""),
            metrics={k: Metric.from_json(m) for k, m in (d.get("metrics") or {}).items()},
            status=_enum(RunStatus, d.get("status"), RunStatus.FAILED), validity=d.get("validity", ""),
            invalid_reasons=tuple(d.get("invalid_reasons") or ()), overlap=Overlap.from_json(d.get("overlap") or {}),
            per_device={k: Share.from_json(s) for k, s in (d.get("per_device") or {}).items()},
            hosts={k: Share.from_json(s) for k, s in (d.get("hosts") or {}).items()},
            latency=_opt(LatencyStats, d.get("latency")), warnings=tuple(d.get("warnings") or ()),
            repeats=_opt(Repeats, d.get("repeats")), loadgen=_opt(LoadGenOutcome, d.get("loadgen")),
        )


# --- the run's configuration ------------------------------------------------------------------
@dataclass(frozen=True)
class ModelConfig:
    """``config.workload.model``: what ran and how (the reference's keys, with ours after them)."""

    streams: int = 0
    precision: str | None = None  # the reference's dtype word (float16, bfloat16, float32)
    batch_size: int = 0  # "batch-size" in JSON
    device_ids: tuple[int, ...] | None = None
    device: str | None = None
    device_name: str | None = None
    amp: bool = False
    autocast: bool = False
    jit: bool = False
    dummy: bool = False
    framework: str | None = None
    variant: str | None = None
    implementation: str | None = None
    execution: str | None = None
    weights: str | None = None
    weights_sha256: str | None = None
    padding: Mapping[str, Any] = field(default_factory=dict)
    scale: float = 1.0
    ensemble: bool | None = None
    interpolation: int = 1
    input_pool: int | None = None
    transfers: bool = True
    ipex: bool | None = None
    conv_epilogues: str | None = None
    name: str = "RIFE"
    link: str = "https://github.com/megvii-research/ECCV2022-RIFE"

    def to_json(self) -> JsonDict:
        out = _flat(self)
        head = {"name": out.pop("name"), "link": out.pop("link")}
        out = {("batch-size" if k == "batch_size" else k): v for k, v in out.items()}
        out["padding"] = dict(self.padding)
        return {**head, **out}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ModelConfig:
        known = _known(cls, {**d, "batch_size": d.get("batch-size", 0)})
        if known.get("device_ids") is not None:
            known["device_ids"] = tuple(known["device_ids"])
        return cls(**known)


@dataclass(frozen=True)
class RunConfig:
    """results.json's ``config``: the harness, the model as run, the data, the machine, the command and every
    option as resolved. ``dataset`` and ``system`` hold facts whose keys vary with the data and the machine."""

    harness: Mapping[str, Any] = field(default_factory=dict)  # "metadata": name, version, git revision
    model: ModelConfig = field(default_factory=ModelConfig)
    dataset: Mapping[str, Any] = field(default_factory=dict)
    system: Mapping[str, Any] = field(default_factory=dict)
    command_line: tuple[str, ...] = ()
    seed: int | None = None
    seeds: Mapping[str, int] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def git_commit(self) -> str | None:
        return (self.harness.get("harness") or {}).get("git_commit")

    def to_json(self) -> JsonDict:
        return {
            "metadata": dict(self.harness),
            "workload": {"type": "inference", "name": "RIFE", "model": self.model.to_json(),
                         "dataset": dict(self.dataset)},
            "system": dict(self.system), "command_line": list(self.command_line), "seed": self.seed,
            "seeds": dict(self.seeds), "options": dict(self.options),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> RunConfig:
        workload = d.get("workload") or {}
        return cls(harness=d.get("metadata") or {}, model=ModelConfig.from_json(workload.get("model") or {}),
                   dataset=workload.get("dataset") or {}, system=d.get("system") or {},
                   command_line=tuple(d.get("command_line") or ()), seed=d.get("seed"), seeds=d.get("seeds") or {},
                   options=d.get("options") or {})


@dataclass(frozen=True)
class RunDocument:
    """``results.json`` (every stream) or ``results_<n>.json`` (stream n alone)."""

    config: RunConfig
    warmup_metrics: Mapping[str, Metric]
    quality: QualityOutcome | None
    quality_note: str
    results: RunResults
    streams: tuple[StreamRecord, ...]
    schema: str = SCHEMA
    quality_frames: tuple[FrameScore, ...] = field(default=())

    def to_json(self) -> JsonDict:
        quality = self.quality.to_json() if self.quality else {"applicable": False, "note": self.quality_note}
        return {
            "schema": self.schema,
            "config": self.config.to_json(),
            "warmup_result": {"results": {"metadata": {"streams": len(self.streams)},
                                          "metrics": {k: m.to_json() for k, m in self.warmup_metrics.items()}}},
            "quality_data": quality,
            "results": self.results.to_json(),
            "streams": [s.to_json() for s in self.streams],
            "quality_frames": [f.to_json() for f in self.quality_frames],
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> RunDocument:
        q = d.get("quality_data") or {}
        warm = ((d.get("warmup_result") or {}).get("results") or {}).get("metrics") or {}
        frames = d.get("quality_frames") or []
        streams = d.get("streams") or []
        return cls(
            config=RunConfig.from_json(d.get("config") or {}), warmup_metrics={k: Metric.from_json(m) for k, m in warm.items()},
            quality=QualityOutcome.from_json(q) if "test_count" in q else None, quality_note=q.get("note", ""),
            results=RunResults.from_json(d.get("results") or {}),
            # a stream's own document: its frames are the document's
            streams=tuple(StreamRecord.from_json(s, frames if len(streams) == 1 else ()) for s in streams),
            schema=d.get("schema", SCHEMA), quality_frames=tuple(FrameScore.from_json(f) for f in frames),
        )
