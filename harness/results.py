"""Result files: results_<n>.json per stream, results.json for the run, results.yaml.

The JSON keeps the reference sample's key tree (config.workload.model, results.metrics with
avg / min / max / stdev / units, quality_data, status) and adds what the reference lacked.
Combined over streams, as the reference does: throughput is summed (``avg`` holds the sum),
latency and accuracy are averaged; min / max / stdev are taken across streams. ``throughput-overlap``
counts only the frames done while every stream ran (from each stream's checkpoints), and
``results.per_device`` / ``results.hosts`` split the throughput by device and by host.
"""

from __future__ import annotations

import datetime as _dt
import getpass
import json
import math
import os
import platform
import statistics
import sys
import tempfile
from bisect import bisect_right
from collections.abc import Callable
from pathlib import Path
from typing import Any

from metrics import spread

SCHEMA = "rife-bench/results/v1"
VERSION = "1.0.0"
DTYPE_NAMES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: write null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write_json(path: Path, doc: dict) -> None:
    """Atomic: a reader never sees half a file, even if the writer is killed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(_clean(doc), f, indent=2, default=str)
        f.write("\n")
    os.replace(tmp, path)


def system_info(device_name: str) -> dict:
    import cv2
    import torch

    return {
        "hostname": platform.node(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "device_name": device_name,
        "frameworks": {
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "xpu": getattr(torch.version, "xpu", None),
            "opencv": cv2.__version__,
        },
    }


def _metric(values: list[float], units: str, total: float | None = None) -> dict:
    out = spread(values)
    if total is not None:
        out["avg"] = total
    out["units"] = units
    return out


def metrics_of(records: list[dict], quality_applies: bool) -> dict:
    done = [r for r in records if r.get("pairs")]
    fps = [r["throughput_fps"] for r in done]
    wall = [r["latency_wall_ms"] for r in done]
    lat = [r["latency_ms"] for r in done if r.get("latency_ms")]
    acc = [r["quality"]["test_pass_pct"] for r in done if r.get("quality")]
    out = {
        "throughput": _metric(fps, "images/s", total=sum(fps)),
        "latency": _metric(wall, "ms"),
        "accuracy": _metric(acc, "%") if quality_applies else {**_metric([0.0], "%"), "applicable": False},
        "total-batches-tested": _metric([r.get("calls", 0) for r in done], "batches", total=sum(r["calls"] for r in done)),
        "total-images-tested": _metric([r["frames"] for r in done], "images", total=sum(r["frames"] for r in done)),
        "warmup-batches": _metric([r.get("warmup", {}).get("calls", 0) for r in records], "batches"),
    }
    out["throughput-overlap"] = overlap_throughput(records)
    for key in ("p50", "p90", "p99", "max", "mean"):
        out[f"latency-per-call-{key}"] = _metric([s[key] for s in lat], "ms")
    out.update(energy_of(done))
    return out


def energy_of(done: list[dict]) -> dict:
    """Power and energy per frame. Streams that share a device each read that whole device's power, so
    the combined power (``avg``) is the sum over devices of the mean of their streams' readings, and the
    combined energy per frame is that power over the combined throughput; min/max/stdev stay per stream."""
    measured = [r for r in done if r.get("energy", {}).get("mean_power_w") is not None]
    if not measured:
        return {}
    by_device: dict[str, list[float]] = {}
    for r in measured:
        by_device.setdefault(f"{r.get('host')}/{r.get('device')}", []).append(r["energy"]["mean_power_w"])
    power = sum(statistics.fmean(readings) for readings in by_device.values())
    fps = sum(r["throughput_fps"] for r in measured)
    energy = [r["energy"] for r in measured]
    return {
        "power": _metric([e["mean_power_w"] for e in energy], "W", total=power),
        "energy-per-frame": _metric([e["energy_per_frame_j"] for e in energy], "J", total=power / fps if fps else None),
        "frames-per-joule": _metric([e["frames_per_joule"] for e in energy], "frames/J",
                                    total=fps / power if power else None),
    }


def _ran(records: list[dict]) -> list[dict]:
    return [r for r in records if r.get("window") and r.get("pairs")]


def _span(record: dict) -> tuple[float, float]:
    """The timed window on a clock every host shares: monotonic + (wall clock - monotonic) at the start."""
    offset = record.get("clock_offset_s", 0.0)
    return record["window"][0] + offset, record["window"][1] + offset


def overlap_of(records: list[dict]) -> dict:
    """How long the streams' timed windows ran together (1.0: all started and ended together)."""
    spans = [_span(r) for r in _ran(records)]
    if not spans:
        return {"seconds": 0.0, "fraction": None}
    start, end = max(s for s, _ in spans), min(e for _, e in spans)
    span = max(e for _, e in spans) - min(s for s, _ in spans)
    together = max(0.0, end - start)
    return {"seconds": together, "fraction": together / span if span > 0 else 1.0}


def frames_within(record: dict, start: float, end: float) -> int:
    """Frames the stream completed in [start, end] (shared clock), from its (seconds, frames done) checkpoints."""
    t0 = _span(record)[0]
    times = [t0 + t for t, _ in record["checkpoints"]]
    done = [0] + [f for _, f in record["checkpoints"]]
    return done[bisect_right(times, end)] - done[bisect_right(times, start)]


def overlap_throughput(records: list[dict]) -> dict:
    """Frames per second counted only while every stream ran: per stream, the frames done inside the common
    window [latest start, earliest end] over its length; ``avg`` holds the sum, as for throughput."""
    ran = _ran(records)
    spans = [_span(r) for r in ran]
    start, end = (max(s for s, _ in spans), min(e for _, e in spans)) if spans else (0.0, 0.0)
    if end <= start or not all(r.get("checkpoints") for r in ran):
        return _metric([], "images/s")
    fps = [frames_within(r, start, end) / (end - start) for r in ran]
    return _metric(fps, "images/s", total=sum(fps))


def _grouped(records: list[dict], key: Callable[[dict], str | None]) -> dict[str, dict]:
    """Throughput summed and streams listed per key (records whose key is None are left out)."""
    out: dict[str, dict] = {}
    for r in records:
        k = key(r)
        if k is not None:
            entry = out.setdefault(k, {"throughput": 0.0, "streams": []})
            entry["throughput"] += r.get("throughput_fps") or 0.0
            entry["streams"].append(r["stream"])
    return out


def per_device(records: list[dict]) -> dict[str, dict]:
    """By device (``cuda:0``; ``host/cuda:0`` when the streams ran on several hosts), with its name."""
    several_hosts = len({r.get("host") for r in records if r.get("device")}) > 1

    def key(r: dict) -> str | None:
        return None if not r.get("device") else f"{r.get('host')}/{r['device']}" if several_hosts else r["device"]

    out = _grouped(records, key)
    for k, entry in out.items():
        entry["device_name"] = next((r["device_name"] for r in records if key(r) == k and r.get("device_name")), None)
    return out


def per_host(records: list[dict]) -> dict[str, dict]:
    """By host name, with the torchrun ranks that ran there."""
    out = _grouped(records, lambda r: r.get("host") or "unknown")
    for r in records:
        if "rank" in r:
            out[r.get("host") or "unknown"].setdefault("ranks", []).append(r["rank"])
    return out


def quality_of(records: list[dict], min_pass_pct: float) -> dict | None:
    from harness.quality import summarize

    frames = [f for r in records for f in r.get("quality_frames", [])]
    if not any(r.get("quality") for r in records):
        return None
    return summarize(frames, min_pass_pct)


def judge(records: list[dict], quality: dict | None, interrupted: bool) -> tuple[str, list[str]]:
    """validity and the reasons it is invalid."""
    reasons = [r["error"] for r in records if r.get("error")]
    reasons += [f"stream {r['stream']}: {s}" for r in records for s in r.get("shortfalls", [])]
    if interrupted:
        reasons.append("interrupted before the end")
    if quality is not None and not quality["decision_pass"]:
        reasons.append(f"quality below threshold: {quality['test_pass_pct']:.2f}% of frames passed")
    return ("valid" if not reasons else "invalid"), reasons


def run_document(config: dict, records: list[dict], min_pass_pct: float, interrupted: bool) -> dict:
    quality = quality_of(records, min_pass_pct)
    validity, reasons = judge(records, quality, interrupted)
    status = "interrupted" if interrupted else ("passed" if validity == "valid" else "failed")
    warm = [r.get("warmup", {}) for r in records]
    return {
        "schema": SCHEMA,
        "config": config,
        "warmup_result": {"results": {
            "metadata": {"streams": len(records)},
            "metrics": {"warmup-batches": _metric([w.get("calls", 0) for w in warm], "batches"),
                        "warmup-seconds": _metric([w.get("seconds", 0.0) for w in warm], "s")},
        }},
        "quality_data": quality or {"applicable": False, "note": next(
            (r["quality_note"] for r in records if r.get("quality_note")), "performance mode: quality is not judged")},
        "results": {
            "metadata": {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                         "tester": _tester()},
            "metrics": metrics_of(records, quality is not None),
            "status": status,
            "validity": validity,
            "invalid_reasons": reasons,
            "overlap": overlap_of(records),
            "per_device": per_device(records),
            "hosts": per_host(records),
        },
        "streams": [_stream_summary(r) for r in records],
        "quality_frames": [f for r in records for f in r.get("quality_frames", [])],
    }


def _stream_summary(record: dict) -> dict:
    """A stream's record without its long lists (per-frame quality, telemetry samples: in their own files)."""
    out = {k: v for k, v in record.items() if k not in ("quality_frames", "traceback")}
    if "telemetry" in out:
        out["telemetry"] = {k: v for k, v in out["telemetry"].items() if k != "samples"}
    return out


def record_from_file(path: Path) -> dict | None:
    """A stream's record from its results_<n>.json (the raw record, or the per-stream document made of it)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if "streams" not in doc:
        return doc
    return {**doc["streams"][0], "quality_frames": doc.get("quality_frames", [])}


def _tester() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def yaml_text(doc: dict) -> str:
    """results.yaml exactly in the reference's shape (written by hand: PyYAML does not indent the list)."""
    m = doc["results"]["metrics"]
    rows = [("throughput", m["throughput"]["avg"], "img/s"), ("latency", m["latency"]["avg"], "ms"),
            ("accuracy", m["accuracy"]["avg"], "percents")]
    body = "".join(f" - key: {k}\n   value: {_round(v)}\n   unit: {u}\n" for k, v, u in rows)
    return "results:\n" + body


def _round(value: float | None) -> float:
    return 0.0 if value is None or not math.isfinite(value) else round(float(value), 2)


def write_run(out_dir: Path, doc: dict) -> None:
    write_json(out_dir / "results.json", doc)
    (out_dir / "results.yaml").write_text(yaml_text(doc))
