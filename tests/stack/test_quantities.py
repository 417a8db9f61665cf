"""Kubernetes resource quantities: CPU in millicores, memory in bytes."""

from __future__ import annotations

import pytest

from stressbed import ConfigError
from stressbed.stack.quantities import parse_cpu, parse_memory


@pytest.mark.parametrize(
    ("text", "millicores"), [("250m", 250), ("1", 1000), ("1.5", 1500), (2, 2000), ("0.1", 100)]
)
def test_cpu_quantities(text, millicores):
    assert parse_cpu(text, "cpu") == millicores


@pytest.mark.parametrize(
    ("text", "size"),
    [("256Mi", 256 * 2**20), ("1Gi", 2**30), ("128M", 128 * 10**6), (2**21, 2**21)],
)
def test_memory_quantities(text, size):
    assert parse_memory(text, "memory") == size


@pytest.mark.parametrize("text", ["", "m", "1.5m", "-1", "0", "abc", True])
def test_bad_cpu_quantities_are_refused(text):
    with pytest.raises(ConfigError, match="cpu"):
        parse_cpu(text, "cpu")


@pytest.mark.parametrize("text", ["", "256mb", "1Ki", "-5Mi", "1.5.2Gi"])
def test_bad_memory_quantities_are_refused(text):
    with pytest.raises(ConfigError, match="memory"):
        parse_memory(text, "memory")
