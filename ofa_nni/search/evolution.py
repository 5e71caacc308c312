"""``EvolutionSearch``: OFA's regularised evolution for one or many deployment targets at once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ofa_nni.arch import ArchSpace
from ofa_nni.errors import InvalidInputError
from ofa_nni.search.base import PROPOSALS_PER_SLOT, AskTellSearch, ProposalContext, Proposals
from ofa_nni.search.evaluation import ArrayFn, evaluate_costs, minimum_costs
from ofa_nni.search.operators import crossover, mutate
from ofa_nni.search.results import SearchResult, TargetResult
from ofa_nni.search.settings import EvolutionSettings

__all__ = ["EvolutionSearch"]


class EvolutionSearch(AskTellSearch):
    """OFA's regularised evolution for one or many deployment targets at once (ask/tell).

    Args:
        space: The search space (``OFAMobileNetV3Space(...).arch_space``).
        costs: ``{name: callable}``; each maps an ``(n, L)`` index array to ``(n,)`` costs (e.g.
            ``AnalyticCostModel(space).macs``, a latency table). Costs must ignore the genes of
            inactive blocks. All costs of every candidate are reported; only budgeted ones constrain.
        targets: One budget dict ``{cost name: maximum}`` or a list of them (one per deployment
            target, e.g. ten latency budgets). A cost a target does not name is unconstrained.
        settings: OFA's evolution settings (:class:`EvolutionSettings`; default: the paper's).
            ``mutation_prob`` is per block (kernel and expand together) and per stage depth. A
            generation is one batch for the predictor and the engine, so a larger population with
            fewer generations scores the same number of subnets faster (population 1000 x 50
            generations: ~3.5x the subnets per second of 100 x 500 with OFA's MLP).
        **overrides: Fields of :class:`EvolutionSettings` by keyword (``population_size``,
            ``generations``, ``parent_ratio``, ``mutation_ratio``, ``mutation_prob``,
            ``resolution_mutation_prob``, ``max_evaluations``, ``seed``), applied over ``settings``.

    Raises:
        InvalidInputError: for a budget below the smallest achievable cost (the message states it),
            an unknown cost name, or settings out of range.
    """

    def __init__(
        self,
        *,
        space: ArchSpace,
        costs: Mapping[str, ArrayFn],
        targets: Mapping[str, float] | Sequence[Mapping[str, float]],
        settings: EvolutionSettings | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__(space=space, costs=costs, settings=EvolutionSettings.build(settings, **overrides))
        self.parent_ratio = self.settings.parent_ratio
        self.parents_size = self.settings.num_parents
        target_list = [targets] if isinstance(targets, Mapping) else list(targets)
        if not target_list:
            raise InvalidInputError("targets must hold at least one budget dict")
        self.budgets = np.stack([self._parse_budgets(t, f"targets[{i}]") for i, t in enumerate(target_list)])
        minima = minimum_costs(space, self.costs)
        self._anchors = self._anchors_for(self.budgets, minima)
        self._anchor_costs = evaluate_costs(self.costs, self._anchors)
        n_targets, n_labels = len(self.budgets), len(space.labels)
        self._parents: np.ndarray = np.zeros((n_targets, self.parents_size, n_labels), dtype=np.int64)
        self._parent_scores: np.ndarray = np.full((n_targets, self.parents_size), -np.inf)
        self._parent_costs: np.ndarray = np.zeros((n_targets, self.parents_size, len(self.costs)))
        self._history: list[np.ndarray] = []
        self._contexts: dict[bool, ProposalContext] = {}

    @property
    def n_targets(self) -> int:
        return len(self.budgets)

    def _config(self) -> dict[str, Any]:
        return {**super()._config(), "parent_ratio": self.parent_ratio, "budgets": self.budgets.tolist()}

    def _propose(self) -> Proposals:
        rng, n_targets, n_labels = self._rng, self.n_targets, len(self.space.labels)
        n_mut = PROPOSALS_PER_SLOT * self.n_mutations
        n_cross = PROPOSALS_PER_SLOT * self.population_size - n_mut
        if self._generation == 0 and not np.isfinite(self._parent_scores).any():
            # One random population shared by every target, repaired to each target's budgets.
            # (Candidates told before the first ask() -- a warm start, as the Optuna sampler
            # replays its trials -- are parents instead.)
            rows = np.tile(self.space.random_indices(n_mut + n_cross, rng), (n_targets, 1))
            context = self._context(initial=True)
        else:
            valid = np.isfinite(self._parent_scores).sum(axis=1)  # parents are sorted best first
            target_of = np.arange(n_targets)[:, None]

            def pick(count: int) -> np.ndarray:
                chosen = (rng.random((n_targets, count)) * valid[:, None]).astype(np.int64)
                return self._parents[target_of, chosen]  # (targets, count, L)

            mutated = mutate(
                self.space,
                pick(n_mut).reshape(-1, n_labels),
                rng,
                self.mutation_prob,
                self.resolution_mutation_prob,
            ).reshape(n_targets, n_mut, -1)
            crossed = crossover(pick(n_cross), pick(n_cross), rng)
            rows = np.concatenate([mutated, crossed], axis=1).reshape(-1, n_labels)
            context = self._context(initial=False)
        return self._feasible_proposals(rows, context)

    def _context(self, *, initial: bool) -> ProposalContext:
        """Position, group (target), budgets, anchor and anchor costs of every proposal row: the
        same every generation, so built once."""
        context = self._contexts.get(initial)
        if context is None:
            n_mut = PROPOSALS_PER_SLOT * self.n_mutations
            n_cross = PROPOSALS_PER_SLOT * self.population_size - n_mut
            if initial:
                position = np.arange(n_mut + n_cross) / (n_mut + n_cross)
            else:  # interleave mutation and crossover children in the mutation ratio
                position = np.concatenate([np.arange(n_mut) / max(n_mut, 1), np.arange(n_cross) / max(n_cross, 1)])
            group = np.repeat(np.arange(self.n_targets), len(position))
            context = ProposalContext(
                position=np.tile(position, self.n_targets),
                group=group,
                budgets=self.budgets[group],
                anchors=self._anchors[group],
                anchor_costs=self._anchor_costs[group],
            )
            self._contexts[initial] = context
        return context

    def _select(self, rows: np.ndarray, scores: np.ndarray, costs: np.ndarray) -> None:
        """Each target keeps the best ``parents_size`` of its parents and every new candidate that
        meets its budgets (whichever target's children it came from)."""
        if len(rows) == 0:
            return
        p = self.parents_size
        scores = np.where(np.isnan(scores), -np.inf, scores)
        feasible = (costs[None, :, :] <= self.budgets[:, None, :]).all(axis=2)  # (targets, new)
        pool_scores = np.concatenate([self._parent_scores, np.where(feasible, scores[None, :], -np.inf)], axis=1)
        top = np.argsort(-pool_scores, axis=1, kind="stable")[:, :p]
        from_parent = top < p
        target_of = np.arange(self.n_targets)[:, None]
        parent_at, new_at = np.minimum(top, p - 1), np.maximum(top - p, 0)
        self._parents = np.where(from_parent[..., None], self._parents[target_of, parent_at], rows[new_at])
        self._parent_costs = np.where(from_parent[..., None], self._parent_costs[target_of, parent_at], costs[new_at])
        self._parent_scores = pool_scores[target_of, top]

    def _after_generation(self) -> None:
        self._history.append(self._parent_scores[:, 0].copy())

    def _population_state(self) -> dict[str, Any]:
        return {
            "parents": self._parents.tolist(),
            "parent_scores": [[None if not np.isfinite(s) else float(s) for s in row] for row in self._parent_scores],
            "parent_costs": self._parent_costs.tolist(),
            "history": [[None if not np.isfinite(s) else float(s) for s in h] for h in self._history],
        }

    def _load_population_state(self, state: Mapping[str, Any]) -> None:
        def floats(values: Any) -> np.ndarray:
            return np.array([[-np.inf if v is None else v for v in row] for row in values], dtype=np.float64)

        self._parents = np.asarray(state["parents"], dtype=np.int64).reshape(self._parents.shape)
        self._parent_scores = floats(state["parent_scores"]).reshape(self._parent_scores.shape)
        self._parent_costs = np.asarray(state["parent_costs"], dtype=np.float64).reshape(self._parent_costs.shape)
        self._history = list(floats(state["history"])) if state["history"] else []

    def result(self) -> SearchResult:
        """The best subnet per target (its best parent = the best scored subnet meeting its budgets)."""
        if not np.isfinite(self._parent_scores[:, 0]).all():
            raise InvalidInputError("no candidate has been scored yet: call ask()/tell() (or run()) first")
        best_rows = self.space.canonical_indices(self._parents[:, 0])
        results = []
        for t in range(self.n_targets):
            row = best_rows[t]
            sample = self.space.from_indices(row)
            results.append(
                TargetResult(
                    budgets={
                        n: float(b) for n, b in zip(self.cost_names, self.budgets[t], strict=True) if np.isfinite(b)
                    },
                    indices=row,
                    sample=sample,
                    arch=self.space.format(sample),
                    score=float(self._parent_scores[t, 0]),
                    costs={n: float(c) for n, c in zip(self.cost_names, self._parent_costs[t, 0], strict=True)},
                )
            )
        history = np.stack(self._history) if self._history else np.zeros((0, self.n_targets))
        return SearchResult(
            targets=tuple(results), evaluations=self.evaluations, generations=self.generation, history=history
        )
