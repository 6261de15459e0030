"""One stream: loads the model, warms up, waits for the others, runs the timed loop.

A stream is a spawned process (``run_stream``) or, under torchrun, the rank's own process
(``stream_record``); the barriers and the stop flag are multiprocessing's or torch.distributed's
(``harness.streams.distributed``), behind the same small interfaces.

The measuring itself is ``harness.measure.core``'s ``Meter``; this module is the plumbing around it: the model
and the data opened once, the barriers, the stop flag, the timing lock, telemetry, and the stream's record.
"""

from __future__ import annotations

import errno
import math
import multiprocessing as mp
import os
import platform
import signal
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch

from harness.measure.core import Call, Meter, Observer, Timed, joined
from harness.measure.inputs import DatasetPairs, DummyPairs
from harness.measure.latency import LoadProbe, call_log
from harness.measure.quality import QualityRecorder, judged_index
from harness.measure.stop import StopRule
from harness.results.document import stream_document, write_error, write_json
from harness.results.outputs import OutputLayout
from harness.results.records import (
    BarrierState,
    DataSource,
    Energy,
    FrameScore,
    Measurements,
    ModelRun,
    Placement,
    QualityOutcome,
    Sheet,
    StreamRecord,
    StreamStatus,
    Warmup,
)
from harness.streams.placement import pin_near
from harness.streams.plan import StreamPlan
from harness.streams.signals import SIGNAL_EXIT, Interrupted, StreamStop, die_with_parent
from harness.streams.timing_lock import TimingLock

if TYPE_CHECKING:
    from harness.loadgen.settings import LoadGenPlan
    from harness.loadgen.sut import SampleLibrary
from harness.system import device as dev
from harness.system.telemetry import energy_metrics, telemetry_for
from rife.engine import Engine, timesteps
from rife.loader import LoadedModel, load_model

BARRIER_TIMEOUT_S = 600.0


class Barrier(Protocol):
    """multiprocessing.Barrier or harness.streams.distributed.DistBarrier: raises threading.BrokenBarrierError."""

    def wait(self, timeout: float | None = None) -> object: ...


class StopFlag(Protocol):
    """multiprocessing.Event, threading.Event or harness.streams.distributed.DistStop."""

    def is_set(self) -> bool: ...


def build_engine(plan: StreamPlan, loaded: LoadedModel) -> Engine:
    spec = plan.engine
    return Engine(loaded.net, loaded.variant, torch.device(plan.device), spec.precision, scale=spec.scale,
                  execution=spec.execution)


def run_stream(plan: StreamPlan, start_barrier: Barrier, end_barrier: Barrier, stop_event: StopFlag,
               results_path: str) -> None:
    """Process entry point. Always writes ``results_path`` (completed, interrupted or failed). A stopping signal
    to this process (alone or with its group) stops it like the run's stop flag, and it exits with the signal's
    code (130 / 143 / 129); when the run's process dies, this one is signalled too."""
    parent = mp.parent_process()
    die_with_parent(parent.pid if parent is not None else None)
    stop = StreamStop(stop_event)
    record = stream_record(plan, start_barrier, end_barrier, stop, results_path)
    if stop.signum is not None:
        sys.exit(SIGNAL_EXIT[signal.Signals(stop.signum)])
    if record.error:
        sys.exit(1)


def stream_record(plan: StreamPlan, start_barrier: Barrier, end_barrier: Barrier, stop_event: StopFlag,
                  results_path: str, loaded: LoadedModel | None = None) -> StreamRecord:
    """Runs the stream in this process; always writes its document to ``results_path`` and returns the record.
    ``loaded``: the model this process already loaded (a torchrun rank checked it there), else loaded here."""
    torch.set_num_threads(plan.cpu_threads)
    runner = StreamRunner(plan, stop_event)
    try:
        _loading(stop_event)  # the run stopped while this process was starting: interrupted here
        runner.load(loaded)
        runner.prepare()
        _measuring(stop_event)
        runner.wait(start_barrier, "start")
        runner.timed_loop(lambda: runner.realign(start_barrier))
        runner.wait(end_barrier, "end")
        runner.release_timing_lock()  # several streams: every one of them has timed now
        runner.finish()
    except Interrupted:
        runner.update(status=StreamStatus.INTERRUPTED)
    except Exception as e:  # reported as one line; the traceback goes to the results for whoever debugs
        runner.update(status=StreamStatus.FAILED, error=_one_line(plan, runner, e), traceback=traceback.format_exc())
    finally:
        _measuring(stop_event)  # from here on a signal only sets the flag: nothing may cut the writing short
        runner.release_timing_lock()  # first: whatever happens below, no other run waits on this one
        if runner.record.status is not StreamStatus.COMPLETED:
            runner.salvage()
        try:
            write_stream_document(Path(results_path), plan, runner.record)
        except OSError as e:  # disk full, say: one line naming the file
            line = f"stream {plan.index}: {write_error(e)}"
            if runner.record.error:  # that one is said below
                say(f"error: {line}", sys.stderr)
            else:
                runner.update(error=line)
    if runner.record.error:
        say(f"error: {runner.record.error}", sys.stderr)
    return runner.record


def _loading(stop: StopFlag) -> None:
    if isinstance(stop, StreamStop):
        stop.loading()
    elif stop.is_set():
        raise Interrupted


def _measuring(stop: StopFlag) -> None:
    if isinstance(stop, StreamStop):
        stop.measuring()


def write_stream_document(path: Path, plan: StreamPlan, record: StreamRecord) -> None:
    write_json(path, stream_document(plan.config, record, plan.workload.min_pass_pct).to_json())


def _one_line(plan: StreamPlan, runner: StreamRunner | None, e: Exception) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EIO):
        return f"stream {plan.index}: {write_error(e)}"
    if isinstance(e, torch.OutOfMemoryError) or "out of memory" in text or "can't allocate memory" in text:
        where = runner.size_text() if runner is not None and runner.frame_size is not None else "this frame size"
        if getattr(runner, "building_pool", False):
            return (f"stream {plan.index}: the device ran out of memory for the input pool ({plan.workload.input_pool} "
                    f"pairs at {where}, batch {plan.workload.batch_size}); lower --input-pool")
        return (f"stream {plan.index}: the device ran out of memory at {where}, batch {plan.workload.batch_size}, "
                f"{plan.streams} streams; lower --batch-size, --streams or the frame size")
    return f"stream {plan.index}: {type(e).__name__}: {text}"


def thinned(checkpoints: list[tuple[float, int]], most: int = 1000) -> tuple[tuple[float, int], ...]:
    """At most ``most`` evenly spaced checkpoints, the last one always kept: enough to place the overlap
    window to a thousandth of the run, without a results file that grows with every frame."""
    step = max(1, math.ceil(len(checkpoints) / most))
    kept = checkpoints[::step]
    if kept[-1] != checkpoints[-1]:
        kept.append(checkpoints[-1])
    return tuple((round(t, 6), f) for t, f in kept)


class StreamRunner:
    """One stream's work, step by step; ``record`` says how far it got and what it measured."""

    def __init__(self, plan: StreamPlan, stop_event: StopFlag) -> None:
        self.plan, self.work, self.settings, self.stop_event = plan, plan.workload, plan.settings, stop_event
        self.layout = plan.layout
        self.record = StreamRecord(stream=plan.index, host=platform.node(), device=plan.device, rank=plan.rank)
        self.device = torch.device(plan.device)
        self.count = self.work.interpolation
        self.rule = self.settings.stop
        self.frame_size: tuple[int, int] | None = None
        self.building_pool = False  # while the input pool is allocated (its own out-of-memory advice)
        self.quality: QualityRecorder | None = None
        self.source: DummyPairs | DatasetPairs  # made in prepare()
        self.judged: int | None = None
        self.meter: Meter  # made in prepare(), once the frame size is known
        self.parts: list[Timed] = []  # one timed loop per repeat
        self.load_probe: LoadProbe | None = None
        self.telemetry: Any = None  # started with the timed loop
        self.telemetry_summary: dict | None = None
        self.timing_lock = _timing_lock(plan)

    def update(self, **changes: Any) -> None:
        self.record = self.record.replace(**changes)

    def load(self, loaded: LoadedModel | None = None) -> None:
        """The device, the CPUs near it, the model (unless this process has it) and the engine."""
        if self.device.type != "cpu":  # CUDA graphs, side streams and events work on the current device
            dev.device_module(self.device).set_device(self.device)
        placement = pin_near(self.device)
        self.update(placement=None if placement is None else Placement.from_json(placement),
                    device_name=dev.device_name(self.device))
        announce(self.plan, f"loading the model on {self.plan.device}")
        if loaded is not None:
            self.loaded = loaded
        else:
            with warnings.catch_warnings():  # the parent already warned about random weights
                warnings.simplefilter("ignore")
                self.loaded = load_model(self.plan.model)
        self.engine = build_engine(self.plan, self.loaded)
        self.times = timesteps(self.loaded.variant, self.count)

    def wait(self, barrier: Barrier, name: str) -> None:
        t0 = time.monotonic()
        # With --timing-lock the first stream may wait for other runs' timed loops, as long as they take, before
        # it reaches the start barrier (a dead stream, a signal or the stop flag still break the barrier).
        timeout = None if name == "start" and self.settings.timing_lock is not None else BARRIER_TIMEOUT_S
        try:
            barrier.wait(timeout)
            state = BarrierState.PASSED
        except threading.BrokenBarrierError:
            # Another stream died or the run was interrupted: go on alone, and say so.
            state = BarrierState.BROKEN
        self.update(**{f"{name}_barrier": state})
        if state is BarrierState.BROKEN and timeout is not None and time.monotonic() - t0 >= timeout:
            raise TimeoutError(f"waited {BARRIER_TIMEOUT_S:.0f} s at the {name} barrier for the other "
                               f"{self.plan.streams - 1} stream(s), which did not arrive; see their messages above "
                               f"(fewer --streams may fit this machine)")

    def size_text(self) -> str:
        assert self.frame_size is not None
        h, w = self.frame_size
        ph, pw = self.engine.padded_size(h, w)
        return f"{w}x{h} (padded to {pw}x{ph})"

    # --- before the start barrier -------------------------------------------------
    def prepare(self) -> None:
        work = self.work
        if work.dummy:
            self.frame_size = work.frame_size
            self.meter = self._meter()
            seed = self.settings.seeds.stream_inputs(self.plan.index)
            self.building_pool = True
            self.source = DummyPairs(self.engine, work.input_pool, work.batch_size, *self.frame_size, seed=seed,
                                     transfers=work.transfers)
            self.building_pool = False
        else:
            self._open_quality_set()
            if self.settings.loadgen is None:  # under LoadGen its sample library decodes the triplets it loads
                self.source = self._dataset_source()
        self._warm_up()
        self.update(status=StreamStatus.WARMED_UP)

    def _open_quality_set(self) -> None:
        from harness.samples import dataset

        work = self.work
        assert work.data is not None  # quality mode: the parent resolved the data's root
        self.tset = dataset.open_quality_set(work.data, limit=work.num_inputs, skip_bad=work.skip_bad)
        self.frame_size = self.tset.size
        self.meter = self._meter()
        self.judged = judged_index(self.times)

    def _dataset_source(self) -> DatasetPairs:
        """The timed loop's batches of the stream's triplets, and the recorder of its judged frames."""
        from harness.samples import dataset

        work, tset = self.work, self.tset
        self.quality = QualityRecorder(work.psnr_threshold, len(self.plan.quality_indices), *tset.size,
                                       self.meter.copier)
        workers = max(2, min(8, (os.cpu_count() or 2) // self.plan.streams))
        self.new_prefetcher = lambda: dataset.Prefetcher(tset, list(self.plan.quality_indices), work.batch_size,
                                                         workers=workers, pin_memory=self.device.type == "cuda")
        h, w = tset.size
        share_bytes = 9 * h * w * len(self.plan.quality_indices)  # three uint8 RGB frames per triplet
        if share_bytes <= work.preload_mb * 2**20:
            announce(self.plan, f"preloading {len(self.plan.quality_indices)} triplets ({share_bytes / 2**20:.0f} MiB)")
        source = DatasetPairs(self.new_prefetcher(), share_bytes, work.preload_mb * 2**20)
        self.update(data_preloaded=source.preloaded is not None)
        return source

    def _meter(self) -> Meter:
        assert self.frame_size is not None
        return Meter(self.engine, self.count, self.frame_size, download=self.work.transfers or self.work.saveimages,
                     check_stop=self._check_stop)

    def _warm_up(self) -> None:
        """Through the same path as the timed loop (uploads, the call, the quality copy), so that lazy
        allocations and CUDA graph captures happen here."""
        assert self.frame_size is not None
        h, w = self.frame_size
        batch = self.work.batch_size
        warm = DummyPairs(self.engine, 1, batch, h, w, seed=self.settings.seeds.warmup,
                          transfers=self.work.transfers or not self.work.dummy)
        calls = math.ceil(self.settings.warmup_pairs / batch)
        compiles = " (the first call compiles: 10-60 s)" if self.plan.engine.execution.mode in ("compile", "fast") else ""
        announce(self.plan, f"warm-up and compile: {calls} calls{compiles}")
        progress = Progress(self.plan.index, "warm-up", calls * batch, bar=False)
        waited = [0.0]  # seconds spent waiting for the timing lock, which the warm-up's time does not count

        def after_call(done: int, call: Call) -> None:
            if self.quality is not None and self.judged is not None:
                self.quality.rehearse(call.outputs[self.judged])
            if done == 1:  # the first call compiled and captured alongside other runs; the rest waits its turn
                waited[0] += self._take_timing_lock()
            progress.update(done * batch, time.perf_counter() - t0 - waited[0])

        t0 = time.perf_counter()
        self.meter.warm_up(warm, calls, after_call)
        waited[0] += self._take_timing_lock()  # --warmup 0: just before the timed loop (and its start barrier)
        self.update(warmup=Warmup(calls, calls * batch, time.perf_counter() - t0 - waited[0]))
        dev.reset_peak_memory(self.device)

    def _take_timing_lock(self) -> float:
        """Waits for ``--timing-lock`` (once); the seconds waited, which no measurement may count."""
        if self.timing_lock is None or self.timing_lock.held:
            return 0.0
        dev.synchronize(self.device)  # the first call's device work ends before another run may time
        return self.timing_lock.acquire(self._check_stop, lambda line: announce(self.plan, line))

    def release_timing_lock(self) -> None:
        if self.timing_lock is not None:
            self.timing_lock.release()

    def _check_stop(self) -> None:
        if self.stop_event.is_set():
            raise Interrupted

    # --- the timed loop -------------------------------------------------------------
    def timed_loop(self, realign: Callable[[], None]) -> None:
        """The timed measurement, ``--repeat`` times (``realign`` between them: the run's streams start each one
        together); quality and saved frames watch the first one."""
        self.update(status=StreamStatus.RUNNING)
        self.telemetry = telemetry_for(self.device)
        self.telemetry.start()
        self.load_probe = LoadProbe()
        if self.settings.loadgen is not None:
            self._loadgen_test(self.settings.loadgen)
        else:
            self._repeats(realign)
        if self.plan.streams == 1:  # else after the end barrier, once the run's other streams have timed too
            self.release_timing_lock()
        self._stop_telemetry()

    def _repeats(self, realign: Callable[[], None]) -> None:
        repeats = self.settings.repeat
        announce(self.plan, f"timed loop: {self.rule.describe()}" + (f", {repeats} times" if repeats > 1 else ""))
        for repeat in range(repeats):
            if repeat:
                realign()
            what = f"timed {repeat + 1}/{repeats}" if repeats > 1 else "timed"
            progress = Progress(self.plan.index, what, self.rule.max_frames)
            self.parts.append(Timed(self.count))
            self.meter.timed(self.source, self.rule, sync_every=self.settings.sync_every,
                             observers=self._observers() if repeat == 0 else (), progress=progress.update,
                             into=self.parts[-1])
            progress.close()

    def _loadgen_test(self, plan: LoadGenPlan) -> None:
        """MLPerf LoadGen's scenario instead of the timed loop: our engine answers its queries (through the same
        meter), its logs land in the output folder, and in quality mode its accuracy log is scored here."""
        from harness.loadgen.run import run_scenario

        library, truth = self._sample_library()
        if plan.find_peak and plan.target_qps is None:
            plan = replace(plan, target_qps=self._starting_qps(library))
        announce(self.plan, f"LoadGen {plan.scenario}" + (f", searching the peak QPS from {plan.target_qps:.3g}"
                                                          if plan.find_peak else ""))
        judged = self.judged if self.judged is not None else 0
        outcome, timed, scores = run_scenario(self.meter, library, plan, self.layout.root, self.work.batch_size,
                                              judged, truth, seed=self.settings.seeds.inputs)
        self.parts.append(timed)
        self.update(loadgen=outcome)
        if truth is not None and scores:
            self._loadgen_quality(scores)

    def _starting_qps(self, library: SampleLibrary, calls: int = 8) -> float:
        """Where Server's peak search starts without --target-qps: half the rate of a few single-sample calls."""
        from harness.loadgen.sut import single_samples

        probe = self.meter.timed(single_samples(library), StopRule(calls, calls))
        return max(0.5 * probe.calls / max(probe.elapsed_s, 1e-9), 0.01)

    def _sample_library(self) -> tuple[SampleLibrary, Callable[[int], torch.Tensor] | None]:
        """LoadGen's QSL: the dummy pool's pairs (performance mode), or this stream's triplets with their truth."""
        from harness.loadgen.sut import dummy_library, triplet_library

        assert self.frame_size is not None
        pin = self.device.type == "cuda"
        if self.work.dummy:
            seed = self.settings.seeds.stream_inputs(self.plan.index)
            return dummy_library(seed, self.work.input_pool, self.frame_size, pin), None
        return triplet_library(self.tset, self.plan.quality_indices, self.work.preload_mb * 2**20, pin)

    def _loadgen_quality(self, scores: list[tuple[int, float, float]]) -> None:
        names = [self.tset.names[self.plan.quality_indices[i]] for i, _, _ in scores]
        frames = [FrameScore.judged(name, psnr, ssim, self.work.psnr_threshold)
                  for name, (_, psnr, ssim) in zip(names, scores, strict=True)]
        self.update(quality_frames=tuple(frames),
                    quality=QualityOutcome.of(frames, self.work.min_pass_pct, self._data_source()))

    def _data_source(self) -> DataSource:
        return DataSource(self.tset.layout, str(self.tset.root), self.tset.content_hash, tuple(self.tset.bad))

    def realign(self, barrier: Barrier) -> None:
        """Between repeats: wait for the run's other streams (one that died or stopped breaks the barrier, and this
        one goes on alone, as after the start barrier)."""
        if self.plan.streams == 1:
            return
        try:
            barrier.wait(BARRIER_TIMEOUT_S)
        except threading.BrokenBarrierError:
            self.update(start_barrier=BarrierState.BROKEN)

    def _observers(self) -> list[Observer]:
        watching: list[Observer] = []
        if self.quality is not None and self.judged is not None:
            watching.append(QualityWatch(self.quality, self.judged))
        if self.work.saveimages:
            watching.append(FrameSaver(self.device, self.layout, self.times))
        return watching

    def _stop_telemetry(self) -> None:
        if self.load_probe is not None and self.record.host_load is None:
            self.update(host_load=self.load_probe.finish())
        if self.telemetry is not None and self.telemetry_summary is None:
            self.telemetry_summary = self.telemetry.stop()
            try:
                write_json(self.layout.telemetry(self.plan.index), self.telemetry_summary)
            except OSError as e:  # the samples are lost; the measurement is not
                say(f"error: stream {self.plan.index}: {write_error(e)}", sys.stderr)
            # the samples stay in telemetry_<n>.json
            self.update(telemetry={k: v for k, v in self.telemetry_summary.items() if k != "samples"})

    # --- after the loop ------------------------------------------------------------
    def finish(self) -> None:
        self.update(measurements=self._measurements(), status=StreamStatus.COMPLETED)
        if self.quality is not None:
            self._quality_results()

    def salvage(self) -> None:
        """After an interruption or a failure: keep what was measured."""
        if self.parts and not self.parts[-1].end:
            try:
                self.meter.settle(self.parts[-1])
            except Exception:  # a broken device cannot be read: report nothing more
                return
        self._stop_telemetry()
        if self.parts:
            self.update(measurements=self._measurements())

    def _measurements(self) -> Measurements:
        assert self.frame_size is not None
        timed = joined(self.parts)
        self.update(call_log=call_log(timed.call_starts, timed.latencies_ms, timed.call_pairs))
        elapsed = max(timed.elapsed_s, 1e-12)
        h, w = self.frame_size
        model = ModelRun(variant=self.loaded.variant.name, impl=self.loaded.impl, weights=self.loaded.weights_label,
                         weights_sha256=self.loaded.weights_sha256, precision_run=self.engine.precision.name,
                         execution=self.engine.plan.mode, autocast=self.engine.precision.autocast,
                         torch_settings=self.engine.settings.record())
        return Measurements(
            pairs=timed.pairs,
            frames=timed.frames,
            calls=timed.calls,
            elapsed_s=elapsed if timed.pairs else 0.0,
            window=(timed.start, timed.end),
            clock_offset_s=timed.clock_offset,
            checkpoints=thinned([*timed.checkpoints, (elapsed, timed.frames)]),
            throughput_fps=timed.frames / elapsed if timed.pairs else 0.0,
            repeat_fps=tuple(part.throughput_fps for part in self.parts) if len(self.parts) > 1 else (),
            latency_wall_ms=1e3 * elapsed / timed.frames if timed.frames else None,
            latency_ms=timed.latency(),
            shortfalls=self._shortfalls(),
            peak_memory_bytes=dev.peak_memory_bytes(self.device),
            energy=Energy.from_json(energy_metrics(self.telemetry_summary or {}, timed.frames)),
            frame_size=(h, w),
            padded_size=self.engine.padded_size(h, w),
            model=model,
            pid=os.getpid(),
        )

    def _shortfalls(self) -> tuple[str, ...]:
        """Why the timed loops fell short of the run's minimums (under LoadGen, its own rules judge instead)."""
        if self.settings.loadgen is not None:
            return ()
        return tuple(dict.fromkeys(s for part in self.parts for s in self.rule.shortfalls(part.pairs, part.elapsed_s)))

    def _quality_results(self) -> None:
        assert self.quality is not None
        if self.judged is None:
            self.update(quality_note=f"no generated frame is at t = 0.5 with --interpolation {self.count}: "
                                     "quality was not judged")
            return
        assert isinstance(self.source, DatasetPairs)
        frames = self.quality.score(self.source.truths(self.new_prefetcher), self.device)
        self.update(quality_frames=tuple(frames),
                    quality=QualityOutcome.of(frames, self.work.min_pass_pct, self._data_source()),
                    sheets=self._failure_sheets(frames))

    def _failure_sheets(self, frames: list[FrameScore], limit: int = 100) -> tuple[Sheet, ...]:
        """Draw what went wrong for the failing frames (with the predictions kept from the timed loop)."""
        from harness.results.pictures import comparison_sheet

        assert self.quality is not None
        index_of = {name: i for i, name in enumerate(self.tset.names)}
        sheets = []
        for f in [f for f in frames if not f.passed][:limit]:
            t = self.tset.load(index_of[f.name])
            pred = self.quality.prediction(f.name).permute(1, 2, 0).numpy()
            path = self.layout.sheet(f.name)
            comparison_sheet(path, f.name, f.psnr, t.first, pred, t.truth)
            sheets.append(Sheet(f.name, f.psnr, f.ssim, str(path.relative_to(self.layout.root))))  # as index.html links it
        return tuple(sheets)


class QualityWatch:
    """Keeps the judged frame of every timed call for scoring after the loop."""

    def __init__(self, recorder: QualityRecorder, judged: int) -> None:
        self.recorder, self.judged = recorder, judged

    def on_call(self, call: Call) -> None:
        if call.batch.names:
            self.recorder.record(call.batch.names, call.outputs[self.judged])


class FrameSaver:
    """``--saveimages``: every generated frame of the timed calls as a PNG (named after its triplet)."""

    def __init__(self, device: torch.device, layout: OutputLayout, times: list[float]) -> None:
        self.device, self.layout, self.times = device, layout, times

    def on_call(self, call: Call) -> None:
        from harness.results.pictures import write_png

        names, host = call.batch.names, call.host_outputs
        if not names or host is None:
            return
        dev.synchronize(self.device)  # the non-blocking copies must land before the host reads them
        for k, name in enumerate(names):
            for j, frames in enumerate(host):
                path = self.layout.image(name, self.times[j] if len(self.times) > 1 else None)
                write_png(path, frames[k].permute(1, 2, 0).numpy())


def _timing_lock(plan: StreamPlan) -> TimingLock | None:
    """The run's ``--timing-lock``, held by its first stream for all of them: the run's streams time together
    (the start and end barriers), so the lock spans from before the start barrier to after the end barrier."""
    path = plan.settings.timing_lock
    return TimingLock(path) if path is not None and plan.index == 1 else None


def announce(plan: StreamPlan, phase: str) -> None:
    """One line as a stream enters a phase, so that a long load or compile is never silent."""
    say(f"[stream {plan.index}] {phase}")


def say(line: str, file=None) -> None:
    """One line in one write (lines of several streams do not cut into each other), unless the console is gone
    (the run's output.log still gets it through the parent)."""
    out = file or sys.stdout
    try:
        out.write(line + "\n")
        out.flush()
    except OSError:
        pass


def progress_terminal():
    """Where stream 1 draws its progress bar: stderr when it is a terminal, else the terminal run_model.sh
    names in RIFE_PROGRESS_TTY (its stderr goes through tee); None in logs and pipes."""
    if sys.stderr.isatty():
        return sys.stderr
    tty = os.environ.get("RIFE_PROGRESS_TTY")
    if tty:
        try:
            return open(tty, "w")  # closed by Progress.close
        except OSError:
            return None
    return None


class Progress:
    """A tqdm bar with the total and the time left on a terminal (stream 1's timed loop); in logs, one line about
    once a second, the first at once: ``[stream 1] timed: 40/100 pairs, 4.1 s, 9.76 pairs/s``."""

    def __init__(self, stream: int, what: str, total: float, bar: bool = True) -> None:
        self.stream, self.what, self.last = stream, what, -math.inf
        self.total = None if math.isinf(total) else int(total)
        self.bar = self.terminal = None
        if stream == 1 and bar:
            self.terminal = progress_terminal()
        if self.terminal is not None:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, unit="pair", desc="stream 1", file=self.terminal, dynamic_ncols=True)
        self.done = 0

    def update(self, pairs: int, elapsed: float) -> None:
        if self.bar is not None:
            self.bar.update(pairs - self.done)
        elif time.monotonic() - self.last >= 1.0:
            self.last = time.monotonic()
            total = "" if self.total is None else f"/{self.total}"
            say(f"[stream {self.stream}] {self.what}: {pairs}{total} pairs, {elapsed:.1f} s, "
                f"{pairs / max(elapsed, 1e-9):.2f} pairs/s")
        self.done = pairs

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.terminal not in (None, sys.stderr):
            self.terminal.close()
