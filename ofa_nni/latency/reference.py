"""Reference-op normalisation (``normalise="reference"``): timings expressed at the machine's quiet speed.

The CPU clock hides waiting for a core, not slowdowns while running: a neighbour hammering memory
bandwidth or the caches, a lower clock frequency. Such a slow phase inflates whichever entries are
timed during it. With this normalisation a fixed *reference op* is timed, with the same protocol
(warm-up, repeats, clock), at least every :data:`REFERENCE_INTERVAL_S` seconds in between the
entries' visits (and before the first and after the last). Each visit's timings are then divided
by the reference's speed at that moment -- the median of its timings, interpolated in time between
the reference visits just before and after -- and multiplied by its *baseline*, a low quantile
(:data:`BASELINE_PERCENTILE`) of those medians over the whole run, so a phase that slows entries and
reference alike by a factor scales out, and a steady machine is left as it is. The entries'
statistic (min or median) is then taken over the normalised timings.

Why these choices:

* The reference op is one mid-sized block of the space itself (:func:`reference_spec`): it uses the
  memory and arithmetic the entries use, so it slows down as they do; a foreign op (a big matmul)
  would see another mix of compute and memory traffic. It is the same for the whole build, and the
  table records it, so validation, re-timing and deployment checks time the same op.
* Visits are interleaved by time, not by count: entry visits take 1 ms-10 ms and whole subnets
  50 ms-200 ms, so one interval keeps the overhead near the reference's share of 0.1 s (~5-10%)
  for both, and resolves load that changes over 0.2 s or more (processes starting and stopping,
  frequency changes, other jobs' phases). Slowdowns that come and go faster than that (a
  neighbour's copy/compute cycle of a few ms) are not tracked: the minimum statistic handles those
  as before.
* The median of a reference visit is its speed *now* (steadier than its minimum); the low quantile
  of the medians (``method="lower"``: an observed value) is the quiet speed of the run, robust to
  one lucky visit.
* Each measuring run (a build, a validation, a re-timing, a deployment check) normalises to its
  *own* baseline: slow phases within a run scale out, but a machine that is slower for the whole
  run stays slower, so a deployment check still sees a machine busier than when its table was built.
* Timestamps are ``time.time()`` (seconds since the epoch), comparable across the processes of an
  interrupted and resumed build; an entry visited just before an interruption is nearest in time
  to the reference visit just before it.

Limits:

* A load that lasts the whole run is not divided out (there is no quieter phase to scale to): a
  table built entirely under a memory-heavy neighbour still predicts the latency beside it.
* A slowdown that hits the reference and an entry unequally is divided out only in part: a
  neighbour evicting the caches slows a big op (whose weights and activations no longer fit)
  more than a small one, and the reference is one size.
* Load that changes within less than the interval between reference visits is not tracked.
* The reference visits cost time: about one visit of a mid-sized op per 0.1 s of measuring.

Measured (``benchmarks/results/latency_table.md``, 2026-12-07): on a 2-core CPU under the
benchmark's stress kinds it did no better than the default and, with the minimum statistic, worse
(8 of 11 runs missed the quality targets the default met): the reference's own timing moved up to
1.75x from visit to visit even where the CPU clock already hid the competitor, so the division added
noise, and the minimum then picks the luckiest quotient. Hence the default is ``none``; this stays
for a device whose speed really drifts during a build.

numpy only: reading and normalising load no torch.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ofa_nni.errors import InvalidInputError
from ofa_nni.latency.specs import OpSpec

__all__ = [
    "BASELINE_PERCENTILE",
    "REFERENCE_INTERVAL_S",
    "ReferenceLog",
    "normalise_visits",
    "reference_factors",
    "reference_spec",
]

REFERENCE_INTERVAL_S = 0.1
"""At least this many seconds (wall clock) between the starts of two reference visits."""
BASELINE_PERCENTILE = 10
"""The reference's quiet speed: this percentile of its visits' medians over a run."""

_BLOCK_KINDS = ("mbconv", "bottleneck")


def _cost_proxy(spec: OpSpec) -> int:
    """Roughly the multiply-adds of a block (expand, depthwise or 3x3, project), enough to rank blocks."""
    mid = spec.mid_channels or spec.in_channels
    return spec.input_size ** 2 * mid * (spec.in_channels + spec.kernel_size ** 2 + spec.out_channels)


def reference_spec(specs: Mapping[str, OpSpec]) -> OpSpec:
    """The reference op of a build of ``specs``: the block (MBConv or bottleneck) of median size
    (ties and the iteration order of ``specs`` do not change the choice)."""
    blocks = sorted((spec for spec in specs.values() if spec.kind in _BLOCK_KINDS),
                    key=lambda spec: (_cost_proxy(spec), spec.key))
    if not blocks:
        raise InvalidInputError("normalise 'reference' needs a block (mbconv or bottleneck) among the measured ops")
    return blocks[len(blocks) // 2]


def reference_factors(visit_at: Sequence[float], reference_at: Sequence[float],
                      reference_ms: Sequence[float]) -> np.ndarray:
    """How much slower than its quiet speed the machine ran at each of ``visit_at`` (seconds): the
    reference's timing interpolated in time (held constant before the first and after the last
    reference visit), over its baseline."""
    at = np.asarray(reference_at, dtype=np.float64)
    ms = np.asarray(reference_ms, dtype=np.float64)
    if at.size == 0 or at.shape != ms.shape:
        raise InvalidInputError(f"no reference timings to normalise with ({at.size} times, {ms.size} timings)")
    if not (np.isfinite(ms).all() and (ms > 0).all()):
        raise InvalidInputError("reference timings must be finite and > 0")
    order = np.argsort(at, kind="stable")
    local = np.interp(np.asarray(visit_at, dtype=np.float64), at[order], ms[order])
    baseline = float(np.percentile(ms, BASELINE_PERCENTILE, method="lower"))
    return local / baseline


def normalise_visits(timings: Mapping[str, Sequence[float]], visit_at: Mapping[str, Sequence[float]], repeats: int,
                     reference_at: Sequence[float], reference_ms: Sequence[float]) -> dict[str, list[float]]:
    """``timings[key]`` (``repeats`` per visit, visits in the order of ``visit_at[key]``) each divided
    by the factor of :func:`reference_factors` at its visit's time."""
    keys = list(timings)
    for key in keys:
        count, visits = len(timings[key]), len(visit_at.get(key, ()))
        if count != visits * repeats:
            raise InvalidInputError(f"timings.{key} has {count} timings for {visits} visits of {repeats} repeats")
    flat_at = [at for key in keys for at in visit_at[key]]
    factors = iter(reference_factors(flat_at, reference_at, reference_ms) if flat_at else [])
    normalised: dict[str, list[float]] = {}
    for key in keys:
        values = normalised[key] = []
        for visit in range(len(visit_at[key])):
            factor = float(next(factors))
            values.extend(t / factor for t in timings[key][visit * repeats:(visit + 1) * repeats])
    return normalised


@dataclasses.dataclass
class ReferenceLog:
    """What a measuring run needs to normalise afterwards: when each visit of each key happened
    (``visit_at``) and the reference's visits (``at``: when, ``ms``: the median of its timings).
    A build keeps it in its progress file (:meth:`to_dict`, :meth:`from_dict`)."""

    at: list[float] = dataclasses.field(default_factory=list)
    ms: list[float] = dataclasses.field(default_factory=list)
    visit_at: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    _last_start: float = dataclasses.field(default=-np.inf, repr=False)

    def time_reference_if_due(self, time_reference: Callable[[], list[float]], *, force: bool = False) -> None:
        """Run ``time_reference`` (one visit of the reference op, its timings in ms) if
        :data:`REFERENCE_INTERVAL_S` has passed since the last reference visit began (or ``force``)."""
        now = time.time()
        if force or now - self._last_start >= REFERENCE_INTERVAL_S:
            self._last_start = now
            timings = time_reference()
            self.at.append((now + time.time()) / 2)
            self.ms.append(float(np.median(timings)))

    def visit(self, key: str, run: Callable[[], list[float]], time_reference: Callable[[], list[float]]
              ) -> list[float]:
        """Run one visit of ``key`` (``run``), the reference first if due; its timings, its time logged."""
        self.time_reference_if_due(time_reference)
        started = time.time()
        timings = run()
        self.visit_at.setdefault(key, []).append((started + time.time()) / 2)
        return timings

    def normalise(self, timings: Mapping[str, Sequence[float]], repeats: int) -> dict[str, list[float]]:
        return normalise_visits(timings, self.visit_at, repeats, self.at, self.ms)

    def summary(self, op: str) -> dict[str, Any]:
        """What the table or validation records of the run's reference (the op, its baseline, how
        far the factors ranged: how much slowdown was scaled out)."""
        flat_at = [at for times in self.visit_at.values() for at in times]
        factors = reference_factors(flat_at, self.at, self.ms) if flat_at else np.ones(1)
        return {"op": op, "baseline_ms": round(float(np.percentile(self.ms, BASELINE_PERCENTILE, method="lower")), 6),
                "visits": len(self.ms), "interval_s": REFERENCE_INTERVAL_S,
                "factor_min": round(float(factors.min()), 4), "factor_max": round(float(factors.max()), 4)}

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at, "ms": self.ms, "visit_at": self.visit_at}

    @classmethod
    def from_dict(cls, data: Any, timings: Mapping[str, Sequence[float]], repeats: int, where: str) -> ReferenceLog:
        """The log of a progress file, checked against its ``timings`` (one visit time per ``repeats``)."""
        if not isinstance(data, Mapping) or not all(isinstance(data.get(f), t) for f, t in
                                                    (("at", list), ("ms", list), ("visit_at", dict))):
            raise InvalidInputError(f"{where}: reference must be an object with lists at, ms and an object visit_at; "
                                    "delete the file")
        numbers = [*data["at"], *data["ms"], *(v for times in data["visit_at"].values()
                                              if isinstance(times, list) for v in times)]
        if len(data["at"]) != len(data["ms"]) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in numbers):
            raise InvalidInputError(f"{where}: reference.at and reference.ms must be lists of numbers of one length; "
                                    "delete the file")
        visit_at: dict[str, list[float]] = {}
        for key, values in timings.items():
            times = data["visit_at"].get(key, [])
            if not isinstance(times, list) or len(times) * repeats != len(values):
                count = len(times) if isinstance(times, list) else times
                raise InvalidInputError(f"{where}: reference.visit_at.{key} has {count} visit time(s) for "
                                        f"{len(values)} timings of {repeats} repeats per visit; delete the file")
            visit_at[key] = [float(v) for v in times]
        return cls(at=[float(v) for v in data["at"]], ms=[float(v) for v in data["ms"]], visit_at=visit_at)
