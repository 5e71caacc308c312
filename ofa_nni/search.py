"""Predictor-guided evolutionary search over integer-encoded subnets ("specialize", OFA Sec. 3.3).

Once the supernet is trained, OFA finds a subnet for a deployment target by regularised evolution
guided by an accuracy predictor, under an efficiency constraint (Cai et al., ICLR 2020, Sec. 3.3
and App. A: population 100, 500 generations, parent ratio 0.25, mutation ratio 0.5, mutation
probability 0.1, resolution mutation probability 0.5). This module is that search, rebuilt for
throughput and for many targets at once:

* Populations are ``(n, len(labels))`` int64 index arrays (:meth:`ArchSpace.to_indices` order).
  Mutation, crossover, constraint checks, repair and objective calls are batched over the whole
  population -- and over all targets -- with no Python loop per candidate.
* Constraints are met by construction: each generation proposes twice the population in one
  batch, prefers proposals that already meet their budgets (as OFA's re-drawing does) and
  *repairs* the others by moving some of their choices towards the cheapest subnet (vectorised,
  usually one batched cost call), never redrawing until feasible. A budget below the smallest
  achievable cost raises a ValueError that states that value.
* Candidates are canonicalised (genes of inactive blocks zeroed) and deduplicated against an
  archive of everything scored so far, so no query is spent twice on the same subnet; the spare
  proposals replace the duplicates, so a generation still scores ``population_size`` new subnets.
* Many targets share one run: one objective call per generation scores the children of every
  target, and every new candidate is offered to every target whose budgets it meets. Hence the
  result for a larger budget is never worse than for a smaller one.
* :class:`ParetoSearch` returns the Pareto front of the objective against every cost (NSGA-II
  style selection: non-dominated sorting and crowding distance, vectorised with numpy).

Both searches follow an ask-and-tell protocol so that other drivers (NNI strategies, Optuna
samplers, NNI tuners, real evaluation of subnets) can run them::

    search = EvolutionSearch(space=space, costs={"macs": cost_model.macs},
                             targets=[{"macs": 200e6}, {"macs": 300e6}], seed=0)
    while not search.done:
        candidates = search.ask()                 # (m, L) int64, new subnets only
        search.tell(candidates, objective(candidates))
    result = search.result()                      # one TargetResult per target

or simply ``search.run(objective)`` / :func:`specialize`. Objectives and costs are callables on an
``(n, L)`` int64 index array returning an ``(n,)`` array; the objective is maximised (predicted
accuracy), every cost must stay ``<=`` its budget. A search is deterministic for a seed (given a
deterministic objective) and can be checkpointed with ``state_dict`` / ``load_state_dict``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ofa_nni.arch import ArchSpace, Sample
from ofa_nni.errors import InvalidInputError

__all__ = [
    "ArrayFn",
    "EvolutionSearch",
    "ParetoSearch",
    "SearchResult",
    "TargetResult",
    "ParetoFront",
    "specialize",
    "minimum_costs",
    "non_dominated_sort",
    "crowding_distance",
    "pareto_mask",
    "canonical_indices",
]

ArrayFn = Callable[[np.ndarray], Any]
"""An objective or a cost: ``(n, len(labels))`` int64 index array -> ``(n,)`` numbers."""

_STATE_VERSION = 1
_PROPOSALS_PER_SLOT = 2
"""Children proposed per population slot and generation (spares replace duplicates)."""
_REPAIR_TRIES = 4
"""Repairs tried at once per infeasible child, at growing strength (the gentlest feasible is kept)."""


# --------------------------------------------------------------------------- encoding helpers
def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser (a bijection of uint64) on an array; multiplications wrap."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


class _Layout:
    """Column layout of an index array of ``space`` and the vectorised helpers that need it."""

    def __init__(self, space: ArchSpace) -> None:
        self.space = space
        self.n_labels = len(space.labels)
        self.n_blocks = space.num_blocks
        self.n_stages = space.num_stages
        self.cardinalities = space.cardinalities
        # depth_patterns[d, b]: block b of a stage runs at the d-th depth choice
        self.depth_patterns = np.arange(space.max_depth)[None, :] < np.asarray(space.depths)[:, None]
        # Mutation draws one number per block (kernel and expand redrawn together), per depth and
        # for the resolution; mutation_unit maps every gene to its number.
        block = np.arange(self.n_blocks)
        self.mutation_unit = np.concatenate([block, block, self.n_blocks + np.arange(self.n_stages + 1)])
        # Keys: each row's mixed-radix code, computed exactly in float64 words (< 2**53 each, one small
        # matrix product), folded into one uint64 by splitmix64. Exact when one word suffices (small
        # spaces); otherwise a 64-bit hash, and every archive hit is confirmed on the rows.
        word_of_label = np.zeros(self.n_labels, dtype=np.int64)
        multiplier = np.ones(self.n_labels)
        word, product = 0, 1
        for col, card in enumerate(self.cardinalities.tolist()):
            if product * card >= 2**53:
                word, product = word + 1, 1
            word_of_label[col], multiplier[col] = word, product
            product *= card
        self.key_matrix = np.zeros((self.n_labels, word + 1))
        self.key_matrix[np.arange(self.n_labels), word_of_label] = multiplier

    def check(self, rows: Any, what: str = "index array") -> np.ndarray:
        """Validate an ``(n, L)`` index array (ValueError naming the problem)."""
        array = np.asarray(rows)
        if array.ndim != 2 or array.shape[1] != self.n_labels:
            raise InvalidInputError(f"{what} must have shape (n, {self.n_labels}), got {array.shape}")
        if array.size and not np.issubdtype(array.dtype, np.integer):
            raise InvalidInputError(f"{what} must hold integer choice indices, got dtype {array.dtype}")
        array = array.astype(np.int64, copy=False)
        if array.size and ((array < 0).any() or (array >= self.cardinalities).any()):
            bad_col = int(np.nonzero(((array < 0) | (array >= self.cardinalities)).any(axis=0))[0][0])
            label = self.space.labels[bad_col]
            raise InvalidInputError(
                f"{what}: column {bad_col} ({label}) has an index outside 0..{self.cardinalities[bad_col] - 1}"
            )
        return array

    def active_blocks(self, rows: np.ndarray) -> np.ndarray:
        """``(n, num_blocks)`` bool: which blocks run (np.take: much faster than fancy indexing here)."""
        depth_choice = rows[:, 2 * self.n_blocks : 2 * self.n_blocks + self.n_stages]
        return np.take(self.depth_patterns, depth_choice, axis=0).reshape(len(rows), self.n_blocks)

    def active_mask(self, rows: np.ndarray) -> np.ndarray:
        """``(n, L)`` bool: which genes matter (kernels/expands of active blocks, depths, resolution)."""
        blocks = self.active_blocks(rows)
        mask = np.ones(rows.shape, dtype=bool)
        mask[:, : self.n_blocks] = blocks
        mask[:, self.n_blocks : 2 * self.n_blocks] = blocks
        return mask

    def canonical(self, rows: np.ndarray) -> np.ndarray:
        """Rows with the genes of inactive blocks set to 0: equal rows <=> the same subnet."""
        blocks = self.active_blocks(rows)
        canonical = rows.copy()
        canonical[:, : self.n_blocks] *= blocks
        canonical[:, self.n_blocks : 2 * self.n_blocks] *= blocks
        return canonical

    def keys(self, canonical_rows: np.ndarray) -> np.ndarray:
        """One fixed-size byte-string key per canonical row (sortable, exact)."""
        words = (canonical_rows.astype(np.float64) @ self.key_matrix).astype(np.uint64)
        key = words[:, 0]
        for w in range(1, words.shape[1]):
            key = _splitmix64(key) + words[:, w]
        return key


def canonical_indices(space: ArchSpace, indices: np.ndarray) -> np.ndarray:
    """``indices`` with the genes of inactive blocks set to 0 (their smallest choice): two rows are the
    same subnet iff their canonical rows are equal. Search results are canonical."""
    layout = _Layout(space)
    return layout.canonical(layout.check(indices))


def _evaluate(fn: ArrayFn, rows: np.ndarray, what: str) -> np.ndarray:
    values = np.asarray(fn(rows), dtype=np.float64)
    if values.shape != (len(rows),):
        values = values.reshape(-1) if values.size == len(rows) else values
    if values.shape != (len(rows),):
        raise InvalidInputError(f"{what} must return one number per row: expected shape ({len(rows)},), got {values.shape}")
    return values


def _evaluate_costs(costs: Mapping[str, ArrayFn], rows: np.ndarray) -> np.ndarray:
    out = np.empty((len(rows), len(costs)), dtype=np.float64)
    for k, (name, fn) in enumerate(costs.items()):
        out[:, k] = _evaluate(fn, rows, f"cost {name!r}")
    if np.isnan(out).any():
        raise InvalidInputError(f"a cost returned NaN (costs: {list(costs)})")
    return out


# ------------------------------------------------------------------------- genetic operators
def _mutate(
    layout: _Layout,
    parents: np.ndarray,
    rng: np.random.Generator,
    mutation_prob: float,
    resolution_prob: float,
) -> np.ndarray:
    """OFA's mutation, batched: each block's (kernel, expand) pair and each depth is redrawn with
    ``mutation_prob``, the resolution with ``resolution_prob``. A child whose *active* part came out
    equal to its parent (e.g. only inactive blocks were hit) gets one active gene changed, so no
    query is spent on a copy of the parent."""
    n, card = len(parents), layout.cardinalities
    threshold = np.full(layout.n_blocks + layout.n_stages + 1, mutation_prob, dtype=np.float32)
    threshold[-1] = resolution_prob
    hit = (rng.random((n, len(threshold)), dtype=np.float32) < threshold)[:, layout.mutation_unit]
    row, col = np.nonzero(hit)
    children = parents.copy()
    children[row, col] = (rng.random(len(row)) * card[col]).astype(np.int64)
    # A child equals its parent (as a subnet) iff no active gene changed; a changed depth is itself
    # an active change, so the parent's active mask decides.
    active = layout.active_mask(parents)
    changed = np.zeros(n, dtype=bool)
    changed[row[(children[row, col] != parents[row, col]) & active[row, col]]] = True
    same = np.nonzero(~changed)[0]
    if len(same):
        sub = children[same]
        movable = active[same] & (card > 1)
        col = np.where(movable, rng.random(sub.shape, dtype=np.float32), 2.0).argmin(axis=1)
        at = np.arange(len(same))
        shift = 1 + (rng.random(len(same)) * (card[col] - 1)).astype(np.int64)  # any *other* value
        sub[at, col] = np.where(movable[at, col], (sub[at, col] + shift) % card[col], sub[at, col])
        children[same] = sub
    return children


def _crossover(parents_a: np.ndarray, parents_b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Uniform crossover (OFA): each gene from either parent with probability 1/2."""
    return np.where(rng.random(parents_a.shape, dtype=np.float32) < 0.5, parents_a, parents_b)


def _repair(
    layout: _Layout,
    rows: np.ndarray,
    values: np.ndarray,
    costs: Mapping[str, ArrayFn],
    budgets: np.ndarray,
    anchors: np.ndarray,
    anchor_costs: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Make every row meet its budgets by moving some of its choices towards its anchor (a feasible
    subnet, usually the smallest one), changing as little as the excess asks for.

    To remove a share f of the excess (cost above budget over cost above the anchor's), a repair
    moves each gene that differs from the anchor with probability sqrt(f) (at least one), by a share
    sqrt(f) of its distance. Every round tries ``_REPAIR_TRIES`` repairs per infeasible row at growing shares
    (f, 2f, 4f, ...) in one batched cost call and keeps the gentlest feasible one; a row with none
    takes the boldest and goes to the next round, whose shares are larger still. Rounds are bounded:
    each one moves at least one gene one step, and the anchor itself is feasible.

    Args:
        values: The rows' costs ``(n, K)``.

    Returns the repaired rows and their costs.
    """
    rows, values = rows.copy(), values.copy()
    bad = np.nonzero((values > budgets).any(axis=1))[0]
    tries = _REPAIR_TRIES
    growth = 2.0 ** np.arange(tries)
    for attempt in range(int((layout.cardinalities - 1).sum()) + 1):
        if len(bad) == 0:
            break
        n = len(bad)
        sub, anchor = np.tile(rows[bad], (tries, 1)), np.tile(anchors[bad], (tries, 1))
        diff = sub - anchor
        movable = (diff != 0) & layout.active_mask(sub)
        n_movable = movable.sum(axis=1)
        span = np.maximum(values[bad] - anchor_costs[bad], 1e-12)
        over = np.clip((values[bad] - budgets[bad]) / span, 0.0, 1.0).max(axis=1)
        scale = growth * float(2 * tries) ** min(attempt, 10)
        share = np.sqrt(np.minimum(scale[:, None] * over[None, :], 1.0)).reshape(-1)
        draw = np.where(movable, rng.random(sub.shape, dtype=np.float32), 2.0)
        move = draw < share[:, None]  # each differing gene with probability sqrt(f)...
        move[np.arange(len(sub)), draw.argmin(axis=1)] |= n_movable > 0  # ...and at least one
        distance = np.abs(diff)
        step = np.minimum(np.ceil(share[:, None] * distance), distance).astype(np.int64)
        tried = sub - np.sign(diff) * step * move
        stuck = n_movable == 0  # differs only in genes the costs should ignore: take the anchor
        tried[stuck] = anchor[stuck]
        tried_values = _evaluate_costs(costs, tried)
        ok = (tried_values <= np.tile(budgets[bad], (tries, 1))).all(axis=1).reshape(tries, n)
        feasible = ok.any(axis=0)
        chosen = np.where(feasible, ok.argmax(axis=0), tries - 1) * n + np.arange(n)
        rows[bad], values[bad] = tried[chosen], tried_values[chosen]
        bad = bad[~feasible]
    else:  # unreachable for costs that ignore inactive genes; never leave a row infeasible
        rows[bad] = anchors[bad]
        values[bad] = anchor_costs[bad]
    return rows, values


# ---------------------------------------------------------------------------- cost minima
def minimum_costs(space: ArchSpace, costs: Mapping[str, ArrayFn]) -> dict[str, tuple[float, np.ndarray]]:
    """The smallest achievable value of each cost, with the subnet (index row) that achieves it.

    Starts at the smallest subnet (index 0 everywhere) and evaluates, in one batch, every subnet that
    differs from it in one choice. If none is cheaper -- the case for MACs, parameters and latency
    tables with non-negative entries, where a cost never decreases when a choice grows -- the
    smallest subnet is the exact minimum. Otherwise (a non-monotone cost) batched coordinate descent
    continues to a point no single change improves, and that local minimum is reported.
    """
    layout = _Layout(space)
    result: dict[str, tuple[float, np.ndarray]] = {}
    for name, fn in costs.items():
        current = np.zeros(layout.n_labels, dtype=np.int64)
        value = float(_evaluate(fn, current[None], f"cost {name!r}")[0])
        for _ in range(10_000):
            neighbours = _single_changes(layout, current)
            values = _evaluate(fn, neighbours, f"cost {name!r}")
            best = int(values.argmin())
            if not values[best] < value:
                break
            current, value = neighbours[best], float(values[best])
        result[name] = (value, current)
    return result


def _single_changes(layout: _Layout, row: np.ndarray) -> np.ndarray:
    """Every row that differs from ``row`` in exactly one gene."""
    cols = np.repeat(np.arange(layout.n_labels), layout.cardinalities)
    values = np.concatenate([np.arange(c) for c in layout.cardinalities.tolist()])
    keep = values != row[cols]
    neighbours = np.tile(row, (int(keep.sum()), 1))
    neighbours[np.arange(len(neighbours)), cols[keep]] = values[keep]
    return neighbours


# -------------------------------------------------------------------------- Pareto helpers
def _dominance(objectives: np.ndarray) -> np.ndarray:
    """``D[i, j]``: row i dominates row j (all objectives minimised)."""
    le: np.ndarray = np.asarray((objectives[:, None, :] <= objectives[None, :, :]).all(axis=2))
    lt: np.ndarray = np.asarray((objectives[:, None, :] < objectives[None, :, :]).any(axis=2))
    return le & lt


def pareto_mask(objectives: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``objectives`` ``(n, m)`` (all minimised).

    Two objectives take a sort and a running minimum (O(n log n)); more compare each block of
    points, in lexicographic order, with the front found so far. Duplicated points are all kept.
    """
    objectives = np.asarray(objectives, dtype=np.float64)
    n = len(objectives)
    if n == 0:
        return np.zeros(0, dtype=bool)
    # A dominator is lexicographically smaller, so scanning in lexicographic order only needs to
    # compare each point with the non-dominated points found before it.
    order = np.lexsort(objectives.T[::-1])
    ordered = objectives[order]
    if objectives.shape[1] == 2:
        first, second = ordered[:, 0], ordered[:, 1]
        run_start = np.ones(n, dtype=bool)  # runs of exact duplicates: all kept or all dropped
        run_start[1:] = (first[1:] != first[:-1]) | (second[1:] != second[:-1])
        best_before = np.concatenate([[np.inf], np.minimum.accumulate(second)[:-1]])
        kept_sorted = (best_before > second)[np.nonzero(run_start)[0]][np.cumsum(run_start) - 1]
    else:
        kept_sorted = np.zeros(n, dtype=bool)
        front = np.zeros((0, objectives.shape[1]))
        for start in range(0, n, 512):
            block = ordered[start : start + 512]
            by_front = _dominates_any(front, block)
            within = _dominance(block)
            dominated = by_front | np.triu(within, k=1).any(axis=0)
            kept_sorted[start : start + len(block)] = ~dominated
            front = np.concatenate([front, block[~dominated]])
    mask = np.zeros(n, dtype=bool)
    mask[order] = kept_sorted
    return mask


def _dominates_any(front: np.ndarray, points: np.ndarray) -> np.ndarray:
    """For each point: is it dominated by some row of ``front``?"""
    if len(front) == 0:
        return np.zeros(len(points), dtype=bool)
    le: np.ndarray = np.asarray((front[:, None, :] <= points[None, :, :]).all(axis=2))
    lt: np.ndarray = np.asarray((front[:, None, :] < points[None, :, :]).any(axis=2))
    dominated: np.ndarray = (le & lt).any(axis=0)
    return dominated


def non_dominated_sort(objectives: np.ndarray) -> np.ndarray:
    """Front number of every row (0 = non-dominated; all objectives minimised), NSGA-II style."""
    objectives = np.asarray(objectives, dtype=np.float64)
    dominates = _dominance(objectives)
    n = len(objectives)
    rank = np.full(n, -1, dtype=np.int64)
    remaining = np.ones(n, dtype=bool)
    front = 0
    while remaining.any():
        dominated = (dominates[remaining][:, remaining]).any(axis=0)
        members = np.nonzero(remaining)[0][~dominated]
        rank[members] = front
        remaining[members] = False
        front += 1
    return rank


def crowding_distance(objectives: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance of the rows of one front (boundary points get ``inf``)."""
    objectives = np.asarray(objectives, dtype=np.float64)
    n, m = objectives.shape
    distance = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for k in range(m):
        order = np.argsort(objectives[:, k], kind="stable")
        values = objectives[order, k]
        span = values[-1] - values[0]
        distance[order[0]] = distance[order[-1]] = np.inf
        if span > 0:
            distance[order[1:-1]] += (values[2:] - values[:-2]) / span
    return distance


# ------------------------------------------------------------------------------- results
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

    space: ArchSpace
    indices: np.ndarray
    """``(F, L)`` index rows, sorted by the first cost."""
    scores: np.ndarray
    costs: dict[str, np.ndarray]
    evaluations: int

    def __len__(self) -> int:
        return len(self.indices)

    def samples(self) -> list[Sample]:
        return [self.space.from_indices(row) for row in self.indices]

    def archs(self) -> list[str]:
        return [self.space.format(sample) for sample in self.samples()]


# ---------------------------------------------------------------------------- base search
def _number(value: float) -> str:
    """A cost for a message: exact when it is a whole number (MACs, params), else 6 digits."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e18 else f"{value:.6g}"


def _check_probability(name: str, value: float, *, open_low: bool = False) -> float:
    value = float(value)
    if not (0.0 < value <= 1.0 if open_low else 0.0 <= value <= 1.0):
        raise InvalidInputError(f"{name} must be in {'(0, 1]' if open_low else '[0, 1]'}, got {value}")
    return value


class _Archive:
    """Every subnet scored so far: canonical rows, scores and costs, with sorted keys for lookup.

    Storage grows by doubling; keys go to a small sorted buffer that is merged into the main sorted
    array when it reaches an eighth of it, so archiving a generation costs O(generation) amortised,
    not O(archive)."""

    def __init__(self, layout: _Layout, n_costs: int) -> None:
        self.layout = layout
        self.n_costs = n_costs
        self.clear()

    def clear(self) -> None:
        self.size = 0
        # Rows in the smallest integer type that holds every choice index: the archive is copied
        # when it grows, and int64 rows made that copy a quarter of a large search's own time.
        row_type = np.int8 if self.layout.cardinalities.max() <= 127 else np.int64
        self._rows = np.zeros((1024, self.layout.n_labels), dtype=row_type)
        self._scores = np.zeros(1024)
        self._costs = np.zeros((1024, self.n_costs))
        # sorted keys and the archive position of each: a large main index and a small recent one
        self.sorted_keys = np.zeros(0, dtype=np.uint64)
        self.sorted_pos = np.zeros(0, dtype=np.int64)
        self.recent_keys, self.recent_pos = self.sorted_keys, self.sorted_pos

    @property
    def rows(self) -> np.ndarray:
        return self._rows[: self.size].astype(np.int64)

    @property
    def scores(self) -> np.ndarray:
        return self._scores[: self.size]

    @property
    def costs(self) -> np.ndarray:
        return self._costs[: self.size]

    def __len__(self) -> int:
        return self.size

    def contains(self, keys: np.ndarray, canonical_rows: np.ndarray) -> np.ndarray:
        """Whether each canonical row (with its key) has been archived."""
        found = np.zeros(len(keys), dtype=bool)
        for sorted_keys, sorted_pos in ((self.sorted_keys, self.sorted_pos), (self.recent_keys, self.recent_pos)):
            if len(sorted_keys) == 0:
                continue
            at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
            hit = np.nonzero(sorted_keys[at] == keys)[0]
            same_row = (self._rows[sorted_pos[at[hit]]] == canonical_rows[hit]).all(axis=1)
            found[hit[same_row]] = True
        return found

    def add(self, canonical_rows: np.ndarray, keys: np.ndarray, scores: np.ndarray, costs: np.ndarray) -> None:
        start, end = self.size, self.size + len(keys)
        if end > len(self._scores):
            capacity = max(end, 2 * len(self._scores))
            for name in ("_rows", "_scores", "_costs"):
                old = getattr(self, name)
                grown = np.empty((capacity, *old.shape[1:]), dtype=old.dtype)
                grown[:start] = old[:start]
                setattr(self, name, grown)
        self._rows[start:end] = canonical_rows
        self._scores[start:end] = scores
        self._costs[start:end] = costs
        self.size = end
        order = np.argsort(keys)
        at = np.searchsorted(self.recent_keys, keys[order])
        self.recent_keys = np.insert(self.recent_keys, at, keys[order])
        self.recent_pos = np.insert(self.recent_pos, at, start + order)
        if len(self.recent_keys) > max(1024, len(self.sorted_keys) // 8):
            at = np.searchsorted(self.sorted_keys, self.recent_keys)
            self.sorted_keys = np.insert(self.sorted_keys, at, self.recent_keys)
            self.sorted_pos = np.insert(self.sorted_pos, at, self.recent_pos)
            self.recent_keys, self.recent_pos = self.recent_keys[:0], self.recent_pos[:0]

    def state(self) -> dict[str, Any]:
        return {"rows": self.rows.tolist(), "scores": self.scores.tolist(), "costs": self.costs.tolist()}

    def load(self, state: Mapping[str, Any]) -> None:
        self.clear()
        rows = np.asarray(state["rows"], dtype=np.int64).reshape(-1, self.layout.n_labels)
        if len(rows):
            self.add(
                rows,
                self.layout.keys(rows),
                np.asarray(state["scores"], dtype=np.float64),
                np.asarray(state["costs"], dtype=np.float64).reshape(len(rows), -1),
            )


class _AskTellSearch:
    """Shared machinery: configuration checks, the archive, pending candidates, ask/tell, state."""

    def __init__(
        self,
        *,
        space: ArchSpace,
        costs: Mapping[str, ArrayFn],
        population_size: int,
        generations: int,
        mutation_ratio: float,
        mutation_prob: float,
        resolution_mutation_prob: float,
        max_evaluations: int | None,
        seed: int | None,
    ) -> None:
        if not isinstance(space, ArchSpace):
            raise InvalidInputError(f"space must be an ArchSpace (e.g. OFAMobileNetV3Space(...).arch_space), got {space!r}")
        if not isinstance(costs, Mapping):
            raise InvalidInputError(f"costs must be a dict {{name: callable}}, got {type(costs).__name__}")
        for name, fn in costs.items():
            if not isinstance(name, str) or not callable(fn):
                raise InvalidInputError(f"costs must map names to callables on index arrays; got {name!r}: {fn!r}")
        if int(population_size) != population_size or population_size < 2:
            raise InvalidInputError(f"population_size must be an integer >= 2, got {population_size}")
        if int(generations) != generations or generations < 0:
            raise InvalidInputError(f"generations must be an integer >= 0, got {generations}")
        if max_evaluations is not None and (int(max_evaluations) != max_evaluations or max_evaluations < 1):
            raise InvalidInputError(f"max_evaluations must be a positive integer or None, got {max_evaluations}")
        self.space = space
        self.costs: dict[str, ArrayFn] = dict(costs)
        self.cost_names = tuple(self.costs)
        self.population_size = int(population_size)
        self.generations = int(generations)
        self.mutation_ratio = _check_probability("mutation_ratio", mutation_ratio)
        self.mutation_prob = _check_probability("mutation_prob", mutation_prob)
        self.resolution_mutation_prob = _check_probability("resolution_mutation_prob", resolution_mutation_prob)
        self.max_evaluations = None if max_evaluations is None else int(max_evaluations)
        self.seed = seed
        self._layout = _Layout(space)
        self._rng = np.random.default_rng(seed)
        self._archive = _Archive(self._layout, len(self.costs))
        self._generation = -1  # 0 is the initial population
        self._generation_open = False
        self._finished = False
        self._clear_pending()

    # ------------------------------------------------------------------ subclass hooks
    def _propose(self) -> tuple[np.ndarray, ...]:
        """Proposals for the next generation (``generation`` already advanced): rows, their costs,
        their group (target), each group's rows in order of preference, their canonical rows and
        keys, and which rows are known to be new (what :meth:`_feasible_proposals` returns)."""
        raise NotImplementedError

    def _feasible_proposals(
        self,
        rows: np.ndarray,
        position: np.ndarray,
        group: np.ndarray,
        budgets: np.ndarray,
        anchors: np.ndarray,
        anchor_costs: np.ndarray,
    ) -> tuple[np.ndarray, ...]:
        """Order each group's proposals feasible first (then by ``position``), repair the rest;
        returns rows, costs, groups, canonical rows, keys and whether each row is known to be new
        (checked against the archive here, so ask() need not check it again).

        Searches propose ``_PROPOSALS_PER_SLOT`` times the population and keep the first
        ``population_size`` new subnets per group: the spare proposals replace duplicates, and a
        proposal that already meets its budgets is preferred to one that needs repair (which, like
        OFA's re-drawing, keeps children distributed as the operators propose them), without any
        loop that redraws until feasible."""
        values = _evaluate_costs(self.costs, rows)
        infeasible: np.ndarray = np.asarray((values > budgets).any(axis=1))
        order = np.lexsort((position, infeasible, group))
        rows, values, group, infeasible = rows[order], values[order], group[order], infeasible[order]
        feasible_at = np.nonzero(~infeasible)[0]
        canonical = np.zeros_like(rows)
        keys = np.zeros(len(rows), dtype=np.uint64)
        canonical[feasible_at] = self._layout.canonical(rows[feasible_at])
        keys[feasible_at] = self._layout.keys(canonical[feasible_at])
        _, first = np.unique(keys[feasible_at], return_index=True)
        first = feasible_at[first]
        new = first[~self._archive.contains(keys[first], canonical[first])]
        known_new = np.zeros(len(rows), dtype=bool)
        known_new[new] = True
        n_groups = int(group.max()) + 1
        # ask() keeps the first population_size new subnets of each group: a group with n feasible
        # new ones reaches at most its first population_size - n infeasible proposals (more only if
        # repairs land on known subnets, hence a margin), so only those are repaired.
        need = np.maximum(self.population_size - np.bincount(group[new], minlength=n_groups), 0)
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
            rows[at], values[at] = _repair(
                self._layout,
                rows[at],
                values[at],
                self.costs,
                budgets[order][at],
                anchors[order][at],
                anchor_costs[order][at],
                self._rng,
            )
            canonical[at] = self._layout.canonical(rows[at])
            keys[at] = self._layout.keys(canonical[at])
        return rows, values, group, canonical, keys, known_new

    def _select(self, rows: np.ndarray, scores: np.ndarray, costs: np.ndarray) -> None:
        """Update the population with this generation's new candidates (raw rows)."""
        raise NotImplementedError

    def _population_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_population_state(self, state: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def _config(self) -> dict[str, Any]:
        return {
            "space": self.space.signature(),
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
        n = self._layout.n_labels
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

    def ask(self) -> np.ndarray:
        """The candidates to score next: an ``(m, L)`` int64 array of subnets never scored before.

        While some of the last batch are untold, returns those again. Returns an empty array when
        the search is done.
        """
        if self._has_pending():
            return self._pending_rows[~self._pending_told].copy()
        while not self._finished:
            self._generation += 1
            rows, costs, group, canonical, keys, known_new = self._propose()
            _, first = np.unique(keys, return_index=True)
            first.sort()  # first-occurrence order: deterministic and unbiased by key order
            unknown = first[~known_new[first]]
            archived = np.zeros(len(rows), dtype=bool)
            archived[unknown] = self._archive.contains(keys[unknown], canonical[unknown])
            new = first[~archived[first]]
            # at most population_size new subnets per group (groups are contiguous)
            counts = np.bincount(group[new], minlength=int(group.max()) + 1)
            rank_in_group = np.arange(len(new)) - np.repeat(np.cumsum(counts) - counts, counts)
            new = new[rank_in_group < self.population_size]
            left = self._budget_left()
            if left is not None:
                new = new[:left]
            self._pending_rows = rows[new]
            self._pending_canonical = canonical[new]
            self._pending_keys = keys[new]
            self._pending_costs = costs[new]
            self._pending_scores = np.full(len(new), np.nan)
            self._pending_told = np.zeros(len(new), dtype=bool)
            self._generation_open = True
            if len(new):
                return self._pending_rows.copy()
            self._complete_generation()  # every child was scored before: nothing to ask
        return np.zeros((0, self._layout.n_labels), dtype=np.int64)

    def tell(self, rows: Any, scores: Any) -> None:
        """Report objective values (higher is better) for ``rows``.

        Rows from :meth:`ask` complete the current generation; other rows (e.g. subnets evaluated
        elsewhere) are archived and offered to the population too. NaN marks a failed evaluation:
        archived, never selected. Rows scored before are ignored.
        """
        rows = self._layout.check(rows, "tell(rows)")
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
        canonical = self._layout.canonical(rows)
        keys = self._layout.keys(canonical)
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
                extra_keys = self._layout.keys(self._layout.canonical(self._extra_rows))
                others = others[~np.isin(keys[others], extra_keys)]
            if len(others):
                self._extra_rows = np.concatenate([self._extra_rows, rows[others]])
                self._extra_scores = np.concatenate([self._extra_scores, scores[others]])
                self._extra_costs = np.concatenate([self._extra_costs, _evaluate_costs(self.costs, rows[others])])

    def _absorb(self) -> None:
        """Archive the told candidates and let the population select among them."""
        rows, scores, costs = self._pending_rows, self._pending_scores, self._pending_costs
        canonical, keys = self._pending_canonical, self._pending_keys
        if len(self._extra_rows):
            extra_canonical = self._layout.canonical(self._extra_rows)
            rows = np.concatenate([rows, self._extra_rows])
            scores = np.concatenate([scores, self._extra_scores])
            costs = np.concatenate([costs, self._extra_costs])
            canonical = np.concatenate([canonical, extra_canonical])
            keys = np.concatenate([keys, self._layout.keys(extra_canonical)])
        if len(rows):
            self._archive.add(canonical, keys, scores, costs)
            self._select(rows, scores, costs)
        self._clear_pending()

    def _complete_generation(self) -> None:
        self._absorb()
        self._generation_open = False
        self._after_generation()
        left = self._budget_left()
        if self._generation >= self.generations or (left is not None and left <= 0):
            self._finished = True

    def _after_generation(self) -> None:
        """Hook run once per completed generation (e.g. to record progress)."""

    def run(self, objective: ArrayFn) -> Any:
        """Ask, score with ``objective``, tell, until done; returns :meth:`result`."""
        while True:
            rows = self.ask()
            if len(rows) == 0:
                break
            self.tell(rows, _evaluate(objective, rows, "objective"))
        return self.result()

    def result(self) -> Any:
        raise NotImplementedError

    # ---------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (JSON-serialisable: lists, numbers, strings)."""
        return {
            "version": _STATE_VERSION,
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
        if state.get("version") != _STATE_VERSION or state.get("kind") != type(self).__name__:
            raise InvalidInputError(
                f"not a {type(self).__name__} state (version {state.get('version')}, kind {state.get('kind')})"
            )
        mine, theirs = self._config(), state["config"]
        differing = sorted(key for key in set(mine) | set(theirs) if mine.get(key) != theirs.get(key))
        if differing:
            raise InvalidInputError(f"state was saved by a search with different settings: {differing}")
        n, k = self._layout.n_labels, len(self.costs)

        def floats(values: Sequence[Any]) -> np.ndarray:
            return np.array([np.nan if v is None else v for v in values], dtype=np.float64)

        self._rng.bit_generator.state = state["rng"]
        self._generation = int(state["generation"])
        self._generation_open = bool(state["generation_open"])
        self._finished = bool(state["finished"])
        self._archive.load(state["archive"])
        pending = state["pending"]
        self._pending_rows = np.asarray(pending["rows"], dtype=np.int64).reshape(-1, n)
        self._pending_canonical = self._layout.canonical(self._pending_rows)
        self._pending_keys = self._layout.keys(self._pending_canonical)
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
        """A feasible subnet per budget row to repair towards (ValueError if a budget is unreachable)."""
        space, names = self.space, self.cost_names
        for t, row in enumerate(budgets):
            for k, name in enumerate(names):
                smallest, at = minima[name]
                if row[k] < smallest:
                    which = f"target {t} " if len(budgets) > 1 else ""
                    raise InvalidInputError(
                        f"{which}budget {_number(row[k])} for {name!r} is infeasible: the smallest "
                        f"achievable {name} is {_number(smallest)} (subnet {space.format(space.from_indices(at))})"
                    )
        # Candidates: the smallest subnet, then each cost's minimiser; the first meeting every budget.
        candidates = np.stack([np.zeros(self._layout.n_labels, dtype=np.int64)] + [at for _, at in minima.values()])
        values = _evaluate_costs(self.costs, candidates)
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


# ------------------------------------------------------------------------- single objective
class EvolutionSearch(_AskTellSearch):
    """OFA's regularised evolution for one or many deployment targets at once (ask/tell).

    Args:
        space: The search space (``OFAMobileNetV3Space(...).arch_space``).
        costs: ``{name: callable}``; each maps an ``(n, L)`` index array to ``(n,)`` costs (e.g.
            ``AnalyticCostModel(space).macs``, a latency table). Costs must ignore the genes of
            inactive blocks. All costs of every candidate are reported; only budgeted ones constrain.
        targets: One budget dict ``{cost name: maximum}`` or a list of them (one per deployment
            target, e.g. ten latency budgets). A cost a target does not name is unconstrained.
        population_size, generations, parent_ratio, mutation_ratio, mutation_prob,
            resolution_mutation_prob: OFA's evolution settings (defaults = the paper's: 100, 500,
            0.25, 0.5, 0.1, 0.5). ``mutation_prob`` is per block (kernel and expand together) and per
            stage depth. A generation is one batch for the predictor and the engine, so a larger
            population with fewer generations scores the same number of subnets faster (population
            1000 x 50 generations: ~3.5x the subnets per second of 100 x 500 with OFA's MLP).
        max_evaluations: Stop once this many distinct subnets have been scored (the query budget).
        seed: Seed of the search's own random generator (deterministic for a seed).

    Raises:
        ValueError: for a budget below the smallest achievable cost (the message states it), an
            unknown cost name, or settings out of range.
    """

    def __init__(
        self,
        *,
        space: ArchSpace,
        costs: Mapping[str, ArrayFn],
        targets: Mapping[str, float] | Sequence[Mapping[str, float]],
        population_size: int = 100,
        generations: int = 500,
        parent_ratio: float = 0.25,
        mutation_ratio: float = 0.5,
        mutation_prob: float = 0.1,
        resolution_mutation_prob: float = 0.5,
        max_evaluations: int | None = None,
        seed: int | None = 0,
    ) -> None:
        super().__init__(
            space=space,
            costs=costs,
            population_size=population_size,
            generations=generations,
            mutation_ratio=mutation_ratio,
            mutation_prob=mutation_prob,
            resolution_mutation_prob=resolution_mutation_prob,
            max_evaluations=max_evaluations,
            seed=seed,
        )
        self.parent_ratio = _check_probability("parent_ratio", parent_ratio, open_low=True)
        self.parents_size = max(1, int(round(self.parent_ratio * self.population_size)))
        self.n_mutations = int(round(self.mutation_ratio * self.population_size))
        target_list = [targets] if isinstance(targets, Mapping) else list(targets)
        if not target_list:
            raise InvalidInputError("targets must hold at least one budget dict")
        self.budgets = np.stack([self._parse_budgets(t, f"targets[{i}]") for i, t in enumerate(target_list)])
        minima = minimum_costs(space, self.costs)
        self._anchors = self._anchors_for(self.budgets, minima)
        self._anchor_costs = _evaluate_costs(self.costs, self._anchors)
        n_targets, n_labels = len(self.budgets), self._layout.n_labels
        self._parents: np.ndarray = np.zeros((n_targets, self.parents_size, n_labels), dtype=np.int64)
        self._parent_scores: np.ndarray = np.full((n_targets, self.parents_size), -np.inf)
        self._parent_costs: np.ndarray = np.zeros((n_targets, self.parents_size, len(self.costs)))
        self._history: list[np.ndarray] = []
        self._per_row_cache: dict[bool, tuple[np.ndarray, ...]] = {}

    @property
    def n_targets(self) -> int:
        return len(self.budgets)

    def _config(self) -> dict[str, Any]:
        return {**super()._config(), "parent_ratio": self.parent_ratio, "budgets": self.budgets.tolist()}

    def _propose(self) -> tuple[np.ndarray, ...]:
        rng, layout, n_targets = self._rng, self._layout, self.n_targets
        n_mut = _PROPOSALS_PER_SLOT * self.n_mutations
        n_cross = _PROPOSALS_PER_SLOT * self.population_size - n_mut
        if self._generation == 0 and not np.isfinite(self._parent_scores).any():
            # One random population shared by every target, repaired to each target's budgets.
            # (Candidates told before the first ask() -- a warm start, as the Optuna sampler
            # replays its trials -- are parents instead.)
            rows = np.tile(self.space.random_indices(n_mut + n_cross, rng), (n_targets, 1))
            per_row = self._per_row(initial=True)
        else:
            valid = np.isfinite(self._parent_scores).sum(axis=1)  # parents are sorted best first
            target_of = np.arange(n_targets)[:, None]

            def pick(count: int) -> np.ndarray:
                chosen = (rng.random((n_targets, count)) * valid[:, None]).astype(np.int64)
                return self._parents[target_of, chosen]  # (targets, count, L)

            mutated = _mutate(
                layout,
                pick(n_mut).reshape(-1, layout.n_labels),
                rng,
                self.mutation_prob,
                self.resolution_mutation_prob,
            ).reshape(n_targets, n_mut, -1)
            crossed = _crossover(pick(n_cross), pick(n_cross), rng)
            rows = np.concatenate([mutated, crossed], axis=1).reshape(-1, layout.n_labels)
            per_row = self._per_row(initial=False)
        return self._feasible_proposals(rows, *per_row)

    def _per_row(self, *, initial: bool) -> tuple[np.ndarray, ...]:
        """Position, group (target), budgets, anchor and anchor costs of every proposal row: the
        same every generation, so computed once."""
        cached = self._per_row_cache.get(initial)
        if cached is None:
            n_mut = _PROPOSALS_PER_SLOT * self.n_mutations
            n_cross = _PROPOSALS_PER_SLOT * self.population_size - n_mut
            if initial:
                position = np.arange(n_mut + n_cross) / (n_mut + n_cross)
            else:  # interleave mutation and crossover children in the mutation ratio
                position = np.concatenate([np.arange(n_mut) / max(n_mut, 1), np.arange(n_cross) / max(n_cross, 1)])
            group = np.repeat(np.arange(self.n_targets), len(position))
            cached = (
                np.tile(position, self.n_targets),
                group,
                self.budgets[group],
                self._anchors[group],
                self._anchor_costs[group],
            )
            self._per_row_cache[initial] = cached
        return cached

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
        results = []
        for t in range(self.n_targets):
            row = self._layout.canonical(self._parents[t, :1])[0]
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


def specialize(
    space: ArchSpace,
    objective: ArrayFn,
    costs: Mapping[str, ArrayFn],
    targets: Mapping[str, float] | Sequence[Mapping[str, float]],
    **settings: Any,
) -> SearchResult:
    """One call: the most accurate subnet (by ``objective``) for every target.

    ``settings`` are :class:`EvolutionSearch`'s keyword arguments (``population_size``,
    ``generations``, ``seed``, ...). Example::

        cost_model = AnalyticCostModel(space)
        result = specialize(space, predictor, {"macs": cost_model.macs},
                            [{"macs": m * 1e6} for m in (150, 200, 250, 300)])
        result[0].arch, result[0].score, result[0].costs["macs"]
    """
    return EvolutionSearch(space=space, costs=costs, targets=targets, **settings).run(objective)


# -------------------------------------------------------------------------- multi-objective
class ParetoSearch(_AskTellSearch):
    """Multi-objective evolution (NSGA-II selection): the objective (maximised) against every cost.

    Every scored subnet goes to an archive whose non-dominated set is the result, so the front
    improves monotonically. Optional ``budgets`` restrict the search region (met by repair, as in
    :class:`EvolutionSearch`). Other arguments as in :class:`EvolutionSearch`; parents are chosen by
    binary tournament on (front rank, crowding distance).
    """

    def __init__(
        self,
        *,
        space: ArchSpace,
        costs: Mapping[str, ArrayFn],
        budgets: Mapping[str, float] | None = None,
        population_size: int = 100,
        generations: int = 500,
        mutation_ratio: float = 0.5,
        mutation_prob: float = 0.1,
        resolution_mutation_prob: float = 0.5,
        max_evaluations: int | None = None,
        seed: int | None = 0,
    ) -> None:
        super().__init__(
            space=space,
            costs=costs,
            population_size=population_size,
            generations=generations,
            mutation_ratio=mutation_ratio,
            mutation_prob=mutation_prob,
            resolution_mutation_prob=resolution_mutation_prob,
            max_evaluations=max_evaluations,
            seed=seed,
        )
        if not self.costs:
            raise InvalidInputError("ParetoSearch needs at least one cost to trade the objective against")
        self.budgets = self._parse_budgets(budgets or {}, "budgets")
        self._anchor = self._anchors_for(self.budgets[None], minimum_costs(space, self.costs))[0]
        self._anchor_costs = _evaluate_costs(self.costs, self._anchor[None])[0]
        self._population = np.zeros((0, self._layout.n_labels), dtype=np.int64)
        self._objectives = np.zeros((0, 1 + len(self.costs)))
        self._rank = np.zeros(0, dtype=np.int64)
        self._crowding = np.zeros(0)

    def _config(self) -> dict[str, Any]:
        return {**super()._config(), "budgets": self.budgets.tolist()}

    def _propose(self) -> tuple[np.ndarray, ...]:
        rng, layout = self._rng, self._layout
        n_mut = _PROPOSALS_PER_SLOT * self.n_mutations
        n_cross = _PROPOSALS_PER_SLOT * self.population_size - n_mut
        if self._generation == 0 or len(self._population) == 0:
            rows = self.space.random_indices(n_mut + n_cross, rng)
            position = np.arange(len(rows)) / len(rows)
        else:

            def tournament(count: int) -> np.ndarray:
                a, b = rng.integers(0, len(self._population), size=(2, count))
                a_wins = (self._rank[a] < self._rank[b]) | (
                    (self._rank[a] == self._rank[b]) & (self._crowding[a] >= self._crowding[b])
                )
                return self._population[np.where(a_wins, a, b)]

            mutated = _mutate(layout, tournament(n_mut), rng, self.mutation_prob, self.resolution_mutation_prob)
            rows = np.concatenate([mutated, _crossover(tournament(n_cross), tournament(n_cross), rng)])
            position = np.concatenate([np.arange(n_mut) / n_mut, np.arange(n_cross) / n_cross])
        n = len(rows)
        return self._feasible_proposals(
            rows,
            position,
            np.zeros(n, dtype=np.int64),
            np.tile(self.budgets, (n, 1)),
            np.tile(self._anchor, (n, 1)),
            np.tile(self._anchor_costs, (n, 1)),
        )

    @property
    def n_mutations(self) -> int:
        return int(round(self.mutation_ratio * self.population_size))

    def _select(self, rows: np.ndarray, scores: np.ndarray, costs: np.ndarray) -> None:
        ok = ~np.isnan(scores)
        rows, objectives = rows[ok], np.column_stack([-scores[ok], costs[ok]])
        pool_rows = np.concatenate([self._population, rows])
        pool_objectives = np.concatenate([self._objectives, objectives])
        rank = non_dominated_sort(pool_objectives)
        crowding = np.zeros(len(pool_rows))
        for front in range(int(rank.max()) + 1 if len(rank) else 0):
            members = np.nonzero(rank == front)[0]
            crowding[members] = crowding_distance(pool_objectives[members])
        order = np.lexsort((-crowding, rank))[: self.population_size]
        self._population, self._objectives = pool_rows[order], pool_objectives[order]
        self._rank, self._crowding = rank[order], crowding[order]

    def _population_state(self) -> dict[str, Any]:
        return {"rows": self._population.tolist(), "objectives": self._objectives.tolist()}

    def _load_population_state(self, state: Mapping[str, Any]) -> None:
        self._population = np.asarray(state["rows"], dtype=np.int64).reshape(-1, self._layout.n_labels)
        self._objectives = np.asarray(state["objectives"], dtype=np.float64).reshape(-1, 1 + len(self.costs))
        self._rank = non_dominated_sort(self._objectives)
        self._crowding = np.zeros(len(self._rank))
        for front in range(int(self._rank.max()) + 1 if len(self._rank) else 0):
            members = np.nonzero(self._rank == front)[0]
            self._crowding[members] = crowding_distance(self._objectives[members])

    def result(self) -> ParetoFront:
        """The non-dominated set of every subnet scored so far, sorted by the first cost."""
        archive = self._archive
        ok = ~np.isnan(archive.scores)
        rows, scores, costs = archive.rows[ok], archive.scores[ok], archive.costs[ok]
        mask = pareto_mask(np.column_stack([-scores, costs]))
        rows, scores, costs = rows[mask], scores[mask], costs[mask]
        order = np.lexsort((-scores, costs[:, 0]))
        return ParetoFront(
            space=self.space,
            indices=rows[order],
            scores=scores[order],
            costs={name: costs[order, k] for k, name in enumerate(self.cost_names)},
            evaluations=self.evaluations,
        )
