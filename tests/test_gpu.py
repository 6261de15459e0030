"""The GPU tier (``pytest -m cuda``; skipped where no CUDA GPU is visible): our IFNet against the upstream code in
fp32, and each precision and execution mode against fp32 eager and the truth, on real frames with the real v4.0
weights. The figures these thresholds guard are in docs/performance.md."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest
import torch

import metrics
from rife.engine import Engine, resolve_precision
from rife.ifnet import IFNet
from rife.loader import ModelChoice, load_model
from rife.registry import VARIANTS
from rife.upstream import UpstreamPaper
from tools.gpu_table import middle_frames, psnr_between

pytestmark = pytest.mark.cuda

CUDA = torch.device("cuda")
STARTS = list(range(0, 19, 2))  # the first ten triplets
RETRY_TRIPLET = 28  # bikes.mp4: takes v4.0's large-motion retry


def engine(v4_weights: Path, precision: str, execution: str = "eager", amp: bool = False,
           impl: str = "ours") -> Engine:
    loaded = load_model(ModelChoice(weights=v4_weights, impl=impl))
    return Engine(loaded.net, loaded.variant, CUDA, resolve_precision(CUDA, precision, amp), execution=execution)


@pytest.fixture(scope="module")
def fp32_eager(v4_weights, bunny_frames, bikes_frames) -> dict[str, list[torch.Tensor]]:
    e = engine(v4_weights, "fp32")
    return {"bunny": middle_frames(e, bunny_frames, STARTS), "retry": middle_frames(e, bikes_frames, [RETRY_TRIPLET])}


@pytest.fixture
def no_tf32():
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.mark.parametrize("clip,i,t", [("bunny", 0, 0.5), ("bikes", RETRY_TRIPLET, 0.5), ("bunny", 4, 0.25)])
def test_v4_equals_the_upstream_code_in_fp32(v4_weights, bunny_frames, bikes_frames, no_tf32, clip, i, t):
    frames = bunny_frames if clip == "bunny" else bikes_frames
    ours = middle_frames(engine(v4_weights, "fp32"), frames, [i], t)[0]
    upstream = middle_frames(engine(v4_weights, "fp32", impl="upstream"), frames, [i], t)[0]
    assert (ours - upstream).abs().max().item() <= 1e-4  # cuDNN picks kernels per call; 2.5e-5 measured


def test_paper_equals_the_upstream_code_in_fp32_with_random_weights(paper_code, no_tf32):
    torch.manual_seed(0)
    upstream = UpstreamPaper(paper_code).to(CUDA).eval()
    with torch.no_grad():
        for p in upstream.parameters():
            p.normal_(0, 0.05) if p.dim() > 1 else p.uniform_(0, 0.3)
    ours = IFNet(VARIANTS["paper"]).to(CUDA).eval()
    ours.load_state_dict({k: v for k, v in upstream.flownet.state_dict().items() if k in ours.state_dict()})
    x0, x1 = torch.rand(1, 3, 256, 448, device=CUDA), torch.rand(1, 3, 256, 448, device=CUDA)
    with torch.inference_mode():
        # Random weights make flows of hundreds of pixels, which amplify rounding: 1.9e-3 measured.
        assert (ours(x0, x1) - upstream(x0, x1)).abs().max().item() <= 1e-2


# (precision, execution, autocast): the least PSNR against fp32 eager on the ten triplets and on the retry's,
# and the most the PSNR against the truth may lose; measured: fast fp16 77.0 / 53-54 dB, bf16 58.4 / 41.0 dB.
PRECISION_CASES = [
    ("fp16", "fast", False, 70.0, 48.0, 0.02),
    ("bf16", "fast", False, 52.0, 36.0, 0.1),
    ("fp16", "graph", False, 40.0, 35.0, 0.5),
    ("fp16", "eager", True, 75.0, 50.0, 0.02),
    ("bf16", "eager", True, 60.0, 40.0, 0.05),
]


@pytest.mark.parametrize("precision,execution,amp,vs_fp32,retry_vs_fp32,truth_loss", PRECISION_CASES)
def test_precision_and_mode_keep_the_fp32_frames(v4_weights, bunny_frames, bikes_frames, fp32_eager, precision,
                                                 execution, amp, vs_fp32, retry_vs_fp32, truth_loss):
    e = engine(v4_weights, precision, execution, amp)
    outs = middle_frames(e, bunny_frames, STARTS)
    retry = middle_frames(e, bikes_frames, [RETRY_TRIPLET])[0]
    assert all(torch.isfinite(o).all() for o in outs)
    assert statistics.fmean(psnr_between(o, r) for o, r in zip(outs, fp32_eager["bunny"], strict=True)) >= vs_fp32
    assert psnr_between(retry, fp32_eager["retry"][0]) >= retry_vs_fp32
    truth = [bunny_frames[i + 1].to(CUDA) for i in STARTS]
    ours = statistics.fmean(float(metrics.psnr(o, t)[0]) for o, t in zip(outs, truth, strict=True))
    reference = statistics.fmean(float(metrics.psnr(o, t)[0]) for o, t in zip(fp32_eager["bunny"], truth, strict=True))
    assert math.isfinite(ours) and ours >= reference - truth_loss
