"""GPU check of every family (CUDA only): for each release, ``fast`` in fp16 against our fp32 eager (sameness, in dB)
and its speed against the upstream code run eagerly in fp16, in the same run, at one size, batch 1.

    RIFE_CACHE=DIR python3 -m tools.verify_releases --archs paper,v3.6,v4.0,4.6,4.22,4.25,4.26 \
        [--size 1280x720] [--calls 200] [--paper-code model] [--out DIR]

A release's weights are read from its default path (``train_log/RELEASE/flownet.pkl``, or the cache's
``RELEASE/flownet.pkl``) where present, else seeded random weights (said in the table); the upstream code comes from
the cache (``python -m rife.assets --arch RELEASE`` where a package index is reachable). Writes verify_releases.json.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from harness.measure.core import measure_pair
from harness.measure.inputs import random_scene
from rife import assets, registry
from rife.engine import Engine, resolve_precision
from rife.loader import ModelChoice, load_model
from tools.gpu_table import psnr_between

CUDA = torch.device("cuda")


def weights_for(name: str) -> Path | None:
    for path in (assets.default_weights(name), assets.cache_dir() / name / "flownet.pkl"):
        if path.is_file():
            return path
    return None


def engine(name: str, impl: str, precision: str, execution: str, weights: Path | None, paper_code: Path) -> Engine:
    """Without weights: the release's seeded random weights (the same for each of our engines)."""
    loaded = load_model(ModelChoice(arch=name, weights=weights, impl=impl, models_dir=paper_code,
                                    allow_random_init=True))
    return Engine(loaded.net, loaded.variant, CUDA, resolve_precision(CUDA, precision, False), execution=execution)


def run(e: Engine, frames: torch.Tensor, calls: int) -> tuple[torch.Tensor, dict]:
    """The first call's output and ``calls`` timed calls through the measurement core."""
    sweep = measure_pair(e, frames, calls)
    return sweep.output, sweep.figures()


def check_release(name: str, frames: torch.Tensor, calls: int, paper_code: Path) -> dict:
    weights = weights_for(name)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    reference, _ = run(engine(name, "ours", "fp32", "eager", weights, paper_code), frames, 1)
    fast_out, fast = run(engine(name, "ours", "fp16", "fast", weights, paper_code), frames, calls)
    row = {"release": name, "weights": str(weights) if weights else "random-init",
           "fast_fp16_vs_fp32_eager_db": psnr_between(fast_out, reference), "fast_fps": fast["fps"],
           "fast_p50_ms": fast["p50_ms"], "fast_first_call_s": fast["first_call_s"]}
    try:
        up_out, up = run(engine(name, "upstream", "fp16", "eager", weights, paper_code), frames, calls)
        row.update(upstream_eager_fps=up["fps"], speedup=fast["fps"] / up["fps"])
        if weights is not None:  # random upstream weights are not ours: no comparison then
            row["upstream_fp16_vs_fp32_eager_db"] = psnr_between(up_out, reference)
    except Exception as e:  # one release's missing upstream code must not hide the others' rows
        row.update(upstream_eager_fps=None, speedup=None, upstream_error=f"{type(e).__name__}: {e}"[:200])
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archs", default="paper,v3.6,v4.0,4.6,4.22,4.25,4.26")
    p.add_argument("--size", default="1280x720")
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--paper-code", type=Path, default=Path("model"))
    p.add_argument("--out", type=Path, default=Path("."))
    a = p.parse_args()
    w, h = (int(v) for v in a.size.split("x"))
    torch.manual_seed(0)
    frames = random_scene(h, w).to(CUDA)
    rows = [check_release(registry.canonical(n), frames, a.calls, a.paper_code) for n in a.archs.split(",")]
    print(f"{'release':<12}{'weights':<14}{'fast fp16 vs fp32 (dB)':>24}{'fast fps':>10}{'upstream fps':>14}{'x':>7}")
    for r in rows:
        up = f"{r['upstream_eager_fps']:.1f}" if r["upstream_eager_fps"] else "-"
        speedup = f"{r['speedup']:.2f}" if r["speedup"] else "-"
        kind = "real" if r["weights"] != "random-init" else "random"
        print(f"{r['release']:<12}{kind:<14}{r['fast_fp16_vs_fp32_eager_db']:>24.2f}{r['fast_fps']:>10.1f}"
              f"{up:>14}{speedup:>7}")
        if "upstream_error" in r:
            print(f"  upstream: {r['upstream_error']}")
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "verify_releases.json").write_text(json.dumps(
        {"size": a.size, "device": torch.cuda.get_device_name(), "torch": torch.__version__,
         "rows": [{k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in r.items()} for r in rows]},
        indent=2))


if __name__ == "__main__":
    main()
