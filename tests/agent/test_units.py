"""The agent's parts alone: configuration layering, the circuit breaker, report validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stressbed_agent.breaker import CircuitBreaker, State
from stressbed_agent.config import ConfigError, load
from stressbed_agent.ingest import BadRequest, parse_report


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
