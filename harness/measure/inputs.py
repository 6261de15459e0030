"""Feeding a stream: random frame pairs (performance mode) or dataset batches (quality mode),
delivered to the device as model inputs (``Uploader``), and results back to the host (``HostCopier``).
Uploads and downloads are part of the timed loop, as in a real video pipeline, on their own streams."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from harness.measure.metrics import to_uint8
from harness.system import device as dev
from rife.engine import Engine


@dataclass
class HostBatch:
    """One model call's inputs as they arrive: uint8 (B, 3, H, W) on the host, or, with ``ready``,
    model inputs already on the device (the reference's performance mode)."""

    first: Tensor
    last: Tensor
    truth: Tensor | None = None
    names: list[str] | None = None
    ready: bool = False
    # Sample k's first frame is sample k - 1's last, sample 0's the last frame of the batch before (consecutive
    # pairs of a video): ``Engine.interpolate`` may then encode each frame once.
    follows: bool = False


@dataclass
class DeviceBatch:
    img0: Tensor
    img1: Tensor
    names: list[str] | None
    follows: bool = False


@dataclass
class PendingBatch:
    """A batch on its way to the device: ``done`` is the side stream's event that its copies finished."""

    first: Tensor
    last: Tensor
    names: list[str] | None
    ready: bool
    done: object | None = None
    follows: bool = False


class DummyPairs:
    """A pool of distinct random uint8 frame pairs cycled through (``pool=1`` is the reference's single pair).
    Without ``transfers`` the pool is converted once and stays on the device, as in the reference."""

    def __init__(self, engine: Engine, pool: int, batch: int, height: int, width: int, seed: int, transfers: bool):
        gen = torch.Generator().manual_seed(seed)
        pin = transfers and engine.device.type == "cuda"
        self.size = (height, width)
        self.batches: list[HostBatch] = []
        for _ in range(pool):
            pair = [torch.randint(0, 256, (batch, 3, height, width), dtype=torch.uint8, generator=gen) for _ in range(2)]
            first, last = pair
            if transfers:
                self.batches.append(HostBatch(first.pin_memory(), last.pin_memory()) if pin else HostBatch(first, last))
            else:
                self.batches.append(HostBatch(engine.to_model_input(first.to(engine.device)),
                                              engine.to_model_input(last.to(engine.device)), ready=True))

    def __iter__(self) -> Iterator[HostBatch]:
        step = 0
        while True:
            yield self.batches[step % len(self.batches)]
            step += 1


class DatasetPairs:
    """Quality-mode batches from ``dataset.Prefetcher`` (decoded in worker threads).

    When the stream's share fits in ``preload_bytes`` it is decoded before the timed loop (as LoadGen
    loads its sample library untimed), so PNG decoding never limits the measured throughput; otherwise
    batches are decoded ahead of the device while it runs."""

    def __init__(self, prefetcher, share_bytes: int, preload_bytes: int) -> None:
        self.prefetcher = prefetcher
        self.preloaded = [_host(b) for b in prefetcher] if share_bytes <= preload_bytes else None

    def __iter__(self) -> Iterator[HostBatch]:
        yield from self.preloaded if self.preloaded is not None else (_host(b) for b in self.prefetcher)

    def truths(self, fresh_prefetcher) -> Iterator[tuple[list[str], Tensor]]:
        """The truth frames again, in order, for scoring after the loop (decoded again when not preloaded)."""
        batches = self.preloaded if self.preloaded is not None else (_host(b) for b in fresh_prefetcher())
        for b in batches:
            assert b.names is not None and b.truth is not None  # dataset batches carry both
            yield b.names, b.truth


def _host(b) -> HostBatch:
    return HostBatch(b.first, b.last, b.truth, list(b.names), follows=b.follows)


class Uploader:
    """Host batches to the device, one batch ahead. On CUDA and XPU the copies run on a side stream, so
    the next batch crosses the bus while the device computes the current one (as a video pipeline
    overlaps them); the timed call waits on that copy's event and converts the frames to model inputs."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.stream = dev.side_stream(engine.device)

    def ahead(self, batches: Iterable[HostBatch]) -> Iterator[PendingBatch]:
        """``batches`` as pending uploads, each one's copy started before the previous one is handed out."""
        pending = None
        for batch in batches:
            following = self.send(batch)
            if pending is not None:
                yield pending
            pending = following
        if pending is not None:
            yield pending

    def send(self, batch: HostBatch) -> PendingBatch:
        if batch.ready:
            return PendingBatch(batch.first, batch.last, batch.names, ready=True, follows=batch.follows)
        device = self.engine.device
        if self.stream is None:
            return PendingBatch(batch.first.to(device), batch.last.to(device), batch.names, ready=False,
                                follows=batch.follows)
        with dev.on_stream(device, self.stream):
            first = batch.first.to(device, non_blocking=True)
            last = batch.last.to(device, non_blocking=True)
            done = dev.record_event(device, self.stream)
        return PendingBatch(first, last, batch.names, ready=False, done=done, follows=batch.follows)

    def send_pairs(self, pairs: Sequence[tuple[Tensor, Tensor]]) -> PendingBatch:
        """Separate (3, H, W) frame pairs as one batch, assembled on the device: each frame crosses the bus into
        its slot, with no host-side stacking (pinned frames copy asynchronously)."""
        if self.stream is None:
            return PendingBatch(torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs]), None, False)
        device = self.engine.device
        with dev.on_stream(device, self.stream):
            first, last = (torch.empty((len(pairs), *pairs[0][0].shape), dtype=pairs[0][0].dtype, device=device)
                           for _ in range(2))
            for k, (a, b) in enumerate(pairs):
                first[k].copy_(a, non_blocking=True)
                last[k].copy_(b, non_blocking=True)
            done = dev.record_event(device, self.stream)
        return PendingBatch(first, last, None, ready=False, done=done)

    def receive(self, pending: PendingBatch) -> DeviceBatch:
        """The model inputs (call inside the timed region: the wait and the conversion are part of a call)."""
        if pending.ready:
            return DeviceBatch(pending.first, pending.last, pending.names, pending.follows)
        if pending.done is not None:
            dev.wait_for(self.engine.device, pending.done, pending.first, pending.last)
        to_input = self.engine.to_model_input
        return DeviceBatch(to_input(pending.first), to_input(pending.last), pending.names, pending.follows)


class HostCopier:
    """Device results to pinned host memory without a synchronization; on CUDA and XPU the copy runs on a
    side stream after the result is computed, so the next call's kernels do not queue behind it."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.stream = dev.side_stream(device)

    def copy(self, target: Tensor, source: Tensor) -> Tensor:
        if self.stream is None:
            return target.copy_(source, non_blocking=True)
        source = source.contiguous()  # a plain memcpy on the side stream
        self.stream.wait_stream(dev.current_stream(self.device))
        with dev.on_stream(self.device, self.stream):
            target.copy_(source, non_blocking=True)
        source.record_stream(self.stream)
        return target

    def copied(self):
        """An event after the copies queued so far (None where they are done already: the CPU)."""
        return None if self.stream is None else dev.record_event(self.device, self.stream)

    def download(self, frames: list[Tensor]) -> list[Tensor]:
        """Results back to the host as uint8 (pinned targets on CUDA)."""
        if self.device.type == "cpu":
            return [to_uint8(f) for f in frames]
        hosts = []
        for f in frames:
            u8 = to_uint8(f)
            hosts.append(self.copy(torch.empty(u8.shape, dtype=torch.uint8, pin_memory=self.device.type == "cuda"), u8))
        return hosts


def random_scene(h: int, w: int) -> torch.Tensor:
    """Two uint8 frames (2, 1, 3, H, W) of a fresh random smooth picture, the second shifted by a random
    few pixels: random like noise, but a scene with motion the model can follow (on pure noise, flows
    are chaotic and any rounding change flips them)."""
    coarse = torch.rand(1, 3, h // 8 + 2, w // 8 + 2)
    picture = torch.nn.functional.interpolate(coarse, scale_factor=8, mode="bicubic", align_corners=False)
    dy, dx = (int(v) for v in torch.randint(-4, 5, (2,)))
    shifted = torch.roll(picture, shifts=(dy, dx), dims=(2, 3))
    frames = torch.stack([picture[..., :h, :w], shifted[..., :h, :w]])
    return (frames.clamp(0, 1) * 255).round().to(torch.uint8)
