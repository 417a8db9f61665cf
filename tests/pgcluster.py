"""A throwaway PostgreSQL cluster, for the history store's tests and its benchmark
(tools/bench_history.py imports this file too).

``initdb`` into a temporary directory with one superuser whose generated password is checked
by scram-sha-256, the server listening on 127.0.0.1 only, on a free port, its Unix socket in
that directory; clients get the password from a password file (``PGPASSFILE``), never from a
URL. Stopped (``pg_ctl stop -m fast``) and removed when done. As root the server runs as the
``postgres`` user (it refuses root). Debian's postgresql package brings the programs
(``.ci/run`` installs it), in /usr/lib/postgresql/N/bin, not on PATH; the cluster it may start
itself is not used.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stressbed.fleet.process import free_port

__all__ = ["Cluster", "programs", "throwaway_cluster", "unavailable"]

SUPERUSER = "stressbed"
#: How long initdb, a start or a stop may take.
TIMEOUT_S = 60
#: Starts tried on fresh ports when the one chosen was taken meanwhile.
PORT_TRIES = 3
#: For tests: nothing a crash would need (the cluster does not outlive its run).
FAST = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def programs() -> Path | None:
    """The folder of initdb and pg_ctl: PATH's, else the newest of Debian's."""
    on_path = shutil.which("pg_ctl")
    if on_path is not None and Path(on_path).with_name("initdb").exists():
        return Path(on_path).parent
    found = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    found.sort(key=lambda folder: int(v) if (v := folder.parent.name).isdigit() else 0)
    return found[-1] if found else None


def unavailable() -> str | None:
    """Why no throwaway cluster can be made here; None when one can."""
    if programs() is None:
        return (
            "no PostgreSQL server programs (initdb, pg_ctl) on PATH or in "
            "/usr/lib/postgresql/*/bin (apt-get install postgresql)"
        )
    try:
        import psycopg  # noqa: F401, PLC0415
    except ImportError:
        return "psycopg is not installed (pip install 'stressbed[postgresql]')"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, and no 'postgres' user to run the server as"
    return None


@dataclass
class Cluster:
    """A running cluster: ``url(database)`` names a database in it (no password: clients read
    it from :attr:`passfile`, as ``PGPASSFILE`` says)."""

    home: Path
    port: int
    passfile: Path
    user: str = SUPERUSER
    _made: Iterator[int] = field(default_factory=itertools.count)

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    @property
    def env(self) -> dict[str, str]:
        """What a client process needs in its environment to connect."""
        return {"PGPASSFILE": str(self.passfile)}

    def connect(self, database: str = "postgres") -> Any:
        """A psycopg connection (autocommit) to ``database``, as the superuser."""
        import psycopg  # noqa: PLC0415

        return psycopg.connect(self.url(database), passfile=str(self.passfile), autocommit=True)

    def create_database(self, prefix: str = "history") -> str:
        """A new empty database; its URL. It sorts text as most servers' do, by a language's
        rules (ICU's en-US: ``a`` before ``B``), not by bytes as SQLite does."""
        name = f"{prefix}_{next(self._made)}"
        with self.connect() as db:
            db.execute(
                f'CREATE DATABASE "{name}" TEMPLATE template0'
                " LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'"
            )
        return self.url(name)


@contextlib.contextmanager
def throwaway_cluster(settings: Mapping[str, str] = FAST) -> Iterator[Cluster]:
    """A cluster made and started here, stopped and removed when the block ends; ``settings``
    go to its postgresql.conf."""
    folder = programs()
    if folder is None:
        raise RuntimeError(unavailable())
    owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
    home = Path(tempfile.mkdtemp(prefix="stressbed-pg-"))
    try:
        (home / "socket").mkdir()
        password = secrets.token_urlsafe(24)
        pwfile = home / "pwfile"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        if owner is not None:
            for path in (home, home / "socket", pwfile):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        _run(
            folder / "initdb",
            *("-D", str(home / "data"), "-U", SUPERUSER, f"--pwfile={pwfile}"),
            *("-A", "scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync"),
            home=home,
            as_postgres=owner is not None,
        )
        pwfile.unlink()
        lines = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{home / 'socket'}'",
            **{key: f"'{value}'" for key, value in settings.items()},
        }
        with open(home / "data" / "postgresql.conf", "a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in lines.items())
        port = _start(folder, home, as_postgres=owner is not None)
        passfile = home / "pgpass"
        passfile.write_text(f"127.0.0.1:{port}:*:{SUPERUSER}:{password}\n")
        passfile.chmod(0o600)  # libpq ignores a password file others may read
        yield Cluster(home=home, port=port, passfile=passfile)
    finally:
        if (home / "data" / "postmaster.pid").exists():
            _stop(folder, home, as_postgres=owner is not None)
        shutil.rmtree(home, ignore_errors=True)


def _start(folder: Path, home: Path, *, as_postgres: bool) -> int:
    """Start the server on a free port (another, when the one chosen was taken meanwhile);
    the port, once it accepts connections."""
    for _ in range(PORT_TRIES):
        port = free_port()
        log = home / "server.log"
        done = _run(
            folder / "pg_ctl",
            *("-D", str(home / "data"), "-l", str(log), "-o", f"-p {port}"),
            *("-w", "-t", str(TIMEOUT_S), "start"),
            home=home,
            as_postgres=as_postgres,
            check=False,
        )
        if done.returncode == 0:
            return port
        said = log.read_text(errors="replace") if log.exists() else ""
        if "Address already in use" not in said:
            raise RuntimeError(f"PostgreSQL did not start: {done.stdout}{said[-2000:]}")
    raise RuntimeError(f"PostgreSQL did not start: {PORT_TRIES} ports taken in turn")


def _stop(folder: Path, home: Path, *, as_postgres: bool) -> None:
    """``pg_ctl stop -m fast``; the postmaster killed if it has not gone in time."""
    data = home / "data"
    done = _run(
        folder / "pg_ctl",
        *("-D", str(data), "-m", "fast", "-w", "-t", str(TIMEOUT_S), "stop"),
        home=home,
        as_postgres=as_postgres,
        check=False,
    )
    pidfile = data / "postmaster.pid"
    if done.returncode == 0 or not pidfile.exists():
        return
    with contextlib.suppress(ValueError, OSError):
        pid = int(pidfile.read_text().split("\n", 1)[0])
        os.kill(pid, signal.SIGQUIT)  # the postmaster's immediate shutdown
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline and pidfile.exists():
            time.sleep(0.1)
        if pidfile.exists():
            os.kill(pid, signal.SIGKILL)


def _run(
    program: Path, *args: str, home: Path, as_postgres: bool, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """A PostgreSQL program, as the postgres user when this is root, with no PG* variable of
    ours (a PGDATA or PGPORT would change what it does) and in ``home`` (the postgres user may
    not enter the folder this runs in)."""
    argv = [str(program), *args]
    if as_postgres:
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"  # sbin: not on every PATH
        argv = [runuser, "-u", "postgres", "--", *argv]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    done = subprocess.run(
        argv,
        cwd=home,
        env={**env, "LC_ALL": "C"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=TIMEOUT_S + 30,
        check=False,
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"{program.name} exited {done.returncode}: {done.stdout[-2000:]}")
    return done
