"""The installed command ``rife-bench``: the run itself (``harness.main``), as ``python inference.py`` in the
repository."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from harness import main as run

    return run.main(argv)


if __name__ == "__main__":
    sys.exit(main())
