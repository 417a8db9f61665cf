"""The HPA algorithm, table-driven against what Kubernetes' controller does."""

from __future__ import annotations

from dataclasses import replace

import pytest

from stressbed.stack.hpa import HpaController
from stressbed.stack.spec import Autoscaler, ScalePolicy

HPA = Autoscaler(min_replicas=2, max_replicas=4, cpu_utilization=70, scale_down_stabilization_s=30)


@pytest.mark.parametrize(
    ("current", "cpu", "expected"),
    [
        (2, [75, 77], 2),  # 1.09x target: within the 10% tolerance
        (2, [140, 140], 4),  # 2x target: ceil(2 x 2)
        (2, [350, 350], 4),  # 5x target, bounded by max_replicas
        (3, [140, None, None], 3),  # up, but unready replicas counted at 0% reverse it
        (3, [10, None, None], 3),  # down, missing metrics counted at 100%: ceil(0.71 x 3)
        (3, [100, 100, 100], 4),  # ceil(1.43 x 3) = 5, bounded by max_replicas
    ],
)
def test_one_sync(current, cpu, expected):
    assert HpaController(HPA).decide(0.0, current, cpu=cpu).replicas == expected


def test_scale_down_waits_for_its_stabilisation_window():
    hpa = HpaController(HPA)
    assert hpa.decide(0, 4, cpu=[140] * 4).replicas == 4
    decision = hpa.decide(10, 4, cpu=[5] * 4)
    assert decision.replicas == 4  # the high recommendation of t=0 is still in the window
    assert "stabilised" in decision.reason
    assert hpa.decide(45, 4, cpu=[5] * 4).replicas == 2  # t=0 has left the window; min 2


def test_scale_up_policies_limit_the_step_per_period():
    spec = replace(HPA, max_replicas=10, scale_up_policies=(ScalePolicy("Pods", 1, 60),))
    hpa = HpaController(spec)
    first = hpa.decide(0, 2, cpu=[210, 210])
    assert first.replicas == 3
    assert "limited by policy" in first.reason
    assert hpa.decide(30, 3, cpu=[210, 210, 210]).replicas == 3  # one pod per minute
    assert hpa.decide(61, 3, cpu=[210, 210, 210]).replicas == 4


def test_the_largest_metric_recommendation_wins():
    spec = replace(HPA, memory_utilization=50)
    decision = HpaController(spec).decide(0, 2, cpu=[70, 70], memory=[100, 100])
    assert decision.replicas == 4
    assert decision.reason.startswith("memory")


def test_no_metrics_no_change():
    assert HpaController(HPA).decide(0, 3).replicas == 3
    assert HpaController(HPA).decide(0, 3, cpu=[None, None, None]).replicas == 3
