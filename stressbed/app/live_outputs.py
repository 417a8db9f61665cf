"""Where a run's live series go, as its options say: the ``/metrics`` endpoint
(:mod:`.live_server`), a remote-write receiver (:mod:`.remote_writer`), both or neither;
started before the run, given the final counts after it, closed whatever happened."""

from __future__ import annotations

import contextlib
import os
import sys
import threading

from ..errors import ConfigError
from ..results.live_series import LiveSeries
from .live_server import LiveServer
from .remote_writer import RemoteWriter, remote_write_headers

__all__ = ["LiveOutputs"]


class LiveOutputs:
    """The run's live series (None: nothing goes anywhere), its server and its writer."""

    def __init__(
        self, address: str | None, *, off: bool = False, remote_write: str | None = None
    ) -> None:
        """``--live`` (``address``), ``--no-live`` (``off``) and ``--remote-write``: served by
        default on 127.0.0.1, any free port, but not under ``CI=true`` unless asked. A bad or
        unusable address, or credentials in the receiver's URL, are exit 2 (nothing left
        running)."""
        self.series: LiveSeries | None = None
        self.server: LiveServer | None = None
        self.writer: RemoteWriter | None = None
        serve = not off and (address is not None or os.environ.get("CI", "").lower() != "true")
        if not serve and remote_write is None:
            return
        series = LiveSeries(lock=threading.Lock())
        writer = None
        if remote_write is not None:  # checked first: a refused URL leaves no server behind
            writer = RemoteWriter(remote_write, series, remote_write_headers(os.environ))
        if serve:
            host, port = _host_port(address or "127.0.0.1:0")
            try:
                self.server = LiveServer(series, host, port)
            except OSError as exc:
                why = exc.strerror or str(exc)
                raise ConfigError(
                    "--live", address, f"an address this machine can serve ({why})"
                ) from None
            series.url = self.server.url
            print(f"stressbed: live: {self.server.url}/metrics", file=sys.stderr)
        self.series = series
        self.writer = writer.start() if writer is not None else None

    def finish(self) -> None:
        """The run has ended, its last seconds folded in: the final counts pushed, and one
        more scrape waited for (bounded); what the push did, said."""
        with contextlib.suppress(KeyboardInterrupt):
            if self.writer is not None:
                stats = self.writer.stop()
                self.writer = None
                print(f"stressbed: remote write: {stats.line()}", file=sys.stderr)
            if self.server is not None:
                self.server.linger()

    def close(self) -> None:
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
