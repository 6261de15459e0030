"""Every conv + PReLU unit shape of fast's paper and v4.0 at 1280x720, batch 1 and 8, timed three ways in CUDA graphs:
cuDNN's convolution alone, the unit as PyTorch runs it (convolution, then bias + PReLU), and the fused cuDNN graph
(rife.fused_conv). Prints one row per shape and the pixel count where fusion stops paying."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from harness.measure.core import time_function
from rife import fused_conv
from rife.execution import plan_for, subpixel_deconvs, widened
from rife.fused_conv import FusedConvUnit
from rife.ifnet import IFNet
from rife.kernels import Kernels
from rife.registry import VARIANTS


def unit_shapes(arch: str, h: int, w: int) -> list[tuple]:
    """(c_in, c_out, stride, H, W) of every fusable unit's input in one forward at batch 1."""
    net = widened(IFNet(VARIANTS[arch]).cuda().half().eval())
    subpixel_deconvs(net)
    seen = []
    for m in net.modules():
        if FusedConvUnit.fits(m):
            m.register_forward_hook(lambda mod, args, out: seen.append(
                (mod[0].in_channels, mod[0].out_channels, mod[0].stride[0], *args[0].shape[2:])))
    net = net.with_kernels(Kernels(retry_on_device=True))
    x = torch.rand(1, 3, h, w, device="cuda").half()
    with torch.inference_mode():
        net(x, x.clone())
    return sorted(set(seen))


def graph_time_us(fn, reps: int = 20, rounds: int = 7) -> float:
    """One convolution's time in µs: ``reps`` calls captured in a CUDA graph (no launch gaps), the graph's replays
    timed through the measurement core's ``time_function``, the median replay over ``reps``."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(reps):
            fn()
    stats = time_function(g.replay, torch.device("cuda"), rounds, warmup=1)
    return (stats.median_ms or math.nan) * 1000 / reps


def time_unit(unit: FusedConvUnit, x: torch.Tensor, stride: int) -> tuple[float, float, float]:
    with torch.inference_mode():
        conv = graph_time_us(lambda: F.conv2d(x, unit.conv.weight, None, stride, 1))
        unfused = graph_time_us(lambda: unit.unfused(x))
        try:
            fused = graph_time_us(lambda: unit._fused(x, None))
        except Exception as e:  # a row says what failed
            fused = float("nan")
            print("fused failed:", type(e).__name__, str(e)[:200])
    return conv, unfused, fused


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, default=Path("."))
    p.add_argument("--size", default="1280x768")
    args = p.parse_args()
    w, h = map(int, args.size.split("x"))
    torch.backends.cudnn.benchmark = True
    context = fused_conv.CudnnContext(torch.device("cuda"))
    plan_for("fast", torch.device("cuda"))
    shapes = sorted({s for arch in ("paper", "v4.0") for s in unit_shapes(arch, h, w)})
    rows = []
    print(f"{'c_in':>5} {'c_out':>5} {'s':>2} {'N':>2} {'H':>4} {'W':>4} {'pixels':>8} {'conv':>8} {'unfused':>8} "
          f"{'fused':>8} {'TFLOP/s':>8}")
    for c_in, c_out, stride, hh, ww in shapes:
        for n in (1, 8):
            unit = FusedConvUnit(torch.nn.Sequential(torch.nn.Conv2d(c_in, c_out, 3, stride, 1),
                                                     torch.nn.PReLU(c_out)), context)
            unit = unit.cuda().half().to(memory_format=torch.channels_last).eval()  # type: ignore[call-overload]
            x = torch.randn(n, c_in, hh, ww, device="cuda").half().contiguous(memory_format=torch.channels_last)
            conv, unfused, fused = time_unit(unit, x, stride)
            ho, wo = -(-hh // stride), -(-ww // stride)
            pixels = n * ho * wo
            tflops = 2 * pixels * c_out * c_in * 9 / (conv * 1e-6) / 1e12
            rows.append(dict(c_in=c_in, c_out=c_out, stride=stride, n=n, h=hh, w=ww, pixels=pixels, conv_us=conv,
                             unfused_us=unfused, fused_us=fused))
            print(f"{c_in:>5} {c_out:>5} {stride:>2} {n:>2} {hh:>4} {ww:>4} {pixels:>8} {conv:>8.1f} {unfused:>8.1f} "
                  f"{fused:>8.1f} {tflops:>8.0f}")
    (args.out / "conv_shapes.json").write_text(json.dumps(rows, indent=1))
    wins = [r["pixels"] for r in rows if r["fused_us"] < r["unfused_us"]]
    losses = [r["pixels"] for r in rows if not r["fused_us"] < r["unfused_us"]]
    print(f"fused faster on {len(wins)} of {len(rows)} shapes; largest win at {max(wins, default=0)} pixels, "
          f"smallest loss at {min(losses, default=0)} pixels; per frame at batch 1: unfused "
          f"{sum(r['unfused_us'] for r in rows if r['n'] == 1):.0f} us, fused "
          f"{sum(min(r['fused_us'], r['unfused_us']) for r in rows if r['n'] == 1):.0f} us (unique shapes once)")


if __name__ == "__main__":
    main()
