"""The backends ``--backend`` accepts, registered by dotted path and imported only when asked.

As fsspec's ``known_implementations``: each entry names its class and, for a backend behind an
extra, the line to show when that extra is missing. Nothing here imports a backend; asking for
one imports just that one, so ``stressbed run --backend local`` never loads the Kubernetes
code, and a missing optional dependency is a one-line error (exit 2), not a traceback.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from .base import Backend

__all__ = ["BACKENDS", "backend_class", "create"]

#: name -> {"class": "module:Class", "err": what to install when its import fails}
BACKENDS: dict[str, dict[str, str]] = {
    "local": {"class": "stressbed.backends.local:LocalBackend"},
    "docker": {
        "class": "stressbed.backends.docker:DockerBackend",
        "err": "pip install 'stressbed[docker]'",
    },
    "kubernetes": {
        "class": "stressbed.backends.kubernetes:KubernetesBackend",
        "err": "pip install 'stressbed[kubernetes]'",
    },
}


def backend_class(name: str) -> type[Backend]:
    """The class registered as ``name``; ConfigError for an unknown name or a missing extra."""
    entry = BACKENDS.get(name)
    if entry is None:
        *others, last = map(repr, BACKENDS)
        raise ConfigError("--backend", name, f"{', '.join(others)} or {last}")
    module_name, _, class_name = entry["class"].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"--backend {name}",
            f"missing Python package {exc.name}",
            entry.get("err", "an importable backend"),
        ) from None
    found: type[Backend] = getattr(module, class_name)
    return found


def create(name: str, options: Mapping[str, Any]) -> Backend:
    """The backend ``name`` built from the run's options; those it does not take are ignored
    here (the plan decides whether a given one is an error)."""
    cls = backend_class(name)
    return cls.from_options({k: v for k, v in options.items() if k in cls.option_keys})
