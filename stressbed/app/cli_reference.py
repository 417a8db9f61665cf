"""The command line's reference, written from its own argument parser: every command, its
positional arguments and options with their help, choices and defaults, as Markdown (the
documentation site's ``reference/cli.md``, generated at each build: an option cannot be
missing from it, nor outlive its removal).

    python -m stressbed.app.cli_reference > docs/reference/cli.md
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

from .cli import build_parser

__all__ = ["commands", "markdown"]

_HIDDEN = (argparse.SUPPRESS,)


def commands(
    parser: argparse.ArgumentParser | None = None, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every command (``("history",)``, ...) with its parser, nested ones after their parent."""
    parser = parser or build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from commands(sub, (*path, name))


def arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """A command's own arguments (not its subcommands, not --help)."""
    return [
        a
        for a in parser._actions
        if not isinstance(a, argparse._SubParsersAction | argparse._HelpAction)
        and a.help not in _HIDDEN
    ]


def _row(action: argparse.Action) -> str:
    name = (
        ", ".join(f"`{o}`" for o in action.option_strings) or f"`{action.metavar or action.dest}`"
    )
    if action.option_strings and action.nargs != 0:
        name += f" `{action.metavar or action.dest.upper()}`"
    name = name.replace("|", "\\|")
    said = (action.help or "").replace("|", "\\|").replace("\n", " ")
    if action.choices:
        said += f" (one of: {', '.join(f'`{c}`' for c in action.choices)})"
    if action.required and action.option_strings:
        said += " **Required.**"
    default = action.default
    if action.option_strings and default not in (None, False, [], argparse.SUPPRESS):
        said += f" Default: `{default}`."
    return f"| {name} | {said.strip()} |"


def markdown() -> str:
    """The whole reference, one section a command."""
    parser = build_parser()
    out = [
        "# Command line reference",
        "",
        "Written from stressbed's own argument parser at each build of this site (every command",
        "and option is here, and only those). `stressbed COMMAND --help` prints the same.",
        "",
        "    " + parser.format_usage().strip(),
        "",
    ]
    for path, sub in commands(parser):
        out += [f"## `stressbed {' '.join(path)}`", ""]
        if sub.description:
            out += [sub.description, ""]
        own = arguments(sub)
        if own:
            out += ["| argument | what |", "|---|---|", *(_row(a) for a in own), ""]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown())
