"""OFA's genetic operators on index arrays, batched over a whole population: mutation, uniform
crossover, and the repair that makes a child meet its budgets (Cai et al., ICLR 2020, Sec. 3.3)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ofa_nni.arch import ArchSpace
from ofa_nni.search.evaluation import ArrayFn, evaluate_costs

__all__ = ["mutate", "crossover", "repair", "REPAIR_TRIES"]

REPAIR_TRIES = 4
"""Repairs tried at once per infeasible child, at growing strength (the gentlest feasible is kept)."""


def mutate(
    arch_space: ArchSpace,
    parents: np.ndarray,
    rng: np.random.Generator,
    mutation_prob: float,
    resolution_prob: float,
) -> np.ndarray:
    """OFA's mutation, batched: each block's (kernel, expand) pair and each depth is redrawn with
    ``mutation_prob``, the resolution with ``resolution_prob``. A child whose *active* part came out
    equal to its parent (e.g. only inactive blocks were hit) gets one active gene changed, so no
    query is spent on a copy of the parent."""
    n, card = len(parents), arch_space.cardinalities
    units = arch_space.mutation_units  # genes redrawn together share a unit; the resolution's is the last
    threshold = np.full(int(units.max()) + 1, mutation_prob, dtype=np.float32)
    threshold[-1] = resolution_prob
    hit = (rng.random((n, len(threshold)), dtype=np.float32) < threshold)[:, units]
    row, col = np.nonzero(hit)
    children = parents.copy()
    children[row, col] = (rng.random(len(row)) * card[col]).astype(np.int64)
    # A child equals its parent (as a subnet) iff no active gene changed; a changed depth is itself
    # an active change, so the parent's active mask decides.
    active = arch_space.active_gene_mask(parents)
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


def crossover(parents_a: np.ndarray, parents_b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Uniform crossover (OFA): each gene from either parent with probability 1/2."""
    return np.where(rng.random(parents_a.shape, dtype=np.float32) < 0.5, parents_a, parents_b)


def repair(
    arch_space: ArchSpace,
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
    sqrt(f) of its distance. Every round tries ``REPAIR_TRIES`` repairs per infeasible row at growing
    shares (f, 2f, 4f, ...) in one batched cost call and keeps the gentlest feasible one; a row with
    none takes the boldest and goes to the next round, whose shares are larger still. Rounds are
    bounded: each one moves at least one gene one step, and the anchor itself is feasible.

    Args:
        values: The rows' costs ``(n, K)``.

    Returns the repaired rows and their costs.
    """
    rows, values = rows.copy(), values.copy()
    bad = np.nonzero((values > budgets).any(axis=1))[0]
    tries = REPAIR_TRIES
    growth = 2.0 ** np.arange(tries)
    for attempt in range(int((arch_space.cardinalities - 1).sum()) + 1):
        if len(bad) == 0:
            break
        n = len(bad)
        # What does not depend on the try is computed once per row, not once per try.
        sub, anchor = rows[bad], anchors[bad]
        diff = sub - anchor
        movable = (diff != 0) & arch_space.active_gene_mask(sub)
        has_movable = movable.any(axis=1)
        span = np.maximum(values[bad] - anchor_costs[bad], 1e-12)
        over = np.clip((values[bad] - budgets[bad]) / span, 0.0, 1.0).max(axis=1)
        scale = growth * float(2 * tries) ** min(attempt, 10)
        share = np.sqrt(np.minimum(scale[:, None] * over[None, :], 1.0)).reshape(-1)  # try-major: row t*n + i
        n_labels = sub.shape[1]
        draw = rng.random((tries, n, n_labels), dtype=np.float32)  # (tries, rows, genes): one draw per try
        np.copyto(draw, np.float32(2.0), where=~movable)
        move = (draw < share.reshape(tries, n, 1)).reshape(tries * n, n_labels)  # each differing gene w.p. sqrt(f)...
        move[np.arange(tries * n), draw.argmin(axis=2).reshape(-1)] |= np.tile(has_movable, tries)  # ...at least one
        # Only the moved genes are computed (flat positions: cheaper than 2-d fancy indexing).
        moved = np.flatnonzero(move)
        in_diff = moved % (n * n_labels)  # the same gene of the untiled row
        distance = np.abs(diff.reshape(-1)[in_diff])
        step = np.minimum(np.ceil(share[moved // n_labels] * distance), distance).astype(np.int64)
        tried = np.tile(sub, (tries, 1))
        tried.reshape(-1)[moved] -= np.sign(diff.reshape(-1)[in_diff]) * step
        if not has_movable.all():  # a row that differs only in genes the costs should ignore: take the anchor
            stuck = np.tile(~has_movable, tries)
            tried[stuck] = np.tile(anchor, (tries, 1))[stuck]
        tried_values = evaluate_costs(costs, tried)
        ok = (tried_values.reshape(tries, n, -1) <= budgets[bad][None]).all(axis=2)
        feasible = ok.any(axis=0)
        chosen = np.where(feasible, ok.argmax(axis=0), tries - 1) * n + np.arange(n)
        rows[bad], values[bad] = tried[chosen], tried_values[chosen]
        bad = bad[~feasible]
    else:  # unreachable for costs that ignore inactive genes; never leave a row infeasible
        rows[bad] = anchors[bad]
        values[bad] = anchor_costs[bad]
    return rows, values
