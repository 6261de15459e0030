"""Several machines through torchrun: one stream per rank, run in the rank's own process.

Barriers and the stop flag live in torch.distributed's store (the one torchrun's agent hosts), and the
records are gathered over the gloo backend, so the same code runs on GPUs and CPUs. Barriers poll the
store from Python instead of blocking in a collective: a SIGTERM (torchrun's agent sends one to every
worker when one of them dies) is handled at once, a stopped rank leaves a barrier without throwing the
gloo group out of step, and the gather of the records stays the one collective every live rank reaches.
"""

from __future__ import annotations

import os
import platform
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from harness.results.records import StreamRecord, StreamStatus

if TYPE_CHECKING:  # torch.distributed loads when a rank joins: reading the launch costs nothing
    import torch.distributed as dist

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR")
POLL_S = 0.02       # barrier polls of the store
STOP_POLL_S = 0.1   # how soon a stop set on one rank reaches the others
STOP_KEY = "stop"


class DistributedError(Exception):
    """Joining the other ranks or gathering their records failed; the message is one line."""


@dataclass(frozen=True)
class Launch:
    """Where torchrun put this process."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    restart: int = 0

    @property
    def stream(self) -> int:
        return self.rank + 1


def launch_from_env(environ: Mapping[str, str] = os.environ) -> Launch | None:
    """The torchrun launch this process is part of, or None when it was started otherwise."""
    if not all(name in environ for name in TORCHRUN_VARIABLES):
        return None
    return Launch(int(environ["RANK"]), int(environ["WORLD_SIZE"]), int(environ["LOCAL_RANK"]),
                  int(environ.get("LOCAL_WORLD_SIZE", environ["WORLD_SIZE"])),
                  int(environ.get("TORCHELASTIC_RESTART_COUNT", "0")))


class DistStop:
    """The run's stop flag across ranks: ``set()`` here (a signal, a failure) reaches every rank, and a stop set
    anywhere is seen here, within STOP_POLL_S. ``is_set()`` reads a local flag only: cheap in the timed loop."""

    def __init__(self, store: dist.Store) -> None:
        self._store, self._local, self._halt = store, threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._share, name="stop-flag", daemon=True)
        self._thread.start()

    def set(self) -> None:
        self._local.set()

    def is_set(self) -> bool:
        return self._local.is_set()

    def close(self) -> None:
        self._halt.set()
        self._thread.join()
        if self._local.is_set():
            self._publish()

    def _share(self) -> None:
        try:
            while not self._halt.is_set():
                if self._local.wait(STOP_POLL_S):
                    self._publish()
                    return
                if self._store.check([STOP_KEY]):
                    self._local.set()
                    return
        except RuntimeError:  # the store's host is gone: nothing left to share
            return

    def _publish(self) -> None:
        try:
            self._store.set(STOP_KEY, "1")
        except RuntimeError:
            pass


class DistBarrier:
    """A barrier of every rank in the store, with multiprocessing.Barrier's ``wait(timeout)``: it raises
    threading.BrokenBarrierError on a timeout and once the stop flag is set (as an aborted Barrier does)."""

    def __init__(self, store: dist.Store, name: str, world_size: int, stop: DistStop) -> None:
        self.name, self.world_size, self.store, self.stop = name, world_size, store, stop
        self.passes = 0  # reusable, as multiprocessing's: every rank waits as often, so the n-th waits meet

    def wait(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout if timeout is not None else float("inf"))
        key = f"barrier/{self.name}/{self.passes}"
        self.passes += 1
        try:
            if self.stop.is_set():
                raise threading.BrokenBarrierError
            self.store.add(key, 1)
            while self.store.add(key, 0) < self.world_size:
                if self.stop.is_set() or time.monotonic() > deadline:
                    raise threading.BrokenBarrierError
                time.sleep(POLL_S)
        except RuntimeError as e:  # the store is unreachable
            raise threading.BrokenBarrierError from e


class Group:
    """This rank's membership: the gloo process group, the store, the stop flag and every rank's host name."""

    def __init__(self, launch: Launch, timeout_s: float) -> None:
        self.launch = launch
        import torch.distributed as dist

        timeout = timedelta(seconds=timeout_s)
        try:
            store, _, _ = next(dist.rendezvous("env://", launch.rank, launch.world_size, timeout=timeout))
            dist.init_process_group("gloo", store=dist.PrefixStore("gloo", store), rank=launch.rank,
                                    world_size=launch.world_size, timeout=timeout)
            self.hosts: list[str] = [""] * launch.world_size
            dist.all_gather_object(self.hosts, platform.node())
        except (RuntimeError, ValueError) as e:
            raise DistributedError(f"rank {launch.rank} could not join the other ranks: {_first_line(e)}") from None
        self.store = dist.PrefixStore(f"rife-bench/{launch.restart}", store)
        self.stop = DistStop(self.store)

    def barrier(self, name: str) -> DistBarrier:
        return DistBarrier(self.store, name, self.launch.world_size, self.stop)

    def gather(self, record: StreamRecord) -> list[StreamRecord] | None:
        """Rank 0: every rank's record, in rank order; the others: None. DistributedError when a rank is gone."""
        import torch.distributed as dist

        out: list | None = [None] * self.launch.world_size if self.launch.rank == 0 else None
        try:
            dist.gather_object(record, out, dst=0)
        except RuntimeError as e:
            raise DistributedError(f"rank {self.launch.rank}: gathering the results failed: {_first_line(e)}") from None
        return out

    def lost(self, rank: int) -> StreamRecord:
        """The record of a rank that left nothing behind."""
        error = f"rank {rank} (host {self.hosts[rank]}) died or stopped answering"
        return StreamRecord(stream=rank + 1, rank=rank, host=self.hosts[rank], status=StreamStatus.FAILED, error=error)

    def close(self) -> None:
        import torch.distributed as dist

        self.stop.close()
        dist.destroy_process_group()


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
