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
from .settings import DEFAULT_FILE, ENV, FILE_VERSION, RUN_KEYS

__all__ = ["commands", "markdown", "profile_markdown"]

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


def profile_markdown() -> str:
    """The profile file's keys, from the run settings themselves: each with its default, its
    environment variable and its command-line option (``reference/profile.md``)."""
    run = dict(commands())[("run",)]
    options = {o for a in arguments(run) for o in a.option_strings}
    out = [
        "# The profile file",
        "",
        f"`{DEFAULT_FILE}` in the working directory (or `--profiles FILE`), `version: "
        f"{FILE_VERSION}`:",
        "a `common` section and named `profiles` (`--profile NAME`, else its",
        "`default_profile`), each a mapping of the keys below. Layers, each over the one before:",
        "the defaults < `common` < the profile < the environment < the command line;",
        "summary.json's `settings.sources` says where each value came from. Written from the",
        "run settings at each build of this site; the layers and an example are in",
        "[Running a scenario](../guides/running.md#run-profiles).",
        "",
        "| key | default | environment | command line |",
        "|---|---|---|---|",
    ]
    for key, default in RUN_KEYS.items():
        flag = "--" + key.replace("_", "-")
        shown = "none" if default is None else f"`{default}`"
        option = f"`{flag}`" if flag in options else "(the file and the environment only)"
        out.append(f"| `{key}` | {shown} | `{ENV[key]}` | {option} |")
    out += [
        "| `stack` | the scenario's or the reference agent's | | |",
        "| `thresholds` | the scenario's | | |",
        "",
        "`stack` overrides the StackSpec field by field (`null` removes a quota, a LimitRange, an",
        "autoscaler or a probe) and `thresholds` replaces the scenario's thresholds on the metric",
        "keys it names: both are described in",
        "[Running a scenario](../guides/running.md#run-profiles).",
    ]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown())
