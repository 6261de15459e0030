"""compare.py: runs side by side with ratios to the first, and warnings where more than the swept values differ."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.measure.latency import repeat_stats
from harness.results.compare import gather, load, main, option_names, table, warnings_of
from harness.results.records import (
    FrameScore,
    LatencyStats,
    Metric,
    Overlap,
    QualityOutcome,
    RunConfig,
    RunDocument,
    RunResults,
    RunStatus,
)

ROOT = Path(__file__).resolve().parent.parent


def results_file(folder: Path, throughput: float, p99: float, options: dict, system: dict | None = None,
                 spread: float | None = None, warnings: tuple[str, ...] = (), psnr: float | None = None,
                 repeats: tuple[float, ...] = ()) -> Path:
    """A results.json with the figures compare.py reads; ``spread``: the per-call latency's IQR over its median;
    ``repeats``: each repeat's throughput."""
    metrics = {"throughput": Metric(throughput, None, None, None, "frames/s"),
               "latency": Metric(1000 / throughput, None, None, None, "ms"),
               "latency-per-call-p99": Metric(p99, None, None, None, "ms"),
               "accuracy": Metric(0.0, 0.0, 0.0, 0.0, "%", applicable=False)}
    median = 1000 / throughput
    stats = None if spread is None else LatencyStats(100, {}, median * 2, median, median, spread * median, spread)
    results = RunResults("2026-01-01", "t", metrics, RunStatus.PASSED, "valid", (), Overlap(1.0, 1.0), {}, {},
                         latency=stats, warnings=warnings, repeats=repeat_stats(list(repeats)))
    config = {"options": {"streams": 1, "precision": "fp16", "output_dir": str(folder), **options},
              "system": {"hostname": "h", "cpu": "c", "device_name": "GPU", "gpu_driver": "1", **(system or {})}}
    quality = None if psnr is None else QualityOutcome.of((FrameScore("f", psnr, 0.9, True),), 95.0)
    doc = RunDocument(RunConfig.from_json(config), {}, quality, "performance mode", results, ())
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(doc.to_json()))
    return folder / "results.json"


def sweep_folder(folder: Path, header: str, rows: list[tuple[str, float | None, str]], **figures) -> Path:
    """A benchmark.sh output folder: per row (its cells, its throughput or None for a row without results, its
    exit code, "" for a row not run) test_<i>/ with row.csv, exit_code and results.json. Each row's options are
    its non-label cells."""
    columns = header.split(",")
    for i, (cells, throughput, exit_code) in enumerate(rows, 1):
        row = folder / f"test_{i}"
        values = dict(zip(columns, cells.split(","), strict=True))
        options = {k: int(v) if v.isdigit() else v for k, v in values.items() if k != "model_name" and v}
        if throughput is None:
            row.mkdir(parents=True)
        else:
            results_file(row, throughput, 5.0, options, **figures)
        (row / "row.csv").write_text(f"{header}\n{cells}\n")
        if exit_code:
            (row / "exit_code").write_text(f"{exit_code}\n")
    return folder


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


def test_the_repeats_range_is_the_noise_when_wider_than_the_latency_spread(tmp_path, capsys):
    steady = results_file(tmp_path / "a", 100.0, 5.0, {}, spread=0.02, repeats=(100.0, 101.0, 99.0))
    wobbly = results_file(tmp_path / "b", 115.0, 5.0, {}, spread=0.02, repeats=(95.0, 115.0, 130.0))
    tight = results_file(tmp_path / "c", 115.0, 5.0, {}, spread=0.02, repeats=(114.0, 115.0, 116.0))
    assert table([load(steady), load(wobbly)])[0]["values"][1][3] is True  # 1.15x inside b's 30% range
    assert table([load(steady), load(tight)])[0]["values"][1][3] is False  # 1.15x outside 2% and 1.7%
    assert main([str(steady), str(wobbly)]) == 0
    assert "a passed (valid, median of 3 repeats)" in capsys.readouterr().out


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



def test_a_benchmark_folder_is_compared_row_by_row(tmp_path, capsys):
    out = sweep_folder(tmp_path / "out", "model_name,streams,precision",
                       [("RIFE,1,fp16", 100.0, "0"), ("RIFE,2,fp16", 105.0, "0"), ("RIFE,4,fp16", None, "1"),
                        ("RIFE,8,fp16", 300.0, "0"), ("RIFE,16,fp16", None, "")], spread=0.12)
    runs, notes, swept = gather([out])
    assert [r.name for r in runs] == ["test_1 streams=1", "test_2 streams=2", "test_4 streams=8"]
    assert swept == ["streams"]  # precision is the same in every row; model_name is a label
    assert notes == ["test_3 streams=4 left out: no results.json (exit code 1)",
                     "test_5 streams=16 left out: no results.json (not run)"]
    assert main([str(out), "--csv", str(tmp_path / "c.csv")]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("note: test_3 streams=4 left out: no results.json (exit code 1)\n")
    assert "105 (1.05x, within noise)" in shown and "300 (3.00x)" in shown
    assert "(ratios to test_1 streams=1;" in shown and "warning: the runs differ" not in shown
    with (tmp_path / "c.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["figure"] == "throughput"]
    assert [(r["run"], r["relative"], r["within_noise"]) for r in rows] == [
        ("test_1 streams=1", "1.0000", "True"), ("test_2 streams=2", "1.0500", "True"),
        ("test_4 streams=8", "3.0000", "False")]


def test_swept_given_wins_over_the_folder_s_columns(tmp_path, capsys):
    out = sweep_folder(tmp_path / "out", "model_name,streams", [("RIFE,1", 100.0, "0"), ("RIFE,2", 190.0, "0")])
    assert main([str(out), "--swept", "precision"]) == 0
    assert "warning: the runs differ in streams, which is not a swept value: 1 | 2" in capsys.readouterr().out


def test_rows_named_by_model_name_and_sweeps_mixed_with_runs(tmp_path):
    named = sweep_folder(tmp_path / "named", "model_name,streams", [("one,1", 100.0, "0"), ("two,2", 190.0, "0")])
    assert [r.name for r in gather([named])[0]] == ["one", "two"]  # model_name tells the rows apart
    a = sweep_folder(tmp_path / "a", "model_name,streams", [("RIFE,1", 100.0, "0"), ("RIFE,2", 190.0, "0")])
    b = sweep_folder(tmp_path / "b", "model_name,streams", [("RIFE,1", 90.0, "0"), ("RIFE,", 170.0, "0")])
    solo = results_file(tmp_path / "solo", 80.0, 5.0, {})
    runs, _, swept = gather([a, solo.parent, b])
    assert [r.name for r in runs] == [f"{a}/test_1 streams=1", f"{a}/test_2 streams=2", str(solo.parent),
                                      f"{b}/test_1 streams=1", f"{b}/test_2 streams=default"]  # where names repeat
    assert [r.figure("throughput")[0] for r in runs] == [100.0, 190.0, 80.0, 90.0, 170.0]
    assert swept == ["streams"]


def test_a_benchmark_folder_with_nothing_to_compare(tmp_path, capsys):
    out = sweep_folder(tmp_path / "out", "model_name,streams", [("RIFE,0", None, "2"), ("RIFE,1", None, "143")])
    assert main([str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["note: test_1 streams=0 left out: no results.json (exit code 2)",
                                         "note: test_2 streams=1 left out: no results.json (exit code 143)"]
    assert captured.err.startswith("error: nothing to compare") and len(captured.err.splitlines()) == 1
    (out / "test_3").mkdir()  # a row folder without its row.csv: not benchmark.sh's
    assert main([str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "test_3/row.csv" in err and len(err.splitlines()) == 1
