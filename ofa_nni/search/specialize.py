"""``specialize``: the most accurate subnet for every deployment target, in one call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ofa_nni._deprecation import renamed_keywords
from ofa_nni.arch import ArchSpace
from ofa_nni.search.evaluation import ArrayFn
from ofa_nni.search.evolution import EvolutionSearch
from ofa_nni.search.results import SearchResult

__all__ = ["specialize", "canonical_indices"]


@renamed_keywords(space="arch_space")
def specialize(
    arch_space: ArchSpace,
    objective: ArrayFn,
    costs: Mapping[str, ArrayFn],
    targets: Mapping[str, float] | Sequence[Mapping[str, float]],
    **settings: Any,
) -> SearchResult:
    """One call: the most accurate subnet (by ``objective``) for every target.

    ``settings`` are :class:`EvolutionSearch`'s keyword arguments (``settings=`` an
    :class:`EvolutionSettings`, or its fields: ``population_size``, ``generations``, ``seed``, ...).
    Example::

        cost_model = AnalyticCostModel(arch_space)
        result = specialize(arch_space, predictor, {"macs": cost_model.macs},
                            [{"macs": m * 1e6} for m in (150, 200, 250, 300)])
        result[0].arch, result[0].score, result[0].costs["macs"]
    """
    return EvolutionSearch(arch_space=arch_space, costs=costs, targets=targets, **settings).run(objective)


@renamed_keywords(space="arch_space")
def canonical_indices(arch_space: ArchSpace, indices: np.ndarray) -> np.ndarray:
    """``indices`` checked and with the genes of inactive blocks set to 0 (their smallest choice): two
    rows are the same subnet iff their canonical rows are equal. Search results are canonical.
    (:meth:`ArchSpace.canonical_indices` after :meth:`ArchSpace.check_indices`.)"""
    return arch_space.canonical_indices(arch_space.check_indices(indices))
