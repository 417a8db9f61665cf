"""Python source as ruff format writes it: whatever emit() and string() write, the project's
formatter (ruff, line length 100) leaves as it is, and it parses to what was meant."""

from __future__ import annotations

import ast
import keyword
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stressbed.model.pysource import (
    LINE,
    Call,
    Dict,
    Item,
    List,
    Node,
    Raw,
    Tuple,
    emit,
    number,
    one_line,
    parsed,
    string,
)

ROOT = Path(__file__).resolve().parents[2]
#: What can stand in a comment: anything a log may hold (a field's name is quoted in one).
COMMENT_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=140)


def ruff_format(source: str) -> str:
    """``source`` as the project's ruff format writes it (its pyproject: line length 100)."""
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--stdin-filename", "scenario.py", "-"],
        input=source,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr + source
    return done.stdout


def module(*statements: str) -> str:
    return "".join(f"{s}\n" for s in statements)


def test_the_line_length_is_the_project_s():
    assert "line-length = 100" in (ROOT / "pyproject.toml").read_text()
    assert LINE == 100


def leaves() -> st.SearchStrategy[Node]:
    return st.one_of(
        st.integers(-(10**9), 10**9).map(lambda n: Raw(str(n))),
        st.floats(allow_nan=False, allow_infinity=False).map(lambda f: Raw(number(f))),
        st.text(max_size=60).map(lambda t: Raw(string(t))),
        # A call is nodes (what the writer makes of a generator's source), never one Raw.
        st.sampled_from(["None", "True", "gen.uuid4()", "VARIABLES", 'gen.choice({"a": 1})']).map(
            parsed
        ),
        st.integers(0, 90).map(lambda n: Raw(string("x" * n))),
    )


def items(children: st.SearchStrategy, keyed: str) -> st.SearchStrategy[tuple[Item, ...]]:
    comments = st.lists(COMMENT_TEXT, max_size=2).map(tuple)
    keys = {
        "dict": st.text(max_size=20).map(string),
        "call": st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True).filter(
            lambda k: not keyword.iskeyword(k)
        ),
        "none": st.none(),
    }[keyed]
    return st.lists(
        st.builds(Item, children, keys, st.one_of(st.just(()), comments)), max_size=5
    ).map(tuple)


def nodes() -> st.SearchStrategy:
    return st.recursive(
        leaves(),
        lambda children: st.one_of(
            st.builds(
                Call,
                st.sampled_from(["get", "gen.normal", "mix", "a_rather_long_function_name"]),
                items(children, "call"),
            ),
            st.builds(Dict, items(children, "dict")),
            st.builds(List, items(children, "none")),
            st.builds(Tuple, items(children, "none")),
        ),
        max_leaves=25,
    )


@settings(max_examples=40, deadline=None)
@given(
    # A module's statements assign calls and collections (a long Raw alone on a statement's
    # right is parenthesized by ruff: the writer writes none).
    trees=st.lists(nodes().filter(lambda n: not isinstance(n, Raw)), min_size=1, max_size=8),
    names=st.integers(1, 40),
)
def test_emitted_code_is_what_ruff_format_makes_of_it(trees, names):
    lines = []
    for i, tree in enumerate(trees):
        target = f"{'X' * names}_{i} = "
        lines.append(target + emit(tree, 0, len(target)))
    source = module(*lines)
    assert ruff_format(source) == source
    assert len(ast.parse(source).body) == len(trees)  # no comment became code


@pytest.mark.parametrize(
    "node",
    [
        Call(
            "get",
            (
                Item(Raw('"/v1/agents/{{agent_id}}/config"')),
                Item(Raw('"GET /v1/agents/<agent_id>/config"'), "name"),
            ),
        ),
        Call("get", (Item(Raw('"/a"')), Item(Raw('"GET /a"'), "name"))),  # short: one line
        Call("f", (Item(Raw('"' + "x" * 120 + '"')),)),  # one long argument
        Call("f" * 120),  # no argument: f() however long
        Dict((Item(Dict((Item(Dict((Item(Raw("1"), '"c"'),)), '"b"'),)), '"a"'),)),
        Dict(
            (
                Item(
                    Raw("gen.uuid4()"),
                    '"request_id"',
                    ("request_id: 144 values; UUIDs (values not copied)",),
                ),
            )
        ),
        Dict(
            tuple(
                Item(Raw(f"gen.uniform_int({i}, {i * 1000})"), string(f"field_{i}"))
                for i in range(12)
            )
        ),
        List((Item(Raw("1"), None, ("",)), Item(Raw("2"), None, ("ends in spaces   ",)))),
        Tuple((Item(Raw('"' + "y" * 110 + '"')),)),  # a one-tuple too long for its line
        Tuple((Item(Raw("1")),)),
        Call(
            "mix",
            tuple(
                Item(Tuple((Item(Raw(f"ENDPOINT_{i}")), Item(Raw(str(i))))), None, (f"{i}.00%",))
                for i in range(3)
            ),
        ),
        parsed(
            "gen.normal(50.1, 10.0, minimum=12.8, maximum=100000000000000.0, "
            'name="a very long name indeed")'
        ),
        Dict((Item(Raw(string("say \"hi\" and 'bye'")), string('a "quoted" key')),)),
    ],
)
def test_cases_are_what_ruff_format_makes_of_them(node):
    source = module("VALUE = " + emit(node, 0, 8))
    assert ruff_format(source) == source


@settings(max_examples=30, deadline=None)
@given(texts=st.lists(st.text(max_size=40), min_size=1, max_size=30))
def test_strings_are_in_ruff_s_quotes_and_mean_the_text(texts):
    # Each on its line of an exploded list: one too long for a line is left as it is.
    source = module("S = [", *(f"    {string(t)}," for t in texts), "]")
    assert ruff_format(source) == source
    for i, text in enumerate(texts):
        assert ast.literal_eval(string(text)) == text, i


@pytest.mark.parametrize(
    ("text", "literal"),
    [
        ("plain", '"plain"'),
        ("it's", '"it\'s"'),
        ('say "hi"', "'say \"hi\"'"),
        ("both ' and \"", '"both \' and \\""'),
        ('more "" than \'', "'more \"\" than \\''"),
        ("back\\slash", '"back\\\\slash"'),
        ("new\nline", '"new\\nline"'),
        ("\\'", '"\\\\\'"'),
    ],
)
def test_string(text, literal):
    assert string(text) == literal


@pytest.mark.parametrize(
    "comment",
    [
        'a\n__import__("os").system("echo owned") or "k": 1,\n#',
        "carriage\rreturn",
        "nul\x00byte",
        "line\u2028separator",
        "form\x0cfeed and a \x85 next line",
    ],
)
def test_a_comment_cannot_break_out_of_its_line(comment):
    node = Dict((Item(Raw("1"), '"k"', (comment,)),))
    source = module("VALUE = " + emit(node, 0, 8))
    tree = ast.parse(source)
    assert len(tree.body) == 1
    assert ast.literal_eval(tree.body[0].value) == {"k": 1}  # type: ignore[attr-defined]
    assert len(source.splitlines()) == 4  # {, the comment, the item, }
    assert ruff_format(source) == source


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (3, "3"),
        (3.0, "3"),
        (0.123456, "0.1235"),
        (1234567.0, "1234567"),
        (2.5e-7, "2.5e-07"),
        (True, "True"),
        (1e20, "1e20"),  # as ruff writes it, not repr's 1e+20
        (1.7976931348623157e308, "1.7976931348623157e308"),  # rounds past the largest float
        (float("inf"), 'float("inf")'),
    ],
)
def test_number(value, written):
    assert number(value) == written


def test_one_line_escapes_what_would_end_a_comment():
    assert one_line("a\nb\r\x00c\u2028d\te") == "a\\nb\\r\\x00c\\u2028d\\te"
    assert one_line("caf\u00e9 \u4e2d") == "caf\u00e9 \u4e2d"  # printable text as it is
