"""``--timing-lock FILE``: runs that share a machine take their timed loops in turn.

A stream holds an exclusive ``flock`` on FILE from the end of its first warm-up call (compiles, autotuning and
CUDA graph captures still run in parallel with other runs) to the end of its timed loop. The file is opened for
append (created if missing), never truncated or written; closing it releases the lock, so a stream that dies
holds nothing. The wait polls, so that the run's stop flag still stops a waiting stream.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path

POLL_S = 0.05


class TimingLock:
    """``acquire`` waits (checking ``check_stop`` every POLL_S) until this process holds the lock; ``release``
    gives it back (both idempotent; ``release`` is safe in any ``finally``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None
        self.held = False

    def acquire(self, check_stop: Callable[[], None], say: Callable[[str], None]) -> float:
        """Blocks until the lock is held; returns the seconds spent waiting. Whatever ``check_stop`` raises
        propagates, with the lock not held."""
        if self.held:
            return 0.0
        t0 = time.monotonic()
        try:
            if self.fd is None:
                self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
            told = False
            while not self._try():
                if not told:
                    say(f"waiting for the timing lock {self.path} (another run is timing)")
                    told = True
                check_stop()
                time.sleep(POLL_S)
                check_stop()
        except BaseException:
            self.release()
            raise
        return time.monotonic() - t0

    def _try(self) -> bool:
        assert self.fd is not None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        self.held = True
        return True

    def release(self) -> None:
        fd, self.fd, self.held = self.fd, None, False
        if fd is not None:
            os.close(fd)  # closing the only descriptor of this open file drops its flock
