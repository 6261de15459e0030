"""Our engine as LoadGen's system under test, our frames as its query sample library.

A sample is one frame pair; its response is the generated frame nearest t = 0.5 (uint8, C x H x W), whose bytes
LoadGen logs in accuracy mode. Every model call goes through the measurement core's ``Meter`` (its latency clock
too), so the run keeps its own per-call device times next to LoadGen's query latencies. SingleStream and MultiStream
queries are answered on LoadGen's thread (it waits for each); Server and Offline queries go to a worker that batches
what is queued, up to ``--batch-size`` pairs a call, and keeps two calls in flight: the next batch crosses the bus
and computes while the previous one's frames come back and are answered, as a serving pipeline overlaps them. A
batch is assembled on the device from the held frames, never stacked on the host.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from harness.measure.core import Meter, Timed, checkpoint
from harness.measure.inputs import HostBatch

if TYPE_CHECKING:
    from harness.samples.dataset import TripletSet


@dataclass
class SampleLibrary:
    """LoadGen's QSL: ``total`` frame pairs, ``load(i)`` gives pair i as uint8 (3, H, W) tensors; the performance
    set (``performance`` pairs) is held in host memory between LoadGen's load and unload calls."""

    total: int
    performance: int
    load: Callable[[int], tuple[torch.Tensor, torch.Tensor]]
    pin: bool = False  # held in page-locked memory (CUDA), so that a single sample's upload is asynchronous
    held: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)

    def load_samples(self, indices: Sequence[int]) -> None:
        for i in indices:
            if i not in self.held:
                first, last = self.load(i)
                self.held[i] = (first.pin_memory(), last.pin_memory()) if self.pin else (first, last)

    def unload_samples(self, indices: Sequence[int]) -> None:
        for i in indices:
            self.held.pop(i, None)

    def pairs(self, indices: Sequence[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The samples' frames: the held ones as they are (pinned on CUDA), the others loaded now."""
        return [self.held[i] if i in self.held else self.load(i) for i in indices]


def random_pair(seed: int, index: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Dummy sample ``index``: two random uint8 (3, H, W) frames, the same for the same seed and index."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + index)
    first, last = (torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=gen) for _ in range(2))
    return first, last


def dummy_library(seed: int, pool: int, size: tuple[int, int], pin: bool) -> SampleLibrary:
    """Performance mode's QSL: ``pool`` seeded random pairs."""
    return SampleLibrary(pool, pool, lambda i: random_pair(seed, i, *size), pin=pin)


def triplet_library(tset: TripletSet, share: Sequence[int], preload_bytes: int,
                    pin: bool) -> tuple[SampleLibrary, Callable[[int], torch.Tensor]]:
    """Quality mode's QSL: the stream's triplets ``share`` of ``tset`` (decoded when LoadGen loads them; as many
    held at once as fit in ``preload_bytes``), and each sample's truth."""
    h, w = tset.size

    def chw(frame: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(frame).permute(2, 0, 1).contiguous()

    def pair(i: int) -> tuple[torch.Tensor, torch.Tensor]:
        t = tset.load(share[i])
        return chw(t.first), chw(t.last)

    fits = max(1, preload_bytes // (6 * h * w))  # two uint8 RGB frames a sample
    return SampleLibrary(len(share), min(len(share), fits), pair, pin=pin), lambda i: chw(tset.load(share[i]).truth)


def single_samples(library: SampleLibrary) -> Iterator[HostBatch]:
    """The library's pairs one at a time, over and over."""
    while True:
        for i in range(library.total):
            first, last = library.pairs([i])[0]
            yield HostBatch(first[None], last[None])  # views of the held frames, not copies


class EngineSUT:
    """Answers LoadGen's queries with ``meter``'s calls; ``judged``: which generated frame is the response."""

    def __init__(self, meter: Meter, library: SampleLibrary, batch_size: int, scenario: str, judged: int,
                 complete: Callable[[list[Any]], None]) -> None:
        self.meter, self.library, self.batch_size, self.judged = meter, library, batch_size, judged
        self.complete = complete  # lg.QuerySamplesComplete (a stand-in in tests)
        self.synchronous = scenario in ("SingleStream", "MultiStream")
        self.timed = Timed(meter.interpolation)
        self.pairs_done = 0
        self.answered_at = 0.0  # monotonic time of the last answer
        self.pending: queue.Queue = queue.Queue()
        self.error: BaseException | None = None
        self.worker: threading.Thread | None = None

    def start(self) -> None:
        if not self.synchronous:
            self.worker = threading.Thread(target=self._serve, name="sut-worker", daemon=True)
            self.worker.start()

    def issue_queries(self, samples: list[Any]) -> None:
        if self.timed.clock is None:  # the clock starts with LoadGen's first query, after its samples are loaded
            self.meter.begin(self.timed)
        if self.synchronous:
            for k in range(0, len(samples), self.batch_size):
                self._answer(samples[k:k + self.batch_size])
        else:
            for s in samples:
                self.pending.put(s)

    def flush_queries(self) -> None:
        return None

    def stop(self) -> Timed:
        """After LoadGen's test: the worker ends, the device's work is done, every latency read."""
        if self.worker is not None:
            self.pending.put(None)
            self.worker.join()
        self.meter.settle(self.timed)
        if self.answered_at:  # the device was done then: LoadGen's own closing work is not the system's time
            self.timed.end = self.answered_at
        if self.error is not None:
            raise self.error
        return self.timed

    def _serve(self) -> None:
        """Batches from the queue, each issued before the previous one is waited for and answered."""
        in_flight: InFlight | None = None
        while True:
            samples = self._next_batch(wait=in_flight is None)
            issued = self._issue(samples) if samples else None
            if in_flight is not None:
                self._finish(in_flight)
            in_flight = issued
            if samples is None and in_flight is None:
                return

    def _next_batch(self, wait: bool) -> list[Any] | None:
        """Up to ``batch_size`` queued samples; [] when none is queued and ``wait`` is off; None at the end."""
        try:
            first = self.pending.get() if wait else self.pending.get_nowait()
        except queue.Empty:
            return []
        if first is None:
            return None
        batch = [first]
        while len(batch) < self.batch_size:
            try:
                more = self.pending.get_nowait()
            except queue.Empty:
                break
            if more is None:
                self.pending.put(None)
                break
            batch.append(more)
        return batch

    def _answer(self, samples: list[Any]) -> None:
        self._finish(self._issue(samples))

    def _issue(self, samples: list[Any]) -> InFlight:
        """The call and its frames' copy to the host, queued on the device; nothing waited for."""
        try:
            pending = self.meter.uploader.send_pairs(self.library.pairs([s.index for s in samples]))
            call = self.meter.timed_call(pending, self.timed)
            host = self.meter.copier.download([call.outputs[self.judged]])[0]
            return InFlight(samples, host, self.meter.copier.copied(), call.pairs)
        except BaseException as e:  # LoadGen must still hear of every sample, or it waits forever
            self.error = self.error or e
            return InFlight(samples, None, None, 0)

    def _finish(self, flight: InFlight) -> None:
        """Waits for ``flight``'s frames on the host, then answers its samples."""
        outputs = None
        if flight.host is not None:
            try:
                if flight.copied is not None:
                    flight.copied.synchronize()
                outputs = [flight.host[k].numpy() for k in range(len(flight.samples))]
                self.pairs_done += flight.pairs
                checkpoint(self.timed, self.pairs_done)
            except BaseException as e:
                self.error = self.error or e
        self._respond(flight.samples, outputs)

    def _respond(self, samples: list[Any], outputs: list[np.ndarray] | None) -> None:
        import mlperf_loadgen as lg

        responses, buffers = [], []  # alive until QuerySamplesComplete has copied what it logs
        for k, s in enumerate(samples):
            if outputs is None:
                responses.append(lg.QuerySampleResponse(s.id, 0, 0))
                continue
            data = np.ascontiguousarray(outputs[k])
            buffers.append(data)
            address, _ = data.__array_interface__["data"]
            responses.append(lg.QuerySampleResponse(s.id, address, data.nbytes))
        self.complete(responses)
        self.answered_at = time.monotonic()
        del buffers


@dataclass
class InFlight:
    """A batch whose call is queued on the device: its samples, the pinned host frames being filled, and the event
    after which they are complete (None on the CPU, where they are complete already)."""

    samples: list[Any]
    host: torch.Tensor | None
    copied: Any
    pairs: int
