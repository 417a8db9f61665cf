"""Fixtures of the local backend's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from stressbed.backends.local._cgroups import create

from .test_stack import Control


@pytest.fixture
def control(tmp_path: Path) -> Control:
    """The fake target's control file (see :class:`.test_stack.Control`)."""
    return Control(tmp_path / "control.json")


@pytest.fixture
def cgroup_factory():
    """Make cgroups (``make(cpu_m, memory, **limits)``: :func:`create`'s), removed after the
    test; the test is skipped where this process may not create one."""
    made = []

    def make(cpu_m=None, memory=None, **limits):
        group = create("test", cpu_m, memory, **limits)
        if group is None:
            pytest.skip("this process may not create cgroups here")
        made.append(group)
        return group

    yield make
    for group in made:
        group.remove()
