"""Where a run's live series go, as its options say: the live page and the ``/metrics``
endpoint (:mod:`.live_server`, :mod:`.live_page`), a remote-write receiver
(:mod:`.remote_writer`), both or neither; started before the run, given the final counts
after it, closed whatever happened."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..results.live_series import LiveSeries
from ..results.summary import RunReport
from .live_page import LivePage
from .live_server import LiveServer
from .notifier import Notifier
from .remote_writer import RemoteWriter, remote_write_headers

__all__ = ["LiveOutputs"]


class LiveOutputs:
    """The run's live series (None: nothing goes anywhere), its server and its writer."""

    def __init__(
        self,
        address: str | None,
        *,
        off: bool = False,
        remote_write: str | None = None,
        notify: str | None = None,
    ) -> None:
        """``--live`` (``address``), ``--no-live`` (``off``) and ``--remote-write``: served by
        default on 127.0.0.1, any free port, but not under ``CI=true`` unless asked. A bad or
        unusable address, or credentials in the receiver's URL, are exit 2 (nothing left
        running)."""
        self.series: LiveSeries | None = None
        self.page: LivePage | None = None
        self.server: LiveServer | None = None
        self.writer: RemoteWriter | None = None
        self.notifier: Notifier | None = None
        serve = not off and (address is not None or os.environ.get("CI", "").lower() != "true")
        if not serve and remote_write is None and notify is None:
            return
        series = LiveSeries(lock=threading.Lock())
        writer = notifier = None
        # Checked first: a refused URL leaves no server behind.
        if remote_write is not None:
            writer = RemoteWriter(remote_write, series, remote_write_headers(os.environ))
        if notify is not None:
            headers = remote_write_headers(os.environ, "STRESSBED_NOTIFY")
            notifier = Notifier(notify, series, headers)
        if serve:
            host, port = _host_port(address or "127.0.0.1:0")
            self.page = LivePage(series)
            try:
                self.server = LiveServer(series, host, port, page=self.page)
            except OSError as exc:
                why = exc.strerror or str(exc)
                raise ConfigError(
                    "--live", address, f"an address this machine can serve ({why})"
                ) from None
            series.url = self.server.url
            print(
                f"stressbed: live: {self.server.url}/ (page), {self.server.url}/metrics",
                file=sys.stderr,
            )
        self.series = series
        self.writer = writer.start() if writer is not None else None
        self.notifier = notifier.start() if notifier is not None else None

    def finish(self, report: RunReport | None = None, results: str = "") -> None:
        """The run has ended, its last seconds folded in: the final counts pushed, its end
        (``report``, its results in ``results``) notified, and one more scrape and one more
        ask of an open page waited for (bounded); what the push and the alerts did, said."""
        with contextlib.suppress(KeyboardInterrupt):
            told: dict[str, Any] = {}
            if self.notifier is not None and report is not None:
                notifier, self.notifier = self.notifier, None
                print(f"stressbed: notify: {notifier.finish(report, results)}", file=sys.stderr)
                told["notify"] = {"sent": notifier.sent, "not_delivered": notifier.failed,
                                  "last_error": notifier.last_error}  # fmt: skip
            if self.writer is not None:
                stats = self.writer.stop()
                self.writer = None
                print(f"stressbed: remote write: {stats.line()}", file=sys.stderr)
                told["remote_write"] = dataclasses.asdict(stats)
            if told and results:
                _amend(Path(results) / "summary.json", told)
            if self.server is not None:
                self.server.linger()

    def close(self) -> None:
        if self.notifier is not None:
            self.notifier.stop()
            self.notifier = None
        if self.writer is not None:
            self.writer.stop(flush_s=0.0)
            self.writer = None
        if self.server is not None:
            self.server.close()
            self.server = None


def _host_port(given: str) -> tuple[str, int]:
    host, sep, port = given.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError("--live", given, "HOST:PORT, e.g. 127.0.0.1:9464 (port 0: any free)")
    return host, int(port)


def _amend(path: Path, told: dict[str, Any]) -> None:
    """summary.json's ``live`` (what the push and the alerts did, known only once they have
    ended), written whole or not at all; a summary that cannot be read is left as it is."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    document["live"] = {**(document.get("live") or {}), **told}
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    tmp.replace(path)
