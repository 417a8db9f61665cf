"""Finding scenarios: a name in the ``scenarios`` package, or a path to a .py file.

A scenario module defines a module-level ``scenario`` (a :class:`~stressbed.scenario.Scenario`);
its docstring's first line is what ``stressbed scenarios`` shows. It may also define a
``capacity`` (a :class:`~stressbed.scenario.capacity.Capacity`): what ``stressbed capacity``
searches with by default.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import ConfigError, ScenarioNotFoundError
from .capacity import Capacity
from .model import Scenario
from .templates import IDENTIFIER

__all__ = ["Entry", "available", "load", "load_capacity"]

PACKAGE = "scenarios"


@dataclass(frozen=True)
class Entry:
    name: str
    description: str


def available() -> list[Entry]:
    """Every module of the scenarios package that defines a ``scenario``, sorted by name."""
    try:
        package = importlib.import_module(PACKAGE)
    except ImportError:
        return []
    entries = []
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_"):
            continue
        module = _import(f"{PACKAGE}.{info.name}", info.name)
        found = getattr(module, "scenario", None)
        if isinstance(found, Scenario):
            entries.append(Entry(info.name, found.description))
    return sorted(entries, key=lambda e: e.name)


def load(name_or_path: str) -> Scenario:
    """The scenario named (``ingest_mix``) or at a path (``./my_test.py``)."""
    found = getattr(_module(name_or_path), "scenario", None)
    if not isinstance(found, Scenario):
        raise ConfigError(
            "--scenario", name_or_path, "a module defining `scenario = Scenario(...)` at top level"
        )
    return found


def load_capacity(name_or_path: str) -> Capacity | None:
    """The ``capacity`` the scenario module declares, or None."""
    found = getattr(_module(name_or_path), "capacity", None)
    if found is not None and not isinstance(found, Capacity):
        raise ConfigError(
            f"{name_or_path}: capacity", type(found).__name__, "a Capacity(...) declaration"
        )
    return found


def load_stack(name_or_path: str) -> Mapping[str, Any] | None:
    """The ``stack`` overrides the scenario module declares (the stack it is written for, in
    the shape of a profile's ``stack:``), or None."""
    found = getattr(_module(name_or_path), "stack", None)
    if found is not None and not isinstance(found, Mapping):
        raise ConfigError(
            f"{name_or_path}: stack", type(found).__name__, "a mapping like a profile's stack:"
        )
    return found


def _module(name_or_path: str) -> ModuleType:
    if name_or_path.endswith(".py") or "/" in name_or_path or "\\" in name_or_path:
        path = Path(name_or_path)
        if not path.is_file():
            raise ScenarioNotFoundError(name_or_path, [e.name for e in available()])
        return _import_path(path)
    if not IDENTIFIER.fullmatch(name_or_path) or not _exists(name_or_path):
        raise ScenarioNotFoundError(name_or_path, [e.name for e in available()])
    return _import(f"{PACKAGE}.{name_or_path}", name_or_path)


def _exists(name: str) -> bool:
    try:
        package = importlib.import_module(PACKAGE)
    except ImportError:
        return False
    return any(info.name == name for info in pkgutil.iter_modules(package.__path__))


def _import(module_name: str, label: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ConfigError as exc:
        raise exc.in_scenario(label) from None
    except Exception as exc:  # a user's module failed to import: say why, on one line
        raise _broken(label, exc) from exc


def _import_path(path: Path) -> ModuleType:
    module_name = f"_stressbed_user_{abs(hash(path.resolve()))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError("--scenario", str(path), "a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except ConfigError as exc:
        sys.modules.pop(module_name, None)
        raise exc.in_scenario(path.stem) from None
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise _broken(str(path), exc) from exc
    return module


def _broken(label: str, exc: Exception) -> ConfigError:
    detail = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return ConfigError("--scenario", label, f"a module that imports cleanly ({detail})")
