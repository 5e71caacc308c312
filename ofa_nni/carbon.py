"""Time, energy and emissions of each phase of a run (train once, measure, specialize, deploy).

OFA's case is amortisation: one training run serves every deployment target (the paper: 40
targets for 1.2k GPU-hours instead of 20k-1,600k). :class:`CostMeter` measures each phase's wall
time and process CPU time, and its energy and CO2e with codecarbon's offline tracker when it can
run (no network needed). Where codecarbon cannot read power sensors (no RAPL, as on most VMs) it
estimates CPU power from load and a per-thread default; the method used is recorded with every
figure, and without codecarbon the meter falls back to an explicit estimate (CPU seconds x
watts per busy core) labelled as such.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import resource
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["PhaseCost", "CostMeter"]

FALLBACK_WATTS_PER_CORE = 4.0
"""Watts per fully busy core for the fallback estimate (codecarbon's own default per thread)."""
FALLBACK_KG_CO2E_PER_KWH = 0.475
"""World-average carbon intensity (IEA 2019) for the fallback estimate."""


@dataclasses.dataclass
class PhaseCost:
    """What one phase cost."""

    name: str
    wall_s: float
    cpu_s: float
    energy_kwh: float
    emissions_kg: float
    method: str

    def scaled(self, factor: float, name: str) -> PhaseCost:
        """This cost times ``factor`` (e.g. N separately trained networks), same method."""
        return PhaseCost(
            name=name,
            wall_s=self.wall_s * factor,
            cpu_s=self.cpu_s * factor,
            energy_kwh=self.energy_kwh * factor,
            emissions_kg=self.emissions_kg * factor,
            method=self.method,
        )

    def __add__(self, other: PhaseCost) -> PhaseCost:
        methods = self.method if self.method == other.method else f"{self.method}; {other.method}"
        return PhaseCost(
            name=f"{self.name} + {other.name}",
            wall_s=self.wall_s + other.wall_s,
            cpu_s=self.cpu_s + other.cpu_s,
            energy_kwh=self.energy_kwh + other.energy_kwh,
            emissions_kg=self.emissions_kg + other.emissions_kg,
            method=methods,
        )


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class CostMeter:
    """Measures phases: ``with meter.phase("train"): ...``; results in :attr:`phases`.

    Args:
        country_iso_code: Where the machine runs, for codecarbon's carbon intensity (offline data).
        use_codecarbon: Try codecarbon's offline tracker (falls back to the estimate if missing).
        output_dir: Where codecarbon may write its files (nothing is written by default).
    """

    def __init__(self, *, country_iso_code: str = "USA", use_codecarbon: bool = True) -> None:
        self.country_iso_code = country_iso_code
        self.use_codecarbon = use_codecarbon
        self.phases: list[PhaseCost] = []

    def _tracker(self) -> Any:
        if not self.use_codecarbon:
            return None
        try:
            from codecarbon import OfflineEmissionsTracker
        except ImportError:
            return None
        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        try:
            return OfflineEmissionsTracker(
                country_iso_code=self.country_iso_code,
                save_to_file=False,
                log_level="error",
                measure_power_secs=1,
                allow_multiple_runs=True,
            )
        except Exception:  # codecarbon cannot run on this machine: use the labelled estimate
            return None

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        tracker = self._tracker()
        if tracker is not None:
            tracker.start()
        wall, cpu = time.perf_counter(), _cpu_seconds()
        try:
            yield
        finally:
            wall_s, cpu_s = time.perf_counter() - wall, _cpu_seconds() - cpu
            self.phases.append(self._cost(name, wall_s, cpu_s, tracker))

    @staticmethod
    def _cost(name: str, wall_s: float, cpu_s: float, tracker: Any) -> PhaseCost:
        if tracker is not None:
            try:
                emissions = tracker.stop()
                data = tracker.final_emissions_data
                mode = getattr(tracker, "_conf", {}).get("tracking_mode", "machine")
                method = (
                    f"codecarbon {_codecarbon_version()} offline tracker ({mode} mode, CPU '{data.cpu_model}'; "
                    "where no power sensor is readable it estimates CPU power from load)"
                )
                return PhaseCost(name, wall_s, cpu_s, float(data.energy_consumed), float(emissions or 0.0), method)
            except Exception:  # fall through to the estimate, labelled as such
                pass
        energy = cpu_s * FALLBACK_WATTS_PER_CORE / 3.6e6
        method = (
            f"estimate: process CPU time x {FALLBACK_WATTS_PER_CORE:g} W per busy core, "
            f"{FALLBACK_KG_CO2E_PER_KWH} kg CO2e/kWh (codecarbon unavailable)"
        )
        return PhaseCost(name, wall_s, cpu_s, energy, energy * FALLBACK_KG_CO2E_PER_KWH, method)

    def total(self, *names: str) -> PhaseCost:
        """The sum of the named phases (all phases if none named)."""
        chosen = [p for p in self.phases if not names or p.name in names]
        if not chosen:
            raise ValueError(f"no phase named {list(names)}; measured: {[p.name for p in self.phases]}")
        total = chosen[0]
        for phase in chosen[1:]:
            total = total + phase
        return total


def _codecarbon_version() -> str:
    try:
        import codecarbon

        return str(codecarbon.__version__)
    except ImportError:  # pragma: no cover - only called when codecarbon ran
        return "?"

