"""The measurement core: every figure of a stream, the GPU table and the release checks comes from
``harness.measure.core``; repeats and the verdicts that survive noise."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

import arguments
import inference
from harness.measure import core, latency
from harness.measure.inputs import HostBatch, random_scene
from harness.measure.stop import StopRule
from harness.results.document import run_document
from harness.results.records import CallLog, Energy, Measurements, StreamRecord, StreamStatus
from rife.engine import Engine, resolve_precision
from rife.loader import ModelChoice, load_model

ROOT = Path(__file__).resolve().parent.parent
CPU = torch.device("cpu")


class StandIn:
    """An engine's interface around a sleep: ``delays_s`` in turn, one per call."""

    def __init__(self, delays_s: list[float]) -> None:
        from rife.registry import VARIANTS

        self.device, self.variant, self.delays, self.calls = CPU, VARIANTS["v4.0"], delays_s, 0

    def to_model_input(self, frames: torch.Tensor) -> torch.Tensor:
        return frames.float() / 255

    def interpolate(self, img0, img1, count, size, between=None, follows=False) -> list[torch.Tensor]:
        time.sleep(self.delays[self.calls % len(self.delays)])
        self.calls += 1
        return [(img0 + img1) / 2]


def pool(batch: int = 1) -> list[HostBatch]:
    frames = torch.zeros(batch, 3, 8, 8)
    return [HostBatch(frames, frames, ready=True)]


def record_of(timed: core.Timed, repeat_fps: tuple[float, ...] = ()) -> StreamRecord:
    m = Measurements(
        pairs=timed.pairs, frames=timed.frames, calls=timed.calls, elapsed_s=timed.elapsed_s,
        window=(timed.start, timed.end), clock_offset_s=timed.clock_offset, checkpoints=tuple(timed.checkpoints),
        throughput_fps=timed.throughput_fps, latency_wall_ms=None, latency_ms=timed.latency(), shortfalls=(),
        peak_memory_bytes=None, energy=Energy(), frame_size=(8, 8), padded_size=(32, 32), model=None, pid=1,
        repeat_fps=repeat_fps)
    return StreamRecord(stream=1, status=StreamStatus.COMPLETED, host="h", device="cpu", measurements=m,
                        call_log=CallLog(tuple(timed.call_starts), tuple(timed.latencies_ms), tuple(timed.call_pairs)))


def test_the_timed_loop_counts_calls_pairs_and_frames_and_times_each_call():
    engine = StandIn([0.002])
    meter = core.Meter(engine, 3, (8, 8))  # type: ignore[arg-type]
    timed = meter.timed(core.repeated_batches(pool(batch=2)), StopRule(10, 10))
    assert (timed.calls, timed.pairs, timed.frames) == (5, 10, 30) and engine.calls == 5
    assert len(timed.latencies_ms) == 5 and all(v >= 2.0 for v in timed.latencies_ms)
    assert timed.elapsed_s >= 0.010 and timed.throughput_fps == pytest.approx(30 / timed.elapsed_s)
    assert [f for _, f in timed.checkpoints] == [6, 12, 18, 24, 30]


def test_observers_see_every_timed_call_and_warm_up_calls_are_not_timed():
    engine, seen = StandIn([0.0]), []

    class Watch:
        def on_call(self, call: core.Call) -> None:
            seen.append(call.pairs)

    meter = core.Meter(engine, 1, (8, 8))  # type: ignore[arg-type]
    meter.warm_up(core.repeated_batches(pool()), 3)
    timed = meter.timed(core.repeated_batches(pool()), StopRule(4, 4), observers=[Watch()])
    assert engine.calls == 7 and timed.calls == 4 and seen == [1, 1, 1, 1]


def test_a_stand_in_whose_latency_varies_tenfold_is_judged_noisy():
    meter = core.Meter(StandIn([0.002, 0.002, 0.020, 0.020]), 1, (8, 8))  # type: ignore[arg-type]
    timed = meter.timed(core.repeated_batches(pool()), StopRule(40, 40))
    doc = run_document(None, [record_of(timed)], 0.0, False)
    assert doc.results.validity == "noisy" and doc.results.status.value == "passed"
    assert any(w.startswith("latency spread") for w in doc.results.warnings)
    steady = core.Meter(StandIn([0.005]), 1, (8, 8)).timed(  # type: ignore[arg-type]
        core.repeated_batches(pool()), StopRule(40, 40))
    assert latency.describe(steady.latencies_ms).iqr_over_median < latency.IQR_WARN  # type: ignore[union-attr]


def test_repeats_tenfold_apart_are_noisy_and_their_median_is_the_throughput():
    meter = core.Meter(StandIn([0.001]), 1, (8, 8))  # type: ignore[arg-type]
    timed = meter.timed(core.repeated_batches(pool()), StopRule(12, 12))
    doc = run_document(None, [record_of(timed, repeat_fps=(10.0, 100.0, 90.0))], 0.0, False)
    reps = doc.results.repeats
    assert reps is not None and (reps.count, reps.median_fps, reps.min_fps, reps.max_fps) == (3, 90.0, 10.0, 100.0)
    assert doc.results.metrics["throughput"].avg == pytest.approx(90.0)
    assert doc.results.validity == "noisy" and any("throughput spread" in w for w in doc.results.warnings)
    steady = run_document(None, [record_of(timed, repeat_fps=(99.0, 100.0, 101.0))], 0.0, False)
    assert not any("throughput spread" in w for w in steady.results.warnings)


@pytest.mark.parametrize("n, k, confidence", [(2, 1, 0.5), (5, 1, 0.9375), (10, 2, 1 - 2 * 11 / 1024),
                                              (20, 6, 1 - 2 * sum(__import__("math").comb(20, i) for i in range(6)) / 2**20)])
def test_the_interval_for_the_median_is_the_widest_order_statistics_at_95_percent(n, k, confidence):
    values = [float(v) for v in range(1, n + 1)]
    reps = latency.repeat_stats(list(reversed(values)))
    assert reps is not None and reps.interval_fps == (values[k - 1], values[n - k])
    assert reps.confidence == pytest.approx(confidence)
    assert latency.repeat_stats([5.0]) is None


def test_joined_repeats_keep_every_call_on_the_first_loops_time_base():
    meter = core.Meter(StandIn([0.001]), 2, (8, 8))  # type: ignore[arg-type]
    parts = [meter.timed(core.repeated_batches(pool()), StopRule(3, 3)) for _ in range(2)]
    whole = core.joined(parts)
    assert (whole.calls, whole.pairs, whole.frames) == (6, 6, 12)
    assert whole.start == parts[0].start and whole.end == parts[1].end
    assert whole.call_starts[3] == pytest.approx(parts[1].start - parts[0].start + parts[1].call_starts[0])
    assert [f for _, f in whole.checkpoints] == [2, 4, 6, 8, 10, 12]


def test_time_function_summarises_with_the_same_statistics():
    stats = core.time_function(lambda: time.sleep(0.001), CPU, 12, warmup=1)
    assert stats.samples == 12 and stats.percentile("p50") >= 1.0  # type: ignore[operator]
    assert stats.percentiles["p50"].established and not stats.percentiles["p90"].established


@pytest.fixture
def timed_calls(monkeypatch):
    """Every ``Meter.timed`` of this process, as it returned."""
    loops: list[core.Timed] = []
    original = core.Meter.timed

    def recorded(self, *args, **kwargs):
        loops.append(original(self, *args, **kwargs))
        return loops[-1]

    monkeypatch.setattr(core.Meter, "timed", recorded)
    return loops


def tiny_engine(execution: str = "eager") -> Engine:
    loaded = load_model(ModelChoice(arch="v4.0", allow_random_init=True))
    return Engine(loaded.net, loaded.variant, CPU, resolve_precision(CPU, "fp32", False), execution=execution)


def test_the_gpu_table_figures_come_from_the_core(timed_calls):
    from tools.gpu_table import first_and_timed

    out, figures = first_and_timed(tiny_engine(), random_scene(32, 64), 4)
    assert len(timed_calls) == 1 and timed_calls[0].calls == 4 and out.shape == (1, 3, 32, 64)
    stats = timed_calls[0].latency()
    assert figures["fps"] == timed_calls[0].throughput_fps and figures["p50_ms"] == stats.percentile("p50")


def test_the_release_check_figures_come_from_the_core(timed_calls):
    from tools.verify_releases import run

    _, figures = run(tiny_engine(), random_scene(32, 64), 3)
    assert len(timed_calls) == 1 and timed_calls[0].calls == 3
    assert figures["p99_ms"] == timed_calls[0].latency().percentile("p99")  # type: ignore[union-attr]


def test_the_stream_figures_come_from_the_core(tmp_path, timed_calls):
    from harness.streams.stream import stream_record

    options = arguments.parse(["--dummy", "--platform", "CPU", "--arch", "v4.0", "--output-dir", str(tmp_path),
                               "--num-inputs", "3", "--warmup", "1", "--repeat", "2", "--data-height", "32",
                               "--data-width", "64", "--execution", "eager"], {})
    plan = inference.prepare(options).stream_plan(1, 0, threads=1)
    barrier = threading.Barrier(1)
    record = stream_record(plan, barrier, barrier, threading.Event(), str(tmp_path / "results_1.json"))
    m = record.measurements
    assert record.status is StreamStatus.COMPLETED and m is not None and len(timed_calls) == 2
    whole = core.joined(timed_calls)
    assert (m.calls, m.pairs) == (6, 6) and m.latency_ms == whole.latency()
    assert m.repeat_fps == tuple(t.throughput_fps for t in timed_calls)
    assert record.call_log is not None and record.call_log.latency_ms == tuple(whole.latencies_ms)


@pytest.mark.slow
def test_repeat_through_run_model_reports_median_range_and_interval(tmp_path):
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "inference.py", "--dummy", "--platform", "CPU", "--arch", "v4.0",
                           "--num-inputs", "4", "--repeat", "3", "--data-height", "32", "--data-width", "64",
                           "--output-dir", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    doc = json.loads((out / "results.json").read_text())
    reps = doc["results"]["repeats"]
    assert reps["count"] == 3 and len(reps["throughput_fps"]) == 3
    assert doc["results"]["metrics"]["throughput"]["avg"] == pytest.approx(reps["median_fps"])
    assert reps["min_fps"] <= reps["median_fps"] <= reps["max_fps"]
    assert doc["streams"][0]["calls"] == 12 and len(doc["streams"][0]["repeat_fps"]) == 3
    assert "median of 3 repeats" in done.stdout and "model calls/s" in done.stdout
    assert doc["results"]["validity"] in ("valid", "noisy")
    page = (out / "report.html").read_text()
    assert "median of 3 repeats" in page and "model calls/s" in page and "output frames/s" in page
    yaml_text = (out / "results.yaml").read_text()
    assert "repeats" not in yaml_text.split("results:")[0]  # the reference's three entries keep their shape
