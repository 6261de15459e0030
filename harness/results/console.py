"""output.log written by the program itself: everything this process and its stream processes print goes to
the console and, appended, to OUTPUT_DIR/output.log.

The standard output and error descriptors are replaced by pipes that threads copy to both places, so the
stream processes (which inherit them) are captured too. A console that goes away (a closed terminal, a
killed ``tee``, ``| head``) costs only the console: the log goes on. A log that cannot be written (disk full)
is said once on the console, which keeps everything.
"""

from __future__ import annotations

import datetime as _dt
import os
import select
import sys
import threading
from pathlib import Path

PROGRESS_TTY = "RIFE_PROGRESS_TTY"  # read by harness.streams.stream's progress bar
DRAIN_S = 0.2  # at close: how long the copiers wait for the last bytes of writers that are still alive


class ConsoleLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._log_ok = True
        self._consoles: dict[int, int] = {}  # fd -> its console copy (-1 once the console is gone)
        self._threads: list[threading.Thread] = []

    def start(self, header: str) -> ConsoleLog:
        self._to_log(f"===== {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%dT%H:%M:%SZ} {header}\n".encode())
        if os.isatty(2) and not os.environ.get(PROGRESS_TTY):  # the progress bar still draws on the terminal
            os.environ[PROGRESS_TTY] = os.ttyname(2)
        for fd, stream in ((1, sys.stdout), (2, sys.stderr)):
            stream.flush()
            self._consoles[fd] = os.dup(fd)
            read_end, write_end = os.pipe()
            os.dup2(write_end, fd)
            os.close(write_end)
            thread = threading.Thread(target=self._copy, args=(read_end, fd), name=f"log-{fd}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def close(self) -> None:
        """The console back on its own descriptors; what was printed is in the log."""
        for fd, stream in ((1, sys.stdout), (2, sys.stderr)):
            try:
                stream.flush()
            except OSError:
                pass
            console = self._consoles.get(fd, -1)
            if console >= 0:
                os.dup2(console, fd)
        self._closing.set()
        for thread in self._threads:
            thread.join()
        os.close(self._log)

    def _copy(self, read_end: int, fd: int) -> None:
        pending = b""
        while True:
            ready, _, _ = select.select([read_end], [], [], DRAIN_S if self._closing.is_set() else 0.5)
            if not ready:
                if self._closing.is_set():
                    break
                continue
            data = os.read(read_end, 65536)
            if not data:
                break
            self._to_console(fd, data)
            # The log takes whole lines, so that the two pipes' lines do not cut into each other there.
            pending += data
            end = pending.rfind(b"\n") + 1
            if end:
                self._to_log(pending[:end])
                pending = pending[end:]
        if pending:
            self._to_log(pending + b"\n")
        os.close(read_end)

    def _to_console(self, fd: int, data: bytes) -> None:
        console = self._consoles[fd]
        if console < 0:
            return
        try:
            _write_all(console, data)
        except OSError:  # the console went away: the log goes on
            self._consoles[fd] = -1

    def _to_log(self, data: bytes) -> None:
        with self._lock:
            if not self._log_ok:
                return
            try:
                _write_all(self._log, data)
            except OSError as e:
                self._log_ok = False
                note = f"note: {self.path}: cannot write ({e.strerror}, errno {e.errno}); the console keeps the rest\n"
                self._to_console(2, note.encode())


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
