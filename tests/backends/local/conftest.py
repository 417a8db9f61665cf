"""Fixtures of the local backend's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from .test_stack import Control


@pytest.fixture
def control(tmp_path: Path) -> Control:
    """The fake target's control file (see :class:`.test_stack.Control`)."""
    return Control(tmp_path / "control.json")
