"""Paths to templates: identifiers of every shape collapse into one parameter named after the
segment before it, fixed segments stay, crowded positions collapse but for their hot words,
routes in every spelling, and a tree that stays bounded whatever it is fed."""

from __future__ import annotations

import ipaddress
import random
import uuid
from collections import Counter
from collections.abc import Iterable

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from stressbed.model import templates
from stressbed.model.shapes import shape
from stressbed.model.templates import DISTINCT, Templates, param_name, split_route

property_settings = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

HEX = "0123456789abcdef"
TOKEN_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"


def uuids() -> st.SearchStrategy[str]:
    return st.builds(
        lambda u, upper: str(u).upper() if upper else str(u), st.uuids(), st.booleans()
    )


def hashes() -> st.SearchStrategy[str]:
    return st.sampled_from([32, 40, 64]).flatmap(
        lambda n: st.text(HEX, min_size=n, max_size=n).filter(lambda h: not h.isdigit())
    )


def tokens(digits: bool = True) -> st.SearchStrategy[str]:
    """Random url-safe tokens as a server issues them; with ``digits=False`` the few of
    them that happen to have no digit."""
    alphabet = TOKEN_ALPHABET if digits else TOKEN_ALPHABET.strip("0123456789")
    return st.integers(16, 40).flatmap(
        lambda n: st.text(alphabet, min_size=n, max_size=n).filter(
            lambda t: shape(t) == "token" if digits else any(c.isalpha() for c in t)
        )
    )


def emails() -> st.SearchStrategy[str]:
    user = st.text("abcdefghijklmnopqrstuvwxyz0123456789.", min_size=1, max_size=12)
    return st.builds(
        lambda u, d: f"{u.strip('.') or 'x'}@{d}.example.com",
        user,
        st.sampled_from(["mail", "corp"]),
    )


def addresses() -> st.SearchStrategy[str]:
    return st.one_of(
        st.ip_addresses(v=4).map(str),
        st.ip_addresses(v=6).map(lambda a: str(ipaddress.IPv6Address(a))),
    )


def dates() -> st.SearchStrategy[str]:
    return st.builds(
        lambda d, t: d.isoformat() + (f"T{t.isoformat(timespec='seconds')}Z" if t else ""),
        st.dates(),
        st.one_of(st.none(), st.times()),
    )


#: Each shape of identifier, and the name its parameter takes after "agents".
IDS = {
    "uuid": (uuids(), "agent_id"),
    "number": (st.integers(0, 10**12).map(str), "agent_id"),
    "hash": (hashes(), "agent_hash"),
    "id": (
        st.builds(
            lambda w, n: f"{w}-{n}", st.sampled_from(["node", "host", "pod"]), st.integers(0, 999)
        ),
        "agent_id",
    ),
    "token": (tokens(), "agent_token"),
    "email": (emails(), "email"),
    "ip": (addresses(), "ip"),
    "date": (dates(), "date"),
}


def templates_of(paths: Iterable[str]) -> Counter[str]:
    """Each path's template, counted."""
    tree = Templates()
    leaves = [tree.leaf(p)[0] for p in paths]
    return Counter(tree.template(leaf)[0] for leaf in leaves)


@pytest.mark.parametrize("kind", sorted(IDS))
@property_settings
@given(data=st.data())
def test_ids_of_one_shape_collapse_into_one_parameter_named_after_the_segment_before(kind, data):
    strategy, name = IDS[kind]
    ids = data.draw(st.lists(strategy, min_size=1, max_size=120, unique=True))
    found = templates_of(f"/v1/agents/{i}/report" for i in ids)
    assert found == {f"/v1/agents/{{{name}}}/report": len(ids)}


@property_settings
@given(
    issued=st.lists(tokens(), min_size=40, max_size=100, unique=True),
    more=st.lists(tokens(digits=False), min_size=11, max_size=45, unique=True),
    seed=st.integers(0, 2**32 - 1),
)
def test_tokens_with_no_digit_among_tokens_are_tokens_too(issued, more, seed):
    ids = list(dict.fromkeys(issued + more))
    random.Random(seed).shuffle(ids)
    found = templates_of(f"/v1/sessions/{i}/report" for i in ids)
    assert found == {"/v1/sessions/{session_token}/report": len(ids)}


@property_settings
@given(
    ids=st.lists(st.one_of(*(s for s, _ in IDS.values())), min_size=1, max_size=150, unique=True)
)
def test_ids_of_every_shape_at_one_position_are_one_endpoint(ids):
    found = templates_of(f"/v1/agents/{i}/report" for i in ids)
    assert len(found) == 1, found
    (template,) = found
    assert template.startswith("/v1/agents/{")
    assert template.endswith("}/report")


@pytest.mark.parametrize(
    ("path", "template", "params"),
    [
        (
            "/v1/agents/8f3a0c2e-1b2d-4e5f-9a8b-7c6d5e4f3a2b/report",
            "/v1/agents/{agent_id}/report",
            (("agent_id", "uuid"),),
        ),
        (
            "/api/users/42/orders/7",
            "/api/users/{user_id}/orders/{order_id}",
            (("user_id", "number"), ("order_id", "number")),
        ),
        (
            "/categories/12/entries/9",
            "/categories/{category_id}/entries/{entry_id}",
            (("category_id", "number"), ("entry_id", "number")),
        ),
        ("/42", "/{id}", (("id", "number"),)),
        ("/a/1/2", "/a/{a_id}/{id}", (("a_id", "number"), ("id", "number"))),
        ("/files/" + "ab" * 16, "/files/{file_hash}", (("file_hash", "hash"),)),
        ("/boxes/alice@example.com", "/boxes/{email}", (("email", "email"),)),
    ],
)
def test_a_template_and_its_parameters(path, template, params):
    tree = Templates()
    leaf, values = tree.leaf(path)
    assert tree.template(leaf) == (template, params)
    assert len(values) == len(params)


@property_settings
@given(
    words=st.lists(
        st.sampled_from(
            [
                "v1",
                "v2",
                "api",
                "health",
                "status",
                "agents",
                "config",
                "report",
                "users",
                "orders",
                "metrics",
                "login",
            ]
        ),
        min_size=1,
        max_size=5,
    ),
    repeat=st.integers(1, 400),
)
def test_fixed_segments_stay_however_many_requests(words, repeat):
    path = "/" + "/".join(words)
    assert templates_of([path] * repeat) == {path: repeat}


@property_settings
@given(
    words=st.lists(
        st.from_regex(r"[a-z]{3,12}", fullmatch=True), min_size=1, max_size=DISTINCT, unique=True
    ),
    repeat=st.integers(1, 5),
)
def test_a_position_of_at_most_50_words_keeps_each(words, repeat):
    found = templates_of(f"/users/{w}" for w in words * repeat)
    assert found == {f"/users/{w}": repeat for w in words}


@property_settings
@given(
    crowd=st.integers(DISTINCT + 1, 300),
    hot=st.floats(0.021, 0.3),
    parent=st.integers(0, 3000),
    hot_first=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_a_crowded_position_collapses_but_its_hot_word_stays(crowd, hot, parent, hot_first, seed):
    rng = random.Random(seed)
    names = [f"user{''.join(rng.choices('abcdefghijklmnopqrstuvwxyz', k=6))}" for _ in range(crowd)]
    names = [n for n in dict.fromkeys(names) if shape(n) == "word"]
    assume(len(names) > DISTINCT)
    hot_hits = max(1, round(hot * len(names) / (1 - hot)) + 1)
    crowded = [f"/users/{n}" for n in names]
    rng.shuffle(crowded)
    hot_paths = ["/users/me"] * hot_hits
    # A hot word among the first 50 words seen (a later one is counted with the parameter).
    paths = ["/users"] * parent + (
        hot_paths + crowded if hot_first else crowded[:10] + hot_paths + crowded[10:]
    )
    found = templates_of(paths)
    assert found["/users/me"] == hot_hits  # >= 2% of the requests below /users
    assert found["/users/{user}"] == len(names)
    assert set(found) == {"/users/me", "/users/{user}"} | ({"/users"} if parent else set())


def test_a_word_short_of_2_percent_of_a_crowded_position_collapses():
    names = [f"name{chr(97 + i % 26)}{chr(97 + i // 26)}x" for i in range(100)]
    paths = ["/users"] * 1000 + ["/users/me"] * 2 + [f"/users/{n}" for n in names]
    found = templates_of(paths)
    assert found == {"/users": 1000, "/users/{user}": 102}


@pytest.mark.parametrize(
    "route",
    [
        "/v1/agents/{id}",
        "/v1/agents/:id",
        "/v1/agents/<int:id>",
        "/v1/agents/<id>",
        "/v1/agents/{id:int}",
        "/v1/agents/{id?}",
    ],
)
def test_a_route_in_any_spelling_is_written_with_braces(route):
    assert split_route(route) == "/v1/agents/{id}"
    tree = Templates()
    leaf, values = tree.route_leaf(route, "/v1/agents/42")
    assert tree.template(leaf) == ("/v1/agents/{id}", (("id", "route"),))
    assert values == ("42",)


def test_a_route_s_parameter_names_are_identifiers():
    assert split_route("/a/{Agent-Id}/b/:x/c/<path:rest>") == "/a/{agent_id}/b/{x}/c/{rest}"


@property_settings
@given(
    paths=st.lists(
        st.lists(
            st.one_of(
                st.from_regex(r"[a-z]{1,8}", fullmatch=True),
                st.integers(0, 10**6).map(str),
                uuids(),
                st.builds(lambda n: f"node-{n}", st.integers(0, 99)),
                addresses(),
            ),
            min_size=0,
            max_size=12,
        ).map(lambda segments: "/" + "/".join(segments)),
        min_size=1,
        max_size=400,
    ),
    cap=st.integers(3, 60),
)
def test_the_tree_stays_within_max_nodes_and_every_template_keeps_the_path_s_depth(paths, cap):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(templates, "MAX_NODES", cap)
        tree = Templates()
        walked = [(p, *tree.leaf(p)) for p in paths]
        assert tree.nodes <= cap
        for path, leaf, values in walked:
            template, params = tree.template(leaf)
            segments = [s for s in path.split("/") if s]
            assert template.count("/") == max(1, len(segments))
            assert len(params) == template.count("{") >= len(values)


def test_a_path_deeper_than_max_depth_folds_its_tail_into_the_last_segment():
    deep = "/" + "/".join(f"s{i}" for i in range(30))
    tree = Templates()
    leaf, _ = tree.leaf(deep)
    assert tree.template(leaf)[0].count("/") == templates.MAX_DEPTH


@pytest.mark.parametrize(
    ("previous", "kind", "name"),
    [
        ("agents", "uuid", "agent_id"),
        ("categories", "number", "category_id"),
        ("boxes", "id", "box_id"),
        ("status", "number", "status_id"),
        ("files", "hash", "file_hash"),
        ("sessions", "token", "session_token"),
        ("users", "word", "user"),
        ("users", "email", "email"),
        (None, "uuid", "id"),
        ("v1.0", "number", "v1_0_id"),
        ("2024", "number", "p_2024_id"),
    ],
)
def test_param_name(previous, kind, name):
    assert param_name(previous, kind) == name


def test_a_path_seen_again_walks_the_cache_and_counts_alike():
    once, twice = Templates(), Templates()
    paths = [f"/users/u{i % 60}x/items/{uuid.UUID(int=i)}" for i in range(300)]
    for p in paths:
        once.leaf(p)
    for p in paths + paths:
        twice.leaf(p)
    assert [once.template(once.leaf(p)[0])[0] for p in paths] == [
        twice.template(twice.leaf(p)[0])[0] for p in paths
    ]


def test_a_segment_holding_a_control_character_is_a_value_never_a_word():
    # A decoded path ($uri, a trace's url.path) may hold any character; no resource is named
    # with a line break, and a template is quoted in comments.
    found = templates_of(["/x\n__import__('os')\n#/a", "/files/a\x00b", "/files/readme"])
    assert found == {"/{name}/a": 1, "/files/{file}": 1, "/files/readme": 1}
