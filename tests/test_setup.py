"""setup.sh's choices, with a stand-in interpreter that records what it is asked to do: Triton only for the tests
(DEV_TOOLS), the installed torch kept, pip's progress shown."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

STAND_IN = """#!/usr/bin/env bash
# A venv's python: torch imports, triton does not, torch is a CPU build; pip calls are recorded.
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then shift 2; echo "pip $*" >> "$(dirname "$0")/calls"; exit 0; fi
case "$*" in
  *"import triton"*) exit 1 ;;
  *"torch.version.cuda"*) exit 1 ;;
  *"print(torch.__version__)"*) echo 2.13.0; exit 0 ;;
  *) exit 0 ;;
esac
"""


def run_setup(tmp_path: Path, dev_tools: str) -> list[str]:
    folder = tmp_path / dev_tools
    folder.mkdir()
    for name in ("setup.sh", "requirements.txt", "requirements-dev.txt"):
        shutil.copy(ROOT / name, folder / name)
    python = folder / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(STAND_IN)
    python.chmod(0o755)
    env = {**os.environ, "DEV_TOOLS": dev_tools}
    done = subprocess.run(["bash", str(folder / "setup.sh")], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "keeping the installed torch 2.13.0" in done.stdout
    return (python.parent / "calls").read_text().splitlines()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_triton_is_installed_for_the_tests_only_and_pip_shows_its_progress(tmp_path):
    runs_only = run_setup(tmp_path, "no")
    with_tests = run_setup(tmp_path, "yes")
    assert not any(c.endswith("install triton>=3.2") for c in runs_only), runs_only
    assert any(c.endswith('install triton>=3.2') for c in with_tests), with_tests
    assert not any("requirements-dev.txt" in c for c in runs_only)
    assert all(" -q" not in c and "--quiet" not in c for c in runs_only + with_tests)  # pip shows its progress
    assert not any("torch==" in c for c in runs_only + with_tests)  # the installed torch is kept
    for call in set(runs_only + with_tests):  # pip itself accepts every option setup.sh gives it
        words = shlex.split(call)[1:]
        checked = subprocess.run([sys.executable, "-m", "pip", *words, "--help"], capture_output=True, text=True,
                                 timeout=120)
        assert checked.returncode == 0, (call, checked.stderr)
