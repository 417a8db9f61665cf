"""Rendering: bundle layout, golden configs of the shipped scenarios, secrets kept out."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from stressbed import (
    ConfigError,
    RenderError,
    Scenario,
    SharedIterations,
    Workload,
    gen,
    post,
    render,
)
from stressbed.scenario import catalog
from stressbed.scenario.render import ENTRY_SCRIPT, config_text, runtime_files

from ..conftest import needs_k6, run_k6

GOLDEN = Path(__file__).parent / "golden"
SHIPPED = ["capacity_ramp", "ingest_mix", "task_journey"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenarios_render_to_their_golden_config(name):
    """Set STRESSBED_UPDATE_GOLDEN=1 to rewrite the golden files after a deliberate change."""
    text = config_text(catalog.load(name))
    golden = GOLDEN / f"{name}.config.json"
    if os.environ.get("STRESSBED_UPDATE_GOLDEN") == "1":
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


def test_a_bundle_holds_script_config_runtime_and_data(tmp_path: Path):
    bundle = render(catalog.load("ingest_mix"), tmp_path / "out")
    assert bundle.script.read_text() == ENTRY_SCRIPT
    assert json.loads(bundle.config.read_text())["scenario"] == "ingest_mix"
    lib = tmp_path / "out" / "lib" / "stressbed"
    assert sorted(p.name for p in lib.iterdir()) == sorted(runtime_files())
    (data,) = (tmp_path / "out" / "data").iterdir()
    rows = json.loads(data.read_text())
    assert len(rows) == 64
    assert rows[0]["hostname"] == "node-000"


def test_rendering_again_replaces_stale_runtime_and_data(tmp_path: Path):
    out = tmp_path / "out"
    render(catalog.load("ingest_mix"), out)
    (out / "data" / "stale.json").write_text("[]")
    (out / "lib" / "stressbed" / "old.js").write_text("")
    render(catalog.load("ingest_mix"), out)
    assert not (out / "data" / "stale.json").exists()
    assert not (out / "lib" / "stressbed" / "old.js").exists()


def test_an_unwritable_output_is_a_render_error(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(RenderError, match="cannot write the bundle"):
        render(catalog.load("ingest_mix"), blocker / "out")


def test_render_validates_again(tmp_path: Path):
    data = tmp_path / "rows.csv"
    data.write_text("a\n1\n")
    scenario = Scenario(
        "again",
        description="d",
        variables={"r": gen.rows(data)},
        workloads=[Workload("w", post("/"), SharedIterations(1, 1))],
    )
    data.unlink()
    with pytest.raises(ConfigError) as info:
        render(scenario, tmp_path / "out")
    assert info.value.scenario == "again"
    assert info.value.expected == "an existing CSV or JSON data file"


SECRET = "s3cr3t-value-that-must-not-leak"


def _secret_scenario() -> Scenario:
    return Scenario(
        "secret",
        description="uses a secret",
        variables={"token": gen.secret("STRESSBED_TEST_TOKEN")},
        workloads=[
            Workload(
                "w",
                post(
                    "/s", headers={"Authorization": "Bearer {{token}}"}, json={"token": "{{token}}"}
                ),
                SharedIterations(vus=1, iterations=3),
            )
        ],
    )


def test_a_secret_is_never_written_to_the_bundle(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("STRESSBED_TEST_TOKEN", SECRET)
    bundle = render(_secret_scenario(), tmp_path / "out")
    for path in bundle.root.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(encoding="utf-8")
    assert "STRESSBED_TEST_TOKEN" in bundle.config.read_text()


@needs_k6
@pytest.mark.k6
def test_a_secret_reaches_the_service_from_the_environment_only(server, tmp_path: Path):
    bundle = render(_secret_scenario(), tmp_path / "out")
    result = run_k6(bundle.script, {"TARGET_URL": server.url, "STRESSBED_TEST_TOKEN": SECRET})
    assert result.exit_code == 0, result.stderr
    assert [r.headers["Authorization"] for r in server.received] == [f"Bearer {SECRET}"] * 3
    assert SECRET not in json.dumps(result.summary)
    assert SECRET not in result.stderr


@needs_k6
@pytest.mark.k6
def test_a_missing_secret_stops_the_test_before_any_request(server, tmp_path: Path):
    if "STRESSBED_TEST_TOKEN" in os.environ:  # pragma: no cover - hermetic runs never set it
        pytest.skip("STRESSBED_TEST_TOKEN is set in this environment")
    bundle = render(_secret_scenario(), tmp_path / "out")
    result = run_k6(bundle.script, {"TARGET_URL": server.url})
    assert result.exit_code == 107
    assert "environment variable STRESSBED_TEST_TOKEN is not set" in result.stderr
    assert server.received == []
