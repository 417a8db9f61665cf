"""The public namespace ``stressbed.gen``: generators of request values (see
docs/guides/scenarios.md).

The definitions live in :mod:`stressbed.scenario.gen`; this module is the documented import
path, so ``from stressbed.gen import ...`` and ``stressbed.gen.X`` keep working.
"""

from .scenario.gen import *  # noqa: F403 - the namespace is exactly that module's __all__
from .scenario.gen import __all__ as __all__  # noqa: PLC0414 - re-exported
