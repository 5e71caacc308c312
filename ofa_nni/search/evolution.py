"""``EvolutionSearch``: OFA's regularised evolution for one or many deployment targets at once.

Targets share one search: every subnet scored is offered to every target whose budgets it meets, so
a larger budget never gets a worse result than a smaller one. Up to :data:`MAX_EVOLVING_TARGETS`
targets each evolve a population of their own (one objective call per generation for all). With
more targets, :data:`MAX_EVOLVING_TARGETS` evolve per generation, in rotation through all of them in
budget order, sharing :data:`SHARED_POPULATIONS` populations' worth of children; a target joins the
rotation with the best subnets that meet its budgets among every target's best and the last
generation's candidates (a short polish of what its neighbours found), and every target's result is
the best scored subnet that meets its budgets. The rotation ends with a polish: for
:data:`POLISH_SHARE` of the generations more, :data:`POLISH_TARGETS` targets spread evenly in budget
order evolve a full population each, starting from the best scored subnets that meet their budgets,
so that the search goes as deep as a single-target search where the rotation only skimmed. So a
thousand latency budgets cost about what three populations do (``benchmarks/bench_many_targets.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ofa_nni._deprecation import renamed_keywords
from ofa_nni.arch import ArchSpace
from ofa_nni.errors import InvalidInputError
from ofa_nni.search.base import PROPOSALS_PER_SLOT, AskTellSearch, ProposalContext, Proposals
from ofa_nni.search.evaluation import ArrayFn, evaluate_costs, minimum_costs
from ofa_nni.search.operators import crossover, mutate
from ofa_nni.search.pareto import pareto_mask
from ofa_nni.search.results import SearchResult, TargetResult
from ofa_nni.search.settings import EvolutionSettings

__all__ = ["EvolutionSearch", "MAX_EVOLVING_TARGETS", "SHARED_POPULATIONS", "POLISH_TARGETS", "POLISH_SHARE"]

MAX_EVOLVING_TARGETS = 8
"""Targets that evolve a population per generation when there are more (the first generation adds
any target whose budgets no other target's are all below, so that every target has a subnet)."""
SHARED_POPULATIONS = 2
"""Populations' worth of children scored per generation in all when more than
:data:`MAX_EVOLVING_TARGETS` targets rotate (``benchmarks/bench_many_targets.py``)."""
POLISH_TARGETS = 16
"""Targets, spread evenly in budget order, that evolve a full population each in the polish that
ends a rotating search. A rotating target evolves for only a few generations in all (1,000 targets,
500 generations: 4), which left some targets below a single-target search for them."""
POLISH_SHARE = 0.06
"""The polish's generations as a share of ``generations`` (at least one): 30 of OFA's 500. With
:data:`POLISH_TARGETS` populations per generation it scores about as many subnets as the rotation
before it (``benchmarks/bench_many_targets.py``)."""


def best_first(values: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the ``k`` largest values of each row of ``values`` ``(T, n)``, largest first,
    ties in column order: exactly ``np.argsort(-values, axis=1, kind="stable")[:, :k]``, but sorting only
    the columns that reach some row's ``k``-th largest value (wide pools, few winners: the polish starts
    from the whole archive)."""
    if values.shape[1] <= k:
        return np.argsort(-values, axis=1, kind="stable")[:, :k]
    kth = -np.partition(-values, k - 1, axis=1)[:, k - 1]
    columns = np.nonzero((values >= kth[:, None]).any(axis=0))[0]  # a column below every row's k-th never wins
    return columns[np.argsort(-values[:, columns], axis=1, kind="stable")[:, :k]]


def evolving_targets(budgets: np.ndarray, limit: int = MAX_EVOLVING_TARGETS) -> np.ndarray:
    """The targets (rows of ``budgets``, ``(T, K)``, ``inf`` = unconstrained) that evolve a population:
    all of them when there are at most ``limit``; otherwise, among distinct budget rows and per set of
    budgeted costs, the minimal ones (no other target's budgets all below) and ``limit`` spread evenly
    in budget order (a share per set, the smallest and the largest budgets included). Sorted."""
    if len(budgets) <= limit:
        return np.arange(len(budgets))
    _, distinct = np.unique(budgets, axis=0, return_index=True)
    finite = np.isfinite(budgets[distinct])
    chosen: list[np.ndarray] = []
    patterns, pattern_of = np.unique(finite, axis=0, return_inverse=True)
    for p, pattern in enumerate(patterns):
        members = distinct[pattern_of.reshape(-1) == p]
        values = budgets[members][:, pattern]
        if values.shape[1]:
            members = members[np.lexsort(values.T[::-1])]
            values = budgets[members][:, pattern]
            chosen.append(members[pareto_mask(values)])
        share = max(1, round(limit * len(members) / len(distinct)))
        chosen.append(members[np.unique(np.round(np.linspace(0, len(members) - 1, min(share, len(members)))))
                              .astype(np.int64)])
    return np.unique(np.concatenate(chosen))


class EvolutionSearch(AskTellSearch):
    """OFA's regularised evolution for one or many deployment targets at once (ask/tell).

    Args:
        arch_space: The search space (``OFAMobileNetV3Space(...).arch_space``).
        costs: ``{name: callable}``; each maps an ``(n, L)`` index array to ``(n,)`` costs (e.g.
            ``AnalyticCostModel(arch_space).macs``, a latency table). Costs must ignore the genes of
            inactive blocks. All costs of every candidate are reported; only budgeted ones constrain.
        targets: One budget dict ``{cost name: maximum}`` or a list of them (one per deployment
            target, e.g. ten latency budgets). A cost a target does not name is unconstrained.
            More than :data:`MAX_EVOLVING_TARGETS` targets rotate, and the search then runs
            :attr:`polish_generations` more generations after ``generations`` (the module's docstring).
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

    @renamed_keywords(space="arch_space")
    def __init__(
        self,
        *,
        arch_space: ArchSpace,
        costs: Mapping[str, ArrayFn],
        targets: Mapping[str, float] | Sequence[Mapping[str, float]],
        settings: EvolutionSettings | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__(arch_space=arch_space, costs=costs, settings=EvolutionSettings.build(settings, **overrides))
        self.parent_ratio = self.settings.parent_ratio
        self.parents_size = self.settings.num_parents
        if isinstance(targets, (str, bytes)):  # a string is a sequence: its characters would be the targets
            raise InvalidInputError(f"targets must be a dict {{cost name: budget}} or a list of them, got the string "
                                    f"{targets!r} (the command line's syntax): e.g. {{'macs': 1e6}}")
        target_list = [targets] if isinstance(targets, Mapping) else list(targets)
        if not target_list:
            raise InvalidInputError("targets must hold at least one budget dict")
        self.budgets = np.stack([self._parse_budgets(t, f"targets[{i}]") for i, t in enumerate(target_list)])
        minima = minimum_costs(arch_space, self.costs)
        self._rotating = self.n_targets > MAX_EVOLVING_TARGETS
        self._all_anchors = self._anchors_for(self.budgets, minima)
        self._all_anchor_costs = evaluate_costs(self.costs, self._all_anchors)
        _, distinct = np.unique(self.budgets, axis=0, return_index=True)
        if self.budgets.shape[1]:  # distinct targets in budget order
            distinct = distinct[np.lexsort(self.budgets[distinct].T[::-1])]
        self._rotation = distinct
        self._stride = math.ceil(len(self._rotation) / MAX_EVOLVING_TARGETS)
        self.children_per_target = max(2, math.ceil(self.population_size * SHARED_POPULATIONS / MAX_EVOLVING_TARGETS)) \
            if self._rotating else self.population_size
        """New subnets scored per evolving target and generation."""
        n_labels, n_costs = len(arch_space.labels), len(self.costs)
        self._recent = (np.zeros((0, n_labels), dtype=np.int64), np.zeros(0), np.zeros((0, n_costs)))
        self._evolve(evolving_targets(self.budgets, MAX_EVOLVING_TARGETS))
        n_evolving = len(self.evolving)
        self._parents: np.ndarray = np.zeros((n_evolving, self.parents_size, n_labels), dtype=np.int64)
        self._parent_scores: np.ndarray = np.full((n_evolving, self.parents_size), -np.inf)
        self._parent_costs: np.ndarray = np.zeros((n_evolving, self.parents_size, n_costs))
        # Every target's best scored subnet that meets its budgets (an evolving target's best parent).
        self._best_rows: np.ndarray = np.zeros((self.n_targets, n_labels), dtype=np.int64)
        self._best_scores: np.ndarray = np.full(self.n_targets, -np.inf)
        self._best_costs: np.ndarray = np.zeros((self.n_targets, n_costs))
        self._history: list[np.ndarray] = []
        self._contexts: dict[bool, ProposalContext] = {}
        self._polish_from: int | None = None
        """The generation after which the polish started (None: not started)."""

    @property
    def n_targets(self) -> int:
        return len(self.budgets)

    def _evolve(self, targets: np.ndarray) -> None:
        """Make ``targets`` the evolving ones (their budgets and anchors; parents are set by the caller)."""
        self.evolving = targets
        """The targets that evolve a population now (all of them when there are few)."""
        self._evolving_budgets = self.budgets[targets]
        self._anchors, self._anchor_costs = self._all_anchors[targets], self._all_anchor_costs[targets]
        self._contexts = {}

    def _rotate(self) -> None:
        """Many targets: this generation's evolving targets are the next slice of a rotation through
        all of them in budget order (every :attr:`_stride` generations each has evolved once), each
        with the best ``parents_size`` distinct subnets that meet its budgets among every target's best
        and the last generation's candidates (so a target resumes from what its neighbours found)."""
        offset = (self._generation - 1) % self._stride
        targets = np.sort(self._rotation[offset :: self._stride])
        pool_rows = np.concatenate([self._best_rows, self._recent[0]])
        pool_scores = np.concatenate([self._best_scores, self._recent[1]])
        pool_costs = np.concatenate([self._best_costs, self._recent[2]])
        scored = np.nonzero(np.isfinite(pool_scores))[0]
        _, first = np.unique(self._canonical(pool_rows[scored])[1], return_index=True)
        scored = scored[first]
        self._evolve_from(targets, pool_rows[scored], pool_scores[scored], pool_costs[scored])

    def _start_polish(self) -> None:
        """The rotation is over: :data:`POLISH_TARGETS` targets spread evenly in budget order (the
        smallest and the largest included) evolve a full population each, from the best scored
        subnets that meet their budgets."""
        self._polish_from = self._generation
        self.children_per_target = self.population_size
        spread = np.round(np.linspace(0, len(self._rotation) - 1, min(POLISH_TARGETS, len(self._rotation))))
        archive = self._archive
        scores = np.where(np.isnan(archive.scores), -np.inf, archive.scores)
        self._evolve_from(np.sort(self._rotation[np.unique(spread).astype(np.int64)]), archive.rows, scores,
                          archive.costs)

    def _evolve_from(self, targets: np.ndarray, rows: np.ndarray, scores: np.ndarray, costs: np.ndarray) -> None:
        """Make ``targets`` the evolving ones, each with the best ``parents_size`` of the distinct
        scored subnets ``rows`` that meet its budgets as parents."""
        feasible = (costs[None, :, :] <= self.budgets[targets][:, None, :]).all(axis=2)
        masked = np.where(feasible, scores[None, :], -np.inf)
        p = self.parents_size
        if masked.shape[1] < p:
            masked = np.concatenate([masked, np.full((len(targets), p - masked.shape[1]), -np.inf)], axis=1)
            rows = np.concatenate([rows, np.zeros((p, rows.shape[1]), dtype=np.int64)])
            costs = np.concatenate([costs, np.zeros((p, costs.shape[1]))])
        top = best_first(masked, p)
        self._evolve(targets)
        self._parents, self._parent_costs = rows[top], costs[top]
        self._parent_scores = np.take_along_axis(masked, top, axis=1)

    def _stop_after_generation(self) -> bool:
        """A rotating search goes on with its polish (:meth:`_start_polish`) when its generations are
        done, for ``POLISH_SHARE * generations`` more (fewer if ``max_evaluations`` runs out first)."""
        left = self._budget_left()
        if left is not None and left <= 0:
            return True
        if self._polish_from is not None:
            return self._generation >= self._polish_from + self.polish_generations
        if self._generation < self.generations:
            return False
        if self._rotating and self.polish_generations:
            self._start_polish()
            return False
        return True

    @property
    def polish_generations(self) -> int:
        """Generations of the polish that ends a rotating search (0 for a search without rotation)."""
        return max(1, round(POLISH_SHARE * self.generations)) if self._rotating and self.generations else 0

    @property
    def _group_size(self) -> int:
        return self.children_per_target

    def _children(self) -> tuple[int, int]:
        """Mutation and crossover proposals per evolving target and generation."""
        n_mut = PROPOSALS_PER_SLOT * int(round(self.mutation_ratio * self.children_per_target))
        return n_mut, PROPOSALS_PER_SLOT * self.children_per_target - n_mut

    def _config(self) -> dict[str, Any]:
        return {**super()._config(), "parent_ratio": self.parent_ratio, "budgets": self.budgets.tolist()}

    def _propose(self) -> Proposals:
        rng, n_targets, n_labels = self._rng, len(self.evolving), len(self.arch_space.labels)
        n_mut, n_cross = self._children()
        if self._rotating and self._generation > 0 and self._polish_from is None:
            self._rotate()
            n_targets = len(self.evolving)
        if self._generation == 0 and not np.isfinite(self._parent_scores).any():
            # One random population shared by every target, repaired to each target's budgets.
            # (Candidates told before the first ask() -- a warm start, as the Optuna sampler
            # replays its trials -- are parents instead.)
            rows = np.tile(self.arch_space.random_indices(n_mut + n_cross, rng), (n_targets, 1))
            context = self._context(initial=True)
        else:
            valid = np.isfinite(self._parent_scores).sum(axis=1)  # parents are sorted best first
            target_of = np.arange(n_targets)[:, None]

            def pick(count: int) -> np.ndarray:
                chosen = (rng.random((n_targets, count)) * valid[:, None]).astype(np.int64)
                return self._parents[target_of, chosen]  # (targets, count, L)

            mutated = mutate(
                self.arch_space,
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
            n_mut, n_cross = self._children()
            if initial:
                position = np.arange(n_mut + n_cross) / (n_mut + n_cross)
            else:  # interleave mutation and crossover children in the mutation ratio
                position = np.concatenate([np.arange(n_mut) / max(n_mut, 1), np.arange(n_cross) / max(n_cross, 1)])
            group = np.repeat(np.arange(len(self.evolving)), len(position))
            context = ProposalContext(
                position=np.tile(position, len(self.evolving)),
                group=group,
                budgets=self._evolving_budgets[group],
                anchors=self._anchors[group],
                anchor_costs=self._anchor_costs[group],
            )
            self._contexts[initial] = context
        return context

    def _select(self, rows: np.ndarray, scores: np.ndarray, costs: np.ndarray) -> None:
        """Each evolving target keeps the best ``parents_size`` of its parents and every new candidate
        that meets its budgets (whichever target's children it came from); every target keeps the
        best new candidate that meets its budgets if it beats its best so far."""
        if len(rows) == 0:
            return
        p = self.parents_size
        scores = np.where(np.isnan(scores), -np.inf, scores)
        self._update_best(rows, scores, costs)
        if self._rotating:
            self._recent = (rows, scores, costs)
        feasible = (costs[None, :, :] <= self._evolving_budgets[:, None, :]).all(axis=2)  # (targets, new)
        pool_scores = np.concatenate([self._parent_scores, np.where(feasible, scores[None, :], -np.inf)], axis=1)
        top = best_first(pool_scores, p)
        from_parent = top < p
        target_of = np.arange(len(self.evolving))[:, None]
        parent_at, new_at = np.minimum(top, p - 1), np.maximum(top - p, 0)
        self._parents = np.where(from_parent[..., None], self._parents[target_of, parent_at], rows[new_at])
        self._parent_costs = np.where(from_parent[..., None], self._parent_costs[target_of, parent_at], costs[new_at])
        self._parent_scores = pool_scores[target_of, top]

    def _update_best(self, rows: np.ndarray, scores: np.ndarray, costs: np.ndarray) -> None:
        if self.n_targets > 1:  # only a candidate no other beats at no more cost can be a target's best
            front = pareto_mask(np.column_stack([-scores, costs]))
            rows, scores, costs = rows[front], scores[front], costs[front]
        for start in range(0, self.n_targets, 4096):  # (targets, new) at a time: bounded memory
            at = slice(start, start + 4096)
            feasible = (costs[None, :, :] <= self.budgets[at, None, :]).all(axis=2)
            masked = np.where(feasible, scores[None, :], -np.inf)
            best = masked.argmax(axis=1)
            value = masked[np.arange(len(best)), best]
            better = np.nonzero(value > self._best_scores[at])[0]
            self._best_scores[at][better] = value[better]
            self._best_rows[at][better] = rows[best[better]]
            self._best_costs[at][better] = costs[best[better]]

    def _after_generation(self) -> None:
        self._history.append(self._best_scores.copy())

    def _population_state(self) -> dict[str, Any]:
        return {
            "parents": self._parents.tolist(),
            "parent_scores": [[None if not np.isfinite(s) else float(s) for s in row] for row in self._parent_scores],
            "parent_costs": self._parent_costs.tolist(),
            "best_rows": self._best_rows.tolist(),
            "best_scores": [None if not np.isfinite(s) else float(s) for s in self._best_scores],
            "best_costs": self._best_costs.tolist(),
            "evolving": self.evolving.tolist(),
            "recent": [self._recent[0].tolist(), [None if not np.isfinite(v) else float(v) for v in self._recent[1]],
                       self._recent[2].tolist()],
            "history": [[None if not np.isfinite(s) else float(s) for s in h] for h in self._history],
            "polish_from": self._polish_from,
        }

    def _load_population_state(self, state: Mapping[str, Any]) -> None:
        def floats(values: Any) -> np.ndarray:
            return np.array([[-np.inf if v is None else v for v in row] for row in values], dtype=np.float64)

        if state.get("polish_from") is not None:
            self._polish_from = int(state["polish_from"])
            self.children_per_target = self.population_size
        if "evolving" in state:
            self._evolve(np.asarray(state["evolving"], dtype=np.int64))
            rows, scores, costs = state["recent"]
            self._recent = (np.asarray(rows, dtype=np.int64).reshape(-1, len(self.arch_space.labels)),
                            floats([scores]).reshape(-1),
                            np.asarray(costs, dtype=np.float64).reshape(-1, len(self.costs)))
        parents = np.asarray(state["parents"], dtype=np.int64)
        shape = (len(self.evolving), self.parents_size, len(self.arch_space.labels))
        if parents.shape != shape:
            raise InvalidInputError(
                f"state holds parents of {len(parents)} targets but this search evolves {len(self.evolving)} of its "
                f"{self.n_targets}: it was saved by another version of the engine; start the search anew"
            )
        self._parents = parents
        self._parent_scores = floats(state["parent_scores"]).reshape(shape[:2])
        self._parent_costs = np.asarray(state["parent_costs"], dtype=np.float64).reshape(*shape[:2], len(self.costs))
        if "best_rows" in state:
            self._best_rows = np.asarray(state["best_rows"], dtype=np.int64).reshape(self._best_rows.shape)
            self._best_scores = floats([state["best_scores"]]).reshape(-1)
            self._best_costs = np.asarray(state["best_costs"], dtype=np.float64).reshape(self._best_costs.shape)
        else:  # saved before every target kept its best: then every target evolved, its best is its parent
            self._best_rows, self._best_scores = self._parents[:, 0].copy(), self._parent_scores[:, 0].copy()
            self._best_costs = self._parent_costs[:, 0].copy()
        self._history = list(floats(state["history"])) if state["history"] else []

    def result(self) -> SearchResult:
        """The best subnet per target: the best scored subnet that meets its budgets."""
        if not np.isfinite(self._best_scores).all():
            raise InvalidInputError("no candidate has been scored yet: call ask()/tell() (or run()) first")
        best_rows = self.arch_space.canonical_indices(self._best_rows)
        # many targets share a best subnet: each distinct one is decoded once
        distinct, which = np.unique(best_rows, axis=0, return_inverse=True)
        samples = [self.arch_space.from_indices(row) for row in distinct]
        archs = [self.arch_space.format(sample) for sample in samples]
        results = []
        for t, d in enumerate(which.reshape(-1)):
            row, sample = best_rows[t], dict(samples[d])  # (a sample of its own: callers may edit it)
            results.append(
                TargetResult(
                    budgets={
                        n: float(b) for n, b in zip(self.cost_names, self.budgets[t], strict=True) if np.isfinite(b)
                    },
                    indices=row,
                    sample=sample,
                    arch=archs[d],
                    score=float(self._best_scores[t]),
                    costs={n: float(c) for n, c in zip(self.cost_names, self._best_costs[t], strict=True)},
                )
            )
        history = np.stack(self._history) if self._history else np.zeros((0, self.n_targets))
        return SearchResult(
            targets=tuple(results), evaluations=self.evaluations, generations=self.generation, history=history
        )
