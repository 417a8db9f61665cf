"""A k6 killed by the kernel's OOM killer is reported as OOM-killed, not as a generic crash.

Runs a runner inside a memory cgroup of its own with a small limit (needs a writable memory
cgroup, v1 or v2; skipped otherwise) and a k6 script that allocates without end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from stressbed import ConstantVUs, Scenario, Workload, get, render
from stressbed.fleet import _k6api as k6api
from stressbed.fleet.oom import CGROUP_ROOT
from stressbed.results.runner_result import RunnerResult, RunnerStatus

from ..conftest import needs_k6

pytestmark = [needs_k6, pytest.mark.k6]

LIMIT = 400 * 1024 * 1024
HOG = """\
export const options = { scenarios: { w: { executor: 'constant-vus', vus: 1, duration: '60s' } } };
const hog = [];
export default function () {
  for (let i = 0; i < 50; i++) hog.push('x'.repeat(1 << 20) + i);
}
"""


def memory_cgroup() -> Path | None:
    """A new memory cgroup under this process's, limited to LIMIT; None if not allowed."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "" and (CGROUP_ROOT / "cgroup.controllers").exists():
            parent, limits = (
                CGROUP_ROOT / path.lstrip("/"),
                {"memory.max": LIMIT, "memory.swap.max": 0},
            )
        elif "memory" in controllers.split(","):
            parent = CGROUP_ROOT / "memory" / path.lstrip("/")
            limits = {"memory.limit_in_bytes": LIMIT, "memory.memsw.limit_in_bytes": LIMIT}
        else:
            continue
        group = parent / f"stressbed-test-{uuid.uuid4().hex[:8]}"
        try:
            group.mkdir()
            for name, value in limits.items():
                if (group / name).exists():
                    (group / name).write_text(str(value))
        except OSError:
            if group.exists():
                group.rmdir()
            return None
        return group
    return None


@pytest.fixture
def cgroup():
    group = memory_cgroup()
    if group is None:
        pytest.skip("no writable memory cgroup on this machine")
    yield group
    group.rmdir()


def test_an_oom_killed_k6_is_reported_as_such(tmp_path, cgroup, server):
    scenario = Scenario(
        "hog",
        description="hog",
        workloads=[Workload("w", get("/"), ConstantVUs(vus=1, duration="60s"))],
    )
    bundle = render(scenario, tmp_path / "bundle")
    bundle.script.write_text(HOG)
    procs = str(cgroup / "cgroup.procs")

    def enter_cgroup() -> None:
        with open(procs, "w") as f:
            f.write(str(os.getpid()))

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stressbed.runner",
            "--bundle",
            str(bundle.root),
            "--index",
            "0",
            "--count",
            "1",
            "--out",
            str(tmp_path / "out"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "TARGET_URL": server.url},
        preexec_fn=enter_cgroup,  # noqa: PLW1509 - one write, before exec
    )
    try:
        ready = json.loads(proc.stdout.readline())
        assert ready["event"] == "ready", ready
        k6api.resume(ready["api"])
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    done = json.loads(out.strip().splitlines()[-1])
    assert done["status"] == "oom_killed", (done, err)
    result = RunnerResult.read(tmp_path / "out" / "result.json")
    assert result.status is RunnerStatus.OOM_KILLED
    assert result.exit_code == -9
    assert "OOM killer" in result.reason
