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
import json
import logging
import resource
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ofa_nni._artifacts import atomic_write_json
from ofa_nni.errors import InvalidInputError

__all__ = ["PhaseCost", "PhaseStep", "CostMeter"]

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
    note: str = ""
    """E.g. that the figure was measured by an earlier run that built what this run reused."""

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


@dataclasses.dataclass
class PhaseStep:
    """What :meth:`CostMeter.phase` yields: set :attr:`reused` when the phase only loaded the result
    of an earlier run."""

    reused: bool = False


class CostMeter:
    """Measures phases: ``with meter.phase("train"): ...``; results in :attr:`phases`.

    Args:
        country_iso_code: Where the machine runs, for codecarbon's carbon intensity (offline data).
        use_codecarbon: Try codecarbon's offline tracker (falls back to the estimate if missing).
        ledger: A JSON file keeping every phase's cost across runs (of one run directory): a phase
            marked ``reused`` reports the cost stored when it was measured, not the seconds it took
            to load the earlier result, so a resumed run's report still compares real costs. (A run
            killed in the middle of a phase stores nothing for it; its resumed run counts the rest.)
    """

    def __init__(self, *, country_iso_code: str = "USA", use_codecarbon: bool = True,
                 ledger: str | Path | None = None) -> None:
        self.country_iso_code = country_iso_code
        self.use_codecarbon = use_codecarbon
        self.ledger = None if ledger is None else Path(ledger)
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
    def phase(self, name: str) -> Iterator[PhaseStep]:
        tracker = self._tracker()
        if tracker is not None:
            tracker.start()
        wall, cpu = time.perf_counter(), _cpu_seconds()
        step = PhaseStep()
        try:
            yield step
        finally:
            wall_s, cpu_s = time.perf_counter() - wall, _cpu_seconds() - cpu
            self._record(name, self._cost(name, wall_s, cpu_s, tracker), reused=step.reused)

    def _record(self, name: str, measured: PhaseCost, *, reused: bool) -> None:
        stored = self._stored()
        if reused and name in stored:
            self.phases.append(dataclasses.replace(
                PhaseCost(**stored[name]), note="measured by the earlier run that built what this run reused"))
        else:
            self.phases.append(measured)
            if self.ledger is not None:
                atomic_write_json(self.ledger, {**stored, name: dataclasses.asdict(measured)})

    def _stored(self) -> dict[str, Any]:
        if self.ledger is None or not self.ledger.is_file():
            return {}
        try:
            stored = json.loads(self.ledger.read_text())
        except (OSError, ValueError):
            return {}  # a damaged ledger only loses the earlier figures: phases are measured again
        if not isinstance(stored, dict):
            return {}
        fields = {field.name for field in dataclasses.fields(PhaseCost)}
        required = {field.name for field in dataclasses.fields(PhaseCost) if field.default is dataclasses.MISSING}
        return {name: cost for name, cost in stored.items()
                if isinstance(cost, dict) and required <= set(cost) <= fields}

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
            raise InvalidInputError(f"no phase named {list(names)}; measured: {[p.name for p in self.phases]}")
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

