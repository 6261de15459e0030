"""MLPerf's scenarios through the real LoadGen (mlcommons-loadgen): stand-in engines of known speed answer its
queries through the measurement core; LoadGen's verdicts, the peak search, the accuracy log and the TEST01-style
check; and the scenarios through inference.py."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import arguments
from harness.loadgen import audit, logs
from harness.loadgen import run as loadgen_run
from harness.loadgen.settings import LoadGenPlan
from harness.loadgen.sut import SampleLibrary
from harness.measure.core import Meter

pytest.importorskip("mlperf_loadgen")

ROOT = Path(__file__).resolve().parent.parent
SIZE = (16, 24)  # SSIM's window fits


class StandIn:
    """An engine's interface whose every call takes ``seconds`` and returns the mean of its two frames (or, while
    ``cheat`` is on, a frame of zeros)."""

    def __init__(self, seconds: float) -> None:
        from rife.registry import VARIANTS

        self.device, self.variant, self.seconds, self.cheat, self.calls = torch.device("cpu"), VARIANTS["v4.0"], \
            seconds, False, 0

    def to_model_input(self, frames: torch.Tensor) -> torch.Tensor:
        return frames.float() / 255

    def interpolate(self, img0, img1, count, size, between=None, follows=False) -> list[torch.Tensor]:
        time.sleep(self.seconds)
        self.calls += 1
        return [torch.zeros_like(img0) if self.cheat else (img0 + img1) / 2]


def pair(i: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(i)
    return tuple(torch.randint(0, 256, (3, *SIZE), dtype=torch.uint8, generator=gen) for _ in range(2))  # type: ignore[return-value]


def truth(i: int) -> torch.Tensor:
    """What the stand-in answers, rounded to 8 bits as a run rounds its frames."""
    from metrics import to_uint8

    a, b = pair(i)
    return to_uint8((a.float() / 255 + b.float() / 255) / 2)


def scenario(tmp_path: Path, engine: StandIn, plan: LoadGenPlan, batch: int = 1, with_truth: bool = False):
    meter = Meter(engine, 1, SIZE)  # type: ignore[arg-type]
    library = SampleLibrary(16, 16, pair)
    return loadgen_run.run_scenario(meter, library, plan, tmp_path, batch, 0, truth if with_truth else None)


def test_single_stream_is_valid_with_its_minimums_lowered(tmp_path):
    outcome, timed, _ = scenario(tmp_path, StandIn(0.001), LoadGenPlan("SingleStream", min_queries=100))
    assert outcome.validity == "VALID" and outcome.reasons == () and outcome.scenario == "SingleStream"
    assert outcome.queries >= 100 and timed.calls == outcome.queries
    assert 1.0 <= outcome.percentiles_ms["p90"] < 50 and outcome.samples_per_s > 10
    assert {Path(p).name for p in outcome.logs} >= {"mlperf_log_summary.txt", "mlperf_log_detail.txt"}
    assert "Result is : VALID" in (tmp_path / "mlperf_log_summary.txt").read_text()


def test_server_below_capacity_is_valid_and_far_above_is_invalid_with_loadgens_reason(tmp_path):
    engine = StandIn(0.004)  # 250 queries/s at most; early stopping at p99 wants about 460 queries in bound
    calm = LoadGenPlan("Server", min_queries=600, min_duration_s=1.0, target_qps=150, latency_bound_ms=60)
    outcome, _, _ = scenario(tmp_path / "calm", engine, calm)
    assert outcome.validity == "VALID", outcome.reasons
    assert outcome.target_qps == pytest.approx(150) and outcome.latency_bound_ms == pytest.approx(60)
    flood = LoadGenPlan("Server", min_queries=100, min_duration_s=1.0, target_qps=2000, latency_bound_ms=50)
    outcome, _, _ = scenario(tmp_path / "flood", engine, flood)
    assert outcome.validity == "INVALID"
    assert any("latency bound" in r or "Reduce target QPS" in r for r in outcome.reasons)


def test_offline_batches_what_it_is_given(tmp_path):
    engine = StandIn(0.002)
    outcome, timed, _ = scenario(tmp_path, engine, LoadGenPlan("Offline", min_queries=64), batch=8)
    assert outcome.scenario == "Offline" and outcome.samples_per_s > 0
    assert timed.pairs >= 64 and max(timed.call_pairs) == 8 and timed.calls < timed.pairs


def test_multistream_queries_carry_eight_samples(tmp_path):
    outcome, timed, _ = scenario(tmp_path, StandIn(0.0005), LoadGenPlan("MultiStream", min_queries=40), batch=4)
    assert outcome.scenario == "MultiStream" and outcome.samples_per_query == 8
    assert timed.pairs == 8 * outcome.queries and set(timed.call_pairs) == {4}


@pytest.mark.slow
def test_find_peak_converges_near_a_stand_in_of_known_capacity(tmp_path):
    plan = LoadGenPlan("Server", min_queries=500, min_duration_s=0.5, target_qps=50, latency_bound_ms=30,
                       find_peak=True)
    outcome, _, _ = scenario(tmp_path, StandIn(0.005), plan)  # 200 queries/s at most
    assert outcome.mode == "FindPeakPerformance"
    assert 50 <= outcome.target_qps <= 200


def test_the_accuracy_log_is_scored_and_honest_outputs_pass_the_check(tmp_path):
    plan = LoadGenPlan("SingleStream", min_queries=64, accuracy=True, audit_probability=0.5)
    outcome, _, scores = scenario(tmp_path, StandIn(0.0), plan, with_truth=True)
    assert outcome.accuracy_samples == 16 and len(scores) == 16
    assert all(psnr > 100 and ssim > 0.999 for _, psnr, ssim in scores)  # the truth itself, rounded as a run rounds
    assert outcome.audit_checked > 0 and outcome.audit_passed is True
    assert (tmp_path / "accuracy" / "mlperf_log_accuracy.json").is_file()


def test_the_check_fails_on_a_stand_in_that_computes_less_when_timed(tmp_path, monkeypatch):
    engine = StandIn(0.0)
    settings_of = loadgen_run.test_settings

    def switching(plan, mode, seed=0):
        engine.cheat = mode == "PerformanceOnly"
        return settings_of(plan, mode, seed)

    monkeypatch.setattr(loadgen_run, "test_settings", switching)
    plan = LoadGenPlan("SingleStream", min_queries=64, accuracy=True, audit_probability=0.5)
    outcome, _, _ = scenario(tmp_path, engine, plan, with_truth=True)
    assert outcome.audit_checked > 0 and outcome.audit_passed is False
    assert len(outcome.audit_mismatched) == outcome.audit_checked


def test_the_detail_log_is_read_into_the_outcome(tmp_path):
    detail = tmp_path / "mlperf_log_detail.txt"
    lines = [{"key": "effective_scenario", "value": "Server"}, {"key": "effective_test_mode", "value": "PerformanceOnly"},
             {"key": "result_validity", "value": "INVALID"}, {"key": "result_perf_constraints_met", "value": False},
             {"key": "result_invalid_reason", "value": "Reduce target QPS to improve latency. "},
             {"key": "result_completed_samples_per_sec", "value": 90.5},
             {"key": "result_99.00_percentile_latency_ns", "value": 25_000_000}]
    detail.write_text("".join(f":::MLLOG {json.dumps(e)}\n" for e in lines) + "garbage\n")
    outcome = logs.outcome(tmp_path, tmp_path)
    assert (outcome.scenario, outcome.validity, outcome.samples_per_s) == ("Server", "INVALID", 90.5)
    assert outcome.percentiles_ms == {"p99": 25.0}
    assert outcome.reasons == ("performance constraints not satisfied (the latency bound)",
                               "Reduce target QPS to improve latency.")


def test_logged_frames_compare_byte_for_byte(tmp_path):
    frame = torch.arange(3 * 8 * 12, dtype=torch.uint8).reshape(3, 8, 12).numpy()
    log = tmp_path / "log.json"
    log.write_text(json.dumps([{"seq_id": 0, "qsl_idx": 5, "data": frame.tobytes().hex()},
                               {"seq_id": 1, "qsl_idx": 6, "data": "00"}]))  # a malformed entry is left out
    frames = audit.logged_frames(log, (3, 8, 12))
    assert list(frames) == [5] and (frames[5] == frame).all()
    other = {5: frame.copy()}
    other[5][0, 0, 0] += 1
    assert audit.compare(frames, {5: frame}) == (1, ())
    assert audit.compare(frames, other) == (1, (5,))


@pytest.mark.parametrize("args, message", [
    (["--scenario", "Server"], "needs --target-qps"),
    (["--scenario", "Offline", "--streams", "2"], "runs one system under test"),
    (["--find-peak"], "applies to --scenario Server only"),
    (["--scenario", "SingleStream", "--target-qps", "5"], "Server or Offline only"),
    (["--scenario", "SingleStream", "--repeat", "3"], "--repeat"),
    (["--loadgen-conf", "user.conf"], "applies to LoadGen's scenarios"),
    (["--scenario", "Offline", "--loadgen-conf", "/nonexistent/user.conf"], "no such file"),
])
def test_a_scenario_with_an_option_it_cannot_honour_is_one_line(args, message):
    with pytest.raises(arguments.OptionError, match=message):
        arguments.parse(["--dummy", *args], {})


def test_scenario_words_are_read_in_any_case():
    assert arguments.parse(["--dummy", "--scenario", "singlestream"], {}).scenario == "SingleStream"
    assert arguments.parse(["--dummy"], {"SCENARIO": "OFFLINE"}).scenario == "Offline"


@pytest.mark.slow
def test_single_stream_through_inference_py_with_a_user_conf(tmp_path):
    conf = tmp_path / "user.conf"
    conf.write_text("*.SingleStream.min_query_count = 70\n*.SingleStream.min_duration = 0\n")
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "inference.py", "--dummy", "--platform", "CPU", "--arch", "v4.0",
                           "--scenario", "SingleStream", "--loadgen-conf", str(conf), "--num-inputs", "4",
                           "--warmup", "1", "--data-height", "32", "--data-width", "64", "--output-dir", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads((out / "results.json").read_text())
    lg = doc["results"]["loadgen"]
    assert lg["validity"] == "VALID" and lg["queries"] >= 70 and doc["results"]["status"] == "passed"
    assert (out / "mlperf_log_summary.txt").is_file() and (out / "mlperf_log_detail.txt").is_file()
    assert "MLPerf LoadGen   SingleStream PerformanceOnly: VALID" in done.stdout
    assert doc["streams"][0]["calls"] == lg["queries"]  # every query is one call of the core's meter
    page = (out / "report.html").read_text()
    assert "<h2>MLPerf LoadGen</h2>" in page and "mlperf_log_summary.txt" in page


@pytest.mark.slow
def test_offline_quality_mode_scores_loadgens_accuracy_log(tmp_path, video_dir):
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "inference.py", "--platform", "CPU", "--arch", "v4.0", "--scenario",
                           "Offline", "--data", str(video_dir / "bigbuckbunny.mp4"), "--num-inputs", "4",
                           "--warmup", "1", "--output-dir", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode in (0, 1), done.stderr
    doc = json.loads((out / "results.json").read_text())
    lg = doc["results"]["loadgen"]
    assert lg["accuracy_samples"] == 4 and lg["accuracy_psnr_db"] > 20
    assert doc["quality_data"]["test_count"] == 4
    assert lg["audit_checked"] >= 0 and (out / "accuracy" / "mlperf_log_accuracy.json").is_file()


def test_the_worker_answers_every_queued_sample_once_with_its_own_frame_in_batches():
    """Server and Offline: the worker keeps a call in flight while it answers the previous one; every sample is
    answered once, with the frame of its own pair, in calls of at most --batch-size pairs."""
    import ctypes
    from types import SimpleNamespace

    from harness.loadgen.sut import EngineSUT

    engine = StandIn(0.0)
    answered: dict[int, bytes] = {}

    def complete(responses) -> None:
        for r in responses:
            assert r.id not in answered
            answered[r.id] = ctypes.string_at(r.data, r.size)

    sut = EngineSUT(Meter(engine, 1, SIZE), SampleLibrary(16, 16, pair), 3, "Offline", 0, complete)  # type: ignore[arg-type]
    sut.start()
    sut.issue_queries([SimpleNamespace(id=100 + i, index=i) for i in range(7)])
    timed = sut.stop()
    assert sorted(answered) == [100 + i for i in range(7)]
    assert all(answered[100 + i] == truth(i).numpy().tobytes() for i in range(7))
    assert timed.pairs == 7 and max(timed.call_pairs) <= 3 and engine.calls == len(timed.call_pairs) >= 3


def test_the_runs_own_throughput_covers_loadgens_test_not_its_sample_loading(tmp_path):
    """LoadGen loads its samples before the test (untimed); the SUT's clock starts at the first query and ends at
    the last answer, so the run's frames/s and LoadGen's samples/s describe the same interval."""

    def slow_pair(i: int) -> tuple[torch.Tensor, torch.Tensor]:
        time.sleep(0.05)  # 0.8 s of loading for the 16 samples, against a test of a few tens of milliseconds
        return pair(i)

    meter = Meter(StandIn(0.002), 1, SIZE)  # type: ignore[arg-type]
    outcome, timed, _ = loadgen_run.run_scenario(meter, SampleLibrary(16, 16, slow_pair),
                                                 LoadGenPlan("Offline", min_queries=256), tmp_path, 8, 0)
    assert timed.elapsed_s < 0.8
    assert timed.throughput_fps == pytest.approx(outcome.samples_per_s, rel=0.3)
