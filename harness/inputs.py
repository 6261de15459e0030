"""Feeding a stream: random frame pairs (performance mode) or dataset batches (quality mode),
delivered to the device as model inputs. Uploads happen inside the timed call, where a real
video pipeline pays them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from metrics import to_uint8
from rife.engine import Engine


@dataclass
class HostBatch:
    """One model call's inputs as they arrive: uint8 (B, 3, H, W), on the host or already on the device."""

    first: Tensor
    last: Tensor
    truth: Tensor | None = None
    names: list[str] | None = None


@dataclass
class DeviceBatch:
    img0: Tensor
    img1: Tensor
    names: list[str] | None


class DummyPairs:
    """A pool of distinct random uint8 frame pairs cycled through (``pool=1`` is the reference's single pair).
    Without ``transfers`` the pool is converted once and stays on the device, as in the reference."""

    def __init__(self, engine: Engine, pool: int, batch: int, height: int, width: int, seed: int, transfers: bool):
        gen = torch.Generator().manual_seed(seed)
        pin = transfers and engine.device.type == "cuda"
        self.engine, self.transfers, self.size = engine, transfers, (height, width)
        self.batches = []
        for _ in range(pool):
            pair = [torch.randint(0, 256, (batch, 3, height, width), dtype=torch.uint8, generator=gen) for _ in range(2)]
            pair = [p.pin_memory() if pin else p for p in pair]
            self.batches.append(pair if transfers else [engine.to_model_input(p.to(engine.device)) for p in pair])

    def __iter__(self) -> Iterator[HostBatch]:
        step = 0
        while True:
            first, last = self.batches[step % len(self.batches)]
            yield HostBatch(first, last)
            step += 1

    def to_device(self, batch: HostBatch) -> DeviceBatch:
        if not self.transfers:
            return DeviceBatch(batch.first, batch.last, None)
        return upload(self.engine, batch)


def upload(engine: Engine, batch: HostBatch) -> DeviceBatch:
    """The inputs to the device (the truth stays on the host: it is scored after the timed loop)."""
    dev = engine.device
    img0 = engine.to_model_input(batch.first.to(dev, non_blocking=True))
    img1 = engine.to_model_input(batch.last.to(dev, non_blocking=True))
    return DeviceBatch(img0, img1, batch.names)


class DatasetPairs:
    """Quality-mode batches from ``dataset.Prefetcher`` (decoded in worker threads).

    When the stream's share fits in ``preload_bytes`` it is decoded before the timed loop (as LoadGen
    loads its sample library untimed), so PNG decoding never limits the measured throughput; otherwise
    batches are decoded ahead of the device while it runs."""

    def __init__(self, engine: Engine, prefetcher, share_bytes: int, preload_bytes: int) -> None:
        self.engine, self.prefetcher = engine, prefetcher
        self.preloaded = [_host(b) for b in prefetcher] if share_bytes <= preload_bytes else None

    def __iter__(self) -> Iterator[HostBatch]:
        yield from self.preloaded if self.preloaded is not None else (_host(b) for b in self.prefetcher)

    def truths(self, fresh_prefetcher) -> Iterator[tuple[list[str], Tensor]]:
        """The truth frames again, in order, for scoring after the loop (decoded again when not preloaded)."""
        batches = self.preloaded if self.preloaded is not None else (_host(b) for b in fresh_prefetcher())
        return ((b.names, b.truth) for b in batches)

    def to_device(self, batch: HostBatch) -> DeviceBatch:
        return upload(self.engine, batch)


def _host(b) -> HostBatch:
    return HostBatch(b.first, b.last, b.truth, list(b.names))


def download_u8(u8: Tensor) -> Tensor:
    """A uint8 tensor's host copy, without a synchronization on CUDA (pinned target, non-blocking)."""
    if u8.device.type == "cpu":
        return u8
    host = torch.empty(u8.shape, dtype=torch.uint8, pin_memory=u8.device.type == "cuda")
    return host.copy_(u8, non_blocking=True)


def download(frames: list[Tensor]) -> list[Tensor]:
    """Results back to the host as uint8, without a synchronization (pinned targets, non-blocking)."""
    return [download_u8(to_uint8(f)) for f in frames]


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
