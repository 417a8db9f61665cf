"""What a runner, and so its k6, gets of stressbed's environment: the variables the scenario
reads, and what the runner and k6 need to run. Nothing else.

k6 hands its whole environment to the script as ``__ENV``, and a runner hands k6 its own: a
shell's cloud credentials, registry tokens or ``K6_CLOUD_TOKEN`` would otherwise reach every
runner of a load test that never asked for them (one ``console.log(__ENV)`` from a log). A
replica of the local stack gets the same treatment (:mod:`stressbed.backends.local.stack`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

__all__ = ["ALLOWED", "declared_environment", "declared_names", "runner_environment"]

#: What a runner takes from stressbed's environment whatever the scenario, and why. No secret
#: among them: each is how this machine runs programs and reaches the network.
ALLOWED: Mapping[str, str] = {
    "PATH": "the runner finds k6 on it when k6 is not beside stressbed's Python",
    "HOME": "k6 and Python resolve their per-user directories from it",
    "LANG": "the locale: how Python decodes file names and writes the runner's lines",
    "LC_ALL": "the locale, as LANG",
    "LC_CTYPE": "the locale, as LANG",
    "TZ": "the time zone of k6's log lines",
    "TMPDIR": "where Python and k6 put temporary files",
    "PYTHONPATH": "how `python -m stressbed.runner` finds stressbed when run from a checkout",
    "LD_LIBRARY_PATH": "an interpreter built against a libpython outside the system's paths",
    "HTTP_PROXY": "k6 (Go) reaches the target through the proxy this shell uses",
    "HTTPS_PROXY": "as HTTP_PROXY",
    "NO_PROXY": "as HTTP_PROXY",
    "http_proxy": "as HTTP_PROXY (Go reads both spellings)",
    "https_proxy": "as HTTP_PROXY",
    "no_proxy": "as HTTP_PROXY",
    "SSL_CERT_FILE": "k6 (Go) trusts a target's private CA from it",
    "SSL_CERT_DIR": "as SSL_CERT_FILE",
    "GOGC": "k6's garbage collector, when you tune it (the runner's default is 400)",
    "GOMEMLIMIT": "k6's heap bound, when you set it (else the runner derives one)",
    "GOMAXPROCS": "k6's threads, when you bound them",
}


def declared_names(bundle: Path) -> set[str]:
    """The environment variables a rendered bundle reads: every ``env(...)`` and
    ``secret(...)`` of its scenario (``["gen", "env", {"name": ...}]`` in config.json)."""
    try:
        document = json.loads((bundle / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    found: set[str] = set()
    pending: list[object] = [document]
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            if len(node) == 3 and node[:2] == ["gen", "env"] and isinstance(node[2], dict):
                found.add(str(node[2].get("name")))
            pending.extend(node)
        elif isinstance(node, dict):
            pending.extend(node.values())
    return found


def declared_environment(environ: Mapping[str, str], bundle: Path) -> dict[str, str]:
    """Of ``environ`` (stressbed's), the variables the bundle reads, and no other: what every
    backend's runners get of it, a local runner with the :data:`ALLOWED` names besides."""
    return {name: environ[name] for name in sorted(declared_names(bundle)) if name in environ}


def runner_environment(
    environ: Mapping[str, str], bundle: Path, run_env: Mapping[str, str]
) -> dict[str, str]:
    """A runner's environment: of ``environ`` (stressbed's) the :data:`ALLOWED` names and
    those the bundle declares; then ``run_env`` (TARGET_URL, the stack's secrets); and no
    usage report. A ``K6_*`` of the shell's is not passed: k6 would take it as an option over
    the scenario's (``K6_VUS``, ``K6_OUT``), or it is a credential (``K6_CLOUD_TOKEN``)."""
    allowed = {name: environ[name] for name in sorted(ALLOWED) if name in environ}
    return {
        **allowed,
        **declared_environment(environ, bundle),
        **run_env,
        "K6_NO_USAGE_REPORT": "true",
    }
