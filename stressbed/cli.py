"""The ``stressbed`` command (``stressbed.cli:main``); the code is :mod:`stressbed.app.cli`."""

import sys

from .app.cli import main

__all__ = ["main"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
