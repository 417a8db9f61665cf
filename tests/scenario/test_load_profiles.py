"""Load profiles: one per k6 executor, validated, and agreeing with `k6 inspect`."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from stressbed import (
    ConfigError,
    ConstantArrivalRate,
    ConstantVUs,
    PerVUIterations,
    RampingArrivalRate,
    RampingVUs,
    Scenario,
    SharedIterations,
    Workload,
    get,
)
from stressbed.scenario.units import parse_duration_ms

from ..conftest import K6, needs_k6

PROFILES = {
    "constant-vus": ConstantVUs(vus=3, duration="1m"),
    "ramping-vus": RampingVUs(
        stages=[("10s", 5), ("20s", 2)], start_vus=0, graceful_ramp_down="7s"
    ),
    "constant-arrival-rate": ConstantArrivalRate(
        rate=10, duration="30s", pre_allocated_vus=4, max_vus=9
    ),
    "ramping-arrival-rate": RampingArrivalRate(
        stages=[("10s", 20), ("5s", 0)], pre_allocated_vus=3, max_vus=12
    ),
    "per-vu-iterations": PerVUIterations(vus=4, iterations=5, max_duration="45s"),
    "shared-iterations": SharedIterations(vus=4, iterations=50, max_duration="1m30s"),
}


@pytest.mark.parametrize("executor", sorted(PROFILES))
def test_each_profile_renders_its_executor(executor):
    config = PROFILES[executor].to_k6()
    assert config["executor"] == executor


def test_profiles_render_k6_field_names():
    assert PROFILES["constant-arrival-rate"].to_k6() == {
        "executor": "constant-arrival-rate",
        "rate": 10,
        "timeUnit": "1s",
        "duration": "30s",
        "preAllocatedVUs": 4,
        "maxVUs": 9,
    }
    assert PROFILES["ramping-vus"].to_k6() == {
        "executor": "ramping-vus",
        "startVUs": 0,
        "stages": [{"duration": "10s", "target": 5}, {"duration": "20s", "target": 2}],
        "gracefulRampDown": "7s",
    }


@needs_k6
@pytest.mark.k6
@pytest.mark.parametrize("executor", sorted(PROFILES))
def test_k6_inspect_agrees_with_each_profile(k6_bundle, executor):
    scenario = Scenario(
        "p",
        description="profile",
        workloads=[
            Workload("w", get("/"), PROFILES[executor], start_time="5s", graceful_stop="3s")
        ],
    )
    script = k6_bundle(scenario)
    # inspect does not see the system environment: the bundle must not need it to load.
    out = subprocess.run(
        [K6, "inspect", "--execution-requirements", str(script)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "K6_NO_USAGE_REPORT": "true"},
    )
    requirements = json.loads(out.stdout)
    assert requirements["maxVUs"] == scenario.peak_vus()
    assert parse_duration_ms(requirements["totalDuration"], "totalDuration") == (
        scenario.duration_ms()
    )
    assert requirements["scenarios"]["w"]["executor"] == executor


@pytest.mark.parametrize(
    ("build", "field", "value"),
    [
        (lambda: ConstantVUs(vus=0, duration="1m"), "vus", 0),
        (lambda: ConstantVUs(vus=-3, duration="1m"), "vus", -3),
        (lambda: ConstantVUs(vus=2, duration="0s"), "duration", "0s"),
        (lambda: ConstantVUs(vus=2, duration="ten minutes"), "duration", "ten minutes"),
        (lambda: ConstantVUs(vus=2, duration=60), "duration", 60),  # type: ignore[arg-type]
        (lambda: ConstantArrivalRate(rate=0, duration="1m", pre_allocated_vus=1), "rate", 0),
        (
            lambda: ConstantArrivalRate(rate=5, duration="1m", pre_allocated_vus=10, max_vus=5),
            "max_vus",
            5,
        ),
        (lambda: RampingVUs(stages=[]), "stages", []),
        (lambda: RampingVUs(stages=[("1m", -1)]), "stages[0].target", -1),
        (lambda: RampingVUs(stages=[("soon", 5)]), "stages[0].duration", "soon"),
        (lambda: RampingVUs(stages=[("1m", 0)], start_vus=0), "stages", [("1m", 0)]),
        (
            lambda: RampingArrivalRate(stages=[("1m", 5)], pre_allocated_vus=0),
            "pre_allocated_vus",
            0,
        ),
        (lambda: SharedIterations(vus=10, iterations=5), "iterations", 5),
        (lambda: PerVUIterations(vus=1, iterations=0), "iterations", 0),
        (lambda: PerVUIterations(vus=1, iterations=1, max_duration="-1s"), "max_duration", "-1s"),
    ],
)
def test_bad_profiles_name_the_field_and_value(build, field, value):
    with pytest.raises(ConfigError) as info:
        build()
    assert info.value.field.split(".", 1)[1] == field
    assert info.value.value == value


def test_unknown_executor_is_rejected_by_the_workload():
    with pytest.raises(ConfigError) as info:
        Workload("w", get("/"), "constant-vus")  # type: ignore[arg-type]
    assert str(info.value) == (
        "profile: got 'constant-vus'; expected a load profile "
        "(ConstantVUs, ConstantArrivalRate, ...)"
    )
