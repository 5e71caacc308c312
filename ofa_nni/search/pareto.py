"""Pareto ranking, vectorised with numpy (all objectives minimised): the non-dominated mask,
NSGA-II's non-dominated sorting and crowding distance, and :func:`rank_and_crowding`, the one
ranking that :class:`~ofa_nni.search.ParetoSearch` and the Optuna sampler select by."""

from __future__ import annotations

import numpy as np

__all__ = ["pareto_mask", "non_dominated_sort", "crowding_distance", "rank_and_crowding"]


def _dominance(objectives: np.ndarray) -> np.ndarray:
    """``D[i, j]``: row i dominates row j."""
    le: np.ndarray = np.asarray((objectives[:, None, :] <= objectives[None, :, :]).all(axis=2))
    lt: np.ndarray = np.asarray((objectives[:, None, :] < objectives[None, :, :]).any(axis=2))
    return le & lt


def _dominates_any(front: np.ndarray, points: np.ndarray) -> np.ndarray:
    """For each point: is it dominated by some row of ``front``?"""
    if len(front) == 0:
        return np.zeros(len(points), dtype=bool)
    le: np.ndarray = np.asarray((front[:, None, :] <= points[None, :, :]).all(axis=2))
    lt: np.ndarray = np.asarray((front[:, None, :] < points[None, :, :]).any(axis=2))
    dominated: np.ndarray = (le & lt).any(axis=0)
    return dominated


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


def rank_and_crowding(objectives: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NSGA-II's selection keys of every row of ``objectives`` ``(n, m)`` (all minimised): its front
    number (:func:`non_dominated_sort`) and its crowding distance within that front
    (:func:`crowding_distance`). Better = lower rank, then larger crowding distance."""
    objectives = np.asarray(objectives, dtype=np.float64)
    rank = non_dominated_sort(objectives)
    crowding = np.zeros(len(objectives))
    for front in range(int(rank.max()) + 1 if len(rank) else 0):
        members = np.nonzero(rank == front)[0]
        crowding[members] = crowding_distance(objectives[members])
    return rank, crowding
