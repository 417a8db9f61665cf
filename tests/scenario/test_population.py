"""Populations in the DSL: validation that names the field, and what the runtime is given."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stressbed import (
    ConstantVUs,
    Scenario,
    Workload,
    extract,
    gen,
    get,
    group,
    post,
    render,
)
from stressbed.errors import ConfigError
from stressbed.population import (
    Agent,
    Agents,
    Churn,
    Commands,
    KeepAlive,
    PerRequest,
    WebSocket,
    every,
    population,
    reconnect,
    send,
)
from stressbed.thresholds import connected, reconnect_time

HEARTBEAT = send({"type": "heartbeat", "seq": "{{seq}}", "status": "ok"})


def channel(**kwargs):
    return WebSocket(
        "/v1/channel",
        hello={"type": "hello", "agent_id": "{{agent_id}}", "session": "{{session}}"},
        welcome={"type": "welcome"},
        **kwargs,
    )


def agent(**kwargs) -> Agent:
    fields = {
        "register": post(
            "/v1/register",
            json={"agent_id": "{{agent_id}}", "host": "{{host}}"},
            extract={"session": extract.json("session")},
        ),
        "identity": {"host": "node-{{agent_index}}", "os": gen.choice(["linux", "windows"])},
        "channel": channel(),
        "activities": [every("30s", HEARTBEAT, jitter="10%")],
        "reconnect": reconnect.backoff("1s", cap="30s", jitter="full", budget=20),
    }
    return Agent(**{**fields, **kwargs})


def scenario(*workloads, **kwargs) -> Scenario:
    return Scenario("pop", description="a population", workloads=list(workloads), **kwargs)


def test_a_population_renders_as_one_long_iteration_per_vu(tmp_path: Path):
    fleet = population("fleet", agent(), agents=2000, join="30s", lasting="5m", per_vu=300)
    bundle = render(scenario(fleet), tmp_path)
    config = json.loads(bundle.config.read_text())
    assert config["options"]["scenarios"]["fleet"] == {
        "executor": "per-vu-iterations",
        "vus": 7,  # 2000 agents, 300 a VU
        "iterations": 1,
        "maxDuration": "6m",  # join + lasting + the margin to close every channel
        "startTime": "0s",
        "gracefulStop": "30s",
    }
    node = config["workloads"]["fleet"]
    assert node["type"] == "agent"
    assert node["population"] == {
        "agents": 2000,
        "per_vu": 300,
        "join_ms": 30000.0,
        "lasting_ms": 300000.0,
    }
    assert node["channel"]["kind"] == "websocket"
    assert node["channel"]["welcome"] == [["type", ["lit", "welcome"]]]
    assert node["activities"][0]["every_ms"] == 30000.0
    assert node["activities"][0]["jitter"] == pytest.approx(0.1)
    assert node["reconnect"] == {
        "kind": "backoff",
        "base_ms": 1000.0,
        "cap_ms": 30000.0,
        "jitter": "full",
        "budget": 20,
    }
    assert "return test.iteration(data)" in bundle.script.read_text()


def test_a_population_beside_a_request_workload():
    fleet = population("fleet", agent(), agents=100, lasting="1m")
    users = Workload("users", get("/v1/agents"), ConstantVUs(vus=2, duration="1m"))
    both = scenario(fleet, users)
    assert both.peak_vus() == 1 + 2
    assert both.duration_ms() == 60_000 + 30_000
    assert [name for name, _ in both.requests()] == ["fleet", "users"]


def test_scaling_a_population_scales_its_timeline_and_keeps_its_agents():
    fleet = population("fleet", agent(), agents=500, join="20s", lasting="1m")
    scaled = scenario(fleet).scaled_to(40_000)
    profile = scaled.workloads[0].profile
    assert isinstance(profile, Agents)
    assert profile.count == 500
    assert profile.duration_ms() == pytest.approx(40_000, abs=2)
    assert profile.plateau_ms() == pytest.approx((10_000, 40_000), abs=2)


def test_http_agents_send_their_requests_on_a_new_connection_each_when_asked():
    report = post("/v1/report", json={"agent_id": "{{agent_id}}", "points": []})
    for kind, channel_ in (("keepalive", KeepAlive()), ("per_request", PerRequest())):
        fleet = population(
            "fleet",
            Agent(channel=channel_, activities=[every("10s", report)]),
            agents=10,
            lasting="10s",
        )
        assert scenario(fleet).to_config()["workloads"]["fleet"]["channel"] == {"kind": kind}


def test_commands_may_read_the_message_the_server_pushed():
    commands = Commands(
        {"type": "task"},
        answer={"type": "task_result", "id": "{{command.id}}", "ok": True},
        confirm={"type": "task_done"},
    )
    fleet = population("fleet", agent(channel=channel(commands=commands)), agents=5, lasting="5s")
    config = scenario(fleet).to_config()["workloads"]["fleet"]["channel"]["commands"]
    assert config["answer"][1][1] == ["id", ["ref", "command", ["id"]]]
    assert config["id"] == ["id"]


BAD = [
    (lambda: every("50ms", HEARTBEAT), "every.interval"),
    (lambda: every("30s", HEARTBEAT, jitter="100%"), "every.jitter"),
    (lambda: every("30s", HEARTBEAT, jitter="-5%"), "every.jitter"),
    (lambda: every("30s", "heartbeat"), "every.do"),
    (lambda: Agents(0, lasting="1m"), "population.agents"),
    (lambda: Agents(True, lasting="1m"), "population.agents"),
    (lambda: Agents(100, lasting="1m", per_vu=0), "population.per_vu"),
    (lambda: Agents(100, lasting="500ms"), "population.lasting"),
    (lambda: Agents(100, lasting="1m", join="soon"), "population.join"),
    (lambda: agent(reconnect="backoff"), "agent.reconnect"),
    (lambda: agent(churn="10/m"), "agent.churn"),
    (lambda: agent(seed=-1), "agent.seed"),
    (lambda: agent(channel="ws"), "agent.channel"),
    (lambda: agent(identity={"seq": 1}), "agent.identity"),
    (lambda: Agent(channel=KeepAlive()), "agent.activities"),
    (
        lambda: Agent(channel=KeepAlive(), activities=[every("1s", HEARTBEAT)]),
        "agent.activities[0].do",
    ),
    (
        lambda: agent(activities=[every("1s", group("g", get("/a")))]),
        "agent.activities[0].do",
    ),
    (lambda: WebSocket("v1/channel"), "channel.path"),
    (lambda: WebSocket("/c", welcome={"type": "{{x}}"}), "channel.welcome.type"),
    (lambda: WebSocket("/c", connect_timeout="0s"), "channel.connect_timeout"),
    (lambda: WebSocket("/c", welcome_extract={"s": extract.json("s")}), "channel.welcome_extract"),
    (lambda: Commands({}, answer={}), "commands.match"),
]


@pytest.mark.parametrize(("build", "field"), BAD)
def test_bad_population_input_names_its_field(build, field):
    with pytest.raises(ConfigError) as caught:
        build()
    assert caught.value.field == field


def test_an_agent_may_read_only_variables_it_has():
    lost = agent(activities=[every("30s", send({"type": "x", "v": "{{nowhere}}"}))])
    with pytest.raises(ConfigError) as caught:
        scenario(population("fleet", lost, agents=10, lasting="10s"))
    assert caught.value.field == "workloads.fleet.flow.activities[0]"
    assert "{{nowhere}}" in str(caught.value)
    # The register request runs before the session exists.
    early = agent(
        register=post(
            "/v1/register", json={"s": "{{session}}"}, extract={"session": extract.json("s")}
        )
    )
    with pytest.raises(ConfigError) as caught:
        scenario(population("fleet", early, agents=10, lasting="10s"))
    assert caught.value.field == "workloads.fleet.flow.register"


def test_a_secret_in_the_channel_path_is_refused():
    leaky = agent(channel=WebSocket("/v1/channel/{{token}}"))
    with pytest.raises(ConfigError) as caught:
        scenario(
            population("fleet", leaky, agents=10, lasting="10s"),
            variables={"token": gen.secret("AGENT_TOKEN")},
        )
    assert caught.value.field == "workloads.fleet.channel.path"


def test_an_agent_needs_the_agents_profile_and_back():
    with pytest.raises(ConfigError) as caught:
        Workload("fleet", agent(), ConstantVUs(vus=1, duration="1s"))
    assert caught.value.field == "profile"
    with pytest.raises(ConfigError) as caught:
        Workload("fleet", get("/a"), Agents(10, lasting="10s"))
    assert caught.value.field == "flow"


def test_churn_renders_its_rate_per_second():
    churned = agent(churn=Churn("30/m", away="20s", never_back="10%"))
    config = scenario(population("fleet", churned, agents=10, lasting="10s")).to_config()
    assert config["workloads"]["fleet"]["churn"] == {
        "rate_per_s": 0.5,
        "away_ms": 20000.0,
        "never_back": pytest.approx(0.1),
    }


def test_a_scenario_variable_may_not_hide_an_agent_s_own():
    with pytest.raises(ConfigError) as caught:
        scenario(population("fleet", agent(), agents=10, lasting="10s"), variables={"seq": 1})
    assert caught.value.field == "variables.seq"


def test_a_population_threshold_needs_a_population():
    for threshold in (connected("> 99%"), reconnect_time("p(99) < 60s")):
        with pytest.raises(ConfigError) as caught:
            scenario(
                Workload("users", get("/a"), ConstantVUs(vus=1, duration="1s")),
                thresholds=[threshold],
            )
        assert caught.value.field == "thresholds[0]"


def test_the_plateau_is_when_every_population_is_steady():
    a = population("a", agent(), agents=10, join="10s", lasting="1m")
    b = population("b", agent(), agents=10, join="20s", lasting="20s", start_time="5s")
    assert scenario(a).plateau_s() == (10.0, 70.0)
    assert scenario(a, b).plateau_s() == (25.0, 45.0)
    users = Workload("users", get("/a"), ConstantVUs(vus=1, duration="1s"))
    assert scenario(users).plateau_s() is None


def test_a_runner_holds_its_share_of_each_population_s_vus():
    from stressbed.scenario.render import agents_per_runner  # noqa: PLC0415

    a = population("a", agent(), agents=2000, lasting="10s", per_vu=300)  # 7 VUs
    b = population("b", agent(), agents=10, lasting="10s", per_vu=500)  # 1 VU
    config = scenario(a, b).to_config()
    assert agents_per_runner(config, 1) == 2000 + 10
    assert agents_per_runner(config, 2) == 4 * 300 + 10  # 4 VUs of a, b's one
    assert agents_per_runner(config, 8) == 300 + 10
    users = Workload("users", get("/a"), ConstantVUs(vus=2, duration="1s"))
    assert agents_per_runner(scenario(users).to_config(), 2) == 0
