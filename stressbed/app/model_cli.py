"""``stressbed model INPUT... -o scenarios/NAME.py``: production traffic in, a scenario module out.

The inputs are read as one stream in time order (a progress bar on a terminal, a line each
tenth otherwise), what could not be read is counted per input with a few examples (their
addresses, emails and tokens masked), and when more than ``--max-bad`` of an input could not
be read nothing is written: exit 2, naming the format to pass. The module is written whole
(to a temporary file, then renamed), then loaded and rendered as ``stressbed render`` would:
a module that does not is a bug of stressbed's, said so.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError, StressbedError
from ..model.rate import parse_compress, parse_scale, shape_of
from ..model.read import INPUT_FORMATS
from ..model.shapes import SENSITIVE_SHAPES, is_sensitive_name, shape
from ..model.write import Written, write_module
from ..scenario import catalog
from ..scenario.render import render
from ..scenario.units import parse_duration_ms
from .model_check import check_model, print_distances
from .model_read import read_and_learn
from .options import share
from .replay import find_nginx

__all__ = ["model_commands"]

#: The share of an input that may not be read before nothing is written.
MAX_BAD = 0.05
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Where a bad line's words end (what a run of _WORD cannot hold).
_WORD = re.compile(r"[^\s\"'<>()\[\]{},;&=?]+")
#: An example cut at EXAMPLE_CHARS: its last word cut too, too short to be told a secret.
_CUT_WORD = re.compile(r"[^\s\"'<>()\[\]{},;&=?]*\.\.\.$")
_AUTH = re.compile(r"\b(bearer|basic|digest|negotiate|token)(\s+)[^\s\"',;]+", re.I)
#: name=value, name: value, "name":"value" (the value masked when the name is a secret's).
_PAIR = re.compile(r"""([A-Za-z_][\w.\-]*)(["']?\s*[:=]\s*["']?)([^\s"'&;,}\]]+)""")
_EMAIL = re.compile(
    r"[^@\s\"'<>()\[\]{},;:=&?/]+(?:@|%40)[^@\s\"'<>()\[\]{},;:=&?/]+\.[A-Za-z]{2,}"
)
_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
#: A word that is one token whole (base64 writes "/" and "+"; a path or a URL starts with "/"
#: or holds a "." or a ":").
_WHOLE_TOKEN = re.compile(r"[A-Za-z0-9_\-+/=~]{20,}")
_PIECE = re.compile(r"[^/:]+")
_LONG_NUMBER = re.compile(r"\d{12,}")


def model_commands(commands: Any) -> None:
    """Add ``model`` to the command line's subcommands."""
    cmd = commands.add_parser(
        "model",
        help="write a scenario module from production traffic (access logs, HAR, OTLP JSON)",
        description="Read access logs (nginx/Apache combined or common, or any nginx "
        "log_format; gzip too), HAR 1.2 files or OTLP JSON traces, and write a scenario "
        "module: the endpoints as templates and their weights, parameters as generators, the "
        "rate's shape as stages, the observed latency as thresholds. Values of a secret's "
        "shape or name are never copied. Exit 0 written (and --check passed), 1 --check "
        "found the replay off, 2 bad input (nothing written), 3 the replay could not run.",
    )
    cmd.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="INPUT",
        help="files of production traffic, as --format says (gzip read as such)",
    )
    cmd.add_argument(
        "-o", "--output", required=True, type=Path, metavar="FILE.py", help="the module written"
    )
    cmd.add_argument(
        "--format",
        metavar="FORMAT",
        help=f"{', '.join(INPUT_FORMATS)}, or an nginx log_format string "
        "(default: told from each input)",
    )
    cmd.add_argument("--name", help="the scenario's name (default: the output file's stem)")
    cmd.add_argument(
        "--keep",
        action="append",
        default=[],
        metavar="FIELD",
        help="copy this query parameter's or body field's values though they look like a "
        "secret's (repeatable; Authorization and Cookie are never read)",
    )
    cmd.add_argument(
        "--scale", default="1x", metavar="FACTOR", help="multiply every rate: 3x, 0.5x, 300%%"
    )
    cmd.add_argument(
        "--compress",
        metavar="FROM:TO",
        help="play FROM of the input in TO (24h:10m), or the whole span in TO (10m)",
    )
    cmd.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="processes to read one big plain log with (default: the cores, 2 at most)",
    )
    cmd.add_argument(
        "--max-bad",
        type=share,
        default=MAX_BAD,
        metavar="PERCENT",
        help="the share of an input that may not be read (default 5%%)",
    )
    cmd.add_argument(
        "--check",
        action="store_true",
        help="replay the module through a real nginx (nginx-light), model its log again and "
        "print the distances; exit 1 when a weight is off by more than --check-tolerance",
    )
    cmd.add_argument(
        "--check-duration",
        default="1m",
        metavar="DURATION",
        help="how long the replay plays the whole span (default 1m)",
    )
    cmd.add_argument(
        "--check-peak",
        type=float,
        default=100.0,
        metavar="RATE",
        help="the replay's peak requests/s (every rate scaled to it; default 100)",
    )
    cmd.add_argument(
        "--check-tolerance",
        type=float,
        default=2.0,
        metavar="PP",
        help="the largest weight difference that passes, in percentage points (default 2)",
    )
    cmd.set_defaults(handler=cmd_model)


def cmd_model(args: argparse.Namespace) -> int:
    output: Path = args.output
    if output.suffix != ".py":
        raise ConfigError("--output", str(output), "a .py file (the scenario module)")
    name = args.name or output.stem
    if not _NAME.fullmatch(name):
        raise ConfigError("--name", name, "a name of letters, digits and _ (a Python name)")
    scale = parse_scale(args.scale)
    if args.compress:
        parse_compress(args.compress, 1.0)  # its spelling, before a gigabyte is read for it
    for field in args.keep:
        if field.lower() in ("authorization", "cookie", "set-cookie", "proxy-authorization"):
            raise ConfigError("--keep", field, "a field other than credentials (never read)")
    if args.check:
        find_nginx()  # before the inputs are read: the check needs a real one
    started = time.monotonic()
    bar = _Progress()
    if args.workers is not None and not 1 <= args.workers <= 64:
        raise ConfigError("--workers", args.workers, "a number of processes from 1 to 64")
    learning = read_and_learn(list(args.inputs), args.format, args.keep, bar, workers=args.workers)
    learned, tallies = learning.learned, learning.tallies
    bar.done()
    _judge(tallies, args.max_bad, args.format)
    if not learned.count:
        raise ConfigError("INPUT", [str(p) for p in args.inputs], "requests to model (none read)")
    compress = 1.0
    if args.compress:
        span = shape_of(learned.per_second, learned.first or 0, learned.last or 0).span_s
        compress = parse_compress(args.compress, span)
    command = ["stressbed", "model"] + (
        [*map(str, args.inputs), "-o", str(output)]
        + (["--format", args.format] if args.format else [])
        + [f"--keep={k}" for k in args.keep]
        + (["--scale", args.scale] if scale != 1 else [])
        + (["--compress", args.compress] if args.compress else [])
    )
    written = write_module(learned, name, tallies, compress=compress, scale=scale, command=command)
    _write(output, written.text)
    _verify(output)
    _say_what(written, tallies, output, time.monotonic() - started)
    if not args.check:
        return 0
    check_s = parse_duration_ms(args.check_duration, "--check-duration") / 1000
    if check_s < 10 or args.check_peak <= 0:
        raise ConfigError(
            "--check-duration/--check-peak",
            f"{args.check_duration}/{args.check_peak:g}",
            "a duration of 10s or more and a peak > 0",
        )
    distances = check_model(
        learned, name, tallies, duration_s=check_s, peak=args.check_peak, keep=args.keep
    )
    return print_distances(distances, args.check_tolerance)


def _judge(tallies: list[Any], max_bad: float, given: str | None) -> None:
    """Say what could not be read; exit 2 when an input is past ``max_bad``."""
    for tally in tallies:
        if tally.bad:
            share_bad = tally.bad_share or 0.0
            print(
                f"{tally.source}: {tally.bad:,} {tally.unit}s of {tally.read + tally.bad:,} "
                f"({share_bad:.1%}) not read as {tally.format}, e.g.:",
                file=sys.stderr,
            )
            for example in tally.examples:
                print(f"    {mask(example)}", file=sys.stderr)
        if tally.read == 0 and tally.unit == "span":
            raise ConfigError(tally.source, "no server span", "OTLP JSON with SERVER spans")
        if tally.read == 0 and tally.unit == "entry":
            raise ConfigError(tally.source, "no entries", "a HAR file with log.entries")
        if (tally.bad_share or 0.0) > max_bad:
            raise ConfigError(
                tally.source,
                f"{tally.bad_share:.1%} of its {tally.unit}s not {tally.format}",
                f"at most {max_bad:.1%}: pass --format with the log_format string of the "
                "server that wrote it (or combined, common, stressbed, har, otlp)"
                if tally.unit == "line"
                else f"at most {max_bad:.1%} (--max-bad)",
            )


def mask(text: str) -> str:
    """A bad line as shown: the values of secrets' names (``password=...``, ``"pwd": ...``),
    credentials after an auth scheme, and every word of a secret's shape (an email, an
    address, a UUID, a JWT, a hash, a token, a long number) masked; the rest (a path, a time)
    left to read, to tell the format by."""
    text = _CUT_WORD.sub("...", text)
    text = _AUTH.sub(r"\1\2<token>", text)
    text = _PAIR.sub(_masked_pair, text)
    text = _EMAIL.sub("<email>", text)
    text = _WORD.sub(_masked_word, text)
    return _IPV4.sub("<ip>", text)


def _masked_pair(found: re.Match[str]) -> str:
    name, between, value = found.groups()
    if not is_sensitive_name(name) or value.startswith("<"):
        return found.group()
    return f"{name}{between}<secret>"


def _masked_word(found: re.Match[str]) -> str:
    word = found.group()
    if shape(word) == "ip":
        return "<ip>"
    if (
        not word.startswith("/")
        and _WHOLE_TOKEN.fullmatch(word)
        and re.search(r"\d", word)
        and re.search(r"[A-Za-z]", word)
    ):
        return "<token>"
    return _PIECE.sub(_masked_piece, word)


def _masked_piece(found: re.Match[str]) -> str:
    piece = found.group()
    kind = shape(piece)
    if kind in SENSITIVE_SHAPES:
        return f"<{kind}>"
    return "<number>" if _LONG_NUMBER.fullmatch(piece) else piece


def _write(output: Path, text: str) -> None:
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", dir=output.parent, prefix=f".{output.stem}-", suffix=".tmp", delete=False
        ) as tmp:
            tmp.write(text)
        Path(tmp.name).replace(output)
    except OSError as exc:
        raise ConfigError("--output", str(output), f"a file that can be written ({exc})") from None


def _verify(output: Path) -> None:
    """Load and render the module as ``stressbed render`` would. One that does not is
    stressbed's bug, not the input's: said so, the module kept to be looked at (exit 3)."""
    try:
        with tempfile.TemporaryDirectory(prefix="stressbed-model-") as tmp:
            render(catalog.load(str(output)), Path(tmp))
    except StressbedError as exc:
        raise StressbedError(
            f"{output} was written but does not render, a bug of stressbed model's "
            f"(please report it with the module): {exc}"
        ) from None


def _say_what(written: Written, tallies: list[Any], output: Path, seconds: float) -> None:
    read = sum(t.read for t in tallies)
    print(f"read {read:,} records from {len(tallies)} input(s) in {seconds:.1f} s")
    for endpoint in written.endpoints[:10]:
        share_of = endpoint.stats.count / written.total
        print(f"  {share_of:7.2%}  {endpoint.key}")
    if len(written.endpoints) > 10:
        print(f"  ... {len(written.endpoints) - 10} more endpoints")
    if written.shape is not None:
        print(
            f"rate: {len(written.shape.stages)} stages over "
            f"{written.shape.seconds():.0f} s, peak {written.shape.peak_rate:.3g} requests/s"
        )
    print(f"wrote {output} (renders: stressbed render --scenario {output} -o DIR)")


class _Progress:
    """A progress bar on a terminal's stderr; a line each tenth otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.shown = -1
        self.started = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        share_done = done / total if total else 1.0
        if self.tty:
            filled = int(30 * share_done)
            rate = done / max(1e-9, time.monotonic() - self.started) / 1e6
            print(
                f"\rreading [{'#' * filled}{'.' * (30 - filled)}] {share_done:6.1%} "
                f"{done / 1e6:,.0f}/{total / 1e6:,.0f} MB {rate:,.0f} MB/s",
                end="",
                file=sys.stderr,
                flush=True,
            )
        elif int(share_done * 10) > self.shown:
            self.shown = int(share_done * 10)
            print(f"reading: {share_done:.0%} of {total / 1e6:,.1f} MB", file=sys.stderr)

    def done(self) -> None:
        if self.tty:
            print(file=sys.stderr)
