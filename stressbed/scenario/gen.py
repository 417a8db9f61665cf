"""Data generators: fresh values for every request, computed inside k6.

Use them inline in a body (``{"id": gen.uuid4()}``: a new value each time the body is built)
or bind them to a variable on the scenario (``variables={"agent": gen.uuid4()}``: one value
per iteration, shared by every step; wrap in :func:`per_vu` for one value per virtual user).

Environment values (:func:`env`, :func:`secret`) are read by k6 at start from its environment;
only the variable's name is ever written to the bundle.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from ..errors import ConfigError
from .templates import Ref
from .values import Const, Node, as_value_node

__all__ = [
    "Choice",
    "Counter",
    "DataFile",
    "Env",
    "Generator",
    "LogNormal",
    "Normal",
    "PerVU",
    "RandomString",
    "Repeat",
    "Rows",
    "Timestamp",
    "UniformFloat",
    "UniformInt",
    "Uuid4",
    "choice",
    "counter",
    "env",
    "lognormal",
    "normal",
    "per_vu",
    "random_string",
    "repeat",
    "rows",
    "secret",
    "timestamp",
    "uniform_float",
    "uniform_int",
    "uuid4",
]

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ALPHANUMERIC = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


class Generator:
    """Base of every generator: a kind, its parameters and the nodes it holds."""

    kind: ClassVar[str]
    is_value_node: ClassVar[bool] = True

    def params(self) -> dict[str, object]:
        return {}

    def refs(self) -> Iterator[Ref]:
        for child in self.children():
            yield from child.refs()

    def children(self) -> tuple[Node, ...]:
        """The value nodes this generator is built from."""
        return ()

    def to_config(self) -> list[object]:
        return ["gen", self.kind, self.params()]


@dataclass(frozen=True)
class Uuid4(Generator):
    kind: ClassVar[str] = "uuid4"


@dataclass(frozen=True)
class UniformInt(Generator):
    """An integer in [low, high], both included."""

    low: int
    high: int
    kind: ClassVar[str] = "uniform_int"

    def __post_init__(self) -> None:
        _int(f"{self.kind}.low", self.low)
        _int(f"{self.kind}.high", self.high)
        if self.high < self.low:
            raise ConfigError(f"{self.kind}.high", self.high, f"an integer >= low ({self.low})")

    def params(self) -> dict[str, object]:
        return {"low": self.low, "high": self.high}


@dataclass(frozen=True)
class UniformFloat(Generator):
    """A float in [low, high)."""

    low: float
    high: float
    kind: ClassVar[str] = "uniform_float"

    def __post_init__(self) -> None:
        _number(f"{self.kind}.low", self.low)
        _number(f"{self.kind}.high", self.high)
        if self.high <= self.low:
            raise ConfigError(f"{self.kind}.high", self.high, f"a number > low ({self.low})")

    def params(self) -> dict[str, object]:
        return {"low": self.low, "high": self.high}


@dataclass(frozen=True)
class Normal(Generator):
    """A normal(mean, sd) draw truncated to [minimum, maximum]; rounded when ``integer``.

    Truncation resamples (up to 16 draws) and then clamps, so the bounds always hold and the
    shape inside them stays normal.
    """

    mean: float
    sd: float
    minimum: float | None = None
    maximum: float | None = None
    integer: bool = False
    kind: ClassVar[str] = "normal"

    def __post_init__(self) -> None:
        _number(f"{self.kind}.mean", self.mean)
        _number(f"{self.kind}.sd", self.sd)
        if self.sd <= 0:
            raise ConfigError(f"{self.kind}.sd", self.sd, "a standard deviation > 0")
        if self.minimum is not None:
            _number(f"{self.kind}.minimum", self.minimum)
        if self.maximum is not None:
            _number(f"{self.kind}.maximum", self.maximum)
        if self.minimum is not None and self.maximum is not None and self.maximum <= self.minimum:
            raise ConfigError(
                f"{self.kind}.maximum", self.maximum, f"a number > minimum ({self.minimum})"
            )

    def params(self) -> dict[str, object]:
        return {
            "mean": self.mean,
            "sd": self.sd,
            "min": self.minimum,
            "max": self.maximum,
            "integer": self.integer,
        }


@dataclass(frozen=True)
class LogNormal(Generator):
    """A log-normal draw, ``exp(ln(median) + sigma * N(0, 1))``, truncated to [minimum,
    maximum] like :class:`Normal` (up to 16 draws, then the median clamped); rounded when
    ``integer``.

    Half the draws fall below ``median``; ``sigma`` is the standard deviation of the draw's
    logarithm, so ``median * exp(sigma)`` is its 84th percentile. Sizes and durations of real
    traffic are usually skewed this way: many small, a long tail of large.
    """

    median: float
    sigma: float
    minimum: float | None = None
    maximum: float | None = None
    integer: bool = False
    kind: ClassVar[str] = "lognormal"

    def __post_init__(self) -> None:
        _positive(f"{self.kind}.median", self.median)
        _positive(f"{self.kind}.sigma", self.sigma)
        if self.minimum is not None:
            _number(f"{self.kind}.minimum", self.minimum)
        if self.maximum is not None:
            # Every draw is > 0, so a maximum <= 0 would only ever be reached by clamping.
            _positive(f"{self.kind}.maximum", self.maximum)
        if self.minimum is not None and self.maximum is not None and self.maximum <= self.minimum:
            raise ConfigError(
                f"{self.kind}.maximum", self.maximum, f"a number > minimum ({self.minimum})"
            )
        if not isinstance(self.integer, bool):
            raise ConfigError(f"{self.kind}.integer", self.integer, "True or False")

    def params(self) -> dict[str, object]:
        return {
            "median": self.median,
            "sigma": self.sigma,
            "min": self.minimum,
            "max": self.maximum,
            "integer": self.integer,
        }


@dataclass(frozen=True)
class Choice(Generator):
    """One of ``values`` with probability proportional to ``weights``."""

    values: tuple[Const, ...]
    weights: tuple[float, ...]
    kind: ClassVar[str] = "choice"

    def __post_init__(self) -> None:
        if not self.values:
            raise ConfigError(f"{self.kind}.values", [], "at least one value")
        for i, weight in enumerate(self.weights):
            _positive(f"{self.kind}.weights[{i}]", weight)

    def params(self) -> dict[str, object]:
        return {"values": [v.value for v in self.values], "weights": list(self.weights)}


@dataclass(frozen=True)
class Counter(Generator):
    """An integer unique across every VU and every fleet runner, from ``start`` upward.

    Values interleave by global VU id (k6's ``exec.vu.idInTest``), so they are unique but not
    dense: ``start + n * stride + (vu_id - 1)`` for a VU's n-th value.
    """

    start: int = 0
    kind: ClassVar[str] = "counter"

    def __post_init__(self) -> None:
        _int(f"{self.kind}.start", self.start)

    def params(self) -> dict[str, object]:
        return {"start": self.start}


@dataclass(frozen=True)
class RandomString(Generator):
    length: int
    alphabet: str = _ALPHANUMERIC
    kind: ClassVar[str] = "random_string"

    def __post_init__(self) -> None:
        _int(f"{self.kind}.length", self.length)
        if self.length < 1:
            raise ConfigError(f"{self.kind}.length", self.length, "an integer >= 1")
        if not isinstance(self.alphabet, str) or not self.alphabet:
            raise ConfigError(f"{self.kind}.alphabet", self.alphabet, "a non-empty string")

    def params(self) -> dict[str, object]:
        return {"length": self.length, "alphabet": self.alphabet}


@dataclass(frozen=True)
class Timestamp(Generator):
    """The current time: epoch milliseconds ("ms"), epoch seconds ("s") or ISO 8601 ("iso")."""

    unit: Literal["ms", "s", "iso"] = "ms"
    kind: ClassVar[str] = "timestamp"

    def __post_init__(self) -> None:
        if self.unit not in ("ms", "s", "iso"):
            raise ConfigError(f"{self.kind}.unit", self.unit, "one of 'ms', 's', 'iso'")

    def params(self) -> dict[str, object]:
        return {"unit": self.unit}


@dataclass(frozen=True)
class Repeat(Generator):
    """A list of ``count`` items, each built afresh from ``item``; ``count`` may be a generator."""

    count: Node
    item: Node
    kind: ClassVar[str] = "repeat"

    def children(self) -> tuple[Node, ...]:
        return (self.count, self.item)

    def params(self) -> dict[str, object]:
        return {"count": self.count.to_config(), "item": self.item.to_config()}


@dataclass(frozen=True)
class Env(Generator):
    """A value from k6's environment (``__ENV``), read once at start.

    ``secret`` values may be used in headers and bodies only (never in URLs, which k6 records
    in its metrics); the bundle only ever holds the variable's name.
    """

    name: str
    default: str | None = None
    secret: bool = False
    kind: ClassVar[str] = "env"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _ENV_NAME.fullmatch(self.name):
            raise ConfigError(
                f"{self.kind}.name", self.name, "an environment variable name like AGENT_TOKEN"
            )
        if self.default is not None and not isinstance(self.default, str):
            raise ConfigError(f"{self.kind}.default", self.default, "a string or None")
        if self.secret and self.default is not None:
            raise ConfigError(
                "default", "<hidden>", "no default for a secret (it would be written to the bundle)"
            )

    def params(self) -> dict[str, object]:
        return {"name": self.name, "default": self.default, "secret": self.secret}


@dataclass(frozen=True)
class DataFile:
    """Rows of a CSV (with a header line) or JSON (a list) file, shared by all VUs."""

    path: Path

    def load(self, field: str = "path") -> list[Any]:
        """The file's rows; a clear error when it is missing, unreadable or empty."""
        path = self.path
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(field, str(path), "an existing CSV or JSON data file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(field, str(path), f"a readable UTF-8 file ({exc})") from None
        if path.suffix.lower() == ".json":
            try:
                rows = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigError(field, str(path), f"valid JSON ({exc})") from None
            if not isinstance(rows, list):
                raise ConfigError(field, str(path), "a JSON file holding a list of rows")
        else:
            rows = list(csv.DictReader(text.splitlines()))
        if not rows:
            raise ConfigError(field, str(path), "a data file with at least one row")
        return rows


@dataclass(frozen=True)
class Rows(Generator):
    """A row of a data file: "sequential" (test-wide order, unique until the file wraps,
    across VUs and runners), "random", or "unique" (one fixed row per VU; the file must have
    at least as many rows as the test has VUs)."""

    data: DataFile
    mode: Literal["sequential", "random", "unique"] = "sequential"
    row_count: int = field(default=0, compare=False)
    digest: str = field(default="", compare=False)
    kind: ClassVar[str] = "rows"

    def __post_init__(self) -> None:
        if self.mode not in ("sequential", "random", "unique"):
            raise ConfigError(
                f"{self.kind}.mode", self.mode, "one of 'sequential', 'random', 'unique'"
            )
        rows = self.data.load(f"{self.kind}.path")
        canonical = json.dumps(rows, ensure_ascii=False, sort_keys=True).encode()
        object.__setattr__(self, "row_count", len(rows))
        object.__setattr__(self, "digest", hashlib.sha256(canonical).hexdigest()[:12])

    @property
    def bundle_path(self) -> str:
        """Where the renderer writes the rows (as JSON), relative to the bundle; named by
        content, so the same rows render to the same file wherever the checkout lies."""
        stem = re.sub(r"[^A-Za-z0-9_-]", "_", self.data.path.stem)[:40]
        return f"data/{stem}-{self.digest}.json"

    def params(self) -> dict[str, object]:
        return {"file": self.bundle_path, "mode": self.mode, "rows": self.row_count}


@dataclass(frozen=True)
class PerVU:
    """A variable evaluated once per virtual user and kept across its iterations."""

    value: Node


# -- the constructors users call ------------------------------------------------------------


def uuid4() -> Uuid4:
    """A random RFC 4122 version 4 UUID string."""
    return Uuid4()


def uniform_int(low: int, high: int) -> UniformInt:
    return UniformInt(low, high)


def uniform_float(low: float, high: float) -> UniformFloat:
    return UniformFloat(low, high)


def normal(
    mean: float,
    sd: float,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    integer: bool = False,
) -> Normal:
    return Normal(mean, sd, minimum, maximum, integer)


def lognormal(
    median: float,
    sigma: float,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    integer: bool = False,
) -> LogNormal:
    """A skewed positive value: half the draws below ``median``; ``sigma`` is the spread of
    their logarithm (0.5: the middle two thirds lie within a factor of 1.65 of the median)."""
    return LogNormal(median, sigma, minimum, maximum, integer)


def choice(options: Mapping[Any, float] | Sequence[Any]) -> Choice:
    """A weighted choice (``{"ok": 9, "degraded": 1}``) or a uniform one (``["a", "b"]``)."""
    if isinstance(options, Mapping):
        pairs = list(options.items())
    elif isinstance(options, Sequence) and not isinstance(options, str):
        pairs = [(value, 1.0) for value in options]
    else:
        raise ConfigError("choice.options", options, "a mapping of value to weight, or a list")
    values = []
    for i, (value, _) in enumerate(pairs):
        node = as_value_node(value, f"choice.options[{i}]")
        if not isinstance(node, Const):
            raise ConfigError(f"choice.options[{i}]", value, "a constant value (no templates)")
        values.append(node)
    return Choice(tuple(values), tuple(weight for _, weight in pairs))


def counter(start: int = 0) -> Counter:
    return Counter(start)


def random_string(length: int, alphabet: str = _ALPHANUMERIC) -> RandomString:
    return RandomString(length, alphabet)


def timestamp(unit: Literal["ms", "s", "iso"] = "ms") -> Timestamp:
    return Timestamp(unit)


def repeat(count: int | UniformInt, item: object) -> Repeat:
    """``count`` fresh copies of ``item`` (a dict with generators, say) in a list."""
    if isinstance(count, bool) or not isinstance(count, int | UniformInt):
        raise ConfigError("repeat.count", count, "an integer >= 0 or uniform_int(...)")
    if isinstance(count, int) and count < 0:
        raise ConfigError("repeat.count", count, "an integer >= 0")
    if isinstance(count, UniformInt) and count.low < 0:
        raise ConfigError("repeat.count.low", count.low, "an integer >= 0")
    count_node = Const.of(count) if isinstance(count, int) else count
    return Repeat(count_node, as_value_node(item, "repeat.item"))


def env(name: str, default: str | None = None) -> Env:
    """The environment variable ``name`` as k6 sees it; ``default`` when unset."""
    return Env(name, default)


def secret(name: str) -> Env:
    """A required secret from the environment variable ``name``; never written anywhere."""
    return Env(name, None, secret=True)


def rows(path: str | Path, mode: Literal["sequential", "random", "unique"] = "sequential") -> Rows:
    """Rows of a CSV or JSON data file. Relative paths are taken from the current directory;
    scenario modules pass ``Path(__file__).parent / "data" / "file.csv"``."""
    return Rows(DataFile(Path(path)), mode)


def per_vu(value: object) -> PerVU:
    """Evaluate ``value`` once per VU (an agent's stable id, say) instead of per iteration."""
    return PerVU(as_value_node(value, "per_vu"))


def _int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(name, value, "an integer")


def _number(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(name, value, "a finite number")


def _positive(name: str, value: object) -> None:
    _number(name, value)
    if value <= 0:  # type: ignore[operator]
        raise ConfigError(name, value, "a number > 0")
