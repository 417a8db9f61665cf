"""A big plain log read on two cores learns what one process reading it learns: the same
endpoints, counts, statuses and rate; the same clients, check-ins and population."""

from __future__ import annotations

import random
import time
import uuid
from pathlib import Path

from stressbed.app.model_read import read_and_learn
from stressbed.model.flows import plan_flows
from stressbed.model.split import Ranged, ranges
from stressbed.model.write import endpoints_of, write_module

T0 = 1_796_652_000


def fleet_log(path: Path, agents: int = 300, minutes: int = 30) -> None:
    """Agents behind their own addresses checking in every 20 s (+-10 %) and reporting now
    and then; an operator's API calls between them."""
    rng = random.Random(11)
    lines = []
    for i in range(agents):
        agent = uuid.UUID(int=rng.getrandbits(128), version=4)
        address = f"10.2.{i // 250}.{i % 250}"
        t = T0 + rng.uniform(0, 20)
        while t < T0 + 60 * minutes:
            stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(t))
            request = f"GET /v1/agents/{agent}/checkin?v=2"
            if rng.random() < 0.1:
                request = f"GET /v1/tasks/{rng.randrange(1, 99999)}?limit={rng.choice((10, 50))}"
            lines.append((t, f'{address} - - [{stamp}] "{request} HTTP/1.1" 200 12 "-" "a/1"\n'))
            t += 20 * rng.uniform(0.9, 1.1)
    lines.sort()
    path.write_text("".join(line for _, line in lines))


def test_the_ranges_hold_every_line_once(tmp_path):
    log = tmp_path / "lines.log"
    lines = [f"{i} {'x' * (i % 37)}\n".encode() for i in range(5000)]
    log.write_bytes(b"".join(lines))
    size = log.stat().st_size
    for parts in (1, 2, 3, 8):
        cuts = ranges(size, parts)
        assert [line for a, b in cuts for line in Ranged(log, a, b).stream] == lines
    rng = random.Random(2)
    for _ in range(50):
        a, b = sorted(rng.sample(range(1, size), 2))
        cuts = [(0, a), (a, b), (b, size)]
        assert [line for x, y in cuts for line in Ranged(log, x, y).stream] == lines


def test_two_workers_learn_what_one_process_learns(tmp_path):
    log = tmp_path / "fleet.log"
    fleet_log(log)
    one = read_and_learn([log], None, [], parallel_from=None)
    two = read_and_learn([log], None, [], parallel_from=1)
    assert (one.workers, two.workers) == (1, 2)
    a, b = one.learned, two.learned
    assert (a.count, a.first, a.last) == (b.count, b.first, b.last)
    assert a.per_second == b.per_second
    ea, eb = endpoints_of(a), endpoints_of(b)
    assert [(e.key, e.stats.count, dict(e.stats.statuses)) for e in ea] == [
        (e.key, e.stats.count, dict(e.stats.statuses)) for e in eb
    ]
    assert one.tallies[0].read == two.tallies[0].read == a.count
    # The clients and their check-ins: one population either way (the split costs each
    # client the one interval that spans it).
    assert a.clients.count() == b.clients.count() == 300
    pa, pb = plan_flows(a, ea).population, plan_flows(b, eb).population
    assert pa is not None
    assert pb is not None
    assert pa.agents == pb.agents
    assert [c.endpoint.key for c in pa.checkins] == [c.endpoint.key for c in pb.checkins]
    assert abs(pa.checkins[0].interval_s - pb.checkins[0].interval_s) < 0.5
    # The modules differ at most in what samples hold.
    assert "agents=" in write_module(b, "fleet", two.tallies).text


class Seen(list[tuple[int, int]]):
    def append_pair(self, done: int, total: int) -> None:
        self.append((done, total))


def test_the_progress_counts_the_bytes_read_up_to_the_whole(tmp_path):
    log = tmp_path / "fleet.log"
    fleet_log(log, agents=40, minutes=10)
    size = log.stat().st_size
    for parallel_from in (None, 1):
        seen = Seen()
        read_and_learn([log], None, [], seen.append_pair, parallel_from=parallel_from)
        assert seen[-1] == (size, size)
        assert all(total == size for _, total in seen)
        assert [done for done, _ in seen] == sorted(done for done, _ in seen)
