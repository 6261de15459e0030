"""Per-frame quality in quality mode: PSNR and SSIM computed on the device, read back once."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

import metrics


def judged_index(timesteps: list[float]) -> int | None:
    """Which generated frame is compared with the truth: the one at t = 0.5, if any."""
    return next((i for i, t in enumerate(timesteps) if abs(t - 0.5) < 1e-9), None)


@dataclass
class QualityRecorder:
    threshold_db: float
    _psnr: list[Tensor] = field(default_factory=list)
    _ssim: list[Tensor] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    _stream: torch.cuda.Stream | None = None

    def record(self, names: list[str], pred: Tensor, truth_u8: Tensor) -> None:
        """Queue the metrics; on CUDA on a side stream, so they overlap the next frames' model work
        (the final synchronize of the timed loop waits for them)."""
        self.names.extend(names)
        if not pred.is_cuda:
            self._psnr.append(metrics.psnr(pred, truth_u8))
            self._ssim.append(metrics.ssim(pred, truth_u8))
            return
        if self._stream is None:
            self._stream = torch.cuda.Stream(device=pred.device)
        self._stream.wait_stream(torch.cuda.current_stream(pred.device))
        with torch.cuda.stream(self._stream):
            self._psnr.append(metrics.psnr(pred, truth_u8))
            self._ssim.append(metrics.ssim(pred, truth_u8))
        pred.record_stream(self._stream)  # the allocator must not reuse them before the side stream is done
        truth_u8.record_stream(self._stream)

    def frames(self) -> list[dict]:
        """Per-frame results (reads the device: call after the timed loop)."""
        if not self.names:
            return []
        if self._stream is not None:
            self._stream.synchronize()
        psnr = torch.cat(self._psnr).cpu().tolist()
        ssim = torch.cat(self._ssim).cpu().tolist()
        return [{"name": n, "psnr": p, "ssim": s, "passed": p >= self.threshold_db}
                for n, p, s in zip(self.names, psnr, ssim, strict=True)]


def summarize(frames: list[dict], min_pass_pct: float) -> dict:
    """Counts, accuracy and the decision, in the reference's quality_data terms plus PSNR/SSIM."""
    passed = sum(f["passed"] for f in frames)
    count = len(frames)
    pct = 100.0 * passed / count if count else math.nan
    psnrs = [f["psnr"] for f in frames]
    return {
        "test_count": count,
        "test_pass": passed,
        "test_fail": count - passed,
        "test_pass_pct": pct,
        "test_fail_pct": 100.0 - pct if count else math.nan,
        "decision_pass": bool(count) and pct >= min_pass_pct,
        "psnr_mean_db": sum(psnrs) / count if count else math.nan,
        "psnr_min_db": min(psnrs) if count else math.nan,
        "ssim_mean": sum(f["ssim"] for f in frames) / count if count else math.nan,
        "failed_frames": [f["name"] for f in frames if not f["passed"]],
    }
