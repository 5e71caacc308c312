"""Checking a table against whole networks: end-to-end timing of frozen subnets with the table's
protocol, Spearman/Kendall/MAPE of the predicted sums, and the fitted correction."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ofa_nni.arch import ArchSpace, Sample
from ofa_nni.errors import InvalidInputError
from ofa_nni.latency.protocol import (
    CORRECTION_SCALE_RANGE,
    DEFAULT_MAX_VALIDATION_ROUNDS,
    DEFAULT_REPEATS,
    DEFAULT_ROUNDS,
    DEFAULT_WARMUP,
    MAPE_TARGET_PERCENT,
    ORDERS,
    REPEATABILITY_TARGET,
    SPEARMAN_TARGET,
    STATISTICS,
)
from ofa_nni.latency.reference import ReferenceLog
from ofa_nni.latency.runners import Runner, check_backend, measuring, progress_bar, time_runs, timer_for
from ofa_nni.latency.specs import OpSpec
from ofa_nni.latency.table import LatencyTable

__all__ = ["EndToEndRun", "measure_end_to_end", "rank_metrics", "repeatability", "validate_latency_table"]


class EndToEndRun:
    """End-to-end timings of whole models, each a ``(module, resolution)`` pair run on a
    ``(batch_size, 3, resolution, resolution)`` input, that more visits can extend
    (:meth:`visit`): a validation whose own timings repeat too poorly under load measures on, and the
    statistics are those of every visit made (:meth:`summary`).

    Models are measured in groups of ``group_size`` drawn at random (default: all of them with
    torch, whose runners hold nothing beyond the caller's modules; 8 with ONNX Runtime, whose
    sessions copy the weights), each group in the visits' rounds in random order
    (``order="interleaved"``) or each model's rounds back to back (``"block"``), the same order the
    table's entries got. Why all at once: a slow phase of the machine (a memory-heavy neighbour's
    burst lasts seconds to minutes) then falls on every model's rounds alike; with OFA-MobileNetV3
    subnets in consecutive groups of 8 under one memory-bandwidth competitor, the groups' mean
    measured / predicted ratios moved 1.10-1.32 and the table validated at Spearman 0.89.

    With a ``reference`` op (a table's :attr:`~LatencyTable.reference_op`), it is timed between the
    visits and the timings are normalised as the table's were (:mod:`~ofa_nni.latency.reference`), to
    the whole run's own baseline; ``log`` (if given) receives the visits' and the reference's times.
    """

    def __init__(
        self,
        models: Sequence[tuple[nn.Module, int]],
        *,
        backend: str,
        device: str = "cpu",
        batch_size: int = 1,
        warmup: int = DEFAULT_WARMUP,
        repeats: int = DEFAULT_REPEATS,
        num_threads: int | None = None,
        group_size: int | None = None,
        clock: str = "wall",
        order: str = "interleaved",
        reference: OpSpec | None = None,
        log: ReferenceLog | None = None,
        seed: int = 0,
    ) -> None:
        if order not in ORDERS:
            raise InvalidInputError(f"unknown order {order!r}; allowed: {', '.join(ORDERS)}")
        check_backend(backend, device)
        self.models, self.backend, self.device, self.batch_size = models, backend, device, batch_size
        self.warmup, self.repeats, self.order = warmup, repeats, order
        self.num_threads = int(num_threads or torch.get_num_threads())
        self.group_size = group_size if group_size is not None else (len(models) if backend == "torch" else 8)
        self._timer = timer_for(clock, self.num_threads, device)
        self._rng = np.random.default_rng(seed)
        self.log = ReferenceLog() if reference is not None and log is None else log
        self._reference_runner = None if reference is None else Runner(
            reference.build(), reference.input_shape(batch_size), backend=backend, device=device,
            num_threads=self.num_threads)
        # Kept for all models until the end: normalising needs the whole run's reference baseline.
        self._timings: dict[str, list[float]] = {}
        self.rounds = 0
        """Visits of every model so far."""

    def _time_reference(self) -> list[float]:
        assert self._reference_runner is not None
        return time_runs(self._reference_runner, warmup=self.warmup, repeats=self.repeats, clock=self._timer)

    def visit(self, rounds: int, *, show_progress: bool = False) -> None:
        """Visit every model ``rounds`` more times (``repeats`` timed calls each, after ``warmup``)."""
        models, log = self.models, self.log
        bar = progress_bar(len(models) * rounds, 0, f"end-to-end {self.backend}/{self.device}", show_progress)
        # Random groups: `models` often holds one kind of subnet after another (validation, calibration).
        shuffled = [int(i) for i in self._rng.permutation(len(models))]
        with measuring(self.num_threads), bar:
            for start in range(0, len(models), max(self.group_size, 1)):
                group = shuffled[start:start + self.group_size]
                runners = {
                    i: Runner(models[i][0], (self.batch_size, 3, models[i][1], models[i][1]), backend=self.backend,
                              device=self.device, num_threads=self.num_threads)
                    for i in group
                }
                if self.order == "block":
                    visits = [int(i) for i in self._rng.permutation(group) for _ in range(rounds)]
                else:
                    visits = [int(i) for _ in range(rounds) for i in self._rng.permutation(group)]
                for i in visits:
                    def run(runner: Runner = runners[i]) -> list[float]:
                        return time_runs(runner, warmup=self.warmup, repeats=self.repeats, clock=self._timer)

                    key = str(i)
                    self._timings.setdefault(key, []).extend(
                        run() if log is None else log.visit(key, run, self._time_reference))
                    bar.update(1)
            if log is not None and self._timings:
                log.time_reference_if_due(self._time_reference, force=True)  # the last visits get a reference
        self.rounds += rounds

    def summary(self) -> dict[str, np.ndarray]:
        """Milliseconds over every visit so far: ``{"median": (n,), "min": (n,)}``, and with 2 or more
        visits ``"median_halves"`` and ``"min_halves"`` ``(n, 2)``: the statistic of the even and of
        the odd visits apart (:func:`repeatability`)."""
        n = len(self.models)
        used = self._timings if self.log is None else self.log.normalise(self._timings, self.repeats)
        result = {"median": np.array([float(np.median(used[str(i)])) for i in range(n)]),
                  "min": np.array([float(np.min(used[str(i)])) for i in range(n)])}
        if self.rounds >= 2:
            halves = [halves_summary(used[str(i)], self.repeats) for i in range(n)]
            for name in STATISTICS:
                result[f"{name}_halves"] = np.array([summary[name] for summary in halves])
        return result


def measure_end_to_end(
    models: Sequence[tuple[nn.Module, int]],
    *,
    rounds: int = DEFAULT_ROUNDS,
    show_progress: bool = False,
    **settings: Any,
) -> dict[str, np.ndarray]:
    """Milliseconds of whole models in ``rounds`` visits each: :meth:`EndToEndRun.summary` of one
    :class:`EndToEndRun` of ``settings`` (``backend``, ``device``, ``batch_size``, ``warmup``,
    ``repeats``, ...; its docstring says how the models are grouped, ordered and normalised)."""
    run = EndToEndRun(models, **settings)
    run.visit(rounds, show_progress=show_progress)
    return run.summary()


def visit_halves(timings: Sequence[float], repeats: int) -> tuple[np.ndarray, np.ndarray]:
    """A model's timings of its even and of its odd visits (each visit's ``repeats`` timings follow one
    another in ``timings``, in visit order)."""
    visits = np.asarray(timings, dtype=float).reshape(-1, repeats)
    return visits[0::2].reshape(-1), visits[1::2].reshape(-1)


def halves_summary(timings: Sequence[float], repeats: int) -> dict[str, list[float]]:
    """``{"min": [even, odd], "median": [even, odd]}``: each statistic of a model's even and of its odd
    visits apart (what :func:`repeatability` compares)."""
    halves = visit_halves(timings, repeats)
    return {"min": [float(half.min()) for half in halves], "median": [float(np.median(half)) for half in halves]}


def repeatability(halves: np.ndarray) -> float:
    """How well a run's end-to-end timings rank alike with themselves: the Spearman ``r`` between the
    statistic of the even and of the odd visits of the same models (``halves`` ``(n, 2)``), stepped
    up to the whole run (each half holds about half its timings) by the Spearman-Brown formula
    ``2r / (1 + r)``. Under load it says what a table can be shown to reach: a perfect table would be
    seen at about ``sqrt(R)`` (the attenuation formula). An estimate: with 3 visits the halves are 2
    visits and 1, and 30 subnets make it move by a few hundredths from run to run."""
    from scipy import stats

    r = float(stats.spearmanr(halves[:, 0], halves[:, 1]).statistic)
    return r if r <= 0 else 2 * r / (1 + r)


def rank_metrics(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    from scipy import stats

    return {
        "spearman": float(stats.spearmanr(predicted, measured).statistic),
        "kendall": float(stats.kendalltau(predicted, measured).statistic),
        "mape_percent": float(np.mean(np.abs(predicted - measured) / measured) * 100.0),
    }


def validate_latency_table(
    table: LatencyTable,
    freeze: Callable[[Sample], nn.Module] | None = None,
    *,
    num_subnets: int = 30,
    calibration_subnets: int = 30,
    seed: int = 0,
    warmup: int | None = None,
    repeats: int | None = None,
    rounds: int | None = None,
    max_rounds: int | None = DEFAULT_MAX_VALIDATION_ROUNDS,
    reuse: Mapping[str, Any] | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Compare the table with end-to-end measurements of frozen subnets, on the table's backend,
    device, batch size and thread count; store the result (and a fitted correction) in the table.

    ``num_subnets`` random subnets are the validation set; ``calibration_subnets`` other random
    subnets fit the correction ``measured ≈ a x sum + b`` (Theil-Sen line), which is *applied* by
    the table only if it lowers the validation MAPE, its slope ``a`` lies in
    :data:`~ofa_nni.latency.protocol.CORRECTION_SCALE_RANGE` and it predicts a positive time for the
    smallest subnet. Both raw and corrected Spearman, Kendall and
    MAPE are stored in ``table.validation`` and returned. Measured and predicted times use the
    table's :attr:`~LatencyTable.statistic`.

    Args:
        freeze: Turns a sample into a static model, e.g. ``OFAMobileNetV3Space(...).freeze``.
        rounds: Visits per subnet (default: the table's protocol's).
        max_rounds: Visits per subnet the validation may go on to while its held-out subnets'
            timings repeat below :data:`~ofa_nni.latency.protocol.REPEATABILITY_TARGET` (a busy
            machine): ``rounds`` more at a time, every visit counted in the end (default
            :data:`~ofa_nni.latency.protocol.DEFAULT_MAX_VALIDATION_ROUNDS`; ``None``: no more than
            ``rounds``). The validation records the repeatability after each step.
        reuse: The ``validation`` of another table of the same measurements (e.g.
            ``table.with_statistic("min")``): its end-to-end timings are reused, nothing is measured.
    """
    if num_subnets < 3 or calibration_subnets < 2:
        raise InvalidInputError(
            f"need num_subnets >= 3 and calibration_subnets >= 2, got {num_subnets}, {calibration_subnets}")
    for name, value in (("rounds", rounds), ("max_rounds", max_rounds)):
        if value is not None and value < 1:
            raise InvalidInputError(f"{name} must be at least 1, got {value}")
    meta = table.metadata
    protocol = table.protocol
    arch_space = table.arch_space
    started = time.perf_counter()
    load_start = os.getloadavg()
    if reuse is not None:
        subnets = [dict(subnet) for subnet in reuse["subnets"]]
        num_subnets, calibration_subnets, seed = reuse["num_subnets"], reuse["calibration_subnets"], reuse["seed"]
        samples = [arch_space.parse(subnet["arch"]) for subnet in subnets]
        indices = np.stack([arch_space.to_indices(sample) for sample in samples])
        measurements = {name: np.array([subnet[f"measured_{name}_ms"] for subnet in subnets]) for name in STATISTICS}
        for name in STATISTICS:
            if all(f"measured_{name}_halves_ms" in subnet for subnet in subnets):  # not in tables of before 2026-12
                measurements[f"{name}_halves"] = np.array([subnet[f"measured_{name}_halves_ms"] for subnet in subnets])
    else:
        if freeze is None:
            raise InvalidInputError(
                "validate_latency_table needs freeze (e.g. supernet.freeze) unless it reuses measurements")
        indices = arch_space.random_indices(num_subnets + calibration_subnets, seed)
        samples = [arch_space.from_indices(row) for row in indices]
        models = [(freeze(sample).eval(), int(sample[ArchSpace.RESOLUTION_LABEL])) for sample in samples]
        reference = table.reference_op
        log = None if reference is None else ReferenceLog()
        step = rounds if rounds is not None else protocol["rounds"]
        run = EndToEndRun(
            models,
            backend=meta["backend"], device=meta["device"]["type"], batch_size=meta["batch_size"],
            warmup=warmup if warmup is not None else protocol["warmup"],
            repeats=repeats if repeats is not None else protocol["repeats"],
            num_threads=meta["device"]["num_threads"], clock=protocol["clock"],
            order=protocol["order"], reference=reference, log=log, seed=seed,
        )
        limit = max_rounds or 0
        steps: list[dict[str, Any]] = []
        run.visit(step, show_progress=show_progress)
        while True:
            measurements = run.summary()
            halves = measurements.get(f"{table.statistic}_halves")
            repeats_at = None if halves is None else repeatability(halves[:num_subnets])
            steps.append({"rounds": run.rounds, "repeatability": None if repeats_at is None else round(repeats_at, 4)})
            # One visit tells nothing of how the timings repeat: a single-visit protocol stays one.
            if run.rounds >= limit or repeats_at is None or repeats_at >= REPEATABILITY_TARGET:
                break
            run.visit(min(step, limit - run.rounds), show_progress=show_progress)
        rounds = run.rounds
    measured = measurements[table.statistic]
    halves = measurements.get(f"{table.statistic}_halves")
    predicted = table.raw_sum(indices)
    calibration, held_out = slice(num_subnets, None), slice(0, num_subnets)
    from scipy import stats

    # Theil-Sen: the median of pairwise slopes, robust to the few timings a busy machine spoils.
    fit = stats.theilslopes(measured[calibration], predicted[calibration])
    scale, offset = float(fit.slope), float(fit.intercept)
    corrected = scale * predicted + offset
    raw_metrics = rank_metrics(predicted[held_out], measured[held_out])
    corrected_metrics = rank_metrics(corrected[held_out], measured[held_out])
    # A correction that predicts a non-positive time for the cheapest subnet is a bad fit (a busy
    # machine's outliers), not a faster network: keep the plain sum then.
    cheapest = float(table.raw_sum(arch_space.to_indices(arch_space.min_sample())[None])[0])
    # So is a line far flatter or steeper than the sums (a=0.021 from 3 calibration subnets once):
    # it says the sums and the measured subnets disagree, and applied it would predict nearly one
    # time for every subnet, leaving the search nothing to choose by. The ranking is the sums'.
    low, high = CORRECTION_SCALE_RANGE
    sane = low <= scale <= high and scale * cheapest + offset > 0
    applied = sane and corrected_metrics["mape_percent"] < raw_metrics["mape_percent"]
    best = corrected_metrics if applied else raw_metrics
    validation = {
        "num_subnets": num_subnets,
        "calibration_subnets": calibration_subnets,
        "seed": seed,
        "statistic": table.statistic,
        "raw": raw_metrics,
        "corrected": corrected_metrics,
        "targets": {"spearman": SPEARMAN_TARGET, "mape_percent": MAPE_TARGET_PERCENT},
        "meets_targets": bool(best["spearman"] >= SPEARMAN_TARGET and best["mape_percent"] <= MAPE_TARGET_PERCENT),
        # How well the held-out subnets' timings repeat themselves (even vs odd visits): what the load
        # lets any table be shown to reach, so a miss says whether the table or the machine is at fault.
        "repeatability": None if halves is None else round(repeatability(halves[held_out]), 4),
        "rounds": rounds if reuse is None else reuse.get("rounds"),
        # The repeatability after each step of visits (more while it stayed below the target, up to max_rounds).
        "steps": steps if reuse is None else reuse.get("steps"),
        "seconds": round(time.perf_counter() - started, 2) if reuse is None else reuse.get("seconds"),
        # This run's own reference (its baseline next to the table's says whether the machine's quiet
        # speed moved between build and validation).
        "reference": (log.summary(reference.key) if reuse is None and reference is not None and log is not None
                      else (reuse or {}).get("reference")),
        "load": {"loadavg_start": list(load_start), "loadavg_end": list(os.getloadavg())}
        if reuse is None else reuse.get("load"),
        "subnets": [
            {"arch": arch_space.format(sample), "role": "validation" if i < num_subnets else "calibration",
             "predicted_ms": round(float(predicted[i]), 6), "measured_ms": round(float(measured[i]), 6),
             **{f"measured_{name}_ms": round(float(measurements[name][i]), 6) for name in STATISTICS},
             **{f"measured_{name}_halves_ms": [round(float(v), 6) for v in measurements[f"{name}_halves"][i]]
                for name in STATISTICS if f"{name}_halves" in measurements}}
            for i, sample in enumerate(samples)
        ],
    }
    table.validation = validation
    table.correction = {"kind": "linear", "scale": float(scale), "offset_ms": float(offset), "applied": bool(applied)}
    return validation
