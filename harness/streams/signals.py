"""How a run stops: the signals it answers, their exit codes, and the processes that must not outlive it.

SIGINT (Ctrl-C), SIGTERM (``timeout``, a scheduler, systemd, CI) and SIGHUP (the console went away) stop a
run whichever process of it they reach, alone or as a whole process group. Before anything is measured
they stop it at once (``StartupSignals``); once streams run, they set the run's stop flag, and every
stream writes what it measured (``StreamStop``). On Linux every process a run starts asks the kernel to
signal it when its parent dies (``die_with_parent``), so a killed parent leaves no stream behind.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType

SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}
EXIT_SIGNAL = {code: sig for sig, code in SIGNAL_EXIT.items()}
PR_SET_PDEATHSIG = 1


class Interrupted(BaseException):
    """A stop asked for by a signal or by the run's stop flag (a BaseException: a library's ``except Exception``
    around the code it interrupts must not turn it into a failure)."""


class StartupInterrupted(BaseException):
    """A signal before anything was measured (a BaseException, so that no ``except Exception`` keeps going)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def install(handler) -> dict:
    """``handler`` for every stopping signal; returns the handlers it replaced."""
    return {sig: signal.signal(sig, handler) for sig in SIGNAL_EXIT}


def restore(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


class StartupSignals:
    """``with StartupSignals() as startup:`` a stopping signal raises StartupInterrupted at once (also when the
    shell that started this process left SIGINT ignored, as a non-interactive shell does for background jobs).
    Some libraries swallow every exception while they import; ``startup.check()`` raises it again."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __enter__(self) -> StartupSignals:
        self._previous = install(self._raise)
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        restore(self._previous)

    def check(self) -> None:
        if self.signum is not None:
            raise StartupInterrupted(self.signum)

    def _raise(self, signum: int, _frame: FrameType | None) -> None:
        self.signum = self.signum or signum
        raise StartupInterrupted(signum)


@contextmanager
def children_start_ignoring() -> Iterator[None]:
    """Processes started inside this block begin with the stopping signals ignored, until they install their
    own handlers (``StreamStop``); a signal to this process meanwhile waits, blocked, and is handled after."""
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, set(SIGNAL_EXIT))
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in SIGNAL_EXIT}
    try:
        yield
    finally:
        restore(previous)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


class StreamStop:
    """A spawned stream's stop flag: the run's shared flag, or a stopping signal to this process. From
    ``loading()`` to ``measuring()`` a signal interrupts at once (loading the model, reading data, the warm-up:
    nothing to keep yet); before and after, it only sets the flag, which the stream checks between frames."""

    def __init__(self, shared) -> None:
        self.shared = shared
        self.signum: int | None = None
        self._at_once = False
        install(self._on_signal)
        # Started inside children_start_ignoring, this process may carry its parent's blocked mask: the
        # handlers are in place now, so a signal that waited is delivered here, and only sets the flag (the
        # stream is not yet inside the code that writes its record whatever happens: ``loading`` raises it there).
        signal.pthread_sigmask(signal.SIG_UNBLOCK, set(SIGNAL_EXIT))

    def loading(self) -> None:
        """From here a signal interrupts at once; one that came before interrupts now."""
        self._at_once = True
        if self.is_set():
            self._at_once = False
            raise Interrupted(signal.Signals(self.signum).name if self.signum else "stopped")

    def measuring(self) -> None:
        self._at_once = False

    def is_set(self) -> bool:
        return self.signum is not None or self.shared.is_set()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        first = self.signum is None
        self.signum = self.signum or signum
        if first and self._at_once:
            self._at_once = False
            raise Interrupted(signal.Signals(signum).name)


def die_with_parent(parent_pid: int | None, sig: int = signal.SIGTERM) -> None:
    """Linux: have the kernel send ``sig`` to this process when its parent (``parent_pid``) dies; if it
    already has, send it now. Elsewhere nothing (the run then relies on its parent's signals)."""
    if parent_pid is None or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), sig)
