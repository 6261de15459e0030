#!/usr/bin/env python3
"""Runs side by side, each figure with its ratio to the first run: ``python compare.py A B ...``
(run folders or results.json files; ``--help`` for the options). See harness/results/compare.py."""

import sys

from harness.results.compare import main

if __name__ == "__main__":
    sys.exit(main())
