"""Maintainers' A/B of encoding each video frame once: one release's fast fp16 on a video's consecutive pairs, the
pairs already on the device, with ``follows`` on (each frame's encoder features reused by the next pair) and off,
same process, through the measurement core; and the largest difference between the two runs' frames.

    RIFE_CACHE=assets python -m dev.encode_once_ab 4.25 --video assets/videos/bigbuckbunny.mp4 [--calls 300]
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import cv2
import numpy as np
import torch

from harness.measure.core import Meter, repeated_batches
from harness.measure.inputs import HostBatch
from harness.measure.stop import StopRule
from rife.engine import Engine, resolve_precision
from rife.loader import ModelChoice, load_model
from tools.gpu_acceptance import family_weights
from tools.gpu_table import CUDA, print_table


def video_frames(path: Path, count: int) -> torch.Tensor:
    """The first ``count`` frames, uint8 (count, 3, H, W) RGB."""
    cap = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    while len(frames) < count:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(np.ascontiguousarray(bgr[:, :, ::-1].transpose(2, 0, 1)))
    cap.release()
    return torch.from_numpy(np.stack(frames))


def consecutive_pairs(engine: Engine, frames: torch.Tensor, follows: bool) -> list[HostBatch]:
    """Pairs (k, k + 1) as model inputs on the device; pair k > 0 follows pair k - 1 when ``follows``."""
    inputs = [engine.to_model_input(f[None].to(engine.device)) for f in frames]
    return [HostBatch(inputs[k], inputs[k + 1], ready=True, follows=follows and k > 0)
            for k in range(len(inputs) - 1)]


def measure(engine: Engine, pairs: list[HostBatch], calls: int, size: tuple[int, int]) -> tuple[dict, torch.Tensor]:
    meter = Meter(engine, 1, size)
    outputs: list[torch.Tensor] = []
    meter.warm_up(pairs, len(pairs), lambda done, call: outputs.append(call.outputs[0].float().clone()))
    # The pool repeats from pair 0, which never follows: every timed call but those is a follower when asked.
    timed = meter.timed(repeated_batches(pairs), StopRule(calls, calls))
    stats = timed.latency()
    assert stats is not None
    return {"calls_per_s": timed.calls / timed.elapsed_s, "p50_ms": stats.percentile("p50"),
            "p90_ms": stats.percentile("p90"), "calls": timed.calls}, torch.cat(outputs)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("release")
    p.add_argument("--video", type=Path, required=True)
    p.add_argument("--frames", type=int, default=32)
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--out", type=Path, default=Path("."))
    a = p.parse_args()
    weights, kind = family_weights(a.release, a.out)
    frames = video_frames(a.video, a.frames)
    size = (frames.shape[-2], frames.shape[-1])
    loaded = load_model(ModelChoice(arch=a.release, weights=weights))
    engine = Engine(loaded.net, loaded.variant, CUDA, resolve_precision(CUDA, "fp16", False), execution="fast")
    rows, outs = [], {}
    for follows in (False, True):
        figures, outs[follows] = measure(engine, consecutive_pairs(engine, frames, follows), a.calls, size)
        rows.append({"release": a.release, "weights": kind, "encode once": follows, **figures})
    diff = (outs[True] - outs[False]).abs().max().item()
    print_table(f"{a.release} on {a.video.name}, {len(frames) - 1} consecutive pairs at {size[1]}x{size[0]}, "
                f"largest difference between the two runs' frames {diff:.2e}", rows)
    print(dataclasses.asdict(engine.plan))


if __name__ == "__main__":
    main()
