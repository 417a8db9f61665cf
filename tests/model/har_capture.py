"""HAR 1.2 from a real browser: Chromium's DevTools Network events, assembled into the file its
developer tools export.

Chromium has no "export HAR" command over the DevTools protocol: its DevTools front end builds
the file from these same events, and so does :func:`to_har`, field for field as the HAR 1.2
spec names them:

- ``Network.requestWillBeSent``: the request as the page made it (method, URL, the headers it
  set, ``Authorization`` included, the post data) and its start (``wallTime``);
- ``Network.requestWillBeSentExtraInfo``: the headers as they went on the wire (``Cookie``
  included: the network stack adds it) and the cookies sent;
- ``Network.responseReceived`` and its ``ExtraInfo``: status, headers (``Set-Cookie``
  included), protocol, timing;
- ``Network.dataReceived``: the body's decoded bytes; ``Network.loadingFinished``: the bytes
  on the wire and the end; ``Network.loadingFailed``: no response.

Redirects (one request id for several hops) are not assembled: the tests' pages make none.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlsplit

#: The events a HAR is made of.
EVENTS = (
    "Network.requestWillBeSent",
    "Network.requestWillBeSentExtraInfo",
    "Network.responseReceived",
    "Network.responseReceivedExtraInfo",
    "Network.dataReceived",
    "Network.loadingFinished",
    "Network.loadingFailed",
)


@dataclass
class _Request:
    """One request's events, by kind (the last of each; dataReceived summed)."""

    sent: dict[str, Any]
    sent_extra: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    response_extra: dict[str, Any] | None = None
    received: int = 0
    finished: dict[str, Any] | None = None
    failed: dict[str, Any] | None = None

    def settled(self) -> bool:
        """Ended, and every event it said it would have has come."""
        if self.failed is not None:
            return True
        if self.finished is None or self.response is None:
            return False
        if self.response.get("hasExtraInfo") and self.response_extra is None:
            return False
        return self.sent_extra is not None or not self.response.get("hasExtraInfo")


@dataclass
class Capture:
    """The Network events of ``driver``'s performance log (``goog:loggingPrefs``
    ``{"performance": "ALL"}`` and CDP ``Network.enable``), collected as they come."""

    driver: Any
    requests: dict[str, _Request] = field(default_factory=dict)
    extra: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)

    def drain(self) -> None:
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] in EVENTS:
                self._add(message["method"], message["params"])

    def _add(self, method: str, params: dict[str, Any]) -> None:
        rid = params["requestId"]
        if method == "Network.requestWillBeSent":
            if not params["request"]["url"].startswith(("http:", "https:")):
                return
            self.requests[rid] = _Request(params)
            for early, early_params in self.extra.pop(rid, []):
                self._add(early, early_params)
            return
        request = self.requests.get(rid)
        if request is None:  # an ExtraInfo may come before its request; others are not ours
            self.extra.setdefault(rid, []).append((method, params))
            return
        if method == "Network.requestWillBeSentExtraInfo":
            request.sent_extra = params
        elif method == "Network.responseReceived":
            request.response = params
        elif method == "Network.responseReceivedExtraInfo":
            request.response_extra = params
        elif method == "Network.dataReceived":
            request.received += params["dataLength"]
        elif method == "Network.loadingFinished":
            request.finished = params
        else:
            request.failed = params

    def settle(self, count: int, timeout_s: float = 60.0) -> None:
        """Collect until ``count`` requests have been made and every one has settled."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.drain()
            if len(self.requests) >= count and all(r.settled() for r in self.requests.values()):
                return
            if time.monotonic() > deadline:
                states = {r.sent["request"]["url"]: r.settled() for r in self.requests.values()}
                raise AssertionError(f"requests not settled after {timeout_s}s: {states}")
            time.sleep(0.1)


def to_har(
    capture: Capture,
    browser_version: str,
    post_data: Callable[[str], str | None] | None = None,
) -> dict[str, Any]:
    """The HAR 1.2 document of the captured requests, in the order they started.
    ``post_data(request_id)``: a body the events left out (``Network.getRequestPostData``)."""
    entries = [_entry(rid, r, post_data) for rid, r in capture.requests.items()]
    entries.sort(key=lambda e: e["startedDateTime"])
    first = entries[0]["startedDateTime"] if entries else _iso(time.time())
    return {
        "log": {
            "version": "1.2",
            "creator": {"name": "stressbed tests (DevTools Network events)", "version": "1"},
            "browser": {"name": "Chromium", "version": browser_version},
            "pages": [
                {
                    "startedDateTime": first,
                    "id": "page_1",
                    "title": "",
                    "pageTimings": {"onContentLoad": -1, "onLoad": -1},
                }
            ],
            "entries": entries,
        }
    }


def _iso(wall: float) -> str:
    """As DevTools writes it: ``new Date(ms).toJSON()``, milliseconds and a Z."""
    stamp = datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def _pairs(headers: dict[str, str]) -> list[dict[str, str]]:
    """DevTools' header object as HAR's list (a repeated header is one value per line)."""
    return [
        {"name": name, "value": value}
        for name, joined in headers.items()
        for value in joined.split("\n")
    ]


def _header(headers: dict[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name), None)


def _entry(rid: str, r: _Request, post_data: Callable[[str], str | None] | None) -> dict[str, Any]:
    request = r.sent["request"]
    headers = r.sent_extra["headers"] if r.sent_extra else request["headers"]
    text = request.get("postData")
    if text is None and request.get("postDataEntries"):
        text = b"".join(
            base64.b64decode(e.get("bytes", "")) for e in request["postDataEntries"]
        ).decode()
    if text is None and request.get("hasPostData") and post_data is not None:
        text = post_data(rid)
    response = r.response["response"] if r.response else {}
    timing = response.get("timing") or {}
    timings = _timings(r, timing)
    har_request: dict[str, Any] = {
        "method": request["method"],
        "url": request["url"],
        "httpVersion": response.get("protocol", ""),
        "cookies": [
            {"name": c["cookie"]["name"], "value": c["cookie"]["value"]}
            for c in (r.sent_extra or {}).get("associatedCookies", [])
            if not c.get("blockedReasons")
        ],
        "headers": _pairs(headers),
        "queryString": [
            {"name": k, "value": v}
            for k, v in parse_qsl(urlsplit(request["url"]).query, keep_blank_values=True)
        ],
        "headersSize": -1,
        "bodySize": len(text.encode()) if text is not None else 0,
    }
    if text is not None:
        har_request["postData"] = {
            "mimeType": _header(headers, "content-type") or "",
            "text": text,
            "params": [],
        }
    response_headers = (r.response_extra or {}).get("headers") or response.get("headers", {})
    headers_text = (r.response_extra or {}).get("headersText")
    headers_size = len(headers_text.encode()) if headers_text else -1
    wire = r.finished["encodedDataLength"] if r.finished else -1
    cookies = SimpleCookie()
    for line in (_header(response_headers, "set-cookie") or "").split("\n"):
        if line:
            cookies.load(line)
    return {
        "pageref": "page_1",
        "startedDateTime": _iso(r.sent["wallTime"]),
        "time": sum(v for k, v in timings.items() if k != "ssl" and v > 0),
        "request": har_request,
        "response": {
            "status": response.get("status", 0),
            "statusText": response.get("statusText", ""),
            "httpVersion": response.get("protocol", ""),
            "cookies": [
                {
                    "name": m.key,
                    "value": m.value,
                    "path": m["path"],
                    "httpOnly": bool(m["httponly"]),
                }
                for m in cookies.values()
            ],
            "headers": _pairs(response_headers),
            "content": {"size": r.received, "mimeType": response.get("mimeType", "")},
            "redirectURL": "",
            "headersSize": headers_size,
            "bodySize": wire - headers_size if wire >= 0 and headers_size >= 0 else -1,
            **({"_error": r.failed["errorText"]} if r.failed else {}),
        },
        "cache": {},
        "timings": timings,
        "serverIPAddress": response.get("remoteIPAddress", ""),
        "connection": str(response.get("connectionId", "")),
        "_resourceType": r.sent.get("type", "Other").lower(),
    }


def _timings(r: _Request, timing: dict[str, float]) -> dict[str, float]:
    """HAR's phases in ms from DevTools' ``ResourceTiming`` (offsets from ``requestTime``)."""
    if not timing:
        return {"blocked": -1, "dns": -1, "connect": -1, "send": 0, "wait": 0, "receive": 0}
    queued = (timing["requestTime"] - r.sent["timestamp"]) * 1000

    def span(start: str, end: str) -> float:
        return timing[end] - timing[start] if timing.get(start, -1) >= 0 else -1

    first = next(timing[k] for k in ("dnsStart", "connectStart", "sendStart") if timing[k] >= 0)
    ended = r.finished["timestamp"] if r.finished else timing["requestTime"]
    return {
        "blocked": max(queued, 0.0) + first,
        "dns": span("dnsStart", "dnsEnd"),
        "connect": span("connectStart", "connectEnd"),
        "ssl": span("sslStart", "sslEnd"),
        "send": timing["sendEnd"] - timing["sendStart"],
        "wait": timing["receiveHeadersEnd"] - timing["sendEnd"],
        "receive": max((ended - timing["requestTime"]) * 1000 - timing["receiveHeadersEnd"], 0),
    }
