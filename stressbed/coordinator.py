"""``python -m stressbed.coordinator``: releases the runner pods as one fleet.

A documented entry point (the Kubernetes manifests start it by this name); the code is
:mod:`stressbed.fleet.coordinator`.
"""

import sys

from .fleet.coordinator import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
