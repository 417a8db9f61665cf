"""The layout holds: layers import downwards only, no import cycle, small modules, a few at the
top, private modules kept private (and a backend's private names too, from other backends),
and the command line free of the Kubernetes extra.

Imports are read from the source (every ``import`` statement, at any depth: lazy imports inside
functions and ``TYPE_CHECKING`` blocks count), so a violation fails here before it runs.
``nox -s lint`` runs this file too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
#: Code outside the package that imports it (tests aside): the Pulumi program, tools, scenarios.
OUTSIDE = ("infra", "tools", "scenarios")

#: Each layer may import its own and the layers listed before it; fleet and stack are peers
#: that never import each other, and so are results and model (and history beside fleet and
#: stack).
LAYERS = ["errors", "scenario", "results|model", "fleet|stack|history", "backends", "app"]
#: Top-level modules and the layer they belong to.
TOP_LEVEL = {
    "stressbed": "scenario",  # __init__: the public API is the scenario DSL
    "stressbed.errors": "errors",
    "stressbed.gen": "scenario",
    "stressbed.check": "scenario",
    "stressbed.extract": "scenario",
    "stressbed.fault": "scenario",
    "stressbed.population": "scenario",
    "stressbed.thresholds": "scenario",
    "stressbed.runner": "fleet",
    "stressbed.coordinator": "fleet",
    "stressbed.balancer": "backends",
    "stressbed.testing": "backends",
    "stressbed.cli": "app",
    "stressbed.__main__": "app",
}
#: Subpackages that must stay pure: no processes, no threads, no sockets.
PURE = ("scenario", "results", "model", "stack")
NOT_PURE = {"subprocess", "threading", "multiprocessing", "concurrent", "asyncio", "socket"}
NOT_PURE |= {"signal", "ctypes"}
#: Third-party packages only the Kubernetes backend may import.
CLUSTER_ONLY = ("pulumi", "pulumi_kubernetes", "pulumi_docker", "pulumi_random", "kubernetes")
MAX_LINES = 600
MAX_TOP_LEVEL = 15


def modules(root: Path, package: str = "stressbed") -> dict[str, Path]:
    """Every module of ``package`` under ``root``, by dotted name (a package by its own)."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> Iterator[str]:
    """The modules ``name`` imports: internal ones resolved to modules of ``known`` where the
    import names one, third-party ones by their top-level name."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            named = [f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in known]
            yield from named or [module]


def graph(root: Path, package: str = "stressbed") -> dict[str, set[str]]:
    """Module -> every module it imports (internal names as found, third-party top-level)."""
    found = modules(root, package)
    known = set(found)
    return {name: set(imports(name, path, known)) for name, path in found.items()}


def layer_of(name: str) -> str:
    if name in TOP_LEVEL:
        return TOP_LEVEL[name]
    return name.split(".")[1]


def rank(layer: str) -> int:
    return next(i for i, group in enumerate(LAYERS) if layer in group.split("|"))


def layering_violations(edges: dict[str, set[str]]) -> list[str]:
    bad = []
    for source, targets in sorted(edges.items()):
        for target in sorted(t for t in targets if t in edges):
            here, there = layer_of(source), layer_of(target)
            if rank(there) > rank(here) or (rank(there) == rank(here) and here != there):
                bad.append(f"{source} ({here}) imports {target} ({there})")
    return bad


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(edges[node] & edges.keys()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in edges[node]:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def private_leaks(root: Path, edges: dict[str, set[str]]) -> list[str]:
    """Importers of a ``_module`` from outside the package that holds it."""
    known = set(edges)
    importers = dict(edges)
    for folder in OUTSIDE:
        for path in sorted((root / folder).rglob("*.py")):
            importers[str(path.relative_to(root))] = set(imports("", path, known))
    bad = []
    for importer, targets in sorted(importers.items()):
        for target in sorted(targets & known):
            leaf = target.rsplit(".", 1)[-1]
            if not leaf.startswith("_") or leaf.startswith("__"):
                continue
            home = target.rsplit(".", 1)[0]
            if not (importer == home or importer.startswith(home + ".")):
                bad.append(f"{importer} imports the private {target}")
    return bad


def backend_of(name: str) -> str | None:
    """The backend subpackage ``name`` is in (``local`` for stressbed.backends.local.stack)."""
    parts = name.split(".")
    if len(parts) > 2 and parts[:2] == ["stressbed", "backends"]:
        return parts[2]
    return None


def cross_backend_privates(root: Path) -> list[str]:
    """A backend built on another uses only what that one makes public: no ``_module`` of it
    and no ``_name`` from any of its modules (a private name is free to change)."""
    found = modules(root)
    bad = []
    for name, path in sorted(found.items()):
        own = backend_of(name)
        if own is None:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                pairs = [(alias.name, "") for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = name.split(".")
                base = base[: len(base) - node.level + (path.name == "__init__.py")]
                module = ".".join([*base, node.module] if node.module else base)
                module = module if node.level else node.module or ""
                pairs = [(module, alias.name) for alias in node.names]
            else:
                continue
            for module, imported in pairs:
                other = backend_of(module)
                if other is None or other == own:
                    continue
                private = [
                    part
                    for part in [*module.split(".")[3:], imported]
                    if part.startswith("_") and not part.startswith("__")
                ]
                if private:
                    bad.append(f"{name} imports {'.'.join(private)} from the {other} backend")
    return bad


# -- the rules, on stressbed itself --------------------------------------------------------------


@pytest.fixture(scope="module")
def edges() -> dict[str, set[str]]:
    return graph(ROOT)


def test_layers_import_downwards_only(edges):
    assert layering_violations(edges) == []


def test_no_import_cycle_lazy_imports_included(edges):
    assert cycles(edges) == []


def test_pure_layers_start_no_process_or_thread(edges):
    impure = {
        name: sorted(t.split(".")[0] for t in targets if t.split(".")[0] in NOT_PURE)
        for name, targets in edges.items()
        if layer_of(name) in PURE
    }
    assert {name: found for name, found in impure.items() if found} == {}


def test_only_the_kubernetes_backend_imports_pulumi_or_kubernetes(edges):
    users = sorted(
        name
        for name, targets in edges.items()
        if any(t.split(".")[0] in CLUSTER_ONLY for t in targets)
    )
    assert users
    assert [u for u in users if not u.startswith("stressbed.backends.kubernetes")] == []


def test_private_modules_are_imported_only_from_their_own_package(edges):
    assert private_leaks(ROOT, edges) == []


def test_a_backend_uses_only_what_another_makes_public():
    assert cross_backend_privates(ROOT) == []


def test_modules_are_small_and_few_at_the_top():
    long = {
        str(p.relative_to(ROOT)): n
        for p in (ROOT / "stressbed").rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}
    assert len(list((ROOT / "stressbed").glob("*.py"))) <= MAX_TOP_LEVEL


def test_every_subpackage_says_what_it_owns_and_may_import():
    for init in sorted((ROOT / "stressbed").glob("*/**/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        assert "import" in doc, init
        assert len(doc) > 200, init


def test_the_command_line_loads_no_pulumi_or_kubernetes_module():
    code = textwrap.dedent(
        """
        import sys
        import stressbed.cli
        from stressbed.backends import registry
        registry.create("local", {{}})
        print(sorted(m for m in sys.modules if m.split(".")[0] in {CLUSTER_ONLY!r}
                     or m.startswith("stressbed.backends.kubernetes")))
        """
    ).format(CLUSTER_ONLY=CLUSTER_ONLY)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "[]"


def test_the_runner_and_the_coordinator_load_nothing_the_runner_image_lacks():
    # runner/Dockerfile installs k6 and stressbed with --no-deps: no numpy, Bokeh or aiohttp.
    code = textwrap.dedent(
        """
        import sys
        import stressbed.runner, stressbed.coordinator
        from stressbed.results.runner_result import RunnerResult
        print(sorted(m for m in sys.modules if m.split(".")[0] in
                     {"numpy", "bokeh", "aiohttp", "yaml", "docker", "pulumi", "kubernetes"}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "[]"


# -- the checks can fail -------------------------------------------------------------------------


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_checks_catch_an_upward_import_a_lazy_cycle_and_a_private_leak(tmp_path):
    write(
        tmp_path,
        {
            "stressbed/__init__.py": "",
            "stressbed/errors.py": "",
            "stressbed/scenario/__init__.py": "",
            "stressbed/scenario/model.py": "from ..app import plan\n",  # upward
            "stressbed/app/__init__.py": "",
            "stressbed/app/plan.py": "from ..scenario import model\n",
            "stressbed/fleet/__init__.py": "",
            "stressbed/fleet/runner.py": "def f():\n    from . import coordinator\n",
            "stressbed/fleet/coordinator.py": "from .runner import f\n",  # lazy cycle
            "stressbed/fleet/_k6api.py": "",
            "stressbed/stack/__init__.py": "",
            "stressbed/stack/spec.py": "from ..fleet import _k6api\n",  # peer and private
            "tools/bench.py": "from stressbed.fleet._k6api import x\n",
        },
    )
    edges = graph(tmp_path)
    assert layering_violations(edges) == [
        "stressbed.scenario.model (scenario) imports stressbed.app.plan (app)",
        "stressbed.stack.spec (stack) imports stressbed.fleet._k6api (fleet)",
    ]
    assert cycles(edges) == [
        ["stressbed.app.plan", "stressbed.scenario.model"],
        ["stressbed.fleet.coordinator", "stressbed.fleet.runner"],
    ]
    assert private_leaks(tmp_path, edges) == [
        "stressbed.stack.spec imports the private stressbed.fleet._k6api",
        "tools/bench.py imports the private stressbed.fleet._k6api",
    ]


def test_the_backend_check_catches_a_private_name_and_module_of_another_backend(tmp_path):
    write(
        tmp_path,
        {
            "stressbed/backends/__init__.py": "",
            "stressbed/backends/local/__init__.py": "from ._replica import Exit\n",
            "stressbed/backends/local/_replica.py": "",
            "stressbed/backends/local/stack.py": "from ._replica import Exit\n",
            "stressbed/backends/docker/__init__.py": "",
            "stressbed/backends/docker/stack.py": (
                "from ..local import Exit\n"  # public: fine
                "from ..local.stack import LocalStack, _Replica\n"
                "from ..local import _replica\n"
            ),
            "stressbed/backends/docker/fleet.py": (
                "import stressbed.backends.local._replica\n"
                "from stressbed.backends.docker import _engine\n"  # its own: fine
            ),
        },
    )
    assert cross_backend_privates(tmp_path) == [
        "stressbed.backends.docker.fleet imports _replica from the local backend",
        "stressbed.backends.docker.stack imports _Replica from the local backend",
        "stressbed.backends.docker.stack imports _replica from the local backend",
    ]
