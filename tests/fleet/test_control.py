"""A runner's control endpoint (what the coordinator in a cluster asks), on a real socket."""

from __future__ import annotations

import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest

from stressbed.fleet import control
from stressbed.fleet.control import ControlServer


@pytest.fixture
def endpoint():
    asked: list[int] = []
    stopped = threading.Event()
    state = {"running": True}

    def take(since: int) -> tuple[dict[str, object], int]:
        asked.append(since)
        seconds = [t for t in (100, 101, 102) if t > since]
        windows = {str(t): {"second": t} for t in seconds}
        return {"windows": windows, "aggregates": {}}, max(seconds, default=since)

    server = ControlServer("127.0.0.1", 0, take, lambda: state["running"], stopped.set)
    try:
        yield f"http://127.0.0.1:{server.port}", asked, stopped, state
    finally:
        server.close()


def test_a_snapshot_holds_the_seconds_after_since_and_the_latest_to_ask_from(endpoint):
    url, asked, _, state = endpoint
    first = control.snapshot(url, 0)
    assert sorted(first["windows"]) == ["100", "101", "102"]
    assert (first["latest"], first["running"]) == (102, True)
    state["running"] = False
    again = control.snapshot(url, first["latest"])
    assert (again["windows"], again["latest"], again["running"]) == ({}, 102, False)
    assert asked == [0, 102]


def test_a_stop_is_acknowledged_at_once_and_stops_the_runner(endpoint):
    url, _, stopped, _ = endpoint
    control.stop(url)
    assert stopped.wait(timeout=10)


@pytest.mark.parametrize(
    ("path", "code"), [("/v1/snapshot?since=soon", 400), ("/v1/other", 404), ("/", 404)]
)
def test_what_is_not_a_snapshot_or_a_stop_is_refused(endpoint, path, code):
    url, asked, stopped, _ = endpoint
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(f"{url}{path}", timeout=5)
    error.value.close()
    assert error.value.code == code
    assert asked == []
    assert not stopped.is_set()


def test_an_endpoint_that_is_gone_is_an_os_error_for_the_coordinator():
    server = ControlServer("127.0.0.1", 0, lambda since: ({}, since), lambda: True, lambda: None)
    url = f"http://127.0.0.1:{server.port}"
    server.close()
    with pytest.raises(urllib.error.URLError, match="Connection refused"):
        control.snapshot(url, 0)
    with pytest.raises(urllib.error.URLError, match="Connection refused"):
        control.stop(url)


def test_the_coordinator_refuses_abort_thresholds_it_cannot_read():
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "stressbed.coordinator",
            "--runners",
            "1",
            "--runner-urls",
            "http://127.0.0.1:9",
            "--control-urls",
            "http://127.0.0.1:9",
            "--abort-thresholds",
            '[{"metric": "http_req_failed", "operator": "<"}]',
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        "python -m stressbed.coordinator: error: "
        "--abort-thresholds: threshold.aggregation: got None; expected a threshold as "
        "to_dict() writes it"
    )
