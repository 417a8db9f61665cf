"""The ``stressbed`` command line: small stage functions threaded one into the next.

    settings (profile file, environment, options) -> plan -> execute -> table

Every :class:`~stressbed.errors.StressbedError` is turned here, and only here, into one line
on stderr and its exit code (2 for bad input). A traceback means a bug in stressbed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from .. import __version__
from ..backends.base import Capability
from ..errors import ConfigError, StressbedError
from ..fleet.process import interruptible
from ..results.compare import Tolerances
from ..results.merge import merge
from ..results.table import capacity_table, comparison_table, table
from ..results.timeline import timeline
from ..scenario import catalog
from ..scenario.render import render
from .capacity import CapacityOptions, plan_capacity, run_capacity
from .collect_cli import collect_commands
from .compare import exit_code_for, load_baseline, versus
from .engine import engine_commands
from .execute import execute
from .export_cli import export_commands
from .history_cli import history_commands
from .live import LiveLine
from .live_outputs import LiveOutputs
from .model_cli import model_commands
from .options import count, percent, rate, share
from .options import live_options as _live_options
from .options import target_options as _target_options
from .plan import RunOptions, plan, redact
from .rundir import read_run
from .settings import BACKEND_KEYS, RUN_KEYS, resolve, stack_of

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stressbed",
        description="Stress-test agent services: Python scenarios rendered to k6.",
    )
    parser.add_argument("--version", action="version", version=f"stressbed {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    render_cmd = commands.add_parser(
        "render",
        help="write a scenario's k6 bundle (script.js, config.json, runtime)",
        description="Render a scenario to DIR/script.js; run it with "
        "`TARGET_URL=http://127.0.0.1:8080 k6 run DIR/script.js`.",
    )
    render_cmd.add_argument(
        "--scenario",
        required=True,
        metavar="NAME|PATH",
        help="a scenario name (see `stressbed scenarios`) or a path to a .py file",
    )
    render_cmd.add_argument(
        "-o", "--output", required=True, type=Path, metavar="DIR", help="the bundle's directory"
    )
    render_cmd.set_defaults(handler=cmd_render)

    run_cmd = commands.add_parser(
        "run",
        help="provision the stack, run a scenario with a fleet of k6 runners, judge it",
        description="Provision the stack (the reference agent) on --backend, or use an "
        "existing service with --target-url; run the scenario with N k6 runners released "
        "together; judge thresholds on the merged fleet data; tear everything down. Exit "
        "codes: 0 pass, 1 thresholds failed, 2 bad input, 3 infrastructure failure, "
        "130 interrupted.",
    )
    _target_options(run_cmd)
    run_cmd.add_argument(
        "--duration", metavar="D", help="scale the scenario's timeline to last D (e.g. 30s)"
    )
    run_cmd.add_argument(
        "--baseline",
        type=Path,
        metavar="RUN_DIR",
        help="judge this run against an earlier run of the same thing (exit 1 if it regressed)",
    )
    run_cmd.add_argument(
        "--gate-history",
        type=int,
        metavar="N",
        help="exit 1 when this run begins a regression among its last N like-for-like runs "
        "in the history, or leaves the range they make likely (stressbed trend --gate's rule)",
    )
    _live_options(run_cmd)
    _comparing(run_cmd)
    run_cmd.set_defaults(handler=cmd_run)

    capacity_cmd = commands.add_parser(
        "capacity",
        help="find the highest rate (or, for a population, the most agents) the stack "
        "sustains within its SLOs, and what limits it",
        description="Provision the stack once and probe it at constant arrival rates (a "
        "population: at agent counts, --min-agents/--max-agents) "
        "(exponential bracketing, then bisection, then the boundary confirmed), each probe "
        "judged on its own steady window; the load generator is checked before the target "
        "is blamed, and the limiting cause named from the stack's timeline. Writes "
        "capacity.json and report.html. Exit codes: 0 answered, 1 no rate held (or under "
        "--require), 2 bad input, 3 infrastructure failure (the load generator's limit "
        "included), 130 interrupted.",
    )
    _target_options(capacity_cmd)
    _live_options(capacity_cmd, notify=False)
    capacity_cmd.add_argument(
        "--slo",
        action="append",
        default=[],
        metavar="SLO",
        help="an SLO each probe must hold, e.g. 'p(95)<300ms', 'error_rate<1%%' (repeatable; "
        "default: the scenario's Capacity, else its latency and error-rate thresholds)",
    )
    capacity_cmd.add_argument("--min-rate", type=rate, metavar="R", help="first rate (10)")
    capacity_cmd.add_argument(
        "--max-rate", type=rate, metavar="R", help="highest rate offered (10000)"
    )
    capacity_cmd.add_argument(
        "--min-agents",
        type=count,
        metavar="N",
        help="a population's search: the fewest agents (a tenth of its declared count)",
    )
    capacity_cmd.add_argument(
        "--max-agents",
        type=count,
        metavar="N",
        help="a population's search: the most agents (ten times its declared count)",
    )
    capacity_cmd.add_argument("--step-duration", metavar="D", help="each probe's length (30s)")
    capacity_cmd.add_argument(
        "--warmup",
        metavar="D",
        help="the start of each probe not judged (a third of the step, at least 5s)",
    )
    capacity_cmd.add_argument(
        "--budget", metavar="D", help="the whole search's time, teardown included (10m)"
    )
    capacity_cmd.add_argument(
        "--cooldown",
        metavar="D",
        help="the longest wait between probes for replicas and in-flight to settle (60s)",
    )
    capacity_cmd.add_argument(
        "--resolution",
        type=share,
        metavar="PCT",
        help="bisect until the bracket is within PCT of its lower rate (5%%)",
    )
    capacity_cmd.add_argument(
        "--workload", metavar="NAME", help="the workload whose flow is offered (if several)"
    )
    capacity_cmd.add_argument(
        "--no-confirm",
        dest="confirm",
        action="store_false",
        default=None,
        help="do not probe the rates either side of the boundary a second time",
    )
    capacity_cmd.add_argument(
        "--require",
        type=rate,
        metavar="R",
        help="exit 1 unless the stack sustains at least R (a CI gate)",
    )
    capacity_cmd.add_argument(
        "--scale-out",
        metavar="FROM:TO",
        help="instead of searching, time the autoscaler: hold FROM for --step-duration, step "
        "to TO, hold it (the stack needs an autoscaler)",
    )
    capacity_cmd.add_argument(
        "--scale-out-for",
        metavar="D",
        help="how long the scale-out holds TO (60s): with --scale-out, or after a search on "
        "a stack with an autoscaler",
    )
    capacity_cmd.add_argument(
        "--no-scale-out",
        dest="then_scale_out",
        action="store_false",
        default=True,
        help="on a stack with an autoscaler, search only: no scale-out from the lowest rate "
        "that held to the highest after it",
    )
    capacity_cmd.add_argument(
        "--per-replica",
        action="store_true",
        default=False,
        help="search twice, at one replica and at the autoscaler's max_replicas (autoscaler "
        "off), and compare the second with N times the first",
    )
    capacity_cmd.set_defaults(handler=cmd_capacity)

    collect_commands(commands)

    compare_cmd = commands.add_parser(
        "compare",
        help="is CANDIDATE worse than BASE, or is that noise? (two run directories)",
        description="Compare two runs of the same thing metric by metric, with 95%% intervals "
        "from each run's own variation. Exit 0 unchanged or improved (inconclusive too, "
        "unless --strict), 1 regressed, 2 not comparable.",
    )
    compare_cmd.add_argument("base", type=Path, metavar="BASE", help="the run to compare with")
    compare_cmd.add_argument(
        "candidate", type=Path, metavar="CANDIDATE", help="the run judged against BASE"
    )
    _comparing(compare_cmd)
    compare_cmd.add_argument(
        "--json", type=Path, metavar="FILE", help="also write the comparison as JSON"
    )
    compare_cmd.set_defaults(handler=cmd_compare)

    report_cmd = commands.add_parser(
        "report",
        help="draw a run's report.html again from its directory",
        description="Rebuild RUN_DIR/report.html from RUN_DIR/summary.json and the runners' "
        "results (after an upgrade, or for a run whose report could not be drawn).",
    )
    report_cmd.add_argument(
        "run_dir", type=Path, metavar="RUN_DIR", help="a run directory holding summary.json"
    )
    report_cmd.set_defaults(handler=cmd_report)

    commands.add_parser("scenarios", help="list the available scenarios").set_defaults(
        handler=cmd_scenarios
    )
    for more in (engine_commands, model_commands, history_commands, export_commands):
        more(commands)
    return parser


def cmd_render(args: argparse.Namespace) -> int:
    scenario = catalog.load(args.scenario)
    bundle = render(scenario, args.output)
    print(f"rendered scenario {scenario.name!r} to {bundle.script}")
    for item in scenario.faults:
        print(f"fault {item.name}: {item.label} (applied by stressbed run, not by k6)")
    if scenario.writes is not None:
        print(
            f"writes: acknowledged {scenario.writes.request!r} counted per writer "
            "(stressbed_acked_writes); read back by stressbed run from "
            f"{scenario.writes.read_back}"
        )
    print(f"run it: TARGET_URL=http://127.0.0.1:8080 k6 run {bundle.script}")
    return 0


def _run_options(args: argparse.Namespace) -> RunOptions:
    """The run's options from the command line and the layers under it."""
    given = {key: getattr(args, key, None) for key in RUN_KEYS}
    settings = resolve(given, profile=args.profile, file=args.profiles)
    values = settings.values
    return RunOptions(
        scenario=values["scenario"],
        target_url=values["target_url"],
        target_metrics_url=values["target_metrics_url"],
        backend=values["backend"],
        # What some layer set, for the backend it belongs to (the plan refuses a command-line
        # option that the chosen backend does not take).
        backend_options={
            key: values[key] for key in BACKEND_KEYS if settings.sources[key] != "default"
        },
        runners=values["runners"],
        duration=values["duration"],
        results=Path(values["results"]),
        keep_raw=values["keep_raw"],
        history=values["history"],
        build=values["build"],
        stack=stack_of(
            settings, catalog.load_stack(values["scenario"]) if values["scenario"] else None
        ),
        thresholds=settings.thresholds,
        sources=settings.sources,
        profile=settings.profile,
    )


def cmd_run(args: argparse.Namespace) -> int:
    options = replace(
        _run_options(args),
        baseline=args.baseline,
        allow_different=args.allow_different,
        allow_partial=args.allow_partial,
        strict=args.strict,
        tolerances=_tolerances(args),
        compared=tuple(args.metric),
        gate_history=args.gate_history,
    )
    the_plan = plan(options)
    live = LiveLine(sys.stderr)
    backend = the_plan.backend
    where = (
        redact(the_plan.target_url)
        if the_plan.target_url is not None
        else f"a {backend.name} stack ({the_plan.stack.target.name if the_plan.stack else ''})"
    )
    print(
        f"stressbed: running {the_plan.scenario.name!r} with {the_plan.runners} runner(s) "
        f"against {where}",
        file=sys.stderr,
    )
    if Capability.LIVE_PROGRESS not in backend.capabilities:
        print(
            f"stressbed: the {backend.name} backend's runners report when they finish: "
            "no live line until then",
            file=sys.stderr,
        )
    outputs = LiveOutputs(
        args.live, off=args.no_live, remote_write=args.remote_write, notify=args.notify
    )
    try:
        with interruptible():
            report = execute(
                the_plan,
                on_progress=live.update,
                on_event=live.stack_event,
                live=outputs.series,
                page=outputs.page,
            )
        live.close()
        print(table(report))
        run_dir = the_plan.results / report.run_id
        _say_where(run_dir, report.report_error)
        outputs.finish(report, str(run_dir))  # the final counts and the end, told
    finally:
        outputs.close()
    return report.exit_code


def cmd_capacity(args: argparse.Namespace) -> int:
    options = CapacityOptions(
        run=_run_options(args),
        slos=tuple(args.slo),
        min_rate=args.min_rate,
        max_rate=args.max_rate,
        min_agents=args.min_agents,
        max_agents=args.max_agents,
        step_duration=args.step_duration,
        warmup=args.warmup,
        budget=args.budget,
        cooldown=args.cooldown,
        resolution=args.resolution,
        workload=args.workload,
        confirm=args.confirm,
        require=args.require,
        scale_out=args.scale_out,
        scale_out_for=args.scale_out_for,
        per_replica=args.per_replica,
        then_scale_out=args.then_scale_out,
    )
    the_plan = plan_capacity(options)
    base = the_plan.plan
    where = (
        redact(base.target_url)
        if base.target_url is not None
        else f"a {base.backend.name} stack ({base.stack.target.name if base.stack else ''})"
    )
    cap = the_plan.capacity
    if the_plan.scale_out is not None:
        low, high = the_plan.scale_out
        what = f"scale-out {low:,} -> {high:,} {the_plan.unit}"
    else:
        low, high = the_plan.bounds
        what = f"{low:,}..{high:,} {the_plan.unit}, steps of {cap.step_s:g}s"
        if the_plan.population is not None:
            what += f" after a {the_plan.population.join_s:g}s join"
        if the_plan.then_scale_out:
            what += f", then a scale-out held {the_plan.scale_out_for_s:g}s"
    print(
        f"stressbed: capacity of {base.scenario.name!r} ({the_plan.workload.name}) against "
        f"{where}: {what}, budget {cap.budget_s:g}s, {base.runners} runner(s)",
        file=sys.stderr,
    )
    if the_plan.converted_from is not None:
        print(
            f"stressbed: note: workload {the_plan.workload.name!r} ({the_plan.converted_from}) "
            "is offered as an open model: a closed one hides the ceiling",
            file=sys.stderr,
        )
    for note in the_plan.notes:
        print(f"stressbed: note: {note}", file=sys.stderr)
    live = LiveLine(sys.stderr)
    per_replica = the_plan.per_replica is not None
    if per_replica and (args.live or args.remote_write):
        print("stressbed: note: --per-replica searches are not served live", file=sys.stderr)
    outputs = LiveOutputs(
        args.live if not per_replica else None,
        off=args.no_live or per_replica,
        remote_write=args.remote_write if not per_replica else None,
    )
    try:
        with interruptible():
            report = run_capacity(
                the_plan,
                on_line=live.say,
                on_progress=live.update,
                on_event=live.stack_event,
                live=outputs.series,
                page=outputs.page,
            )
        live.close()
        print(capacity_table(report.document))
        _say_where(report.path.parent, report.report_error)
        outputs.finish()  # the final counts, pushed and to whoever scrapes
    finally:
        outputs.close()
    return report.exit_code


def _say_where(results: Path, report_error: str | None) -> None:
    """Where a command's results are, and its report.html (or why it could not be drawn)."""
    print(f"results: {results}")
    if report_error is None:
        print(f"report: {results / 'report.html'}")
    else:
        print(f"stressbed: report.html could not be drawn: {report_error}", file=sys.stderr)


def _comparing(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--allow-different",
        action="store_true",
        help="compare runs whose scenario, duration, runners, backend or stack differ",
    )
    command.add_argument(
        "--allow-partial",
        action="store_true",
        help="compare a run with a runner's result missing, or whose verdict was error",
    )
    command.add_argument(
        "--strict", action="store_true", help="an inconclusive comparison fails (exit 1) too"
    )
    command.add_argument(
        "--latency-tolerance",
        type=percent,
        default=10.0,
        metavar="PCT",
        help="latency change within which it is unchanged (default 10%%)",
    )
    command.add_argument(
        "--throughput-tolerance",
        type=percent,
        default=10.0,
        metavar="PCT",
        help="requests/s change within which it is unchanged (default 10%%)",
    )
    command.add_argument(
        "--metric",
        action="append",
        default=[],
        metavar="PATTERN",
        help="compare only the metrics matching PATTERN (shell-style, repeatable), e.g. "
        "'http_req_duration p(95)' or 'http_req_duration{name:*}'",
    )
    command.add_argument(
        "--error-tolerance",
        type=percent,
        default=0.5,
        metavar="PP",
        help="error-rate change in percentage points within which it is unchanged (0.5)",
    )


def _tolerances(args: argparse.Namespace) -> Tolerances:
    return Tolerances(
        latency=args.latency_tolerance / 100,
        throughput=args.throughput_tolerance / 100,
        error_rate_pp=args.error_tolerance,
    )


def cmd_compare(args: argparse.Namespace) -> int:
    base = load_baseline(args.base, allow_partial=args.allow_partial, option="BASE")
    candidate = load_baseline(args.candidate, allow_partial=args.allow_partial, option="CANDIDATE")
    found = versus(
        base,
        candidate,
        tolerances=_tolerances(args),
        allow_different=args.allow_different,
        metrics=args.metric,
    )
    print(comparison_table(found, str(base.path), str(candidate.path)))
    if args.json is not None:
        document = {"base": str(base.path), "candidate": str(candidate.path), **found.to_dict()}
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return exit_code_for(found, strict=args.strict)


def cmd_report(args: argparse.Namespace) -> int:
    from ..results.html import write_html  # noqa: PLC0415 - Bokeh only for this command

    run = read_run(args.run_dir)
    fleet = merge(run.runners)
    line = timeline(
        fleet.windows, run.runners, run.summary.get("stack"), run.summary.get("events") or []
    )
    baseline = None
    where = (run.summary.get("comparison") or {}).get("baseline")
    if where:  # drawn again with its baseline, where that run is still there
        try:
            found = read_run(Path(where))
            windows = merge(found.runners).windows
            baseline = timeline(windows, found.runners, step=line.step)
        except ConfigError as exc:
            print(f"stressbed: note: the baseline is not drawn: {exc}", file=sys.stderr)
    path = run.path / "report.html"
    write_html(path, run.summary, line, baseline)
    print(f"report: {path}")
    return 0


def cmd_scenarios(args: argparse.Namespace) -> int:
    entries = catalog.available()
    if not entries:
        print("no scenarios found (is the `scenarios` package installed?)")
        return 0
    width = max(len(e.name) for e in entries)
    for entry in entries:
        print(f"{entry.name:<{width}}  {entry.description}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except StressbedError as exc:
        print(f"stressbed: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("stressbed: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
