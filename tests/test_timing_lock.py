"""--timing-lock: runs sharing a machine take their timed loops in turn (the lock, the stream, the option)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import arguments
from harness.streams.signals import Interrupted
from harness.streams.timing_lock import TimingLock

ROOT = Path(__file__).resolve().parent.parent
HOLD = ("import fcntl, sys\n"
        "f = open(sys.argv[1], 'a')\n"
        "fcntl.flock(f, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        "sys.stdin.readline()\n")
PROBE = ("import fcntl, sys\n"
         "f = open(sys.argv[1], 'a')\n"
         "try:\n"
         "    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
         "except BlockingIOError:\n"
         "    sys.exit(1)\n")


def hold(path: Path) -> subprocess.Popen:
    """Another process holding the lock until its stdin closes."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def let_go(proc: subprocess.Popen) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=30)


def free(path: Path) -> bool:
    """Whether another process could take the lock now."""
    return subprocess.run([sys.executable, "-c", PROBE, str(path)], timeout=30).returncode == 0


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_free_lock_is_taken_at_once_silently_and_given_back(tmp_path):
    path = tmp_path / "timing.lock"  # created
    lines: list[str] = []
    lock = TimingLock(path)
    assert lock.acquire(lambda: None, lines.append) < 5 and lock.held
    assert lines == [] and path.is_file() and not free(path)
    lock.release()
    lock.release()  # twice is fine
    assert not lock.held and free(path) and path.read_bytes() == b""


def test_acquire_waits_for_the_holder_and_says_so_once(tmp_path):
    path = tmp_path / "timing.lock"
    path.write_text("kept")  # never truncated or written
    holder = hold(path)
    lines: list[str] = []
    lock = TimingLock(path)
    taken = threading.Event()
    waiter = threading.Thread(target=lambda: (lock.acquire(lambda: None, lines.append), taken.set()))
    try:
        waiter.start()
        wait_for(lambda: bool(lines))
        time.sleep(0.3)  # several polls
        assert not taken.is_set() and not lock.held
        assert lines == [f"waiting for the timing lock {path} (another run is timing)"]
    finally:
        let_go(holder)
    waiter.join(timeout=20)
    assert taken.is_set() and lock.held and len(lines) == 1
    assert not free(path)
    lock.release()
    assert free(path) and path.read_text() == "kept"


def test_the_stop_check_ends_the_wait_with_nothing_held(tmp_path):
    path = tmp_path / "timing.lock"
    holder = hold(path)
    stop = threading.Event()
    polls = []

    def check_stop() -> None:
        polls.append(1)
        if stop.is_set():
            raise Interrupted

    lock = TimingLock(path)
    failure: list[BaseException] = []

    def waiting() -> None:
        try:
            lock.acquire(check_stop, lambda line: None)
        except BaseException as e:
            failure.append(e)

    waiter = threading.Thread(target=waiting)
    try:
        waiter.start()
        wait_for(lambda: len(polls) >= 2)  # it checks between tries
        stop.set()
        waiter.join(timeout=20)
        assert not waiter.is_alive()
        assert len(failure) == 1 and isinstance(failure[0], Interrupted)
        assert not lock.held and lock.fd is None
    finally:
        let_go(holder)
    assert free(path)  # this process holds nothing


def test_the_option_is_read_recorded_and_listed(tmp_path):
    assert arguments.parse([], {}).timing_lock is None
    o = arguments.parse([], {"TIMING_LOCK": str(tmp_path / "t.lock")})
    assert o.timing_lock == tmp_path / "t.lock" and o.as_dict()["timing_lock"] == str(tmp_path / "t.lock")
    assert arguments.parse(["--timing-lock", "x.lock"], {"TIMING_LOCK": "y.lock"}).timing_lock == Path("x.lock")
    assert "--timing-lock TIMING_LOCK" in arguments.build_parser().format_help()
    assert not (tmp_path / "t.lock").exists()  # checked, not made


@pytest.mark.parametrize("value,needle", [
    ("/no/such/folder/t.lock", "--timing-lock /no/such/folder/t.lock: no folder /no/such/folder; create it"),
    ("FOLDER", "is a folder; give a file in it"),
])
def test_an_unusable_lock_file_is_one_line_exit_2(value, needle, tmp_path, monkeypatch, capsys):
    """``inference.main`` in this process, as the command runs it (as test_harness's validation tests)."""
    import inference

    monkeypatch.chdir(tmp_path)  # the default output folder
    monkeypatch.setenv("PLATFORM", "CPU")
    value = str(tmp_path) if value == "FOLDER" else value
    code = inference.main(["--dummy", "--timing-lock", value])
    out, err = capsys.readouterr()
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("note: ")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
    assert "Traceback" not in err + out
    with pytest.raises(arguments.OptionError, match="--timing-lock"):
        arguments.parse([], {"TIMING_LOCK": value})


@pytest.mark.slow
def test_two_runs_started_together_time_one_after_the_other(tmp_path):
    """Both runs reach the lock while this test holds it (so they contend whatever the machine's speed); once it is
    let go, their timed loops run one after the other, and neither the wait nor the other run's loop is timed."""
    lock = tmp_path / "timing.lock"
    holder = hold(lock)
    logs = [tmp_path / "a.txt", tmp_path / "b.txt"]

    def start(name: str, log: Path) -> subprocess.Popen:
        with log.open("w") as out:
            return subprocess.Popen([sys.executable, "inference.py", "--dummy", "--arch", "v4.0", "--platform", "CPU",
                                     "--data-height", "64", "--data-width", "96", "--num-inputs", "20", "--warmup",
                                     "2", "--timing-lock", str(lock), "--output-dir", str(tmp_path / name)],
                                    cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, text=True)

    runs = [start("a", logs[0]), start("b", logs[1])]
    try:
        waiting = f"[stream 1] waiting for the timing lock {lock} (another run is timing)"
        arrived = list(zip(runs, logs, strict=True))
        wait_for(lambda: all(waiting in log.read_text() or p.poll() is not None for p, log in arrived), timeout=240)
        seen = time.monotonic()
        time.sleep(3.0)  # a wait far longer than two small warm-up calls: it must not count in the warm-up either
    finally:
        released = time.monotonic()
        let_go(holder)
        for p in runs:
            p.wait(timeout=300)
    outputs = [log.read_text() for log in logs]
    for p, out in zip(runs, outputs, strict=True):
        assert p.returncode == 0, out
        assert out.count(waiting) == 1 and "[stream 1] timed loop" in out.split(waiting)[1], out
    windows = []
    for name in ("a", "b"):
        doc = json.loads((tmp_path / name / "results.json").read_text())
        assert doc["config"]["options"]["timing_lock"] == str(lock)
        (stream,) = doc["streams"]
        assert stream["pairs"] == 20 and stream["warmup"]["seconds"] < released - seen
        windows.append(tuple(stream["window"]))  # monotonic: one host, one clock (no wall-clock offset needed)
    (s1, e1), (s2, e2) = sorted(windows)
    assert released < s1 < e1 <= s2 < e2, (windows, outputs)
    assert free(lock)
