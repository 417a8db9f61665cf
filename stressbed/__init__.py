"""stressbed: stress-test agent services with Python scenarios rendered to k6.

The public API is this module's ``__all__``: the scenario DSL, rendering and the exception
tree. Generators, checks, extractors, faults, populations and thresholds live in the namespaces
:mod:`stressbed.gen`, :mod:`stressbed.check`, :mod:`stressbed.extract`, :mod:`stressbed.fault`,
:mod:`stressbed.population` and :mod:`stressbed.thresholds` (the population's thresholds only
there). Everything else
is internal; docs/concepts/architecture.md says which subpackage owns which stage of a
run.
"""

from __future__ import annotations

from . import check, extract, fault, gen, population, thresholds
from .errors import ConfigError, RenderError, ScenarioNotFoundError, StressbedError
from .scenario.capacity import Capacity
from .scenario.flow import group, journey, mix, think_constant, think_normal, think_uniform
from .scenario.http import delete, get, head, patch, post, put, request
from .scenario.load_profiles import (
    ConstantArrivalRate,
    ConstantVUs,
    PerVUIterations,
    RampingArrivalRate,
    RampingVUs,
    SharedIterations,
)
from .scenario.model import Scenario, Workload
from .scenario.render import Bundle, render
from .scenario.resilience import errors_during_fault, lost_writes, recovery_time, time_to_detect
from .scenario.templates import literal
from .scenario.thresholds import check_rate, error_rate, latency, request_rate, threshold
from .scenario.values import var
from .scenario.writes import Writes

__version__ = "0.1.0"

__all__ = [
    "Bundle",
    "Capacity",
    "ConfigError",
    "ConstantArrivalRate",
    "ConstantVUs",
    "PerVUIterations",
    "RampingArrivalRate",
    "RampingVUs",
    "RenderError",
    "Scenario",
    "ScenarioNotFoundError",
    "SharedIterations",
    "StressbedError",
    "Workload",
    "Writes",
    "__version__",
    "check",
    "check_rate",
    "delete",
    "error_rate",
    "errors_during_fault",
    "extract",
    "fault",
    "gen",
    "get",
    "group",
    "head",
    "journey",
    "latency",
    "literal",
    "lost_writes",
    "mix",
    "patch",
    "population",
    "post",
    "put",
    "recovery_time",
    "render",
    "request",
    "request_rate",
    "think_constant",
    "think_normal",
    "think_uniform",
    "threshold",
    "thresholds",
    "time_to_detect",
    "var",
]
