"""The engine base: configuration checks, the archive, feasible proposals, the ask/tell protocol
and resumable state, shared by :class:`~ofa_nni.search.EvolutionSearch` and
:class:`~ofa_nni.search.ParetoSearch` (which only propose and select)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ofa_nni._deprecation import RenamedAttribute
from ofa_nni.arch import ArchSpace, ChoiceSpace
from ofa_nni.errors import InvalidInputError
from ofa_nni.search.archive import Archive, RowKeys
from ofa_nni.search.evaluation import ArrayFn, evaluate, evaluate_costs, format_cost
from ofa_nni.search.operators import repair
from ofa_nni.search.settings import EvolutionSettings

__all__ = ["AskTellSearch", "ProposalContext", "Proposals", "PROPOSALS_PER_SLOT"]

STATE_VERSION = 1
PROPOSALS_PER_SLOT = 2
"""Children proposed per population slot and generation (spares replace duplicates)."""


@dataclasses.dataclass(frozen=True)
class ProposalContext:
    """Per proposal row: where it stands in its group's order of preference, its group (target), and
    what it is repaired towards when it misses its budgets. The same every generation for a search,
    so engines build it once."""

    position: np.ndarray
    """``(n,)`` float: order of preference within the group (smaller first)."""
    group: np.ndarray
    """``(n,)`` int64: the group (target) the row was proposed for; groups are numbered from 0."""
    budgets: np.ndarray
    """``(n, K)``: the group's budget per cost (``inf``: unconstrained)."""
    anchors: np.ndarray
    """``(n, L)``: a feasible subnet of the group, repaired towards."""
    anchor_costs: np.ndarray
    """``(n, K)``: the anchors' costs."""


@dataclasses.dataclass(frozen=True)
class Proposals:
    """A generation's feasible proposals, each group's rows in order of preference (groups contiguous)."""

    rows: np.ndarray
    """``(m, L)`` int64 index rows, every one meeting its group's budgets."""
    costs: np.ndarray
    """``(m, K)`` their costs."""
    group: np.ndarray
    """``(m,)`` their groups."""
    canonical: np.ndarray
    """``(m, L)`` their canonical rows (:meth:`ArchSpace.canonical_indices`)."""
    keys: np.ndarray
    """``(m,)`` uint64 archive keys of the canonical rows."""
    known_new: np.ndarray
    """``(m,)`` bool: checked against the archive already and found new (ask() need not check again)."""


class AskTellSearch:
    """Shared machinery: configuration checks, the archive, pending candidates, ask/tell, state.

    Subclasses implement :meth:`_propose`, :meth:`_select`, :meth:`result` and the population's
    state; the settings are one :class:`EvolutionSettings`.
    """

    space = RenamedAttribute("arch_space")

    def __init__(self, *, arch_space: ArchSpace, costs: Mapping[str, ArrayFn], settings: EvolutionSettings) -> None:
        if not isinstance(arch_space, ChoiceSpace):
            raise InvalidInputError(
                f"arch_space must be an arch space (e.g. OFAMobileNetV3Space(...).arch_space), got {arch_space!r}"
            )
        if not isinstance(costs, Mapping):
            raise InvalidInputError(f"costs must be a dict {{name: callable}}, got {type(costs).__name__}")
        for name, fn in costs.items():
            if not isinstance(name, str) or not callable(fn):
                raise InvalidInputError(f"costs must map names to callables on index arrays; got {name!r}: {fn!r}")
        self.arch_space = arch_space
        self.settings = settings
        self.costs: dict[str, ArrayFn] = dict(costs)
        self.cost_names = tuple(self.costs)
        self._keys = RowKeys(arch_space)
        self._rng = np.random.default_rng(settings.seed)
        self._archive = Archive(arch_space, self._keys, len(self.costs))
        self._generation = -1  # 0 is the initial population
        self._generation_open = False
        self._finished = False
        self._clear_pending()

    # The settings, by name (read by the strategies and tests).
    @property
    def population_size(self) -> int:
        return self.settings.population_size

    @property
    def generations(self) -> int:
        return self.settings.generations

    @property
    def mutation_ratio(self) -> float:
        return self.settings.mutation_ratio

    @property
    def mutation_prob(self) -> float:
        return self.settings.mutation_prob

    @property
    def resolution_mutation_prob(self) -> float:
        return self.settings.resolution_mutation_prob

    @property
    def max_evaluations(self) -> int | None:
        return self.settings.max_evaluations

    @property
    def seed(self) -> int | None:
        return self.settings.seed

    @property
    def n_mutations(self) -> int:
        return self.settings.num_mutations

    @property
    def _group_size(self) -> int:
        """New subnets scored per group (target) and generation: the population, unless an engine
        shares it out among groups."""
        return self.population_size

    # ------------------------------------------------------------------ subclass hooks
    def _propose(self) -> Proposals:
        """Proposals for the next generation (``generation`` already advanced), made feasible by
        :meth:`_feasible_proposals`."""
        raise NotImplementedError

    def _canonical(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        canonical = self.arch_space.canonical_indices(rows)
        return canonical, self._keys(canonical)

    def _feasible_proposals(self, rows: np.ndarray, context: ProposalContext) -> Proposals:
        """Order each group's proposals feasible first (then by ``position``), repair the rest.
        Rows are checked against the archive here, so ask() need not check them again.

        Searches propose ``PROPOSALS_PER_SLOT`` times the population and keep the first
        ``_group_size`` new subnets per group: the spare proposals replace duplicates, and a
        proposal that already meets its budgets is preferred to one that needs repair (which, like
        OFA's re-drawing, keeps children distributed as the operators propose them), without any
        loop that redraws until feasible."""
        values = evaluate_costs(self.costs, rows)
        infeasible: np.ndarray = np.asarray((values > context.budgets).any(axis=1))
        order = np.lexsort((context.position, infeasible, context.group))
        rows, values, group, infeasible = rows[order], values[order], context.group[order], infeasible[order]
        feasible_at = np.nonzero(~infeasible)[0]
        canonical = np.zeros_like(rows)
        keys = np.zeros(len(rows), dtype=np.uint64)
        canonical[feasible_at], keys[feasible_at] = self._canonical(rows[feasible_at])
        _, first = np.unique(keys[feasible_at], return_index=True)
        first = feasible_at[first]
        new = first[~self._archive.contains(keys[first], canonical[first])]
        known_new = np.zeros(len(rows), dtype=bool)
        known_new[new] = True
        n_groups = int(group.max()) + 1
        # ask() keeps the first _group_size new subnets of each group: a group with n feasible
        # new ones reaches at most its first _group_size - n infeasible proposals (more only if
        # repairs land on known subnets, hence a margin), so only those are repaired.
        need = np.maximum(self._group_size - np.bincount(group[new], minlength=n_groups), 0)
        need = np.where(need > 0, need + need // 4 + 8, 0)
        infeasible_at = np.nonzero(infeasible)[0]
        per_group = np.bincount(group[infeasible_at], minlength=n_groups)
        rank = np.arange(len(infeasible_at)) - np.repeat(np.cumsum(per_group) - per_group, per_group)
        keep = np.ones(len(rows), dtype=bool)
        keep[infeasible_at[rank >= need[group[infeasible_at]]]] = False
        rows, values, group, infeasible = rows[keep], values[keep], group[keep], infeasible[keep]
        canonical, keys, order, known_new = canonical[keep], keys[keep], order[keep], known_new[keep]
        if infeasible.any():
            at = np.nonzero(infeasible)[0]
            source = order[at]
            rows[at], values[at] = repair(
                self.arch_space,
                rows[at],
                values[at],
                self.costs,
                context.budgets[source],
                context.anchors[source],
                context.anchor_costs[source],
                self._rng,
            )
            canonical[at], keys[at] = self._canonical(rows[at])
        return Proposals(rows=rows, costs=values, group=group, canonical=canonical, keys=keys, known_new=known_new)

    def _select(self, rows: np.ndarray, scores: np.ndarray, costs: np.ndarray) -> None:
        """Update the population with this generation's new candidates (raw rows)."""
        raise NotImplementedError

    def _population_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_population_state(self, state: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def _config(self) -> dict[str, Any]:
        return {
            "space": self.arch_space.signature(),
            "costs": list(self.cost_names),
            "population_size": self.population_size,
            "generations": self.generations,
            "mutation_ratio": self.mutation_ratio,
            "mutation_prob": self.mutation_prob,
            "resolution_mutation_prob": self.resolution_mutation_prob,
            "max_evaluations": self.max_evaluations,
        }

    # ------------------------------------------------------------------------- protocol
    @property
    def evaluations(self) -> int:
        """Distinct subnets scored so far (told, including those of an unfinished generation)."""
        return len(self._archive) + int(self._pending_told.sum()) + len(self._extra_rows)

    @property
    def generation(self) -> int:
        """Generations completed after the initial population (-1 before it is complete)."""
        return self._generation - 1 if self._generation_open else self._generation

    @property
    def done(self) -> bool:
        """True when the generation or evaluation budget is spent and nothing is pending."""
        return self._finished and not self._has_pending()

    def _clear_pending(self) -> None:
        n = len(self.arch_space.labels)
        self._pending_rows = np.zeros((0, n), dtype=np.int64)
        self._pending_canonical = self._pending_rows
        self._pending_keys = np.zeros(0, dtype=np.uint64)
        self._pending_costs = np.zeros((0, len(self.costs)))
        self._pending_scores = np.zeros(0)
        self._pending_told = np.zeros(0, dtype=bool)
        self._extra_rows = np.zeros((0, n), dtype=np.int64)
        self._extra_scores = np.zeros(0)
        self._extra_costs = np.zeros((0, len(self.costs)))

    def _has_pending(self) -> bool:
        return bool((~self._pending_told).any())

    def _budget_left(self) -> int | None:
        return None if self.max_evaluations is None else self.max_evaluations - len(self._archive)

    def _stop_after_generation(self) -> bool:
        """Whether the search ends with the generation just completed (subclasses may add phases)."""
        left = self._budget_left()
        return self._generation >= self.generations or (left is not None and left <= 0)

    def ask(self) -> np.ndarray:
        """The candidates to score next: an ``(m, L)`` int64 array of subnets never scored before.

        While some of the last batch are untold, returns those again. Returns an empty array when
        the search is done.
        """
        if self._has_pending():
            return self._pending_rows[~self._pending_told].copy()
        while not self._finished:
            self._generation += 1
            proposals = self._propose()
            keys, group = proposals.keys, proposals.group
            _, first = np.unique(keys, return_index=True)
            first.sort()  # first-occurrence order: deterministic and unbiased by key order
            unknown = first[~proposals.known_new[first]]
            archived = np.zeros(len(keys), dtype=bool)
            archived[unknown] = self._archive.contains(keys[unknown], proposals.canonical[unknown])
            new = first[~archived[first]]
            # at most _group_size new subnets per group (groups are contiguous)
            counts = np.bincount(group[new], minlength=int(group.max()) + 1)
            rank_in_group = np.arange(len(new)) - np.repeat(np.cumsum(counts) - counts, counts)
            new = new[rank_in_group < self._group_size]
            left = self._budget_left()
            if left is not None:
                new = new[:left]
            self._pending_rows = proposals.rows[new]
            self._pending_canonical = proposals.canonical[new]
            self._pending_keys = keys[new]
            self._pending_costs = proposals.costs[new]
            self._pending_scores = np.full(len(new), np.nan)
            self._pending_told = np.zeros(len(new), dtype=bool)
            self._generation_open = True
            if len(new):
                return self._pending_rows.copy()
            self._complete_generation()  # every child was scored before: nothing to ask
        return np.zeros((0, len(self.arch_space.labels)), dtype=np.int64)

    def tell(self, rows: Any, scores: Any) -> None:
        """Report objective values (higher is better) for ``rows``.

        Rows from :meth:`ask` complete the current generation; other rows (e.g. subnets evaluated
        elsewhere) are archived and offered to the population too. NaN marks a failed evaluation:
        archived, never selected. Rows scored before are ignored.
        """
        rows = self.arch_space.check_indices(rows, "tell(rows)")
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if scores.shape != (len(rows),):
            raise InvalidInputError(f"tell: {len(rows)} rows but {scores.size} scores")
        if len(rows) == 0:
            return
        untold = np.nonzero(~self._pending_told)[0]
        if len(rows) == len(untold) and np.array_equal(rows, self._pending_rows[untold]):
            self._pending_scores[untold] = scores  # the common case: exactly what ask() returned
            self._pending_told[untold] = True
        else:
            self._tell_rows(rows, scores)
        if not self._has_pending():
            if self._generation_open:
                self._complete_generation()
            elif len(self._extra_rows):
                self._absorb()

    def _tell_rows(self, rows: np.ndarray, scores: np.ndarray) -> None:
        canonical, keys = self._canonical(rows)
        pending_at = np.full(len(rows), -1, dtype=np.int64)
        if len(self._pending_keys):
            order = np.argsort(self._pending_keys, kind="stable")
            candidate = order[np.minimum(np.searchsorted(self._pending_keys[order], keys), len(order) - 1)]
            same = (self._pending_keys[candidate] == keys) & (self._pending_canonical[candidate] == canonical).all(
                axis=1
            )
            pending_at = np.where(same, candidate, -1)
        fresh = pending_at >= 0
        fresh[fresh] = ~self._pending_told[pending_at[fresh]]  # (nothing may be pending at all)
        self._pending_scores[pending_at[fresh]] = scores[fresh]
        self._pending_told[pending_at[fresh]] = True
        others = np.nonzero(pending_at < 0)[0]
        if len(others):
            _, first = np.unique(keys[others], return_index=True)
            others = others[np.sort(first)]
            others = others[~self._archive.contains(keys[others], canonical[others])]
            if len(self._extra_rows):
                _, extra_keys = self._canonical(self._extra_rows)
                others = others[~np.isin(keys[others], extra_keys)]
            if len(others):
                self._extra_rows = np.concatenate([self._extra_rows, rows[others]])
                self._extra_scores = np.concatenate([self._extra_scores, scores[others]])
                self._extra_costs = np.concatenate([self._extra_costs, evaluate_costs(self.costs, rows[others])])

    def _absorb(self) -> None:
        """Archive the told candidates and let the population select among them."""
        rows, scores, costs = self._pending_rows, self._pending_scores, self._pending_costs
        canonical, keys = self._pending_canonical, self._pending_keys
        if len(self._extra_rows):
            extra_canonical, extra_keys = self._canonical(self._extra_rows)
            rows = np.concatenate([rows, self._extra_rows])
            scores = np.concatenate([scores, self._extra_scores])
            costs = np.concatenate([costs, self._extra_costs])
            canonical = np.concatenate([canonical, extra_canonical])
            keys = np.concatenate([keys, extra_keys])
        if len(rows):
            self._archive.add(canonical, keys, scores, costs)
            self._select(rows, scores, costs)
        self._clear_pending()

    def _complete_generation(self) -> None:
        self._absorb()
        self._generation_open = False
        self._after_generation()
        if self._stop_after_generation():
            self._finished = True

    def _after_generation(self) -> None:
        """Hook run once per completed generation (e.g. to record progress)."""

    def run(self, objective: ArrayFn) -> Any:
        """Ask, score with ``objective``, tell, until done; returns :meth:`result`."""
        while True:
            rows = self.ask()
            if len(rows) == 0:
                break
            self.tell(rows, evaluate(objective, rows, "objective"))
        return self.result()

    def result(self) -> Any:
        raise NotImplementedError

    # ---------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (JSON-serialisable: lists, numbers, strings)."""
        return {
            "version": STATE_VERSION,
            "kind": type(self).__name__,
            "config": self._config(),
            "rng": self._rng.bit_generator.state,
            "generation": self._generation,
            "generation_open": self._generation_open,
            "finished": self._finished,
            "archive": self._archive.state(),
            "pending": {
                "rows": self._pending_rows.tolist(),
                "costs": self._pending_costs.tolist(),
                "scores": [None if np.isnan(s) else float(s) for s in self._pending_scores],
                "told": self._pending_told.tolist(),
                "extra_rows": self._extra_rows.tolist(),
                "extra_scores": [None if np.isnan(s) else float(s) for s in self._extra_scores],
                "extra_costs": self._extra_costs.tolist(),
            },
            "population": self._population_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume from :meth:`state_dict` of a search built with the same arguments."""
        if state.get("version") != STATE_VERSION or state.get("kind") != type(self).__name__:
            raise InvalidInputError(
                f"not a {type(self).__name__} state (version {state.get('version')}, kind {state.get('kind')})"
            )
        mine, theirs = self._config(), state["config"]
        differing = sorted(key for key in set(mine) | set(theirs) if mine.get(key) != theirs.get(key))
        if differing:
            raise InvalidInputError(f"state was saved by a search with different settings: {differing}")
        n, k = len(self.arch_space.labels), len(self.costs)

        def floats(values: Sequence[Any]) -> np.ndarray:
            return np.array([np.nan if v is None else v for v in values], dtype=np.float64)

        self._rng.bit_generator.state = state["rng"]
        self._generation = int(state["generation"])
        self._generation_open = bool(state["generation_open"])
        self._finished = bool(state["finished"])
        self._archive.load(state["archive"])
        pending = state["pending"]
        self._pending_rows = np.asarray(pending["rows"], dtype=np.int64).reshape(-1, n)
        self._pending_canonical, self._pending_keys = self._canonical(self._pending_rows)
        self._pending_costs = np.asarray(pending["costs"], dtype=np.float64).reshape(-1, k)
        self._pending_scores = floats(pending["scores"])
        self._pending_told = np.asarray(pending["told"], dtype=bool).reshape(-1)
        self._extra_rows = np.asarray(pending["extra_rows"], dtype=np.int64).reshape(-1, n)
        self._extra_scores = floats(pending["extra_scores"])
        self._extra_costs = np.asarray(pending["extra_costs"], dtype=np.float64).reshape(-1, k)
        self._load_population_state(state["population"])

    # -------------------------------------------------------------------------- helpers
    def _parse_budgets(self, budgets: Any, where: str) -> np.ndarray:
        if not isinstance(budgets, Mapping):
            raise InvalidInputError(f"{where} must be a dict {{cost name: budget}}, got {budgets!r}")
        row = np.full(len(self.costs), np.inf)
        for name, value in budgets.items():
            if name not in self.costs:
                raise InvalidInputError(f"{where}: unknown cost {name!r}; costs given: {list(self.costs)}")
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise InvalidInputError(f"{where}: budget for {name!r} must be a number, got {value!r}")
            if math.isnan(value):
                raise InvalidInputError(f"{where}: budget for {name!r} is NaN")
            row[self.cost_names.index(name)] = float(value)
        return row

    def _anchors_for(self, budgets: np.ndarray, minima: dict[str, tuple[float, np.ndarray]]) -> np.ndarray:
        """A feasible subnet per budget row to repair towards (InvalidInputError if a budget is unreachable)."""
        arch_space, names = self.arch_space, self.cost_names
        for t, row in enumerate(budgets):
            for k, name in enumerate(names):
                smallest, at = minima[name]
                if row[k] < smallest:
                    which = f"target {t} " if len(budgets) > 1 else ""
                    raise InvalidInputError(
                        f"{which}budget {format_cost(row[k])} for {name!r} is infeasible: the smallest "
                        f"achievable {name} is {format_cost(smallest)} "
                        f"(subnet {arch_space.format(arch_space.from_indices(at))})"
                    )
        # Candidates: the smallest subnet, then each cost's minimiser; the first meeting every budget.
        candidates = np.stack([np.zeros(len(arch_space.labels), dtype=np.int64)] + [at for _, at in minima.values()])
        values = evaluate_costs(self.costs, candidates)
        feasible: np.ndarray = np.asarray(
            (values[None, :, :] <= budgets[:, None, :]).all(axis=2)
        )  # (targets, candidates)
        if not feasible.any(axis=1).all():
            t = int(np.nonzero(~feasible.any(axis=1))[0][0])
            shown = {name: float(budgets[t, k]) for k, name in enumerate(names)}
            raise InvalidInputError(
                f"no subnet found that meets all budgets of target {t} together ({shown}); each cost's "
                f"smallest value: { {name: minima[name][0] for name in names} }"
            )
        return candidates[feasible.argmax(axis=1)]
