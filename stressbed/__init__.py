"""stressbed: stress-test agent services with Python scenarios rendered to k6.

The public API is this module's ``__all__``; everything else is internal. Generators, checks
and extractors live in the namespaces :mod:`stressbed.gen`, :mod:`stressbed.check` and
:mod:`stressbed.extract`.
"""

from __future__ import annotations

from . import check, extract, gen
from .errors import ConfigError, RenderError, ScenarioNotFoundError, StressbedError
from .flow import group, journey, mix, think_constant, think_normal, think_uniform
from .http import delete, get, head, patch, post, put, request
from .profiles import (
    ConstantArrivalRate,
    ConstantVUs,
    PerVUIterations,
    RampingArrivalRate,
    RampingVUs,
    SharedIterations,
)
from .render import Bundle, render
from .scenario import Scenario, Workload
from .templates import literal
from .thresholds import check_rate, error_rate, latency, request_rate, threshold
from .values import var

__version__ = "0.1.0"

__all__ = [
    "Bundle",
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
    "__version__",
    "check",
    "check_rate",
    "delete",
    "error_rate",
    "extract",
    "gen",
    "get",
    "group",
    "head",
    "journey",
    "latency",
    "literal",
    "mix",
    "patch",
    "post",
    "put",
    "render",
    "request",
    "request_rate",
    "think_constant",
    "think_normal",
    "think_uniform",
    "threshold",
    "var",
]
