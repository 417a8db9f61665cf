"""Kubernetes resource quantities: CPU in millicores, memory in bytes, and back to text."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import ConfigError
from ..scenario.units import parse_size

__all__ = ["Resources", "parse_cpu", "parse_memory", "show_quantity"]

_CPU = re.compile(r"(\d+(?:\.\d+)?)(m?)")


def parse_cpu(value: object, field_name: str) -> int:
    """Millicores from a Kubernetes CPU quantity: ``"250m"`` -> 250, ``"1.5"`` -> 1500."""
    text = str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
    match = _CPU.fullmatch(text) if isinstance(text, str) else None
    if not match:
        raise ConfigError(field_name, value, "a CPU quantity like '250m' or '1.5'")
    number = float(match.group(1))
    millicores = number if match.group(2) else number * 1000
    if millicores < 1 or millicores != int(millicores):
        raise ConfigError(field_name, value, "a CPU quantity of at least 1m, in whole millicores")
    return int(millicores)


def parse_memory(value: object, field_name: str) -> int:
    """Bytes from a Kubernetes memory quantity: ``"256Mi"``, ``"1G"``, ``"134217728"``."""
    try:
        size = parse_size(value, field_name)
    except ConfigError:
        raise ConfigError(field_name, value, "a memory quantity like '256Mi' or '1Gi'") from None
    if size < 1 << 20:
        raise ConfigError(field_name, value, "at least 1Mi")
    return size


@dataclass(frozen=True)
class Resources:
    """CPU in millicores, memory and ephemeral storage (the writable paths' space) in bytes;
    None where not set."""

    cpu_m: int | None = None
    memory: int | None = None
    ephemeral_storage: int | None = None

    @classmethod
    def of(cls, spec: Mapping[str, object] | None, field_name: str) -> Resources:
        spec = spec or {}
        unknown = set(spec) - {"cpu", "memory", "ephemeral-storage"}
        if unknown:
            raise ConfigError(
                field_name, sorted(unknown)[0], "only 'cpu', 'memory' and 'ephemeral-storage'"
            )
        storage = spec.get("ephemeral-storage")
        return cls(
            parse_cpu(spec["cpu"], f"{field_name}.cpu") if spec.get("cpu") is not None else None,
            parse_memory(spec["memory"], f"{field_name}.memory")
            if spec.get("memory") is not None
            else None,
            parse_memory(storage, f"{field_name}.ephemeral-storage")
            if storage is not None
            else None,
        )

    def figures(self) -> dict[str, float]:
        """As reports draw them: ``cpu_m`` (millicores) and ``memory_mib``, where set."""
        out: dict[str, float] = {}
        if self.cpu_m is not None:
            out["cpu_m"] = float(self.cpu_m)
        if self.memory is not None:
            out["memory_mib"] = self.memory / 2**20
        return out

    def to_k8s(self) -> dict[str, str]:
        out = {}
        if self.cpu_m is not None:
            out["cpu"] = f"{self.cpu_m}m"
        if self.memory is not None:
            out["memory"] = _bytes(self.memory)
        if self.ephemeral_storage is not None:
            out["ephemeral-storage"] = _bytes(self.ephemeral_storage)
        return out


def show_quantity(kind: str, value: int | None) -> str:
    """``250m`` for millicores (kind ``cpu_m``), ``128Mi`` for bytes."""
    if value is None:
        return "unset"
    if kind == "cpu_m":
        return f"{value}m"
    return f"{value / 2**20:g}Mi"


def _bytes(size: int) -> str:
    return f"{size // 2**20}Mi" if size % 2**20 == 0 else str(size)
