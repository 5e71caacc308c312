"""One interface for the costs a search constrains or minimises: MACs, parameters, latency.

Every efficiency model is a callable on a population of integer-encoded samples (an ``(n, L)``
int64 array in :meth:`ofa_nni.arch.ArchSpace.to_indices` order) that returns an ``(n,)`` float64
array, computed with gathers and masked sums (no Python loop per candidate), so the search can
score whole populations at once. A single sample dict gives a float.

:class:`MacsModel` and :class:`ParamsModel` wrap the analytic counts of
:class:`~ofa_nni.costs.AnalyticCostModel`; :class:`ofa_nni.latency.LatencyTable` is the measured
one.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any, overload

import numpy as np

from ofa_nni._deprecation import RenamedAttribute, renamed_keywords
from ofa_nni.arch import ArchSpace
from ofa_nni.costs import AnalyticCostModel, ResNetCostModel, cost_model_for

__all__ = [
    "EfficiencyModel",
    "MacsModel",
    "ParamsModel",
    "as_index_array",
]


@renamed_keywords(space="arch_space")
def as_index_array(arch_space: ArchSpace, population: Any) -> np.ndarray:
    """``population`` (an ``(n, L)`` index array, or a list of sample dicts) as a checked int64 array.

    Raises:
        ValueError: for a wrong shape, a non-integer array or an index outside a label's choices
            (naming the label and the allowed range).
    """
    if isinstance(population, Mapping):
        return arch_space.to_indices(population)[None]
    if not isinstance(population, np.ndarray):
        population = list(population)
        if not population:
            return np.zeros((0, len(arch_space.labels)), dtype=np.int64)
        if isinstance(population[0], Mapping):
            return np.stack([arch_space.to_indices(sample) for sample in population])
        population = np.asarray(population)
    return arch_space.check_indices(population)


class EfficiencyModel(abc.ABC):
    """A cost of subnets of :attr:`space` (lower is cheaper), batched over populations.

    Subclasses set :attr:`name` and :attr:`unit` and implement :meth:`evaluate` on a checked
    ``(n, L)`` int64 index array.
    """

    name: str = ""
    unit: str = ""

    space = RenamedAttribute("arch_space")  # the old name, for one release

    @renamed_keywords(space="arch_space")
    def __init__(self, arch_space: ArchSpace) -> None:
        self.arch_space = arch_space

    @abc.abstractmethod
    def evaluate(self, indices: np.ndarray) -> np.ndarray:
        """Costs of a checked ``(n, L)`` index array as an ``(n,)`` float64 array."""

    @overload
    def __call__(self, population: Mapping[str, Any]) -> float: ...
    @overload
    def __call__(self, population: np.ndarray | Sequence[Mapping[str, Any]]) -> np.ndarray: ...

    def __call__(self, population: Any) -> Any:
        values = np.asarray(self.evaluate(as_index_array(self.arch_space, population)), dtype=np.float64)
        return float(values[0]) if isinstance(population, Mapping) else values

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, unit={self.unit!r})"


class MacsModel(EfficiencyModel):
    """Multiply-accumulates of the frozen subnet, analytic (:class:`~ofa_nni.costs.AnalyticCostModel`)."""

    name = "macs"
    unit = "MACs"

    @renamed_keywords(space="arch_space")
    def __init__(self, arch_space: ArchSpace, *, cost_model: AnalyticCostModel | ResNetCostModel | None = None) -> None:
        super().__init__(arch_space)
        self.cost_model = cost_model or cost_model_for(arch_space)

    def evaluate(self, indices: np.ndarray) -> np.ndarray:
        return self.cost_model.macs(indices).astype(np.float64)


class ParamsModel(EfficiencyModel):
    """Parameters of the frozen subnet, analytic (:class:`~ofa_nni.costs.AnalyticCostModel`)."""

    name = "params"
    unit = "parameters"

    @renamed_keywords(space="arch_space")
    def __init__(self, arch_space: ArchSpace, *, cost_model: AnalyticCostModel | ResNetCostModel | None = None) -> None:
        super().__init__(arch_space)
        self.cost_model = cost_model or cost_model_for(arch_space)

    def evaluate(self, indices: np.ndarray) -> np.ndarray:
        return self.cost_model.params(indices).astype(np.float64)
