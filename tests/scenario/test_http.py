"""Requests: methods, paths, bodies, headers, checks and extractors, validated when built."""

from __future__ import annotations

import json

import pytest

from stressbed import ConfigError, check, extract, gen, get, literal, post, request, var
from stressbed.scenario.templates import Ref, Template, parse_template


def test_a_request_renders_every_field():
    made = post(
        "/v1/tasks/{{id}}",
        name="submit",
        query={"a b": "c&d", "n": 5},
        headers={"X-Agent": "{{agent}}"},
        json={"id": "{{id}}", "n": gen.uniform_int(1, 2)},
        expect=[202, range(200, 300)],
        timeout="2s",
        checks=[check.status(202), check.json_exists("id"), check.duration_under("1s")],
        extract={"task": extract.json("data.items[0].id")},
    )
    config = made.to_config()
    assert config["path"] == ["tpl", ["/v1/tasks/", ["ref", "id", []]]]
    assert config["query"] == [["a%20b", ["lit", "c%26d"]], ["n", ["lit", "5"]]]
    assert config["headers"] == [["X-Agent", ["ref", "agent", []]]]
    assert config["body"] == {
        "kind": "json",
        "value": [
            "obj",
            [["id", ["ref", "id", []]], ["n", ["gen", "uniform_int", {"low": 1, "high": 2}]]],
        ],
    }
    assert config["expect"] == [202, {"min": 200, "max": 299}]
    assert config["timeout_ms"] == 2000
    assert config["extract"] == [["task", {"kind": "json", "path": ["data", "items", 0, "id"]}]]
    assert config["response"] == "text"
    assert [c["name"] for c in config["checks"]] == ["status is 202", "id exists", "duration < 1s"]


def test_requests_that_read_no_body_tell_k6_to_discard_it():
    assert get("/", checks=[check.status(200)]).to_config()["response"] == "none"
    assert get("/", checks=[check.body_contains("ok")]).to_config()["response"] == "text"


def test_paths_are_percent_encoded_but_keep_their_shape():
    assert get("/a b/ü/{x}%").to_config()["path"] == ["lit", "/a%20b/%C3%BC/%7Bx%7D%25"]
    assert get("/keep/!$&'()*+,;=:@-._~").to_config()["path"][1] == "/keep/!$&'()*+,;=:@-._~"


def test_a_whole_string_reference_keeps_its_type_and_literal_keeps_braces():
    made = post("/", json={"n": "{{count}}", "s": "n={{count}}", "raw": literal("{{x}}")})
    body = made.to_config()["body"]["value"]
    assert body == [
        "obj",
        [
            ["n", ["ref", "count", []]],
            ["s", ["tpl", ["n=", ["ref", "count", []]]]],
            ["raw", ["lit", "{{x}}"]],
        ],
    ]
    assert var("row", "host") == Ref("row", ("host",))


def test_constant_bodies_stay_one_literal():
    made = post("/", json={"a": [1, {"b": None}], "c": "text"})
    assert made.to_config()["body"] == {
        "kind": "json",
        "value": ["lit", {"a": [1, {"b": None}], "c": "text"}],
    }


def test_bytes_bodies_travel_as_base64():
    assert post("/", body=b"\x00\xff").to_config()["body"] == {"kind": "bytes", "base64": "AP8="}


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: request("FETCH", "/"), "method"),
        (lambda: get("relative"), "path"),
        (lambda: get("http://example.com/"), "path"),
        (lambda: post("/", json={}, body="x"), "body"),
        (lambda: get("/", headers={"X-A": "line\nbreak"}), "headers.X-A"),
        (lambda: get("/", headers={"X-A": "nul\x00"}), "headers.X-A"),
        (lambda: get("/", headers={"X-A": " padded"}), "headers.X-A"),
        (lambda: get("/", headers={"Bad Header": "x"}), "headers"),
        (lambda: get("/", expect=99), "expect"),
        (lambda: get("/", expect=range(200, 700)), "expect"),
        (lambda: get("/", timeout="soon"), "timeout"),
        (lambda: get("/", extract={"1x": extract.json("a")}), "extract"),
        (lambda: get("/", checks=["status"]), "checks[0]"),
        (lambda: get("/{{ bad name }}"), "path"),
        (lambda: get("/{{unclosed"), "path"),
        (lambda: post("/", json={"x": float("nan")}), "json.x"),
        (lambda: post("/", json={1: "x"}), "json"),
        (lambda: post("/", json={"x": object()}), "json.x"),
        (lambda: post("/", json={"x": get("/")}), "json.x"),
    ],
)
def test_bad_requests_name_the_field(build, field):
    with pytest.raises(ConfigError) as info:
        build()
    assert info.value.field == field


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (check.status, "check.status"),
        (lambda: check.status(42), "check.status"),
        (lambda: check.json_exists("a..b"), "check.json_exists"),
        (lambda: check.json_equals("a", gen.uuid4()), "check.json_equals.value"),
        (lambda: check.body_contains(""), "check.body_contains"),
        (lambda: check.duration_under("0ms"), "check.duration_under"),
        (lambda: extract.json(""), "extract.json"),
        (lambda: extract.header("Bad Header"), "extract.header"),
        (lambda: extract.regex("(unclosed"), "extract.regex"),
        (lambda: extract.regex("(?P<n>x)"), "extract.regex"),
    ],
)
def test_bad_checks_and_extractors_name_the_field(build, field):
    with pytest.raises(ConfigError) as info:
        build()
    assert info.value.field == field


def test_templates_parse_into_text_and_references():
    assert parse_template("plain", "f") == "plain"
    assert parse_template("{{ a }}", "f") == Ref("a")
    assert parse_template("x{{a.b}}y{{c}}", "f") == Template(("x", Ref("a", ("b",)), "y", Ref("c")))


@pytest.mark.parametrize(
    ("build", "where"),
    [
        (lambda: get(literal("/p/{{x}}")), lambda c: c["path"]),
        (lambda: get("/q", query={"f": literal("{{x}}")}), lambda c: c["query"][0][1]),
        (lambda: get("/h", headers={"X-T": literal("a {{b}}")}), lambda c: c["headers"][0][1]),
        (lambda: post("/b", body=literal("a {{b}}")), lambda c: c["body"]),
        (lambda: post("/j", json={"k": literal("{{v}}")}), lambda c: c["body"]),
    ],
)
def test_literal_is_accepted_wherever_a_template_is(build, where):
    config = build().to_config()
    rendered = json.dumps(where(config))
    assert '"ref"' not in rendered  # nothing was read as a reference
    assert "{{" in rendered or "%7B%7B" in rendered  # the braces are there, as text


def test_a_literal_path_is_the_requests_default_name_and_is_percent_encoded():
    request = get(literal("/p/{{x}}"))
    assert request.name == "/p/{{x}}"
    assert request.to_config()["path"] == ["lit", "/p/%7B%7Bx%7D%7D"]
