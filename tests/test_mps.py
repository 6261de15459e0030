"""CUDA MPS for streams that share a GPU, against a stand-in ``nvidia-cuda-mps-control`` that keeps the real one's
interface: ``-f`` runs the daemon in the foreground and makes ``control`` in the pipe folder; a client reads
commands (``quit``) from its standard input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness.streams.mps import PIPE_VARIABLE, MpsDaemon, MpsError, daemon_running, streams_share_a_device

FAKE_CONTROL = f"""#!{sys.executable}
import os, pathlib, sys, time
pipe = pathlib.Path(os.environ["{PIPE_VARIABLE}"])
if sys.argv[1:] == ["-f"]:
    (pipe / "control").write_text(str(os.getpid()))
    while not (pipe / "quit").exists():
        time.sleep(0.02)
    (pipe / "control").unlink()
    (pipe / "stopped").write_text("")
elif sys.stdin.read().strip() == "quit":
    (pipe / "quit").write_text("")
"""


@pytest.fixture
def fake_control(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "nvidia-cuda-mps-control"
    exe.write_text(FAKE_CONTROL)
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv(PIPE_VARIABLE, raising=False)
    monkeypatch.setattr("harness.streams.mps.daemon_running", lambda: False)
    return exe


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_shared_device_means_more_streams_than_gpus():
    assert streams_share_a_device("cuda", (0,), 2)
    assert not streams_share_a_device("cuda", (0, 1), 2)
    assert streams_share_a_device("cuda", (0, 1), 3)
    assert not streams_share_a_device("cpu", (), 4)
    assert not streams_share_a_device("cuda", (0,), 1)


def test_off_and_unneeded_start_nothing(fake_control, tmp_path):
    with MpsDaemon("off", True, tmp_path / "out") as d:
        assert not d.outcome.used and "off" in d.outcome.reason
    with MpsDaemon("on", False, tmp_path / "out") as d:
        assert not d.outcome.used and "no CUDA device is shared" in d.outcome.reason
    assert not (tmp_path / "out").exists()


def test_auto_starts_one_for_the_run_and_stops_it(fake_control, tmp_path):
    out = tmp_path / "out"
    with MpsDaemon("auto", True, out) as d:
        assert d.outcome.used and d.outcome.started
        pipe = Path(os.environ[PIPE_VARIABLE])
        assert pipe == out.resolve() / "mps" / "pipe" and str(pipe) == d.outcome.pipe_dir
        pid = int((pipe / "control").read_text())
        assert _alive(pid)
    assert PIPE_VARIABLE not in os.environ
    assert (pipe / "stopped").exists()  # it quit through the control client, not a kill
    assert not _alive(pid)


def test_auto_uses_a_daemon_that_already_runs(fake_control, tmp_path, monkeypatch):
    monkeypatch.setattr("harness.streams.mps.daemon_running", lambda: True)
    with MpsDaemon("auto", True, tmp_path / "out") as d:
        assert d.outcome.used and not d.outcome.started and "already runs" in d.outcome.reason


def test_without_the_control_program_auto_goes_on_and_on_refuses(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv(PIPE_VARIABLE, raising=False)
    monkeypatch.setattr("harness.streams.mps.daemon_running", lambda: False)
    with MpsDaemon("auto", True, tmp_path / "out") as d:
        assert not d.outcome.used and "not on the PATH" in d.outcome.reason
    with pytest.raises(MpsError, match="--mps on: nvidia-cuda-mps-control is not on the PATH.*--mps off"):
        MpsDaemon("on", True, tmp_path / "out").__enter__()


def test_daemon_running_reads_process_names(tmp_path):
    (tmp_path / "12").mkdir()
    (tmp_path / "12" / "comm").write_text("python3\n")
    assert not daemon_running(tmp_path)
    (tmp_path / "34").mkdir()
    (tmp_path / "34" / "comm").write_text("nvidia-cuda-mps-control\n")
    assert daemon_running(tmp_path)


@pytest.mark.slow
def test_the_daemon_dies_with_a_killed_run(fake_control, tmp_path):
    script = textwrap.dedent(f"""
        import os, time
        from pathlib import Path
        from harness.streams.mps import MpsDaemon
        with MpsDaemon("auto", True, Path({str(tmp_path / 'out')!r})) as d:
            print(Path(d.outcome.pipe_dir, "control").read_text(), flush=True)
            time.sleep(60)
    """)
    run = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                           cwd=Path(__file__).resolve().parents[1], env=os.environ)
    pid = int(run.stdout.readline())
    assert _alive(pid)
    run.send_signal(signal.SIGKILL)
    run.wait()
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)
