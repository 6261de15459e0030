"""benchmark.sh's Python side: CSV profiles in, summary.csv and summary.png out.

A profile is a CSV file whose header names run variables: a column's name upper-cased is the variable
run_model.sh reads (``num_inputs`` -> NUM_INPUTS, ``data_height`` -> DATA_HEIGHT); ``model_name`` is a
label only; an empty cell leaves the variable to the environment or its default. Every row is one run in
``OUTPUT_DIR/test_<i>/`` (1-based), which holds ``row.csv`` (the header and that row), the run's files
and ``exit_code`` (written by benchmark.sh).

    python -m harness.results.summary OUTPUT_DIR                    summary.csv and summary.png of the rows run
    python -m harness.results.summary --check PROFILE               check the profile; print its number of rows
    python -m harness.results.summary --prepare PROFILE OUTPUT_DIR  write OUTPUT_DIR/test_<i>/row.csv for every row
    python -m harness.results.summary --variables ROW_CSV [--inherit]
                                                            the row's NAME=value lines (--inherit: with the
                                                            run variables of this environment, for a container)

Errors are one line on stderr, exit 2. Power and frames per joule come from results.json's
``results.metrics`` ``power`` / ``frames-per-joule`` when the run measured them (else empty). The p50 and p99
cells are empty where results.json says the percentile is not established (too few calls). The spread: the
per-call latency's interquartile range over its median (``latency_iqr_pct``) and, for a run measured ``--repeat
N`` times, N and the lowest and highest throughput of the repeats.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.options import OPTIONS
from harness.results.document import read_document
from harness.results.records import Metric, RunDocument, RunResults

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LABELS = ("model_name",)
SET_BY_BENCHMARK = ("OUTPUT_DIR",)  # each row's folder
STOPPED_CODES = ("129", "130", "143")  # a run stopped by SIGHUP, SIGINT or SIGTERM
KNOWN_VARIABLES = frozenset(name for opt in OPTIONS for name in opt.env) | {"GET_MODEL"}
# New columns go at the end: users' scripts read these by position too.
RESULT_FIELDS = ("throughput_frames_per_s", "latency_ms", "latency_p50_ms", "latency_p99_ms", "accuracy_pct", "power_w",
                 "frames_per_joule", "validity", "status", "exit_code", "reason", "latency_iqr_pct", "repeats",
                 "throughput_min", "throughput_max")
METRICS = {"throughput_frames_per_s": "throughput", "latency_ms": "latency", "power_w": "power",
           "frames_per_joule": "frames-per-joule"}
PERCENTILES = {"latency_p50_ms": "p50", "latency_p99_ms": "p99"}


class ProfileError(Exception):
    """A profile that cannot run; the message is the one line shown."""


# --- profiles -------------------------------------------------------------------------
def read_profile(path: Path) -> tuple[list[str], list[list[str]]]:
    """The header and the rows, checked: known columns, one value per column, at least one row."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:  # a byte-order mark is no part of the header
            lines = [(n, [cell.strip() for cell in row]) for n, row in enumerate(csv.reader(f), 1) if any(row)]
    except OSError as e:
        raise ProfileError(f"profile {path}: {e.strerror or e}") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise ProfileError(f"profile {path} is not a readable CSV file: {e}") from None
    if not lines:
        raise ProfileError(f"profile {path} is empty: it needs a header and one row per run")
    header = lines[0][1]
    check_columns(path, header)
    rows = []
    for n, cells in lines[1:]:
        if len(cells) != len(header):
            raise ProfileError(f"profile {path} line {n} has {len(cells)} values for {len(header)} columns")
        if any("\n" in cell for cell in cells):
            raise ProfileError(f"profile {path} line {n}: a value spans lines")
        rows.append(cells)
    if not rows:
        raise ProfileError(f"profile {path} has a header and no rows: nothing to run")
    return header, rows


def shown(text: str) -> str:
    """``text`` as is, or escaped (quoted, \\ufeff) when it holds characters that do not show."""
    return text if text.isprintable() else ascii(text)


def check_columns(path: Path, header: list[str]) -> None:
    seen: set[str] = set()
    for name in header:
        variable = name.upper()
        if not name:
            raise ProfileError(f"profile {path}: the header has an empty column name")
        if variable in seen:
            raise ProfileError(f"profile {path}: column {shown(name)} appears twice")
        seen.add(variable)
        if variable in SET_BY_BENCHMARK:
            raise ProfileError(f"profile {path}: column {name} cannot be set per row: benchmark.sh gives every row "
                               "its own OUTPUT_DIR/test_<i>/")
        if name.lower() not in LABELS and variable not in KNOWN_VARIABLES:
            raise ProfileError(f"profile {path}: column {shown(name)} is not a run variable ({shown(variable)} is "
                               f"unknown); "
                               f"columns are {', '.join(LABELS)} or lower-case run variables: "
                               + ", ".join(sorted(v.lower() for v in KNOWN_VARIABLES - set(SET_BY_BENCHMARK))))


def prepare(profile: Path, out_dir: Path) -> int:
    """``test_<i>/row.csv`` for every row; the number of rows."""
    header, rows = read_profile(profile)
    for i, row in enumerate(rows, 1):
        folder = out_dir / f"test_{i}"
        folder.mkdir(parents=True, exist_ok=True)
        write_csv(folder / "row.csv", header, [dict(zip(header, row, strict=True))])
    return len(rows)


def read_row(path: Path) -> dict[str, str]:
    header, rows = read_profile(path)
    return dict(zip(header, rows[0], strict=True))


def row_variables(row: Mapping[str, str], environ: Mapping[str, str], inherit: bool = False) -> dict[str, str]:
    """The variables a row runs with: its own non-empty cells, over this environment's run variables when
    ``inherit`` (a container sees nothing else). Performance mode (DUMMY=yes) unless DUMMY or DATASET_DIR is set."""
    own = {name.upper(): value for name, value in row.items() if name.lower() not in LABELS and value != ""}
    inherited = {k: v for k, v in environ.items() if k in KNOWN_VARIABLES and k not in SET_BY_BENCHMARK}
    out = {**(inherited if inherit else {}), **own}
    if not {"DUMMY", "DATASET_DIR"} & (set(own) | set(environ)):
        out["DUMMY"] = "yes"
    return out


# --- a benchmark's output folder --------------------------------------------------------
@dataclass(frozen=True)
class RowFolder:
    """``test_<i>/``: one row's run, with the row's cells (the profile's header and that row)."""

    folder: Path
    cells: dict[str, str]

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def exit_code(self) -> str:
        """run_model.sh's exit status as benchmark.sh wrote it; empty where the row has not run."""
        return _read_text(self.folder / "exit_code")

    @property
    def label(self) -> str:
        """The row's model_name cell (empty where there is none)."""
        return next((value for name, value in self.cells.items() if name.lower() in LABELS), "")


def test_dirs(out_dir: Path) -> list[Path]:
    found = [p for p in out_dir.glob("test_*") if p.is_dir() and p.name[5:].isdigit()]
    return sorted(found, key=lambda p: int(p.name[5:]))


def row_folders(out_dir: Path) -> list[RowFolder]:
    """Every row's folder, in the profile's order."""
    folders = test_dirs(out_dir)
    if not folders:
        raise ProfileError(f"{out_dir} has no test_<i>/ folders: run benchmark.sh first")
    return [RowFolder(folder, read_row(folder / "row.csv")) for folder in folders]


def varying(columns: Sequence[str], lines: Sequence[Mapping[str, str]]) -> list[str]:
    """The columns whose values differ from line to line."""
    return [c for c in columns if len({line.get(c, "") for line in lines}) > 1]


# --- the summary ----------------------------------------------------------------------
def summarize(out_dir: Path) -> tuple[list[str], list[dict]]:
    """The summary's columns and one line per row folder."""
    rows = row_folders(out_dir)
    lines = [{"row": row.name[5:], **row.cells, **row_results(row)} for row in rows]
    return ["row", *rows[0].cells, *RESULT_FIELDS], lines


def row_results(row: RowFolder) -> dict[str, str]:
    folder, exit_code = row.folder, row.exit_code
    doc = read_document(folder / "results.json")
    if doc is None:
        status = "not run" if exit_code == "" else "interrupted" if exit_code in STOPPED_CODES else "failed"
        reason = "" if exit_code == "" else _error_line(folder) or f"no results.json (exit code {exit_code})"
        return {**dict.fromkeys(RESULT_FIELDS, ""), "status": status, "exit_code": exit_code, "reason": reason}
    results = doc.results
    out = {field: _number(_avg(results.metric(key))) for field, key in METRICS.items()}
    out.update(percentile_cells(results))
    out.update(spread_cells(results))
    accuracy = results.metric("accuracy")
    out["accuracy_pct"] = _number(_avg(accuracy)) if accuracy is None or accuracy.applicable is not False else ""
    status = results.status.value
    if exit_code not in ("", "0") and status == "passed":
        status = "failed"
    reasons = results.invalid_reasons
    reason = "" if status == "passed" else (reasons[0] if reasons else _error_line(folder) or f"exit code {exit_code}")
    return {**out, "validity": results.validity, "status": status, "exit_code": exit_code, "reason": reason}


def percentile_cells(results: RunResults) -> dict[str, str]:
    """p50 and p99 per call; empty where the run saw too few calls to establish them."""
    out = {}
    for field, name in PERCENTILES.items():
        percentile = results.latency.percentiles.get(name) if results.latency else None
        established = percentile is None or percentile.established  # older results.json files do not say
        out[field] = _number(_avg(results.metric(f"latency-per-call-{name}"))) if established else ""
    return out


def spread_cells(results: RunResults) -> dict[str, str]:
    """How much the run fluctuated: the per-call latency's IQR over its median (%), and the repeats' range."""
    iqr = results.latency.iqr_over_median if results.latency else None
    repeats = results.repeats
    return {"latency_iqr_pct": "" if iqr is None else _number(100.0 * iqr),
            "repeats": _number(repeats.count) if repeats else "",
            "throughput_min": _number(repeats.min_fps) if repeats else "",
            "throughput_max": _number(repeats.max_fps) if repeats else ""}


def _avg(metric: Metric | None) -> float | None:
    return None if metric is None else metric.avg


def _read_text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _error_line(folder: Path) -> str:
    """The last ``error:`` line of the run's log: why it stopped."""
    lines = [line for line in _read_text(folder / "output.log").splitlines() if line.startswith("error:")]
    return lines[-1][len("error:"):].strip() if lines else ""


def _number(value: object) -> str:
    return f"{value:.6g}" if isinstance(value, int | float) and not isinstance(value, bool) else ""


def write_csv(path: Path, columns: list[str], lines: list[dict]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(lines)


CHART_PANELS = (("throughput_frames_per_s", "throughput (frames/s)"), ("latency_p99_ms", "latency per call, p99 (ms)"))
NOT_VALID_COLOUR = "black"  # apart from the series' colours


def write_chart(path: Path, profile_columns: list[str], lines: list[dict], title: str = "") -> None:
    """summary.png: ``summary_figure``."""
    fig = summary_figure(profile_columns, lines, title)
    fig.savefig(path, dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)


def summary_figure(profile_columns: list[str], lines: list[dict], title: str = "") -> Figure:
    """Throughput and p99 latency per call against streams, one line per precision (and per other setting
    that varies across rows), under ``title`` (``chart_title``); rows that did not pass are left out, and so are
    p99 points not established (the axis says which). Throughput carries the repeats' min-max as error bars where
    a row was measured ``--repeat N`` times; a point whose validity is not "valid" is ringed and labelled with it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    x_name = "streams" if "streams" in profile_columns else "row"
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), constrained_layout=True)
    passed = [line for line in lines if line["status"] == "passed"]
    series = _series(profile_columns, passed, x_name)
    for ax, (field, panel_title) in zip(axes, CHART_PANELS, strict=True):
        for k, (label, points) in enumerate(series.items()):
            _draw_series(ax, x_name, field, label, points, f"C{k}")  # a series keeps its colour in both panels
        note = _left_out(field, passed)
        ax.set_xlabel(f"{x_name}\n{note}" if note and ax.has_data() else x_name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(panel_title + ("; bars: min-max of the repeats" if _has_repeats(field, passed) else ""))
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.set_ylim(0, 1.1 * ax.dataLim.ymax)
            ax.legend()
        else:
            ax.text(0.5, 0.5, note or "no row passed", ha="center", va="center", wrap=True, transform=ax.transAxes)
    if title:
        fig.suptitle(title)
    return fig


CONTEXT = ("model", "frame size", "precision", "machine")  # the title's parts, in its order


def run_context(doc: RunDocument) -> dict[str, str]:
    """What a row ran, as its results.json says: the model with its architecture (release), the frame size,
    the precision and the machine (the device's name); empty where the file does not say."""
    model, data = doc.config.model, doc.config.dataset
    size = f"{data['width']}x{data['height']}" if data.get("width") and data.get("height") else ""
    machine = doc.config.system.get("device_name") or model.device_name or ""
    return {"model": f"{model.name} {model.variant or ''}".strip(), "frame size": size,
            "precision": model.precision or "", "machine": machine}


def chart_title(docs: Sequence[RunDocument]) -> str:
    """summary.png's title: the sweep's model, frame size, precision and machine; where the rows differ, their
    values in the rows' order (joined by " / "); a part no row's results.json gives is left out."""
    contexts = [run_context(doc) for doc in docs]
    parts = []
    for part in CONTEXT:
        values = dict.fromkeys(c[part] for c in contexts if c[part])
        if values:
            parts.append(f"{part} {' / '.join(values)}")
    return "RIFE benchmark sweep" + ("\n" + " | ".join(parts) if parts else "")


def row_documents(rows: Sequence[RowFolder]) -> list[RunDocument]:
    """The results.json of every row that wrote one."""
    return [doc for row in rows if (doc := read_document(row.folder / "results.json")) is not None]


def _draw_series(ax: Any, x_name: str, field: str, label: str, points: list[dict], colour: str) -> None:
    """One series' line, the repeats' range on throughput, and rings on the points that are not valid."""
    drawn = _points(x_name, field, points)
    if not drawn:
        return
    ax.plot([x for x, _, _ in drawn], [y for _, y, _ in drawn], marker="o", color=colour, label=label)
    if field == "throughput_frames_per_s":
        _range_bars(ax, [(x, line) for x, _, line in drawn], colour)
    for x, y, line in drawn:
        validity = line.get("validity", "")
        if validity and validity != "valid":
            ax.plot(x, y, marker="o", markersize=13, color=NOT_VALID_COLOUR, markerfacecolor="none")
            ax.annotate(validity, (x, y), xytext=(7, 7), textcoords="offset points", fontsize=8,
                        color=NOT_VALID_COLOUR)


def _points(x_name: str, field: str, lines: list[dict]) -> list[tuple[float, float, dict]]:
    """(x, y, line) of the lines that have both, in x order."""
    out = []
    for line in lines:
        x, y = _float(line[x_name]), _float(line[field])
        if x is not None and y is not None:
            out.append((x, y, line))
    return sorted(out, key=lambda p: (p[0], p[1]))


def _range_bars(ax: Any, points: list[tuple[float, dict]], colour: str) -> None:
    """Error bars from the repeats' lowest to highest throughput (drawn about their middle: the bar is the range
    whatever the point's own value)."""
    ranges = [(x, _float(line.get("throughput_min", "")), _float(line.get("throughput_max", ""))) for x, line in points]
    known = [(x, lo, hi) for x, lo, hi in ranges if lo is not None and hi is not None]
    if known:
        ax.errorbar([x for x, _, _ in known], [(lo + hi) / 2 for _, lo, hi in known],
                    yerr=[(hi - lo) / 2 for _, lo, hi in known], fmt="none", ecolor=colour, capsize=4)


def _left_out(field: str, passed: list[dict]) -> str:
    """Which passed rows a percentile panel leaves out because they did not establish it."""
    if field not in PERCENTILES:
        return ""
    rows = [line["row"] for line in passed if not line.get(field)]
    if not rows:
        return ""
    return f"{PERCENTILES[field]} not established (too few calls), left out: row{'s' * (len(rows) > 1)} {', '.join(rows)}"


def _has_repeats(field: str, passed: list[dict]) -> bool:
    return field == "throughput_frames_per_s" and any(line.get("throughput_min") for line in passed)


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _series(profile_columns: list[str], lines: list[dict], x_name: str) -> dict[str, list[dict]]:
    """Lines grouped by every setting except the x axis; labelled by the settings that vary."""
    keys = [c for c in profile_columns if c != x_name]
    labelled_by = varying(keys, lines) or [c for c in keys if c == "precision"]
    groups: dict[str, list[dict]] = {}
    for line in lines:
        label = ", ".join(line[c] if c == "precision" and line[c] else f"{c}={line[c] or 'default'}"
                          for c in labelled_by) or "rows"
        groups.setdefault(label, []).append(line)
    return groups


def print_table(columns: list[str], lines: list[dict]) -> None:
    """The summary on the console: the columns any row has a value in (summary.csv has them all)."""
    shown = [c for c in columns if c not in ("reason", "latency_ms", "exit_code") and any(line[c] for line in lines)]
    table = [shown, *[[line[c] for c in shown] for line in lines]]
    widths = [max(len(row[k]) for row in table) for k in range(len(shown))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    for line in lines:
        if line["reason"]:
            print(f"test_{line['row']}: {line['status']}: {line['reason']}")


def write_summary(out_dir: Path) -> None:
    columns, lines = summarize(out_dir)
    write_csv(out_dir / "summary.csv", columns, lines)
    profile_columns = columns[1:-len(RESULT_FIELDS)]
    try:
        title = chart_title(row_documents(row_folders(out_dir)))
        write_chart(out_dir / "summary.png", profile_columns, lines, title)
        chart = ", summary.png"
    except ImportError:
        chart = " (no summary.png: matplotlib is not installed here)"
    print_table(columns, lines)
    print(f"summary: {out_dir / 'summary.csv'}{chart}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.results.summary", description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", type=Path, metavar="PROFILE", help="check a profile; print its number of rows")
    group.add_argument("--prepare", type=Path, metavar="PROFILE", help="write OUTPUT_DIR/test_<i>/row.csv")
    group.add_argument("--variables", type=Path, metavar="ROW_CSV", help="print a row's NAME=value lines")
    parser.add_argument("--inherit", action="store_true", help="with --variables: add this environment's run variables")
    parser.add_argument("output_dir", type=Path, nargs="?", help="the benchmark's OUTPUT_DIR")
    args = parser.parse_args(argv)
    try:
        if args.check:
            print(len(read_profile(args.check)[1]))
        elif args.variables:
            for name, value in row_variables(read_row(args.variables), os.environ, args.inherit).items():
                print(f"{name}={value}")
        elif args.output_dir is None:
            parser.error("give OUTPUT_DIR")
        elif args.prepare:
            print(prepare(args.prepare, args.output_dir))
        else:
            write_summary(args.output_dir)
    except ProfileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
