"""The reference sample's module name for ``harness.samples.dataset`` (``import dataset`` gives that very module;
``python dataset.py ...`` is its ``main``, for get_dataset.sh)."""

import sys

from harness.samples import dataset

if __name__ == "__main__":
    sys.exit(dataset.main())
sys.modules[__name__] = dataset
