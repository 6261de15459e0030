"""Quality through LoadGen: the frames its accuracy log holds scored against the truth, and a check in the spirit
of MLPerf's TEST01: the outputs LoadGen sampled in performance mode equal the accuracy-mode outputs of the same
samples, byte for byte (a system that computes less when it is timed fails it)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch


def logged_frames(log: Path, shape: tuple[int, int, int]) -> dict[int, np.ndarray]:
    """``mlperf_log_accuracy.json``'s responses by sample index, as uint8 (C, H, W) frames (the last one logged of
    each index)."""
    frames = {}
    for entry in json.loads(log.read_text() or "[]"):
        data = np.frombuffer(bytes.fromhex(entry["data"]), dtype=np.uint8)
        if data.size == int(np.prod(shape)):
            frames[int(entry["qsl_idx"])] = data.reshape(shape)
    return frames


def score(frames: dict[int, np.ndarray], truth: Callable[[int], torch.Tensor]) -> list[tuple[int, float, float]]:
    """(sample index, PSNR in dB, SSIM) of each logged frame against ``truth(i)`` (uint8 (3, H, W)), as the run
    scores its own frames (rounded to 8 bits, over all RGB values)."""
    from harness.measure.metrics import psnr_u8, ssim_u8

    scores = []
    for i, frame in sorted(frames.items()):
        pred, real = torch.from_numpy(frame.copy())[None], truth(i)[None]
        scores.append((i, float(psnr_u8(pred, real)[0]), float(ssim_u8(pred, real)[0])))
    return scores


def compare(performance: dict[int, np.ndarray], accuracy: dict[int, np.ndarray]) -> tuple[int, tuple[int, ...]]:
    """How many sampled performance-mode outputs were checked, and the indices that differ from accuracy mode."""
    checked = [i for i in performance if i in accuracy]
    return len(checked), tuple(sorted(i for i in checked if not np.array_equal(performance[i], accuracy[i])))
