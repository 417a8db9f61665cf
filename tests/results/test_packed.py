"""Packed windows (runner document v2, v3 with a population's agents): lossless, small, read
lazily, merged as v1 was."""

from __future__ import annotations

import base64
import json
import random
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stressbed.errors import DocumentError
from stressbed.results.agents import AgentWindow
from stressbed.results.aggregates import Window
from stressbed.results.merge import merge
from stressbed.results.packed import CHUNK_WINDOWS, pack_windows
from stressbed.results.runner_result import RunnerResult, RunnerStatus
from stressbed.results.unpack import PackedWindows


def _windows(seed: int, seconds: range, names: str = "ab") -> dict[int, Window]:
    """Windows of lognormal latencies, failures, checks and request names, some zeros."""
    rng = random.Random(seed)
    windows = {}
    for t in seconds:
        window = Window(
            requests=rng.randint(0, 40),
            failed=rng.randint(0, 2),
            iterations=rng.randint(0, 40),
            vus=rng.choice([0, 2.0, 7.5]),
            vus_max=10,
            dropped=rng.randint(0, 1),
            acked=rng.randint(0, 9),
        )
        for _ in range(window.requests):
            value = rng.lognormvariate(1.5, 1.2)
            window.duration.add(value)
            window.name_sketch(rng.choice(names)).add(value)
        if rng.random() < 0.2:
            window.duration.add(0.0)  # a zero (a reused connection's 0 ms)
        if window.failed:
            window.statuses = {"503": window.failed}
        if rng.random() < 0.1:
            window.checks_failed = {"status is 200": 1}
        windows[t] = window
    return windows


def _result(index: int, windows: dict[int, Window]) -> RunnerResult:
    return RunnerResult(
        index=index,
        count=3,
        segment=f"{index}/3",
        status=RunnerStatus.OK,
        exit_code=0,
        started_at=1.0,
        ended_at=2.0,
        windows=windows,
    )


def _through_json(result: RunnerResult) -> RunnerResult:
    return RunnerResult.from_dict(json.loads(json.dumps(result.to_dict())))


def test_windows_come_back_exactly_from_a_version_2_document():
    windows = _windows(1, range(1_000, 1_000 + 2 * CHUNK_WINDOWS + 5))  # three chunks
    document = _result(0, windows).to_dict()
    assert document["version"] == 3
    again = RunnerResult.from_dict(json.loads(json.dumps(document)))
    assert isinstance(again.windows, PackedWindows)
    assert list(again.windows) == sorted(windows)
    for second, window in windows.items():
        assert again.windows[second].to_dict() == window.to_dict()
    # Read packed, written again as it came: no decoding, the same bytes.
    assert json.dumps(again.to_dict()) == json.dumps(document)


def test_packed_windows_are_a_small_fraction_of_their_json():
    windows = _windows(2, range(2_000, 2_600))
    as_json = len(json.dumps({str(t): w.to_dict() for t, w in windows.items()}))
    packed = len(json.dumps(pack_windows(windows)))
    assert packed < as_json / 4


def test_a_version_1_document_is_still_read():
    windows = _windows(3, range(10, 20))
    document = _result(0, windows).to_dict()
    document["version"] = 1
    document["windows"] = {str(t): w.to_dict() for t, w in windows.items()}
    again = RunnerResult.from_dict(document)
    assert {t: w.to_dict() for t, w in again.windows.items()} == {
        t: w.to_dict() for t, w in windows.items()
    }


def test_counts_are_read_without_decoding_a_sketch():
    windows = _windows(4, range(50, 50 + CHUNK_WINDOWS + 1))
    again = _through_json(_result(0, windows))
    again.windows.document()["chunks"][:] = ["not base64 at all"] * 2  # type: ignore[attr-defined]
    assert dict(again.per_second("requests")) == {t: w.requests for t, w in windows.items()}
    with pytest.raises(DocumentError, match=r"result\.windows\.chunks\[0\]"):
        again.windows[50]


def test_the_streaming_merge_of_packed_runners_equals_the_merge_of_their_windows():
    # Runners that start and end at different seconds, with names only some of them have.
    sources = [
        _windows(10, range(100, 100 + 150)),
        _windows(11, range(130, 130 + 70), names="bc"),
        _windows(12, range(90, 300)),
    ]
    in_memory = merge([_result(i, w) for i, w in enumerate(sources)])
    packed = merge([_through_json(_result(i, w)) for i, w in enumerate(sources)])
    mixed = merge(
        [_result(0, sources[0]), *(_through_json(_result(i, sources[i])) for i in (1, 2))]
    )
    expected = {t: w.to_dict() for t, w in sorted(in_memory.windows.items())}
    assert {t: w.to_dict() for t, w in packed.windows.items()} == expected
    assert {t: w.to_dict() for t, w in mixed.windows.items()} == expected
    # The reference: windows merged one by one with Window.merge (the additive definition).
    reference: dict[int, Window] = {}
    for source in sources:
        for second, window in source.items():
            if second in reference:
                reference[second].merge(window)
            else:
                reference[second] = window.copy()
    assert expected == {t: w.to_dict() for t, w in sorted(reference.items())}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=1e7)), max_size=30),
        min_size=1,
        max_size=CHUNK_WINDOWS + 3,
    )
)
def test_any_latencies_survive_packing_exactly(per_second):
    windows = {}
    for i, values in enumerate(per_second):
        window = Window(requests=len(values))
        window.duration.extend(values)
        windows[1_700_000_000 + 2 * i] = window  # gaps between seconds too
    again = _through_json(_result(0, windows))
    assert {t: w.to_dict() for t, w in again.windows.items()} == {
        t: w.to_dict() for t, w in windows.items()
    }


def _chunk_of(document: dict, body: bytes) -> dict:
    windows = dict(document["windows"])
    windows["chunks"] = [base64.b64encode(zlib.compress(body)).decode()]
    return {**document, "windows": windows}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"encoding": "zip"}, "result.windows.encoding: got 'zip'; expected stressbed.packed"),
        ({"seconds": [3, 2, 1]}, "result.windows.seconds: got [3, 2, 1]; expected seconds in"),
        ({"requests": [1]}, "result.windows.requests: got '[1]'; expected 3 values"),
        ({"chunks": []}, "result.windows.chunks: got 0; expected 1 chunks"),
        ({"names": [1]}, "result.windows.names: got [1]; expected a list of request names"),
    ],
)
def test_a_packed_document_that_is_wrong_names_its_field(change, message):
    document = _result(0, _windows(5, range(1, 4))).to_dict()
    document["windows"] = {**document["windows"], **change}
    with pytest.raises(DocumentError) as error:
        RunnerResult.from_dict(document)
    assert str(error.value).startswith(message)
    assert error.value.exit_code == 3


def test_a_chunk_cut_short_is_named_when_it_is_decoded():
    document = _result(0, _windows(6, range(1, 4))).to_dict()
    body = zlib.decompress(base64.b64decode(document["windows"]["chunks"][0]))
    result = RunnerResult.from_dict(_chunk_of(document, body[:-8]))
    with pytest.raises(DocumentError) as error:
        merge([result, result])
    assert str(error.value).startswith("result.windows.chunks[0]: got '")
    assert "a chunk cut or padded" in str(error.value)


def _with_agents(seed: int, seconds: range) -> dict[int, Window]:
    """Windows of which about two in three carry agents: counts, reasons and four trends."""
    rng = random.Random(seed)
    windows = _windows(seed, seconds)
    for second, window in windows.items():
        if rng.random() < 0.33:
            continue
        agents = AgentWindow(
            joined=rng.randint(0, 50),
            left=rng.randint(0, 5),
            connect_attempts=rng.randint(0, 60),
            connects=rng.randint(0, 50),
            reconnects=rng.randint(0, 3),
            gave_up=rng.randint(0, 1),
            checkins_missed=rng.randint(0, 2),
        )
        if rng.random() < 0.5:
            agents.connect_failures = {rng.choice(["refused", "status_503"]): rng.randint(1, 4)}
        if rng.random() < 0.5:
            agents.disconnects = {"closed_1006": rng.randint(1, 3), "churn": 1}
        for name, sketch in agents.sketches():
            if name != "command_rtt" or rng.random() < 0.3:  # a trend some seconds lack
                sketch.extend(rng.lognormvariate(3, 1) for _ in range(rng.randint(0, 20)))
        window.agents = agents
        assert Window.from_dict(window.to_dict()) == window
        windows[second] = window
    return windows


def test_a_populations_seconds_come_back_and_merge_exactly():
    # More than a chunk of agent seconds; runners that start, end and have agents apart.
    sources = [
        _with_agents(20, range(100, 100 + 2 * CHUNK_WINDOWS)),
        _with_agents(21, range(150, 260)),
        _windows(22, range(90, 120)),  # a runner that met no agent
    ]
    documents = [_result(i, w).to_dict() for i, w in enumerate(sources)]
    assert "agents" in documents[0]["windows"]
    assert "agents" not in documents[2]["windows"]
    again = [RunnerResult.from_dict(json.loads(json.dumps(d))) for d in documents]
    for source, read in zip(sources, again, strict=True):
        assert {t: w.to_dict() for t, w in read.windows.items()} == {
            t: w.to_dict() for t, w in source.items()
        }
    packed = merge(again)
    reference: dict[int, Window] = {}
    for source in sources:
        for second, window in source.items():
            if second in reference:
                reference[second].merge(window)
            else:
                reference[second] = window.copy()
    assert {t: w.to_dict() for t, w in packed.windows.items()} == {
        t: w.to_dict() for t, w in sorted(reference.items())
    }
    assert packed.windows[150].agents == reference[150].agents


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seconds": [5]}, "result.windows.agents.seconds: got [5]; expected seconds of the"),
        ({"joined": [1]}, "result.windows.agents.joined: got '[1]'; expected 3 values"),
        ({"sketches": ["x"]}, "result.windows.agents.sketches: got ['x']; expected connect_time"),
        ({"chunks": []}, "result.windows.agents.chunks: got 0; expected 1 chunks"),
    ],
)
def test_a_packed_agents_object_that_is_wrong_names_its_field(change, message):
    windows = {t: Window(agents=AgentWindow(joined=1)) for t in range(1, 4)}
    document = _result(0, windows).to_dict()
    agents = {**document["windows"]["agents"], **change}
    document["windows"] = {**document["windows"], "agents": agents}
    with pytest.raises(DocumentError) as error:
        RunnerResult.from_dict(document)
    assert str(error.value).startswith(message)
