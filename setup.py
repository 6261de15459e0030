"""The wheel build's one addition to pyproject.toml: ``harness/_build_info.py`` in the built package, holding the
commit the package was built from (``harness.results.document.harness_revision`` reads it; an installed harness
has no .git to ask). The commit is ``RIFE_GIT_COMMIT`` when set, else git's HEAD where the sources are a git
checkout (with whether tracked files were changed), else none. Only the build folder is written, never the sources.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(HERE), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def build_info() -> str:
    commit, dirty = os.environ.get("RIFE_GIT_COMMIT", "").strip() or None, None
    if commit is None and _git("rev-parse", "--show-toplevel") == str(HERE):
        commit = _git("rev-parse", "HEAD")
        status = _git("status", "--porcelain", "--untracked-files=no")
        dirty = None if commit is None or status is None else bool(status)
    return (f'"""Written by the build (setup.py): the commit this package was built from."""\n\n'
            f"GIT_COMMIT = {commit!r}\nGIT_DIRTY = {dirty!r}\n")


class BuildWithCommit(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "harness" / "_build_info.py"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(build_info())


setup(cmdclass={"build_py": BuildWithCommit})
