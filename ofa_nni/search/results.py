"""What the searches return: the best subnet per target, and a Pareto front."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np

from ofa_nni._deprecation import RenamedAttribute
from ofa_nni.arch import ArchSpace, Sample

__all__ = ["TargetResult", "SearchResult", "ParetoFront"]


@dataclasses.dataclass(frozen=True)
class TargetResult:
    """The best subnet found for one deployment target."""

    budgets: dict[str, float]
    """The target's budgets ``{cost name: maximum}``."""
    indices: np.ndarray
    """The subnet as an index row (:meth:`ArchSpace.to_indices` order)."""
    sample: Sample
    arch: str
    """:meth:`ArchSpace.format` of the sample."""
    score: float
    """Objective value (e.g. predicted accuracy)."""
    costs: dict[str, float]
    """Every cost of the subnet (not only the constrained ones)."""


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """What :meth:`EvolutionSearch.result` returns."""

    targets: tuple[TargetResult, ...]
    """One result per target, in the order the targets were given."""
    evaluations: int
    """Distinct subnets scored by the objective (every query counted once)."""
    generations: int
    history: np.ndarray
    """``(generations + 1, n_targets)`` best score per target after the initial population and
    after each generation."""

    def __getitem__(self, index: int) -> TargetResult:
        return self.targets[index]

    def __len__(self) -> int:
        return len(self.targets)

    def __iter__(self) -> Iterator[TargetResult]:
        return iter(self.targets)


@dataclasses.dataclass(frozen=True)
class ParetoFront:
    """Non-dominated subnets: objective (maximised) against every cost (minimised)."""

    arch_space: ArchSpace
    indices: np.ndarray
    """``(F, L)`` index rows, sorted by the first cost."""
    scores: np.ndarray
    costs: dict[str, np.ndarray]
    evaluations: int
    space = RenamedAttribute("arch_space")  # the old name, for one release

    def __len__(self) -> int:
        return len(self.indices)

    def samples(self) -> list[Sample]:
        return [self.arch_space.from_indices(row) for row in self.indices]

    def archs(self) -> list[str]:
        return [self.arch_space.format(sample) for sample in self.samples()]
