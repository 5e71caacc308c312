"""Phase cost measurement (codecarbon offline tracker, or the labelled estimate)."""

from __future__ import annotations

import time

import pytest

from ofa_nni.carbon import CostMeter


def _busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        x += 1


def test_codecarbon_offline_tracker_measures_a_phase():
    pytest.importorskip("codecarbon")
    meter = CostMeter()
    with meter.phase("busy"):
        _busy(1.2)
    (cost,) = meter.phases
    assert cost.name == "busy" and cost.wall_s >= 1.2 and cost.cpu_s > 0.05  # the machine may be shared
    assert cost.energy_kwh > 0 and cost.emissions_kg > 0
    assert cost.method.startswith("codecarbon")


def test_estimate_without_codecarbon_is_labelled_and_proportional():
    meter = CostMeter(use_codecarbon=False)
    with meter.phase("a"):
        _busy(0.3)
    with meter.phase("b"):
        _busy(0.6)
    a, b = meter.phases
    assert a.method.startswith("estimate: process CPU time")
    assert 1.5 < b.energy_kwh / a.energy_kwh < 2.5
    total = meter.total()
    assert total.energy_kwh == pytest.approx(a.energy_kwh + b.energy_kwh)
    assert meter.total("b") == b
    assert a.scaled(10, "ten").energy_kwh == pytest.approx(10 * a.energy_kwh)
    with pytest.raises(ValueError, match=r"no phase named \['c'\]; measured: \['a', 'b'\]"):
        meter.total("c")


def test_a_failing_phase_is_still_measured():
    meter = CostMeter(use_codecarbon=False)
    with pytest.raises(RuntimeError), meter.phase("fails"):
        raise RuntimeError("boom")
    assert meter.phases[0].name == "fails"
