"""The agent's parts alone: configuration layering, the circuit breaker, report validation."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stressbed_agent.breaker import CircuitBreaker, State
from stressbed_agent.config import ConfigError, load
from stressbed_agent.ingest import BadRequest, parse_report
from stressbed_agent.registry import BUILTIN_KEY, Registrations, check_agent_id


def test_configuration_layers_defaults_file_environment_command_line(tmp_path: Path):
    config_file = tmp_path / "agent.yaml"
    config_file.write_text("port: 9000\nqueue_max_points: 500\nsink: file\nsink_path: /tmp/x\n")
    env = {"STRESSBED_AGENT_QUEUE_MAX_POINTS": "700", "STRESSBED_AGENT_TOKEN": "tok-secret-123"}
    config = load(config_file, env, port=9100)
    assert (config.port, config.queue_max_points, config.sink, config.token) == (
        9100,
        700,
        "file",
        "tok-secret-123",
    )
    assert config.heartbeat_ttl_s == 30.0  # a default
    assert "tok-secret-123" not in repr(config)  # tokens never printed


@pytest.mark.parametrize(
    ("content", "env", "message"),
    [
        ("colour: blue\n", {}, "unknown key 'colour'"),
        ("token: abc\n", {}, "token may only come from the environment"),
        ("port: [1]\n", {}, "port: got [1]; expected int"),
        ("- a\n", {}, "expected a mapping"),
        ("", {"STRESSBED_AGENT_PORT": "eighty"}, "STRESSBED_AGENT_PORT: port: got 'eighty'"),
        ("", {"STRESSBED_AGENT_HIGH_WATERMARK": "1.5"}, "high_watermark: got 1.5"),
        ("", {"STRESSBED_AGENT_SINK": "kafka"}, "sink: got 'kafka'; expected 'null' or 'file'"),
        ("sink: file\n", {}, "sink_path: got ''; expected a file path"),
        ("max_connections: -1\n", {}, "max_connections: got -1; expected an integer >= 0"),
        ("channel_task_interval_s: -1\n", {}, "channel_task_interval_s: got -1.0; expected"),
        ("", {"STRESSBED_AGENT_CHANNEL_PING_INTERVAL_S": "x"}, "channel_ping_interval_s: got 'x'"),
    ],
)
def test_bad_configuration_is_one_line_naming_the_key(tmp_path: Path, content, env, message):
    config_file = tmp_path / "agent.yaml"
    config_file.write_text(content)
    with pytest.raises(ConfigError) as info:
        load(config_file, env)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_the_breaker_opens_half_opens_and_closes():
    now = [0.0]
    breaker = CircuitBreaker(failures=3, reset_s=5, clock=lambda: now[0])
    seen: list[State] = []
    breaker.on_change = seen.append
    for _ in range(2):
        breaker.failure()
    assert breaker.state is State.CLOSED
    breaker.failure()
    assert breaker.state is State.OPEN
    assert not breaker.allow()
    now[0] = 5.0
    assert breaker.allow()
    assert breaker.state is State.HALF_OPEN
    breaker.failure()  # the trial fails: open again at once
    assert breaker.state is State.OPEN
    now[0] = 10.0
    assert breaker.allow()
    breaker.success()
    assert breaker.state is State.CLOSED
    assert seen == [State.OPEN, State.HALF_OPEN, State.OPEN, State.HALF_OPEN, State.CLOSED]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        json_values,
        st.fixed_dictionaries({"agent_id": json_values, "points": json_values}),
        st.fixed_dictionaries(
            {
                "agent_id": st.text(max_size=5),
                "points": st.lists(
                    st.fixed_dictionaries(
                        {
                            "ts": json_values,
                            "name": json_values,
                            "value": json_values,
                            "labels": json_values,
                        }
                    ),
                    max_size=4,
                ),
            }
        ),
    )
)
def test_report_validation_never_fails_with_anything_but_a_client_error(body):
    try:
        agent, points = parse_report(body, max_points=1000)
    except BadRequest as exc:
        error = exc
    else:
        assert isinstance(agent, str)
        assert points
        return
    assert error.status in (400, 413)
    assert str(error)


def test_sessions_are_an_hmac_of_the_agent_id_any_replica_with_the_key_verifies():
    one, same, other = Registrations("k1"), Registrations("k1"), Registrations("k2")
    session, duplicate = one.register("agent é/1")
    mac = hmac.new(b"k1", "agent é/1".encode(), hashlib.sha256).hexdigest()
    assert (session, duplicate) == (f"YWdlbnQgw6kvMQ.{mac}", False)
    assert same.verify("agent é/1", session)
    assert not other.verify("agent é/1", session)
    assert not same.verify("agent é/2", session)
    for bad in (None, 5, "", session + "0", session.upper(), "\ud800"):
        assert not same.verify("agent é/1", bad)
    assert Registrations("").key == BUILTIN_KEY
    assert Registrations("").verify("a", Registrations("").session("a"))


def test_registrations_count_duplicates_and_forget_the_oldest_ids_past_the_bound():
    registrations = Registrations("k", limit=2)
    assert [registrations.register(agent)[1] for agent in ("a", "b", "a", "c", "b")] == [
        False,
        False,
        True,
        False,
        False,  # forgotten when c came: b was the least recently registered
    ]
    assert registrations.summary(with_ids=True) == {
        "count": 2,
        "registrations": 5,
        "duplicates": 1,
        "ids": {"c": 1, "b": 1},
    }
    with pytest.raises(BadRequest, match="agent_id: expected valid Unicode"):
        check_agent_id("\ud800")
