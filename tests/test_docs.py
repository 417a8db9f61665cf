"""The README and the documentation site stay true: their example scenarios build and render,
their error line is real, every command and option they name exists (and every one that
exists is in the generated reference, with its help), the README stays short and links every
capability's page, and the Python API page is the public namespace."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from stressbed import ConfigError, render
from stressbed.scenario import catalog

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
#: Every page a reader can open: the README and the site's Markdown.
PAGES = [README, *sorted(DOCS.rglob("*.md"))]


def _text() -> str:
    return "\n".join(page.read_text() for page in PAGES)


def _example(marker: str = '"mine"') -> str:
    """The documentation's Python example that holds ``marker``."""
    (code,) = [
        block
        for block in re.findall(r"```python\n(.*?)```", _text(), flags=re.S)
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
    assert line in _text()


def test_the_readme_shows_the_two_commands():
    text = README.read_text()
    assert "nox -s stress" in text
    assert "nox -s tests" in text


def test_the_readme_is_short_and_links_every_capability_s_page():
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    linked = set(re.findall(r"\]\((docs/[^)#]+)", text))
    for page in [
        *sorted((DOCS / "guides").glob("*.md")),
        *sorted((DOCS / "backends").glob("*.md")),
    ]:
        assert str(page.relative_to(ROOT)) in linked, page


def _commands() -> dict[tuple[str, ...], set[str]]:
    """Each command of the parser (a path of names) and its options."""
    from stressbed.app.cli_reference import arguments, commands  # noqa: PLC0415

    return {path: {o for a in arguments(sub) for o in a.option_strings} for path, sub in commands()}


def test_every_command_and_option_is_in_the_reference_with_its_help():
    from stressbed.app.cli_reference import arguments, commands, markdown  # noqa: PLC0415

    reference = markdown()
    for path, sub in commands():
        assert f"## `stressbed {' '.join(path)}`" in reference
        for action in arguments(sub):
            named = action.option_strings or [action.metavar or action.dest]
            assert all(f"`{n}`" in reference for n in named), (path, named)
            assert action.help, f"stressbed {' '.join(path)} {named[0]} has no help"


_CALL = re.compile(r"(?:\bstressbed|nox -s (stress|capacity) --) ((?:[a-z]+ ?){0,2})([^\n`]*)")


def test_every_option_the_documentation_gives_a_command_exists():
    known = _commands()
    said = []
    for page in PAGES:
        for line in page.read_text().splitlines():
            for session, words, rest in _CALL.findall(line):
                names = (
                    tuple(words.split())
                    if not session
                    else ("run" if session == "stress" else "capacity",)
                )
                path = next((names[:n] for n in (2, 1) if names[:n] in known), None)
                if path is None:
                    continue
                options = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", rest))
                said += [(page.name, path, o) for o in options - known[path] - {"--"}]
    assert said == []


def test_the_python_api_page_is_the_public_namespace():
    import stressbed  # noqa: PLC0415

    page = (DOCS / "reference" / "python-api.md").read_text()
    documented = set(re.findall(r"^::: stressbed\.(\w+)$", page, flags=re.M))
    assert documented == set(stressbed.__all__) - {"__version__"}


def test_every_exit_code_is_documented():
    page = (DOCS / "reference" / "exit-codes.md").read_text()
    for code in (0, 1, 2, 3, 130):
        assert f"| {code} |" in page


def test_the_changelog_names_the_version_pyproject_gives():
    import tomllib  # noqa: PLC0415

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog
    assert re.search(rf"^## \[{re.escape(version)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", changelog, re.M)


def _runnable() -> list[tuple[str, list[str]]]:
    """Each block marked ``<!-- runnable -->`` in the documentation: its page and its lines
    (the indented code block after the marker and a blank line)."""
    found = []
    for page in PAGES:
        lines = page.read_text().splitlines()
        for i, line in enumerate(lines):
            if line.strip() != "<!-- runnable -->":
                continue
            block = []
            for after in lines[i + 2 :]:  # a blank line ends the marker's HTML block
                if not after.startswith("    "):
                    break
                block.append(after.strip())
            found.append((page.name, block))
    return found


def test_the_documentation_marks_commands_that_run_here():
    assert len(_runnable()) >= 3
    assert all(block for _, block in _runnable())


@pytest.mark.parametrize(("page", "block"), _runnable(), ids=lambda v: str(v)[:40])
def test_each_runnable_block_runs_as_written(tmp_path: Path, page: str, block: list[str]):
    """Each line from an empty directory, in order: ``stressbed ...`` as the installed
    command, ``k6 ...`` as the k6 stressbed runs; each exits 0."""
    import shlex  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    from stressbed.fleet.runner import find_k6  # noqa: PLC0415

    for line in block:
        words = shlex.split(line, comments=True)
        if words[0] == "stressbed":
            argv = [sys.executable, "-m", "stressbed", *words[1:]]
        else:
            assert words[0] == "k6", f"{page}: {line!r} is not a stressbed or k6 command"
            argv = [str(find_k6()), *words[1:]]
        done = subprocess.run(
            argv,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "K6_NO_USAGE_REPORT": "true", "PYTHONPATH": str(ROOT)},
        )
        assert done.returncode == 0, (page, line, done.stderr[-2000:])


def test_every_run_setting_is_in_the_profile_reference_and_the_guide():
    from stressbed.app.cli_reference import profile_markdown  # noqa: PLC0415
    from stressbed.app.settings import RUN_KEYS  # noqa: PLC0415

    reference = profile_markdown()
    guide = (DOCS / "guides" / "running.md").read_text()
    (keys,) = [p for p in guide.split("\n\n") if p.startswith("Run keys:")]
    for key in RUN_KEYS:
        assert f"| `{key}` |" in reference
        assert f"`{key}`" in keys, key


def test_every_exit_code_an_error_carries_is_documented():
    import inspect  # noqa: PLC0415

    from stressbed import errors  # noqa: PLC0415

    page = (DOCS / "reference" / "exit-codes.md").read_text()
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", page, flags=re.M)}
    carried = {
        cls.exit_code
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.StressbedError)
    }
    assert carried <= documented
    assert documented == {0, 1, 2, 3, 130}  # 0 and 1 the verdict's, 130 an interrupt's


def test_the_schemas_are_valid_json_schemas_and_rendered_whole():
    import jsonschema  # noqa: PLC0415

    from stressbed.results.schemas import SCHEMAS, markdown  # noqa: PLC0415

    page = markdown()
    for name, schema in SCHEMAS.items():
        jsonschema.Draft202012Validator.check_schema(schema)
        assert set(schema["required"]) <= set(schema["properties"])
        assert f"## {name}" in page
        assert all(f"| `{field}` |" in page for field in schema["properties"])
