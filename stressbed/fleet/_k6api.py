"""k6's REST API (status, resume, setup data), spoken without any proxy: it is local or
in-cluster, never behind one."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
#: k6's ExecutionStatus "PausedBeforeRun": every VU is initialised from here on (the statuses
#: after it are the run's: started, setup, running, teardown, ended).
PAUSED_BEFORE_RUN = 4


def call(api: str, method: str, path: str, body: object = None, timeout: float = 5.0) -> Any:
    """The ``data`` of k6's JSON:API answer to ``method path``; OSError/ValueError on failure."""
    payload = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{api}{path}", data=payload, method=method)
    request.add_header("Content-Type", "application/json")
    with _OPENER.open(request, timeout=timeout) as response:
        text = response.read()
    return json.loads(text)["data"] if text else None


def status(api: str, timeout: float = 1.0) -> dict[str, Any]:
    data: dict[str, Any] = call(api, "GET", "/v1/status", timeout=timeout)["attributes"]
    return data


def initialised(status: dict[str, Any]) -> bool:
    """Every VU initialised, whether or not the run was released since."""
    return bool(status.get("status", 0) >= PAUSED_BEFORE_RUN)


def awaiting_release(status: dict[str, Any]) -> bool:
    """Every VU initialised and still paused: ready for the fleet's release."""
    return initialised(status) and bool(status.get("paused", False))


def resume(api: str) -> None:
    call(
        api,
        "PATCH",
        "/v1/status",
        {"data": {"type": "status", "id": "default", "attributes": {"paused": False}}},
    )


def run_setup(api: str, timeout: float) -> Any:
    """Run the script's setup() in this k6 and return its data."""
    return call(api, "POST", "/v1/setup", timeout=timeout)["attributes"].get("data")


def set_setup_data(api: str, data: Any) -> None:
    call(api, "PUT", "/v1/setup", data)
