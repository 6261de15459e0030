"""LoadGen's detail log (``mlperf_log_detail.txt``: one ``:::MLLOG {json}`` line per entry) read into the run's
``LoadGenOutcome``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.results.records import LoadGenOutcome

LOG_FILES = ("mlperf_log_summary.txt", "mlperf_log_detail.txt", "mlperf_log_accuracy.json")
PERCENTILES = {"p50": "50.00", "p90": "90.00", "p95": "95.00", "p97": "97.00", "p99": "99.00", "p99.9": "99.90"}


def entries(detail: Path) -> tuple[dict[str, Any], list[str]]:
    """Every key's last value, and the messages LoadGen logged as errors."""
    values: dict[str, Any] = {}
    errors: list[str] = []
    for line in detail.read_text(errors="replace").splitlines():
        if not line.startswith(":::MLLOG "):
            continue
        try:
            entry = json.loads(line[len(":::MLLOG "):])
        except json.JSONDecodeError:
            continue
        values[entry.get("key", "")] = entry.get("value")
        if (entry.get("metadata") or {}).get("is_error"):
            errors.append(str(entry.get("value")))
    return values, errors


def outcome(folder: Path, root: Path) -> LoadGenOutcome:
    """The test whose logs are in ``folder`` (paths named relative to the run's output folder ``root``)."""
    e, errors = entries(folder / "mlperf_log_detail.txt")
    per_query = int(e.get("effective_samples_per_query") or 1)
    return LoadGenOutcome(
        scenario=str(e.get("effective_scenario", "")), mode=str(e.get("effective_test_mode", "")),
        validity=str(e.get("result_validity", "INVALID")), reasons=tuple(reasons(e) + errors),
        samples_per_s=samples_per_s(e, per_query), scheduled_per_s=e.get("result_scheduled_samples_per_sec"),
        target_qps=e.get("effective_target_qps"), latency_bound_ms=_ms(e.get("effective_target_latency_ns")) or None,
        percentiles_ms={name: _ms(e[f"result_{q}_percentile_latency_ns"]) for name, q in PERCENTILES.items()
                        if e.get(f"result_{q}_percentile_latency_ns") is not None},
        mean_ms=_ms(e.get("result_mean_latency_ns")), max_ms=_ms(e.get("result_max_latency_ns")),
        queries=e.get("result_query_count"), samples_per_query=per_query,
        early_stopping=tuple(p.strip() for p in str(e.get("early_stopping_result") or "").split(" * ") if p.strip()),
        logs=tuple(str((folder / name).relative_to(root)) for name in LOG_FILES if (folder / name).is_file()),
    )


def samples_per_s(e: Mapping[str, Any], per_query: int) -> float | None:
    for key in ("result_completed_samples_per_sec", "result_samples_per_second"):
        if e.get(key) is not None:
            return float(e[key])
    qps = e.get("result_qps_with_loadgen_overhead")
    return None if qps is None else float(qps) * per_query


def reasons(e: Mapping[str, Any]) -> list[str]:
    """Why LoadGen called the test INVALID, in its words."""
    if e.get("result_validity") == "VALID":
        return []
    out = []
    if e.get("result_min_duration_met") is False:
        out.append("min duration not satisfied")
    if e.get("result_min_queries_met") is False:
        out.append("min queries not satisfied")
    if e.get("result_perf_constraints_met") is False:
        out.append("performance constraints not satisfied (the latency bound)")
    if e.get("early_stopping_met") is False:
        out.append("early stopping not satisfied")
    text = str(e.get("result_invalid_reason") or "").strip()
    if text:
        out.append(text)
    return out or ["LoadGen: INVALID"]


def _ms(ns: Any) -> float:
    return float(ns) / 1e6 if ns is not None else 0.0
