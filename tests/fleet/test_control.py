"""A runner's control endpoint (what the coordinator in a cluster asks), on a real socket."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest

from stressbed.fleet import control
from stressbed.fleet.control import TOKEN_ENV, ControlServer

TOKEN = "the-runs-own-token"


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

    server = ControlServer("127.0.0.1", 0, take, lambda: state["running"], stopped.set, token=TOKEN)
    try:
        yield f"http://127.0.0.1:{server.port}", asked, stopped, state
    finally:
        server.close()


def test_a_snapshot_holds_the_seconds_after_since_and_the_latest_to_ask_from(endpoint):
    url, asked, _, state = endpoint
    first = control.snapshot(url, 0, TOKEN)
    assert sorted(first["windows"]) == ["100", "101", "102"]
    assert (first["latest"], first["running"]) == (102, True)
    state["running"] = False
    again = control.snapshot(url, first["latest"], TOKEN)
    assert (again["windows"], again["latest"], again["running"]) == ({}, 102, False)
    assert asked == [0, 102]


def test_a_stop_is_acknowledged_at_once_and_stops_the_runner(endpoint):
    url, _, stopped, _ = endpoint
    control.stop(url, TOKEN)
    assert stopped.wait(timeout=10)


@pytest.mark.parametrize(
    ("path", "code"), [("/v1/snapshot?since=soon", 400), ("/v1/other", 404), ("/", 404)]
)
def test_what_is_not_a_snapshot_or_a_stop_is_refused(endpoint, path, code):
    url, asked, stopped, _ = endpoint
    request = urllib.request.Request(f"{url}{path}", headers={"Authorization": f"Bearer {TOKEN}"})
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=5)
    error.value.close()
    assert error.value.code == code
    assert asked == []
    assert not stopped.is_set()


WRONG = [
    None,  # no Authorization header at all
    "Bearer ",
    "Bearer the-runs-own-toke",  # a prefix of the token
    f"Bearer {TOKEN}x",
    f"Basic {TOKEN}",
    TOKEN,  # no scheme
]


@pytest.mark.parametrize("authorization", WRONG)
@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/v1/snapshot?since=0"), ("POST", "/v1/stop"), ("GET", "/")]
)
def test_a_request_without_the_runs_token_gets_401_and_nothing_else(
    endpoint, authorization, method, path
):
    url, asked, stopped, _ = endpoint
    request = urllib.request.Request(
        f"{url}{path}", data=b"{}" if method == "POST" else None, method=method
    )
    if authorization is not None:
        request.add_header("Authorization", authorization)
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=5)
    body = error.value.read()
    error.value.close()
    assert (error.value.code, error.value.headers["WWW-Authenticate"]) == (401, "Bearer")
    assert body == b'{"error": "unauthorized"}'  # not a window of the run's data
    assert asked == []
    assert not stopped.wait(timeout=0.2)


def test_the_clients_with_a_wrong_token_are_refused_as_an_os_error(endpoint):
    url, asked, stopped, _ = endpoint
    for call in (lambda: control.snapshot(url, 0, "guess"), lambda: control.stop(url, "guess")):
        with pytest.raises(urllib.error.HTTPError, match="401") as error:
            call()
        error.value.close()
        assert isinstance(error.value, OSError)  # what the coordinator counts as no answer
    assert asked == []
    assert not stopped.wait(timeout=0.2)


def test_an_endpoint_without_a_token_cannot_be_made():
    with pytest.raises(ValueError, match="STRESSBED_CONTROL_TOKEN"):
        ControlServer(
            "127.0.0.1", 0, lambda since: ({}, since), lambda: True, lambda: None, token=""
        )


def test_an_endpoint_that_is_gone_is_an_os_error_for_the_coordinator():
    server = ControlServer(
        "127.0.0.1", 0, lambda since: ({}, since), lambda: True, lambda: None, token=TOKEN
    )
    url = f"http://127.0.0.1:{server.port}"
    server.close()
    with pytest.raises(urllib.error.URLError, match="Connection refused"):
        control.snapshot(url, 0, TOKEN)
    with pytest.raises(urllib.error.URLError, match="Connection refused"):
        control.stop(url, TOKEN)


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


@pytest.mark.parametrize(
    ("module", "watching"),
    [
        ("stressbed.runner", ["--bundle", "b", "--index", "0", "--count", "1", "--out", "o"]),
        ("stressbed.coordinator", ["--runners", "1", "--runner-urls", "http://127.0.0.1:9"]),
    ],
)
def test_a_control_endpoint_without_the_runs_token_is_refused_at_start(module, watching):
    option = "--control-port" if module == "stressbed.runner" else "--control-urls"
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    done = subprocess.run(
        [sys.executable, "-m", module, *watching, option, "9" if "runner" in module else "x"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert done.returncode == 2
    assert f"{TOKEN_ENV} is not set" in done.stderr.splitlines()[-1]
