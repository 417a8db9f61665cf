"""Generators: validated arguments and their config form."""

from __future__ import annotations

import pytest

from stressbed import ConfigError, gen


def test_generators_render_their_parameters():
    assert gen.uuid4().to_config() == ["gen", "uuid4", {}]
    assert gen.normal(5, 1, minimum=0).to_config() == [
        "gen",
        "normal",
        {"mean": 5, "sd": 1, "min": 0, "max": None, "integer": False},
    ]
    assert gen.lognormal(120, 0.45, minimum=3, maximum=9000, integer=True).to_config() == [
        "gen",
        "lognormal",
        {"median": 120, "sigma": 0.45, "min": 3, "max": 9000, "integer": True},
    ]
    assert gen.lognormal(0.25, 1.5).params() == {
        "median": 0.25,
        "sigma": 1.5,
        "min": None,
        "max": None,
        "integer": False,
    }
    assert gen.choice({"a": 3, "b": 1}).to_config() == [
        "gen",
        "choice",
        {"values": ["a", "b"], "weights": [3, 1]},
    ]
    assert gen.choice(["x", "y"]).to_config()[2]["weights"] == [1.0, 1.0]
    assert gen.repeat(2, {"v": gen.counter(5)}).to_config() == [
        "gen",
        "repeat",
        {"count": ["lit", 2], "item": ["obj", [["v", ["gen", "counter", {"start": 5}]]]]},
    ]


def test_secrets_render_only_their_name():
    assert gen.secret("API_TOKEN").to_config() == [
        "gen",
        "env",
        {"name": "API_TOKEN", "default": None, "secret": True},
    ]


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: gen.uniform_int(5, 1), "uniform_int.high"),
        (lambda: gen.uniform_int(1.5, 3), "uniform_int.low"),
        (lambda: gen.uniform_float(1, 1), "uniform_float.high"),
        (lambda: gen.normal(0, 0), "normal.sd"),
        (lambda: gen.normal(0, 1, minimum=2, maximum=1), "normal.maximum"),
        (lambda: gen.lognormal(0, 1), "lognormal.median"),
        (lambda: gen.lognormal(-5, 1), "lognormal.median"),
        (lambda: gen.lognormal(float("nan"), 1), "lognormal.median"),
        (lambda: gen.lognormal(10, 0), "lognormal.sigma"),
        (lambda: gen.lognormal(10, float("inf")), "lognormal.sigma"),
        (lambda: gen.lognormal(10, 1, minimum="1"), "lognormal.minimum"),  # type: ignore[arg-type]
        (lambda: gen.lognormal(10, 1, maximum=0), "lognormal.maximum"),
        (lambda: gen.lognormal(10, 1, minimum=5, maximum=5), "lognormal.maximum"),
        (lambda: gen.lognormal(10, 1, integer=1), "lognormal.integer"),  # type: ignore[arg-type]
        (lambda: gen.choice({"a": 0}), "choice.weights[0]"),
        (lambda: gen.choice({"a": -1, "b": 2}), "choice.weights[0]"),
        (lambda: gen.choice([]), "choice.values"),
        (lambda: gen.choice(["{{x}}"]), "choice.options[0]"),
        (lambda: gen.random_string(0), "random_string.length"),
        (lambda: gen.timestamp("ns"), "timestamp.unit"),  # type: ignore[arg-type]
        (lambda: gen.repeat(-1, "x"), "repeat.count"),
        (lambda: gen.env("not a name"), "env.name"),
        (lambda: gen.counter("0"), "counter.start"),  # type: ignore[arg-type]
    ],
)
def test_bad_generator_arguments_name_the_field(build, field):
    with pytest.raises(ConfigError) as info:
        build()
    assert info.value.field == field


def test_lognormal_errors_say_what_is_allowed():
    with pytest.raises(ConfigError) as info:
        gen.lognormal(-5, 1)
    assert str(info.value) == "lognormal.median: got -5; expected a number > 0"
    with pytest.raises(ConfigError) as info:
        gen.lognormal(10, 1, minimum=20, maximum=8)
    assert str(info.value) == "lognormal.maximum: got 8; expected a number > minimum (20)"


def test_rows_modes_are_checked(tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("a\n1\n")
    with pytest.raises(ConfigError, match="one of 'sequential', 'random', 'unique'"):
        gen.rows(data, mode="shuffled")  # type: ignore[arg-type]
    rows = gen.rows(data)
    assert rows.row_count == 1
    assert rows.to_config()[2]["file"].startswith("data/d-")
