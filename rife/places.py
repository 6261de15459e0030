"""Where a user's files live and the command that fills them, for the messages of every part that reads them
(``rife.assets`` fetches; ``rife.checkpoint``, ``rife.upstream`` and the harness read)."""

from __future__ import annotations

import os
from pathlib import Path

HOME_VARIABLE = "RIFE_HOME"
PACKAGE_DIR = Path(__file__).resolve().parent  # read only: the patches shipped with the package


def home() -> Path:
    """The folder of a user's files (weights, upstream paper code, built-in sets): ``$RIFE_HOME``, else the
    current folder. Never the code's own folder, which an installed package may not be written into."""
    text = os.environ.get(HOME_VARIABLE, "")
    return Path(text).expanduser().absolute() if text else Path.cwd()


def in_checkout() -> bool:
    """This code runs from the repository (its scripts beside it), not from an installed package."""
    return (PACKAGE_DIR.parent / "get_model.sh").is_file()


def get_model_command(arch: str | None = None) -> str:
    """The command that fetches the weights, as the user runs the harness: ``./get_model.sh`` in the repository,
    ``rife-bench get-model`` where it is installed (with the release, when one is named)."""
    if in_checkout():
        return f"./get_model.sh with ARCH={arch}" if arch else "./get_model.sh"
    return f"rife-bench get-model --arch {arch}" if arch else "rife-bench get-model"
