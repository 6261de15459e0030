"""The installed command, ``rife-bench``:

    rife-bench [run options]          the run, exactly as ``python inference.py`` in the repository
    rife-bench get-model [...]        what get_model.sh does: weights and upstream code into RIFE_HOME
    rife-bench get-dataset [...]      what get_dataset.sh --builtin does: the built-in real-video sets

Where a user's files live is ``rife.assets.home``: ``$RIFE_HOME``, else the current folder (nothing is written
into the installed package). The Vimeo-90K download (get_dataset.sh without --builtin) is a shell script of the
repository, with no Python core: it is not a subcommand.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

PROG = "rife-bench"


def _get_model(argv: list[str]) -> int:
    from rife import assets

    return assets.main(argv, prog=f"{PROG} get-model")


def _get_dataset(argv: list[str]) -> int:
    from harness.samples import dataset

    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["build-builtin", *argv]  # the default: build the built-in sets (--root DIR)
    return dataset.main(argv, prog=f"{PROG} get-dataset")


SUBCOMMANDS: dict[str, Callable[[list[str]], int]] = {"get-model": _get_model, "get-dataset": _get_dataset}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        return SUBCOMMANDS[argv[0]](argv[1:])
    from harness import main as run

    return run.main(argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
