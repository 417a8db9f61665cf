"""The public namespace ``stressbed.check``: checks on responses (see docs/guides/scenarios.md).

The definitions live in :mod:`stressbed.scenario.check`; this module is the documented import
path, so ``from stressbed.check import ...`` and ``stressbed.check.X`` keep working.
"""

from .scenario.check import *  # noqa: F403 - the namespace is exactly that module's __all__
from .scenario.check import __all__ as __all__  # noqa: PLC0414 - re-exported
