"""The measurement core: one timed loop that every published number comes from.

A ``Meter`` makes model calls the way a run makes them (the upload's wait and the conversion to model inputs, the
call, the download when asked) and times them: ``warm_up`` untimed, ``timed`` under a stopping rule with the raw
per-call device times (``LatencyClock``: events on GPUs and XPUs, ``perf_counter`` on the CPU) and the wall time
of the loop read after the final synchronize. What else happens in a run (quality scoring, saving frames,
progress) watches the calls as an ``Observer``; the stream process, the GPU table and the release checks are
plumbing and sweeps around the same ``Meter``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Protocol

import torch
from torch import Tensor

from harness.measure.inputs import DeviceBatch, HostBatch, HostCopier, PendingBatch, Uploader
from harness.measure.latency import describe
from harness.measure.stop import StopRule
from harness.results.records import LatencyStats
from harness.system import device as dev
from rife.engine import Engine


@dataclass(frozen=True)
class Call:
    """One model call: its inputs on the device, the generated frames, and their uint8 copies on the host (on
    their way: synchronize before reading them) when the meter downloads."""

    batch: DeviceBatch
    outputs: list[Tensor]
    host_outputs: list[Tensor] | None

    @property
    def pairs(self) -> int:
        return self.batch.img0.shape[0]


class Observer(Protocol):
    """Watches the timed calls (after each call, outside its latency; the loop's wall time includes it)."""

    def on_call(self, call: Call) -> None: ...


@dataclass
class Timed:
    """What one timed loop measured, raw: monotonic start and end, and per call its start (seconds since the loop
    began), latency and pairs; checkpoints (seconds since the start, frames done) after every call."""

    interpolation: int
    start: float = 0.0
    end: float = 0.0
    clock_offset: float = 0.0  # wall clock - monotonic clock at the start: a time base shared across hosts
    call_starts: list[float] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    call_pairs: list[int] = field(default_factory=list)
    checkpoints: list[tuple[float, int]] = field(default_factory=list)
    clock: dev.LatencyClock | None = field(default=None, repr=False, compare=False)  # while the loop runs

    @property
    def pairs(self) -> int:
        return sum(self.call_pairs)

    @property
    def frames(self) -> int:
        """Generated (interpolated) frames."""
        return self.pairs * self.interpolation

    @property
    def calls(self) -> int:
        return len(self.call_pairs)

    @property
    def elapsed_s(self) -> float:
        return max(self.end - self.start, 0.0) if self.end else 0.0

    @property
    def throughput_fps(self) -> float:
        """Generated frames per second of the loop's wall time."""
        return self.frames / self.elapsed_s if self.pairs and self.elapsed_s > 0 else 0.0

    def latency(self) -> LatencyStats | None:
        return describe(self.latencies_ms[:self.calls])


def joined(parts: Sequence[Timed]) -> Timed:
    """Several timed loops of one stream (``--repeat``) as one: from the first one's start to the last one's end,
    every call, the call starts and checkpoints placed on the first loop's time base."""
    first = parts[0]
    whole = Timed(first.interpolation, first.start, parts[-1].end, first.clock_offset)
    frames = 0
    for part in parts:
        shift = part.start - first.start
        whole.call_starts += [t + shift for t in part.call_starts]
        whole.latencies_ms += part.latencies_ms[:part.calls]
        whole.call_pairs += part.call_pairs
        whole.checkpoints += [(t + shift, f + frames) for t, f in part.checkpoints]
        frames += part.frames
    return whole


def never_stop() -> None:
    return None


class Meter:
    """Model calls on ``engine`` as a run makes them, warm-up and timed. ``check_stop`` raises to end the work
    (called between calls, and inside long calls between their frames)."""

    def __init__(self, engine: Engine, interpolation: int, frame_size: tuple[int, int], *, download: bool = False,
                 check_stop: Callable[[], None] = never_stop) -> None:
        from rife.engine import timesteps

        self.engine, self.interpolation, self.frame_size = engine, interpolation, frame_size
        self.download, self.check_stop = download, check_stop
        self.device = engine.device
        self.times = timesteps(engine.variant, interpolation)
        self.uploader = Uploader(engine)
        self.copier = HostCopier(self.device)

    def call(self, pending: PendingBatch) -> Call:
        batch = self.uploader.receive(pending)
        outputs = self.engine.interpolate(batch.img0, batch.img1, self.interpolation, self.frame_size,
                                          between=self.check_stop, follows=batch.follows)
        return Call(batch, outputs, self.copier.download(outputs) if self.download else None)

    def warm_up(self, batches: Iterable[HostBatch], calls: int,
                after_call: Callable[[int, Call], None] = lambda done, call: None) -> None:
        """``calls`` untimed calls through the timed path (lazy allocations, compiles and CUDA graph captures
        happen here); ``after_call(done, call)`` after each one."""
        for done, pending in enumerate(islice(self.uploader.ahead(batches), calls), 1):
            self.check_stop()
            after_call(done, self.call(pending))
        dev.synchronize(self.device)

    def timed(self, batches: Iterable[HostBatch], rule: StopRule, *, sync_every: int = 0,
              observers: Sequence[Observer] = (), progress: Callable[[int, float], None] | None = None,
              into: Timed | None = None) -> Timed:
        """Calls until ``rule`` says stop (or ``batches`` ends). ``into``: the record to fill as the loop goes, so
        that a stop or a failure halfway keeps what was measured (``settle`` it then)."""
        timed = self.begin(into if into is not None else Timed(self.interpolation))
        pairs = 0
        for step, pending in enumerate(self.uploader.ahead(batches)):
            self.check_stop()
            if rule.should_stop(pairs, time.monotonic() - timed.start):
                break
            call = self.timed_call(pending, timed)
            for observer in observers:
                observer.on_call(call)
            pairs += call.pairs
            if sync_every and (step + 1) % sync_every == 0:
                dev.synchronize(self.device)
            elapsed = checkpoint(timed, pairs)
            if progress is not None:
                progress(pairs, elapsed)
        self.settle(timed)
        return timed

    def begin(self, timed: Timed) -> Timed:
        """``timed`` starts now, with its own latency clock."""
        timed.clock = dev.LatencyClock(self.device)
        timed.clock_offset = time.time() - time.monotonic()
        timed.start = time.monotonic()
        return timed

    def timed_call(self, pending: PendingBatch, timed: Timed) -> Call:
        """One call of a begun loop: when it was issued, its latency on the loop's clock, and its pairs."""
        assert timed.clock is not None, "begin the loop first"
        timed.call_starts.append(time.monotonic() - timed.start)
        timed.clock.start()
        call = self.call(pending)
        timed.clock.stop()
        timed.call_pairs.append(call.pairs)
        return call

    def settle(self, timed: Timed) -> None:
        """The loop's end after the final synchronize, and every latency read (also after a stop halfway)."""
        if timed.end:
            return
        dev.synchronize(self.device)
        timed.end = time.monotonic()
        timed.latencies_ms = timed.clock.finish() if timed.clock is not None else []


def checkpoint(timed: Timed, pairs: int) -> float:
    """(seconds since the start, frames done) after a call, ``pairs`` done so far; the seconds."""
    elapsed = time.monotonic() - timed.start
    timed.checkpoints.append((elapsed, pairs * timed.interpolation))
    return elapsed


def repeated_batches(batches: Iterable[HostBatch]) -> Iterator[HostBatch]:
    """The same batches over and over (a fixed pair for a sweep)."""
    pool = list(batches)
    while True:
        yield from pool


def fixed_pair(engine: Engine, frames: Tensor) -> list[HostBatch]:
    """A uint8 pair ``frames`` (2, B, 3, H, W) converted once to model inputs on the device, as a one-batch pool
    (the reference's performance mode: no transfers)."""
    first, last = (engine.to_model_input(f.to(engine.device)) for f in frames)
    return [HostBatch(first, last, ready=True)]


@dataclass(frozen=True)
class Sweep:
    """One configuration of a sweep measured through the core: the first call's output (fp32) and seconds
    (compiles and captures happen there), the timed loop, and the peak memory of this engine's calls."""

    output: Tensor
    first_call_s: float
    timed: Timed
    peak_memory_bytes: int | None

    @property
    def latency(self) -> LatencyStats | None:
        return self.timed.latency()

    def figures(self) -> dict:
        """The figures a sweep's table prints, in the core's vocabulary."""
        stats = self.latency
        return {"fps": self.timed.throughput_fps, "calls_per_s": self.timed.calls / self.timed.elapsed_s,
                "p50_ms": stats.percentile("p50") if stats else None,
                "p99_ms": stats.percentile("p99") if stats else None,
                "peak_mem_mb": None if self.peak_memory_bytes is None else self.peak_memory_bytes / 2**20,
                "first_call_s": self.first_call_s}


def measure_pair(engine: Engine, frames: Tensor, calls: int, warmup: int = 10) -> Sweep:
    """A sweep's measurement of one engine on one uint8 pair ``frames`` (2, B, 3, H, W): the first call (its
    output and seconds), ``warmup`` more untimed calls, then ``calls`` timed calls through ``Meter.timed``."""
    h, w = frames.shape[-2:]
    meter = Meter(engine, 1, (h, w))
    pool = fixed_pair(engine, frames)
    dev.reset_peak_memory(engine.device)
    first: list[Tensor] = []  # copied: a CUDA graph's next replay writes over its outputs
    t0 = time.perf_counter()
    meter.warm_up(repeated_batches(pool), 1, lambda done, call: first.append(call.outputs[0].float().clone()))
    first_call_s = time.perf_counter() - t0
    meter.warm_up(repeated_batches(pool), warmup)
    timed = meter.timed(repeated_batches(pool), StopRule(calls * frames.shape[1], calls * frames.shape[1]))
    return Sweep(first[0], first_call_s, timed, dev.peak_memory_bytes(engine.device))



def time_function(fn: Callable[[], object], device: torch.device, calls: int, warmup: int = 10) -> LatencyStats:
    """Per-call latency of ``fn`` alone (a kernel of a maintainer's probe, not a model call): ``warmup`` untimed
    calls, then ``calls`` timed with the same clock and summarised by the same statistics as ``Meter.timed``."""
    for _ in range(warmup):
        fn()
    dev.synchronize(device)
    clock = dev.LatencyClock(device)
    for _ in range(calls):
        clock.start()
        fn()
        clock.stop()
    dev.synchronize(device)
    stats = describe(clock.finish())
    assert stats is not None, "time_function needs at least one call"
    return stats
