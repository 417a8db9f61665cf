"""A replay target: a real nginx on loopback that writes its own access log, in front of a
stand-in service that answers every request (an nginx server block of the same process).

``stressbed model --check`` replays a generated scenario at it and models the log it wrote;
the tests load it with a known mix. The proxy reads every request's body (``$request_body``
is logged, bodies up to :data:`BODY_BYTES`), times it (``$request_time``) and sizes it
(``$request_length``) in :data:`LOG_FORMAT`. nginx runs in its own session, stopped with
SIGQUIT (graceful: the log is flushed) and killed if it lingers past :data:`STOP_S`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, ProvisionError
from ..model.access_log import FORMATS

__all__ = ["LOG_FORMAT", "Replay", "find_nginx", "free_port", "nginx_running", "replay_target"]

#: The access log's format (``stressbed model`` reads it as ``--format stressbed``, and tells
#: it from its lines).
LOG_FORMAT = FORMATS["stressbed"]
BODY_BYTES = 65536
START_S = 10.0
STOP_S = 10.0

_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 4096; }}
http {{
  log_format replay escape=default '{log_format}';
  access_log off;
  client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fcgi; uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
  keepalive_requests 1000000;
  client_body_buffer_size {body}; client_max_body_size 1m;
  upstream service {{ server 127.0.0.1:{service}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    access_log {log} replay;
    location / {{
      proxy_pass http://service;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
  server {{
    listen 127.0.0.1:{service};
    location / {{ default_type application/json; return 200 '{{"ok":true,"id":"42"}}'; }}
  }}
}}
"""


@dataclass(frozen=True)
class Replay:
    """The running target: its base URL and the access log it writes."""

    url: str
    log: Path


def find_nginx() -> str:
    """nginx's path; ConfigError when it is not installed (the check needs a real one)."""
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )
    if found is None:
        raise ConfigError("--check", "no nginx", "nginx installed (apt-get install nginx-light)")
    return found


@contextmanager
def replay_target(workdir: Path) -> Iterator[Replay]:
    """nginx on two free loopback ports for the block's duration (see the module's
    docstring); its log is complete once the block is left."""
    nginx = find_nginx()
    workdir.mkdir(parents=True, exist_ok=True)
    port, service = free_port(), free_port()
    log = workdir / "access.log"
    conf = workdir / "nginx.conf"
    conf.write_text(
        _CONF.format(
            dir=workdir,
            port=port,
            service=service,
            log=log,
            body=BODY_BYTES,
            log_format=LOG_FORMAT,
        )
    )
    with nginx_running(nginx, conf, port):
        yield Replay(f"http://127.0.0.1:{port}", log)


@contextmanager
def nginx_running(
    nginx: str, conf: Path, port: int, env: dict[str, str] | None = None
) -> Iterator[None]:
    """nginx (the binary ``nginx``) with the configuration ``conf`` (its prefix the file's
    folder, where its error.log is), in a session of its own, for the block: listening on
    ``port`` when the block starts, stopped with SIGQUIT (its logs flushed) when it ends,
    killed with its workers if it lingers."""
    workdir = conf.parent
    proc = subprocess.Popen(
        [nginx, "-c", str(conf), "-p", str(workdir)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )
    try:
        _wait_listening(proc, port, workdir)
        yield
    finally:
        _stop(proc)


def _wait_listening(proc: subprocess.Popen[bytes], port: int, workdir: Path) -> None:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            error = (workdir / "error.log").read_text(errors="replace")[-300:].strip()
            raise ProvisionError(f"nginx exited at start ({proc.returncode}): {error}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise ProvisionError(f"nginx did not listen on 127.0.0.1:{port} within {START_S:.0f} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            # Its workers too: the whole session nginx leads.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=STOP_S)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (free now: a server started next binds it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
