#!/usr/bin/env python3
"""The reference sample's entry point: ``python inference.py [options]`` runs ``harness.main`` (installed:
``rife-bench``), and ``import inference`` gives that very module."""

import sys

from harness import main

if __name__ == "__main__":
    sys.exit(main.main())
sys.modules[__name__] = main
