"""The documentation site's build hooks (mkdocs.yml ``hooks:``): pages made in the build, never
kept in docs/.

- ``reference/cli.md``: the command line's reference, written from stressbed's own argument
  parser (:mod:`stressbed.app.cli_reference`), so an option cannot be missing or outlive its
  removal;
- ``reference/profile.md``: the profile file's keys, from the run settings themselves;
- ``reference/schemas.md`` and ``schemas/*.schema.json``: summary.json's and capacity.json's
  JSON Schemas (:mod:`stressbed.results.schemas`), rendered and published;
- ``benchmarks.md``: the repository's BENCHMARKS.md, as it is.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's stressbed, whatever the venv has installed

from stressbed.app.cli_reference import markdown, profile_markdown  # noqa: E402 - the path
from stressbed.results import schemas  # noqa: E402 - after the path above


def on_files(files: Files, config: Any) -> Files:
    files.append(File.generated(config, "reference/cli.md", content=markdown()))
    files.append(File.generated(config, "reference/profile.md", content=profile_markdown()))
    files.append(File.generated(config, "reference/schemas.md", content=schemas.markdown()))
    for name, schema in schemas.SCHEMAS.items():
        text = json.dumps(schema, indent=2) + "\n"
        files.append(
            File.generated(config, f"schemas/{name.split('.')[0]}.schema.json", content=text)
        )
    benchmarks = (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8")
    files.append(File.generated(config, "benchmarks.md", content=benchmarks))
    return files
