"""Stops, re-runs and the user's files: signals to one process or the whole group at every phase, a killed
parent, a console that goes away, a re-run into a used folder, get_model.sh and the user's paths."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rife import assets

ROOT = Path(__file__).resolve().parent.parent
SMALL = {"PLATFORM": "CPU", "DATA_HEIGHT": "64", "DATA_WIDTH": "96", "WARMUP": "1", "GET_MODEL": "no"}


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, **SMALL, **(extra or {})}


def start(command: list[str], out: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """A run in a process group of its own (as a shell, ``timeout`` or a scheduler starts one)."""
    return subprocess.Popen(command, env=_env({"OUTPUT_DIR": str(out), **(env or {})}), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def run_model_cmd(*args: str) -> list[str]:
    return [str(ROOT / "run_model.sh"), *args]


def inference_cmd(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "inference.py"), *args]


def wait_for(path: Path, marker: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if marker in _read(path):
            return
        time.sleep(0.1)
    raise AssertionError(f"no {marker!r} in {path}:\n{_read(path)}")


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def group_alive(pgid: int) -> list[str]:
    out = subprocess.run(["ps", "-o", "pid=,args=", "-g", str(pgid)], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line.strip()]


def wait_gone(pgid: int, timeout: float = 60) -> list[str]:
    deadline = time.monotonic() + timeout
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    return group_alive(pgid)


# --- signals ---------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_to_the_group_during_start_up_stops_at_once(tmp_path, sig, code):
    """Before anything is measured (Python starting, torch loading): the run stops with the signal's code and
    leaves no process behind. SIGINT is not ignored although the shell starts the program in the background."""
    proc = start(run_model_cmd("--dummy", "--num-inputs", "100000"), tmp_path)
    wait_for(tmp_path / "output.log", "===== run_model")
    os.killpg(proc.pid, sig)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == code, out
    assert "Traceback" not in out
    assert wait_gone(proc.pid) == []


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["warm-up", "timed"])
def test_sigterm_to_the_group_keeps_what_was_measured(tmp_path, phase):
    """As ``timeout`` or a scheduler stops a run: every process of the group gets SIGTERM; the streams write
    their records, the program writes results.json and output.log itself, nothing is left running."""
    warmup = "10000" if phase == "warm-up" else "1"
    proc = start(run_model_cmd("--dummy", "--streams", "2", "--num-inputs", "100000"), tmp_path, {"WARMUP": warmup})
    wait_for(tmp_path / "output.log", f"[stream 2] {phase}: ")
    if phase == "timed":
        wait_for(tmp_path / "output.log", "[stream 1] timed: ")
    os.killpg(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, out
    assert wait_gone(proc.pid) == []
    doc = load(tmp_path / "results.json")
    assert doc["results"]["status"] == "interrupted"
    assert [s["status"] for s in doc["streams"]] == ["interrupted", "interrupted"], doc["streams"]
    for i in (1, 2):
        assert load(tmp_path / f"results_{i}.json")["streams"][0]["status"] == "interrupted"
    if phase == "timed":
        assert all(s["pairs"] > 0 and s["throughput_fps"] > 0 for s in doc["streams"])
    log = (tmp_path / "output.log").read_text()
    assert "SIGTERM: stopping all streams" in log and "status           interrupted" in log
    assert "Traceback" not in out + log


@pytest.mark.slow
def test_a_killed_run_model_leaves_no_process_and_the_results_are_written(tmp_path):
    proc = start(run_model_cmd("--dummy", "--streams", "2", "--num-inputs", "100000"), tmp_path)
    wait_for(tmp_path / "output.log", "timed: ")
    proc.kill()  # SIGKILL to run_model.sh alone: the program learns of it from the kernel
    proc.communicate(timeout=60)
    assert wait_gone(proc.pid) == []
    doc = load(tmp_path / "results.json")
    assert doc["results"]["status"] == "interrupted" and doc["results"]["metrics"]["throughput"]["avg"] > 0


@pytest.mark.slow
def test_a_killed_parent_leaves_each_streams_record(tmp_path):
    proc = start(inference_cmd("--dummy", "--streams", "2", "--num-inputs", "100000"), tmp_path)
    wait_for(tmp_path / "output.log", "timed: ")
    proc.kill()
    proc.communicate(timeout=60)
    assert wait_gone(proc.pid) == []
    for i in (1, 2):
        record = load(tmp_path / f"results_{i}.json")["streams"][0]
        assert record["status"] == "interrupted" and record["pairs"] > 0


@pytest.mark.slow
def test_sigterm_to_one_stream_stops_the_run_as_an_interruption(tmp_path):
    proc = start(inference_cmd("--dummy", "--streams", "2", "--num-inputs", "100000"), tmp_path)
    wait_for(tmp_path / "output.log", "[stream 2] timed: ")
    out = subprocess.run(["pgrep", "-P", str(proc.pid), "-f", "spawn_main"], capture_output=True, text=True).stdout
    streams = [int(p) for p in out.split()]
    assert len(streams) == 2, out
    os.kill(streams[0], signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, out
    doc = load(tmp_path / "results.json")
    assert doc["results"]["status"] == "interrupted"
    assert all(s["status"] == "interrupted" and s["pairs"] > 0 for s in doc["streams"])


@pytest.mark.slow
def test_a_long_model_call_is_cut_short_by_a_stop(tmp_path):
    """255 frames per pair: the stop is seen between two of them, not after the whole call."""
    proc = start(inference_cmd("--dummy", "--num-inputs", "1", "--interpolation", "255", "--arch", "paper"),
                 tmp_path, {"WARMUP": "0"})
    wait_for(tmp_path / "output.log", "[stream 1] timed loop: ")
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, out
    stream = load(tmp_path / "results.json")["streams"][0]
    assert stream["status"] == "interrupted" and stream["pairs"] == 0


@pytest.mark.slow
def test_a_console_that_goes_away_costs_nothing(tmp_path):
    """The reader of the program's output closes it mid-run (a dead tee, ``| head``): the run goes on and
    writes output.log and its results."""
    proc = start(inference_cmd("--dummy", "--num-inputs", "30"), tmp_path)
    while "timed: " not in proc.stdout.readline():
        pass
    proc.stdout.close()
    assert proc.wait(timeout=300) == 0
    assert load(tmp_path / "results.json")["results"]["status"] == "passed"
    assert "RIFE benchmark results" in (tmp_path / "output.log").read_text()


class NeverSet:
    """The run's shared stop flag, never set: only signals to this process stop a ``StreamStop``."""

    def is_set(self) -> bool:
        return False


def test_a_signal_that_waited_while_a_stream_started_interrupts_it_where_it_writes_its_record():
    """A stream process starts with the stopping signals blocked (``children_start_ignoring``); one that reached it
    meanwhile is delivered when its handlers are in place. It must only set the flag there (raised then, it would
    end the process before the code that always writes the record), and interrupt once the stream is loading."""
    import threading

    from harness.streams.signals import SIGNAL_EXIT, Interrupted, StreamStop, restore

    saved = {sig: signal.getsignal(sig) for sig in SIGNAL_EXIT}
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)  # pending: blocked in this thread
        stop = StreamStop(NeverSet())  # unblocks: the handler runs here
        assert stop.signum == signal.SIGTERM and stop.is_set()
        with pytest.raises(Interrupted, match="SIGTERM"):
            stop.loading()
        stop.measuring()
        os.kill(os.getpid(), signal.SIGINT)  # while measuring: only the flag, the first signal kept
        assert stop.signum == signal.SIGTERM
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        restore(saved)


def test_a_signal_while_a_stream_loads_interrupts_at_once():
    from harness.streams.signals import SIGNAL_EXIT, Interrupted, StreamStop, restore

    saved = {sig: signal.getsignal(sig) for sig in SIGNAL_EXIT}
    try:
        stop = StreamStop(NeverSet())
        stop.loading()
        with pytest.raises(Interrupted, match="SIGINT"):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the handler runs between bytecodes, long before this ends
    finally:
        restore(saved)


def test_a_signal_while_the_run_polls_its_stop_flag_cannot_deadlock(capsys):
    """The run's handler runs between any two bytecodes of the main thread, also inside ``stop.is_set()``, which
    ``_watch`` calls 20 times a second and which holds the flag's (non-reentrant) lock: the handler must take no
    lock (setting the flag there hung the run for good, now and then), and ``_watch`` then stops the streams."""
    import multiprocessing as mp
    import threading

    import inference

    ctx = mp.get_context("spawn")
    stop, barrier = ctx.Event(), ctx.Barrier(2)
    run = inference.Run.__new__(inference.Run)  # only its signal handling: no setup
    run.signal_received, run._announced = None, False
    handled = threading.Event()

    def signal_inside_is_set():
        with stop._cond:  # where stop.is_set() holds the lock
            run._note_signal(signal.SIGTERM, None)
        handled.set()

    threading.Thread(target=signal_inside_is_set, daemon=True).start()
    assert handled.wait(10), "the signal handler waited for the lock its own thread holds"

    class StreamProcess:  # alive at the first look only
        exitcode = None
        looks = 0

        def is_alive(self) -> bool:
            self.looks += 1
            return self.looks == 1

    run._watch([StreamProcess()], stop, barrier)
    assert stop.is_set() and barrier.broken
    assert "SIGTERM: stopping all streams and writing what was measured" in capsys.readouterr().err


# --- re-runs and the user's files -------------------------------------------------------------------------------


def run_model(args: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(run_model_cmd(*args), env=_env(env), capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.mark.slow
def test_a_rerun_appends_and_a_bad_rerun_touches_nothing(tmp_path):
    out = tmp_path / "out"
    first = run_model(["--dummy", "--num-inputs", "2", "--output-dir", str(out)])
    assert first.returncode == 0, first.stdout + first.stderr
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    for args, env in ((["--dummy", "--streams", "zero", "--output-dir", str(out)], {}),
                      (["--dummy", "--output", str(out)], {}),
                      (["--dummy"], {"OUTPUT_DIR": str(out), "NUM_INPUTS": "-1"})):
        bad = run_model(args, env)
        assert bad.returncode == 2, bad.stdout + bad.stderr
        lines = [line for line in bad.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), bad.stderr
        now = {p.name: p.read_bytes() for p in out.iterdir()}
        assert now.keys() == before.keys()
        assert all(now[name] == before[name] for name in now if name != "output.log")
        assert now["output.log"].startswith(before["output.log"])  # at most the refusal appended
    log = (out / "output.log").read_text()
    assert "error: --streams 'zero' is not valid" in log and "error: NUM_INPUTS='-1'" in log
    assert "--output " not in log  # a folder named only by a refused flag is not written
    second = run_model(["--dummy", "--num-inputs", "2", "--output-dir", str(out)])
    assert second.returncode == 0, second.stdout + second.stderr
    log = (out / "output.log").read_text()
    assert log.startswith(before["output.log"].decode())  # appended, never truncated
    assert log.count("===== run_model: ") == 2 and log.count("RIFE benchmark results") == 2


@pytest.mark.slow
def test_abbreviated_flags_are_refused():
    bad = subprocess.run(inference_cmd("--dummy", "--output", "x", "--stream", "2"), env=_env(), cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert "unrecognized arguments: --output x --stream 2 (flags are written in full" in bad.stderr


@pytest.mark.slow
def test_an_empty_output_dir_is_refused_before_anything_is_written(tmp_path):
    (tmp_path / "output-dir").mkdir()
    (tmp_path / "output-dir" / "output.log").write_text("the previous run\n")
    bad = run_model(["--dummy"], {"OUTPUT_DIR": ""}, cwd=tmp_path)
    assert bad.returncode == 2 and "OUTPUT_DIR='' (--output-dir) is not valid: expected a path" in bad.stderr
    assert (tmp_path / "output-dir" / "output.log").read_text() == "the previous run\n"
    assert [p.name for p in tmp_path.iterdir()] == ["output-dir"]


def _unreachable(url: str) -> bytes:
    raise assets.AssetError("cannot reach drive.usercontent.google.com (offline)")


def test_get_model_reads_the_users_weights_and_never_writes_them(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(assets, "_http_get", _unreachable)
    monkeypatch.setattr(assets, "fetch_v4", lambda path: "v4.0 stand-in")
    user = tmp_path / "mine.pkl"
    user.write_bytes(b"the user's own file")
    paper = tmp_path / "train_log" / "flownet.pkl"
    assets.main(["--arch", "paper", "--weights", str(user), "--paper-weights", str(paper), "--models-dir", str(tmp_path / "model")])
    printed = capsys.readouterr()
    assert user.read_bytes() == b"the user's own file"
    assert f"copy flownet.pkl from RIFE_trained_v6.zip to {paper}" in printed.err
    assert str(user) not in printed.err.split("your weights")[0]  # no advice names the user's file
    assert f"your weights: weights file {user} is not a PyTorch checkpoint" in printed.out + printed.err


def test_a_checkpoint_of_another_variant_in_the_paper_place_is_left_alone(v4_weights, tmp_path, monkeypatch):
    monkeypatch.setattr(assets, "_http_get", lambda url: pytest.fail("nothing may be downloaded over it"))
    dest = tmp_path / "flownet.pkl"
    dest.write_bytes(v4_weights.read_bytes())
    with pytest.raises(assets.AssetError, match="holds a v4.0 checkpoint, not the paper weights; it is left alone"):
        assets.fetch_paper_weights(dest)
    assert dest.read_bytes() == v4_weights.read_bytes()


def test_a_models_folder_get_model_did_not_make_is_left_alone(tmp_path, monkeypatch):
    monkeypatch.setattr(assets, "_http_get", lambda url: pytest.fail("nothing may be downloaded into it"))
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    message = assets.fetch_paper_code(folder)
    assert "was not made by get_model.sh, so it is left alone" in message
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]


def test_random_bytes_as_weights_are_not_a_checkpoint_and_no_advice_to_load_unsafely(tmp_path):
    from rife.checkpoint import CheckpointError, read_state_dict

    noise = tmp_path / "noise.pkl"
    noise.write_bytes(bytes((i * 131 + 7) % 256 for i in range(4096)))
    with pytest.raises(CheckpointError) as err:
        read_state_dict(noise)
    assert str(err.value) == (f"weights file {noise} is not a PyTorch checkpoint (neither a torch.save zip archive "
                              f"nor a pickle); pass an upstream flownet.pkl")
    pickled = tmp_path / "pickled.pkl"
    pickled.write_bytes(b"\x80\x02" + bytes(range(200)))
    with pytest.raises(CheckpointError) as err:
        read_state_dict(pickled)
    assert "weights_only" not in str(err.value) and "not a PyTorch checkpoint of tensors" in str(err.value)


# --- bounds ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env,needle", [
    ({"SEED": str(2**64)}, "SEED='18446744073709551616' (--seed) is not valid: expected an integer from 0 to "
                           "9,223,372,036,854,775,807"),
    ({"MIN_TEST_DURATION": "inf"}, "expected a number from 0 to 604800 (seconds: a week)"),
    ({"WARMUP": "1e20"}, "WARMUP='1e20' (--warmup) is not valid"),
    ({"WARMUP": "20000"}, "expected an integer from 0 to 10,000"),
    ({"INTERPOLATION": "100000"}, "expected an integer from 1 to 255"),
    ({"NUM_INPUTS": "1000000000"}, "expected an integer from 1 to 100,000,000"),
    ({"STREAMS": "5000"}, "expected an integer from 1 to 1,024"),
    ({"INPUT_POOL": "100000"}, "expected an integer from 1 to 4,096"),
])
def test_every_number_has_an_upper_bound(env, needle):
    import arguments

    with pytest.raises(arguments.OptionError, match=None) as err:
        arguments.parse(["--dummy"], env)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_limits_of_this_machine_are_one_line_each():
    from harness.streams.limits import LimitError, check_input_pool, check_streams, pool_bytes

    with pytest.raises(LimitError, match="--streams 1000 is more than the 2 CPUs this process may use"):
        check_streams(1000, cpus=2, host_bytes=2**40)
    with pytest.raises(LimitError, match=r"--streams 32 needs about 16.0 GiB of memory .* use at most 8"):
        check_streams(32, cpus=64, host_bytes=4 * 2**30)
    need = pool_bytes(4096, 1, 720, 1280, 4)
    assert need == 4096 * 2 * 3 * 720 * 1280 * 4
    with pytest.raises(LimitError, match=r"--input-pool needs 84.4 GiB of host memory \(detail\), more than half "
                                         r"of the 16.0 GiB available; lower --input-pool"):
        check_input_pool(need, 16 * 2**30, "host", "detail")
    check_input_pool(pool_bytes(8, 1, 720, 1280, 4), 16 * 2**30, "host", "fits")


@pytest.mark.slow
@pytest.mark.parametrize("args,needle", [
    (["--dummy", "--streams", "1000"], "error: --streams 1000 is more than the"),
    (["--dummy", "--input-pool", "4096", "--data-height", "8192", "--data-width", "8192"],
     "error: --input-pool needs 6144.0 GiB of host memory (4096 pairs of 1 8192x8192 frames"),
])
def test_what_the_machine_cannot_hold_is_refused_up_front(tmp_path, args, needle):
    result = subprocess.run(inference_cmd(*args, "--output-dir", str(tmp_path)), env=_env(), cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(lines) == 1 and lines[0].startswith(needle), result.stderr
    assert not list(tmp_path.glob("results*"))


def test_a_fifo_as_data_is_refused(tmp_path):
    import arguments

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(arguments.OptionError, match="is neither a folder nor a regular file"):
        arguments.parse(["--data", str(fifo)], {})


# --- data checked for real -------------------------------------------------------------------------------------


def _png(rng, h: int = 64, w: int = 64) -> bytes:
    import cv2
    import numpy as np

    ok, png = cv2.imencode(".png", (rng.random((h, w, 3)) * 255).astype(np.uint8))
    assert ok
    return png.tobytes()


def damaged(png: bytes) -> bytes:
    """The same PNG with its image data scrambled and the chunk's CRC made right again: the framing (signature,
    IHDR, CRCs, IEND) is intact, only decoding finds the damage."""
    import struct
    import zlib

    data = bytearray(png)
    at = data.index(b"IDAT")
    length = struct.unpack(">I", data[at - 4:at])[0]
    for k in range(at + 14, at + 4 + length - 8, 7):
        data[k] ^= 0x5A
    data[at + 4 + length:at + 8 + length] = struct.pack(">I", zlib.crc32(bytes(data[at:at + 4 + length])))
    return bytes(data)


def triplet_set(root: Path, names: list[str], size: tuple[int, int] = (64, 64)) -> Path:
    import numpy as np

    rng = np.random.default_rng(0)
    for name in names:
        folder = root / "sequences" / name
        folder.mkdir(parents=True)
        for file in ("im1.png", "im2.png", "im3.png"):
            (folder / file).write_bytes(_png(rng, *size))
    (root / "tri_testlist.txt").write_text("".join(f"{n}\n" for n in names))
    return root


def test_a_damaged_png_is_found_by_the_check_and_skip_bad_skips_it(tmp_path):
    import dataset

    root = triplet_set(tmp_path / "vimeo_triplet", ["00001/0001", "00001/0002", "00001/0003"])
    bad = root / "sequences" / "00001/0002" / "im3.png"
    bad.write_bytes(damaged(bad.read_bytes()))
    assert dataset.png_size(bad.read_bytes()) == (64, 64)  # the framing alone does not tell
    with pytest.raises(dataset.DatasetError, match=f"{bad} does not decode \\(its image data is damaged\\); 1 of the 3"):
        dataset.open_quality_set(root)
    kept = dataset.open_quality_set(root, skip_bad=True)
    assert kept.names == ["00001/0001", "00001/0003"] and kept.bad == ["00001/0002"]
    for i in range(len(kept)):  # what is kept loads, as the streams will load it
        assert kept.load(i).truth.shape == (64, 64, 3)


def test_frames_too_small_to_judge_are_refused_with_the_minimum(tmp_path):
    import dataset

    root = triplet_set(tmp_path / "vimeo_triplet", ["a/1"], size=(1, 1))
    with pytest.raises(dataset.DatasetError, match=r"is 1x1, smaller than the 11x11 quality mode can judge"):
        dataset.open_quality_set(root)


@pytest.mark.parametrize("entry", ["../outside", "a/../../outside", "/etc", "a\\..\\b"])
def test_list_entries_stay_inside_the_data_folder(tmp_path, entry):
    import dataset

    root = triplet_set(tmp_path / "vimeo_triplet", ["a/1"])
    (root / "tri_testlist.txt").write_text(f"a/1\n{entry}\n")
    with pytest.raises(dataset.DatasetError, match="which leads out of the data folder"):
        dataset.open_quality_set(root)


def test_a_fifo_inside_the_data_is_a_bad_file_not_a_hang(tmp_path):
    import dataset

    root = triplet_set(tmp_path / "vimeo_triplet", ["a/1", "a/2"])
    fifo = root / "sequences" / "a/2" / "im1.png"
    fifo.unlink()
    os.mkfifo(fifo)
    with pytest.raises(dataset.DatasetError, match=f"{fifo} is not a regular file"):
        dataset.open_quality_set(root)
    assert dataset.open_quality_set(root, skip_bad=True).names == ["a/1"]


# --- write errors ----------------------------------------------------------------------------------------------


def test_a_failed_write_names_the_file_and_errno_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    import errno

    from harness.results import document as results

    target = tmp_path / "results.json"
    target.write_text("the complete previous record\n")

    def full(*_args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(results.os, "replace", full)
    with pytest.raises(OSError) as err:
        results.write_json(target, {"a": 1})
    assert results.write_error(err.value) == f"cannot write {target}: No space left on device (errno 28, ENOSPC)"
    assert target.read_text() == "the complete previous record\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs (root only; skipped elsewhere)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(folder: Path) -> None:
    try:
        with (folder / "filler").open("wb", buffering=0) as f:
            while True:
                f.write(b"\0" * 4096)
    except OSError:  # full
        pass


@pytest.mark.slow
def test_disk_full_during_a_run_is_one_line_per_file_and_the_console_keeps_the_numbers(small_disk):
    proc = start(inference_cmd("--dummy", "--num-inputs", "100000"), small_disk)
    wait_for(small_disk / "output.log", "[stream 1] timed: ")
    fill(small_disk)
    os.killpg(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, out
    assert "Traceback" not in out
    assert f"error: cannot write {small_disk}/results.json: No space left on device (errno 28, ENOSPC)" in out
    assert "RIFE benchmark results" in out and "status           interrupted" in out
    assert not [p.name for p in small_disk.iterdir() if p.name.endswith(".tmp")]


# --- words and a first command on a CPU ------------------------------------------------------------------------


def test_a_first_cpu_run_ends_in_about_a_minute_and_says_so():
    import torch

    import arguments
    import inference
    from harness.measure.stop import StopRule

    cpu = torch.device("cpu")
    o = arguments.parse(["--dummy"], {})
    quick = inference.quick_on_cpu(o, cpu)
    assert (quick.warmup, quick.time_cap_s, quick.num_inputs) == (1, inference.CPU_QUICK_TIMED_S, 100)
    assert "the run takes about a minute: 1 warm-up pair(s), then 100 pairs of 448x256 frames or 45 s" in inference.quick_note(quick)
    for chosen in (["--num-inputs", "5"], ["--max-test-duration", "9"], ["--min-test-duration", "1"]):
        assert inference.quick_on_cpu(arguments.parse(["--dummy", *chosen], {}), cpu).time_cap_s is None
    assert inference.quick_on_cpu(o, torch.device("cuda")) is o
    assert inference.quick_on_cpu(arguments.parse(["--dummy", "--warmup", "3"], {}), cpu).warmup == 3
    rule = StopRule(1, 100, 0.0, 45.0)  # what a capped stream runs: valid whenever it stops
    assert rule.should_stop(3, 45.0) and rule.shortfalls(3, 45.0) == []


def test_invisible_characters_in_a_profile_header_are_shown_escaped(tmp_path):
    from harness.results.summary import ProfileError, read_profile

    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbfmodel_name,streams\nRIFE,1\n")
    assert read_profile(bom) == (["model_name", "streams"], [["RIFE", "1"]])  # a byte-order mark is not a column
    hidden = tmp_path / "hidden.csv"
    hidden.write_text("model_name,str\u200beams\nRIFE,1\n")
    with pytest.raises(ProfileError, match=r"column 'str\\u200beams' is not a run variable"):
        read_profile(hidden)


def test_the_random_weights_warning_does_not_send_the_user_back_to_what_just_failed(tmp_path):
    import warnings

    from rife.loader import ModelChoice, _random_model

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _random_model(ModelChoice(arch="paper", allow_random_init=True), tmp_path / "none.pkl")
    text = " ".join(str(w.message) for w in caught)
    assert "seeded random weights" in text and "run ./get_model.sh" not in text


@pytest.mark.slow
def test_a_sweep_stopped_with_its_group_keeps_its_rows_and_summary(tmp_path):
    """``timeout 30 ./benchmark.sh``: the signal reaches the sweep, its log's tee, the row's run and its streams."""
    header = "model_name,num_inputs,streams,data_height,data_width,platform,dummy,warmup"
    profile = tmp_path / "three.csv"
    profile.write_text(f"{header}\nRIFE,2,1,64,96,CPU,yes,1\nRIFE,100000,1,64,96,CPU,yes,1\nRIFE,2,1,64,96,CPU,yes,1\n")
    out = tmp_path / "out"
    env = {k: v for k, v in _env().items() if k not in ("OUTPUT_DIR", "DUMMY", "PLATFORM", "WARMUP")}
    proc = subprocess.Popen([str(ROOT / "benchmark.sh")], env={**env, "PROFILE": str(profile), "OUTPUT_DIR": str(out)},
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    wait_for(out / "test_2" / "output.log", "[stream 1] timed: ")
    os.killpg(proc.pid, signal.SIGTERM)
    output, _ = proc.communicate(timeout=180)
    assert proc.returncode == 143, output
    assert wait_gone(proc.pid) == []
    import csv

    with (out / "summary.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows] == ["passed", "interrupted", "not run"]
    assert rows[1]["exit_code"] == "143" and float(rows[1]["throughput_frames_per_s"]) > 0
    assert "interrupted: stopping after test_2" in (out / "benchmark.log").read_text()
