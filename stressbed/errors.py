"""The exception tree of stressbed.

Every error a user can cause is a :class:`StressbedError`; the CLI translates it once into a
one-line message and the exit code documented in docs/reference/exit-codes.md. Errors carry
their fields so tests and callers never parse messages.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DocumentError",
    "ProvisionError",
    "RenderError",
    "ScenarioNotFoundError",
    "StressbedError",
    "TeardownError",
]

_MAX_VALUE_CHARS = 80


class StressbedError(Exception):
    """Base of every error stressbed raises on purpose."""

    #: The process exit code the CLI uses for this kind of error.
    exit_code = 3


class ConfigError(StressbedError):
    """Bad input: a scenario, an option or a file that cannot be used. Nothing was started.

    The message names the scenario (when known), the field path, the value found and what is
    allowed, on one line::

        scenario 'ingest': workloads[0].profile.rate: got -5; expected a number > 0
    """

    exit_code = 2

    def __init__(
        self, field: str, value: object, expected: str, *, scenario: str | None = None
    ) -> None:
        self.field = field
        self.value = value
        self.expected = expected
        self.scenario = scenario
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"scenario {self.scenario!r}: " if self.scenario else ""
        field = f"{self.field}: " if self.field else ""
        return f"{where}{field}got {_show(self.value)}; expected {self.expected}"

    def within(self, prefix: str) -> ConfigError:
        """The same error seen from an enclosing object whose field ``prefix`` holds it."""
        if not self.field:
            field = prefix
        elif self.field.startswith("["):
            field = f"{prefix}{self.field}"
        else:
            field = f"{prefix}.{self.field}"
        return ConfigError(field, self.value, self.expected, scenario=self.scenario)

    def in_scenario(self, scenario: str) -> ConfigError:
        """The same error, attributed to a scenario (kept if already attributed)."""
        return ConfigError(
            self.field, self.value, self.expected, scenario=self.scenario or scenario
        )


class ScenarioNotFoundError(ConfigError):
    """``--scenario`` names neither a module in scenarios/ nor an existing .py file."""

    def __init__(self, name: str, available: list[str]) -> None:
        self.available = available
        choices = ", ".join(available) if available else "none found"
        super().__init__("--scenario", name, f"a scenario name ({choices}) or a path to a .py file")


class RenderError(StressbedError):
    """The bundle could not be written (an output directory that cannot be used)."""

    exit_code = 2


class ProvisionError(StressbedError):
    """The stack could not be brought up (a replica never became ready, a backend failed).

    Whatever was started has been torn down; exit code 3 (infrastructure failure)."""

    exit_code = 3


class TeardownError(ProvisionError):
    """Steps of a stack's teardown failed, each said in :attr:`failures` (one message a
    step); every other step ran, the removal of the stack last. Exit code 3."""

    def __init__(self, failures: list[str]) -> None:
        self.failures = list(failures)
        super().__init__("; ".join(self.failures))


class DocumentError(StressbedError):
    """A results document (a runner's result.json, the result line of a pod's log) that is not
    what it claims to be: a field missing or of the wrong type, another format or version.
    Exit code 3: the run's data, not the user's input, is at fault."""

    exit_code = 3

    def __init__(self, field: str, value: object, expected: str) -> None:
        self.field = field
        self.value = value
        self.expected = expected
        super().__init__(f"{field}: got {_show(value)}; expected {expected}")


def _show(value: object) -> str:
    text = repr(value)
    if len(text) > _MAX_VALUE_CHARS:
        text = text[: _MAX_VALUE_CHARS - 3] + "..."
    return text
