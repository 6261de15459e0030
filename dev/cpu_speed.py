"""CPU side by side: the upstream code run the reference's way (eager fp32) against our default CPU path,
in one run, plus the harness's own overhead against a bare loop over the same engine.

    .venv/bin/python -m dev.cpu_speed --v4-weights train_log/v4.0/flownet.pkl [--paper-code model] [--calls 20]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from harness.measure.core import Meter, measure_pair
from harness.measure.inputs import DummyPairs, Uploader
from harness.measure.stop import StopRule
from harness.system.device import default_precision
from rife.engine import Engine, resolve_precision
from rife.loader import ModelChoice, load_model

CPU = torch.device("cpu")


def engine(choice: ModelChoice, precision: str, execution: str) -> Engine:
    loaded = load_model(choice)
    return Engine(loaded.net, loaded.variant, CPU, resolve_precision(CPU, precision, False), execution=execution)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--v4-weights", type=Path, required=True)
    p.add_argument("--paper-code", type=Path, default=None)
    p.add_argument("--calls", type=int, default=20)
    p.add_argument("--size", default="448x256")
    a = p.parse_args()
    torch.set_num_threads(2)
    w, h = (int(v) for v in a.size.split("x"))
    frames = torch.randint(0, 256, (2, 1, 3, h, w), dtype=torch.uint8)
    ours_precision = default_precision(CPU)
    rows = []
    for arch, choice in (("paper", ModelChoice(arch="paper", allow_random_init=True)),
                         ("v4.0", ModelChoice(weights=a.v4_weights))):
        up_choice = ModelChoice(arch=arch, allow_random_init=True, impl="upstream", models_dir=a.paper_code or Path("model"),
                                weights=choice.weights)
        engines = {"upstream eager fp32 (reference)": engine(up_choice, "fp32", "eager")} \
            if arch == "v4.0" or a.paper_code else {}
        engines["ours eager fp32"] = engine(choice, "fp32", "eager")
        engines[f"ours default ({ours_precision}, fast)"] = engine(choice, ours_precision, "fast")
        for name, e in engines.items():
            stats = measure_pair(e, frames, a.calls, warmup=2).latency
            rows.append((arch, name, stats.median_ms if stats is not None and stats.median_ms else float("nan")))
    base = {arch: ms for arch, name, ms in rows if name.startswith("upstream")}
    print(f"\n| model | path ({w}x{h}, 2 threads) | median ms | speed-up vs upstream eager fp32 |\n|---|---|---|---|")
    for arch, name, ms in rows:
        ratio = f"{base[arch] / ms:.2f}x" if arch in base else "n/a"
        print(f"| {arch} | {name} | {ms:.1f} | {ratio} |")
    overhead(a, h, w, ours_precision)


def overhead(a, h: int, w: int, precision: str) -> None:
    """The harness's loop (the measurement core over the dummy pool) against a bare loop, same engine, same
    inputs."""
    e = engine(ModelChoice(weights=a.v4_weights), precision, "fast")
    pool = DummyPairs(e, 8, 1, h, w, seed=0, transfers=False)
    uploader = Uploader(e)
    batches = [uploader.receive(p) for p, _ in zip(uploader.ahead(pool), range(8), strict=False)]

    def bare():
        for b in batches:
            e.interpolate(b.img0, b.img1, 1, (h, w))

    meter = Meter(e, 1, (h, w))

    def harness_loop():
        meter.timed(pool, StopRule(len(batches), len(batches)))

    results: dict[str, list[float]] = {"bare": [], "harness": []}
    for _ in range(a.calls // 4 + 3):  # interleaved, so drift hits both alike
        for name, fn in (("bare", bare), ("harness", harness_loop)):
            t0 = time.perf_counter()
            fn()
            results[name].append(time.perf_counter() - t0)
    bare_s, harness_s = statistics.median(results["bare"]), statistics.median(results["harness"])
    print(f"\nharness overhead at {w}x{h}: bare {bare_s / 8 * 1e3:.2f} ms/frame, harness {harness_s / 8 * 1e3:.2f} "
          f"ms/frame, overhead {100 * (harness_s - bare_s) / bare_s:+.2f}%")


if __name__ == "__main__":
    main()
