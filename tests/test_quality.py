"""Quality mode through the harness: PSNR/SSIM, the decision, exit codes, sheets, saved frames, own video."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import cv2
import numpy as np
import pytest
import torch

import metrics

ROOT = Path(__file__).resolve().parent.parent


def make_vimeo_test_set(root: Path, count: int, height: int = 64, width: int = 96) -> Path:
    """vimeo_interp_test layout with smooth moving content (a shifted gradient), so a model can do well."""
    names = [f"00001/{i:04d}" for i in range(1, count + 1)]
    yy, xx = np.mgrid[0:height, 0:width]
    for k, name in enumerate(names):
        frames = [((np.sin((xx + 2 * t + 5 * k) / 9.0) + np.cos(yy / 7.0)) * 60 + 128).clip(0, 255).astype(np.uint8)
                  for t in range(3)]
        rgb = [np.stack([f, np.roll(f, 3, 1), 255 - f], axis=-1) for f in frames]
        for folder, idx in (("input", 0), ("target", 1), ("input", 2)):
            path = root / folder / name / f"im{idx + 1}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), cv2.cvtColor(rgb[idx], cv2.COLOR_RGB2BGR))
    (root / "tri_testlist.txt").write_text("\n".join(names) + "\n\n")
    return root


def run(args: list[str], out: Path, v4_weights: Path) -> tuple[subprocess.CompletedProcess, dict]:
    env = {**os.environ, "PLATFORM": "CPU", "WARMUP": "1", "LOAD_PATH": str(v4_weights)}
    result = subprocess.run([sys.executable, str(ROOT / "inference.py"), "--output-dir", str(out), *args],
                            env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    doc = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else {}
    return result, doc


def test_psnr_and_ssim_match_a_hand_computation():
    torch.manual_seed(0)
    truth = torch.randint(0, 256, (2, 3, 32, 48), dtype=torch.uint8)
    pred = (truth.double() / 255 + torch.randn(2, 3, 32, 48, dtype=torch.float64) * 0.02).clamp(0, 1).float()
    rounded = np.round(pred.double().numpy() * 255) / 255
    mse = ((rounded - truth.numpy() / 255.0) ** 2).reshape(2, -1).mean(1)
    assert torch.allclose(metrics.psnr(pred, truth), torch.from_numpy(-10 * np.log10(mse)), atol=1e-9)
    assert metrics.psnr(truth.float() / 255, truth).min() > 150  # identical frames: no NaN, a very high PSNR
    same = metrics.ssim(truth.float() / 255, truth)
    assert torch.allclose(same, torch.ones(2, dtype=torch.float64), atol=1e-6)
    noisy = metrics.ssim(pred, truth)
    assert ((0 < noisy) & (noisy < 1)).all()


@pytest.mark.slow
def test_quality_run_passes_and_reports(tmp_path, v4_weights):
    data = make_vimeo_test_set(tmp_path / "vimeo_interp_test", 4)
    result, doc = run(["--data", str(data), "--streams", "2", "--psnr-threshold", "20"], tmp_path / "ok", v4_weights)
    assert result.returncode == 0, result.stderr
    q = doc["quality_data"]
    assert q["test_count"] == 4 and q["decision_pass"] and q["psnr_mean_db"] > 20
    assert 0 < q["ssim_mean"] <= 1
    assert doc["config"]["workload"]["dataset"]["height"] == 64 and doc["config"]["workload"]["dataset"]["width"] == 96
    assert doc["results"]["metrics"]["accuracy"]["avg"] == 100.0
    assert sorted(f["name"] for f in doc["quality_frames"]) == [f"00001/{i:04d}" for i in range(1, 5)]
    assert doc["results"]["status"] == "passed"


@pytest.mark.slow
def test_failed_quality_decision_exits_non_zero_with_sheets(tmp_path, v4_weights):
    data = make_vimeo_test_set(tmp_path / "vimeo_interp_test", 3)
    result, doc = run(["--data", str(data), "--psnr-threshold", "99"], tmp_path / "bad", v4_weights)
    assert result.returncode == 1
    assert doc["results"]["status"] == "failed" and not doc["quality_data"]["decision_pass"]
    assert doc["results"]["validity"] != "invalid" and not doc["results"]["invalid_reasons"]  # measured, and failed
    assert re.search(r"status +failed \((valid|noisy)\)\n +- quality below threshold: 0.00% of frames passed",
                     result.stdout), result.stdout
    assert f"report           {tmp_path / 'bad' / 'report.html'}" in result.stdout.splitlines()[-1]
    assert doc["quality_data"]["failed_frames"] == ["00001/0001", "00001/0002", "00001/0003"]
    sheet = cv2.imread(str(tmp_path / "bad" / "sheets" / "00001_0001.png"))
    assert sheet is not None and sheet.shape[1] >= 4 * 96
    index = (tmp_path / "bad" / "index.html").read_text()
    links = re.findall(r'<img src="([^"]+)"', index)
    assert links and all((tmp_path / "bad" / unquote(src)).is_file() for src in links), links


@pytest.mark.slow
def test_saveimages_with_three_frames_judges_the_middle(tmp_path, v4_weights):
    data = make_vimeo_test_set(tmp_path / "vimeo_interp_test", 2)
    result, doc = run(["--data", str(data), "--interpolation", "3", "--saveimages", "--psnr-threshold", "10"],
                      tmp_path / "img", v4_weights)
    assert result.returncode == 0, result.stderr
    images = sorted(p.name for p in (tmp_path / "img" / "images").iterdir())
    assert len(images) == 6 and images[0] == "00001_0001_t0.2500.png"
    assert doc["quality_data"]["test_count"] == 2


@pytest.mark.slow
def test_even_frame_count_skips_quality_with_a_note(tmp_path, v4_weights):
    data = make_vimeo_test_set(tmp_path / "vimeo_interp_test", 1)
    result, doc = run(["--data", str(data), "--interpolation", "2"], tmp_path / "even", v4_weights)
    assert "quality was not judged" in json.dumps(doc["streams"])
    assert doc["streams"][0]["status"] == "completed" and doc["streams"][0]["frames"] == 2
    assert result.returncode == 0 and doc["quality_data"]["applicable"] is False


@pytest.mark.slow
def test_own_video_mode(tmp_path, v4_weights, video_dir):
    out = tmp_path / "video"
    result, doc = run(["--data", str(video_dir / "bikes.mp4"), "--num-inputs", "2"], out, v4_weights)
    assert result.returncode == 0, result.stderr
    assert doc["quality_data"]["test_count"] == 2
    assert doc["config"]["workload"]["dataset"]["layout"] == "video"
    assert doc["config"]["workload"]["dataset"]["width"] == 640
    assert not math.isnan(doc["quality_data"]["psnr_mean_db"])


@pytest.mark.slow
def test_quality_mode_refuses_random_weights(tmp_path):
    data = make_vimeo_test_set(tmp_path / "vimeo_interp_test", 1)
    env = {**os.environ, "PLATFORM": "CPU"}
    env.pop("LOAD_PATH", None)
    result = subprocess.run([sys.executable, str(ROOT / "inference.py"), "--data", str(data), "--arch", "paper",
                             "--output-dir", str(tmp_path / "o")], env=env, capture_output=True, text=True,
                            cwd=ROOT, timeout=300)
    if (ROOT / "train_log" / "flownet.pkl").exists():
        pytest.skip(f"real paper weights are present in {ROOT / 'train_log'}")
    assert result.returncode == 2 and "quality mode needs real weights; run ./get_model.sh" in result.stderr
