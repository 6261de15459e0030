"""The files a run writes in its output folder, by name, and clearing the ones a previous run left there.

A re-run into a used folder must not leave the previous run's files beside the new ones (an old
``results_2.json`` after a one-stream re-run, old sheets in ``index.html``'s folder): before the streams
start, the files listed here are removed, and nothing else. ``output.log`` is kept: each run appends to it,
after a header line of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

RESULTS_JSON, RESULTS_YAML, INDEX_HTML, LOG = "results.json", "results.yaml", "index.html", "output.log"
LATENCIES_CSV, REPORT_HTML = "latencies.csv", "report.html"
RUN_FILES = (RESULTS_JSON, RESULTS_YAML, LATENCIES_CSV, REPORT_HTML, INDEX_HTML)
PER_STREAM = re.compile(r"(results|telemetry)_(\d+)\.json")
SHEETS, IMAGES = "sheets", "images"
PICTURE_FOLDERS = (SHEETS, IMAGES)  # PNG files the quality mode writes
LEFT_BY_A_KILLED_WRITER = re.compile(r"\.(results|telemetry|latencies|report|index)[\w.-]*\.tmp")


@dataclass(frozen=True)
class OutputLayout:
    """Every file name in the output folder ``root``."""

    root: Path

    @property
    def results_json(self) -> Path:
        return self.root / RESULTS_JSON

    @property
    def results_yaml(self) -> Path:
        return self.root / RESULTS_YAML

    @property
    def log(self) -> Path:  # written by run_model.sh
        return self.root / LOG

    @property
    def index_html(self) -> Path:
        return self.root / INDEX_HTML

    @property
    def latencies_csv(self) -> Path:
        return self.root / LATENCIES_CSV

    @property
    def report_html(self) -> Path:
        return self.root / REPORT_HTML

    def stream_results(self, stream: int) -> Path:
        return self.root / f"results_{stream}.json"

    def telemetry(self, stream: int) -> Path:
        return self.root / f"telemetry_{stream}.json"

    def sheet(self, frame: str) -> Path:
        return self.root / SHEETS / f"{_file_stem(frame)}.png"

    def image(self, frame: str, timestep: float | None) -> Path:
        """An interpolated frame; ``timestep`` when a pair has several."""
        return self.root / IMAGES / (_file_stem(frame) + (f"_t{timestep:.4f}" if timestep is not None else "") + ".png")


def _file_stem(frame: str) -> str:
    return frame.replace("/", "_")


def stream_files(out_dir: Path, stream: int) -> list[Path]:
    layout = OutputLayout(out_dir)
    return [layout.stream_results(stream), layout.telemetry(stream)]


def previous_run_files(out_dir: Path, keep_streams: frozenset[int] = frozenset()) -> list[Path]:
    """The harness's files in ``out_dir``, except the per-stream files of ``keep_streams`` (under torchrun,
    each rank clears its own)."""
    if not out_dir.is_dir():
        return []
    found = [out_dir / name for name in RUN_FILES]
    for path in out_dir.iterdir():
        per_stream = PER_STREAM.fullmatch(path.name)
        if (per_stream and int(per_stream.group(2)) not in keep_streams) or LEFT_BY_A_KILLED_WRITER.fullmatch(path.name):
            found.append(path)
    for folder in PICTURE_FOLDERS:
        if (out_dir / folder).is_dir():
            found += sorted((out_dir / folder).glob("*.png"))
    return [p for p in found if p.is_file() and not p.is_symlink()]


def clear_previous_run(out_dir: Path, keep_streams: frozenset[int] = frozenset()) -> list[Path]:
    """Removes what ``previous_run_files`` lists, and the picture folders when that leaves them empty;
    returns what was removed."""
    removed = previous_run_files(out_dir, keep_streams)
    for path in removed:
        path.unlink(missing_ok=True)
    for folder in PICTURE_FOLDERS:
        try:
            (out_dir / folder).rmdir()  # only when empty: whatever else is there stays
        except OSError:
            pass
    return removed


def describe(removed: list[Path], out_dir: Path) -> str:
    """One line naming what was cleared (folders summed up)."""
    names: dict[str, int] = {}
    for path in removed:
        parent = path.parent.name if path.parent != out_dir else ""
        key = f"{parent}/ ({{}} files)" if parent else path.name
        names[key] = names.get(key, 0) + 1
    shown = [key.format(count) if "{}" in key else key for key, count in names.items()]
    return f"note: cleared the previous run's files in {out_dir}: {', '.join(shown)}"
