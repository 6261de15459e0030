"""Maintainers' A/B of the general path's fast choices on one GPU: one release's fast fp16 with single plan changes,
next to the default, same run, each with its PSNR against our fp32 eager output.

    RIFE_CACHE=assets python -m dev.release_ab 4.25 [--calls 300] [--out DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import torch

from harness.measure.inputs import random_scene
from rife.engine import Engine, resolve_precision
from rife.execution import plan_for
from rife.loader import ModelChoice, load_model
from tools.gpu_acceptance import family_weights
from tools.gpu_table import CUDA, SIZES, first_and_timed, print_table, psnr_between

CHANGES: dict[str, dict[str, Any]] = {
    "default": {},
    "no-fused-convs": {"fused_convs": False},
    "untuned-convs": {"tuned_convs": False},
    "no-subpixel": {"subpixel_deconvs": False},
    "shuffled-heads": {"unshuffled_heads": False},
    "no-pad": {"widen": False},
    "whole-compile": {"fused_kernels": False, "subpixel_deconvs": False, "widen": False},
}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("release")
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--out", type=Path, default=Path("."))
    p.add_argument("--configs", default=",".join(CHANGES), help="of " + ", ".join(CHANGES))
    a = p.parse_args()
    changes = {name: CHANGES[name] for name in a.configs.split(",")}
    weights, kind = family_weights(a.release, a.out)
    h, w = SIZES["1280x720"]
    frames = random_scene(h, w).to(CUDA)
    rows, ref = [], None
    for name, change in (("fp32-eager", None), *changes.items()):
        loaded = load_model(ModelChoice(arch=a.release, weights=weights))
        precision = "fp32" if change is None else "fp16"
        plan = plan_for("eager" if change is None else "fast", CUDA)
        e = Engine(loaded.net, loaded.variant, CUDA, resolve_precision(CUDA, precision, False),
                   execution=dataclasses.replace(plan, **(change or {})))
        out, r = first_and_timed(e, frames, a.calls)
        ref = out if ref is None else ref
        rows.append({"release": a.release, "weights": kind, "config": name, "plan": str(e.plan)[14:120], **r,
                     "psnr_vs_fp32": psnr_between(out, ref)})
        del e
        torch.cuda.empty_cache()
    print_table(f"{a.release} fast choices at 1280x720", rows)


if __name__ == "__main__":
    main()
