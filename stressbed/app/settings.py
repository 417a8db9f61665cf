"""Run settings in layers, each recording where every effective value came from.

    built-in defaults < the profile file's ``common`` < the chosen profile
                      < STRESSBED_* environment variables < the command line

The profile file (``stressbed.yaml`` in the working directory, ``--profiles FILE`` or
``$STRESSBED_PROFILES``) is YAML::

    version: 1
    default_profile: local
    common:  {scenario: ingest_mix, runners: 2, duration: 60s}
    profiles:
      ci:
        duration: 30s
        stack: {replicas: 2, autoscaler: {max_replicas: 3}}
        thresholds: {"http_req_duration": ["p(95)<300"]}

Unknown keys and bad values are reported with their path in the file (exit 2). ``stack``
overrides the reference agent's StackSpec field by field; ``thresholds`` replaces, per metric
key, the scenario's thresholds on that key (``null`` drops them).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from ..scenario.units import parse_size
from ..stack.agent import reference_agent
from ..stack.network import parse_cidrs
from ..stack.quantities import Resources
from ..stack.spec import (
    Autoscaler,
    FaultHook,
    IoLimits,
    LimitRange,
    Metrics,
    Probe,
    Quota,
    ScalePolicy,
    StackSpec,
)

__all__ = [
    "BACKEND_KEYS",
    "DEFAULT_FILE",
    "ENV",
    "RUN_KEYS",
    "Settings",
    "apply_stack",
    "resolve",
    "stack_of",
]

DEFAULT_FILE = Path("stressbed.yaml")
FILE_VERSION = 1

#: The run settings, their built-in defaults and the environment variable of each.
RUN_KEYS: dict[str, Any] = {
    "scenario": None,
    "backend": "local",
    "target_url": None,
    "target_metrics_url": None,
    "runners": 1,
    "duration": None,
    "results": "results",
    "keep_raw": False,
    "history": None,
    "build": None,
    "port": 0,
    "kubeconfig": None,
    "context": None,
    "agent_image": None,
    "runner_image": None,
    "image_pull_policy": None,
    "runner_cpu": None,
    "runner_memory": None,
    "runners_local": False,
    "base_image": None,
    "control_plane_cidrs": None,
}
ENV = {key: f"STRESSBED_{key.upper()}" for key in RUN_KEYS}
#: Kubernetes' image pull policies (``image_pull_policy``).
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
#: The run settings that go to the backend; each backend takes those of its ``option_keys``.
BACKEND_KEYS = (
    "port",
    "kubeconfig",
    "context",
    "agent_image",
    "runner_image",
    "image_pull_policy",
    "runner_cpu",
    "runner_memory",
    "runners_local",
    "base_image",
    "control_plane_cidrs",
)
_LAYER_KEYS = (*RUN_KEYS, "stack", "thresholds")
_OPTIONAL = {
    "startup_probe": Probe,
    "readiness_probe": Probe,
    "liveness_probe": Probe,
    "autoscaler": Autoscaler,
    "quota": Quota,
    "limit_range": LimitRange,
    "metrics": Metrics,
    "fault_hook": FaultHook,
    "io": IoLimits,
}


@dataclass
class Settings:
    """The effective settings of a run and, for each, where it came from."""

    values: dict[str, Any]
    stack: dict[str, Any] = field(default_factory=dict)  # merged overrides
    thresholds: dict[str, list[str] | None] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    profile: str | None = None
    file: Path | None = None


def resolve(
    cli: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    *,
    profile: str | None = None,
    file: Path | None = None,
) -> Settings:
    """Layer the settings; ``cli`` holds only what the command line gave."""
    env = os.environ if env is None else env
    path = file or _env_path(env) or (DEFAULT_FILE if DEFAULT_FILE.is_file() else None)
    document = _read(path) if path is not None else {}
    chosen = profile or env.get("STRESSBED_PROFILE") or document.get("default_profile")
    settings = Settings(values=dict(RUN_KEYS), file=path, profile=chosen)
    settings.sources = dict.fromkeys(RUN_KEYS, "default")
    if path is not None:
        _layer(settings, document.get("common") or {}, f"common ({path})", f"{path}: common")
    if chosen is not None:
        profiles = document.get("profiles") or {}
        if chosen not in profiles:
            where = f"a profile of {path}" if path is not None else "a profile file (none found)"
            names = ", ".join(profiles) or "none"
            raise ConfigError("--profile", chosen, f"{where}: {names}")
        _layer(
            settings,
            profiles[chosen] or {},
            f"profile {chosen} ({path})",
            f"{path}: profiles.{chosen}",
        )
    for key, name in ENV.items():
        if name in env:
            settings.values[key] = _value(key, env[name], name, from_text=True)
            settings.sources[key] = f"environment {name}"
    for key, value in cli.items():
        if value is not None:
            settings.values[key] = _value(key, value, f"--{key.replace('_', '-')}")
            settings.sources[key] = "command line"
    return settings


def apply_stack(base: StackSpec, overrides: Mapping[str, Any], where: str = "stack") -> StackSpec:
    """``base`` with ``overrides`` applied field by field, validated as a whole."""
    spec = _override(base, overrides, where)
    assert isinstance(spec, StackSpec)
    return spec.validate()


def stack_of(settings: Settings, scenario: Mapping[str, Any] | None = None) -> StackSpec:
    """The reference agent's spec with the scenario module's ``stack`` overrides (the stack
    it is written for), then the settings' (the profile's and the command line's)."""
    spec = reference_agent()
    if scenario:
        spec = apply_stack(spec, scenario, "the scenario module's stack")
    if not settings.stack:
        return spec
    try:
        return apply_stack(spec, settings.stack)
    except ConfigError as exc:
        source = settings.sources.get(exc.field, "")
        raise ConfigError(
            exc.field + (f" (from {source})" if source else ""), exc.value, exc.expected
        ) from None


# -- the file ---------------------------------------------------------------------------


def _env_path(env: Mapping[str, str]) -> Path | None:
    value = env.get("STRESSBED_PROFILES")
    return Path(value) if value else None


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            "--profiles", str(path), f"a readable YAML file ({exc.strerror})"
        ) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(str(path), "invalid YAML" + at, "a YAML mapping") from None
    if document is None:
        return {}
    _mapping(document, str(path))
    allowed = ("version", "default_profile", "common", "profiles")
    _known(document, allowed, str(path))
    if document.get("version", FILE_VERSION) != FILE_VERSION:
        raise ConfigError(f"{path}: version", document["version"], f"{FILE_VERSION}")
    default = document.get("default_profile")
    if default is not None and not isinstance(default, str):
        raise ConfigError(f"{path}: default_profile", default, "a profile name")
    if document.get("profiles") is not None:
        _mapping(document["profiles"], f"{path}: profiles")
    for name, body in (document.get("profiles") or {}).items():
        if body is not None:
            _mapping(body, f"{path}: profiles.{name}")
    return dict(document)


def _layer(settings: Settings, layer: Any, source: str, where: str) -> None:
    _mapping(layer, where)
    _known(layer, _LAYER_KEYS, where)
    for key, value in layer.items():
        if key == "stack":
            _mapping(value, f"{where}.stack")
            _merge(settings.stack, value, "stack", source, settings.sources)
            # Check it now, so the error names this file and profile.
            _override(reference_agent(), settings.stack, f"{where}.stack")
        elif key == "thresholds":
            _mapping(value, f"{where}.thresholds")
            for metric, expressions in value.items():
                if expressions is not None and (
                    not isinstance(expressions, list)
                    or not all(isinstance(e, str) for e in expressions)
                ):
                    raise ConfigError(
                        f"{where}.thresholds.{metric}",
                        expressions,
                        "a list of k6 expressions like ['p(95)<300'], or null",
                    )
                settings.thresholds[str(metric)] = expressions
                settings.sources[f"thresholds.{metric}"] = source
        else:
            settings.values[key] = _value(key, value, f"{where}.{key}")
            settings.sources[key] = source


def _merge(
    into: dict[str, Any], layer: Mapping[str, Any], path: str, source: str, sources: dict[str, str]
) -> None:
    for key, value in layer.items():
        here = f"{path}.{key}"
        if isinstance(value, Mapping) and value:
            if not isinstance(into.get(key), dict):
                into[key] = {}
            _merge(into[key], value, here, source, sources)
        else:
            into[key] = dict(value) if isinstance(value, Mapping) else value
            sources[here] = source


# -- values -------------------------------------------------------------------------------


def _value(key: str, value: Any, where: str, *, from_text: bool = False) -> Any:
    """A run setting checked for its type (text from the environment is converted)."""
    if key in ("runners", "port"):
        if from_text or isinstance(value, str):
            try:
                value = int(str(value))
            except ValueError:
                raise ConfigError(where, value, "an integer") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(where, value, "an integer")
        if key == "port" and not 0 <= value <= 65535:
            raise ConfigError(where, value, "a port 0..65535 (0: any free port)")
        return value
    if key == "image_pull_policy" and value not in (None, *PULL_POLICIES):
        # Checked whichever backend runs: a profile's typo should not wait for a cluster run.
        raise ConfigError(where, value, "Always, IfNotPresent or Never")
    if key in ("keep_raw", "runners_local"):
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered not in ("1", "0", "true", "false", "yes", "no"):
                raise ConfigError(where, value, "true or false")
            return lowered in ("1", "true", "yes")
        if not isinstance(value, bool):
            raise ConfigError(where, value, "true or false")
        return value
    if value is None:
        return None
    if key == "control_plane_cidrs":  # a list in the file, comma-separated elsewhere
        return ",".join(parse_cidrs(value, where))
    if not isinstance(value, str | Path) or not str(value):
        raise ConfigError(where, value, "a non-empty string")
    return str(value)


def _mapping(value: Any, where: str) -> None:
    if not isinstance(value, Mapping):
        raise ConfigError(where, value, "a mapping of keys to values")


def _known(mapping: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in mapping:
        if key not in allowed:
            raise ConfigError(f"{where}.{key}", key, "one of " + ", ".join(allowed))


def _override(obj: Any, overrides: Any, where: str) -> Any:
    """A copy of dataclass ``obj`` with ``overrides`` (a mapping) applied, recursively."""
    _mapping(overrides, where)
    names = [f.name for f in dataclasses.fields(obj)]
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        here = f"{where}.{key}"
        if key not in names:
            raise ConfigError(here, key, "one of " + ", ".join(names))
        current = getattr(obj, key)
        changes[key] = _field(key, current, value, here)
    try:
        return dataclasses.replace(obj, **changes)
    except TypeError as exc:
        raise ConfigError(where, overrides, f"valid fields ({exc})") from None


#: Fields whose default is None, and the type a value must have.
_NULLABLE = {
    "port": int,
    "memory_utilization": int,
    "cpu_utilization": int,
    "pods": int,
    "weight": int,
    "read_iops": int,
    "write_iops": int,
    "pids": int,
    "nofile": int,
}
#: Fields in bytes per second, given as a size (``10Mi``) or a number.
_RATES = ("read_bps", "write_bps")


def _field(key: str, current: Any, value: Any, where: str) -> Any:
    if isinstance(current, Resources):
        _mapping(value, where)
        return Resources.of({**current.to_k8s(), **value}, where)
    if key in _OPTIONAL:
        if value is None:
            return None
        return _override(current if current is not None else _OPTIONAL[key](), value, where)
    if dataclasses.is_dataclass(current):
        return _override(current, value, where)
    if key.endswith("_policies"):
        if not isinstance(value, list):
            raise ConfigError(where, value, "a list of {kind, value, period_s}")
        policies = []
        for i, item in enumerate(value):
            _mapping(item, f"{where}[{i}]")
            _known(item, ("kind", "value", "period_s"), f"{where}[{i}]")
            for name in ("kind", "value", "period_s"):
                if name not in item:
                    raise ConfigError(f"{where}[{i}].{name}", None, "a value")
            for name in ("value", "period_s"):
                if isinstance(item[name], bool) or not isinstance(item[name], int):
                    raise ConfigError(f"{where}[{i}].{name}", item[name], "an integer")
            policies.append(ScalePolicy(item["kind"], item["value"], item["period_s"]))
        return tuple(policies)
    if key == "dependencies":
        _mapping(value, where)
        return tuple(sorted((str(k), str(v)) for k, v in value.items()))
    if key == "env":  # added to the target's environment, a variable at a time
        _mapping(value, where)
        return tuple(
            sorted({**dict(current), **{str(k): str(v) for k, v in value.items()}}.items())
        )
    if isinstance(current, tuple):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(where, value, "a list of strings")
        return tuple(value)
    if isinstance(current, bool) or isinstance(value, bool):
        if not isinstance(value, bool) or not isinstance(current, bool):
            raise ConfigError(where, value, "true or false")
        return value
    if isinstance(current, float) and isinstance(value, int | float):
        return float(value)
    if key in _RATES:
        return None if value is None else parse_size(value, where)
    if key in _NULLABLE:
        wanted = _NULLABLE[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, wanted)):
            raise ConfigError(where, value, f"a value of type {wanted.__name__}, or null")
        return value
    if current is not None and (value is None or not isinstance(value, type(current))):
        raise ConfigError(where, value, f"a value of type {type(current).__name__}")
    return value
