"""``ParetoSearch``: multi-objective evolution (NSGA-II selection), the objective against every cost."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ofa_nni._deprecation import renamed_keywords
from ofa_nni.arch import ArchSpace
from ofa_nni.errors import InvalidInputError
from ofa_nni.search.base import PROPOSALS_PER_SLOT, AskTellSearch, ProposalContext, Proposals
from ofa_nni.search.evaluation import ArrayFn, evaluate_costs, minimum_costs
from ofa_nni.search.operators import crossover, mutate
from ofa_nni.search.pareto import pareto_mask, rank_and_crowding
from ofa_nni.search.results import ParetoFront
from ofa_nni.search.settings import EvolutionSettings

__all__ = ["ParetoSearch"]


class ParetoSearch(AskTellSearch):
    """Multi-objective evolution (NSGA-II selection): the objective (maximised) against every cost.

    Every scored subnet goes to an archive whose non-dominated set is the result, so the front
    improves monotonically. Optional ``budgets`` restrict the search region (met by repair, as in
    :class:`EvolutionSearch`). Settings as in :class:`EvolutionSearch` (one
    :class:`EvolutionSettings` and/or its fields by keyword); parents are chosen by binary
    tournament on (front rank, crowding distance), so ``parent_ratio`` is not used.
    """

    @renamed_keywords(space="arch_space")
    def __init__(
        self,
        *,
        arch_space: ArchSpace,
        costs: Mapping[str, ArrayFn],
        budgets: Mapping[str, float] | None = None,
        settings: EvolutionSettings | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__(arch_space=arch_space, costs=costs, settings=EvolutionSettings.build(settings, **overrides))
        if not self.costs:
            raise InvalidInputError("ParetoSearch needs at least one cost to trade the objective against")
        self.budgets = self._parse_budgets(budgets or {}, "budgets")
        self._anchor = self._anchors_for(self.budgets[None], minimum_costs(arch_space, self.costs))[0]
        self._anchor_costs = evaluate_costs(self.costs, self._anchor[None])[0]
        self._population = np.zeros((0, len(arch_space.labels)), dtype=np.int64)
        self._objectives = np.zeros((0, 1 + len(self.costs)))
        self._rank = np.zeros(0, dtype=np.int64)
        self._crowding = np.zeros(0)

    def _config(self) -> dict[str, Any]:
        return {**super()._config(), "budgets": self.budgets.tolist()}

    def _propose(self) -> Proposals:
        rng, arch_space = self._rng, self.arch_space
        n_mut = PROPOSALS_PER_SLOT * self.n_mutations
        n_cross = PROPOSALS_PER_SLOT * self.population_size - n_mut
        if self._generation == 0 or len(self._population) == 0:
            rows = arch_space.random_indices(n_mut + n_cross, rng)
            position = np.arange(len(rows)) / len(rows)
        else:

            def tournament(count: int) -> np.ndarray:
                a, b = rng.integers(0, len(self._population), size=(2, count))
                a_wins = (self._rank[a] < self._rank[b]) | (
                    (self._rank[a] == self._rank[b]) & (self._crowding[a] >= self._crowding[b])
                )
                return self._population[np.where(a_wins, a, b)]

            mutated = mutate(arch_space, tournament(n_mut), rng, self.mutation_prob, self.resolution_mutation_prob)
            rows = np.concatenate([mutated, crossover(tournament(n_cross), tournament(n_cross), rng)])
            position = np.concatenate([np.arange(n_mut) / n_mut, np.arange(n_cross) / n_cross])
        n = len(rows)
        context = ProposalContext(
            position=position,
            group=np.zeros(n, dtype=np.int64),
            budgets=np.tile(self.budgets, (n, 1)),
            anchors=np.tile(self._anchor, (n, 1)),
            anchor_costs=np.tile(self._anchor_costs, (n, 1)),
        )
        return self._feasible_proposals(rows, context)

    def _select(self, rows: np.ndarray, scores: np.ndarray, costs: np.ndarray) -> None:
        ok = ~np.isnan(scores)
        rows, objectives = rows[ok], np.column_stack([-scores[ok], costs[ok]])
        pool_rows = np.concatenate([self._population, rows])
        pool_objectives = np.concatenate([self._objectives, objectives])
        rank, crowding = rank_and_crowding(pool_objectives)
        order = np.lexsort((-crowding, rank))[: self.population_size]
        self._population, self._objectives = pool_rows[order], pool_objectives[order]
        self._rank, self._crowding = rank[order], crowding[order]

    def _population_state(self) -> dict[str, Any]:
        return {"rows": self._population.tolist(), "objectives": self._objectives.tolist()}

    def _load_population_state(self, state: Mapping[str, Any]) -> None:
        self._population = np.asarray(state["rows"], dtype=np.int64).reshape(-1, len(self.arch_space.labels))
        self._objectives = np.asarray(state["objectives"], dtype=np.float64).reshape(-1, 1 + len(self.costs))
        self._rank, self._crowding = rank_and_crowding(self._objectives)

    def result(self) -> ParetoFront:
        """The non-dominated set of every subnet scored so far, sorted by the first cost."""
        archive = self._archive
        ok = ~np.isnan(archive.scores)
        rows, scores, costs = archive.rows[ok], archive.scores[ok], archive.costs[ok]
        objectives = np.column_stack([-scores, costs])
        mask = pareto_mask(objectives)
        # Subnets with the very same score and costs are one point of the front: the first scored
        # stands for them (an untrained supernet scored 18 subnets alike, and the front listed all 18).
        _, first = np.unique(objectives[mask], axis=0, return_index=True)
        keep = np.nonzero(mask)[0][np.sort(first)]
        rows, scores, costs = rows[keep], scores[keep], costs[keep]
        order = np.lexsort((-scores, costs[:, 0]))
        return ParetoFront(
            arch_space=self.arch_space,
            indices=rows[order],
            scores=scores[order],
            costs={name: costs[order, k] for k, name in enumerate(self.cost_names)},
            evaluations=self.evaluations,
        )
