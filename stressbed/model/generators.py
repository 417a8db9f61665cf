"""A field's figures as the generator that draws values like them, and the comment that says
where it came from.

- booleans: a weighted choice;
- numbers: the best of the fitted families (constant, uniform, normal, log-normal; by the
  Kolmogorov-Smirnov distance, :mod:`stressbed.model.fits`), truncated to the range seen;
- strings of a sensitive shape (a UUID, an email, an address, a token, a hash) or under a
  secret's name: a generator of the same shape, never the values: ``gen.uuid4()``,
  ``{{email_user}}@example.com``, ``198.51.100.{{ip_host}}``, a random string of the median
  length in the alphabet the values are written in;
- other strings: their most common values and an ``"other"`` share when the top values cover
  :data:`CATEGORY_COVER` of them; a value is copied only when seen :data:`MIN_COUNT` times at
  least (rarer ones are "other"), unless the field was named with ``--keep``; otherwise a random
  string like them;
- arrays: ``gen.repeat`` over the lengths seen, each item as its own field says.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping

from .fits import fit_categories, fit_numbers
from .learn import FieldStats
from .pysource import Node, Raw, parsed, string
from .shapes import alphabet_of, is_sensitive_name

__all__ = ["CATEGORY_COVER", "MIN_COUNT", "SHAPE_VARIABLES", "Drawn", "drawn", "shares"]

#: A value is copied into the module only when seen this many times (rarer ones are "other").
MIN_COUNT = 5
#: The share of a field's values its top values must cover to be written as categories.
CATEGORY_COVER = 0.8
#: Numbers written as categories when this many values at most cover FEW_COVER of them.
FEW = 10
FEW_COVER = 0.95
#: Variables a shape's generator reads (added to the module's VARIABLES when used).
SHAPE_VARIABLES = {
    "email_user": 'gen.random_string(10, "abcdefghijklmnopqrstuvwxyz0123456789")',
    "ip_host": "gen.uniform_int(1, 254)",
}


class Drawn:
    """A field's generator (``node``), the comment saying what it rests on, and the shape
    variables it reads."""

    def __init__(self, node: Node, comment: str, variables: tuple[str, ...] = ()) -> None:
        self.node = parsed(node.text) if isinstance(node, Raw) else node
        self.comment = comment
        self.variables = variables
        #: The values a categorical generator draws from (empty for any other).
        self.values: tuple[object, ...] = ()


def drawn(name: str, stats: FieldStats, *, url_safe: bool = False) -> Drawn:
    """The generator of the field ``name`` (see the module's docstring)."""
    kind = stats.kinds.most_common(1)[0][0] if stats.kinds else "string"
    if kind == "bool":
        counts = {bool(k): v for k, v in stats.values.counts.items() if isinstance(k, bool)}
        weights = ", ".join(f"{k!r}: {v}" for k, v in sorted(counts.items(), reverse=True))
        return Drawn(Raw(f"gen.choice({{{weights}}})"), _seen(stats, "booleans"))
    if kind in ("int", "float"):
        return _numbers(stats, kind == "int")
    if kind == "null":
        return Drawn(Raw("None"), _seen(stats, "nulls"))
    if kind == "array":
        return Drawn(Raw("[]"), _seen(stats, "arrays"))
    return _string(name, stats, url_safe)


def _numbers(stats: FieldStats, integer: bool) -> Drawn:
    if not stats.numbers.count and stats.lengths.values:
        # A secret's numbers were never kept: as many digits, drawn.
        digits = max(1, round(statistics.median(stats.lengths.values)))
        low = 10 ** (digits - 1) if digits > 1 else 0
        return Drawn(
            Raw(f"gen.uniform_int({low}, {10**digits - 1})"),
            f"{_count(stats)}; a secret's numbers (values not copied), {digits} digits",
        )
    few = _few(stats)
    if few is not None:
        return few
    fit = fit_numbers(stats.numbers.values, integer=integer)
    if fit is None:
        return Drawn(Raw("0"), _seen(stats, "numbers, none finite"))
    what = f"{fit.family} fit, KS distance {fit.ks:.3f}, over {fit.count:,} sampled"
    return Drawn(Raw(fit.source()), f"{_count(stats)}; {what}")


def _string(name: str, stats: FieldStats, url_safe: bool) -> Drawn:
    top_shape = stats.shapes.most_common(1)[0][0] if stats.shapes else "word"
    secret = is_sensitive_name(name) and not stats.kept
    if not secret and not stats.kept and top_shape in ("number", "decimal") and stats.numbers.count:
        few = _few(stats)
        if few is not None:
            return few
        fit = fit_numbers(stats.numbers.values, integer=top_shape == "number")
        if fit is not None:
            what = f"numbers as text, {fit.family} fit, KS distance {fit.ks:.3f}"
            return Drawn(Raw(fit.source()), f"{_count(stats)}; {what}")
    if top_shape == "uuid":
        return Drawn(Raw("gen.uuid4()"), f"{_count(stats)}; UUIDs (values not copied)")
    if top_shape == "email" and not stats.kept:
        return Drawn(
            Raw(string("{{email_user}}@example.com")),
            f"{_count(stats)}; emails (values not copied)",
            ("email_user",),
        )
    if top_shape == "ip" and not stats.kept:
        return Drawn(
            Raw(string("198.51.100.{{ip_host}}")),
            f"{_count(stats)}; IP addresses (values not copied)",
            ("ip_host",),
        )
    if top_shape == "date" and not stats.kept:
        return Drawn(Raw('gen.timestamp("iso")'), f"{_count(stats)}; timestamps")
    if not secret:
        categories = _categories(stats)
        if categories is not None:
            return categories
    length = round(statistics.median(stats.lengths.values)) if stats.lengths.values else 8
    alphabet = _alphabet(stats, url_safe)
    why = "values not copied: a secret's name" if secret else f"{top_shape}-shaped, too varied"
    source = (
        f"gen.random_string({max(1, length)})"
        if alphabet is None
        else f"gen.random_string({max(1, length)}, {string(alphabet)})"
    )
    return Drawn(Raw(source), f"{_count(stats)}; {why}; median length {length}")


def _few(stats: FieldStats) -> Drawn | None:
    """Numbers of a few values (page sizes, versions) are categories, not a distribution."""
    found = _categories(stats, cover=FEW_COVER)
    return found if found is not None and len(found.values) <= FEW else None


def _categories(stats: FieldStats, cover: float = CATEGORY_COVER) -> Drawn | None:
    counts = stats.values.counts
    kept = {k: v for k, v in counts.items() if v >= MIN_COUNT or stats.kept}
    rare = sum(counts.values()) - sum(kept.values()) + stats.values.overflow
    if not kept:
        return None
    found = fit_categories(kept, overflowed=rare)
    covered = sum(n for _, n in found.top)
    if covered < cover * found.count:
        return None
    distinct = f"{found.distinct:,}" if found.distinct is not None else "more than 1,000"
    note = f"{_count(stats)}; {len(found.top)} of {distinct} distinct values"
    if found.other:
        note += f", the rest ({found.other / found.count:.1%}) as 'other'"
    if len(found.top) == 1 and not found.other:
        value = found.top[0][0]
        constant = string(value) if isinstance(value, str) else repr(value)
        return Drawn(Raw(constant), f"{_count(stats)}; always this value")
    other = "other" if "other" not in kept else "(other)"
    drawn_from = Drawn(Raw(found.source(other)), note)
    drawn_from.values = tuple(v for v, _ in found.top)
    return drawn_from


def _alphabet(stats: FieldStats, url_safe: bool) -> str | None:
    if not stats.chars:
        return None
    alphabet = alphabet_of(["".join(sorted(stats.chars))])
    if url_safe and alphabet.endswith("-_"):
        return alphabet[:-2]
    default = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return None if alphabet == default else alphabet


def _count(stats: FieldStats) -> str:
    return f"{stats.count:,} values"


def _seen(stats: FieldStats, what: str) -> str:
    return f"{stats.count:,} {what}"


def shares(counts: Mapping[int, int]) -> str:
    """``200 99.1%, 404 0.9%``: a status mix, most common first."""
    total = sum(counts.values())
    if not total:
        return "no status"
    parts = [f"{k} {v / total:.1%}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])]
    return ", ".join(parts[:6]) + (", ..." if len(parts) > 6 else "")
