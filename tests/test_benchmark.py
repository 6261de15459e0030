"""benchmark.sh end to end on the CPU (profiles, row folders, summary.csv and summary.png, failures, refusals,
the container command line through a fake docker) and harness.results.summary's parts."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from matplotlib.image import imread

from harness.results.records import (
    LatencyStats,
    Metric,
    Overlap,
    Percentile,
    Repeats,
    RunConfig,
    RunDocument,
    RunResults,
    RunStatus,
)
from harness.results.summary import ProfileError, read_profile, row_variables, summarize, write_chart, write_summary

ROOT = Path(__file__).resolve().parent.parent
HEADER = "model_name,batch_size,num_inputs,streams,precision,data_height,data_width,platform,dummy,warmup"
RESULT_COLUMNS = ["throughput_frames_per_s", "latency_ms", "latency_p50_ms", "latency_p99_ms", "accuracy_pct", "power_w",
                  "frames_per_joule", "validity", "status", "exit_code", "reason",
                  "latency_iqr_pct", "repeats", "throughput_min", "throughput_max"]  # new columns at the end
SUMMARY_COLUMNS = ["row", *HEADER.split(","), *RESULT_COLUMNS]
SWEEP_VARIABLES = ("PROFILE", "OUTPUT_DIR", "IMAGE", "OVERWRITE", "DUMMY", "DATASET_DIR", "PLATFORM", "WARMUP")


def benchmark(profile: Path | None, out_dir: Path, *args: str, env: dict[str, str] | None = None,
              background: bool = False):
    base = {k: v for k, v in os.environ.items() if k not in SWEEP_VARIABLES}
    full = {**base, "GET_MODEL": "no", "OUTPUT_DIR": str(out_dir), **({"PROFILE": str(profile)} if profile else {}),
            **(env or {})}
    command = [str(ROOT / "benchmark.sh"), *args]
    if background:
        return subprocess.Popen(command, env=full, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(command, env=full, cwd=ROOT, capture_output=True, text=True, timeout=300)


def write_profile(path: Path, *rows: str, header: str = HEADER) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def summary_rows(out_dir: Path) -> list[dict]:
    with (out_dir / "summary.csv").open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """Two passing rows; the second leaves warmup empty (the default must apply: no leak from row 1)."""
    folder = tmp_path_factory.mktemp("sweep")
    profile = write_profile(folder / "small.csv", "RIFE,1,2,1,fp32,64,96,CPU,yes,1", "RIFE,1,2,2,fp32,64,96,CPU,yes,")
    out_dir = folder / "out"
    return benchmark(profile, out_dir), out_dir


@pytest.mark.slow
def test_every_row_runs_in_its_own_folder(sweep):
    done, out_dir = sweep
    assert done.returncode == 0, done.stdout + done.stderr
    for i, row in ((1, "RIFE,1,2,1,fp32,64,96,CPU,yes,1"), (2, "RIFE,1,2,2,fp32,64,96,CPU,yes,")):
        folder = out_dir / f"test_{i}"
        assert (folder / "row.csv").read_text() == f"{HEADER}\n{row}\n"
        assert (folder / "exit_code").read_text().strip() == "0"
        assert json.loads((folder / "results.json").read_text())["results"]["status"] == "passed"
        assert (folder / "output.log").is_file()
    assert (out_dir / "small.csv").read_text().startswith(HEADER)
    assert "benchmark: test_2 of 2" in (out_dir / "benchmark.log").read_text()


@pytest.mark.slow
def test_the_sweep_ends_with_the_rows_compared(sweep):
    _, out_dir = sweep
    log = (out_dir / "benchmark.log").read_text()
    assert "(ratios to test_1 streams=1 warmup=1;" in log and "throughput (frames/s, higher is better)" in log
    assert "warning: the runs differ" not in log  # streams and warmup are the profile's columns: swept
    with (out_dir / "compare.csv").open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["figure"] == "throughput"]
    assert [r["run"] for r in rows] == ["test_1 streams=1 warmup=1", "test_2 streams=2 warmup=default"]
    assert rows[0]["relative"] == "1.0000"


@pytest.mark.slow
def test_rows_do_not_leak_variables(sweep):
    _, out_dir = sweep
    options = [json.loads((out_dir / f"test_{i}" / "results.json").read_text())["config"]["options"] for i in (1, 2)]
    assert [o["warmup"] for o in options] == [1, 10]
    assert [o["streams"] for o in options] == [1, 2]
    assert [Path(o["output_dir"]) for o in options] == [out_dir / "test_1", out_dir / "test_2"]


@pytest.mark.slow
def test_summary_holds_each_row_and_its_numbers(sweep):
    _, out_dir = sweep
    rows = summary_rows(out_dir)
    assert list(rows[0]) == SUMMARY_COLUMNS
    assert [r["row"] for r in rows] == ["1", "2"] and [r["streams"] for r in rows] == ["1", "2"]
    for r in rows:
        results = json.loads((out_dir / f"test_{r['row']}" / "results.json").read_text())["results"]
        metrics, latency = results["metrics"], results["latency"]
        assert float(r["throughput_frames_per_s"]) == pytest.approx(metrics["throughput"]["avg"], rel=1e-5)
        assert float(r["latency_ms"]) == pytest.approx(metrics["latency"]["avg"], rel=1e-5)
        for name in ("p50", "p99"):  # two calls establish neither: the cells stay empty
            assert not latency["percentiles"][name]["established"] and r[f"latency_{name}_ms"] == ""
        assert float(r["latency_iqr_pct"]) == pytest.approx(100 * latency["iqr_over_median"], rel=1e-5)
        assert (r["accuracy_pct"], r["power_w"], r["frames_per_joule"]) == ("", "", "")  # performance mode, CPU
        assert (r["repeats"], r["throughput_min"], r["throughput_max"]) == ("", "", "")  # measured once
        assert (r["status"], r["exit_code"], r["reason"]) == ("passed", "0", "")
        assert r["validity"] in ("valid", "noisy")  # tiny runs on a shared CPU may be noisy


@pytest.mark.slow
def test_chart_and_machine_description(sweep):
    _, out_dir = sweep
    image = imread(out_dir / "summary.png")
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 400
    info = json.loads((out_dir / "sysinfo.json").read_text())
    assert {"os", "cpu", "memory_total_gib", "python", "torch", "gpus"} <= set(info)
    assert info["torch"]["version"] and info["cpu"]["logical_cores"] >= 1


@pytest.mark.slow
def test_a_failed_row_is_recorded_and_the_sweep_goes_on(tmp_path):
    profile = write_profile(tmp_path / "mixed.csv", "RIFE,1,2,0,fp32,64,96,CPU,yes,1",
                            "RIFE,1,2,1,fp16,64,96,CPU,yes,1", "RIFE,1,2,1,fp32,64,96,CPU,yes,1")
    done = benchmark(profile, tmp_path / "out")
    assert done.returncode == 1, done.stdout + done.stderr
    rows = summary_rows(tmp_path / "out")
    assert [r["status"] for r in rows] == ["failed", "failed", "passed"]
    assert [r["exit_code"] for r in rows] == ["2", "2", "0"]
    assert "STREAMS='0'" in rows[0]["reason"] and "fp16" in rows[1]["reason"]
    assert rows[0]["throughput_frames_per_s"] == "" and float(rows[2]["throughput_frames_per_s"]) > 0
    assert (tmp_path / "out" / "summary.png").is_file()
    log = (tmp_path / "out" / "benchmark.log").read_text()  # compare.py OUTPUT_DIR: the row that ran, the others noted
    assert "note: test_1 streams=0 precision=fp32 left out: no results.json (exit code 2)" in log
    assert "(ratios to test_3 streams=1 precision=fp32;" in log


@pytest.mark.slow
def test_an_existing_output_dir_is_refused_unless_overwrite(tmp_path):
    profile = write_profile(tmp_path / "p.csv", "RIFE,1,2,0,fp32,64,96,CPU,yes,1")  # fails fast: enough here
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "notes.txt").write_text("mine")
    refused = benchmark(profile, out_dir)
    assert refused.returncode == 2 and "not empty" in refused.stderr and "OVERWRITE=yes" in refused.stderr
    foreign = benchmark(profile, out_dir, env={"OVERWRITE": "yes"})
    assert foreign.returncode == 2 and "no benchmark.log" in foreign.stderr
    assert os.listdir(out_dir) == ["notes.txt"]

    (out_dir / "benchmark.log").write_text("a previous sweep\n")
    (out_dir / "test_7").mkdir()
    redone = benchmark(profile, out_dir, "--overwrite")
    assert redone.returncode == 1  # its one row fails, on purpose
    assert sorted(p.name for p in out_dir.iterdir()) == ["benchmark.log", "p.csv", "summary.csv", "summary.png",
                                                         "sysinfo.json", "test_1"]


@pytest.mark.slow
def test_an_unknown_column_is_rejected_before_any_run(tmp_path):
    profile = write_profile(tmp_path / "bad.csv", "RIFE,1,2,1,fp32,red", header="model_name,batch_size,num_inputs,"
                            "streams,precision,colour")
    done = benchmark(profile, tmp_path / "out")
    assert done.returncode == 2
    assert done.stderr.startswith("error: profile") and "column colour is not a run variable" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_usage_errors_and_help(tmp_path):
    assert benchmark(None, tmp_path / "o").returncode == 2
    assert benchmark(tmp_path / "missing.csv", tmp_path / "o").returncode == 2
    unknown = benchmark(None, tmp_path / "o", "--fast")
    assert unknown.returncode == 2 and "unknown argument --fast" in unknown.stderr
    shown = benchmark(None, tmp_path / "o", "--help")
    assert shown.returncode == 0 and "PROFILE=profiles/rife.fp16.csv" in shown.stdout


@pytest.mark.slow
def test_interrupted_sweep_stops_and_keeps_what_ran(tmp_path):
    profile = write_profile(tmp_path / "long.csv", "RIFE,1,100000,1,fp32,64,96,CPU,yes,1",
                            "RIFE,1,2,1,fp32,64,96,CPU,yes,1")
    out_dir = tmp_path / "out"
    proc = benchmark(profile, out_dir, background=True)
    deadline = time.monotonic() + 60
    while "timed: " not in _read(out_dir / "test_1" / "output.log") and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 143
    rows = summary_rows(out_dir)
    assert [r["status"] for r in rows] == ["interrupted", "not run"]
    assert rows[0]["exit_code"] == "143" and (out_dir / "test_1" / "results.json").is_file()


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


FAKE_DOCKER = """#!/usr/bin/env bash
# A stand-in for docker: answers `image inspect` with the image's environment and records every `run`.
if [ "$1" = image ]; then printf 'PATH=/usr/bin\\nPLATFORM=CUDA\\n'; exit 0; fi
printf '%s\\n' "$@" > "$DOCKER_LOG.$(ls "$DOCKER_LOG".* 2>/dev/null | wc -l)"
"""


@pytest.mark.slow
def test_container_rows_use_the_reference_run_line(tmp_path):
    bin_dir, data = tmp_path / "bin", tmp_path / "data"
    bin_dir.mkdir()
    data.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    profile = write_profile(tmp_path / "c.csv", "RIFE,1,1024,2,fp16,,", "RIFE,1,1024,4,bf16,Flex,",
                            f"RIFE,1,8,1,fp16,,{data}", header="model_name,batch_size,num_inputs,streams,precision,"
                            "platform,dataset_dir")
    log = tmp_path / "docker-args"
    out_dir = tmp_path / "out"
    done = benchmark(profile, out_dir, env={"IMAGE": "rife:test", "PATH": f"{bin_dir}:{os.environ['PATH']}",
                                            "DOCKER_LOG": str(log), "SEED": "7"})
    assert done.returncode == 1  # the fake writes no results.json: every row is failed, and all three ran
    runs = [Path(f"{log}.{i}").read_text().splitlines() for i in range(3)]
    head = ["run", "--rm", "--ipc=host", "--cap-add", "SYS_NICE", "-e", "OUTPUT_DIR=/tmp/output", "-v"]
    for i, args in enumerate(runs, 1):
        assert args[:9] == [*head, f"{out_dir}/test_{i}:/tmp/output"]
        assert args[-4:] == ["rife:test", "/bin/bash", "-c", "./run_model.sh"]
        assert _pairs(args, "-e") >= {"SEED=7", "BATCH_SIZE=1"}  # this environment's run variables go along
    assert _pairs(runs[0], "-e") >= {"NUM_INPUTS=1024", "STREAMS=2", "PRECISION=fp16", "DUMMY=yes"}
    assert _pairs(runs[0], "--gpus") == {"all"}  # PLATFORM from the image's own environment
    assert _pairs(runs[1], "--device") == {"/dev/dri/"} and "PLATFORM=Flex" in _pairs(runs[1], "-e")
    assert _pairs(runs[2], "-e") >= {"DATASET_DIR=/dataset"} and "DUMMY=yes" not in _pairs(runs[2], "-e")
    assert f"{data}:/dataset:ro" in _pairs(runs[2], "-v")
    assert [r["status"] for r in summary_rows(out_dir)] == ["failed"] * 3
    assert "no results.json" in summary_rows(out_dir)[0]["reason"]


def _pairs(args: list[str], flag: str) -> set[str]:
    return {value for name, value in zip(args, args[1:], strict=False) if name == flag}


# --- harness.results.summary's parts ----------------------------------------------------------------
def test_row_variables():
    row = {"model_name": "RIFE", "num_inputs": "1024", "streams": "2", "data_height": "", "precision": "fp16"}
    assert row_variables(row, {}) == {"NUM_INPUTS": "1024", "STREAMS": "2", "PRECISION": "fp16", "DUMMY": "yes"}
    assert "DUMMY" not in row_variables(row, {"DATASET_DIR": "/data"})
    assert row_variables({**row, "dummy": "no"}, {})["DUMMY"] == "no"
    environ = {"PLATFORM": "CUDA", "STREAMS": "8", "OUTPUT_DIR": "/x", "HOME": "/root"}
    assert row_variables(row, environ, inherit=True) == {"PLATFORM": "CUDA", "STREAMS": "2", "NUM_INPUTS": "1024",
                                                        "PRECISION": "fp16", "DUMMY": "yes"}


@pytest.mark.parametrize("text, message", [
    ("", "is empty"),
    ("model_name,streams\n", "no rows"),
    ("model_name,streams\nRIFE,1,2\n", "line 2 has 3 values for 2 columns"),
    ("model_name,streams,STREAMS\nRIFE,1,2\n", "column STREAMS appears twice"),
    ("model_name,output_dir\nRIFE,/tmp\n", "cannot be set per row"),
    ("model_name,streamz\nRIFE,1\n", "column streamz is not a run variable"),
])
def test_bad_profiles(tmp_path, text, message):
    (tmp_path / "p.csv").write_text(text)
    with pytest.raises(ProfileError, match=message):
        read_profile(tmp_path / "p.csv")


@pytest.mark.parametrize("name", ["rife.fp16.csv", "rife.bf16.csv", "rife.fp32.csv"])
def test_shipped_profiles(name):
    header, rows = read_profile(ROOT / "profiles" / name)
    precision, count = name.split(".")[1], "512" if "fp32" in name else "1024"
    assert header == ["model_name", "batch_size", "num_inputs", "streams", "precision"]
    assert rows == [["RIFE", "1", count, s, precision] for s in ("1", "2", "4")]


def test_summary_reads_power_and_energy_when_measured(tmp_path):
    """The columns the stream's telemetry feeds (results.metrics power / frames-per-joule)."""
    header = "model_name,streams,precision"
    for i, (streams, status, code) in enumerate((("1", "passed", "0"), ("2", "passed", "0"), ("4", "failed", "1")), 1):
        folder = tmp_path / f"test_{i}"
        folder.mkdir()
        (folder / "row.csv").write_text(f"{header}\nRIFE,{streams},fp16\n")
        (folder / "exit_code").write_text(code + "\n")
        metrics = {"throughput": {"avg": 100.0 * i}, "latency": {"avg": 10.0 / i},
                   "latency-per-call-p50": {"avg": 9.0}, "latency-per-call-p99": {"avg": 12.5},
                   "accuracy": {"avg": 0.0, "applicable": False}, "power": {"avg": 250.0 + i},
                   "frames-per-joule": {"avg": 0.4 * i}}
        doc = {"results": {"metrics": metrics, "status": status, "validity": "valid" if code == "0" else "invalid",
                           "invalid_reasons": [] if code == "0" else ["stream 2: out of memory"]}}
        (folder / "results.json").write_text(json.dumps(doc))
    (tmp_path / "test_5").mkdir()  # not run yet: no exit_code
    (tmp_path / "test_5" / "row.csv").write_text(f"{header}\nRIFE,8,fp16\n")
    columns, lines = summarize(tmp_path)
    assert columns[:4] == ["row", "model_name", "streams", "precision"]
    assert [(ln["power_w"], ln["frames_per_joule"], ln["status"]) for ln in lines] == [
        ("251", "0.4", "passed"), ("252", "0.8", "passed"), ("253", "1.2", "failed"), ("", "", "not run")]
    assert lines[2]["reason"] == "stream 2: out of memory" and lines[0]["accuracy_pct"] == ""
    write_chart(tmp_path / "chart.png", columns[1:4], lines)
    assert imread(tmp_path / "chart.png").ndim == 3


def test_chart_when_no_row_passed(tmp_path):
    lines = [{"row": "1", "streams": "1", "precision": "fp16", "throughput_frames_per_s": "", "latency_p99_ms": "",
              "status": "failed"}]
    write_chart(tmp_path / "empty.png", ["streams", "precision"], lines)
    assert imread(tmp_path / "empty.png").ndim == 3


def run_document(fps: float, p50: Percentile, p99: Percentile, validity: str = "valid",
                 repeats: Repeats | None = None) -> RunDocument:
    """A results.json document as a run writes it: the pooled latency with its percentiles' verdicts."""
    metrics = {"throughput": Metric(fps, None, None, None, "frames/s"), "latency": Metric(1000 / fps, None, None, None, "ms"),
               "latency-per-call-p50": Metric(p50.ms, None, None, None, "ms"),
               "latency-per-call-p99": Metric(p99.ms, None, None, None, "ms")}
    stats = LatencyStats(p50.samples_needed if p50.established else 5, {"p50": p50, "p99": p99}, 20.0, 10.0,
                         p50.ms, 1.2, 0.12)
    results = RunResults("2026-01-01", "t", metrics, RunStatus.PASSED, validity, (), Overlap(1.0, 1.0), {}, {},
                         latency=stats, repeats=repeats)
    return RunDocument(RunConfig(), {}, None, "performance mode", results, ())


def write_rows(out_dir: Path, header: str, rows: list[tuple[str, RunDocument | None, str]]) -> None:
    """A benchmark.sh output folder: per row its cells, its results (None: none written) and exit code."""
    for i, (cells, doc, exit_code) in enumerate(rows, 1):
        folder = out_dir / f"test_{i}"
        folder.mkdir(parents=True)
        (folder / "row.csv").write_text(f"{header}\n{cells}\n")
        (folder / "exit_code").write_text(f"{exit_code}\n")
        if doc is not None:
            (folder / "results.json").write_text(json.dumps(doc.to_json()))


def test_summary_leaves_unestablished_percentiles_empty_and_shows_spread(tmp_path, capsys):
    short = run_document(100.0, Percentile(9.5, False, 11), Percentile(14.0, False, 662), validity="noisy")
    halfway = run_document(150.0, Percentile(9.0, True, 11), Percentile(13.0, False, 662))
    repeats = Repeats(5, (190.0, 200.0, 205.0, 210.0, 215.0), 205.0, 190.0, 215.0, (190.0, 215.0), 0.94)
    full = run_document(205.0, Percentile(8.0, True, 11), Percentile(12.5, True, 662), repeats=repeats)
    header = "model_name,streams,precision"
    write_rows(tmp_path, header, [("RIFE,1,fp16", short, "0"), ("RIFE,2,fp16", halfway, "0"),
                                  ("RIFE,4,fp16", full, "0"), ("RIFE,8,fp16", None, "1")])
    write_summary(tmp_path)
    rows = summary_rows(tmp_path)
    assert list(rows[0]) == ["row", *header.split(","), *RESULT_COLUMNS]
    assert [(r["latency_p50_ms"], r["latency_p99_ms"]) for r in rows] == [("", ""), ("9", ""), ("8", "12.5"), ("", "")]
    assert [r["latency_iqr_pct"] for r in rows] == ["12", "12", "12", ""]
    assert [(r["repeats"], r["throughput_min"], r["throughput_max"]) for r in rows] == [
        ("", "", ""), ("", "", ""), ("5", "190", "215"), ("", "", "")]
    assert [r["validity"] for r in rows] == ["noisy", "valid", "valid", ""]
    image = imread(tmp_path / "summary.png")
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 400
    shown = capsys.readouterr().out
    assert "latency_iqr_pct" in shown and "throughput_max" in shown and "noisy" in shown
    assert "power_w" not in shown  # a column no row has a value in stays in summary.csv only
