"""Make the shipped example of `stressbed model`: a fleet's traffic through a real nginx, its
access log, and the module modelled from it.

python tools/model_example.py
    runs FLEET below (80 agents registering, then checking in every 5 s and reporting now and
    then; an operator's console listing and reading agents at 4 requests/s) with `stressbed
    run` through the replay nginx (stressbed/app/replay.py) for 60 s, writes the access log
    nginx wrote to scenarios/data/fleet_access.log.gz, and models it into
    scenarios/modelled_fleet.py with the command its docstring shows

`nox -s model_example` models that log again and checks it (`--check`): the example end to
end. The test suite holds the shipped module to what `stressbed model` writes from the
shipped log today.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from stressbed.app.replay import replay_target

ROOT = Path(__file__).resolve().parent.parent
LOG = Path("scenarios/data/fleet_access.log.gz")
MODULE = Path("scenarios/modelled_fleet.py")
#: What `stressbed model` is given (relative paths: the module's docstring shows them).
COMMAND = ["model", str(LOG), "-o", str(MODULE)]

FLEET = """
from stressbed import ConstantArrivalRate, Scenario, Workload, gen, get, mix, post
from stressbed.population import Agent, KeepAlive, every, population

AGENT = Agent(
    channel=KeepAlive(),
    identity={"agent_id": gen.uuid4(), "os": gen.choice({"linux": 7, "windows": 3})},
    register=post("/v1/register", json={"agent_id": "{{agent_id}}", "os": "{{os}}"}),
    activities=[
        every("5s", get("/v1/agents/{{agent_id}}/checkin", query={"v": "2.3.1"}), jitter="10%"),
        every(
            "30s",
            post(
                "/v1/agents/{{agent_id}}/report",
                json={
                    "cpu": gen.normal(35, 12, minimum=0, maximum=100),
                    "procs": gen.uniform_int(80, 400),
                },
            ),
            jitter="50%",
        ),
    ],
)
CONSOLE = mix(
    (get("/v1/agents", query={"page": gen.choice({"1": 6, "2": 3, "3": 1}), "limit": "50"}), 3),
    (get("/v1/tasks/{{task}}"), 1),
)
scenario = Scenario(
    "fleet",
    description="80 agents and an operator console",
    variables={"task": gen.uniform_int(1, 5000)},
    workloads=[
        population("agents", AGENT, agents=80, join="5s", lasting="55s"),
        Workload(
            "console",
            CONSOLE,
            ConstantArrivalRate(rate=4, duration="60s", pre_allocated_vus=4, max_vus=8),
        ),
    ],
)
"""


def main() -> None:
    os.chdir(ROOT)
    env = {**os.environ, "K6_NO_USAGE_REPORT": "true"}
    with tempfile.TemporaryDirectory(prefix="model-example-") as tmp:
        work = Path(tmp)
        fleet = work / "fleet.py"
        fleet.write_text(FLEET)
        with replay_target(work / "nginx") as target:
            subprocess.run(
                [
                    *(sys.executable, "-m", "stressbed", "run", "--scenario", str(fleet)),
                    *("--target-url", target.url, "--results", str(work / "results")),
                    *("--duration", "60s"),
                ],
                env=env,
                check=False,
                stdin=subprocess.DEVNULL,
                timeout=600,
            )
        LOG.write_bytes(gzip.compress(target.log.read_bytes(), mtime=0))
    subprocess.run([sys.executable, "-m", "stressbed", *COMMAND], check=True, env=env)
    print(f"wrote {LOG} and {MODULE}")


if __name__ == "__main__":
    main()
