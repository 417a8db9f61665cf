"""The coordinator following a released fleet, against stand-in runner control endpoints (the
real ControlServer, on loopback, with the runner behind it played by the test)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from stressbed import error_rate
from stressbed.fleet import coordinator
from stressbed.fleet.control import ControlServer
from stressbed.results.aggregates import Aggregate

TOKEN = "the-runs-token"


@dataclass
class StandIn:
    """One runner as its control endpoint shows it."""

    failing: float = 0.0  # the share of failed requests it reports
    answering: bool = True
    running: bool = True
    stops: int = 0
    server: ControlServer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, since: int) -> tuple[dict[str, object], int]:
        if not self.answering:
            raise ConnectionError("not now")  # the handler dies: the coordinator hears nothing
        rate = Aggregate("rate", total=int(self.failing * 100), count=100)
        return {"windows": {}, "aggregates": {"http_req_failed": rate.to_dict()}}, since

    def stop(self) -> None:
        with self.lock:
            if self.answering:  # out of reach, a stop never arrives
                self.stops += 1
                self.running = False

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}"


@pytest.fixture
def runners() -> Iterator[list[StandIn]]:
    made: list[StandIn] = []

    def make(**kwargs: object) -> StandIn:
        runner = StandIn(**kwargs)  # type: ignore[arg-type]
        runner.server = ControlServer(
            "127.0.0.1", 0, runner.take, lambda: runner.running, runner.stop, token=TOKEN
        )
        made.append(runner)
        return runner

    yield make  # type: ignore[misc]
    for runner in made:
        assert runner.server is not None
        runner.server.close()


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    monkeypatch.setattr(coordinator, "WATCH_S", 0.1)
    monkeypatch.setattr(coordinator, "UNREACHABLE_S", 0.3)
    monkeypatch.setattr(coordinator, "GONE_AFTER_S", 1.5)


def test_a_runner_out_of_reach_is_followed_on_and_stopped_once_it_answers(runners):
    failing = runners(failing=0.5)
    shy = runners(answering=False)
    said: list[dict[str, object]] = []

    def emit(event: dict[str, object]) -> None:
        said.append(event)
        if event == {"event": "unreachable", "index": 1, "reason": event.get("reason")}:
            shy.answering = True  # back, after the coordinator noticed it was away

    aborting = error_rate("< 5%", abort_on_fail=True)
    coordinator.watch([failing.url, shy.url], [aborting], time.monotonic() + 60, emit, TOKEN)
    kinds = [e["event"] for e in said]
    assert kinds.count("aborted") == 1
    assert kinds.index("aborted") < kinds.index("unreachable") < kinds.index("reachable")
    assert said[-1] == {"event": "finished", "runners": 2}
    # The stop that could not reach it was sent again (each second, until it had ended).
    assert failing.stops >= 1
    assert shy.stops >= 1
    assert not shy.running
    assert "gone" not in kinds


def test_a_runner_that_never_answers_again_counts_as_ended(runners):
    done = runners(running=False)
    silent = runners(answering=False)
    said: list[dict[str, object]] = []
    coordinator.watch([done.url, silent.url], [], time.monotonic() + 60, said.append, TOKEN)
    kinds = [e["event"] for e in said]
    assert kinds.index("unreachable") < kinds.index("gone")
    assert said[-1] == {"event": "finished", "runners": 2}
    assert done.stops == silent.stops == 0  # nothing aborted: nobody was stopped


def test_watching_ends_at_its_deadline(runners):
    busy = runners()
    said: list[dict[str, object]] = []
    coordinator.watch([busy.url], [], time.monotonic() + 0.5, said.append, TOKEN)
    assert [e["event"] for e in said][-2:] == ["watch-timeout", "finished"]
    assert said[-1] == {"event": "finished", "runners": 0}


def test_a_runner_name_is_looked_up_once(runners):
    runner = runners()
    watched = coordinator._Watched([runner.url.replace("127.0.0.1", "localhost")], print, TOKEN)
    watched.take(0)
    assert watched.urls[0] in (runner.url, runner.url.replace("127.0.0.1", "[::1]"))


def test_a_runner_whose_endpoint_refuses_connections_has_ended(runners):
    gone = runners()
    assert gone.server is not None
    url = gone.url
    gone.server.close()  # its process ended: nothing listens there any more
    gone.server = ControlServer(
        "127.0.0.1", 0, gone.take, lambda: True, gone.stop, token=TOKEN
    )  # for the fixture
    said: list[dict[str, object]] = []
    began = time.monotonic()
    coordinator.watch([url], [], began + 60, said.append, TOKEN)
    assert [e["event"] for e in said if e["event"] != "progress"] == ["gone", "finished"]
    assert time.monotonic() - began < coordinator.GONE_AFTER_S  # not waited out


def test_lines_said_on_several_threads_come_out_whole(capsys):
    def speak(i: int) -> None:
        for n in range(300):
            coordinator._emit({"thread": i, "n": n, "pad": "x" * 200})

    threads = [threading.Thread(target=speak, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 8 * 300
    assert all(json.loads(line)["pad"] == "x" * 200 for line in lines)
