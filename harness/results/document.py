"""Result files: results_<n>.json per stream, results.json for the run, results.yaml, the console summary.

Every one is built from the streams' typed records (``harness.results.records``); results_<n>.json is the document
of stream n alone, in the same format as results.json. The JSON keeps the reference sample's key tree (config.workload.model, results.metrics with
avg / min / max / stdev / units, quality_data, status) and adds what the reference lacked.
Combined over streams, as the reference does: throughput is summed (``avg`` holds the sum),
latency and accuracy are averaged; min / max / stdev are taken across streams. ``throughput-overlap``
counts only the frames done while every stream ran (from each stream's checkpoints), and
``results.per_device`` / ``results.hosts`` split the throughput by device and by host.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import errno
import getpass
import importlib
import json
import math
import os
import platform
import secrets
import statistics
import subprocess
import sys
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from harness.measure.metrics import spread
from harness.results.outputs import OutputLayout
from harness.results.records import (
    FrameScore,
    LatencyStats,
    LoadGenOutcome,
    Metric,
    Overlap,
    QualityOutcome,
    Repeats,
    RunConfig,
    RunDocument,
    RunResults,
    RunStatus,
    Share,
    StreamRecord,
    StreamStatus,
)

VERSION = "1.0.0"
ROOT = Path(__file__).resolve().parents[2]


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: write null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write_json(path: Path, doc: Mapping[str, Any]) -> None:
    """Atomic: a reader never sees half a file, even if the writer is killed."""
    write_atomic(path, json.dumps(_clean(doc), indent=2, default=str) + "\n")


def write_atomic(path: Path, content: str | bytes) -> None:
    """``content`` into ``path`` through a temporary file renamed over it: a reader never sees half a file, and
    a failed write (disk full) leaves the previous file as it was and no temporary file. An OSError names
    ``path`` (see ``write_error``). The file gets the mode any new file gets (0644 under the usual umask 022),
    so that whoever shares the folder can read the results, even when a container running as root wrote them
    into a bind mount."""
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, unlike mkstemp's 0600
        try:
            with os.fdopen(fd, "wb" if isinstance(content, bytes) else "w") as f:
                f.write(content)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(path)) from None


def write_error(e: OSError, path: Path | str | None = None) -> str:
    """One line for a file that could not be written: the file, the system's reason and its errno."""
    name = errno.errorcode.get(e.errno or 0)
    code = f" (errno {e.errno}{', ' + name if name else ''})" if e.errno else ""
    return f"cannot write {path or e.filename or 'a file'}: {e.strerror or e}{code}"


COMMIT_VARIABLE = "RIFE_GIT_COMMIT"  # set by the container images from their build argument GIT_COMMIT


def harness_revision(root: Path = ROOT) -> dict:
    """Which harness ran: its version (``VERSION``, the package's) and the git commit of its code, from the first
    of these that knows it (``git_commit_from`` says which):

    1. ``checkout``: git, where ``root`` is the top of a git checkout (``python inference.py``, run_model.sh, an
       editable install), with ``git_dirty`` when tracked files were changed;
    2. ``build``: ``harness/_build_info.py``, which the wheel build writes (setup.py: the commit of the checkout it
       was built from, or ``RIFE_GIT_COMMIT`` at build time): an installed harness has no .git to ask;
    3. ``environment``: ``RIFE_GIT_COMMIT``, which the container images set from their build argument
       ``GIT_COMMIT`` (``docker build --build-arg GIT_COMMIT=$(git rev-parse HEAD)``; .dockerignore keeps .git
       out of the image).

    Else the commit is null (an unpacked copy, an image built without the argument)."""
    out: dict[str, Any] = {"version": VERSION, "git_commit": None, "git_dirty": None, "git_commit_from": None}
    found = _checkout_commit(root) or _built_commit() or _environment_commit()
    if found is not None:
        out.update(found)
    return out


def _checkout_commit(root: Path) -> dict | None:
    """Only where ``root`` itself is the checkout's top: an installed package inside someone else's repository
    (a virtual environment in a project folder) must not report that repository's commit."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)

    try:
        top = git("rev-parse", "--show-toplevel")
        if top.returncode != 0 or Path(top.stdout.strip()).resolve() != root.resolve():
            return None
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return None
        changes = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):  # no git here: the version alone says which harness ran
        return None
    return {"git_commit": head.stdout.strip(),
            "git_dirty": bool(changes.stdout.strip()) if changes.returncode == 0 else None,
            "git_commit_from": "checkout"}


def _built_commit() -> dict | None:
    try:
        info = importlib.import_module("harness._build_info")
    except ImportError:
        return None
    commit = getattr(info, "GIT_COMMIT", None)
    if not commit:
        return None
    return {"git_commit": commit, "git_dirty": getattr(info, "GIT_DIRTY", None), "git_commit_from": "build"}


def _environment_commit() -> dict | None:
    commit = os.environ.get(COMMIT_VARIABLE, "").strip()
    return {"git_commit": commit, "git_commit_from": "environment"} if commit else None


def system_info(device_name: str, gpu_driver: str | None = None) -> dict:
    import cv2
    import torch

    from harness.system.device import cpu_model

    return {
        "hostname": platform.node(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "cpu": cpu_model(),
        "architecture": platform.machine(),
        "cpu_count": os.cpu_count(),
        "device_name": device_name,
        "gpu_driver": gpu_driver,
        "frameworks": {
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "xpu": getattr(torch.version, "xpu", None),
            "opencv": cv2.__version__,
        },
    }


def _metric(values: Sequence[float | None], units: str, total: float | None = None,
            applicable: bool | None = None) -> Metric:
    out = spread([v for v in values if v is not None])
    return Metric(total if total is not None else out["avg"], out["min"], out["max"], out["stdev"], units, applicable)


def run_repeats(records: Sequence[StreamRecord]) -> list[float]:
    """The run's throughput in each repeat: the streams' r-th timed loops summed (they start together), over the
    repeats every stream that measured completed."""
    done = [r.measurements.repeat_fps for r in records if r.measurements is not None and r.measurements.pairs]
    if not done or not all(done):
        return []
    return [sum(values) for values in zip(*done, strict=False)]


def metrics_of(records: Sequence[StreamRecord], quality_applies: bool,
               pooled: LatencyStats | None = None, repeats: Repeats | None = None) -> dict[str, Metric]:
    """The reference's metrics and ours. Three rates say what they count: ``throughput`` generated (interpolated)
    frames, ``calls-per-s`` model calls, ``output-frames-per-s`` the frames of the interpolated video (each pair's
    first frame and the ones generated after it). With repeats, a rate's total is the median repeat's."""
    done = [(r, r.measurements) for r in records if r.measurements is not None and r.measurements.pairs]
    fps = [m.throughput_fps for _, m in done]
    lat = [m.latency_ms for _, m in done if m.latency_ms is not None]
    acc = [r.quality.test_pass_pct for r, _ in done if r.quality is not None]
    timed = [m for _, m in done if m.elapsed_s > 0]
    per_frame = {"calls-per-s": [m.calls / m.elapsed_s for m in timed],
                 "output-frames-per-s": [(m.pairs + m.frames) / m.elapsed_s for m in timed]}
    scale = repeats.median_fps / sum(fps) if repeats is not None and sum(fps) > 0 else 1.0
    out = {
        "throughput": _metric(fps, "frames/s", total=sum(fps) * scale),
        "calls-per-s": _metric(per_frame["calls-per-s"], "calls/s", total=sum(per_frame["calls-per-s"]) * scale),
        "output-frames-per-s": _metric(per_frame["output-frames-per-s"], "frames/s",
                                       total=sum(per_frame["output-frames-per-s"]) * scale),
        "latency": _metric([m.latency_wall_ms for _, m in done], "ms"),
        "accuracy": _metric(acc, "%") if quality_applies else _metric([0.0], "%", applicable=False),
        "total-batches-tested": _metric([m.calls for _, m in done], "batches", total=sum(m.calls for _, m in done)),
        "total-images-tested": _metric([m.frames for _, m in done], "frames", total=sum(m.frames for _, m in done)),
        "warmup-batches": _metric([r.warmup.calls if r.warmup else 0 for r in records], "batches"),
        "throughput-overlap": overlap_throughput(records),
    }
    for key in ("p50", "p90", "p95", "p99", "p99.9", "max", "mean"):  # avg: every stream's calls pooled
        per_stream = [_stat_value(s, key) for s in lat]
        out[f"latency-per-call-{key}"] = _metric(per_stream, "ms", total=_stat_value(pooled, key))
    out.update(energy_of(records))
    return out


def _stat_value(stats: LatencyStats | None, key: str) -> float | None:
    if stats is None:
        return None
    if key in stats.percentiles:
        return stats.percentiles[key].ms
    return stats.max_ms if key == "max" else stats.mean_ms


def energy_of(records: Sequence[StreamRecord]) -> dict[str, Metric]:
    """Power and energy per frame. Streams that share a device each read that whole device's power, so
    the combined power (``avg``) is the sum over devices of the mean of their streams' readings, and the
    combined energy per frame is that power over the combined throughput; min/max/stdev stay per stream."""
    measured = [(r, r.measurements) for r in records
                if r.measurements is not None and r.measurements.pairs and r.measurements.energy.mean_power_w is not None]
    if not measured:
        return {}
    by_device: dict[str, list[float]] = {}
    for r, m in measured:
        by_device.setdefault(f"{r.host}/{r.device}", []).append(m.energy.mean_power_w or 0.0)
    power = sum(statistics.fmean(readings) for readings in by_device.values())
    fps = sum(m.throughput_fps for _, m in measured)
    energy = [m.energy for _, m in measured]
    return {
        "power": _metric([e.mean_power_w for e in energy], "W", total=power),
        "energy-per-frame": _metric([e.energy_per_frame_j for e in energy], "J", total=power / fps if fps else None),
        "frames-per-joule": _metric([e.frames_per_joule for e in energy], "frames/J",
                                    total=fps / power if power else None),
    }


def _ran(records: Sequence[StreamRecord]) -> list[StreamRecord]:
    return [r for r in records if r.measurements is not None and r.measurements.pairs]


def _span(record: StreamRecord) -> tuple[float, float]:
    """The timed window on a clock every host shares: monotonic + (wall clock - monotonic) at the start."""
    assert record.measurements is not None
    m = record.measurements
    return m.window[0] + m.clock_offset_s, m.window[1] + m.clock_offset_s


def overlap_of(records: Sequence[StreamRecord]) -> Overlap:
    """How long the streams' timed windows ran together (1.0: all started and ended together)."""
    spans = [_span(r) for r in _ran(records)]
    if not spans:
        return Overlap(0.0, None)
    start, end = max(s for s, _ in spans), min(e for _, e in spans)
    span = max(e for _, e in spans) - min(s for s, _ in spans)
    together = max(0.0, end - start)
    return Overlap(together, together / span if span > 0 else 1.0)


def frames_within(record: StreamRecord, start: float, end: float) -> int:
    """Frames the stream completed in [start, end] (shared clock), from its (seconds, frames done) checkpoints."""
    assert record.measurements is not None
    checkpoints = record.measurements.checkpoints
    t0 = _span(record)[0]
    times = [t0 + t for t, _ in checkpoints]
    done = [0] + [f for _, f in checkpoints]
    return done[bisect_right(times, end)] - done[bisect_right(times, start)]


def overlap_throughput(records: Sequence[StreamRecord]) -> Metric:
    """Frames per second counted only while every stream ran: per stream, the frames done inside the common
    window [latest start, earliest end] over its length; ``avg`` holds the sum, as for throughput."""
    ran = _ran(records)
    spans = [_span(r) for r in ran]
    start, end = (max(s for s, _ in spans), min(e for _, e in spans)) if spans else (0.0, 0.0)
    if end <= start or not all(r.measurements and r.measurements.checkpoints for r in ran):
        return _metric([], "frames/s")
    fps = [frames_within(r, start, end) / (end - start) for r in ran]
    return _metric(fps, "frames/s", total=sum(fps))


def _grouped(records: Sequence[StreamRecord], key: Callable[[StreamRecord], str | None]) -> dict[str, Share]:
    """Throughput summed and streams listed per key (records whose key is None are left out)."""
    out: dict[str, Share] = {}
    for r in records:
        k = key(r)
        if k is not None:
            entry = out.get(k, Share(0.0, ()))
            out[k] = dataclasses.replace(entry, throughput=entry.throughput + r.throughput_fps,
                                         streams=(*entry.streams, r.stream))
    return out


def per_device(records: Sequence[StreamRecord]) -> dict[str, Share]:
    """By device (``cuda:0``; ``host/cuda:0`` when the streams ran on several hosts), with its name."""
    several_hosts = len({r.host for r in records if r.device}) > 1

    def key(r: StreamRecord) -> str | None:
        return None if not r.device else f"{r.host}/{r.device}" if several_hosts else r.device

    return {k: dataclasses.replace(entry, device_name=next(
                (r.device_name for r in records if key(r) == k and r.device_name), None))
            for k, entry in _grouped(records, key).items()}


def per_host(records: Sequence[StreamRecord]) -> dict[str, Share]:
    """By host name, with the torchrun ranks that ran there."""
    out = _grouped(records, lambda r: r.host or "unknown")
    for r in records:
        if r.rank is not None:
            entry = out[r.host or "unknown"]
            out[r.host or "unknown"] = dataclasses.replace(entry, ranks=(*(entry.ranks or ()), r.rank))
    return out


def all_frames(records: Sequence[StreamRecord]) -> tuple[FrameScore, ...]:
    return tuple(f for r in records for f in r.quality_frames)


def quality_of(records: Sequence[StreamRecord], min_pass_pct: float) -> QualityOutcome | None:
    if not any(r.quality is not None for r in records):
        return None
    return QualityOutcome.of(all_frames(records), min_pass_pct)


def judge(records: Sequence[StreamRecord], interrupted: bool, noise: Sequence[str] = ()) -> tuple[str, list[str]]:
    """validity and the reasons it is invalid: ``invalid`` with reasons, else ``noisy`` where ``noise`` (the spread
    and load warnings) says the figures are not to be trusted as they stand, else ``valid``. A quality miss is
    not among them: such a run measured what it says, and failed (``quality_miss``)."""
    reasons = [r.error for r in records if r.error]
    reasons += [f"stream {r.stream}: {s}" for r in records if r.measurements for s in r.measurements.shortfalls]
    if interrupted:
        reasons.append("interrupted before the end")
    reasons += loadgen_reasons(records)
    if reasons:
        return "invalid", reasons
    return ("noisy" if noise else "valid"), reasons


def quality_miss(quality: QualityOutcome | None) -> str | None:
    """Why the frames failed the run, or None where they passed (or were not scored)."""
    if quality is None or quality.decision_pass:
        return None
    return f"quality below threshold: {quality.test_pass_pct:.2f}% of frames passed"


def loadgen_of(records: Sequence[StreamRecord]) -> LoadGenOutcome | None:
    return next((r.loadgen for r in records if r.loadgen is not None), None)


def loadgen_reasons(records: Sequence[StreamRecord]) -> list[str]:
    """LoadGen's INVALID (with its reasons) and a failed TEST01-style check make the run invalid too."""
    outcome = loadgen_of(records)
    if outcome is None:
        return []
    out = []
    if outcome.validity != "VALID":
        out.append(f"MLPerf LoadGen {outcome.scenario}: {outcome.validity} ({'; '.join(outcome.reasons)})")
    if outcome.audit_passed is False:
        out.append(f"TEST01-style check: {len(outcome.audit_mismatched)} of {outcome.audit_checked} sampled "
                   f"performance-mode outputs differ from accuracy mode")
    return out


def run_document(config: RunConfig | None, records: Sequence[StreamRecord], min_pass_pct: float,
                 interrupted: bool, keep_call_logs: bool = False) -> RunDocument:
    """The run's document (results.json), or with one record a stream's own (results_<n>.json, which keeps
    the stream's every call: ``keep_call_logs``; results.json leaves them to latencies.csv)."""
    from harness.measure import latency

    stats = latency.pooled(records)
    repeats = latency.repeat_stats(run_repeats(records))
    noise = latency.noise_warnings(stats) + latency.repeat_warnings(repeats) + latency.load_warnings(records)
    warnings = latency.sample_size_warnings(stats) + noise
    quality = quality_of(records, min_pass_pct)
    validity, reasons = judge(records, interrupted, noise)
    failed = bool(reasons) or quality_miss(quality) is not None
    status = RunStatus.INTERRUPTED if interrupted else (RunStatus.FAILED if failed else RunStatus.PASSED)
    warm = [r.warmup for r in records]
    results = RunResults(
        date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), tester=_tester(),
        metrics=metrics_of(records, quality is not None, stats, repeats), status=status, validity=validity,
        invalid_reasons=tuple(reasons), overlap=overlap_of(records), per_device=per_device(records),
        hosts=per_host(records), latency=stats, warnings=tuple(warnings), repeats=repeats,
        loadgen=loadgen_of(records),
    )
    return RunDocument(
        config=config or RunConfig(),
        warmup_metrics={"warmup-batches": _metric([w.calls if w else 0 for w in warm], "batches"),
                        "warmup-seconds": _metric([w.seconds if w else 0.0 for w in warm], "s")},
        quality=quality,
        quality_note=next((r.quality_note for r in records if r.quality_note), "performance mode: quality is not judged"),
        results=results, streams=tuple(records if keep_call_logs else (r.replace(call_log=None) for r in records)),
        quality_frames=all_frames(records),
    )


def stream_document(config: RunConfig | None, record: StreamRecord, min_pass_pct: float) -> RunDocument:
    """results_<n>.json: the stream's own document, judged as the stream saw its run."""
    return run_document(config, [record], min_pass_pct, record.status is StreamStatus.INTERRUPTED, keep_call_logs=True)


def read_document(path: Path) -> RunDocument | None:
    try:
        return RunDocument.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def record_from_file(path: Path) -> StreamRecord | None:
    """A stream's record from its results_<n>.json (None when the file is missing or is not a stream's document)."""
    doc = read_document(path)
    return doc.streams[0] if doc is not None and len(doc.streams) == 1 else None


def _tester() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class _ReferenceDumper(yaml.SafeDumper):
    """The reference's layout: the list one space in, each entry's keys under its first."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        step = 1 if isinstance(self.event, yaml.SequenceStartEvent) else 2
        self.indents.append(self.indent)
        self.indent = 0 if self.indent is None else self.indent + step


def yaml_text(doc: RunDocument) -> str:
    """results.yaml exactly in the reference's shape: throughput, latency and accuracy."""
    m = doc.results.metrics
    rows = [("throughput", m["throughput"].avg, "img/s"), ("latency", m["latency"].avg, "ms"),
            ("accuracy", m["accuracy"].avg, "percents")]
    entries = [{"key": k, "value": _round(v), "unit": u} for k, v, u in rows]
    return yaml.dump({"results": entries}, Dumper=_ReferenceDumper, sort_keys=False)


def _round(value: float | None) -> float:
    return 0.0 if value is None or not math.isfinite(value) else round(float(value), 2)


def write_run(results_json: Path, results_yaml: Path, doc: RunDocument) -> None:
    write_json(results_json, doc.to_json())
    write_atomic(results_yaml, yaml_text(doc))


def _avg(doc: RunDocument, name: str) -> float | None:
    metric = doc.results.metric(name)
    return metric.avg if metric is not None else None


def summary_text(doc: RunDocument, layout: OutputLayout) -> str:
    """The console summary printed at the end of a run."""
    r, several = doc.results, len(doc.streams) > 1
    lines = ["", "RIFE benchmark results:", *throughput_lines(doc), *loadgen_lines(r.loadgen)]
    overlap_fps = _avg(doc, "throughput-overlap")
    if several and overlap_fps is not None:
        lines.append(f"                   {overlap_fps:.2f} frames/s counted only while every stream ran")
    wall = _avg(doc, "latency")
    if wall is not None:
        lines.append(f"  latency          {wall:.2f} ms per frame (wall time / frames)")
    stats = r.latency
    if stats is not None:
        shown = [f"{k} {p.ms:.2f} ms" + ("" if p.established else "*") for k, p in stats.percentiles.items()
                 if p.ms is not None]
        lines.append(f"  per-call latency {', '.join(shown)}, max {stats.max_ms:.2f} ms")
        lines.append(f"                   ({stats.samples:,} calls of every stream pooled"
                     + ("; * not established, see the warnings)" if "*" in "".join(shown) else ")"))
    q = doc.quality
    if q is not None and q.test_count:
        lines.append(f"  quality          {q.test_pass}/{q.test_count} frames >= threshold ({q.test_pass_pct:.2f}%), "
                     f"PSNR mean {q.psnr_mean_db:.3f} dB, min {q.psnr_min_db:.3f} dB, SSIM mean {q.ssim_mean:.4f}")
    if "power" in r.metrics:
        lines.append(f"  power            {_avg(doc, 'power') or 0.0:.1f} W mean, "
                     f"{_avg(doc, 'energy-per-frame') or 0.0:.3f} J per frame, "
                     f"{_avg(doc, 'frames-per-joule') or 0.0:.2f} frames/J")
    else:
        reasons = sorted({s.telemetry["reason"] for s in doc.streams if s.telemetry and s.telemetry.get("reason")})
        if reasons:
            lines.append(f"  telemetry        {'; '.join(reasons)}")
    if several and r.overlap.fraction is not None:
        lines.append(f"  streams overlap  {r.overlap.seconds:.2f} s ({100 * r.overlap.fraction:.1f}% of the run)")
    lines.append(f"  status           {r.status.value} ({r.validity})")
    lines += [f"    - {reason}" for reason in (*r.invalid_reasons, quality_miss(doc.quality)) if reason]
    if r.warnings:
        lines.append("  warnings")
        lines += [f"    - {warning}" for warning in r.warnings]
    lines.append(f"  results          {layout.results_json}, {layout.results_yaml.name}, {layout.latencies_csv.name}, "
                 f"{layout.log.name}")
    if layout.report_html.is_file():
        lines.append(f"  report           {layout.report_html} (open it in a browser)")
    return "\n".join(lines)


def loadgen_lines(outcome: LoadGenOutcome | None) -> list[str]:
    """LoadGen's verdict and figures, next to ours."""
    if outcome is None:
        return []
    rate = f"{outcome.samples_per_s:.2f} samples/s" if outcome.samples_per_s is not None else "no rate"
    shown = ", ".join(f"{k} {v:.2f} ms" for k, v in outcome.percentiles_ms.items() if k in ("p50", "p90", "p99"))
    lines = [f"  MLPerf LoadGen   {outcome.scenario} {outcome.mode}: {outcome.validity}, {rate}"
             + (f", {shown}" if shown else "")]
    if outcome.scenario == "Server":
        lines.append(f"                   target {outcome.target_qps or 0:.2f} queries/s, scheduled "
                     f"{outcome.scheduled_per_s or 0:.2f}, latency bound {outcome.latency_bound_ms or 0:.2f} ms")
    lines += [f"                   - {reason}" for reason in outcome.reasons]
    if outcome.accuracy_samples:
        lines.append(f"                   accuracy log: {outcome.accuracy_samples} frames, PSNR mean "
                     f"{outcome.accuracy_psnr_db:.3f} dB, SSIM mean {outcome.accuracy_ssim:.4f}")
    if outcome.audit_checked:
        verdict = "passed" if outcome.audit_passed else f"FAILED ({len(outcome.audit_mismatched)} differ)"
        lines.append(f"                   TEST01-style check of {outcome.audit_checked} sampled outputs: {verdict}")
    if outcome.logs:
        lines.append(f"                   logs: {', '.join(outcome.logs)}")
    return lines


def throughput_lines(doc: RunDocument) -> list[str]:
    """What the run's rates count: generated frames, model calls, and the interpolated video's frames; with
    repeats, the median repeat with its range and interval."""
    r = doc.results
    what = "sum over streams" if len(doc.streams) > 1 else "generated frames"
    reps = r.repeats
    if reps is not None:
        what = f"median of {reps.count} repeats" + (", sum over streams" if len(doc.streams) > 1 else "")
    lines = [f"  throughput       {_avg(doc, 'throughput') or 0.0:.2f} frames/s ({what})"]
    if reps is not None:
        lo, hi = reps.interval_fps
        lines.append(f"                   range {reps.min_fps:.2f} to {reps.max_fps:.2f}, "
                     f"{100 * reps.confidence:.1f}% interval for the median {lo:.2f} to {hi:.2f}")
    calls, output = _avg(doc, "calls-per-s"), _avg(doc, "output-frames-per-s")
    if calls is not None and output is not None:
        lines.append(f"                   {calls:.2f} model calls/s; the interpolated video {output:.2f} frames/s "
                     f"(source frames with the generated ones)")
    return lines


def brief(name: str, doc: RunDocument | None) -> str:
    """One line per run, for tables of runs: throughput, per-call latency, status, quality and power."""
    if doc is None:
        return f"{name}: no results"
    q = doc.quality
    return (f"{name}: fps {_avg(doc, 'throughput') or 0.0:.1f}, p50 {_avg(doc, 'latency-per-call-p50') or 0.0:.2f} ms, "
            f"p99 {_avg(doc, 'latency-per-call-p99') or 0.0:.2f} ms, status {doc.results.status.value}"
            + (f", PSNR {q.psnr_mean_db:.3f} dB over {q.test_count}" if q is not None and q.test_count else "")
            + (f", {_avg(doc, 'power') or 0.0:.0f} W, {_avg(doc, 'frames-per-joule') or 0.0:.2f} frames/J"
               if "power" in doc.results.metrics else ""))


if __name__ == "__main__":  # python -m harness.results.document NAME RESULTS_JSON: the run's one line
    print(brief(sys.argv[1], read_document(Path(sys.argv[2]))))
