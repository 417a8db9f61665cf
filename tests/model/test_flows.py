"""Clients, sessions and check-ins read from records: a population where the traffic is one,
journeys where clients repeat sessions, and every endpoint's share of the requests kept."""

from __future__ import annotations

import random
import re
import uuid
from pathlib import Path

import pytest

from stressbed.app.model_read import read_and_learn
from stressbed.model.flows import plan_flows
from stressbed.model.hits import Hit
from stressbed.model.learn import learn
from stressbed.model.requests import endpoints_of
from stressbed.model.write import write_module
from stressbed.scenario import catalog

T0 = 1_796_652_000.0


def agents(count: int, interval: float, spread: float, seed: int = 1) -> list[Hit]:
    """``count`` agents, each registering from its address, then checking in every
    ``interval`` (+- ``spread`` of it) at a path naming it, and reporting now and then."""
    rng = random.Random(seed)
    hits = []
    for i in range(count):
        agent = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        address = f"10.0.{i // 250}.{i % 250}"
        t = T0 + rng.uniform(0, interval)
        hits.append(Hit(t, "POST", "/v1/register", client=address, status=200))
        t += 0.5
        while t < T0 + 1800:
            hits.append(Hit(t, "GET", f"/v1/agents/{agent}/checkin", client=address, status=200))
            if rng.random() < 0.25:
                hits.append(
                    Hit(t + 0.2, "POST", f"/v1/agents/{agent}/report", client=address, status=202)
                )
            t += interval * rng.uniform(1 - spread, 1 + spread)
    return sorted(hits, key=lambda h: h.time)


def test_agents_checking_in_are_a_population_of_as_many_agents_at_their_interval():
    learned = learn(agents(60, 20.0, 0.1))
    flows = plan_flows(learned, endpoints_of(learned))
    plan = flows.population
    assert plan is not None
    assert plan.clients == 60  # the register from an address and the id in paths: one client
    assert 55 <= plan.agents <= 60
    (checkin,) = plan.checkins
    assert checkin.endpoint.key == "GET /v1/agents/{agent_id}/checkin"
    assert checkin.interval_s == pytest.approx(20.0, rel=0.05)
    assert 0.05 <= checkin.jitter <= 0.12
    assert plan.register is not None
    assert plan.register.key == "POST /v1/register"


def test_a_population_module_renders_with_each_agent_s_identity(tmp_path):
    learned = learn(agents(60, 20.0, 0.1))
    text = write_module(learned, "fleet", []).text
    module = tmp_path / "fleet.py"
    module.write_text(text)
    scenario = catalog.load(str(module))
    assert scenario.agents() == round(flows_agents(text))
    assert re.search(r'every\("20s", GET_AGENTS_CHECKIN, jitter="\d+%"\)', text), text
    assert "register=POST_REGISTER" in text
    # The reports name the agent too: they are the agents' own, at their rate per agent.
    assert re.search(r'every\("[0-9ms.]+", POST_AGENTS_REPORT, jitter="90%"\)', text), text
    assert '"agent_id": gen.uuid4()' in text


def flows_agents(text: str) -> int:
    found = re.search(r"agents=(\d+)", text)
    assert found is not None
    return int(found.group(1))


def test_irregular_clients_are_no_population():
    rng = random.Random(3)
    hits = [
        Hit(
            T0 + rng.uniform(0, 3600),
            "GET",
            f"/v1/agents/{i % 40}x/poll",
            client=f"10.1.0.{i % 40}",
        )
        for i in range(4000)
    ]
    learned = learn(sorted(hits, key=lambda h: h.time))
    assert plan_flows(learned, endpoints_of(learned)).population is None


def sessions(clients: int, seed: int = 5) -> list[Hit]:
    """Web clients (by address) with sessions hours apart: two journeys and a health probe."""
    rng = random.Random(seed)
    shapes = [
        [("POST", "/api/login"), ("GET", "/api/items"), ("GET", "/api/items/{n}")],
        [("POST", "/api/login"), ("GET", "/api/cart"), ("POST", "/api/checkout")],
        [("GET", "/api/health")],
    ]
    hits = []
    for c in range(clients):
        t = T0 + rng.uniform(0, 3600)
        for _ in range(4):
            for method, path in rng.choice(shapes):
                real = path.replace("{n}", str(rng.randrange(1, 10_000)))
                hits.append(Hit(t, method, real, client=f"192.168.0.{c}", status=200))
                t += rng.uniform(2, 8)
            t += rng.uniform(4000, 8000)
    return sorted(hits, key=lambda h: h.time)


def test_repeated_sessions_are_journeys_and_every_endpoint_keeps_its_share(tmp_path):
    learned = learn(sessions(60))
    endpoints = endpoints_of(learned)
    flows = plan_flows(learned, endpoints)
    assert flows.population is None
    steps = {tuple(e.key for e in j.steps) for j in flows.journeys}
    assert steps == {
        ("POST /api/login", "GET /api/items", "GET /api/items/{item_id}"),
        ("POST /api/login", "GET /api/cart", "POST /api/checkout"),
    }
    low, high = flows.think or (0, 0)
    assert 2 <= low < high <= 8
    # The mix's requests, journeys unrolled, are the requests counted, endpoint by endpoint.
    implied = dict(flows.singles)
    for journey in flows.journeys:
        for step in journey.steps:
            implied[step.key] = implied.get(step.key, 0) + journey.count
    assert implied == {e.key: e.stats.count for e in endpoints}
    text = write_module(learned, "web", []).text
    assert "journey(POST_LOGIN, GET_ITEMS, GET_ITEMS_2, think=think_uniform(" in text
    module = tmp_path / "web.py"
    module.write_text(text)
    catalog.load(str(module))


def test_one_client_is_neither_population_nor_journeys():
    hits = [Hit(T0 + i, "GET", "/v1/status", client="127.0.0.1") for i in range(500)]
    learned = learn(hits)
    flows = plan_flows(learned, endpoints_of(learned))
    assert flows.population is None
    assert flows.journeys == []
    assert flows.singles == {"GET /v1/status": 500}


def test_the_shipped_module_is_what_stressbed_model_writes_from_the_shipped_log(tmp_path):
    """scenarios/modelled_fleet.py and the log it was modelled from cannot drift apart
    (tools/model_example.py makes both; `nox -s model_example` checks them end to end)."""
    root = Path(__file__).resolve().parent.parent.parent
    out = tmp_path / "modelled_fleet.py"
    log = root / "scenarios" / "data" / "fleet_access.log.gz"
    learning = read_and_learn([log], None, [])
    command = ["stressbed", "model", "scenarios/data/fleet_access.log.gz", "-o"]
    text = write_module(
        learning.learned,
        "modelled_fleet",
        learning.tallies,
        command=[*command, "scenarios/modelled_fleet.py"],
    ).text
    out.write_text(text)
    assert text == (root / "scenarios" / "modelled_fleet.py").read_text()
    # It is a population with the console's requests beside it, and it renders.
    scenario = catalog.load(str(out))
    assert [w.name for w in scenario.workloads] == ["agents", "traffic"]


def test_a_body_known_by_its_size_only_is_a_body_of_that_size():
    # A trace's or a HAR's request bodies not kept: their size is.
    hits = [Hit(T0 + i, "POST", "/v1/upload", request_bytes=500 + i % 3) for i in range(60)]
    text = write_module(learn(hits), "sized", []).text
    assert "json=gen.random_string(499)" in text
    assert "bodies of 501 bytes (median of 60)" in text
    # nginx's $request_length is the whole request: said, and no body made of it.
    logged = [Hit(T0 + i, "POST", "/v1/upload", request_length=900) for i in range(60)]
    text = write_module(learn(logged), "logged", []).text
    assert "json=" not in text
    assert "requests of 900 bytes whole" in text
