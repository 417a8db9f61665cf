"""The options of a run's scenario, target, backend, fleet and profile, shared by ``stressbed
run`` and ``stressbed capacity``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "count",
    "history_options",
    "live_options",
    "percent",
    "rate",
    "share",
    "target_options",
    "whole",
]


def target_options(command: argparse.ArgumentParser) -> None:
    """The options of a run's scenario, target, backend, fleet and profile (run, capacity)."""
    # No defaults here: what the command line leaves out comes from the layers below it
    # (environment, profile, the profile file's common section, built-in defaults).
    command.add_argument(
        "--scenario",
        metavar="NAME|PATH",
        help="a scenario name or a .py file (default: ingest_mix via stressbed.yaml)",
    )
    command.add_argument(
        "--target-url",
        metavar="URL",
        help="base URL of a running service: nothing is provisioned",
    )
    command.add_argument(
        "--target-metrics-url",
        metavar="URL",
        help="with --target-url: that service's Prometheus metrics page, scraped each second",
    )
    command.add_argument(
        "--backend",
        metavar="NAME",
        help="where the stack and the runners run: local (default), docker or kubernetes",
    )
    command.add_argument(
        "--port",
        type=int,
        metavar="P",
        help="the provisioned stack's port on 127.0.0.1 (default 0: any free port)",
    )
    command.add_argument("--runners", type=int, metavar="N", help="k6 runners (default 1)")
    command.add_argument("--results", metavar="DIR", help="where runs go (default results/)")
    history_options(command)
    command.add_argument(
        "--keep-raw",
        action="store_true",
        default=None,
        help="keep each runner's raw k6 samples under runners/<i>/samples.csv.gz",
    )
    command.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="--backend kubernetes: the kubeconfig (default: $KUBECONFIG, ~/.kube/config)",
    )
    command.add_argument(
        "--context", metavar="NAME", help="--backend kubernetes: the context (default: current)"
    )
    command.add_argument(
        "--agent-image", metavar="REF", help="--backend kubernetes: the agent's image"
    )
    command.add_argument(
        "--runner-image",
        metavar="REF",
        help="--backend kubernetes: the runners' image (default stressbed-runner:latest)",
    )
    command.add_argument(
        "--image-pull-policy", metavar="P", help="Always, IfNotPresent (default) or Never"
    )
    command.add_argument(
        "--runner-cpu",
        metavar="Q",
        help="each runner's CPU (e.g. 2, 500m): kubernetes, the pod's request and limit; "
        "docker, the container's CPU limit; local, a cgroup CPU quota",
    )
    command.add_argument(
        "--runners-local",
        action="store_true",
        default=None,
        help="--backend docker: the runners as processes on this machine, not containers",
    )
    command.add_argument(
        "--base-image",
        metavar="REF",
        help="--backend docker: the Python image the agent and runner images are built on "
        "(default: stressbed-base:<Debian release>, made from Debian packages if missing)",
    )
    command.add_argument(
        "--control-plane-cidrs",
        metavar="CIDRS",
        help="--backend kubernetes: where the API server's requests to pods come from "
        "(e.g. 172.18.0.2/32,10.0.0.0/28), admitted by the agent's NetworkPolicy so that its "
        "metrics and fault hook answer through the pod proxy on a CNI that enforces it",
    )
    command.add_argument(
        "--runner-memory",
        metavar="Q",
        help="--backend kubernetes: each runner pod's memory, request and limit (e.g. 2Gi)",
    )
    command.add_argument(
        "--profile", metavar="NAME", help="a profile of the profile file ($STRESSBED_PROFILE)"
    )
    command.add_argument(
        "--profiles",
        type=Path,
        metavar="FILE",
        help="the profile file (default: ./stressbed.yaml; $STRESSBED_PROFILES)",
    )


def history_options(command: argparse.ArgumentParser) -> None:
    """Where the run is recorded, and the build it tests (run, capacity, collect)."""
    command.add_argument(
        "--history",
        metavar="FILE|URL",
        help="the history store the run is recorded in: an SQLite file (default "
        "<results>/history.db), postgresql://USER@HOST/DB (password from PGPASSWORD or "
        "~/.pgpass, never the URL), or off",
    )
    command.add_argument(
        "--build",
        metavar="ID",
        help="the build under test, as the history records it (default: $STRESSBED_BUILD, "
        "else the CI's commit: $GITHUB_SHA, $CI_COMMIT_SHA, $BUILDKITE_COMMIT, ...)",
    )


def live_options(command: argparse.ArgumentParser, *, notify: bool = True) -> None:
    """Where the run's live series go: the page and /metrics, a remote-write receiver, alerts."""
    live = command.add_mutually_exclusive_group()
    live.add_argument(
        "--live",
        metavar="HOST:PORT",
        help="serve the fleet's merged seconds while it runs, Prometheus's /metrics, on "
        "HOST:PORT (default 127.0.0.1:0, any free port; off when CI=true unless given)",
    )
    live.add_argument("--no-live", action="store_true", help="serve nothing while it runs")
    command.add_argument(
        "--remote-write",
        metavar="URL",
        help="push the same series to a Prometheus remote-write receiver each second "
        "(credentials: STRESSBED_REMOTE_WRITE_* variables, never the URL)",
    )
    if not notify:
        return
    command.add_argument(
        "--notify",
        metavar="URL",
        help="post a JSON document (Alertmanager's webhook shape) to URL when a threshold "
        "fails fleet-wide, when the run aborts and when it ends (credentials: "
        "STRESSBED_NOTIFY_* variables, never the URL)",
    )


# -- argparse value types -------------------------------------------------------------------


def whole(what: str, positive: str) -> Callable[[str], int]:
    """An argparse type: a whole number >= 1 (``1,000`` and ``1_000`` allowed)."""

    def parse(text: str) -> int:
        try:
            value = int(text.replace(",", "").replace("_", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"got {text!r}; expected a whole number of {what}"
            ) from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"got {text!r}; expected {positive}")
        return value

    return parse


rate = whole("iterations per second", "a positive rate")
count = whole("agents", "a positive number of agents")


def percent(text: str) -> float:
    value = float(text.strip().rstrip("%"))
    if not 0 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"got {text!r}; expected a percentage 0..1000")
    return value


def share(text: str) -> float:
    return percent(text) / 100
