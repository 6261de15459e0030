"""The package: ``pip install .`` into a fresh environment gives a ``rife-bench`` command that runs as inference.py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "setup.py", "README.md", "requirements.txt", "requirements-dev.txt", "rife", "harness")


def requirement_lines(name: str) -> list[str]:
    return [line for line in (ROOT / name).read_text().splitlines() if line.strip() and not line.startswith("#")]


def test_runtime_and_development_requirements_are_apart():
    runtime, dev = requirement_lines("requirements.txt"), requirement_lines("requirements-dev.txt")
    tools = ("pytest", "ruff", "mypy", "hadolint")
    assert not [line for line in runtime if line.startswith(tools)]
    assert all(any(line.startswith(tool) for line in dev) for tool in tools)
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["scripts"] == {"rife-bench": "harness.cli:main"}
    dynamic = project["tool"]["setuptools"]["dynamic"]
    assert dynamic["dependencies"] == {"file": ["requirements.txt"]}
    assert dynamic["optional-dependencies"]["dev"] == {"file": ["requirements-dev.txt"]}


@pytest.mark.slow
@pytest.mark.network  # pip fetches the build backend (setuptools) into its isolated build environment
def test_pip_install_gives_a_rife_bench_command_that_runs(tmp_path):
    src = tmp_path / "src"  # a copy: building writes build/ and *.egg-info beside the sources
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, src / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    # torch and the other requirements come from this interpreter's environment, as setup.sh arranges
    inner = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                           capture_output=True, text=True, check=True).stdout.strip()
    Path(inner, "outer-environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", str(src)],
                             capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stdout + install.stderr

    work = tmp_path / "elsewhere"  # not the repository: the installed modules must be the ones that run
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run([python, "-c", "import harness.main, rife; print(harness.main.__file__, rife.__file__)"],
                           capture_output=True, text=True, cwd=work, env=env, check=True).stdout
    assert str(ROOT) not in where and str(venv) in where

    bad = subprocess.run([venv / "bin" / "rife-bench", "--batch-size", "0"], capture_output=True, text=True,
                         cwd=work, env=env, timeout=60)
    assert bad.returncode == 2 and bad.stderr.startswith("error: --batch-size '0' is not valid: expected an integer")
    assert bad.stderr.count("\n") == 1

    run = subprocess.run([venv / "bin" / "rife-bench", "--dummy", "--platform", "CPU", "--data-height", "64",
                          "--data-width", "96", "--num-inputs", "2", "--warmup", "1", "--streams", "2",
                          "--output-dir", "out"], capture_output=True, text=True, cwd=work, env=env, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert {"results.json", "results.yaml", "results_1.json", "results_2.json"} <= {p.name for p in (work / "out").iterdir()}
    assert re.search(r"status {11}passed \((valid|noisy)\)", run.stdout)  # two calls a stream may be noisy


# --- provenance: which commit a run's results name -------------------------------------------------------------


def test_revision_from_the_checkout(monkeypatch):
    from harness.results.document import VERSION, harness_revision

    monkeypatch.delenv("RIFE_GIT_COMMIT", raising=False)
    found = harness_revision()
    assert found["version"] == VERSION
    if (ROOT / ".git").exists():
        assert found["git_commit_from"] == "checkout" and re.fullmatch(r"[0-9a-f]{40}", found["git_commit"])


def test_revision_is_never_an_enclosing_repositorys(tmp_path, monkeypatch):
    """An installed package in a virtual environment inside someone's project must not report that commit."""
    from harness.results.document import harness_revision

    monkeypatch.delenv("RIFE_GIT_COMMIT", raising=False)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    site = tmp_path / "venv" / "site-packages"
    site.mkdir(parents=True)
    found = harness_revision(site)
    assert found["git_commit"] is None and found["git_commit_from"] is None


def test_revision_from_the_build_then_from_the_image(tmp_path, monkeypatch):
    import types

    from harness.results.document import harness_revision

    monkeypatch.setenv("RIFE_GIT_COMMIT", "c" * 40)  # a container image's, from its build argument GIT_COMMIT
    found = harness_revision(tmp_path)
    assert (found["git_commit"], found["git_commit_from"]) == ("c" * 40, "environment")
    built = types.ModuleType("harness._build_info")  # what setup.py writes into a wheel
    built.GIT_COMMIT, built.GIT_DIRTY = "b" * 40, False  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "harness._build_info", built)
    found = harness_revision(tmp_path)
    assert (found["git_commit"], found["git_dirty"], found["git_commit_from"]) == ("b" * 40, False, "build")
