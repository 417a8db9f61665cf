"""The JS runtime's own tests, run in real k6 with a table of expected exit codes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stressbed.scenario.render import runtime_files

from ..conftest import needs_k6, run_k6

pytestmark = [needs_k6, pytest.mark.k6]

JS = Path(__file__).parent / "js"
EXPECTED = {
    "sampler.test.js": 0,
    "values.test.js": 0,
    "env.test.js": 0,
    "harness_fails.test.js": 107,  # a failing assertion must fail the run
}


def test_every_js_test_is_in_the_table():
    assert sorted(p.name for p in JS.glob("*.test.js")) == sorted(EXPECTED)


@pytest.mark.parametrize(("name", "exit_code"), sorted(EXPECTED.items()))
def test_js_runtime(tmp_path: Path, name: str, exit_code: int):
    lib = tmp_path / "lib" / "stressbed"
    lib.mkdir(parents=True)
    for file, text in runtime_files().items():
        (lib / file).write_text(text)
    shutil.copy(JS / "assert.js", tmp_path)
    shutil.copy(JS / name, tmp_path)
    result = run_k6(tmp_path / name, {})
    assert result.exit_code == exit_code, result.stderr
    if exit_code:
        assert "arithmetic: got 2, expected 3" in result.stderr
