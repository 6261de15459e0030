"""The reference sample's module name for ``harness.samples.dataset`` (``import dataset`` gives that very module;
``python dataset.py ...`` is its ``main``, for get_dataset.sh, with the built-in sets in this repository unless
RIFE_HOME says otherwise)."""

import os
import sys
from pathlib import Path

from harness.samples import dataset

if __name__ == "__main__":
    os.environ.setdefault("RIFE_HOME", str(Path(__file__).resolve().parent))
    sys.exit(dataset.main())
sys.modules[__name__] = dataset
