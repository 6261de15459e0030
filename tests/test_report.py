"""report.html (harness.results.report) and index.html, opened in real headless Chromium: every image loads, nothing
errors, and the pages still work when the run's folder is copied elsewhere."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from browser import check_page, chromium

from harness.measure import latency
from harness.measure.latency import describe
from harness.results.document import run_document, write_json, write_run
from harness.results.pictures import comparison_sheet, write_index_html
from harness.results.records import (
    CallLog,
    Energy,
    FrameScore,
    Measurements,
    QualityOutcome,
    RunConfig,
    Sheet,
    StreamRecord,
    StreamStatus,
)
from harness.results.report import latency_figure, load_run, psnr_figure, timeline_figure, write_report
from harness.results.summary import RESULT_FIELDS, chart_title, row_documents, row_folders, summarize, summary_figure

ROOT = Path(__file__).resolve().parent.parent
needs_chromium = pytest.mark.skipif(chromium() is None, reason="chromium is not installed (.ci/run installs it)")


def stream(index: int, latencies: list[float], start: float, sheets: tuple[Sheet, ...] = (),
           frames: tuple[FrameScore, ...] = ()) -> StreamRecord:
    n = len(latencies)
    ends = np.cumsum(latencies) / 1e3
    m = Measurements(
        pairs=n, frames=n, calls=n, elapsed_s=float(ends[-1]), window=(start, start + float(ends[-1])),
        clock_offset_s=5000.0, checkpoints=tuple((float(t), k + 1) for k, t in enumerate(ends)),
        throughput_fps=n / float(ends[-1]), latency_wall_ms=float(np.mean(latencies)),
        latency_ms=describe(latencies), shortfalls=(), peak_memory_bytes=None,
        energy=Energy(300.0, 3.0, 0.33), frame_size=(64, 96), padded_size=(64, 128), model=None, pid=1000 + index)
    return StreamRecord(stream=index, status=StreamStatus.COMPLETED, host="h", device=f"cuda:{index - 1}",
                        device_name="Test GPU", measurements=m, sheets=sheets, quality_frames=frames,
                        quality=QualityOutcome.of(frames, 95.0) if frames else None,
                        call_log=CallLog(tuple(float(t) for t in ends - np.array(latencies) / 1e3), tuple(latencies),
                                         (1,) * n), telemetry={"available": True, "mean_power_w": 300.0})


def write_run_folder(out: Path, records: list[StreamRecord], options: dict) -> None:
    """The files a run leaves, as inference.py writes them."""
    config = {"workload": {"model": {"variant": "v4.0", "execution": "fast", "precision": "float16", "streams":
                                     len(records)}, "dataset": {"height": 64, "width": 96}},
              "system": {"hostname": "h", "cpu": "Test CPU", "gpu_driver": "999.1"},
              "metadata": {"harness": {"version": "1.0.0", "git_commit": "abc", "git_dirty": False}},
              "command_line": ["inference.py", "--dummy"], "options": options}
    latency.write_csv(out / "latencies.csv", records)
    write_run(out / "results.json", out / "results.yaml", run_document(RunConfig.from_json(config), records, 95.0, False))
    for r in records:
        samples = [{"t_s": t / 10, "power_w": 250 + 10 * np.sin(t), "sm_clock_mhz": 1900 - t, "gpu_util_pct": 97,
                    "temperature_c": 50 + t / 10} for t in range(30)]
        write_json(out / f"telemetry_{r.stream}.json", {"available": True, "samples": samples})


def test_performance_report_loads_in_chromium_wherever_it_is_copied(tmp_path):
    rng = np.random.default_rng(1)
    out = tmp_path / "run"
    out.mkdir()
    records = [stream(1, list(rng.uniform(1, 2, 200)), 10.0), stream(2, list(rng.uniform(1.5, 3, 150)), 10.05)]
    write_run_folder(out, records, {"dummy": True})
    page = write_report(out).read_text()
    assert "PASSED" in page and "not established: 350 of 662 calls" in page and "Test CPU" in page
    for title in ("Throughput over time", "Latency per call", "Timelines and overlap", "Telemetry"):
        assert f"<h2>{title}</h2><figure><img" in page, title
    if chromium() is None:
        pytest.skip("chromium is not installed (.ci/run installs it)")
    copied = tmp_path / "elsewhere" / "copy"
    shutil.copytree(out, copied)
    for folder in (out, copied):
        seen = check_page(folder / "report.html")
        assert len(seen.images) == 4 and not seen.broken_images and not seen.errors, seen


def quality_folder(tmp_path: Path) -> Path:
    out = tmp_path / "quality"
    rng = np.random.default_rng(2)
    frames = tuple(FrameScore(f"00001/{k:04d}", psnr, 0.9, psnr >= 30) for k, psnr in enumerate([35.0, 22.5, 28.1, 40.0]))
    sheets = []
    for f in frames:
        if not f.passed:
            sheet = f"sheets/{f.name.replace('/', '_')}.png"
            comparison_sheet(out / sheet, f.name, f.psnr, *(rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
                                                          for _ in range(3)))
            sheets.append(Sheet(f.name, f.psnr, f.ssim, sheet))
    write_run_folder(out, [stream(1, list(rng.uniform(1, 2, 4)), 0.0, tuple(sheets), frames)],
                     {"dummy": False, "psnr_threshold": 30.0})
    write_index_html(out, [s.to_json() for s in sheets])
    return out


def test_quality_report_shows_the_worst_sheets_first(tmp_path):
    out = quality_folder(tmp_path)
    page = write_report(out).read_text()
    assert "Quality: PSNR per frame" in page and "FAILED" in page
    sheets = re.findall(r'<img src="(sheets/[^"]+)"', page)
    assert sheets == ["sheets/00001_0001.png", "sheets/00001_0002.png"]  # 22.5 dB before 28.1 dB


@needs_chromium
def test_quality_report_and_index_load_in_chromium_from_a_copy(tmp_path):
    out = quality_folder(tmp_path)
    write_report(out)
    copied = tmp_path / "copy"
    shutil.copytree(out, copied)
    for name, images in (("report.html", 2 + 5), ("index.html", 2)):  # 2 sheets (+ 5 figures, PSNR among them)
        seen = check_page(copied / name)
        assert len(seen.images) == images and not seen.broken_images and not seen.errors, (name, seen)


@needs_chromium
def test_the_checker_sees_a_broken_image_and_a_script_error(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text('<html><body><img src="missing.png"><script>undefinedFunction()</script></body></html>')
    seen = check_page(page)
    assert seen.broken_images == ["missing.png"]
    assert any("undefinedFunction" in e for e in seen.errors) and any("missing.png" in e for e in seen.errors)


@pytest.mark.slow
def test_report_command_rebuilds_and_refuses_a_folder_without_results(tmp_path):
    out = quality_folder(tmp_path)
    (out / "report.html").unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "harness.results.report", str(out)], capture_output=True, text=True, env=env)
    assert done.returncode == 0 and (out / "report.html").is_file()
    empty = subprocess.run([sys.executable, "-m", "harness.results.report", str(tmp_path / "none")], capture_output=True,
                           text=True, env=env)
    assert empty.returncode == 2 and empty.stderr.startswith("error:") and "Traceback" not in empty.stderr


@pytest.mark.slow
@needs_chromium
def test_a_real_run_writes_a_report_that_loads(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PLATFORM": "CPU", "WARMUP": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "inference.py"), "--dummy", "--streams", "2", "--num-inputs",
                           "4", "--data-height", "32", "--data-width", "64", "--execution", "eager", "--output-dir",
                           str(out)], capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    rows = latency.read_csv(out / "latencies.csv")
    assert sorted({r["stream"] for r in rows}) == [1, 2] and len(rows) == 8
    doc = json.loads((out / "results.json").read_text())
    assert doc["results"]["latency"]["samples"] == 8 and "call_log" not in doc["streams"][0]
    seen = check_page(out / "report.html")
    assert len(seen.images) == 3 and not seen.broken_images and not seen.errors, seen  # no telemetry on the CPU


@pytest.mark.cuda
@pytest.mark.slow
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs an NVIDIA GPU")
def test_a_cuda_run_reports_its_driver_telemetry_and_gpu_processes(tmp_path):
    """On a GPU machine: the driver from NVML, telemetry in the report, and this run's own streams not taken
    for other processes on the GPU. The test's own process (a CUDA context of earlier tests) and other work on the
    same GPU are other processes to the run: the warning counts exactly those."""
    out = tmp_path / "out"
    env = {**os.environ, "PLATFORM": "CUDA"}
    with subprocess.Popen([sys.executable, str(ROOT / "inference.py"), "--dummy", "--streams", "2", "--num-inputs",
                           "700", "--data-height", "256", "--data-width", "448", "--execution", "eager",
                           "--output-dir", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env, cwd=ROOT) as run:
        _, stderr = run.communicate(timeout=600)
    assert run.returncode == 0, stderr
    doc = json.loads((out / "results.json").read_text())
    assert doc["config"]["system"]["gpu_driver"]
    assert all(s["telemetry"]["gpu_processes"] for s in doc["streams"])
    streams = {s["pid"] for s in doc["streams"]}
    seen = {pid for s in doc["streams"] for pid in s["telemetry"]["gpu_processes"]}
    assert streams <= seen, (seen, streams)
    others = len(seen - streams - {run.pid})  # this test's process and whatever else shares the GPU
    warned = [w for w in doc["results"]["warnings"] if "other process" in w and "cuda" in w]
    assert [w.split()[0] for w in warned] == ([str(others)] if others else []), (doc["results"]["warnings"], seen)
    assert doc["results"]["latency"]["percentiles"]["p99"]["established"]  # 1,400 calls >= 662
    if chromium() is not None:
        seen = check_page(out / "report.html")
        assert len(seen.images) == 4 and not seen.broken_images and not seen.errors, seen  # with telemetry


# --- the figures, as matplotlib drew them ------------------------------------------------------------------------
def shown_ticks(axis) -> list[float]:
    """The tick values an axis shows (inside its limits)."""
    lo, hi = sorted(axis.get_view_interval())
    return [t for t in axis.get_ticklocs() if lo <= t <= hi]


def test_histograms_count_whole_frames_and_calls(tmp_path):
    doc, calls, _ = load_run(quality_folder(tmp_path))  # 4 frames, 4 calls: at most a few per bin
    for fig in (psnr_figure(doc, 30.0), latency_figure(calls)):
        ticks = shown_ticks(fig.axes[0].yaxis)
        plt.close(fig)
        assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), ticks


@pytest.mark.parametrize("latencies", [
    [*np.linspace(10.0, 10.05, 800), 30.0],  # p50 ... p99.9 within 0.05 ms, left of the middle
    [1.0, *np.linspace(20.0, 20.05, 800)],  # the same right of the middle: labels run leftwards
])
def test_cdf_percentile_labels_stay_apart_and_inside_the_axes(latencies):
    fig = latency_figure([{"stream": 1, "latency_ms": v} for v in latencies])
    fig.canvas.draw()
    cdf = fig.axes[1]
    labels = [t.get_window_extent() for t in cdf.texts]
    legend = cdf.get_legend().get_window_extent()
    plt.close(fig)
    assert [t.get_text().split()[0] for t in cdf.texts] == list(latency.PERCENTILES)
    assert all(not a.overlaps(b) for k, a in enumerate(labels) for b in labels[k + 1:])
    assert all(cdf.bbox.contains(box.x0, box.y0) and cdf.bbox.contains(box.x1, box.y1) for box in labels)
    assert not any(box.overlaps(legend) for box in labels)


def test_timeline_shows_the_first_and_last_calls_whole(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    write_run_folder(out, [stream(1, [1.0] * 40, 10.0), stream(2, [1.5] * 30, 10.02)], {"dummy": True})
    doc, calls, _ = load_run(out)
    fig = timeline_figure(doc.streams, calls)
    fig.canvas.draw()
    dots = fig.axes[1]
    radius_px = max(line.get_markersize() for line in dots.get_lines()) / 2 * fig.dpi / 72
    first, last = (dots.transData.transform((x, 0))[0] for x in (min(c["start_s"] for c in calls),
                                                               max(c["start_s"] for c in calls)))
    plt.close(fig)
    assert dots.bbox.x0 < first - radius_px and last + radius_px < dots.bbox.x1


# --- benchmark.sh's summary.png -----------------------------------------------------------------------------------
def sweep_row(out: Path, row: int, streams: int, calls: int, device: str = "Test GPU") -> None:
    """A benchmark.sh row folder (test_<row>/): its profile row, exit code 0, and a run's results.json."""
    folder = out / f"test_{row}"
    folder.mkdir(parents=True)
    (folder / "row.csv").write_text(f"model_name,streams,precision\nRIFE,{streams},fp16\n")
    (folder / "exit_code").write_text("0\n")
    config = RunConfig.from_json({"workload": {"model": {"variant": "4.26", "precision": "float16", "streams": streams},
                                               "dataset": {"height": 720, "width": 1280}},
                                  "system": {"device_name": device}})
    records = [stream(k, [1.0 + 0.1 * (i % 7) for i in range(calls)], 10.0) for k in range(1, streams + 1)]
    write_run(folder / "results.json", folder / "results.yaml", run_document(config, records, 95.0, False))


def sweep_figure(out: Path):
    columns, lines = summarize(out)
    return summary_figure(columns[1:-len(RESULT_FIELDS)], lines, chart_title(row_documents(row_folders(out))))


def test_summary_is_titled_with_what_ran_and_leaves_out_unestablished_percentiles(tmp_path):
    sweep_row(tmp_path, 1, streams=1, calls=40)  # p99 needs 662 calls: not established
    sweep_row(tmp_path, 2, streams=2, calls=400)
    fig = sweep_figure(tmp_path)
    throughput, p99 = fig.axes
    plotted = [sorted({float(x) for line in ax.get_lines() for x in line.get_xdata()}) for ax in (throughput, p99)]
    title, note = fig.get_suptitle(), p99.get_xlabel()
    plt.close(fig)
    assert all(part in title for part in ("RIFE 4.26", "1280x720", "float16", "Test GPU")), title
    assert plotted == [[1.0, 2.0], [2.0]]
    assert "p99 not established" in note and "row 1" in note


def test_summary_title_names_each_value_the_rows_differ_in(tmp_path):
    sweep_row(tmp_path, 1, streams=1, calls=20, device="GPU A")
    sweep_row(tmp_path, 2, streams=1, calls=20, device="GPU B")
    title = chart_title(row_documents(row_folders(tmp_path)))
    assert "machine GPU A / GPU B" in title and title.count("float16") == 1
