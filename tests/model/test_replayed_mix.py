"""The bar: a known mix run by stressbed through a real nginx (Debian's nginx-light), its access
log modelled, the module replayed through nginx again and modelled again (``--check``).
Weights within 2 percentage points, every template right, the module formatted and rendering,
no secret of the input in it. And a population of real k6 agents, modelled back as one."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest

from stressbed.app.replay import LOG_FORMAT, replay_target
from stressbed.model.learn import learn
from stressbed.model.read import read_inputs
from stressbed.model.write import endpoints_of

from ..conftest import needs_k6

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)

SECRET = "hunter2-Sup3rSecretValue"
EMAIL = "alice.operator@example.org"

KNOWN = f'''
from stressbed import ConstantArrivalRate, Scenario, Workload, gen, get, mix, post

VARIABLES = {{"agent_id": gen.uuid4(), "task": gen.uniform_int(1, 100000)}}
TRAFFIC = mix(
    (
        get(
            "/v1/agents/{{{{agent_id}}}}/config",
            query={{"limit": gen.choice({{"10": 3, "50": 1}})}},
        ),
        50,
    ),
    (
        post(
            "/v1/agents/{{{{agent_id}}}}/report",
            json={{
                "cpu": gen.normal(50, 10, minimum=0, maximum=100),
                "os": gen.choice({{"linux": 8, "windows": 2}}),
                "owner": "{EMAIL}",
            }},
        ),
        30,
    ),
    (get("/v1/tasks/{{{{task}}}}"), 15),
    (
        post(
            "/v1/login",
            json={{"password": "{SECRET}"}},
            headers={{"Authorization": "Bearer {SECRET}"}},
        ),
        5,
    ),
)
scenario = Scenario(
    "known",
    description="a known mix",
    variables=VARIABLES,
    workloads=[
        Workload(
            "mix",
            TRAFFIC,
            ConstantArrivalRate(rate=100, duration="20s", pre_allocated_vus=20, max_vus=40),
        )
    ],
)
'''
WEIGHTS = {
    "GET /v1/agents/{agent_id}/config": 0.50,
    "POST /v1/agents/{agent_id}/report": 0.30,
    "GET /v1/tasks/{task_id}": 0.15,
    "POST /v1/login": 0.05,
}


def stressbed(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "K6_NO_USAGE_REPORT": "true"}
    return subprocess.run(
        [sys.executable, "-m", "stressbed", *args],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
        env=env,
        timeout=600,
    )


def replayed(scenario: Path, workdir: Path, duration: str) -> Path:
    """Run ``scenario`` at a fresh replay nginx for ``duration``; the log nginx wrote."""
    with replay_target(workdir / "nginx") as target:
        done = stressbed(
            "run", "--scenario", str(scenario), "--target-url", target.url,
            "--results", str(workdir / "results"), "--duration", duration,
        )  # fmt: skip
        assert done.returncode in (0, 1), done.stderr[-2000:]
    return target.log


def shares(log: Path) -> dict[str, float]:
    with ExitStack() as stack:
        reading = read_inputs([log], LOG_FORMAT, stack)
        learned = learn(reading.hits)
    assert reading.tallies[0].bad == 0, reading.tallies[0].examples
    return {e.key: e.stats.count / learned.count for e in endpoints_of(learned)}


@needs_k6
@pytest.mark.skipif(NGINX is None, reason="no nginx (apt-get install nginx-light)")
def test_a_known_mix_is_modelled_back_from_nginx_s_log_and_replays_to_the_same_mix(tmp_path):
    known = tmp_path / "known.py"
    known.write_text(KNOWN)
    log = replayed(known, tmp_path / "first", "20s")
    first = shares(log)
    assert set(first) == set(WEIGHTS)  # every template exactly
    for key, weight in WEIGHTS.items():
        assert abs(first[key] - weight) <= 0.02, (key, first[key])

    module = tmp_path / "modelled.py"
    done = stressbed(
        "model", str(log), "-o", str(module), "--format", LOG_FORMAT, "--compress", "15s"
    )
    assert done.returncode == 0, done.stderr
    text = module.read_text()
    for secret in (SECRET, EMAIL, "127.0.0.1"):
        assert secret not in text
    # The query parameter as the categories it was drawn from (3:1).
    found = re.search(r'"limit": gen.choice\(\{"10": (\d+), "50": (\d+)\}\)', text)
    assert found is not None, text
    assert 70 <= int(found.group(1)) <= 80
    formatted = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--diff", str(module)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert formatted.returncode == 0, formatted.stdout
    rendered = stressbed("render", "--scenario", str(module), "-o", str(tmp_path / "bundle"))
    assert rendered.returncode == 0, rendered.stderr

    # stressbed model --check: the module replayed through nginx again, its log modelled
    # again: the same mix, every weight within 2 pp.
    checked = stressbed(
        "model", str(log), "-o", str(tmp_path / "checked.py"), "--format", LOG_FORMAT,
        "--check", "--check-duration", "15s", "--check-peak", "100",
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    worst = re.search(r"weights: largest difference ([0-9.]+) pp", checked.stdout)
    assert worst is not None, checked.stdout
    assert float(worst.group(1)) <= 2.0, checked.stdout
    assert "every template replayed" in checked.stdout
    replayed_n = re.search(r"replayed ([0-9,]+) requests", checked.stdout)
    assert replayed_n is not None, checked.stdout
    assert int(replayed_n.group(1).replace(",", "")) >= 1000  # a peak of 100/s for 15 s


AGENTS = """
from stressbed import Scenario, get, post
from stressbed.population import Agent, KeepAlive, every, population

AGENT = Agent(
    channel=KeepAlive(),
    register=post("/v1/register", json={"agent_id": "{{agent_id}}"}),
    activities=[every("2s", get("/v1/agents/{{agent_id}}/checkin"), jitter="10%")],
)
scenario = Scenario(
    "fleet",
    description="40 agents checking in every 2 s",
    workloads=[population("agents", AGENT, agents=40, join="2s", lasting="30s")],
)
"""


@needs_k6
@pytest.mark.skipif(NGINX is None, reason="no nginx (apt-get install nginx-light)")
def test_agents_checking_in_through_nginx_are_modelled_as_a_population(tmp_path):
    fleet = tmp_path / "fleet.py"
    fleet.write_text(AGENTS)
    log = replayed(fleet, tmp_path / "run", "34s")
    module = tmp_path / "modelled.py"
    done = stressbed("model", str(log), "-o", str(module), "--format", LOG_FORMAT)
    assert done.returncode == 0, done.stderr
    text = module.read_text()
    # Each agent's id in its check-in path names it (the register, sent before it has one in
    # a path, is its address's: one address here, bound to the first agent only).
    assert "register=" not in text or "POST_REGISTER" in text
    found = re.search(r'population\("agents", AGENT, agents=(\d+)', text)
    assert found is not None, text
    assert 32 <= int(found.group(1)) <= 40  # at once on average: the join and end trim it
    assert re.search(r'every\("2s", GET_AGENTS_CHECKIN, jitter="(\d+)%"\)', text), text
    assert '"/v1/agents/{{agent_id}}/checkin"' in text
    rendered = stressbed("render", "--scenario", str(module), "-o", str(tmp_path / "bundle"))
    assert rendered.returncode == 0, rendered.stderr
