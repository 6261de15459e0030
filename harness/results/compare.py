"""Runs side by side: each figure of each run with its ratio to the first run (hyperfine's "relative"; PSNR as a
difference in dB, since a ratio of logarithms means nothing), and a warning where the runs' configurations differ
in more than the values being compared. A ratio of timed figures that lies within the runs' spread (the per-call
latency's interquartile range over its median, or with ``--repeat`` the repeats' throughput range over their
median, the wider of the two runs) is marked "within noise": such a
difference cannot be told from the runs' own fluctuation. Each run's own warnings (spread, load, sample size) are
carried over.

    python compare.py A B ... [--swept NAME,NAME] [--csv FILE]

A and B are run folders (with results.json), results.json files or benchmark.sh output folders. A benchmark
folder stands for its rows in order (``test_<i>/``), each named by its model_name cell where those tell the rows
apart, else by ``test_<i>`` and its swept values; a row without results.json is left out with a note that gives
its exit code. ``--swept`` names the settings the runs are meant to differ in (option names or their variables:
``streams``, ``PRECISION``); without it, the profile columns a benchmark folder's rows differ in, else a single
differing option. Any other difference (another option, the machine, the driver, the frameworks, the weights,
the harness's commit) is a warning. Errors are one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.options import OPTIONS
from harness.results import summary
from harness.results.records import RunDocument

# (key, label, unit, higher is better)
FIGURES = (
    ("throughput", "throughput", "frames/s", True),
    ("calls-per-s", "model calls", "calls/s", True),
    ("output-frames-per-s", "interpolated video, output frames", "frames/s", True),
    ("throughput-overlap", "throughput while all streams ran", "frames/s", True),
    ("latency", "latency, wall time / frames", "ms", False),
    ("p50", "latency per call p50", "ms", False),
    ("p90", "latency per call p90", "ms", False),
    ("p95", "latency per call p95", "ms", False),
    ("p99", "latency per call p99", "ms", False),
    ("p99.9", "latency per call p99.9", "ms", False),
    ("max", "latency per call max", "ms", False),
    ("power", "power", "W", False),
    ("energy-per-frame", "energy per frame", "J", False),
    ("frames-per-joule", "frames per joule", "frames/J", True),
    ("accuracy", "frames at or above the PSNR threshold", "%", True),
    ("psnr", "PSNR mean", "dB", True),
)
IGNORED_OPTIONS = {"output_dir", "socket", "timing_lock", "repeat"}  # where and how often, not what was measured
TIMED_UNITS = {"frames/s", "calls/s", "ms"}  # the figures the latency spread bears on
SYSTEM_KEYS = ("hostname", "cpu", "device_name", "gpu_driver")


class CompareError(Exception):
    """A run that cannot be read; the message is the one line shown."""


@dataclass(frozen=True)
class Run:
    name: str
    doc: RunDocument

    def figure(self, key: str) -> tuple[float | None, bool]:
        """The value and whether it is established (percentiles by the sample-size rule; the rest always)."""
        stats = self.doc.results.latency
        if stats is not None and key in stats.percentiles:
            p = stats.percentiles[key]
            return p.ms, p.established
        if key == "max":
            return (stats.max_ms if stats else self._metric("latency-per-call-max")), True
        if key in ("p50", "p90", "p95", "p99", "p99.9"):  # results written before pooled percentiles
            return self._metric(f"latency-per-call-{key}"), True
        if key == "psnr":
            return (self.doc.quality.psnr_mean_db if self.doc.quality else None), True
        if key == "accuracy":
            metric = self.doc.results.metric("accuracy")
            return (metric.avg if metric and metric.applicable is not False else None), True
        return self._metric(key), True

    def spread(self) -> float | None:
        """How much this run fluctuated: the per-call latency's interquartile range over its median, or with
        ``--repeat`` the repeats' throughput range over their median, whichever is wider."""
        stats, repeats = self.doc.results.latency, self.doc.results.repeats
        spreads = [stats.iqr_over_median if stats is not None else None, repeats.spread if repeats else None]
        known = [v for v in spreads if v is not None]
        return max(known) if known else None

    def describe(self) -> str:
        """The run's verdict, and its repeats."""
        r = self.doc.results
        repeats = f", median of {r.repeats.count} repeats" if r.repeats is not None else ""
        return f"{self.name} {r.status.value} ({r.validity}{repeats})"

    def _metric(self, name: str) -> float | None:
        metric = self.doc.results.metric(name)
        return metric.avg if metric is not None else None

    def settings(self) -> dict[str, Any]:
        """What the run was: its options, and the machine and software it ran on."""
        cfg = self.doc.config
        system = cfg.system
        out = {k: v for k, v in cfg.options.items() if k not in IGNORED_OPTIONS}
        out.update({f"system.{k}": system.get(k) for k in SYSTEM_KEYS})
        out.update({f"system.{k}": v for k, v in (system.get("frameworks") or {}).items()})
        out["weights_sha256"] = cfg.model.weights_sha256
        out["data content_hash"] = cfg.dataset.get("content_hash")
        out["harness commit"] = cfg.git_commit
        return out


def load(path: Path, name: str | None = None) -> Run:
    """A run from its folder or its results.json; named by the folder (or the file) unless ``name`` is given."""
    file = path / "results.json" if path.is_dir() else path
    try:
        raw = json.loads(file.read_text())
    except OSError as e:
        raise CompareError(f"{path}: no results.json there ({e.strerror}); give run folders, results.json files or "
                           "benchmark.sh output folders") from None
    except ValueError as e:
        raise CompareError(f"{file} is not a results file: {e}") from None
    if not isinstance(raw, dict) or "results" not in raw:
        raise CompareError(f"{file} is not a results file: it has no results")
    name = name or (file.parent.name if file.name == "results.json" else file.stem)
    return Run(name or str(path), RunDocument.from_json(raw))


# --- benchmark.sh output folders ---------------------------------------------------------
@dataclass(frozen=True)
class Sweep:
    """What a benchmark.sh output folder holds: the rows that produced results, a note for each that did not,
    and the profile columns the rows differ in."""

    runs: list[Run]
    notes: list[str]
    swept_columns: list[str]


def is_sweep(path: Path) -> bool:
    return path.is_dir() and not (path / "results.json").exists() and bool(summary.test_dirs(path))


def read_sweep(folder: Path) -> Sweep:
    try:
        rows = summary.row_folders(folder)
    except summary.ProfileError as e:
        raise CompareError(f"{e} (a benchmark.sh output folder has test_<i>/row.csv for every row)") from None
    columns = [c for c in summary.varying(list(rows[0].cells), [row.cells for row in rows])
               if c.lower() not in summary.LABELS]
    runs, notes = [], []
    for row, name in zip(rows, row_names(rows, columns), strict=True):
        try:
            runs.append(load_row(row, name))
        except CompareError as e:
            notes.append(f"{name} left out: {e} ({f'exit code {row.exit_code}' if row.exit_code else 'not run'})")
    return Sweep(runs, notes, columns)


def row_names(rows: Sequence[summary.RowFolder], swept_columns: Sequence[str]) -> list[str]:
    """Each row's name: its model_name cell where those tell every row apart, else test_<i> and its swept values."""
    labels = [row.label for row in rows]
    if all(labels) and len(set(labels)) == len(labels):
        return labels
    return [" ".join([row.name, *(f"{c}={row.cells.get(c) or 'default'}" for c in swept_columns)]) for row in rows]


def load_row(row: summary.RowFolder, name: str) -> Run:
    results = row.folder / "results.json"
    if not results.is_file() or results.stat().st_size == 0:  # benchmark.sh's test of a row that produced results
        raise CompareError("no results.json")
    return load(row.folder, name)


def gather(paths: Sequence[Path]) -> tuple[list[Run], list[str], list[str]]:
    """The runs of every argument in order (a benchmark folder's rows in its place), the notes on rows left out,
    and the profile columns the benchmark folders swept."""
    runs: list[tuple[Run, str]] = []  # with where it came from: the name of each run where two share a name
    notes: list[str] = []
    columns: list[str] = []
    for path in paths:
        if is_sweep(path):
            sweep = read_sweep(path)
            runs += [(run, f"{path}/{run.name}") for run in sweep.runs]
            notes += sweep.notes
            columns += [c for c in sweep.swept_columns if c not in columns]
        else:
            runs.append((load(path), str(path)))
    if len({run.name for run, _ in runs}) < len(runs):
        return [replace(run, name=where) for run, where in runs], notes, columns
    return [run for run, _ in runs], notes, columns


def option_names(names: Sequence[str]) -> set[str]:
    """Option names from option names or their variables (``streams``, ``STREAMS``, ``load_path``)."""
    by_env = {env.lower(): opt.dest for opt in OPTIONS for env in opt.env}
    return {by_env.get(n.strip().lower(), n.strip().lower()) for n in names if n.strip()}


def differences(runs: Sequence[Run]) -> dict[str, list[Any]]:
    settings = [r.settings() for r in runs]
    keys = sorted({k for s in settings for k in s})
    return {k: [s.get(k) for s in settings] for k in keys if len({json.dumps(s.get(k), sort_keys=True)
                                                                   for s in settings}) > 1}


def warnings_of(runs: Sequence[Run], swept: set[str] | None) -> list[str]:
    differ = differences(runs)
    options = [k for k in differ if "." not in k and " " not in k and k != "weights_sha256"]
    if swept is None:
        swept = set(options[:1]) if len(options) == 1 else set()
    out = []
    for key, values in differ.items():
        if key not in swept:
            shown = " | ".join("—" if v is None else str(v) for v in values)
            out.append(f"the runs differ in {key}, which is not a swept value: {shown}")
    return out


def ratio(value: float | None, first: float | None) -> float | None:
    return value / first if value is not None and first else None


def relative(value: float | None, first: float | None, unit: str) -> float | None:
    """The ratio to the first run's value; for dB, the difference."""
    if unit == "dB":
        return value - first if value is not None and first is not None else None
    return ratio(value, first)


def within_noise(rel: float | None, unit: str, spreads: Sequence[float | None]) -> bool | None:
    """Whether a ratio of timed figures lies within the wider spread of the two runs (None: not a timed figure, or
    a spread unknown)."""
    if unit not in TIMED_UNITS or rel is None or any(s is None for s in spreads):
        return None
    return abs(rel - 1.0) <= max(s for s in spreads if s is not None)


def table(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """One line per figure any run has: each run's value, whether established, its ratio to the first (the
    difference for dB) and whether that lies within the two runs' noise."""
    lines = []
    first_spread = runs[0].spread()
    for key, label, unit, higher in FIGURES:
        values = [r.figure(key) for r in runs]
        if all(v is None for v, _ in values):
            continue
        first = values[0][0]
        rows = []
        for run, (v, ok) in zip(runs, values, strict=True):
            rel = relative(v, first, unit)
            rows.append((v, ok, rel, within_noise(rel, unit, (first_spread, run.spread()))))
        lines.append({"figure": label, "unit": unit, "better": "higher" if higher else "lower",
                      "relative": "difference" if unit == "dB" else "ratio", "values": rows})
    return lines


def render(runs: Sequence[Run], lines: Sequence[dict], warnings: Sequence[str]) -> str:
    head = ["figure", *[r.name for r in runs]]
    rows = [head]
    for line in lines:
        cells = [f"{line['figure']} ({line['unit']}, {line['better']} is better)"]
        for k, (value, established, rel, noise) in enumerate(line["values"]):
            text = "—" if value is None else f"{value:,.4g}" + ("" if established else "*")
            if k and rel is not None:
                shown = f"{rel:+.2f} dB" if line["relative"] == "difference" else f"{rel:.2f}x"
                text += f" ({shown}{', within noise' if noise else ''})"
            cells.append(text)
        rows.append(cells)
    widths = [max(len(row[c]) for row in rows) for c in range(len(head))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    out.append(f"(ratios to {runs[0].name}; PSNR as a difference in dB; within noise: the ratio lies within the "
               "wider spread of the two runs (per-call latency IQR / median, or the repeats' range / median); "
               "* not established: too few calls for that percentile)")
    status = ", ".join(r.describe() for r in runs)
    out.append(f"status: {status}")
    out += [f"warning: {w}" for w in warnings]
    out += [f"warning: {r.name}: {w}" for r in runs for w in r.doc.results.warnings]
    return "\n".join(out)


def write_csv(path: Path, runs: Sequence[Run], lines: Sequence[dict]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(("figure", "unit", "run", "value", "established", "relative", "relative_is",
                         "within_noise"))
        for line in lines:
            for run, (value, established, rel, noise) in zip(runs, line["values"], strict=True):
                writer.writerow((line["figure"], line["unit"], run.name, "" if value is None else f"{value:.6g}",
                                 established, "" if rel is None else f"{rel:.4f}", line["relative"],
                                 "" if noise is None else noise))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="compare.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="a run folder or its results.json, or a "
                        "benchmark.sh output folder (its rows)")
    parser.add_argument("--swept", metavar="NAMES", help="the settings the runs are meant to differ in, "
                        "comma-separated (option names or variables); default: the profile columns a benchmark "
                        "folder's rows differ in, else the one option that differs")
    parser.add_argument("--csv", type=Path, metavar="FILE", help="also write the table as CSV (one line per "
                        "figure and run)")
    args = parser.parse_args(argv)
    try:
        runs, notes, swept_columns = gather(args.runs)
    except CompareError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"note: {note}")
    if not runs:
        print("error: nothing to compare: no row produced a results.json; see each row's output.log, fix the cause "
              "and run benchmark.sh again", file=sys.stderr)
        return 2
    swept = args.swept.split(",") if args.swept else swept_columns
    lines = table(runs)
    print(render(runs, lines, warnings_of(runs, option_names(swept) if swept else None)))
    if args.csv:
        write_csv(args.csv, runs, lines)
    return 0
