"""Restarts on purpose for real on the local backend, against tests/fake_target.py (it stops
listening and exits 0 on SIGTERM): a ``restart`` stops every replica in one tick of the
controller and starts each again at once, with no crash back-off; a ``rolling_restart`` never
has more than ``max_unavailable`` replicas not ready, restarts each exactly once and ends when
the last replacement is ready; a replacement that never gets ready stops it."""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from stressbed import fault
from stressbed.backends.local import LocalStack
from stressbed.backends.local._rollout import Rollout
from stressbed.backends.local.stack import TICK_S
from stressbed.scenario.faults import check_faults
from stressbed.stack.lifecycle import Lifecycle
from stressbed.stack.probes import ready_within_s
from stressbed.stack.spec import Probe

from .test_stack import FAST, Control, alive, fake_spec, stack_pids, wait_for

#: Events after which a replica is not ready (until its next ``ready``).
NOT_READY = ("terminating", "unready", "crashed", "stopped", "killed", "oom-killed", "back-off")


@pytest.fixture
def provisioned(tmp_path: Path, control: Control) -> Iterator[Callable[..., LocalStack]]:
    made: list[LocalStack] = []

    def make(**changes: Any) -> LocalStack:
        stack = LocalStack(fake_spec(control.path, **changes), tmp_path / f"s{len(made)}", FAST)
        made.append(stack)
        stack.provision()
        return stack

    yield make
    for stack in made:
        stack.teardown()
        assert not alive(stack_pids(stack)), "a process outlived teardown"


def schedule(stack: LocalStack, item: Any) -> None:
    (named,) = check_faults([item], 600_000)
    stack.schedule_faults([named], time.time())


def of(stack: LocalStack, kind: str, **fields: Any) -> list[dict[str, Any]]:
    return [
        e
        for e in stack.events
        if e["event"] == kind and all(e.get(k) == v for k, v in fields.items())
    ]


def after(stack: LocalStack, first: dict[str, Any]) -> list[dict[str, Any]]:
    events = stack.events
    return events[events.index(first) :]


def replaced_and_ready(stack: LocalStack, names: list[str]) -> bool:
    """Each of ``names`` restarted on purpose and ready again since."""
    for name in names:
        restarted = of(stack, "restarted", replica=name, reason="restart")
        if not restarted or not [
            e for e in after(stack, restarted[-1]) if e["event"] == "ready" and e["replica"] == name
        ]:
            return False
    return True


def test_a_restart_stops_every_replica_in_one_tick_and_starts_each_again_at_once(provisioned):
    stack = provisioned(replicas=3)
    names = sorted(r.name for r in stack.replicas)
    pids = {r.name: r.process.pid for r in stack.replicas}
    schedule(stack, fault.restart(at="0s"))
    applied = wait_for(lambda: of(stack, "fault-applied"), message="the restart")[0]
    wait_for(lambda: replaced_and_ready(stack, names), message="every replica ready again")

    assert applied["replicas"] == names
    assert applied["how"] == (
        "SIGTERM of the process group, SIGKILL after the grace period, started again at once"
    )
    # SIGTERM to all of them in one tick: their events come together, right before it said so.
    events = stack.events
    at = events.index(applied)
    told = events[at - len(names) : at]
    assert [(e["event"], e["reason"]) for e in told] == [("terminating", "restart")] * 3
    assert sorted(e["replica"] for e in told) == names
    assert max(e["t"] for e in told) - min(e["t"] for e in told) < TICK_S
    for name in names:
        mine = [e for e in after(stack, applied) if e.get("replica") == name]
        kinds = [e["event"] for e in mine]
        # It drained and exited by itself on SIGTERM; started again with no back-off.
        stopped = mine[kinds.index("stopped")]
        assert (stopped["reason"], stopped["after"]) == ("exited with code 0", "restart")
        restarted = mine[kinds.index("restarted")]
        assert (restarted["reason"], restarted["restarts"]) == ("restart", 1)
        assert kinds.index("stopped") + 1 == kinds.index("restarted")
        assert "back-off" not in kinds
        assert "killed" not in kinds
        assert "ready" in kinds[kinds.index("restarted") :]
    assert {r.name: r.process.pid for r in stack.replicas}.keys() == pids.keys()
    assert all(r.process.pid != pids[r.name] for r in stack.replicas)
    figures = stack.report()["replicas"]
    assert figures["restarts"] == dict.fromkeys(names, 1)
    assert figures["restarted_on_purpose"] == dict.fromkeys(names, 1)  # not crashes
    assert of(stack, "fault-ended") == []  # an instant


def test_a_replica_deaf_to_sigterm_is_killed_after_the_grace_and_still_started_at_once(
    provisioned,
):
    stack = provisioned(replicas=2, termination_grace_period_s=1, env={"FAKE_IGNORE_TERM": "1"})
    running = sorted(stack.replicas, key=lambda r: r.name)
    (chosen,) = random.Random(7).sample(running, 1)
    schedule(stack, fault.restart(at="0s", replicas=1, seed=7))
    wait_for(lambda: replaced_and_ready(stack, [chosen.name]), message="the replica back")
    (applied,) = of(stack, "fault-applied")
    assert applied["replicas"] == [chosen.name]  # the seed's choice
    kinds = [e["event"] for e in after(stack, applied) if e.get("replica") == chosen.name]
    assert kinds[: kinds.index("restarted") + 1] == ["killed", "stopped", "restarted"]
    (killed,) = of(stack, "killed", replica=chosen.name)
    assert killed["reason"] == "restart: still running after the grace period"
    other = next(r for r in running if r is not chosen)
    assert of(stack, "terminating", replica=other.name) == []


def _most_not_ready(stack: LocalStack, since: dict[str, Any]) -> int:
    """The most replicas not ready at once from ``since`` on, replayed from the events."""
    down: set[str] = set()
    most = 0
    for event in after(stack, since):
        if event["event"] in NOT_READY:
            down.add(event["replica"])
        elif event["event"] == "ready":
            down.discard(event["replica"])
        most = max(most, len(down))
    return most


@pytest.mark.parametrize(("replicas", "max_unavailable"), [(3, 1), (4, 2)])
def test_a_rolling_restart_keeps_to_its_budget_and_restarts_each_replica_once(
    provisioned, replicas, max_unavailable
):
    stack = provisioned(replicas=replicas)
    names = sorted(r.name for r in stack.replicas)
    first = stack.events[-1]
    assert all(r.life.ready for r in stack.replicas)
    schedule(stack, fault.rolling_restart(at="0s", max_unavailable=max_unavailable, seed=5))
    ended = wait_for(lambda: of(stack, "fault-ended"), 60, "the rollout's end")[0]
    (applied,) = of(stack, "fault-applied")

    order = list(names)
    random.Random(5).shuffle(order)
    assert applied["replicas"] == order  # the seed's order
    assert applied["first"] == order[:max_unavailable]
    assert ended["reason"] == "every replica restarted"
    assert sorted(ended["restarted"]) == names
    assert ended["not_restarted"] == []
    # Never more down than it may have, and it used what it may.
    assert _most_not_ready(stack, first) == max_unavailable
    for name in names:
        assert len(of(stack, "terminating", replica=name, reason="restart")) == 1
        assert len(of(stack, "restarted", replica=name, reason="restart")) == 1
    assert of(stack, "back-off") == []
    # It ended with the last replacement ready, not before.
    last_ready = max(
        e["t"] for e in after(stack, applied) if e["event"] == "ready" and e["t"] <= ended["t"]
    )
    assert stack.events.index(ended) > max(
        stack.events.index(e) for e in of(stack, "ready") if e["t"] == last_ready
    )
    if max_unavailable == 1:
        # Each next replica was stopped only once its predecessor's replacement was ready.
        events = stack.events
        stops = [events.index(e) for e in of(stack, "terminating", reason="restart")]
        for before, then in itertools.pairwise(stops):
            name = events[before]["replica"]
            between = events[before:then]
            assert any(e["event"] == "ready" and e["replica"] == name for e in between), name


def test_a_replacement_that_never_gets_ready_stops_the_rollout(provisioned, control):
    stack = provisioned(
        replicas=2,
        termination_grace_period_s=1,
        startup_probe=Probe("http", "/healthz", period_s=0.2, failure_threshold=5),
    )
    pids = {r.name: r.process.pid for r in stack.replicas}
    # The replicas there now stay ready; any new process (a new port) never is.
    for replica in stack.replicas:
        control.set(replica.port, ready=True)
    control.set("*", ready=False)
    deadline = ready_within_s(stack.spec)
    assert deadline == pytest.approx(1 + 0.2 * 5 + 0.2 + 1.0)
    schedule(stack, fault.rolling_restart(at="0s", seed=1))
    ended = wait_for(lambda: of(stack, "fault-ended"), 30, "the rollout stopped")[0]
    (applied,) = of(stack, "fault-applied")
    first = applied["first"][0]
    assert ended["reason"] == (
        f"stopped: {first}'s replacement was not ready within {deadline:g} s"
    )
    assert ended["restarted"] == []
    assert sorted(ended["not_restarted"]) == sorted(pids)
    assert ended["t"] - applied["t"] >= deadline
    # Nothing more is stopped: the other replica keeps its process, a few ticks on too.
    samples = len(stack.series)
    wait_for(lambda: len(stack.series) >= samples + 2, message="two more samples")
    assert [e["replica"] for e in of(stack, "terminating")] == [first]
    other = next(r for r in stack.replicas if r.name != first)
    assert other.process.pid == pids[other.name]
    assert other.life.ready


def test_a_rolling_restart_under_way_at_teardown_ends_there_and_leaves_nothing(
    provisioned, control
):
    stack = provisioned(replicas=2)
    for replica in stack.replicas:
        control.set(replica.port, ready=True)
    control.set("*", ready=False)  # the replacement never gets ready: the rollout waits
    schedule(stack, fault.rolling_restart(at="0s"))
    (first,) = wait_for(lambda: of(stack, "fault-applied"), message="the rollout")[0]["first"]
    wait_for(lambda: of(stack, "restarted", replica=first), message="its replacement started")
    stack.teardown()
    (ended,) = of(stack, "fault-ended")
    assert (ended["reason"], ended["restarted"]) == ("teardown", [])
    events = stack.events
    assert events.index(ended) < events.index(of(stack, "stack-deleted")[0])
    assert not alive(stack_pids(stack))


def test_a_restart_with_more_replicas_than_run_is_skipped_saying_why(provisioned):
    stack = provisioned(replicas=1)
    schedule(stack, replace(fault.restart(at="0s", replicas=1), replicas=2))
    skipped = wait_for(lambda: of(stack, "fault-skipped"), message="the skip")[0]
    assert skipped["reason"] == "1 replica(s) running, the fault needs 2"
    assert of(stack, "terminating") == []


# -- the rollout's rule, on replicas without processes ---------------------------------


@dataclass
class Replica:
    """A replica as the rollout sees one: its lifecycle, and a process that is only a token."""

    name: str
    life: Lifecycle
    process: Any = field(default_factory=object)


def replicas(*phases: str) -> list[Replica]:
    """One replica per phase: "ready", "unready" (running, not ready) or "back-off"."""
    made = []
    for i, phase in enumerate(phases):
        life = Lifecycle(f"r-{i}", i)
        if phase != "back-off":
            life.start(0.0, first=True)
        if phase == "ready":
            life.became_ready(0.0)
        made.append(Replica(life.name, life))
    return made


def stopper(stopped: list[str]) -> Callable[[Replica], bool]:
    def stop(replica: Replica) -> bool:
        stopped.append(replica.name)
        return replica.life.terminate("restart", 0.0, 1.0, deliberate=True)

    return stop


def rollout(of: list[Replica], max_unavailable: int, deadline_s: float = 60.0) -> Rollout:
    item = fault.rolling_restart(at="0s", max_unavailable=max_unavailable)
    made = Rollout.of(item, of, deadline_s)
    made.pending.sort()  # the seed's order aside: r-0 first
    return made


def back(replica: Replica) -> None:
    """Its replacement running and ready."""
    replica.life.ended(0.0)
    replica.life.start(0.0, first=False)
    replica.life.became_ready(0.0)
    replica.process = object()


@pytest.mark.parametrize(
    ("phases", "max_unavailable", "first"),
    [
        (("ready", "ready", "ready"), 1, ["r-0"]),
        (("ready", "ready", "ready"), 2, ["r-0", "r-1"]),
        # One not ready goes first, and costs nothing more: it is down already.
        (("ready", "ready", "unready"), 1, ["r-2"]),
        (("ready", "unready", "ready"), 2, ["r-1", "r-0"]),
        # One in back-off cannot be stopped, and counts as down: nothing may go.
        (("ready", "back-off", "ready"), 1, []),
        (("ready", "back-off", "ready", "ready"), 2, ["r-0"]),
    ],
)
def test_the_rollout_stops_what_its_budget_allows_not_ready_ones_first(
    phases, max_unavailable, first
):
    made = replicas(*phases)
    stopped: list[str] = []
    plan = rollout(made, max_unavailable)
    assert plan.tick(made, stopper(stopped)) == (first, "")
    assert stopped == first
    assert plan.tick(made, stopper(stopped)) == ([], "")  # nothing more while they are down


def test_the_rollout_goes_on_as_replacements_get_ready_and_is_done_with_the_last():
    made = replicas("ready", "ready", "ready")
    stopped: list[str] = []
    plan = rollout(made, 1)
    for name in ("r-0", "r-1", "r-2"):
        assert plan.tick(made, stopper(stopped)) == ([name], "")
        replica = next(r for r in made if r.name == name)
        assert plan.tick(made, stopper(stopped)) == ([], "")  # its process is still the old one
        back(replica)
    assert plan.tick(made, stopper(stopped)) == ([], "done")
    assert (plan.restarted, plan.pending, plan.in_flight) == (["r-0", "r-1", "r-2"], [], {})


def test_a_replica_down_for_another_reason_holds_the_rollout_back_until_its_deadline():
    made = replicas("ready", "ready", "ready")
    stopped: list[str] = []
    plan = rollout(made, 1, deadline_s=30)
    plan.tick(made, stopper(stopped))
    back(made[0])
    assert plan.tick(made, stopper(stopped)) == (["r-1"], "")  # r-0's replacement seen ready
    back(made[1])
    made[0].life.became_unready()  # restarted, then unready again: down, though not by it
    assert plan.tick(made, stopper(stopped)) == ([], "")
    assert (plan.restarted, stopped) == (["r-0", "r-1"], ["r-0", "r-1"])
    plan.since -= 31  # no progress for longer than its deadline
    assert plan.tick(made, stopper(stopped)) == (
        [],
        "no replica could be restarted for 30 s (1 not ready, at most 1 may be)",
    )


def test_a_replacement_late_past_its_deadline_stops_the_rollout_and_a_gone_one_is_skipped():
    made = replicas("ready", "ready", "ready")
    stopped: list[str] = []
    plan = rollout(made, 1, deadline_s=30)
    plan.tick(made, stopper(stopped))
    old, at = plan.in_flight["r-0"]
    plan.in_flight["r-0"] = (old, at - 31)
    assert plan.tick(made, stopper(stopped)) == ([], "r-0's replacement was not ready within 30 s")
    # Deleted (scaled in) while waiting: nothing to wait for, and never stopped.
    plan = rollout(made := replicas("ready", "ready"), 1)
    plan.tick(made, stopper(stopped := []))
    del made[0]
    made[0].life.delete("scale-down", 0.0, 1.0)
    assert plan.tick(made, stopper(stopped)) == ([], "done")
    assert (plan.gone, stopped) == (["r-0", "r-1"], ["r-0"])
