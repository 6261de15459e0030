"""Maintainer's GPU checks and experiments (CUDA only): sameness with upstream, PSNR per precision,
eager throughput of ours against the upstream code run the reference's way, in one run.

    python3 -m dev.verify_gpu --weights train_log/v4.0/flownet.pkl --videos DIR --paper-code model \
        [--out DIR] [--calls 200]

Prints one table per section; writes verify_gpu.json to --out.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

from harness.measure import metrics
from harness.measure.core import measure_pair, time_function
from harness.measure.inputs import random_scene
from harness.samples.dataset import decode_frames
from rife.engine import Engine, resolve_precision
from rife.ifnet import IFNet
from rife.loader import ModelChoice, load_model
from rife.registry import VARIANTS
from rife.upstream import UpstreamPaper
from tools.gpu_table import (
    SIZES,
    first_and_timed,
    kernel_kind,
    make_engine,
    middle_frames,
    print_table,
    profiled_calls,
    psnr_between,
    section_modes,
)

CUDA = torch.device("cuda")


def engine_for(net, variant, precision: str, amp: bool = False, pad: int | None = None) -> Engine:
    return Engine(net, variant, CUDA, resolve_precision(CUDA, precision, amp), pad_multiple=pad)


def section_sameness(v4_weights: Path, clips: dict, paper_code: Path | None) -> list[dict]:
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    rows = []
    ours = load_model(ModelChoice(weights=v4_weights))
    up = load_model(ModelChoice(weights=v4_weights, impl="upstream"))
    eo, eu = engine_for(ours.net, ours.variant, "fp32"), engine_for(up.net, up.variant, "fp32")
    for clip, i, t in (("bigbuckbunny", 0, 0.5), ("bikes", 28, 0.5), ("bigbuckbunny", 4, 0.25)):
        a, b = middle_frames(eo, clips[clip], [i], t)[0], middle_frames(eu, clips[clip], [i], t)[0]
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
            outs = middle_frames(engine_for(loaded.net, loaded.variant, precision, amp), frames, starts)
            ref = outs if ref is None else ref
            scores = [float(metrics.psnr(o, t)[0]) for o, t in zip(outs, truth, strict=True)]
            vs = [psnr_between(o, r) for o, r in zip(outs, ref, strict=True)]
            rows.append({"clip": clip, "precision": precision + (" autocast" if amp else " cast"),
                         "psnr_vs_truth": statistics.fmean(scores),
                         "psnr_vs_fp32": statistics.fmean(vs) if precision != "fp32" or amp else None,
                         "per_triplet": [round(s, 3) for s in scores]})
    return rows


def section_fast_quality(v4_weights: Path, clips: dict, configs: list[tuple[str, str]]) -> list[dict]:
    """fp16 ``fast`` and ``graph`` on the first ten real triplets, against fp32 eager and against the truth; and on
    the bikes.mp4 triplet at 28, whose large motion takes the retry, against fp32 eager."""
    rows: list[dict] = []
    starts = list(range(0, 19, 2))
    frames = clips["bigbuckbunny"]
    truth = [frames[i + 1].to(CUDA) for i in starts]
    ref = retry_ref = None
    for precision, mode in [("fp32", "eager"), *configs]:
        loaded = load_model(ModelChoice(weights=v4_weights))
        torch.backends.cudnn.benchmark = False
        e = Engine(loaded.net, loaded.variant, CUDA, resolve_precision(CUDA, precision, False), execution=mode)
        try:
            outs = middle_frames(e, frames, starts)
            retry_out = middle_frames(e, clips["bikes"], [28])[0]
        except Exception as err:  # one failing configuration must not hide the others
            rows.append({"v4.0 bigbuckbunny 10 triplets": f"{precision} {mode}", "error": f"{type(err).__name__}: {str(err)[:160]}"})
            continue
        ref = outs if ref is None else ref
        retry_ref = retry_out if retry_ref is None else retry_ref
        rows.append({"v4.0 bigbuckbunny 10 triplets": f"{precision} {mode}",
                     "psnr_vs_truth": statistics.fmean(float(metrics.psnr(o, t)[0]) for o, t in zip(outs, truth, strict=True)),
                     "psnr_vs_fp32_eager": statistics.fmean(psnr_between(o, r) for o, r in zip(outs, ref, strict=True))
                     if precision != "fp32" else None,
                     "bikes_28_retry_psnr_vs_fp32": psnr_between(retry_out, retry_ref) if precision != "fp32" else None})
    return rows


def section_batch(v4_weights: Path, calls: int, batches: list[int]) -> list[dict]:
    """``fast`` at 1280x720 fp16 with several frame pairs per call (fps counts interpolated frames)."""
    rows = []
    for arch in ("paper", "v4.0"):
        for batch in batches:
            e = make_engine(arch, "ours", "fp16", "fast", v4_weights, None)
            frames = torch.randint(0, 256, (2, batch, 3, 720, 1280), dtype=torch.uint8, device=CUDA)
            r = measure_pair(e, frames, max(20, calls // batch)).figures()
            rows.append({"model": arch, "batch": batch, "fps": r["fps"], "p50_ms_per_call": r["p50_ms"],
                         "peak_mem_mb": r["peak_mem_mb"]})
            del e
            torch.cuda.empty_cache()
    return rows


def section_warp(calls: int = 200) -> list[dict]:
    """The fused Triton warp against PyTorch's fp32 grid_sample warp (eager), same inputs, at 720p."""
    from rife import triton_warp
    from rife.layers import Warper

    torch_warp = Warper()
    torch_warp.fp32 = True
    rows = []
    for c, h, w in ((3, 768, 1280), (16, 384, 640)):
        img = torch.rand(1, c, h, w, device=CUDA, dtype=torch.float16).contiguous(memory_format=torch.channels_last)
        flow = (torch.randn(1, 4, h, w, device=CUDA) * 20).contiguous(memory_format=torch.channels_last)[:, 2:4]
        ref, fused = torch_warp(img, flow), triton_warp.fused_warp(img, flow)
        row = {"image": f"{c}x{h}x{w} fp16 channels_last", "max_abs_diff": (ref.float() - fused.float()).abs().max().item()}
        for name, fn in (("torch_us", torch_warp), ("triton_us", triton_warp.fused_warp)):
            stats = time_function(functools.partial(fn, img, flow), CUDA, calls)
            row[name] = (stats.percentile("p50") or 0.0) * 1e3
        rows.append(row)
    return rows


def section_profile(v4_weights: Path, calls: int = 20) -> list[dict]:
    """Where the time of one ``fast`` frame goes (1280x720 fp16): CUDA kernels by total time."""

    rows = []
    for arch in ("paper", "v4.0"):
        e = make_engine(arch, "ours", "fp16", "fast", v4_weights, None)
        frames = torch.randint(0, 256, (2, 1, 3, 720, 1280), dtype=torch.uint8, device=CUDA)
        rows += profiled_calls(e, frames, arch, calls)
        del e
        torch.cuda.empty_cache()
    return rows


def _no_retry(net) -> None:
    import dataclasses

    net.variant = dataclasses.replace(net.variant, large_motion_retry=None)


def _kernels_changed(**changes) -> contextlib.AbstractContextManager:
    """``rife.execution.kernels_for`` with ``changes`` while an engine is built."""
    import dataclasses
    from unittest import mock

    from rife import execution

    original = execution.kernels_for
    return mock.patch("rife.execution.kernels_for",
                      lambda plan, device: dataclasses.replace(original(plan, device), **changes))


def _priorities(capture: int, side: int) -> contextlib.AbstractContextManager:
    """The main (captured) stream's and the side stream's priorities (lower is higher)."""
    from unittest import mock

    from rife.execution import TwoStreams

    stack = contextlib.ExitStack()
    stack.enter_context(mock.patch("rife.execution.HIGH_PRIORITY", capture))
    stack.enter_context(_kernels_changed(fork_join=TwoStreams(CUDA, side)))
    return stack


def _tweak_context(name: str) -> contextlib.AbstractContextManager:
    """The change a tweak makes while its engine is built, compiles and autotunes."""
    if name == "one-stream":
        from rife.kernels import one_after_another

        return _kernels_changed(fork_join=one_after_another)
    if name == "side-priority":  # fast gives the main (captured) stream priority
        return _priorities(0, -1)
    if name == "cudnn-try-all":
        return _cudnn_benchmark_limit(0)
    if name == "max-autotune":
        import torch._inductor.config as inductor_config

        return inductor_config.patch(max_autotune=True, max_autotune_conv_backends="ATEN,TRITON")
    if name == "transposed-deconv":  # cuDNN's transposed convolutions instead of rife.execution.SubpixelDeconv
        from unittest import mock

        return mock.patch("rife.execution.subpixel_deconvs", lambda net: None)
    return contextlib.nullcontext()


@contextlib.contextmanager
def _cudnn_benchmark_limit(limit: int):
    """cuDNN's autotuning tries ``limit`` algorithms per convolution (0: all of them; PyTorch's default is 10)."""
    saved, torch.backends.cudnn.benchmark_limit = torch.backends.cudnn.benchmark_limit, limit
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark_limit = saved


TWEAKS = {  # name: (change to the network before the engine, models); the rest is in _tweak_context
    "fast": (None, ("paper", "v4.0")),
    "one-stream": (None, ("paper", "v4.0")),
    "no-retry-bound": (_no_retry, ("v4.0",)),
    "side-priority": (None, ("paper", "v4.0")),
    "transposed-deconv": (None, ("paper", "v4.0")),
    "cudnn-try-all": (None, ("paper", "v4.0")),
    "max-autotune": (None, ("paper", "v4.0")),
}


def section_tweaks(v4_weights: Path, calls: int, names: list[str], out_dir: Path) -> list[dict]:
    """``fast`` at 1280x720 fp16 with one change each, to see what pays; error against fp32 eager on a smooth scene."""
    rows: list[dict] = []
    frames = random_scene(720, 1280).to(CUDA)
    for arch in ("v4.0", "paper"):
        ref = make_engine(arch, "ours", "fp32", "eager", v4_weights, None)
        ref_out = ref.interpolate(ref.to_model_input(frames[0]), ref.to_model_input(frames[1]), 1, (720, 1280))[0].float()
        del ref
        for name in names:
            before, archs = TWEAKS[name]
            if arch not in archs:
                continue
            try:
                with _tweak_context(name):
                    e = make_engine(arch, "ours", "fp16", "fast", v4_weights, None, prepare=before)
                    out, r = first_and_timed(e, frames, calls)
            except Exception as err:  # one failing tweak must not hide the others
                rows.append({"model": arch, "tweak": name, "error": f"{type(err).__name__}: {str(err)[:160]}"})
                continue
            rows.append({"model": arch, "tweak": name, **r, "max_abs_vs_fp32": (out - ref_out).abs().max().item()})
            groups = _frame_kernels(e, e.to_model_input(frames[0]), e.to_model_input(frames[1]))
            _write_frame(out_dir / f"timeline-{arch}-{name}.csv", groups)
            rows[-1].update(_timeline(groups))
            del e
            torch.cuda.empty_cache()
    return rows


def _frame_kernels(e: Engine, a: torch.Tensor, b: torch.Tensor, frames: int = 5) -> list[list[tuple]]:
    """The (start µs, end µs, name) of each kernel, one list per call: ``frames`` calls spaced apart."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(frames):
            e.interpolate(a, b, 1, (720, 1280))
            torch.cuda.synchronize()
            time.sleep(0.002)
    kernels = sorted(((ev.time_range.start, ev.time_range.end, ev.name) for ev in prof.events()
                      if ev.device_type == DeviceType.CUDA), key=lambda k: k[0])
    groups: list[list[tuple]] = []
    last_end = -math.inf
    for k in kernels:
        if k[0] - last_end > 500:  # the sleep between calls
            groups.append([])
        groups[-1].append(k)
        last_end = max(last_end, k[1])
    return groups


def _write_frame(path: Path, groups: list[list[tuple]]) -> list[tuple]:
    """The middle call's kernels as CSV (start µs from its first kernel, duration, name); returns them."""
    frame = groups[len(groups) // 2]
    lines = [f"{k[0] - frame[0][0]:.1f},{k[1] - k[0]:.1f},{k[2][:110]}" for k in frame]
    path.write_text("start_us,duration_us,kernel\n" + "\n".join(lines) + "\n")
    return frame


def _timeline(groups: list[list[tuple]]) -> dict:
    """GPU time of a frame from its kernels: span (first start to last end), busy (their union) and their sum
    (above busy when the two streams overlap); medians over the calls."""
    spans, busies, sums = [], [], []
    for g in groups:
        spans.append(max(k[1] for k in g) - g[0][0])
        sums.append(sum(k[1] - k[0] for k in g))
        busy, end = 0.0, g[0][0]
        for start, stop, _ in g:
            busy += max(0.0, stop - max(start, end))
            end = max(end, stop)
        busies.append(busy)
    return {"kernels_per_frame": statistics.median(len(g) for g in groups), "span_us": statistics.median(spans),
            "busy_us": statistics.median(busies), "kernel_sum_us": statistics.median(sums)}


def _kind_rows(arch: str, frame: list[tuple]) -> list[dict]:
    """One frame's kernel time by family (``kernel_kind``), largest first."""
    kinds: dict[str, list[float]] = {}
    for start, stop, name in frame:
        kinds.setdefault(kernel_kind(name), []).append(stop - start)
    total = sum(sum(d) for d in kinds.values()) or 1.0
    return [{"model": arch, "kernel family": kind, "kernels": len(d), "us": sum(d), "share_pct": 100 * sum(d) / total}
            for kind, d in sorted(kinds.items(), key=lambda kv: -sum(kv[1]))]


def section_timeline(v4_weights: Path, out: Path) -> tuple[list[dict], list[dict]]:
    """One ``fast`` frame at 1280x720 fp16 kernel by kernel (timeline-<model>.csv in --out): its summary, and
    its kernel time by family."""
    rows, kind_rows = [], []
    for arch in ("paper", "v4.0"):
        e = make_engine(arch, "ours", "fp16", "fast", v4_weights, None)
        frames = torch.randint(0, 256, (2, 1, 3, 720, 1280), dtype=torch.uint8, device=CUDA)
        a, b = e.to_model_input(frames[0]), e.to_model_input(frames[1])
        try:
            for _ in range(5):
                e.interpolate(a, b, 1, (720, 1280))
            groups = _frame_kernels(e, a, b)
            frame = _write_frame(out / f"timeline-{arch}.csv", groups)
            rows.append({"model": arch, **_timeline(groups)})
            kind_rows += _kind_rows(arch, frame)
        except Exception as err:  # one failing model must not hide the other
            rows.append({"model": arch, "error": f"{type(err).__name__}: {str(err)[:160]}"})
        del e
        torch.cuda.empty_cache()
    return rows, kind_rows


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--weights", type=Path, required=True)
    p.add_argument("--videos", type=Path, required=True)
    p.add_argument("--paper-code", type=Path, default=None)
    p.add_argument("--out", type=Path, default=Path("."))
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--compile", action="store_true", help="also time torch.compile at 1280x720 fp16 (about a minute each)")
    p.add_argument("--batches", default="", help="e.g. 1,4,8: fast at 1280x720 fp16 with these batch sizes")
    p.add_argument("--profile", action="store_true", help="kernel time table of fast at 1280x720 fp16")
    p.add_argument("--tweaks", default="", help=f"fast at 1280x720 fp16 with single changes: {', '.join(TWEAKS)}")
    p.add_argument("--timeline", action="store_true", help="one fast frame kernel by kernel, to --out")
    p.add_argument("--skip-checks", action="store_true", help="skip the sameness and precision sections")
    p.add_argument("--warp", action="store_true", help="the fused Triton warp against PyTorch's, sameness and time")
    p.add_argument("--archs", default="paper,v4.0")
    p.add_argument("--sizes", default=",".join(SIZES))
    p.add_argument("--precisions", default="fp16,bf16")
    p.add_argument("--modes", default="eager,graph,fast")
    p.add_argument("--quality-configs", default="fp16:eager,fp16:graph,fp16:fast,bf16:fast",
                   help="precision:mode pairs checked on real frames against fp32 eager")
    a = p.parse_args()
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}")
    clips = {name: [torch.from_numpy(f).permute(2, 0, 1)[None] for f in decode_frames(a.videos / f"{name}.mp4", n)]
             for name, n in (("bigbuckbunny", 21), ("bikes", 31))}
    code = a.paper_code if a.paper_code and (a.paper_code / "IFNet.py").is_file() else None
    quality_configs = [tuple(c.split(":")) for c in a.quality_configs.split(",") if c]
    results: dict[str, list[dict]] = {}
    a.out.mkdir(parents=True, exist_ok=True)

    def emit(name: str, rows: list[dict]) -> None:  # each table as soon as it is done: a timeout keeps the rest
        results[name] = rows
        print_table(name, rows)
        sys.stdout.flush()
        (a.out / "verify_gpu.json").write_text(json.dumps(results, indent=2))

    if a.warp:
        emit("warp", section_warp())
    if not a.skip_checks:
        emit("sameness", section_sameness(a.weights, clips, code))
        emit("precision", section_precision(a.weights, clips))
    if quality_configs:
        emit("fast_quality", section_fast_quality(a.weights, clips, quality_configs))
    if a.modes:
        emit("modes", section_modes(a.weights, code, a.calls, a.compile, a.archs.split(","), a.sizes.split(","),
                                    a.precisions.split(","), a.modes.split(",")))
    if a.profile:
        emit("profile", section_profile(a.weights))
    if a.timeline:
        summary, kinds = section_timeline(a.weights, a.out)
        emit("timeline", summary)
        emit("timeline_kinds", kinds)
    if a.tweaks:
        emit("tweaks", section_tweaks(a.weights, a.calls, a.tweaks.split(","), a.out))
    if a.batches:
        emit("batch", section_batch(a.weights, a.calls, [int(b) for b in a.batches.split(",")]))

if __name__ == "__main__":
    main()
