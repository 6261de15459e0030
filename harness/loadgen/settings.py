"""LoadGen's test settings from the run's options: the scenario, the stopping minimums (``--num-inputs`` as the
query count, ``--min-test-duration`` / ``--max-test-duration``), Server's target and latency bound, and a user.conf
(``--loadgen-conf``) read by LoadGen itself, which overrides them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCENARIOS = ("streams", "SingleStream", "MultiStream", "Server", "Offline")
DEFAULT_LATENCY_BOUND_MS = 1000 / 60  # one frame interval of a 60 fps video
MULTISTREAM_SAMPLES = 8  # MLPerf's samples per MultiStream query


@dataclass(frozen=True)
class LoadGenPlan:
    """What the run asks of LoadGen (picklable: a stream process receives it)."""

    scenario: str  # SingleStream | MultiStream | Server | Offline
    min_queries: int
    min_duration_s: float = 0.0
    max_duration_s: float | None = None
    target_qps: float | None = None  # Server (and Offline's expected rate)
    latency_bound_ms: float = DEFAULT_LATENCY_BOUND_MS  # Server
    find_peak: bool = False  # Server: LoadGen's FindPeakPerformance
    conf: Path | None = None  # a user.conf, LoadGen's own format
    samples_per_query: int = MULTISTREAM_SAMPLES  # MultiStream
    accuracy: bool = False  # quality mode: also an AccuracyOnly run, scored, and the TEST01-style check
    audit_probability: float = 0.1  # performance mode: the share of responses logged for the check


def test_settings(plan: LoadGenPlan, mode: str, seed: int = 0) -> Any:
    """``lg.TestSettings`` for ``mode`` (PerformanceOnly, AccuracyOnly, FindPeakPerformance)."""
    import mlperf_loadgen as lg

    s = lg.TestSettings()
    s.scenario = getattr(lg.TestScenario, plan.scenario)
    s.mode = getattr(lg.TestMode, mode)
    s.min_query_count = plan.min_queries
    s.min_duration_ms = int(plan.min_duration_s * 1000)
    if plan.max_duration_s is not None:
        s.max_duration_ms = int(plan.max_duration_s * 1000)
    if plan.scenario == "Server":
        s.server_target_latency_ns = int(plan.latency_bound_ms * 1e6)
        if plan.target_qps is not None:
            s.server_target_qps = plan.target_qps
    if plan.scenario == "Offline" and plan.target_qps is not None:
        s.offline_expected_qps = plan.target_qps
    if plan.scenario == "MultiStream":
        s.multi_stream_samples_per_query = plan.samples_per_query
    if plan.accuracy and mode == "PerformanceOnly":  # sampled outputs for the TEST01-style check
        s.accuracy_log_rng_seed = seed + 1
        s.accuracy_log_probability = plan.audit_probability
    if plan.conf is not None:
        s.FromConfig(str(plan.conf), "rife", plan.scenario)
    return s
