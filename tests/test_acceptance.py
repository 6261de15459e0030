"""The GPU acceptance command (``tools.gpu_acceptance``) checked on the CPU: its matrix, its sameness measure, the
random checkpoints both implementations load, and a small run end to end through inference.py."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from rife import assets, registry
from rife.engine import Engine, Precision
from rife.loader import ModelChoice, load_model
from tools import gpu_acceptance as acc

ROOT = Path(__file__).resolve().parent.parent


def test_the_matrix_covers_every_pair_with_a_reference_and_the_upstream_code_for_each_family() -> None:
    cells = acc.plan_cells(registry.FAMILIES, acc.EXECUTIONS, acc.PRECISIONS, acc.BATCHES)
    assert not acc.uncovered_pairs(cells, acc.EXECUTIONS, acc.PRECISIONS)
    for family in registry.FAMILIES:
        own = [c for c in cells if c.family == family]
        assert [c for c in own if c.reference] == [acc.Cell(family, "ours", "eager", "fp32", 1, reference=True)]
        assert {c.batch for c in own if (c.execution, c.precision, c.impl) == ("fast", "fp16", "ours")} == {1, 8}
        assert [c.impl for c in own].count("upstream") == 1
    assert len({c.name for c in cells}) == len(cells)
    # Fewer families than pairs: what is left out is said.
    few = acc.plan_cells(["v4.0"], acc.EXECUTIONS, acc.PRECISIONS, (1,))
    assert acc.uncovered_pairs(few, acc.EXECUTIONS, acc.PRECISIONS) == \
        ["eager bf16", "graph fp16", "graph bf16", "compile fp16", "compile bf16", "fast bf16"]


def write_frames(folder: Path, frames: dict[str, np.ndarray]) -> None:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        assert cv2.imwrite(str(folder / "images" / name), frame)


def test_psnr_against_the_reference_pools_every_frame(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frames = {f"clip_{k:06d}.png": rng.integers(0, 256, (12, 16, 3), dtype=np.uint8) for k in range(3)}
    write_frames(tmp_path / "ref", frames)
    write_frames(tmp_path / "same", frames)
    assert acc.psnr_against(tmp_path / "same", tmp_path / "ref") == (math.inf, 3)
    changed = dict(frames)
    first = next(iter(frames))
    changed[first] = frames[first].copy()
    changed[first][0, 0, 0] ^= 0x10  # one value off by 16
    write_frames(tmp_path / "off", changed)
    psnr, count = acc.psnr_against(tmp_path / "off", tmp_path / "ref")
    expected = 10 * math.log10(255**2 / (16**2 / (3 * 12 * 16 * 3)))
    assert count == 3 and psnr == pytest.approx(expected)
    assert acc.psnr_against(tmp_path / "nothing", tmp_path / "ref") == (None, 0)


@pytest.mark.parametrize("family", ["4.26", "v3.1"])
def test_a_random_checkpoint_gives_both_implementations_the_same_weights(tmp_path: Path, paper_code: Path,
                                                                         family: str) -> None:
    assets.fetch_code(registry.release(family))
    path = tmp_path / family / "flownet.pkl"
    acc.write_random_checkpoint(family, path)
    companions = registry.release(family).variant.companions
    assert sorted(p.name for p in path.parent.iterdir()) == sorted(["flownet.pkl", *(f"{c}.pkl" for c in companions)])
    pair = torch.randint(0, 256, (2, 1, 3, 64, 96), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    outs = []
    for impl in ("ours", "upstream"):
        loaded = load_model(ModelChoice(arch=family, weights=path, impl=impl, models_dir=paper_code))
        e = Engine(loaded.net, loaded.variant, torch.device("cpu"), Precision("fp32", False))
        outs.append(e.interpolate(e.to_model_input(pair[0]), e.to_model_input(pair[1]), 1, (64, 96))[0])
    assert torch.isfinite(outs[0]).all() and outs[0].std() > 0
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=1e-5)


def make_clip(path: Path, count: int = 9, size: tuple[int, int] = (64, 96)) -> Path:
    """A smooth picture moving two pixels a frame (MJPG: OpenCV writes it everywhere)."""
    rng = np.random.default_rng(0)
    coarse = rng.random((size[0] // 8 + 2, size[1] // 8 + 6, 3)).astype(np.float32)
    picture = cv2.resize(coarse, None, fx=8, fy=8, interpolation=cv2.INTER_CUBIC)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (size[1], size[0]))
    assert writer.isOpened()
    for i in range(count):
        frame = picture[: size[0], 2 * i: 2 * i + size[1]]
        writer.write((np.clip(frame, 0, 1) * 255).astype(np.uint8))
    writer.release()
    return path


def run_acceptance(tmp_path: Path, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "acc"
    done = subprocess.run([sys.executable, "-m", "tools.gpu_acceptance", "--platform", "CPU", "--no-tier",
                           "--video", str(make_clip(tmp_path / "clip.avi")), "--triplets", "2", "--jobs", "2",
                           "--out", str(out), *extra], capture_output=True, text=True, cwd=ROOT, timeout=900)
    doc = json.loads((out / "acceptance.json").read_text()) if (out / "acceptance.json").is_file() else {}
    return done, doc


@pytest.mark.slow
def test_a_small_matrix_runs_through_inference_py(tmp_path: Path, v4_weights: Path, paper_code: Path) -> None:
    assets.fetch_code(registry.release("4.26"))
    done, doc = run_acceptance(tmp_path, "--families", "v4.0,4.26", "--executions", "eager,fast",
                               "--precisions", "bf16", "--batches", "1,2")
    assert done.returncode == 0, done.stdout + done.stderr
    cells = {c["family"] + "-" + c["impl"] + "-" + c["execution"] + "-" + c["precision"] + "-b" + str(c["batch"]): c
             for c in doc["cells"]}
    assert set(cells) == {f"{f}-{rest}" for f in ("v4.0", "4.26") for rest in (
        "ours-eager-fp32-b1", "ours-fast-bf16-b1", "ours-fast-bf16-b2", "ours-eager-bf16-b1", "upstream-eager-bf16-b1")}
    assert all(c["status"] == "passed" and c["fps"] > 0 for c in cells.values())
    assert cells["v4.0-ours-eager-fp32-b1"]["weights"] == "real" and cells["4.26-ours-fast-bf16-b1"]["weights"] == "random"
    for name, c in cells.items():
        if not c["reference"]:  # bf16 autocast against fp32 on the CPU: close, not equal
            assert c["frames_compared"] == (4 if c["batch"] == 2 else 2), name
            assert c["psnr_identical"] or c["psnr_db"] >= 30, (name, c["psnr_db"])
    assert doc["complete"] and doc["failed"] == 0 and doc["uncovered_pairs"] == []
    assert "| v4.0-ours-fast-bf16-b1 | real | passed |" in done.stdout and "| v4.0 | real |" in done.stdout


@pytest.mark.slow
def test_a_cell_that_cannot_run_fails_the_command_with_its_reason(tmp_path: Path, v4_weights: Path,
                                                                 paper_code: Path) -> None:
    done, doc = run_acceptance(tmp_path, "--families", "v4.0", "--executions", "graph", "--precisions", "bf16",
                               "--batches", "1")
    assert done.returncode == 1, done.stdout + done.stderr
    graph = next(c for c in doc["cells"] if c["execution"] == "graph")
    assert graph["status"] == "failed" and "CUDA graphs" in graph["note"], graph
    assert "failed: v4.0-ours-graph-bf16-b1" in done.stdout


def test_missing_assets_are_one_line_and_exit_2(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "tools.gpu_acceptance", "--platform", "CPU", "--assets",
                           str(tmp_path / "empty"), "--out", str(tmp_path / "out")], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "python -m rife.assets --all" in lines[0] and "Traceback" not in done.stderr
