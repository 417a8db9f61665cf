"""``stressbed collect``: a fleet started by hand in a cluster (``pulumi up`` and the program's
``startCommand``) read from its pods' logs, merged and judged as a run is. The Kubernetes
backend's code is imported only when it runs (its extra may be missing)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..results.table import table
from .options import history_options
from .recording import Recorder, build_of, location_of

__all__ = ["collect_commands"]


def collect_commands(commands: Any) -> None:
    """Add ``collect`` to the command line's subcommands."""
    command = commands.add_parser(
        "collect",
        help="merge and judge a fleet started by hand in a cluster (pulumi up + startCommand)",
        description="Read each runner's result from its pod's log, merge them and judge the "
        "scenario's thresholds, as a run does; needs the kubernetes extra.",
    )
    _collect_arguments(command)
    command.set_defaults(handler=cmd_collect)


def _collect_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--namespace", required=True, help="the namespace the Pulumi program deployed to"
    )
    command.add_argument("--job", default="stressbed-runners", help="the runners' Job")
    command.add_argument(
        "--scenario", required=True, metavar="NAME|PATH", help="the scenario the fleet ran"
    )
    command.add_argument("--kubeconfig", type=Path, metavar="FILE", help="the cluster's")
    command.add_argument("--context", metavar="NAME", help="the kubeconfig's context")
    # What the Pulumi program ran (its collectCommand says them): the fingerprint's.
    command.add_argument(
        "--duration", metavar="D", help="the duration the fleet ran the scenario for, if scaled"
    )
    command.add_argument(
        "--profile", metavar="NAME", help="the profile whose stack the program deployed"
    )
    command.add_argument(
        "--profiles", type=Path, metavar="FILE", help="the profile file the program read"
    )
    command.add_argument(
        "--results",
        type=Path,
        default=Path("results"),
        metavar="DIR",
        help="where the run directory is written (default: results)",
    )
    history_options(command)


def cmd_collect(args: argparse.Namespace) -> int:
    # The Kubernetes backend's code only when this command runs (its extra may be missing).
    from ..backends.kubernetes import KubernetesOptions, kubernetes_api, preflight  # noqa: PLC0415
    from .collect import collect, collected_scenario, declared_stack  # noqa: PLC0415

    # A bad name, duration or profile fails before the cluster is asked anything.
    collected_scenario(args.scenario, args.duration)
    stack = declared_stack(args.scenario, args.profile, args.profiles)
    access = preflight(
        KubernetesOptions(kubeconfig=args.kubeconfig, context=args.context), engine=False
    )
    report = collect(
        args.namespace,
        args.job,
        args.scenario,
        args.results,
        api=kubernetes_api(access),
        duration=args.duration,
        stack=stack,
        recorder=Recorder(location_of(args.history, args.results), build_of(args.build)),
    )
    print(table(report))
    print(f"results: {args.results / report.run_id}")
    if report.report_error is not None:
        print(f"stressbed: report.html could not be drawn: {report.report_error}", file=sys.stderr)
    return int(report.exit_code)
