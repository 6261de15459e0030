"""A first run shows the product at its best on the machine it finds: real weights where they are present, a
quick size on the CPU, a note that says what was run and why, and a console whose last line names report.html."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness.main import CPU_QUICK_SIZE, quick_on_cpu, real_weights_first
from harness.options import parse

ROOT = Path(__file__).resolve().parent.parent


def home_with(tmp_path: Path, monkeypatch, *releases: str) -> Path:
    """A RIFE_HOME holding stand-in weight files of ``releases`` (paper: train_log/flownet.pkl)."""
    for name in releases:
        path = tmp_path / "train_log" / ("flownet.pkl" if name == "paper" else f"{name}/flownet.pkl")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"stand-in")
    monkeypatch.setenv("RIFE_HOME", str(tmp_path))
    return tmp_path


def test_without_paper_weights_the_default_run_is_v4_with_its_real_weights(tmp_path, monkeypatch):
    home = home_with(tmp_path, monkeypatch, "v4.0")
    o, note = real_weights_first(parse(["--dummy"], {}))
    assert o.arch == "v4.0" and note is not None
    assert str(home / "train_log" / "v4.0" / "flownet.pkl") in note and "--arch paper" in note


@pytest.mark.parametrize("present, argv", [
    (("paper", "v4.0"), ["--dummy"]),  # the reference's model, with its real weights
    ((), ["--dummy"]),  # nothing real here: the paper model with random weights, as before
    (("v4.0",), ["--dummy", "--arch", "paper"]),  # asked for
    (("v4.0",), ["--dummy", "--pretrained-weights", "{home}/mine.pkl"]),  # the weights say which model
])
def test_the_default_model_is_kept_where_that_is_the_best_there_is_or_what_was_asked(tmp_path, monkeypatch,
                                                                                     present, argv):
    home = home_with(tmp_path, monkeypatch, *present)
    (home / "mine.pkl").write_bytes(b"stand-in")
    o = parse([a.format(home=home) for a in argv], {})
    assert real_weights_first(o) == (o, None)


def test_a_cpu_performance_run_without_a_size_or_count_is_quick():
    cpu = torch.device("cpu")
    quick = quick_on_cpu(parse(["--dummy"], {}), cpu)
    assert (quick.data_height, quick.data_width) == CPU_QUICK_SIZE and quick.warmup == 1 and quick.time_cap_s
    sized = quick_on_cpu(parse(["--dummy", "--data-height", "720"], {}), cpu)
    assert (sized.data_height, sized.data_width) == (720, 1280)
    counted = parse(["--dummy", "--num-inputs", "5"], {})
    assert quick_on_cpu(counted, cpu) == counted
    gpu_like = parse(["--dummy"], {})
    assert quick_on_cpu(gpu_like, torch.device("meta")) == gpu_like


@pytest.mark.slow
def test_the_first_run_in_a_fresh_home_is_v4_at_a_quick_size_and_ends_naming_the_report(tmp_path, v4_weights):
    home = tmp_path / "home"
    (home / "train_log" / "v4.0").mkdir(parents=True)
    shutil.copy(v4_weights, home / "train_log" / "v4.0" / "flownet.pkl")
    env = {k: v for k, v in os.environ.items() if k not in ("LOAD_PATH", "ARCH", "NUM_INPUTS", "DATA_HEIGHT",
                                                             "DATA_WIDTH")}
    env.update(RIFE_HOME=str(home), PLATFORM="CPU")
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, str(ROOT / "inference.py"), "--dummy", "--output-dir", str(out)],
                            env=env, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode in (0, 1), result.stderr
    doc = json.loads((out / "results.json").read_text())
    model = doc["config"]["workload"]["model"]
    assert model["variant"] == "v4.0" and doc["config"]["workload"]["dataset"]["height"] == 256
    assert "size             448x256" in result.stdout and "of 448x256 frames" in result.stdout
    assert model["weights"] == str(home / "train_log" / "v4.0" / "flownet.pkl")
    assert "note: running v4.0 with its real weights" in result.stdout and "cannot reach" not in result.stderr
    assert result.stdout.index("note: running v4.0") < result.stdout.index("RIFE benchmark configuration:")
    assert result.stdout.rstrip().splitlines()[-1] == f"  report           {out / 'report.html'} (open it in a browser)"


def test_help_shows_the_scripts_own_words_then_the_options_with_each_release_once():
    result = subprocess.run([str(ROOT / "run_model.sh"), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    intro = result.stdout.split("usage:")[0]
    assert intro.startswith("run_model.sh: the RIFE benchmark") and "set -u" not in intro
    refused = subprocess.run([sys.executable, str(ROOT / "inference.py"), "--arch", "5.0"], capture_output=True,
                             text=True, timeout=60)
    releases = refused.stderr.split("expected one of ")[1].strip().split(", ")
    assert refused.returncode == 2 and "v4.0 (or 4.0)" in releases and "4.0" not in releases


@pytest.mark.parametrize("args, message", [
    (["--data", "{tmp}/notes.txt"], "is neither a folder nor a video (.3gp, .avi"),
    (["--dummy", "--pretrained-weights", "{tmp}/missing.pkl"], "missing.pkl does not exist: give a checkpoint file"),
    (["--dummy", "--pretrained-weights", "{tmp}"], "is a folder: give a checkpoint file"),
    (["--dummy", "--streams", "1000"], "--streams 1000 is more than the"),
    (["--dummy", "--platform", "CUDA"], "no CUDA GPU is visible"),
])
def test_a_wrong_command_is_one_line_before_get_model_and_before_anything_is_written(tmp_path, args, message):
    if "CUDA" in args and torch.cuda.is_available():
        pytest.skip("a CUDA GPU is visible here")
    (tmp_path / "notes.txt").write_text("not a video\n")
    out = tmp_path / "out"
    env = {**os.environ, "GET_MODEL": "yes"}
    result = subprocess.run([str(ROOT / "run_model.sh"), *[a.format(tmp=tmp_path) for a in args], "--output-dir",
                             str(out)], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ") and message in result.stderr
    assert "get_model" not in result.stdout + result.stderr and not out.exists()
    assert "or pass --pretrained-weights" not in result.stderr
