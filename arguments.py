"""The reference sample's module name for ``harness.options`` (``import arguments`` gives that very module;
``python arguments.py ARGS`` is its ``main``, for run_model.sh)."""

import sys

from harness import options

if __name__ == "__main__":
    sys.exit(options.main())
sys.modules[__name__] = options
