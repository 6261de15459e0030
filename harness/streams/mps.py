"""CUDA MPS for stream processes that share a GPU.

Without MPS, processes on one CUDA device time-slice: two streams on one GPU add up to about one. Under MPS their
kernels run at once. With ``--mps auto`` (the default) a run whose streams share a CUDA device starts its own MPS
control daemon for its duration (pipe and log folders in the output folder), when ``nvidia-cuda-mps-control`` is
on the PATH and no daemon already runs; ``on`` insists (one line and exit 2 when it cannot start); ``off`` never
starts one. The daemon is stopped at the end of the run, also after a failure or a signal, and it dies with the
run's process if that is killed.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import cast

from rife.vocabulary import MPS_MODES

CONTROL = "nvidia-cuda-mps-control"
PIPE_VARIABLE = "CUDA_MPS_PIPE_DIRECTORY"
LOG_VARIABLE = "CUDA_MPS_LOG_DIRECTORY"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
# A Unix socket's path must fit in 108 bytes; the daemon adds its own names under the pipe folder.
MAX_PIPE_DIR = 80


class MpsError(Exception):
    """MPS was asked for (``--mps on``) and cannot run; the message says why and what to do."""


@dataclass(frozen=True)
class MpsOutcome:
    """What the run did about MPS, as ``results.json`` records it."""

    mode: str
    used: bool
    started: bool  # this run started (and stopped) its own daemon
    reason: str
    pipe_dir: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def streams_share_a_device(kind: str, device_ids: tuple[int, ...], streams: int) -> bool:
    """Whether round-robin placement puts two or more streams on one CUDA device."""
    return kind == "cuda" and streams > max(1, len(device_ids))


def daemon_running(proc: Path = Path("/proc")) -> bool:
    """Whether an MPS control daemon already runs on this host (ours would compete with it for the GPUs)."""
    for comm in proc.glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == CONTROL:
                return True
        except OSError:  # the process ended while we looked
            continue
    return False


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class MpsDaemon:
    """A context manager: ``outcome`` says what was decided; inside it, stream processes started afterwards
    inherit the pipe folder through the environment and connect to the daemon."""

    def __init__(self, mode: str, needed: bool, output_dir: Path, control: str = CONTROL) -> None:
        if mode not in MPS_MODES:
            raise ValueError(f"MPS mode {mode!r} is not one of {', '.join(MPS_MODES)}")
        self.mode, self.needed, self.output_dir, self.control = mode, needed, output_dir, control
        self.outcome = MpsOutcome(mode, used=False, started=False, reason="not decided")
        self._proc: subprocess.Popen | None = None
        self._saved_env: dict[str, str | None] = {}
        self._temp_pipe: Path | None = None
        self._pipe: Path | None = None

    def __enter__(self) -> MpsDaemon:
        self.outcome = self._start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _start(self) -> MpsOutcome:
        if self.mode == "off":
            return MpsOutcome("off", False, False, "off (--mps off)")
        if not self.needed:
            return MpsOutcome(self.mode, False, False, "no CUDA device is shared by two streams")
        if os.environ.get(PIPE_VARIABLE) or daemon_running():
            return MpsOutcome(self.mode, True, False, "an MPS daemon already runs; the streams use it",
                              os.environ.get(PIPE_VARIABLE))
        exe = shutil.which(self.control)
        if exe is None:
            return self._cannot(f"{self.control} is not on the PATH (it comes with the NVIDIA driver's CUDA tools)")
        pipe, log = self._folders()
        self._pipe = pipe
        with open(log / "control.out", "ab") as out:
            self._proc = subprocess.Popen([exe, "-f"], env={**os.environ, PIPE_VARIABLE: str(pipe), LOG_VARIABLE: str(log)},
                                          stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                          start_new_session=True, preexec_fn=_die_with_parent)
        if not self._wait_ready(pipe):
            self.stop()
            return self._cannot(f"{self.control} did not start within {START_TIMEOUT_S:g} s (its log: {log})")
        for name, value in ((PIPE_VARIABLE, str(pipe)), (LOG_VARIABLE, str(log))):
            self._saved_env[name] = os.environ.get(name)
            os.environ[name] = value
        return MpsOutcome(self.mode, True, True, "started for this run", str(pipe))

    def _cannot(self, why: str) -> MpsOutcome:
        if self.mode == "on":
            raise MpsError(f"--mps on: {why}; use --mps off (or auto) to run the streams time-sliced")
        return MpsOutcome(self.mode, False, False, f"not available: {why}")

    def _folders(self) -> tuple[Path, Path]:
        base = self.output_dir.resolve() / "mps"
        log = base / "log"
        log.mkdir(parents=True, exist_ok=True)
        pipe = base / "pipe"
        if len(str(pipe)) > MAX_PIPE_DIR:  # too long for the daemon's sockets
            self._temp_pipe = pipe = Path(tempfile.mkdtemp(prefix="rife-mps-"))
        pipe.mkdir(parents=True, exist_ok=True)
        return pipe, log

    def _wait_ready(self, pipe: Path) -> bool:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                return False
            if (pipe / "control").exists():
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        """Quits the daemon this run started (its server with it) and restores the environment."""
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env = {}
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            self._quit(proc)
        if self._temp_pipe is not None:
            shutil.rmtree(self._temp_pipe, ignore_errors=True)
            self._temp_pipe = None

    def _quit(self, proc: subprocess.Popen) -> None:
        try:  # the client talks to our daemon only: its pipe folder is named, never the default one
            subprocess.run([cast("list[str]", proc.args)[0]], input=b"quit\n", env={**os.environ, PIPE_VARIABLE: str(self._pipe)},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=STOP_TIMEOUT_S, check=False)
            proc.wait(timeout=STOP_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired):
            proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
