"""A real nginx on loopback writing its access log in a log_format of the test's choosing, and
raw HTTP/1.1 requests to it, byte for byte (so $request_length is known).

The server proxies every request to an upstream group whose first server refuses connections
and never counts as failed (max_fails=0), the second a backup that answers: every request is
tried on two upstreams, so $upstream_response_time and $upstream_addr list two values, as a
retried request's do in production. nginx runs as the replay's does (stressbed.app.replay:
its own session, stopped with SIGQUIT, its log flushed, before the log is read), with the time
zone asked for (nginx keeps TZ).
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from stressbed.app.replay import free_port, nginx_running

NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
)
#: What the answering upstream returns (its length is $body_bytes_sent).
ANSWER = b'{"ok":true,"id":"42"}'

_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 64; }}
http {{
  log_format probe escape={escape} '{log_format}';
  access_log off;
  client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fcgi; uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
  client_body_buffer_size 64k;
  upstream tried {{
    server 127.0.0.1:{refused} max_fails=0;
    server 127.0.0.1:{service} backup;
  }}
  server {{
    listen 127.0.0.1:{port};
    access_log {log} probe;
    location / {{
      proxy_pass http://tried;
      proxy_next_upstream error;
    }}
  }}
  server {{
    listen 127.0.0.1:{service};
    location / {{ default_type application/json; return 200 '{answer}'; }}
  }}
}}
"""


@dataclass(frozen=True)
class Logging:
    """The running nginx: its port and the access log it writes."""

    port: int
    log: Path

    def send(self, raw: bytes) -> bytes:
        """Send ``raw`` on a connection of its own; what came back before nginx closed it."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
            sock.sendall(raw)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


def http_request(
    method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    """An HTTP/1.1 request's bytes (the connection closed after it)."""
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@contextmanager
def nginx_logging(
    workdir: Path, log_format: str, *, escape: str = "default", tz: str = "UTC"
) -> Iterator[Logging]:
    """nginx logging in ``log_format`` for the block; the log is complete once it is left."""
    assert NGINX is not None, "skip the test when nginx is absent"
    workdir.mkdir(parents=True, exist_ok=True)
    port, service, refused = free_port(), free_port(), free_port()
    log = workdir / "access.log"
    conf = workdir / "nginx.conf"
    conf.write_text(
        _CONF.format(
            dir=workdir,
            escape=escape,
            log_format=log_format,
            refused=refused,
            service=service,
            port=port,
            log=log,
            answer=ANSWER.decode(),
        )
    )
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TZ": tz}
    with nginx_running(NGINX, conf, port, env):
        yield Logging(port, log)
