"""compare.py: runs side by side with ratios to the first, and warnings where more than the swept values differ."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.compare import load, main, option_names, table, warnings_of
from harness.records import (
    FrameScore,
    LatencyStats,
    Metric,
    Overlap,
    QualityOutcome,
    RunDocument,
    RunResults,
    RunStatus,
)

ROOT = Path(__file__).resolve().parent.parent


def results_file(folder: Path, throughput: float, p99: float, options: dict, system: dict | None = None,
                 spread: float | None = None, warnings: tuple[str, ...] = (), psnr: float | None = None) -> Path:
    """A results.json with the figures compare.py reads; ``spread``: the per-call latency's IQR over its median."""
    metrics = {"throughput": Metric(throughput, None, None, None, "frames/s"),
               "latency": Metric(1000 / throughput, None, None, None, "ms"),
               "latency-per-call-p99": Metric(p99, None, None, None, "ms"),
               "accuracy": Metric(0.0, 0.0, 0.0, 0.0, "%", applicable=False)}
    median = 1000 / throughput
    stats = None if spread is None else LatencyStats(100, {}, median * 2, median, median, spread * median, spread)
    results = RunResults("2026-01-01", "t", metrics, RunStatus.PASSED, "valid", (), Overlap(1.0, 1.0), {}, {},
                         latency=stats, warnings=warnings)
    config = {"options": {"streams": 1, "precision": "fp16", "output_dir": str(folder), **options},
              "system": {"hostname": "h", "cpu": "c", "device_name": "GPU", "gpu_driver": "1", **(system or {})}}
    quality = None if psnr is None else QualityOutcome.of((FrameScore("f", psnr, 0.9, True),), 95.0)
    doc = RunDocument(config, {}, quality, "performance mode", results, ())
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(doc.to_json()))
    return folder / "results.json"


def test_each_figure_with_its_ratio_to_the_first(tmp_path):
    a = results_file(tmp_path / "a", 200.0, 5.0, {})
    b = results_file(tmp_path / "b", 300.0, 4.0, {"streams": 2})
    runs = [load(a.parent), load(b)]
    lines = {line["figure"]: line for line in table(runs)}
    assert lines["throughput"]["values"] == [(200.0, True, 1.0, None), (300.0, True, 1.5, None)]  # no spread known
    assert lines["latency per call p99"]["values"][1] == (4.0, True, pytest.approx(0.8), None)
    assert "frames at or above the PSNR threshold" not in lines  # not applicable in performance mode
    assert warnings_of(runs, None) == []  # the one differing option is the swept one


def test_differences_beyond_the_swept_values_are_warned(tmp_path):
    a = results_file(tmp_path / "a", 200.0, 5.0, {})
    b = results_file(tmp_path / "b", 210.0, 5.0, {"streams": 2, "precision": "bf16"}, {"gpu_driver": "2"})
    runs = [load(a), load(b)]
    warnings = warnings_of(runs, option_names(["STREAMS"]))
    assert len(warnings) == 2
    assert any("precision" in w and "fp16 | bf16" in w for w in warnings)
    assert any("system.gpu_driver" in w for w in warnings)
    assert len(warnings_of(runs, None)) == 3  # two options differ: neither is taken as the swept one
    assert option_names(["load_path", "ASYNC", "streams"]) == {"weights", "async_sync", "streams"}


def test_command_line_table_csv_and_errors(tmp_path, capsys):
    a = results_file(tmp_path / "a", 100.0, 5.0, {})
    b = results_file(tmp_path / "b", 50.0, 10.0, {"streams": 4})
    assert main([str(a.parent), str(b.parent), "--csv", str(tmp_path / "c.csv")]) == 0
    shown = capsys.readouterr().out
    assert "throughput (frames/s, higher is better)" in shown and "50 (0.50x)" in shown and "(ratios to a;" in shown
    with (tmp_path / "c.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {"figure": "throughput", "unit": "frames/s", "run": "b", "value": "50", "established": "True",
            "relative": "0.5000", "relative_is": "ratio", "within_noise": ""} in rows
    assert main([str(tmp_path / "missing")]) == 2
    assert "error:" in capsys.readouterr().err
    (tmp_path / "junk.json").write_text("[1, 2]")
    assert main([str(tmp_path / "junk.json")]) == 2


def test_identical_runs_are_within_noise_and_runs_3x_apart_are_not(tmp_path, capsys):
    same = [results_file(tmp_path / n, 100.0, 5.0, {}, spread=0.12) for n in ("a", "b")]
    far = results_file(tmp_path / "c", 300.0, 5.0, {}, spread=0.12)
    lines = {line["figure"]: line for line in table([load(p) for p in (*same, far)])}
    assert [v[3] for v in lines["throughput"]["values"]] == [True, True, False]
    near = results_file(tmp_path / "d", 110.0, 5.0, {}, spread=0.02)  # within the first run's 12%
    assert table([load(same[0]), load(near)])[0]["values"][1][3] is True
    assert main([str(p) for p in (*same, far)]) == 0
    shown = capsys.readouterr().out
    assert "100 (1.00x, within noise)" in shown and "300 (3.00x)" in shown and "a passed (valid)" in shown


def test_psnr_is_compared_in_db_and_each_run_s_warnings_are_carried(tmp_path, capsys):
    a = results_file(tmp_path / "a", 100.0, 5.0, {}, psnr=34.5)
    b = results_file(tmp_path / "b", 100.0, 5.0, {}, psnr=34.0, warnings=("latency spread: the interquartile range "
                                                                          "is 40.0% of the median",))
    psnr = next(line for line in table([load(a), load(b)]) if line["unit"] == "dB")
    assert psnr["relative"] == "difference" and psnr["values"][1][2] == pytest.approx(-0.5)
    assert main([str(a), str(b), "--csv", str(tmp_path / "c.csv")]) == 0
    shown = capsys.readouterr().out
    assert "34 (-0.50 dB)" in shown and "x)" not in shown.split("PSNR")[1].splitlines()[0]
    assert "warning: b: latency spread: the interquartile range is 40.0% of the median" in shown
    with (tmp_path / "c.csv").open() as f:
        row = next(r for r in csv.DictReader(f) if r["unit"] == "dB" and r["run"] == "b")
    assert (row["relative"], row["relative_is"]) == ("-0.5000", "difference")


@pytest.mark.slow
def test_compare_py_runs_as_a_script(tmp_path):
    a = results_file(tmp_path / "a", 100.0, 5.0, {})
    done = subprocess.run([sys.executable, str(ROOT / "compare.py"), str(a)], capture_output=True, text=True,
                          cwd=tmp_path, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert done.returncode == 0 and "throughput" in done.stdout

