"""Calling objectives and costs on index arrays, and the smallest achievable cost of each."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ofa_nni._deprecation import renamed_keywords
from ofa_nni.arch import ArchSpace
from ofa_nni.efficiency import EfficiencyModel
from ofa_nni.errors import InvalidInputError

__all__ = ["ArrayFn", "evaluate", "evaluate_costs", "minimum_costs", "format_cost"]

ArrayFn = Callable[[np.ndarray], Any]
"""An objective or a cost: ``(n, len(labels))`` int64 index array -> ``(n,)`` numbers."""


def evaluate(fn: ArrayFn, rows: np.ndarray, what: str) -> np.ndarray:
    """``fn(rows)`` as an ``(n,)`` float64 array (InvalidInputError naming ``what`` for another shape)."""
    values = np.asarray(fn(rows), dtype=np.float64)
    if values.shape != (len(rows),):
        values = values.reshape(-1) if values.size == len(rows) else values
    if values.shape != (len(rows),):
        raise InvalidInputError(
            f"{what} must return one number per row: expected shape ({len(rows)},), got {values.shape}"
        )
    return values


def evaluate_costs(costs: Mapping[str, ArrayFn], rows: np.ndarray) -> np.ndarray:
    """Every cost of every row, ``(n, len(costs))`` (InvalidInputError for a NaN). ``rows`` are checked
    index rows (the search makes them), so an :class:`~ofa_nni.efficiency.EfficiencyModel` is asked
    through :meth:`~ofa_nni.efficiency.EfficiencyModel.evaluate`, without a second check of every row."""
    out = np.empty((len(rows), len(costs)), dtype=np.float64)
    for k, (name, fn) in enumerate(costs.items()):
        out[:, k] = evaluate(fn.evaluate if isinstance(fn, EfficiencyModel) else fn, rows, f"cost {name!r}")
    if np.isnan(out).any():
        raise InvalidInputError(f"a cost returned NaN (costs: {list(costs)})")
    return out


def format_cost(value: float) -> str:
    """A cost for a message: exact when it is a whole number (MACs, params), else 6 digits."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e18 else f"{value:.6g}"


@renamed_keywords(space="arch_space")
def minimum_costs(arch_space: ArchSpace, costs: Mapping[str, ArrayFn]) -> dict[str, tuple[float, np.ndarray]]:
    """The smallest achievable value of each cost, with the subnet (index row) that achieves it.

    Starts at the smallest subnet (index 0 everywhere) and evaluates, in one batch, every subnet that
    differs from it in one choice. If none is cheaper -- the case for MACs, parameters and latency
    tables with non-negative entries, where a cost never decreases when a choice grows -- the
    smallest subnet is the exact minimum. Otherwise (a non-monotone cost) batched coordinate descent
    continues to a point no single change improves, and that local minimum is reported.
    """
    result: dict[str, tuple[float, np.ndarray]] = {}
    for name, fn in costs.items():
        current = np.zeros(len(arch_space.labels), dtype=np.int64)
        value = float(evaluate(fn, current[None], f"cost {name!r}")[0])
        for _ in range(10_000):
            neighbours = _single_changes(arch_space, current)
            values = evaluate(fn, neighbours, f"cost {name!r}")
            best = int(values.argmin())
            if not values[best] < value:
                break
            current, value = neighbours[best], float(values[best])
        result[name] = (value, current)
    return result


def _single_changes(arch_space: ArchSpace, row: np.ndarray) -> np.ndarray:
    """Every row that differs from ``row`` in exactly one gene."""
    cardinalities = arch_space.cardinalities
    cols = np.repeat(np.arange(len(cardinalities)), cardinalities)
    values = np.concatenate([np.arange(c) for c in cardinalities.tolist()])
    keep = values != row[cols]
    neighbours = np.tile(row, (int(keep.sum()), 1))
    neighbours[np.arange(len(neighbours)), cols[keep]] = values[keep]
    return neighbours
