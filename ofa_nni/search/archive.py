"""The archive of every subnet a search has scored, with fixed-size keys for fast lookup, so that no
query is ever spent twice on the same subnet."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ofa_nni.arch import ArchSpace

__all__ = ["Archive", "RowKeys"]


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser (a bijection of uint64) on an array; multiplications wrap."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


class RowKeys:
    """One uint64 key per canonical index row of ``arch_space`` (:meth:`ArchSpace.canonical_indices`).

    Each row's mixed-radix code is computed exactly in float64 words (< 2**53 each, one small matrix
    product) and folded into one uint64 by splitmix64. Exact when one word suffices (small spaces);
    otherwise a 64-bit hash, and every archive hit is confirmed on the rows.
    """

    def __init__(self, arch_space: ArchSpace) -> None:
        cardinalities = arch_space.cardinalities.tolist()
        word_of_label = np.zeros(len(cardinalities), dtype=np.int64)
        multiplier = np.ones(len(cardinalities))
        word, product = 0, 1
        for col, card in enumerate(cardinalities):
            if product * card >= 2**53:
                word, product = word + 1, 1
            word_of_label[col], multiplier[col] = word, product
            product *= card
        self.matrix = np.zeros((len(cardinalities), word + 1))
        self.matrix[np.arange(len(cardinalities)), word_of_label] = multiplier

    def __call__(self, canonical_rows: np.ndarray) -> np.ndarray:
        words = (canonical_rows.astype(np.float64) @ self.matrix).astype(np.uint64)
        key = words[:, 0]
        for w in range(1, words.shape[1]):
            key = _splitmix64(key) + words[:, w]
        return key


class Archive:
    """Every subnet scored so far: canonical rows, scores and costs, with sorted keys for lookup.

    Storage grows by doubling; keys go to a small sorted buffer that is merged into the main sorted
    array when it reaches an eighth of it, so archiving a generation costs O(generation) amortised,
    not O(archive)."""

    def __init__(self, arch_space: ArchSpace, keys: RowKeys, n_costs: int) -> None:
        self.arch_space = arch_space
        self.keys = keys
        self.n_costs = n_costs
        self.clear()

    def clear(self) -> None:
        self.size = 0
        # Rows in the smallest integer type that holds every choice index: the archive is copied
        # when it grows, and int64 rows made that copy a quarter of a large search's own time.
        row_type = np.int8 if self.arch_space.cardinalities.max() <= 127 else np.int64
        self._rows = np.zeros((1024, len(self.arch_space.labels)), dtype=row_type)
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
        rows = np.asarray(state["rows"], dtype=np.int64).reshape(-1, len(self.arch_space.labels))
        if len(rows):
            self.add(
                rows,
                self.keys(rows),
                np.asarray(state["scores"], dtype=np.float64),
                np.asarray(state["costs"], dtype=np.float64).reshape(len(rows), -1),
            )
