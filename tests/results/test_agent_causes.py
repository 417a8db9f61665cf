"""What limits a population at the boundary, from failing probes and stack timelines built to
show each cause: the target's own connection limit (from its metrics, or the client's
handshake failures alone), open files of a replica or of the balancer, and the stack's own
causes (OOM kills, CPU, memory) before or after them."""

from __future__ import annotations

from typing import Any

from stressbed.results.causes import binding_cause
from stressbed.results.probe import Probe, ProbeSetup

LIMITS = {"cpu_m": 1000.0, "memory_mib": 256.0}
T0 = 1_000_000.0
REFUSED = 'agent_channel_refused{reason="limit"} /s'


def probe(**figures: Any) -> Probe:
    found = Probe(ProbeSetup(3, 400, 1, 10.0, 2.0, 2), "failed", started_at=T0)
    found.figures = {
        "agents": 400,
        "join_s": 1.0,
        "connected_share": 0.75,
        "peak_connected": 300,
        "connect_failures_by_reason": {"handshake": 457},
        "pods": {"agent-0": {"cpu_m": 40.0, "memory_mib": 35.0, "open_files": 317.0,
                             "nofile_limit": 20000.0}},
        "p50_ms": 50.0,  # a rate's saturation would read this: never for a population
        **figures,
    }  # fmt: skip
    return found


def cause(failed: Probe, **kw: Any) -> dict[str, Any] | None:
    return binding_cause(failed, None, limits=LIMITS, population=True, **kw)


def test_the_target_s_connection_limit_from_its_own_metrics():
    target = {
        # Keyed by the second each interval began: the one before the release counts too.
        REFUSED: [[T0 - 1, 127.0], [T0, 111.0], [T0 + 5, 229.0], [T0 + 60, 1000.0]],
        "agent_channel_connected": [[T0, 0.0], [T0 + 1, 300.0], [T0 + 8, 300.0]],
    }
    found = cause(probe(), target=target)
    assert found is not None
    assert found["kind"] == "connection-limit"
    assert found["message"] == (
        "the target's own connection limit: it refused 467 channel upgrades past it (HTTP "
        '503, agent_channel_refused{reason="limit"}) with 300 channels open at most '
        "(agent_channel_connected); k6 counted 457 connect failures 'handshake' (an answer "
        "other than 101)"
    )
    assert found["evidence"]["refused_at_limit"] == 467.0
    assert found["also"] == []


def test_handshake_failures_alone_name_the_refusal_warily():
    found = cause(probe(), target={})
    assert found is not None
    assert found["kind"] == "connection-limit"
    assert found["message"].startswith(
        "the target refused channel upgrades: 457 of 457 connect failures were 'handshake'"
    )
    # A few handshakes among many resets say nothing of a limit.
    found = cause(probe(connect_failures_by_reason={"handshake": 3, "reset": 400}), target={})
    assert found is not None
    assert found["kind"] == "none"


def test_a_replica_out_of_open_files():
    pods = {"agent-0": {"cpu_m": 300.0, "open_files": 19_990.0, "nofile_limit": 20_000.0}}
    failures = {"reset": 800, "refused": 120}
    found = cause(probe(pods=pods, connect_failures_by_reason=failures), target={})
    assert found is not None
    assert found["kind"] == "open-files"
    assert found["message"] == (
        "file descriptors: replica agent-0 held 19,990 of its 20,000 open files "
        "(RLIMIT_NOFILE); past it accept() fails with EMFILE and connections are refused or "
        "reset (k6's connect failures: reset 800, refused 120)"
    )


def test_the_balancer_out_of_open_files():
    balancer = {"open_files": 19_500.0, "nofile_limit": 20_000.0}
    found = cause(probe(balancer=balancer, connect_failures_by_reason={"reset": 5}), target={})
    assert found is not None
    assert found["kind"] == "open-files"
    assert "the load balancer held 19,500 of its 20,000 open files" in found["message"]


def test_an_oom_kill_comes_before_the_connection_limit():
    events = [{"t": T0 + 4, "event": "oom-killed", "replica": "agent-0"}]
    found = cause(probe(), events=events, target={REFUSED: [[T0, 50.0]]})
    assert found is not None
    assert found["kind"] == "oom-killed"
    assert [a["kind"] for a in found["also"]] == ["connection-limit"]


def test_replicas_at_their_cpu_or_memory_limit():
    hot = {"agent-0": {"cpu_m": 990.0, "memory_mib": 100.0}}
    found = cause(probe(pods=hot, connect_failures_by_reason={"timeout": 50}), target={})
    assert found is not None
    assert found["kind"] == "cpu-limit"
    full = {"agent-0": {"cpu_m": 100.0, "memory_mib": 250.0}}
    found = cause(probe(pods=full, connect_failures_by_reason={"timeout": 50}), target={})
    assert found is not None
    assert found["kind"] == "memory-limit"
