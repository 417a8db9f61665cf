"""``python -m stressbed.runner``: one k6 runner on one execution segment.

A documented entry point (the Kubernetes manifests, the runner image and the local fleet
start it by this name); the code is :mod:`stressbed.fleet.runner`.
"""

import sys

from .fleet.runner import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
