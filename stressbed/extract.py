"""The public namespace ``stressbed.extract``: extractors of response values (see
docs/guides/scenarios.md).

The definitions live in :mod:`stressbed.scenario.extract`; this module is the documented import
path, so ``from stressbed.extract import ...`` and ``stressbed.extract.X`` keep working.
"""

from .scenario.extract import *  # noqa: F403 - the namespace is exactly that module's __all__
from .scenario.extract import __all__ as __all__  # noqa: PLC0414 - re-exported
