"""Maintainer's probe (CUDA): concurrency inside one process, as TensorRT-based tools offer it with
``num_streams``. K engines of one release, each replaying its own CUDA graphs over its own buffers (its own fused
convolution workspaces too) on its own CUDA stream, driven by its own host thread, against one engine, in the same
process. Prints total frames/s for each K and the ratio to K = 1; compare with ``--streams K --mps on`` through
``inference.py`` (separate processes under CUDA MPS) on the same machine.

    python3 -m dev.concurrency_probe [--weights train_log/v4.0/flownet.pkl] [--arch v4.0] [--size 1280x720]
        [--precision fp16] [--batch 1] [--engines 1,2,3,4] [--seconds 10] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import threading
from pathlib import Path

import torch

from harness.measure.core import Meter, Timed, fixed_pair, repeated_batches
from harness.measure.inputs import HostBatch, random_scene
from harness.measure.latency import describe
from harness.measure.stop import StopRule
from rife.engine import Engine, resolve_precision
from rife.loader import ModelChoice, load_model

CUDA = torch.device("cuda")


def build(args: argparse.Namespace) -> Engine:
    loaded = load_model(ModelChoice(arch=args.arch, weights=args.weights, allow_random_init=True))
    precision = resolve_precision(CUDA, args.precision, False)
    return Engine(loaded.net, loaded.variant, CUDA, precision, execution="fast")


def worker(engine: Engine, pool: list[HostBatch], size: tuple[int, int], start: threading.Barrier, seconds: float,
           results: list[Timed | None], index: int) -> None:
    """This engine's timed loop through the measurement core, on this thread's own CUDA stream, for ``seconds``."""
    stream = torch.cuda.Stream(CUDA)
    with torch.cuda.stream(stream):
        meter = Meter(engine, 1, size)
        start.wait()
        results[index] = meter.timed(repeated_batches(pool), StopRule(1, math.inf, seconds, seconds))


def measure(engines: list[Engine], pools: list[list[HostBatch]], size: tuple[int, int], seconds: float) -> dict:
    """The engines' timed loops side by side: frames of all of them over the longest loop's wall time, and the
    per-call latency of every call pooled."""
    start = threading.Barrier(len(engines))
    results: list[Timed | None] = [None] * len(engines)
    threads = [threading.Thread(target=worker, args=(e, pool, size, start, seconds, results, k))
               for k, (e, pool) in enumerate(zip(engines, pools, strict=True))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    loops = [t for t in results if t is not None]
    wall = max(t.end for t in loops) - min(t.start for t in loops)
    stats = describe([v for t in loops for v in t.latencies_ms])
    return {"engines": len(engines), "calls": sum(t.calls for t in loops),
            "fps": sum(t.frames for t in loops) / wall,
            "p50_ms": stats.percentile("p50") if stats else None, "p99_ms": stats.percentile("p99") if stats else None}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, default=Path("train_log/v4.0/flownet.pkl"))
    p.add_argument("--arch", default="v4.0")
    p.add_argument("--size", default="1280x720")
    p.add_argument("--precision", default="fp16")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--engines", default="1,2,3,4")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--out", type=Path, default=Path("."))
    args = p.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("dev.concurrency_probe: needs a CUDA GPU")
    if not args.weights.is_file():
        args.weights = None  # the release's default path, else seeded random weights: the speed is the same
    w, h = (int(v) for v in args.size.split("x"))
    counts = [int(k) for k in args.engines.split(",")]
    engines = [build(args) for _ in range(max(counts))]
    torch.manual_seed(0)
    pools = []
    for e in engines:  # each engine's own inputs; its graphs are captured here, one engine at a time
        pool = fixed_pair(e, random_scene(h, w).to(CUDA).expand(-1, args.batch, -1, -1, -1))
        Meter(e, 1, (h, w)).warm_up(repeated_batches(pool), 3)
        pools.append(pool)
    rows = [measure(engines[:k], pools[:k], (h, w), args.seconds) for k in counts]
    base = rows[0]["fps"]
    print(f"{'engines':>8}{'frames/s':>10}{'x':>7}{'p50 ms':>9}{'p99 ms':>9}")
    for r in rows:
        r["ratio"] = r["fps"] / base
        print(f"{r['engines']:>8}{r['fps']:>10.1f}{r['ratio']:>7.2f}{r['p50_ms'] or 0:>9.2f}{r['p99_ms'] or 0:>9.2f}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "concurrency_probe.json").write_text(json.dumps(
        {"arch": args.arch, "size": args.size, "precision": args.precision, "batch": args.batch,
         "device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
