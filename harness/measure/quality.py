"""Per-frame quality in quality mode: PSNR and SSIM computed on the device, read back once."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from harness.measure import metrics
from harness.measure.inputs import HostCopier
from harness.results.records import FrameScore


def judged_index(timesteps: list[float]) -> int | None:
    """Which generated frame is compared with the truth: the one at t = 0.5, if any."""
    return next((i for i, t in enumerate(timesteps) if abs(t - 0.5) < 1e-9), None)


class QualityRecorder:
    """Keeps each judged prediction as the 8-bit frame it stands for, copied to the host without a
    synchronization, and scores them on the device after the timed loop: the loop pays one rounding
    kernel and one copy per frame, not the metrics."""

    def __init__(self, threshold_db: float, count: int, height: int, width: int, copier: HostCopier) -> None:
        self.threshold_db = threshold_db
        self.names: list[str] = []
        self._copier = copier
        # Allocated before the timed loop (pinned host memory is slow to allocate): one 8-bit frame per name.
        self._host = torch.empty((count, 3, height, width), dtype=torch.uint8,
                                 pin_memory=copier.device.type == "cuda")

    @property
    def predictions(self) -> Tensor:
        return self._host[: len(self.names)]

    def record(self, names: list[str], pred: Tensor) -> None:
        start = len(self.names)
        self._copier.copy(self._host[start:start + len(names)], metrics.to_uint8(pred))
        self.names.extend(names)

    def rehearse(self, pred: Tensor) -> None:
        """A warm-up call through the same path, kept nowhere."""
        room = min(len(pred), len(self._host))
        self._copier.copy(self._host[:room], metrics.to_uint8(pred[:room]))

    def score(self, truths: Iterable[tuple[list[str], Tensor]], device: torch.device) -> list[FrameScore]:
        """Per-frame results against ``truths`` ((names, uint8 batch) in recording order); call after the
        timed loop has synchronized."""
        frames: list[FrameScore] = []
        if not self.names:
            return frames
        for names, truth in truths:
            start = len(frames)
            pred = self._host[start:start + len(names)].to(device)
            truth = truth.to(device)
            scores = zip(metrics.psnr_u8(pred, truth).tolist(), metrics.ssim_u8(pred, truth).tolist(), strict=True)
            frames += [FrameScore.judged(n, p, q, self.threshold_db) for n, (p, q) in zip(names, scores, strict=True)]
            if len(frames) >= len(self.names):
                break
        return frames

    def prediction(self, name: str) -> Tensor:
        return self.predictions[self.names.index(name)]
