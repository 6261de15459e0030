"""Raw latencies, pooled percentiles, and the sample-size, noise and load rules (harness.measure.latency)."""

from __future__ import annotations

import numpy as np
import pytest

from harness.measure import latency
from harness.results.document import run_document
from harness.results.records import CallLog, Energy, HostLoad, Measurements, StreamRecord, StreamStatus


def record(stream: int, latencies: list[float], start: float = 0.0, pid: int = 0, host_load: HostLoad | None = None,
           telemetry: dict | None = None, device: str = "cuda:0") -> StreamRecord:
    n = len(latencies)
    starts = tuple(float(np.sum(latencies[:k])) / 1e3 for k in range(n))
    measurements = Measurements(
        pairs=n, frames=n, calls=n, elapsed_s=sum(latencies) / 1e3, window=(start, start + sum(latencies) / 1e3),
        clock_offset_s=1000.0, checkpoints=((sum(latencies) / 1e3, n),), throughput_fps=1.0, latency_wall_ms=1.0,
        latency_ms=latency.describe(latencies), shortfalls=(), peak_memory_bytes=None,
        energy=Energy(), frame_size=(8, 8), padded_size=(32, 32), model=None, pid=pid)
    return StreamRecord(stream=stream, status=StreamStatus.COMPLETED, host="h", device=device,
                        measurements=measurements, call_log=CallLog(starts, tuple(latencies), (1,) * n),
                        host_load=host_load, telemetry=telemetry)


@pytest.mark.parametrize("q, needed", [(50, 11), (90, 64), (95, 130), (99, 662), (99.9, 6636)])
def test_samples_needed_is_loadgens_early_stopping_minimum(q, needed):
    assert latency.samples_needed(q) == needed
    p = q / 100  # at `needed` calls, at most one call above the percentile has odds <= 1%; one fewer, above
    assert p**needed + needed * (1 - p) * p ** (needed - 1) <= 0.01 < p ** (needed - 1) + (needed - 1) * (1 - p) * p ** (needed - 2)


def test_percentiles_pool_every_streams_calls():
    rng = np.random.default_rng(0)
    fast, slow = list(rng.uniform(1, 2, 300)), list(rng.uniform(5, 6, 100))
    doc = run_document(None, [record(1, fast), record(2, slow)], 95.0, False)
    pooled = np.array(fast + slow)
    stats = doc.results.latency
    assert stats is not None and stats.samples == 400
    for name, q in latency.PERCENTILES.items():
        assert stats.percentiles[name].ms == pytest.approx(np.percentile(pooled, q))
        assert doc.results.metrics[f"latency-per-call-{name}"].avg == pytest.approx(np.percentile(pooled, q))
    p90 = doc.results.metrics["latency-per-call-p90"]  # min / max: the streams' own p90s
    assert p90.min == pytest.approx(np.percentile(fast, 90)) and p90.max == pytest.approx(np.percentile(slow, 90))
    assert doc.results.metrics["latency-per-call-max"].avg == pytest.approx(pooled.max())
    assert [p.established for p in stats.percentiles.values()] == [True, True, True, False, False]
    assert all(s.call_log is None for s in doc.streams)  # results.json leaves the calls to latencies.csv
    assert "call_log" not in doc.to_json()["streams"][0]


def test_a_stream_document_keeps_its_calls():
    from harness.results.document import stream_document

    doc = stream_document(None, record(1, [1.0, 2.0, 3.0]), 95.0)
    assert doc.to_json()["streams"][0]["call_log"]["latency_ms"] == [1.0, 2.0, 3.0]
    again = StreamRecord.from_json(doc.to_json()["streams"][0])
    assert again.call_log == CallLog((0.0, 0.001, 0.003), (1.0, 2.0, 3.0), (1, 1, 1))


def test_sample_size_warning_names_the_counts_that_would_do():
    stats = latency.pooled([record(1, [1.0] * 100)])
    (warning,) = latency.sample_size_warnings(stats)
    assert "p99, p99.9 not established: 100 calls" in warning and "p99 662, p99.9 6,636" in warning
    assert latency.sample_size_warnings(latency.pooled([record(1, [1.0] * 7000)])) == []


def test_spread_warnings_follow_torch_benchmarks_thresholds():
    steady = latency.pooled([record(1, [10.0, 10.2, 10.4, 10.6] * 10)])
    assert latency.noise_warnings(steady) == []
    fluctuating = latency.pooled([record(1, [10.0, 11.0, 12.0, 13.0] * 10)])  # IQR ~ 1.5 of a median 11.5
    assert "system fluctuation" in latency.noise_warnings(fluctuating)[0]
    noisy = latency.pooled([record(1, [5.0, 10.0, 20.0, 40.0] * 10)])
    assert "significant environmental influence" in latency.noise_warnings(noisy)[0]


def test_load_warnings_count_other_processes_not_the_runs_own():
    busy_with_us = HostLoad(cores=8, load_avg_start=2.0, load_avg_end=8.0, busy_cores=4.2, own_cores=4.0)
    assert latency.load_warnings([record(1, [1.0], host_load=busy_with_us)]) == []
    others = HostLoad(cores=8, load_avg_start=12.0, load_avg_end=12.0, busy_cores=7.5, own_cores=2.0)
    warnings = latency.load_warnings([record(1, [1.0], host_load=others), record(2, [1.0], host_load=others)])
    assert any("other processes kept 3.5 of 8 cores busy" in w for w in warnings)
    assert any("load average was 12.0 on 8 cores" in w for w in warnings)


def test_other_gpu_processes_are_named_also_when_nvml_sees_other_pids():
    ours = [record(1, [1.0], pid=101, telemetry={"gpu_processes": [101, 555]}),
            record(2, [1.0], pid=102, telemetry={"gpu_processes": [102]})]
    assert latency.gpu_process_warnings(ours) == ["1 other process on cuda:0 during the timed loop (NVML)"]
    container = [record(1, [1.0], pid=7, telemetry={"gpu_processes": [9001, 9002]})]  # host pids: count beyond ours
    assert latency.gpu_process_warnings(container) == ["1 other process on cuda:0 during the timed loop (NVML)"]
    alone = [record(1, [1.0], pid=7, telemetry={"gpu_processes": [9001]})]
    assert latency.gpu_process_warnings(alone) == []


def test_latencies_csv_holds_every_call_on_one_time_base(tmp_path):
    records = [record(1, [2.0, 3.0], start=10.0), record(2, [4.0], start=10.5)]
    assert latency.write_csv(tmp_path / "latencies.csv", records) == 3
    rows = latency.read_csv(tmp_path / "latencies.csv")
    assert [(r["stream"], r["call"]) for r in rows] == [(1, 1), (1, 2), (2, 1)]
    assert [r["start_s"] for r in rows] == pytest.approx([0.0, 0.002, 0.5])
    assert [r["latency_ms"] for r in rows] == [2.0, 3.0, 4.0] and all(r["pairs"] == 1 for r in rows)
    assert (tmp_path / "latencies.csv").read_text().splitlines()[0] == "stream,call,start_s,latency_ms,pairs"


def test_busy_jiffies_from_proc_stat():
    stat = "cpu  100 5 50 1000 20 3 2 1 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\n"
    assert latency._busy_jiffies(stat) == 100 + 5 + 50 + 3 + 2 + 1
    assert latency._busy_jiffies("") is None


def test_a_tenfold_latency_spread_passes_as_noisy_never_valid():
    from harness.results.records import RunStatus
    from harness.results.report import verdict_section

    rng = np.random.default_rng(0)
    steady = run_document(None, [record(1, list(rng.uniform(1.00, 1.02, 200)))], 95.0, False)
    assert (steady.results.status, steady.results.validity) == (RunStatus.PASSED, "valid")
    varying = list(rng.uniform(1.0, 10.0, 200))  # a stand-in engine whose calls take 1 to 10 ms
    noisy = run_document(None, [record(1, varying)], 95.0, False)
    assert (noisy.results.status, noisy.results.validity) == (RunStatus.PASSED, "noisy")
    assert any(w.startswith("latency spread") for w in noisy.results.warnings)
    page = verdict_section(noisy)
    assert 'class="verdict noisy"' in page and "(noisy)" in page and "figures are noisy" in page
    assert 'class="verdict passed"' in verdict_section(steady)
    # A loaded machine alone makes the figures noisy too; a failure stays invalid whatever the noise.
    busy = HostLoad(cores=2, load_avg_start=0.5, load_avg_end=0.5, busy_cores=2.0, own_cores=0.5)
    assert run_document(None, [record(1, list(rng.uniform(1.0, 1.02, 200)), host_load=busy)], 95.0,
                        False).results.validity == "noisy"
    failed = run_document(None, [record(1, varying).replace(error="stream 1: boom")], 95.0, False)
    assert (failed.results.status, failed.results.validity) == (RunStatus.FAILED, "invalid")
