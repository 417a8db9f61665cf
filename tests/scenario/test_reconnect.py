"""Reconnect policies and churn: the maths, its bounds, and the JS runtime computing the same."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stressbed.errors import ConfigError
from stressbed.population import Churn, reconnect
from stressbed.scenario.reconnect import Mulberry32, Reconnect, agent_seed, delays
from stressbed.scenario.render import runtime_files

from ..conftest import needs_k6, run_k6

SEEDS = st.integers(min_value=0, max_value=2**32 - 1)


def test_the_generator_is_uniform_and_seeded():
    draws = [Mulberry32(7)() for _ in range(3)]
    assert len(set(draws)) == 1  # a new generator with the same seed draws the same
    rng = Mulberry32(7)
    values = [rng() for _ in range(20_000)]
    assert all(0.0 <= v < 1.0 for v in values)
    assert abs(sum(values) / len(values) - 0.5) < 0.01
    tenths = [0] * 10
    for v in values:
        tenths[int(v * 10)] += 1
    assert min(tenths) > 1800
    assert max(tenths) < 2200


def test_agents_draw_apart_from_each_other():
    firsts = {Mulberry32(agent_seed(0, i))() for i in range(1000)}
    assert len(firsts) == 1000
    assert agent_seed(0, 5) != agent_seed(1, 5)


def test_backoff_without_jitter_doubles_up_to_its_cap():
    policy = reconnect.backoff("1s", cap="10s", jitter="none")
    assert list(delays(policy, 0, 6)) == [1000, 2000, 4000, 8000, 10000, 10000]


def test_fixed_without_jitter_waits_the_same_every_time():
    assert list(delays(reconnect.fixed("5s"), 3, 4)) == [5000.0] * 4


@settings(max_examples=200, deadline=None)
@given(seed=SEEDS, attempts=st.integers(min_value=1, max_value=40))
def test_full_jitter_stays_under_the_exponential(seed, attempts):
    policy = reconnect.backoff("500ms", cap="30s", jitter="full")
    for attempt, wait in enumerate(delays(policy, seed, attempts)):
        assert 0.0 <= wait < min(30_000.0, 500.0 * 2**attempt)


@settings(max_examples=200, deadline=None)
@given(seed=SEEDS, attempts=st.integers(min_value=1, max_value=40))
def test_equal_jitter_waits_at_least_half(seed, attempts):
    policy = reconnect.backoff("500ms", cap="30s", jitter="equal")
    for attempt, wait in enumerate(delays(policy, seed, attempts)):
        exp = min(30_000.0, 500.0 * 2**attempt)
        assert exp / 2 <= wait < exp


@settings(max_examples=200, deadline=None)
@given(seed=SEEDS, attempts=st.integers(min_value=1, max_value=40))
def test_decorrelated_jitter_stays_between_base_and_cap(seed, attempts):
    policy = reconnect.backoff("1s", cap="20s", jitter="decorrelated")
    previous = 1000.0
    for wait in delays(policy, seed, attempts):
        assert 1000.0 <= wait <= 20_000.0
        assert wait <= max(1000.0, previous * 3)
        previous = wait


@settings(max_examples=100, deadline=None)
@given(seed=SEEDS, spread=st.sampled_from(["10%", "50%", "0%"]))
def test_fixed_jitter_spreads_within_its_share(seed, spread):
    share = float(spread[:-1]) / 100
    for wait in delays(reconnect.fixed("4s", jitter=spread), seed, 20):
        assert 4000 * (1 - share) <= wait <= 4000 * (1 + share)


def test_full_jitter_spreads_a_fleet_that_fails_together():
    """What jitter is for: 1,000 agents losing their connection at once retry at one instant
    without it, and over the whole first window with it."""
    none = reconnect.backoff("1s", jitter="none")
    full = reconnect.backoff("1s", jitter="full")
    firsts_none = {next(delays(none, agent_seed(1, i), 1)) for i in range(1000)}
    firsts_full = [next(delays(full, agent_seed(1, i), 1)) for i in range(1000)]
    assert firsts_none == {1000.0}
    per_100ms = [0] * 10
    for wait in firsts_full:
        per_100ms[int(wait // 100)] += 1
    assert max(per_100ms) < 150  # about 100 in each tenth of the window


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: reconnect.backoff("0s"), "reconnect.backoff.base"),
        (lambda: reconnect.backoff("1s", cap="500ms"), "reconnect.backoff.cap"),
        (lambda: reconnect.backoff("1s", jitter="half"), "reconnect.backoff.jitter"),
        (lambda: reconnect.backoff("1s", budget=0), "reconnect.backoff.budget"),
        (lambda: reconnect.backoff("2h"), "reconnect.backoff.base"),
        (lambda: reconnect.fixed("1s", jitter="100%"), "reconnect.fixed.jitter"),
        (lambda: reconnect.fixed("soon"), "reconnect.fixed.delay"),
        (lambda: Churn("0/s"), "churn.rate"),
        (lambda: Churn("10/m", never_back="150%"), "churn.never_back"),
        (lambda: Churn("10/m", away="-1s"), "churn.away"),
    ],
)
def test_a_bad_policy_names_its_field(build, field):
    with pytest.raises(ConfigError) as caught:
        build()
    assert caught.value.field == field


POLICIES = [
    reconnect.backoff("1s", cap="30s", jitter="none"),
    reconnect.backoff("1s", cap="30s", jitter="full"),
    reconnect.backoff("250ms", cap="8s", jitter="equal"),
    reconnect.backoff("1s", cap="20s", jitter="decorrelated"),
    reconnect.fixed("5s", jitter="20%"),
]

PARITY_SCRIPT = """
import { agentSeed, mulberry32, reconnectDelay } from './lib/stressbed/policy.js';
const cases = JSON.parse(open('./cases.json'));
export const options = { vus: 1, iterations: 1 };
export default function () {}
export function handleSummary() {
  const out = cases.map(([policy, seed, index, count]) => {
    const rng = mulberry32(agentSeed(seed, index));
    const waits = [];
    let previous = policy.base_ms;
    for (let attempt = 0; attempt < count; attempt++) {
      previous = reconnectDelay(policy, attempt, previous, rng);
      waits.push(previous);
    }
    const draw = mulberry32(agentSeed(seed, index));
    return [waits, [draw(), draw(), draw()]];
  });
  return { [__ENV.OUT]: JSON.stringify(out) };
}
"""


@needs_k6
@pytest.mark.k6
def test_the_runtime_computes_the_same_waits_as_the_specification(tmp_path: Path):
    """The JS runtime and this module wait the same times: what the README says of the
    policies holds for what k6 does. The draws are integer arithmetic, the same to the last
    bit; a wait is compared to 1e-12 (one decorrelated wait differs in its last bit here: the
    two engines' float steps are not bound to round alike)."""
    lib = tmp_path / "lib" / "stressbed"
    lib.mkdir(parents=True)
    for file, text in runtime_files().items():
        (lib / file).write_text(text)
    cases = [
        (policy.to_config(), seed, index, 12)
        for policy in POLICIES
        for seed in (0, 1, 2**32 - 1, 123456789)
        for index in (0, 1, 99_999)
    ]
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    (tmp_path / "parity.js").write_text(PARITY_SCRIPT)
    result = run_k6(tmp_path / "parity.js", {"OUT": str(tmp_path / "out.json")})
    assert result.exit_code == 0, result.stderr
    from_js = json.loads((tmp_path / "out.json").read_text())
    expected = [
        list(delays(Reconnect(**_fields(config)), agent_seed(seed, index), count))
        for config, seed, index, count in cases
    ]
    assert len(from_js) == len(expected)
    for (waits, draws), want, (_, seed, index, _) in zip(from_js, expected, cases, strict=True):
        assert waits == pytest.approx(want, rel=1e-12, abs=0)
        rng = Mulberry32(agent_seed(seed, index))
        assert draws == [rng(), rng(), rng()]


def _fields(config: dict[str, object]) -> dict[str, object]:
    return {
        "kind": config["kind"],
        "base_ms": config["base_ms"],
        "cap_ms": config["cap_ms"],
        "jitter": config["jitter"],
        "budget": config["budget"],
    }
