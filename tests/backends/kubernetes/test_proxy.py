"""The API server's pod proxy to the agent pods (their metrics, their fault hook): the control
plane's CIDRs admitted by the agent's NetworkPolicy, validated where they are given; a proxy
that does not reach a pod said once as a warning naming that option; and a fault hook whose
call fails, whatever the way, a skipped fault that says why."""

from __future__ import annotations

import time
from typing import Any

import pytest

kubernetes_validate = pytest.importorskip("kubernetes_validate")

from stressbed import fault  # noqa: E402
from stressbed.app.settings import resolve  # noqa: E402
from stressbed.backends.kubernetes import KubernetesOptions  # noqa: E402
from stressbed.backends.kubernetes._cluster import ProxyUnreachable  # noqa: E402
from stressbed.backends.kubernetes._faults import ChaosFaults, PodHook  # noqa: E402
from stressbed.backends.kubernetes._proxy import GRACE_S, ProxyCheck  # noqa: E402
from stressbed.backends.kubernetes.manifests import Cluster, agent_manifests  # noqa: E402
from stressbed.errors import ConfigError  # noqa: E402
from stressbed.scenario.faults import check_faults  # noqa: E402
from stressbed.stack.agent import reference_agent  # noqa: E402
from stressbed.stack.spec import FaultHook  # noqa: E402

from .fakes import FakeCluster  # noqa: E402
from .test_chaos import CLUSTER, _agent_cluster, wait_until  # noqa: E402


def _policy(cluster: Cluster) -> dict[str, Any]:
    (policy,) = [
        m for m in agent_manifests(reference_agent(), cluster) if m["kind"] == "NetworkPolicy"
    ]
    return policy


def test_the_control_planes_cidrs_reach_the_agents_port_through_the_policy():
    cluster = Cluster(control_plane_cidrs=("172.18.0.2/32", "10.0.0.0/28"))
    policy = _policy(cluster)
    kubernetes_validate.validate(policy, "1.35", strict=True)
    fleet_rule, control_plane = policy["spec"]["ingress"]
    assert "ipBlock" not in str(fleet_rule)
    assert control_plane == {
        "from": [{"ipBlock": {"cidr": "172.18.0.2/32"}}, {"ipBlock": {"cidr": "10.0.0.0/28"}}],
        "ports": [{"protocol": "TCP", "port": 8080}],  # the agent's metrics are on it too
    }
    # None given: the fleet and monitoring only, as before.
    assert len(_policy(Cluster())["spec"]["ingress"]) == 1


def test_cidrs_are_read_from_the_option_and_the_file_and_a_bad_one_is_named(tmp_path):
    options = KubernetesOptions.of({"control_plane_cidrs": "172.18.0.2, 10.0.0.5/28"})
    assert options.control_plane_cidrs == ("172.18.0.2/32", "10.0.0.0/28")
    with pytest.raises(ConfigError) as bad:
        KubernetesOptions.of({"control_plane_cidrs": "10.0.0.0/33"})
    assert str(bad.value).startswith("--control-plane-cidrs: got '10.0.0.0/33'; expected CIDRs")
    (tmp_path / "stressbed.yaml").write_text(
        "profiles:\n  kind:\n    control_plane_cidrs: [172.18.0.2/32, fd00::/64]\n"
        "  typo:\n    control_plane_cidrs: [172.18.0.300]\n"
    )
    kind = resolve({}, {}, profile="kind", file=tmp_path / "stressbed.yaml")
    assert kind.values["control_plane_cidrs"] == "172.18.0.2/32,fd00::/64"
    with pytest.raises(ConfigError) as typo:
        resolve({}, {}, profile="typo", file=tmp_path / "stressbed.yaml")
    assert typo.value.field == f"{tmp_path / 'stressbed.yaml'}: profiles.typo.control_plane_cidrs"
    with pytest.raises(ConfigError) as flag:
        resolve({"control_plane_cidrs": "apiserver"}, {})
    assert (flag.value.field, flag.value.value) == ("--control-plane-cidrs", "apiserver")


def test_a_pod_the_proxy_never_reaches_is_said_once_after_its_grace():
    events: list[tuple[str, dict[str, Any]]] = []
    now = [0.0]
    check = ProxyCheck(lambda kind, **f: events.append((kind, f)), (), clock=lambda: now[0])
    check.refused("agent-a", 8080, "HTTP 503: error trying to reach service")
    check.reached("agent-b")
    now[0] = GRACE_S + 1
    check.refused("agent-b", 8080, "no answer in 0.8 s")  # reached before: a busy pod
    assert events == []
    check.refused("agent-a", 8080, "HTTP 503: error trying to reach service")
    check.refused("agent-a", 8080, "HTTP 503: error trying to reach service")
    (said,) = events
    assert said[0] == "proxy-refused"
    assert said[1]["pod"] == "agent-a"
    assert "--control-plane-cidrs (control_plane_cidrs in stressbed.yaml" in said[1]["fix"]
    given = ProxyCheck(lambda kind, **f: None, ("172.18.0.2/32",))
    assert given.fix().startswith("--control-plane-cidrs is 172.18.0.2/32: it must hold")


class HookTrouble(FakeCluster):
    """The fault hook's calls fail: raised by the client, or the proxy not reaching the pod."""

    def __init__(self, error: Exception) -> None:
        super().__init__(1, [{}])
        self.error = error

    def hook(self, *args: Any, **kwargs: Any) -> str | None:
        raise self.error


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (
            OSError("connection reset by peer"),
            "no agent pod's fault hook took it (2 running); agent-5d8-a: OSError: "
            "connection reset by peer",
        ),
        (
            ProxyUnreachable("HTTP 503: error trying to reach service: dial tcp: i/o timeout"),
            "no agent pod's fault hook took it (2 running); agent-5d8-a: the API server's pod "
            "proxy did not reach it (HTTP 503: error trying to reach service: dial tcp: i/o "
            "timeout); where the CNI enforces NetworkPolicy, the agent's admits the API server "
            "only from --control-plane-cidrs",
        ),
    ],
)
def test_a_hook_call_that_fails_is_a_skipped_fault_saying_why(error, reason):
    cluster = HookTrouble(error)
    cluster.agents = _agent_cluster().agents
    events: list[tuple[str, dict[str, Any]]] = []

    def event(kind: str, **fields: Any) -> None:
        events.append((kind, fields))

    chaos = ChaosFaults(
        cluster,
        CLUSTER,
        "agent",
        event,
        hook=PodHook(FaultHook(), "run-token", 8080),
        proxy=ProxyCheck(event, ()),
    )
    chaos.arm(check_faults([fault.dependency("sink", at="0s", lasting="8s")], 600_000), time.time())
    wait_until(lambda: any(kind == "fault-skipped" for kind, _ in events))
    assert chaos.undo_all() == []
    (skipped,) = [f for kind, f in events if kind == "fault-skipped"]
    assert skipped["reason"].startswith(reason)
    assert not [kind for kind, _ in events if kind == "fault-applied"]
    warned = [f for kind, f in events if kind == "proxy-refused"]
    assert len(warned) == (1 if isinstance(error, ProxyUnreachable) else 0)
