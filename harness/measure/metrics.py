"""Metrics: PSNR and SSIM of interpolated frames (computed on the device), percentiles and spreads of figures.

PSNR follows upstream RIFE's benchmarks, not the reference sample: the prediction is
rounded to 8 bits first, and the mean squared error is taken in float64 over all RGB
values in [0, 1]. The reference computed it in the run's precision (fp16/bf16) without
rounding, which is not comparable with published figures.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where frames are scored, so that reading results needs none
    from torch import Tensor


def to_uint8(pred: Tensor) -> Tensor:
    """Round a [0, 1] prediction to the 8-bit frame it stands for (rounding in float64)."""
    import torch

    return (pred.double().clamp(0, 1) * 255.0).round().to(torch.uint8)


def psnr_u8(pred_u8: Tensor, truth_u8: Tensor) -> Tensor:
    """Per-sample PSNR (dB), float64, of uint8 frames (N,3,H,W), over all RGB values in [0, 1]."""
    import torch

    mse = ((pred_u8.double() - truth_u8.double()) / 255.0).pow(2).mean(dim=(1, 2, 3))
    return -10.0 * torch.log10(mse.clamp_min(1e-20))


def ssim_u8(pred_u8: Tensor, truth_u8: Tensor) -> Tensor:
    """Per-sample SSIM (pytorch-msssim, Gaussian window 11, sigma 1.5) of uint8 frames."""
    from pytorch_msssim import ssim as _ssim

    return _ssim(pred_u8.float() / 255.0, truth_u8.float() / 255.0, data_range=1.0, size_average=False).double()


def psnr(pred: Tensor, truth_u8: Tensor) -> Tensor:
    """Per-sample PSNR of a float prediction in [0, 1], rounded to 8 bits first."""
    return psnr_u8(to_uint8(pred), truth_u8)


def ssim(pred: Tensor, truth_u8: Tensor) -> Tensor:
    return ssim_u8(to_uint8(pred), truth_u8)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default) of already sorted values."""
    if not sorted_values:
        return math.nan
    pos = (len(sorted_values) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def spread(values: Sequence[float | None]) -> dict[str, float | None]:
    """avg / min / max / stdev across streams, as the reference's results.json holds each metric."""
    finite = [v for v in values if v is not None and not math.isnan(v)]
    if not finite:
        return {"avg": None, "min": None, "max": None, "stdev": None}
    return {
        "avg": statistics.fmean(finite),
        "min": min(finite),
        "max": max(finite),
        "stdev": statistics.stdev(finite) if len(finite) > 1 else 0.0,
    }
