"""The GPU performance table (CUDA): every execution mode of our IFNet next to the upstream code run the
reference's way (eager), in one process, on a fresh random smooth moving scene, with throughput, per-call latency,
peak memory and each row's error against our fp32 eager output.

    python -m tools.gpu_table [--weights train_log/v4.0/flownet.pkl] [--paper-code model] [--archs paper,v4.0]
        [--sizes 448x256,1280x720,1920x1080] [--precisions fp16,bf16] [--modes eager,graph,fast] [--calls 300]
        [--out DIR]
    python -m tools.gpu_table --releases 4.25,4.26.heavy,4.22 [--profile 4.25] [--sizes 1280x720] [--calls 300]

Run from the repository after ``./get_model.sh`` (the v4.0 weights; the paper code in ``model/`` adds the upstream
paper rows, which are left out without it). Prints the table as Markdown and writes gpu_table.json to --out.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import torch

from harness.measure.core import measure_pair
from harness.measure.inputs import random_scene
from rife.engine import Engine, resolve_precision
from rife.ifnet import IFNet
from rife.loader import ModelChoice, load_model
from rife.registry import VARIANTS
from rife.upstream import UpstreamPaper

CUDA = torch.device("cuda")


def middle_frames(e: Engine, frames: list[torch.Tensor], starts: list[int], t: float = 0.5) -> list[torch.Tensor]:
    """The frame at ``t`` between ``frames[i]`` and ``frames[i + 2]`` (uint8 (1, 3, H, W)) for each start, fp32 in
    [0, 1], on the engine's device."""
    outs = []
    for i in starts:
        h, w = frames[i].shape[-2:]
        a, b = (e.to_model_input(frames[j].to(e.device)) for j in (i, i + 2))
        if t == 0.5:
            outs.append(e.interpolate(a, b, 1, (h, w))[0].float())
        else:
            with torch.inference_mode(), e.running():
                outs.append(e.net(a, b, t)[:, :, :h, :w].float())
    return outs


def psnr_between(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.double() - b.double()).pow(2).mean().item()
    return math.inf if mse == 0 else -10 * math.log10(mse)


def first_and_timed(e: Engine, frames: torch.Tensor, calls: int) -> tuple[torch.Tensor, dict]:
    """The first call's output (fp32) on the uint8 pair ``frames`` (2, 1, 3, H, W) and the figures of ``calls``
    timed calls through the measurement core, with the first call's seconds (compiles and captures happen there)
    and the peak memory of this engine's calls only."""
    sweep = measure_pair(e, frames, calls)
    return sweep.output, sweep.figures()


SIZES = {"448x256": (256, 448), "1280x720": (720, 1280), "1920x1080": (1080, 1920)}


def paper_nets(paper_code: Path | None) -> dict[str, torch.nn.Module]:
    """Ours and upstream with the same seeded random weights (the paper weights are not on PyPI)."""
    torch.manual_seed(0)
    ours = IFNet(VARIANTS["paper"])
    with torch.no_grad():
        for p in ours.parameters():
            p.normal_(0, 0.05) if p.dim() > 1 else p.uniform_(0.0, 0.3)
    nets: dict[str, torch.nn.Module] = {"ours": ours}
    if paper_code is not None:
        up = UpstreamPaper(paper_code)
        up.flownet.load_state_dict(ours.state_dict(), strict=False)
        nets["upstream"] = up
    return nets


def make_engine(arch: str, impl: str, precision: str, mode: str, v4_weights: Path, paper_code: Path | None,
                prepare=None) -> Engine:
    import copy

    if arch == "paper":
        net, variant = copy.deepcopy(paper_nets(paper_code)[impl]), VARIANTS["paper"]
    else:
        loaded = load_model(ModelChoice(weights=v4_weights, impl=impl))
        net, variant = loaded.net, loaded.variant
    if prepare is not None:
        prepare(net)
    # as a run builds it (harness.streams.stream.build_engine): the run's padding, and the execution plan's own
    # torch settings (cuDNN autotuning only under ``fast``), so that a table row is what inference.py measures
    return Engine(net, variant, CUDA, resolve_precision(CUDA, precision, False), execution=mode)


def section_modes(v4_weights: Path, paper_code: Path | None, calls: int, compile_too: bool,
                  archs: list[str], sizes: list[str], precisions: list[str], modes: list[str]) -> list[dict]:
    """Every execution mode next to the upstream code run the reference's way, same run, on a fresh random
    smooth scene with motion (on noise the flow is chaotic and any rounding change flips it)."""
    rows: list[dict] = []
    for arch in archs:
        for size in sizes:
            h, w = SIZES[size]
            frames = random_scene(h, w).to(CUDA)  # smooth and moving: the error against fp32 means something
            ref_out = None
            configs = [("upstream", "fp32", "eager"), ("ours", "fp32", "eager")]
            for precision in precisions:
                configs += [("upstream", precision, "eager")] + [("ours", precision, m) for m in modes]
                if compile_too and size == "1280x720" and precision == "fp16":
                    configs.append(("ours", precision, "compile"))
            for impl, precision, mode in configs:
                if impl == "upstream" and arch == "paper" and paper_code is None:
                    continue
                try:
                    e = make_engine(arch, impl, precision, mode, v4_weights, paper_code)
                    out, r = first_and_timed(e, frames, calls)
                except Exception as err:  # one failing configuration must not hide the others
                    rows.append({"model": arch, "size": size, "impl": impl, "precision": precision, "mode": mode,
                                 "error": f"{type(err).__name__}: {str(err)[:120]}"})
                    continue
                if impl == "ours" and precision == "fp32":
                    ref_out = out
                rows.append({"model": arch, "size": size, "impl": impl, "precision": precision, "mode": mode, **r,
                             "psnr_vs_fp32": psnr_between(out, ref_out) if ref_out is not None else None,
                             "max_abs_vs_fp32": (out - ref_out).abs().max().item() if ref_out is not None else None})
                del e
                torch.cuda.empty_cache()
    return rows


def release_engine(release: str, impl: str, precision: str, mode: str, weights: Path) -> Engine:
    from rife import assets

    loaded = load_model(ModelChoice(arch=release, weights=weights, impl=impl, models_dir=assets.cached_paper_code()))
    return Engine(loaded.net, loaded.variant, CUDA, resolve_precision(CUDA, precision, False), execution=mode)


def section_releases(releases: list[str], size: str, calls: int, out: Path, keep: frozenset[str] = frozenset()
                     ) -> tuple[list[dict], dict[str, Engine]]:
    """Each release's ``fast`` fp16 next to the upstream code run the reference's way (eager fp16), same run, on a
    fresh random smooth moving scene; ``fast``'s PSNR against our fp32 eager output. Real weights where the assets
    folder has them, else seeded random ones that both implementations load (``weights`` says which). The ``fast``
    engines of the releases in ``keep`` are returned, warm (compiled, tuned, captured), for their profiles."""
    from tools.gpu_acceptance import family_weights

    h, w = SIZES[size]
    frames = random_scene(h, w).to(CUDA)
    rows: list[dict] = []
    kept: dict[str, Engine] = {}
    for release in releases:
        weights, kind = family_weights(release, out)
        ref_out, fps = None, {}
        for impl, precision, mode in (("ours", "fp32", "eager"), ("upstream", "fp16", "eager"),
                                      ("ours", "fp16", "fast")):
            row = {"model": release, "weights": kind, "size": size, "impl": impl, "precision": precision,
                   "mode": mode}
            try:
                e = release_engine(release, impl, precision, mode, weights)
                output, r = first_and_timed(e, frames, calls)
            except Exception as err:  # one failing configuration must not hide the others
                rows.append({**row, "error": f"{type(err).__name__}: {str(err)[:160]}"})
                print(f"row: {rows[-1]}", flush=True)
                continue
            ref_out = output if ref_out is None else ref_out
            fps[impl, precision] = r["fps"]
            upstream = fps.get(("upstream", "fp16"))
            rows.append({**row, **r, "vs_upstream_fp16": r["fps"] / upstream if upstream else None,
                         "psnr_vs_fp32": psnr_between(output, ref_out)})
            print(f"row: {rows[-1]}", flush=True)  # a step cut short by its time limit keeps the rows it made
            if mode == "fast" and release in keep:
                kept[release] = e
            del e
            torch.cuda.empty_cache()
    return rows, kept


def kernel_kind(name: str) -> str:
    """A kernel's family, for a profile's summary rows. Inductor's kernels are named after the ops they fuse, so
    they are told apart before the library convolutions (whose names say "conv" too)."""
    triton_kernels = {"_step_kernel": "flow step (Triton)", "_feed_kernel": "block input (Triton)",
                      "_gather_kernel": "block input / carried channels (Triton)", "_warp_kernel": "warp"}
    for key, kind in triton_kernels.items():
        if key in name:
            return kind
    if "grid_sampler" in name and not name.startswith("triton_"):
        return "warp"
    if name.startswith("triton_"):
        if "unsafe_index" in name:
            return "resize (+ fused elementwise, inductor)"
        if name.startswith("triton_per"):
            return "reduction (inductor)"
        if "convolution" in name:
            return "convolution epilogue / fused elementwise (inductor)"
        return "other elementwise / cat (inductor)"
    if "nhwcAddPadding" in name:
        return "cuDNN channel padding"
    if "dgrad" in name:
        return "transposed convolution"
    if any(k in name for k in ("xmma", "cutlass", "conv", "fprop", "implicit_gemm", "cudnn", "sm90")):
        return "convolution"
    if "emcpy" in name or "emset" in name or "copy" in name.lower():
        return "copy/memset"
    return "other"


def profiled_calls(e: Engine, frames: torch.Tensor, model: str, calls: int = 50) -> list[dict]:
    """Where the time of ``e``'s call on the uint8 pair ``frames`` (2, 1, 3, H, W) goes: CUDA kernels over ``calls``
    calls after five untimed ones, in all, by family (``kernel_kind``) and the twelve largest."""
    from torch.profiler import ProfilerActivity, profile

    h, w = frames.shape[-2:]
    a, b = e.to_model_input(frames[0]), e.to_model_input(frames[1])
    for _ in range(5):
        e.interpolate(a, b, 1, (h, w))
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            e.interpolate(a, b, 1, (h, w))
        torch.cuda.synchronize()
    events = [ev for ev in prof.key_averages() if ev.device_time_total > 0]
    total = sum(ev.device_time_total for ev in events) or 1.0

    def row(kernel: str, spent: float, count: int) -> dict:
        return {"model": model, "kernel": kernel, "us_per_call": spent / calls, "share_pct": 100 * spent / total,
                "kernels_per_call": count / calls}

    by_kind: dict[str, list] = {}
    for ev in events:
        by_kind.setdefault(kernel_kind(ev.key), []).append(ev)
    rows = [row("[all]", total, sum(ev.count for ev in events))]
    for kind, evs in sorted(by_kind.items(), key=lambda kv: -sum(ev.device_time_total for ev in kv[1])):
        rows.append(row(f"[{kind}]", sum(ev.device_time_total for ev in evs), sum(ev.count for ev in evs)))
    rows += [row(ev.key[:70], ev.device_time_total, ev.count)
             for ev in sorted(events, key=lambda ev: -ev.device_time_total)[:12]]
    return rows + last_call_kernels(prof, model, calls)


def last_call_kernels(prof: Any, model: str, calls: int) -> list[dict]:
    """The last call's kernels in the order they ran, each with its own time (which launch of a kernel costs)."""
    from torch.autograd import DeviceType

    kernels = sorted((ev for ev in prof.events() if ev.device_type == DeviceType.CUDA),
                     key=lambda ev: ev.time_range.start)
    per_call = len(kernels) // calls
    return [{"model": model, "kernel": f"#{k} {ev.name[:64]}", "us_per_call": ev.time_range.elapsed_us(),
             "share_pct": 0.0, "kernels_per_call": 1.0} for k, ev in enumerate(kernels[len(kernels) - per_call:])]


def section_profile(release: str, size: str, out: Path, calls: int = 50, engine: Engine | None = None
                    ) -> list[dict]:
    """Where the time of one ``fast`` fp16 call of ``release`` goes, over ``calls`` CUDA-graph replays on a random
    smooth moving scene (``profiled_calls``); ``engine``: the release's warm ``fast`` engine, else a new one."""
    from tools.gpu_acceptance import family_weights

    h, w = SIZES[size]
    e = engine or release_engine(release, "ours", "fp16", "fast", family_weights(release, out)[0])
    return profiled_calls(e, random_scene(h, w).to(CUDA), release, calls)


def print_table(title: str, rows: list[dict]) -> None:
    print(f"\n## {title}")
    if not rows:
        print("(none)")
        return
    keys = list(dict.fromkeys(k for r in rows for k in r if k != "per_triplet"))
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        cells = [f"{r.get(k):.4g}" if isinstance(r.get(k), float) else str(r.get(k, "")) for k in keys]
        print("| " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.gpu_table", description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, default=Path("train_log/v4.0/flownet.pkl"), help="the v4.0 weights")
    p.add_argument("--paper-code", type=Path, default=Path("model"),
                   help="the upstream paper code (get_model.sh); without it the upstream paper rows are left out")
    p.add_argument("--archs", default="paper,v4.0")
    p.add_argument("--sizes", default=",".join(SIZES), help=f"of {', '.join(SIZES)}")
    p.add_argument("--precisions", default="fp16,bf16")
    p.add_argument("--modes", default="eager,graph,fast")
    p.add_argument("--calls", type=int, default=300, help="timed calls per row, after 10 warm-up calls")
    p.add_argument("--compile", action="store_true", help="also time torch.compile at 1280x720 fp16")
    p.add_argument("--out", type=Path, default=Path("."))
    p.add_argument("--releases", default="", help="instead: these releases' fast fp16 next to the upstream code "
                   "eager fp16 at the first of --sizes (real weights from the assets folder, else seeded random)")
    p.add_argument("--profile", default="", help="with --releases: these releases' fast calls, kernel by kernel")
    a = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("error: the GPU table needs a CUDA GPU, and none is visible to PyTorch", file=sys.stderr)
        return 2
    if a.releases:
        return release_tables(a)
    if "v4.0" in a.archs.split(",") and not a.weights.is_file():
        print(f"error: no v4.0 weights at {a.weights}: run ./get_model.sh or pass --weights", file=sys.stderr)
        return 2
    unknown = set(a.sizes.split(",")) - set(SIZES)
    if unknown:
        print(f"error: --sizes {','.join(sorted(unknown))}: expected some of {', '.join(SIZES)}", file=sys.stderr)
        return 2
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}")
    code = a.paper_code if (a.paper_code / "IFNet.py").is_file() else None
    rows = section_modes(a.weights, code, a.calls, a.compile, a.archs.split(","), a.sizes.split(","),
                         a.precisions.split(","), a.modes.split(","))
    print_table("modes", rows)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "gpu_table.json").write_text(json.dumps({"modes": rows}, indent=2))
    return 0


def release_tables(a: argparse.Namespace) -> int:
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}")
    size = a.sizes.split(",")[0]
    a.out.mkdir(parents=True, exist_ok=True)
    profiled = [release for release in a.profile.split(",") if release]
    rows, warm = section_releases(a.releases.split(","), size, a.calls, a.out, keep=frozenset(profiled))
    tables = {"releases": rows}
    print_table(f"releases at {size}", tables["releases"])
    for release in profiled:
        tables[f"profile {release}"] = section_profile(release, size, a.out, engine=warm.pop(release, None))
        print_table(f"profile of {release} fast fp16 at {size}", tables[f"profile {release}"])
    (a.out / "gpu_releases.json").write_text(json.dumps(tables, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
