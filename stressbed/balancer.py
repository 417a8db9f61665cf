"""``python -m stressbed.balancer``: the local backend's load balancer process.

A documented entry point (the local backend starts it by this name); the code is
:mod:`stressbed.backends.local.balancer`.
"""

import sys

from .backends.local.balancer import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
