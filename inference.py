#!/usr/bin/env python3
"""The reference sample's entry point: ``python inference.py [options]`` runs ``harness.main`` (installed:
``rife-bench``), and ``import inference`` gives that very module. Run as a script, the user's files (weights,
upstream code, built-in sets) are in this repository unless RIFE_HOME says otherwise (``rife.assets.home``)."""

import os
import sys
from pathlib import Path

from harness import main

if __name__ == "__main__":
    os.environ.setdefault("RIFE_HOME", str(Path(__file__).resolve().parent))
    sys.exit(main.main())
sys.modules[__name__] = main
