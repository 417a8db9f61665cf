"""Scenario-wide validation: references, secrets, data files, names; one-line messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from stressbed import (
    ConfigError,
    ConstantVUs,
    Scenario,
    SharedIterations,
    Workload,
    extract,
    gen,
    get,
    journey,
    mix,
    post,
)


def scenario(flow, variables=None, profile=None, **kwargs) -> Scenario:
    return Scenario(
        "s",
        description="d",
        variables=variables,
        workloads=[Workload("w", flow, profile or ConstantVUs(2, "1s"))],
        **kwargs,
    )


def test_a_reference_to_an_undefined_variable_names_scenario_field_and_known_names():
    with pytest.raises(ConfigError) as info:
        scenario(get("/tasks/{{task}}", name="read"), variables={"agent": gen.uuid4()})
    assert str(info.value) == (
        "scenario 's': workloads.w.flow (request 'read'): got '{{task}}'; expected a variable "
        "defined by the scenario or extracted by an earlier step (agent)"
    )


def test_extracted_variables_are_defined_only_after_their_step():
    login = post("/login", extract={"token": extract.json("token")})
    use = get("/me", headers={"Authorization": "Bearer {{token}}"})
    scenario(journey(login, use))  # fine
    with pytest.raises(ConfigError, match=r"workloads\.w\.flow\.steps\[0\] \(request '/me'\)"):
        scenario(journey(use, login))


def test_a_mix_branch_does_not_define_variables_for_its_siblings():
    login = post("/login", extract={"token": extract.json("token")})
    use = get("/me", headers={"Authorization": "Bearer {{token}}"})
    with pytest.raises(ConfigError, match=r"flow\.mix\[1\]"):
        scenario(mix((login, 1), (use, 1)))
    scenario(mix((journey(login, use), 1), (get("/x"), 1)))


def test_variables_may_use_earlier_variables_only():
    scenario(get("/{{b}}"), variables={"a": gen.uuid4(), "b": "x-{{a}}"})
    with pytest.raises(ConfigError) as info:
        scenario(get("/{{b}}"), variables={"b": "x-{{a}}", "a": gen.uuid4()})
    assert info.value.field == "variables.b"


def test_per_vu_variables_cannot_depend_on_per_iteration_ones():
    with pytest.raises(ConfigError, match="a per-VU variable defined before it"):
        scenario(get("/{{b}}"), variables={"a": gen.uuid4(), "b": gen.per_vu("x-{{a}}")})


def test_secrets_never_go_in_urls():
    variables = {"token": gen.secret("API_TOKEN")}
    scenario(get("/x", headers={"Authorization": "Bearer {{token}}"}), variables=variables)
    with pytest.raises(ConfigError) as info:
        scenario(get("/x", query={"t": "{{token}}"}), variables=variables)
    assert "secrets in headers or bodies only" in str(info.value)
    with pytest.raises(ConfigError, match="secrets in headers or bodies only"):
        scenario(get("/x/{{token}}"), variables=variables)
    with pytest.raises(ConfigError, match="secrets in headers or bodies only"):
        scenario(get("/x", query={"t": gen.secret("API_TOKEN")}))


def test_unique_rows_need_a_row_per_vu(tmp_path: Path):
    data = tmp_path / "hosts.csv"
    data.write_text("host\nh1\nh2\n")
    variables = {"row": gen.rows(data, mode="unique")}
    scenario(get("/{{row.host}}"), variables, ConstantVUs(2, "1s"))
    with pytest.raises(ConfigError) as info:
        scenario(get("/{{row.host}}"), variables, ConstantVUs(3, "1s"))
    assert info.value.expected == "at least one row per VU (3) for mode='unique'"


def test_a_missing_data_file_is_reported_with_its_path(tmp_path: Path):
    with pytest.raises(ConfigError) as info:
        gen.rows(tmp_path / "nope.csv")
    assert info.value.value == str(tmp_path / "nope.csv")
    assert info.value.expected == "an existing CSV or JSON data file"


@pytest.mark.parametrize(
    ("content", "suffix", "expected"),
    [
        ("", ".csv", "at least one row"),
        ("{}", ".json", "a list of rows"),
        ("[", ".json", "valid JSON"),
    ],
)
def test_unusable_data_files_are_rejected(tmp_path: Path, content, suffix, expected):
    data = tmp_path / f"d{suffix}"
    data.write_text(content)
    with pytest.raises(ConfigError, match=expected):
        gen.rows(data)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"description": ""}, "description"),
        ({"description": "two\nlines"}, "description"),
        ({"workloads": []}, "workloads"),
        ({"k6_options": {"scenarios": {}}}, "k6_options"),
        ({"variables": {"1bad": "x"}}, "variables"),
    ],
)
def test_scenario_fields_are_validated(kwargs, field):
    args = {
        "description": "d",
        "workloads": [Workload("w", get("/"), ConstantVUs(1, "1s"))],
        **kwargs,
    }
    with pytest.raises(ConfigError) as info:
        Scenario("s", **args)
    assert info.value.field == field
    assert info.value.scenario == "s"


def test_workload_names_are_k6_scenario_names_and_unique():
    with pytest.raises(ConfigError, match="k6 scenario names"):
        Workload("has space", get("/"), ConstantVUs(1, "1s"))
    w = Workload("w", get("/"), ConstantVUs(1, "1s"))
    with pytest.raises(ConfigError, match="unique workload names"):
        Scenario("s", description="d", workloads=[w, w])


def test_options_hold_every_workload_threshold_and_extra_option():
    a = Workload("a", get("/a"), ConstantVUs(1, "10s"))
    b = Workload("b", get("/b"), SharedIterations(2, 4), start_time="10s", graceful_stop="0s")
    made = Scenario(
        "s",
        description="d",
        workloads=[a, b],
        k6_options={"userAgent": "stressbed-test", "noConnectionReuse": True},
    )
    options = made.k6_options_dict()
    assert options["scenarios"] == {
        "a": {
            "executor": "constant-vus",
            "vus": 1,
            "duration": "10s",
            "startTime": "0s",
            "gracefulStop": "30s",
        },
        "b": {
            "executor": "shared-iterations",
            "vus": 2,
            "iterations": 4,
            "maxDuration": "10m",
            "startTime": "10s",
            "gracefulStop": "0s",
        },
    }
    assert options["userAgent"] == "stressbed-test"
    assert made.peak_vus() == 3
    assert made.duration_ms() == 10_000 + 600_000


def test_scenarios_are_immutable():
    made = scenario(get("/"))
    with pytest.raises(AttributeError):
        made.name = "other"  # type: ignore[misc]
