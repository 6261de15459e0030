"""report.html: one page per run, to read and to share.

Built from the run's files only (results.json, latencies.csv, telemetry_<n>.json, sheets/), so it can be
rebuilt at any time: ``python -m harness.results.report OUTPUT_DIR``. The figures (matplotlib, Agg) are embedded as
PNG data; the quality sheets are linked by paths relative to the page, so the folder can be copied anywhere.

Sections: the verdict and why; the figures that matter with their sample-size marks; the configuration and
the system; throughput over time; the latency histogram and CDF; each stream's timeline and their overlap;
telemetry over time; in quality mode the PSNR distribution and the worst frames' sheets first.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.measure import latency
from harness.results.document import write_atomic
from harness.results.pictures import relative_link, worst_first
from harness.results.records import RunDocument, RunStatus, StreamRecord

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

WORST_SHEETS = 24  # sheets shown on the page (worst first); index.html has them all
STYLE = """body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1100px;color:#222;padding:0 1em}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
.verdict{padding:.8em 1em;border-radius:6px;font-size:1.1em}.passed{background:#e3f4e3;border:1px solid #7b7}
.failed{background:#fbe3e3;border:1px solid #c77}.interrupted,.noisy{background:#fff3d6;border:1px solid #cb6}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;
vertical-align:top}th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%}figure{margin:1em 0}figcaption{color:#555;font-size:.9em}.warn{color:#a60}
code{background:#f4f4f4;padding:0 .2em}"""


# --- what the page reads ---------------------------------------------------------------------
def load_run(out_dir: Path) -> tuple[RunDocument, list[dict], dict[int, dict]]:
    """The run's document, its calls (latencies.csv) and each stream's telemetry samples."""
    doc = RunDocument.from_json(json.loads((out_dir / "results.json").read_text()))
    calls = latency.read_csv(out_dir / "latencies.csv") if (out_dir / "latencies.csv").is_file() else []
    telemetry = {}
    for s in doc.streams:
        path = out_dir / f"telemetry_{s.stream}.json"
        if path.is_file():
            try:
                telemetry[s.stream] = json.loads(path.read_text())
            except ValueError:  # a half-written file of a killed stream: the page goes without it
                pass
    return doc, calls, telemetry


# --- figures ------------------------------------------------------------------------------------
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Figure | None) -> str | None:
    """The figure as an <img> with its PNG embedded (None without a figure)."""
    if fig is None:
        return None
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    _pyplot().close(fig)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="figure">'


def _loop_starts(streams: Sequence[StreamRecord]) -> dict[int, float]:
    """Each stream's timed-loop start on the shared clock, relative to the earliest."""
    starts = {s.stream: s.measurements.window[0] + s.measurements.clock_offset_s
              for s in streams if s.measurements is not None and s.measurements.pairs}
    origin = min(starts.values(), default=0.0)
    return {k: v - origin for k, v in starts.items()}


def _count_axis(ax: Axes, label: str) -> None:
    """A y axis of counts (calls, frames): whole-number ticks only, never 2.5 frames."""
    from matplotlib.ticker import MaxNLocator

    ax.set_ylabel(label)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def throughput_figure(streams: Sequence[StreamRecord]) -> Figure | None:
    """Frames per second over time, per stream and summed, from each stream's (seconds, frames done) checkpoints."""
    import numpy as np

    starts = _loop_starts(streams)
    curves = {s.stream: (np.array([starts[s.stream] + t for t, _ in s.measurements.checkpoints]),
                         np.array([f for _, f in s.measurements.checkpoints], dtype=float))
              for s in streams if s.stream in starts and s.measurements and len(s.measurements.checkpoints) > 1}
    if not curves:
        return None
    end = max(t[-1] for t, _ in curves.values())
    edges = np.linspace(0.0, end, max(2, min(60, int(sum(len(t) for t, _ in curves.values()) / 4))) + 1)
    centres, width = (edges[:-1] + edges[1:]) / 2, edges[1] - edges[0]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 3.6), constrained_layout=True)
    total = np.zeros(len(centres))
    for stream, (t, done) in curves.items():
        frames = np.diff(np.interp(edges, t, done, left=0.0, right=done[-1]))
        rate = frames / width
        total += rate
        if len(curves) > 1:
            ax.plot(centres, rate, alpha=0.6, label=f"stream {stream}")
    ax.plot(centres, total, color="black", linewidth=2, label="all streams")
    ax.set_xlabel("seconds since the first stream's timed loop began")
    ax.set_ylabel("frames/s")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def latency_figure(calls: Sequence[dict]) -> Figure | None:
    """Histogram and CDF of the per-call latency, per stream and pooled, with the pooled percentiles marked."""
    import numpy as np

    if not calls:
        return None
    by_stream: dict[int, list[float]] = {}
    for c in calls:
        by_stream.setdefault(c["stream"], []).append(c["latency_ms"])
    pooled = np.sort(np.array([c["latency_ms"] for c in calls]))
    plt = _pyplot()
    fig, (hist, cdf) = plt.subplots(1, 2, figsize=(11, 3.8), constrained_layout=True)
    bins = np.histogram_bin_edges(pooled, bins=min(60, max(5, len(pooled) // 5)))
    several = len(by_stream) > 1
    for stream, values in sorted(by_stream.items()):
        label = f"stream {stream}" if several else "calls"
        hist.hist(values, bins=bins, alpha=0.55 if several else 0.9, label=label)
        if several:
            v = np.sort(values)
            cdf.plot(v, np.arange(1, len(v) + 1) / len(v), alpha=0.6, label=label)
    cdf.plot(pooled, np.arange(1, len(pooled) + 1) / len(pooled), color="black", linewidth=2, label="all streams")
    _mark_percentiles(cdf, pooled)
    hist.set_xlabel("latency per call (ms)")
    _count_axis(hist, "calls")
    hist.set_title("histogram")
    cdf.set_xlabel("latency per call (ms)")
    cdf.set_ylabel("share of calls at or below")
    cdf.set_title("CDF (dotted: percentile not established)")
    for ax in (hist, cdf):
        ax.grid(alpha=0.3)
    hist.legend(fontsize=8)
    cdf.legend(fontsize=8, loc="upper left")  # above a CDF's curve on the left; the percentiles' labels are low
    return fig


PERCENTILE_ROW_PT = 13  # the CDF's percentile labels: one row each, further apart than a line of 8-point text


def _mark_percentiles(ax: Axes, pooled: np.ndarray) -> None:
    """A line at each pooled percentile (dotted: not established), named with its value on a row of its own from
    the bottom up, so that close percentiles (p99 and p99.9 often are) never write over each other. A label
    stands right of its line, or left of it in the right half, where it would run off the axes. ``pooled``: sorted."""
    import numpy as np

    middle = (pooled[0] + pooled[-1]) / 2
    for row, (name, q) in enumerate(latency.PERCENTILES.items()):
        value = float(np.percentile(pooled, q))
        established = len(pooled) >= latency.samples_needed(q)
        ax.axvline(value, color="grey", linestyle="-" if established else ":", linewidth=0.8)
        leftwards = value > middle
        ax.annotate(f"{name} {value:.4g} ms", xy=(value, 0), xycoords=("data", "axes fraction"),
                    xytext=(-3 if leftwards else 3, 4 + PERCENTILE_ROW_PT * row), textcoords="offset points",
                    ha="right" if leftwards else "left", va="bottom", fontsize=8, color="dimgrey")


def _clear_of_the_edges(*axes: Axes) -> None:
    """A margin past the first and last points: a bar's left edge is sticky to matplotlib, which would put the
    axis limit on the first call's start and cut its marker in half."""
    for ax in axes:
        ax.use_sticky_edges = False
        ax.margins(x=0.03)


def timeline_figure(streams: Sequence[StreamRecord], calls: Sequence[dict]) -> Figure | None:
    """Each stream's timed window (bar) with its calls' latencies over time, and the window they all shared."""
    starts = _loop_starts(streams)
    spans = {s.stream: (starts[s.stream], starts[s.stream] + s.measurements.window[1] - s.measurements.window[0])
             for s in streams if s.stream in starts and s.measurements is not None}
    if not spans:
        return None
    plt = _pyplot()
    fig, (bars, dots) = plt.subplots(2, 1, figsize=(10, 1.6 + 0.5 * len(spans) + 2.6), sharex=True,
                                     constrained_layout=True, height_ratios=[0.6 + 0.4 * len(spans), 2.6])
    for row, (_, (a, b)) in enumerate(sorted(spans.items())):
        bars.barh(row, b - a, left=a, height=0.6, color=f"C{row % 10}")
    common = (max(a for a, _ in spans.values()), min(b for _, b in spans.values()))
    if common[1] > common[0]:
        for ax in (bars, dots):
            ax.axvspan(*common, color="green", alpha=0.12, label="every stream running")
    bars.set_yticks(range(len(spans)), [f"stream {k}" for k in sorted(spans)])
    bars.set_title("timed loops on a shared clock")
    for row, stream in enumerate(sorted(spans)):
        mine = [(c["start_s"], c["latency_ms"]) for c in calls if c["stream"] == stream]
        if mine:
            dots.plot(*zip(*mine, strict=True), ".", markersize=3, color=f"C{row % 10}", label=f"stream {stream}")
    dots.set_xlabel("seconds since the first stream's timed loop began")
    dots.set_ylabel("latency per call (ms)")
    dots.grid(alpha=0.3)
    if dots.has_data():
        dots.legend(fontsize=8)
    _clear_of_the_edges(bars, dots)
    return fig


TELEMETRY_SERIES = (("power_w", "power (W)"), ("sm_clock_mhz", "SM clock (MHz)"),
                    ("gpu_frequency_mhz", "GPU frequency (MHz)"), ("gpu_util_pct", "utilisation (%)"),
                    ("temperature_c", "temperature (°C)"), ("mem_used_mib", "memory used (MiB)"))


def telemetry_figure(telemetry: Mapping[int, dict]) -> Figure | None:
    """Every series the samplers read, one panel each, one line per stream."""
    series = [(key, label) for key, label in TELEMETRY_SERIES
              if any(s.get(key) is not None for t in telemetry.values() for s in t.get("samples") or ())]
    if not series:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(len(series), 1, figsize=(10, 1.9 * len(series) + 0.6), sharex=True,
                             constrained_layout=True, squeeze=False)
    for ax, (key, label) in zip(axes[:, 0], series, strict=True):
        for stream, t in sorted(telemetry.items()):
            points = [(s["t_s"], s[key]) for s in t.get("samples") or () if s.get(key) is not None]
            if points:
                ax.plot(*zip(*points, strict=True), label=f"stream {stream}")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    axes[-1, 0].set_xlabel("seconds since the stream's timed loop began")
    return fig


def psnr_figure(doc: RunDocument, threshold: float | None) -> Figure | None:
    import math

    values = [f.psnr for f in doc.quality_frames if math.isfinite(f.psnr)]
    if not values:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 3.2), constrained_layout=True)
    ax.hist(values, bins=min(50, max(5, len(values) // 3)), color="C0")
    if threshold is not None:
        ax.axvline(threshold, color="red", linestyle="--", label=f"threshold {threshold:g} dB")
        ax.legend()
    ax.set_xlabel("PSNR per frame (dB)")
    _count_axis(ax, "frames")
    ax.grid(alpha=0.3)
    return fig


# --- the page ---------------------------------------------------------------------------------
def _table(rows: Iterable[tuple[str, Any]], header: tuple[str, ...] = ()) -> str:
    head = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>" if header else ""
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_text(v))}</td></tr>" for k, v in rows)
    return f"<table>{head}{body}</table>"


def _text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value)
    return str(value)


def _metric(doc: RunDocument, name: str) -> float | None:
    metric = doc.results.metric(name)
    return metric.avg if metric is not None else None


def verdict_section(doc: RunDocument) -> str:
    r = doc.results
    why = [f"<li>{html.escape(reason)}</li>" for reason in r.invalid_reasons]
    if not why and r.status is RunStatus.PASSED:
        why = ["<li>every stream completed and met its minimums"
               + (", and enough frames reached the PSNR threshold" if doc.quality else "")
               + (", but the figures are noisy: the spread or the load below says why; run again on a quiet machine "
                  "or take more calls before citing them" if r.validity == "noisy" else "") + "</li>"]
    warnings = "".join(f'<li class="warn">{html.escape(w)}</li>' for w in r.warnings)
    look = "noisy" if r.status is RunStatus.PASSED and r.validity == "noisy" else r.status.value
    return (f'<div class="verdict {look}"><b>{r.status.value.upper()}</b> ({html.escape(r.validity)})'
            f"<ul>{''.join(why)}</ul></div>"
            + (f"<h3>Warnings</h3><ul>{warnings}</ul>" if warnings else ""))


def figures_section(doc: RunDocument) -> str:
    reps = doc.results.repeats
    what = "sum over streams" + (f", median of {reps.count} repeats" if reps is not None else "")
    rows: list[tuple[str, Any]] = [(f"throughput, generated frames/s ({what})", _metric(doc, "throughput"))]
    if reps is not None:
        lo, hi = reps.interval_fps
        rows += [("repeats' range (frames/s)", f"{reps.min_fps:.4g} to {reps.max_fps:.4g}"),
                 (f"{100 * reps.confidence:.1f}% interval for the median (frames/s)", f"{lo:.4g} to {hi:.4g}")]
    rows += [("model calls/s", _metric(doc, "calls-per-s")),
             ("interpolated video, output frames/s (source and generated)", _metric(doc, "output-frames-per-s"))]
    if len(doc.streams) > 1:
        rows.append(("throughput while every stream ran (frames/s)", _metric(doc, "throughput-overlap")))
    rows.append(("latency, wall time / frames (ms)", _metric(doc, "latency")))
    stats = doc.results.latency
    if stats is not None:
        for name, p in stats.percentiles.items():
            mark = "" if p.established else f" (not established: {stats.samples:,} of {p.samples_needed:,} calls)"
            rows.append((f"latency per call {name} (ms){mark}", p.ms))
        rows.append(("latency per call max (ms)", stats.max_ms))
        rows.append(("calls, every stream pooled", stats.samples))
    for name, label in (("power", "power (W)"), ("energy-per-frame", "energy per frame (J)"),
                        ("frames-per-joule", "frames/J")):
        if doc.results.metric(name) is not None:
            rows.append((label, _metric(doc, name)))
    q = doc.quality
    if q is not None:
        rows += [("frames at or above the threshold (%)", q.test_pass_pct), ("PSNR mean (dB)", q.psnr_mean_db),
                 ("PSNR min (dB)", q.psnr_min_db), ("SSIM mean", q.ssim_mean)]
    return _table(rows)


def config_section(doc: RunDocument) -> str:
    cfg = doc.config
    model, dataset, system = cfg.model.to_json(), cfg.dataset, cfg.system
    harness = cfg.harness.get("harness") or {}
    keys = ("variant", "implementation", "execution", "precision", "batch-size", "streams", "device", "device_name",
            "interpolation", "scale", "ensemble", "weights", "input_pool", "transfers", "framework")
    run = [(k, model.get(k)) for k in keys if k in model]
    run += [("frame size", f"{dataset.get('width')}x{dataset.get('height')}" if dataset else None)]
    machine = [(k, system.get(k)) for k in ("hostname", "cpu", "cpu_count", "device_name", "gpu_driver", "os")]
    machine += [(f"{k} version", v) for k, v in (system.get("frameworks") or {}).items()]
    machine += [("harness", f"{harness.get('version')} {harness.get('git_commit') or ''}"
                 + (" (changed)" if harness.get("git_dirty") else ""))]
    command = " ".join(cfg.command_line)
    return (f"<h3>Run</h3>{_table(run)}<h3>System</h3>{_table(machine)}"
            + (f"<h3>Command</h3><p><code>{html.escape(command)}</code></p>" if command else ""))


def streams_section(doc: RunDocument) -> str:
    header = ("stream", "status", "device", "pairs", "frames/s", "p50 ms", "p99 ms", "max ms", "error")
    rows = []
    for s in doc.streams:
        m = s.measurements
        lat = m.latency_ms if m else None
        cells = (s.stream, s.status.value, s.device, m.pairs if m else None, m.throughput_fps if m else None,
                 lat.percentile("p50") if lat else None, lat.percentile("p99") if lat else None,
                 lat.max_ms if lat else None, s.error)
        rows.append("<tr>" + "".join(f"<td>{html.escape(_text(c))}</td>" for c in cells) + "</tr>")
    overlap = doc.results.overlap
    text = (f"<p>The timed loops ran together for {overlap.seconds:.2f} s "
            f"({100 * overlap.fraction:.1f}% of the run).</p>" if overlap.fraction is not None else "")
    return "<table><tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr>" + "".join(rows) + "</table>" + text


def sheets_section(doc: RunDocument, out_dir: Path) -> str:
    sheets = worst_first(sh for s in doc.streams for sh in s.sheets)
    if not sheets:
        return "<p>No comparison sheets: every frame reached the threshold.</p>"
    shown = "".join(
        f"<figure><figcaption>{html.escape(sh.name)} — PSNR {sh.psnr:.2f} dB, SSIM {sh.ssim:.4f}</figcaption>"
        f'<img src="{relative_link(out_dir, sh.sheet)}" alt="{html.escape(sh.name, quote=True)}"></figure>'
        for sh in sheets[:WORST_SHEETS])
    more = (f'<p>{len(sheets) - WORST_SHEETS} more in <a href="index.html">index.html</a>.</p>'
            if len(sheets) > WORST_SHEETS else "")
    return f"<p>The {min(len(sheets), WORST_SHEETS)} worst frames first.</p>{shown}{more}"


def _figure(title: str, fig: Figure | None, caption: str, missing: str) -> str:
    img = _png(fig)
    if img is None:
        return f"<h2>{title}</h2><p>{missing}</p>"
    return f"<h2>{title}</h2><figure>{img}<figcaption>{caption}</figcaption></figure>"


def loadgen_section(doc: RunDocument) -> str:
    """MLPerf LoadGen's verdict and figures next to ours (a LoadGen scenario's run only)."""
    o = doc.results.loadgen
    if o is None:
        return ""
    rows: list[tuple[str, Any]] = [("scenario, mode", f"{o.scenario}, {o.mode}"), ("LoadGen's verdict", o.validity),
                                   ("its reasons", o.reasons or None), ("samples/s", o.samples_per_s)]
    if o.scenario == "Server":
        rows += [("target queries/s", o.target_qps), ("scheduled queries/s", o.scheduled_per_s),
                 ("latency bound (ms)", o.latency_bound_ms)]
    rows += [(f"latency {name} (ms, LoadGen)", ms) for name, ms in o.percentiles_ms.items()]
    rows += [("queries", o.queries), ("samples per query", o.samples_per_query),
             ("early stopping", o.early_stopping or None)]
    if o.accuracy_samples:
        rows += [("accuracy log: frames scored", o.accuracy_samples), ("accuracy log: PSNR mean (dB)", o.accuracy_psnr_db),
                 ("accuracy log: SSIM mean", o.accuracy_ssim)]
    if o.audit_checked:
        rows.append(("TEST01-style check", f"{o.audit_checked} sampled outputs, "
                     + ("all equal to accuracy mode" if o.audit_passed else f"{len(o.audit_mismatched)} differ")))
    links = " · ".join(f'<a href="{html.escape(p)}">{html.escape(p)}</a>' for p in o.logs)
    return f"<h2>MLPerf LoadGen</h2>{_table(rows)}" + (f"<p>LoadGen's logs: {links}</p>" if links else "")


def page(doc: RunDocument, calls: Sequence[dict], telemetry: Mapping[int, dict], out_dir: Path) -> str:
    options = doc.config.options
    threshold = options.get("psnr_threshold")
    mode = "performance" if options.get("dummy") else "quality"
    parts = [
        f"<h1>RIFE benchmark report</h1><p>{html.escape(doc.results.date)} · {mode} mode · "
        f"{len(doc.streams)} stream{'s' if len(doc.streams) != 1 else ''}</p>",
        verdict_section(doc),
        "<h2>Figures</h2>", figures_section(doc), loadgen_section(doc),
        "<h2>Configuration and system</h2>", config_section(doc),
        _figure("Throughput over time", throughput_figure(doc.streams),
                "Frames completed per second, from each stream's progress after every call.",
                "No stream completed a timed call."),
        _figure("Latency per call", latency_figure(calls),
                "Every timed call of every stream (latencies.csv).", "No calls were recorded (no latencies.csv)."),
        "<h2>Streams</h2>", streams_section(doc),
        _figure("Timelines and overlap", timeline_figure(doc.streams, calls),
                "Top: each stream's timed loop; green: the window every stream ran in. Bottom: each call's latency "
                "at the time it was issued.", "No timed loop ran."),
        _figure("Telemetry", telemetry_figure(telemetry), "Sampled during each stream's timed loop "
                "(telemetry_<n>.json).", "No telemetry on this platform: "
                + html.escape("; ".join(sorted({str((s.telemetry or {}).get("reason")) for s in doc.streams
                                                 if (s.telemetry or {}).get("reason")})) or "none was recorded")),
    ]
    if doc.quality is not None:
        parts += [_figure("Quality: PSNR per frame", psnr_figure(doc, threshold),
                          f"{doc.quality.test_count} frames judged.", "No frame was scored."),
                  "<h2>Frames under the threshold</h2>", sheets_section(doc, out_dir)]
    body = "\n".join(parts)
    return (f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>RIFE benchmark report: {doc.results.status.value}</title>\n<style>{STYLE}</style>\n</head>\n"
            f"<body>\n{body}\n</body>\n</html>\n")


def write_report(out_dir: Path) -> Path:
    """``out_dir/report.html`` from the run's files."""
    doc, calls, telemetry = load_run(out_dir)
    path = out_dir / "report.html"
    write_atomic(path, page(doc, calls, telemetry, out_dir))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.results.report", description="Rebuild a run's report.html.")
    parser.add_argument("output_dir", type=Path, help="the run's OUTPUT_DIR (with results.json)")
    args = parser.parse_args(argv)
    if not (args.output_dir / "results.json").is_file():
        print(f"error: {args.output_dir} has no results.json: give a run's output folder", file=sys.stderr)
        return 2
    print(write_report(args.output_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
