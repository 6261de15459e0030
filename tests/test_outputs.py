"""What a run leaves in its output folder: file modes, the previous run's files cleared, the system and harness
described, --help, units."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

import arguments
from harness.results.document import harness_revision, run_document, write_json, write_run
from harness.results.outputs import clear_previous_run, describe, previous_run_files
from harness.system.device import cpu_model

ROOT = Path(__file__).resolve().parent.parent
SMALL = {"PLATFORM": "CPU", "DATA_HEIGHT": "64", "DATA_WIDTH": "96", "WARMUP": "1", "GET_MODEL": "no"}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_results_files_are_readable_by_everyone_under_the_usual_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        write_json(tmp_path / "results_1.json", {"a": 1})
        write_run(tmp_path / "results.json", tmp_path / "results.yaml", run_document(None, [], 95.0, False))
    finally:
        os.umask(previous)
    for name in ("results_1.json", "results.json", "results.yaml"):
        assert mode(tmp_path / name) == 0o644, name
    assert json.loads((tmp_path / "results_1.json").read_text()) == {"a": 1}
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_private_umask_is_respected(tmp_path):
    previous = os.umask(0o077)
    try:
        write_json(tmp_path / "results.json", {})
    finally:
        os.umask(previous)
    assert mode(tmp_path / "results.json") == 0o600


def fill_previous_run(out: Path) -> None:
    for name in ("results.json", "results.yaml", "results_1.json", "results_2.json", "results_3.json",
                 "telemetry_3.json", "latencies.csv", "report.html", "index.html", ".results.json.99.ab12.tmp",
                 "output.log", "notes.txt", "results_final.json", "sheets/a_1.png", "sheets/keep.txt",
                 "images/a_1.png"):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text("old")


def test_clearing_removes_the_harness_files_and_nothing_else(tmp_path):
    fill_previous_run(tmp_path)
    removed = clear_previous_run(tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in removed) == [
        ".results.json.99.ab12.tmp", "images/a_1.png", "index.html", "latencies.csv", "report.html", "results.json",
        "results.yaml", "results_1.json", "results_2.json", "results_3.json", "sheets/a_1.png", "telemetry_3.json"]
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert left == ["notes.txt", "output.log", "results_final.json", "sheets/keep.txt"]
    assert not (tmp_path / "images").exists() and (tmp_path / "sheets").is_dir()
    line = describe(removed, tmp_path)
    assert "results_2.json" in line and "sheets/ (1 files)" in line and "images/ (1 files)" in line


def test_torchrun_ranks_keep_each_others_stream_files(tmp_path):
    fill_previous_run(tmp_path)
    names = {p.name for p in previous_run_files(tmp_path, keep_streams=frozenset({1, 2}))}
    assert "results_3.json" in names and "telemetry_3.json" in names
    assert not {"results_1.json", "results_2.json"} & names


def test_cpu_model_from_proc_cpuinfo():
    text = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\nflags\t\t: fpu\n"
    assert cpu_model(text) == "Intel(R) Xeon(R) Platinum 8480+"
    assert cpu_model("") != ""  # platform's answer where /proc/cpuinfo says nothing


def test_harness_revision_from_git_and_without_it(tmp_path):
    inside = harness_revision()
    assert inside["version"]
    if (ROOT / ".git").exists():
        assert re.fullmatch(r"[0-9a-f]{40}", inside["git_commit"]) and isinstance(inside["git_dirty"], bool)
    outside = harness_revision(tmp_path)
    assert outside["git_commit"] is None and outside["version"] == inside["version"]


def test_help_names_run_model_and_real_defaults():
    text = arguments.build_parser().format_help()
    assert text.startswith("usage: run_model.sh")
    assert "None" not in text and "ASYNC_SYNC" not in text and "MIN_DURATION " not in text
    assert "--async ASYNC" in text and "--pretrained-weights LOAD_PATH" in text
    assert re.search(r"bf16\s+where it computes bf16 natively|bf16 where\s+it computes", text)
    for opt in arguments.OPTIONS:  # where no default value is shown, the help says what happens by default
        if opt.convert is not None and opt.default in (None, ""):
            assert "default" in opt.help, opt.flag


def run_model(args: list[str], out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "run_model.sh"), "--dummy", "--num-inputs", "2", "--output-dir", str(out), *args],
                          env={**os.environ, **SMALL}, capture_output=True, text=True, timeout=300, cwd=ROOT)


@pytest.mark.slow
def test_a_rerun_clears_the_previous_runs_files_and_a_bad_option_keeps_them(tmp_path):
    out = tmp_path / "out"
    first = run_model(["--streams", "2"], out)
    assert first.returncode == 0, first.stderr
    (out / "mine.txt").write_text("the user's")
    typo = run_model(["--streams", "0"], out)
    assert typo.returncode == 2 and (out / "results_2.json").is_file()  # refused before anything was cleared
    assert "error: --streams" in typo.stderr and "error:" not in typo.stdout  # stderr stays stderr...
    assert "error: --streams" in (out / "output.log").read_text()  # ...and reaches the log too
    again = run_model([], out)
    assert again.returncode == 0, again.stderr
    assert not (out / "results_2.json").exists() and (out / "results_1.json").is_file()
    assert (out / "mine.txt").read_text() == "the user's"
    assert "cleared the previous run's files" in again.stdout and "results_2.json" in again.stdout
    assert "error:" not in again.stdout  # errors go to stderr, and only there
    doc = json.loads((out / "results.json").read_text())
    assert doc["results"]["metrics"]["throughput"]["units"] == "frames/s"
    assert doc["config"]["system"]["cpu"] == cpu_model() and "gpu_driver" in doc["config"]["system"]
    assert doc["config"]["metadata"]["harness"]["version"]


@pytest.mark.slow
def test_progress_bar_with_total_and_eta_on_the_terminal_under_run_model(tmp_path):
    """run_model.sh on a terminal: tee makes stderr a pipe, yet the bar reaches the terminal; the log and stdout
    get the phase lines, not the bar; errors stay on stderr."""
    import fcntl
    import struct
    import termios

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 24 rows, 100 columns
    out = tmp_path / "out"

    def own_terminal() -> None:  # the pseudo-terminal becomes the run's controlling terminal (/dev/tty)
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen([str(ROOT / "run_model.sh"), "--dummy", "--num-inputs", "3", "--output-dir", str(out)],
                            env={**os.environ, **SMALL}, stdin=slave, stdout=subprocess.PIPE, stderr=slave, cwd=ROOT,
                            start_new_session=True, preexec_fn=own_terminal, text=True)
    os.close(slave)
    screen = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the terminal closed: every process that held it has ended
            break
        if not chunk:
            break
        screen += chunk
    stdout = proc.communicate(timeout=300)[0]
    os.close(master)
    assert proc.returncode == 0, screen.decode(errors="replace")
    shown = screen.decode(errors="replace")
    assert re.search(r"stream 1: 100%.*3/3 \[[0-9:]+<[0-9:]+", shown), shown  # total, elapsed < time left
    log = (out / "output.log").read_text()
    for text in (stdout, log):
        assert "3/3 [" not in text
        for phase in ("loading the model", "warm-up and compile", "timed loop: 3 pairs"):
            assert f"[stream 1] {phase}" in text, phase
