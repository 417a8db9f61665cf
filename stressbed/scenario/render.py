"""Rendering: a validated :class:`~stressbed.scenario.Scenario` becomes a k6 bundle.

    DIR/script.js              the entry script; constant text, no user value in it
    DIR/config.json            the scenario as data (every user string JSON-encoded here)
    DIR/lib/stressbed/*.js     the runtime that interprets config.json
    DIR/data/*.json            data-file rows, converted to JSON

``TARGET_URL=http://127.0.0.1:8080 k6 run DIR/script.js`` runs it; nothing else is needed.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ConfigError, RenderError
from .model import Scenario

__all__ = [
    "ENTRY_SCRIPT",
    "Bundle",
    "agents_per_runner",
    "bundle_files",
    "render",
    "request_names",
]

ENTRY_SCRIPT = """\
// k6 entry script rendered by stressbed. The scenario itself is data in config.json, which
// the runtime in lib/stressbed/ interprets. Edit the scenario in Python and render again.
//
//   TARGET_URL=http://127.0.0.1:8080 k6 run script.js
import { createTest } from './lib/stressbed/index.js';

const test = createTest(JSON.parse(open('./config.json')), (path) => open(path));

export const options = test.options;

export function setup() {
  return test.setup();
}

export default function (data) {
  return test.iteration(data);
}

export function teardown(data) {
  test.teardown(data);
}
"""

RUNTIME_DIR = Path("lib") / "stressbed"


@dataclass(frozen=True)
class Bundle:
    """Where a rendered scenario lies on disk."""

    root: Path
    scenario: str

    @property
    def script(self) -> Path:
        return self.root / "script.js"

    @property
    def config(self) -> Path:
        return self.root / "config.json"


def runtime_files() -> dict[str, str]:
    """The runtime's JS sources by file name."""
    package = resources.files("stressbed.scenario") / "runtime"
    return {
        entry.name: entry.read_text(encoding="utf-8")
        for entry in sorted(package.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".js")
    }


def config_text(scenario: Scenario) -> str:
    """config.json's exact text: stable, so golden files and diffs are meaningful."""
    return json.dumps(scenario.to_config(), indent=2, ensure_ascii=False) + "\n"


def request_names(config: Any) -> list[str]:
    """The request names a bundle's config.json declares, each once, in document order: the
    ``name`` tag the runtime gives every request it makes (the path template by default), so
    every runner of a bundle reads the same list."""
    return list(dict.fromkeys(_names(config)))


def agents_per_runner(config: Any, runners: int) -> int:
    """The most simulated agents one of ``runners`` runners holds (each a WebSocket, its memory
    and an open file): k6 gives a runner at most ``ceil(vus / runners)`` of a population's VUs
    and each VU ``per_vu`` agents; 0 without a population."""
    most = 0
    for node in (config.get("workloads") or {}).values():
        population = node.get("population") if isinstance(node, dict) else None
        if population is not None:
            vus = -(-int(population["agents"]) // int(population["per_vu"]))
            share = -(-vus // runners) * int(population["per_vu"])
            most += min(share, int(population["agents"]))
    return most


def _names(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if node.get("type") == "request" and isinstance(node.get("name"), str):
            yield node["name"]
        for value in node.values():
            yield from _names(value)
    elif isinstance(node, list):
        for value in node:
            yield from _names(value)


def render(scenario: Scenario, out_dir: Path) -> Bundle:
    """Validate ``scenario`` again and write its bundle to ``out_dir``."""
    try:
        scenario.validate()
        rows = {
            r.bundle_path: r.data.load(f"data file {r.data.path}") for r in scenario.data_files()
        }
    except ConfigError as exc:
        raise exc.in_scenario(scenario.name) from None
    config = config_text(scenario)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for stale in (out_dir / RUNTIME_DIR, out_dir / "data"):
            if stale.is_dir():
                shutil.rmtree(stale)
        (out_dir / RUNTIME_DIR).mkdir(parents=True)
        for name, text in runtime_files().items():
            (out_dir / RUNTIME_DIR / name).write_text(text, encoding="utf-8")
        for path, data in rows.items():
            target = out_dir / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        (out_dir / "config.json").write_text(config, encoding="utf-8")
        (out_dir / "script.js").write_text(ENTRY_SCRIPT, encoding="utf-8")
    except OSError as exc:
        raise RenderError(f"cannot write the bundle to {out_dir}: {exc.strerror or exc}") from exc
    return Bundle(out_dir, scenario.name)


def bundle_files(root: Path) -> dict[str, str]:
    """Every file of a rendered bundle by its path relative to ``root`` (all text): what a
    ConfigMap carries to runners in a cluster."""
    return {
        path.relative_to(root).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }
