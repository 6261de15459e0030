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
import threading
import time
from pathlib import Path

import torch

import metrics
from harness.measure.inputs import random_scene
from rife.engine import Engine, resolve_precision
from rife.loader import ModelChoice, load_model

CUDA = torch.device("cuda")


def build(args: argparse.Namespace) -> Engine:
    loaded = load_model(ModelChoice(arch=args.arch, weights=args.weights, allow_random_init=True))
    precision = resolve_precision(CUDA, args.precision, False)
    return Engine(loaded.net, loaded.variant, CUDA, precision, execution="fast")


def worker(engine: Engine, pair: tuple[torch.Tensor, torch.Tensor], size: tuple[int, int], start: threading.Barrier,
           stop_at: list[float], latencies: list[float]) -> None:
    """Calls on this thread's own CUDA stream until the shared deadline; each call's host-side latency (the call
    returns once its output is known, as in the harness: GraphedRetryOnHost waits for the retry's answer)."""
    stream = torch.cuda.Stream(CUDA)
    with torch.cuda.stream(stream):
        start.wait()
        while time.perf_counter() < stop_at[0]:
            t0 = time.perf_counter()
            engine.interpolate(*pair, 1, size)
            stream.synchronize()
            latencies.append((time.perf_counter() - t0) * 1e3)


def measure(engines: list[Engine], pairs: list[tuple[torch.Tensor, torch.Tensor]], size: tuple[int, int],
            batch: int, seconds: float) -> dict:
    start = threading.Barrier(len(engines) + 1)
    stop_at = [0.0]
    latencies: list[list[float]] = [[] for _ in engines]
    threads = [threading.Thread(target=worker, args=(e, p, size, start, stop_at, lat))
               for e, p, lat in zip(engines, pairs, latencies, strict=True)]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    stop_at[0] = t0 + seconds
    start.wait()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    every = sorted(x for lat in latencies for x in lat)
    return {"engines": len(engines), "calls": len(every), "fps": len(every) * batch / wall,
            "p50_ms": metrics.percentile(every, 50), "p99_ms": metrics.percentile(every, 99)}


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
    pairs = []
    for e in engines:  # each engine's own inputs; its graphs are captured here, one engine at a time
        frames = random_scene(h, w).to(CUDA).expand(-1, args.batch, -1, -1, -1)
        pair = (e.to_model_input(frames[0]), e.to_model_input(frames[1]))
        for _ in range(3):
            e.interpolate(*pair, 1, (h, w))
        pairs.append(pair)
    torch.cuda.synchronize()
    rows = [measure(engines[:k], pairs[:k], (h, w), args.batch, args.seconds) for k in counts]
    base = rows[0]["fps"]
    print(f"{'engines':>8}{'frames/s':>10}{'x':>7}{'p50 ms':>9}{'p99 ms':>9}")
    for r in rows:
        r["ratio"] = r["fps"] / base
        print(f"{r['engines']:>8}{r['fps']:>10.1f}{r['ratio']:>7.2f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "concurrency_probe.json").write_text(json.dumps(
        {"arch": args.arch, "size": args.size, "precision": args.precision, "batch": args.batch,
         "device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
