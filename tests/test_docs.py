"""The README stays true: its example scenario builds and renders, its error line is real."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stressbed import ConfigError, render
from stressbed.scenario import catalog

README = Path(__file__).parent.parent / "README.md"


def _example(marker: str = '"mine"') -> str:
    """The README's Python example that holds ``marker``."""
    (code,) = [
        block
        for block in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
        if marker in block
    ]
    return code


def test_the_readme_example_builds_and_renders(tmp_path: Path):
    (tmp_path / "hosts.csv").write_text("host\n" + "".join(f"h{i}\n" for i in range(300)))
    module = tmp_path / "mine.py"
    module.write_text(_example())
    scenario = catalog.load(str(module))
    assert scenario.name == "mine"
    bundle = render(scenario, tmp_path / "out")
    assert bundle.script.is_file()


def test_the_readme_population_example_builds_and_renders(tmp_path: Path):
    module = tmp_path / "fleet.py"
    module.write_text(_example("population("))
    scenario = catalog.load(str(module))
    assert scenario.workloads[0].profile.peak_vus() == 2  # 2,000 agents, 1,000 a VU
    assert render(scenario, tmp_path / "out").script.is_file()


def test_the_readme_error_line_is_what_stressbed_prints(tmp_path: Path):
    (tmp_path / "hosts.csv").write_text("host\n" + "".join(f"h{i}\n" for i in range(300)))
    module = tmp_path / "mine.py"
    module.write_text(_example().replace('"/v1/tasks/{{task_id}}"', '"/v1/tasks/{{task}}"'))
    with pytest.raises(ConfigError) as info:
        catalog.load(str(module))
    line = f"stressbed: error: {info.value}"
    assert line in README.read_text()


def test_the_readme_shows_the_two_commands():
    text = README.read_text()
    assert "nox -s stress" in text
    assert "nox -s tests" in text
