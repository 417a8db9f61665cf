"""Fixtures of the Docker backend's tests: the engine of this machine, the images built once.

They run against a real engine (``.ci/run`` installs and starts one); where none answers,
every test here is skipped with the reason, said once per session.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pytest

from stressbed.errors import StressbedError

try:
    from stressbed.backends.docker import _engine, images
except ImportError as exc:  # the docker extra is missing
    _engine = images = None  # type: ignore[assignment]
    WHY_NOT = f"the docker extra is not installed ({exc.name})"
else:
    WHY_NOT = ""


def _say(line: str) -> None:
    print(f"[images] {line}")


@pytest.fixture(scope="session")
def engine() -> Any:
    """A client of this machine's Docker engine; the tests skip where none answers."""
    if WHY_NOT:
        pytest.skip(WHY_NOT)
    try:
        return _engine.connect()
    except StressbedError as exc:
        pytest.skip(f"no Docker engine: {exc}")


@pytest.fixture(scope="session")
def built(engine: Any) -> dict[str, str]:
    """The base, agent and runner images (made once; found by their hash afterwards)."""
    try:
        base = images.ensure_base(engine, None, _say)
    except StressbedError as exc:
        pytest.skip(f"no base image and none can be made here: {exc}")
    checkout = images.find_checkout()
    return {
        "base": base,
        "agent": images.ensure_image(engine, "agent", base, checkout, _say),
        "runner": images.ensure_image(engine, "runner", base, checkout, _say),
    }


def labelled(engine: Any, run: str | None = None) -> list[str]:
    """Containers and networks carrying a run's label (any run's without ``run``)."""
    selector = f"{_engine.LABEL_RUN}={run}" if run else _engine.LABEL_RUN
    found = [
        "container " + c["Names"][0].lstrip("/")
        for c in engine.api.containers(all=True, filters={"label": selector})
    ]
    found += ["network " + n["Name"] for n in engine.api.networks(filters={"label": selector})]
    return found


def wait_for(check, timeout_s: float = 60.0, every_s: float = 0.2):
    """``check()``'s first truthy value within the deadline (else its last value)."""
    deadline = time.monotonic() + timeout_s
    value = check()
    while not value and time.monotonic() < deadline:
        time.sleep(every_s)
        value = check()
    return value


@pytest.fixture
def no_leftovers(engine: Any) -> Iterator[None]:
    """The test leaves nothing labelled behind (and what it did leave is removed)."""
    before = set(labelled(engine))
    yield
    left = sorted(set(labelled(engine)) - before)
    with contextlib.suppress(Exception):
        _engine.sweep(engine, everything=True)
    assert left == []
