"""What every arch description shares (:class:`ChoiceSpace`: labels with choice tuples, samples, index
rows and their checks) and the pieces of arch strings and one-hot features both spellings use.

The MobileNet family's description is :class:`ofa_nni.arch.ArchSpace`, OFA-ResNet's
:class:`ofa_nni.resnet_arch.ResNetArchSpace`; nothing here needs torch.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ofa_nni.errors import InvalidInputError

__all__ = ["ChoiceSpace", "Sample", "DEFAULT_RESOLUTIONS"]

Sample = dict[str, Any]
"""A sample: ``{label: value}``, as NNI defines it."""

DEFAULT_RESOLUTIONS: tuple[int, ...] = tuple(range(128, 225, 4))
"""OFA's resolutions: every multiple of 4 in [128, 224] (25 sizes)."""


def _as_tuple(name: str, values: Iterable[Any]) -> tuple[Any, ...]:
    try:
        result = tuple(values)
    except TypeError:
        raise InvalidInputError(f"{name} must be a sequence, got {values!r}") from None
    if not result:
        raise InvalidInputError(f"{name} must not be empty")
    return result


def _is_finite_number(value: Any) -> bool:
    """A real number (not a bool), finite."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    if isinstance(value, (int, np.integer)):
        return True  # whole numbers are finite; np.isfinite refuses Python ints beyond int64
    return bool(np.isfinite(value))


def _format_number(value: float) -> str:
    return f"{value:g}"


def _one_hot_rows(columns: np.ndarray, dim: int) -> np.ndarray:
    """``(n, dim)`` float32 rows with ones at ``columns[i]`` of row ``i`` (one flat scatter); a column
    equal to ``dim`` is a spare that is dropped (how inactive blocks write nothing)."""
    n = len(columns)
    flat = columns + np.arange(n)[:, None] * (dim + 1)
    features = np.zeros((n, dim + 1), dtype=np.float32)
    features.reshape(-1)[flat.reshape(-1)] = 1.0
    return np.ascontiguousarray(features[:, :dim])


def _join_stage(tokens: Sequence[str], depth: int) -> str:
    """A stage's block tokens in an arch string: the active ones, then ``|`` and the inactive ones."""
    active, inactive = "-".join(tokens[:depth]), "-".join(tokens[depth:])
    return active + ("|" + inactive if inactive else "")


def _split_stage(arch: str, stage: int, group: str, num_blocks: int) -> tuple[list[str], int]:
    """The block tokens of a stage's group in an arch string and its depth (the tokens before ``|``)."""
    parts = group.split("|")
    if len(parts) > 2:
        raise InvalidInputError(f"arch string {arch!r}: stage {stage + 1} has more than one '|': {group!r}")
    if len(parts) == 2 and not parts[1]:
        raise InvalidInputError(f"arch string {arch!r}: stage {stage + 1} has a '|' with no blocks after it")
    active = parts[0].split("-") if parts[0] else []
    tokens = active + (parts[1].split("-") if len(parts) == 2 else [])
    if len(tokens) != num_blocks:
        raise InvalidInputError(
            f"arch string {arch!r}: stage {stage + 1} must list {num_blocks} blocks "
            f"(active, then '|', then inactive), got {len(tokens)} in {group!r}"
        )
    return tokens, len(active)


def _split_groups(arch: Any, expected: int, what: str, example: str) -> list[str]:
    """An arch string's ``_``-separated groups, the first ``r<resolution>`` (checked)."""
    if not isinstance(arch, str):
        raise InvalidInputError(f"an arch string must be a str, got {type(arch).__name__}")
    groups = arch.strip().split("_")
    if len(groups) != expected:
        raise InvalidInputError(
            f"arch string {arch!r}: expected {expected} '_'-separated groups ({what}), got {len(groups)}; "
            f"example {example}"
        )
    if not re.fullmatch(r"r\d+", groups[0]):
        raise InvalidInputError(f"arch string {arch!r}: first group must be 'r<resolution>', got {groups[0]!r}")
    return groups


class ChoiceSpace:
    """What every arch description shares: labels with choice tuples, samples, index rows and their
    checks. A subclass defines :attr:`labels`, :meth:`_choices_by_label`, :meth:`active_gene_mask`
    and :attr:`mutation_units`, and keeps ``resolution`` as its last label."""

    RESOLUTION_LABEL = "resolution"

    def _cached(self, name: str, build: Callable[[], Any]) -> Any:
        """``build()``, computed once per (frozen) space: the search reads these per batch."""
        value = self.__dict__.get(name)
        if value is None:
            value = build()
            object.__setattr__(self, name, value)
        return value

    @property
    def labels(self) -> tuple[str, ...]:
        raise NotImplementedError

    def _choices_by_label(self) -> dict[str, tuple[Any, ...]]:
        raise NotImplementedError

    def _label_hint(self) -> str:
        """How this space's labels look (for the unknown-label error)."""
        raise NotImplementedError

    def active_gene_mask(self, indices: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @property
    def mutation_units(self) -> np.ndarray:
        """Per label, the mutation draw it follows (genes redrawn together share one); the
        resolution's unit is the last."""
        raise NotImplementedError

    def canonical_indices(self, indices: np.ndarray) -> np.ndarray:
        """Index rows with the genes that do not matter (:meth:`active_gene_mask`) set to 0: two rows
        are the same subnet iff their canonical rows are equal. Rows must be checked."""
        return np.where(self.active_gene_mask(indices), indices, 0).astype(np.int64)

    def choices(self, label: str) -> tuple[Any, ...]:
        """The allowed values of ``label``."""
        return self._choices_by_label()[label]

    @property
    def cardinalities(self) -> np.ndarray:
        """Number of choices per label, in :attr:`labels` order."""
        cached = self.__dict__.get("_cardinalities_cache")
        if cached is None:  # computed once: every index check reads it
            cached = np.array([len(self.choices(label)) for label in self.labels], dtype=np.int64)
            cached.flags.writeable = False
            object.__setattr__(self, "_cardinalities_cache", cached)
        return cached

    # -------------------------------------------------------------- samples
    def validate(self, sample: Mapping[str, Any]) -> Sample:
        """Check ``sample`` and return a normalised copy (values as the choices spell them).

        Raises:
            ValueError: naming the label and the allowed values, for a missing or unknown label, a
                value outside the choices or of the wrong type.
        """
        if not isinstance(sample, Mapping):
            raise InvalidInputError(f"a sample must be a dict {{label: value}}, got {type(sample).__name__}")
        choices = self._choices_by_label()
        unknown = [label for label in sample if label not in choices]
        if unknown:
            raise InvalidInputError(f"unknown label(s) {unknown}; allowed labels look like {self._label_hint()}")
        missing = [label for label in choices if label not in sample]
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise InvalidInputError(f"sample is missing {len(missing)} label(s): {shown}")
        result: Sample = {}
        for label, allowed in choices.items():
            result[label] = self._normalize_value(label, sample[label], allowed)
        return result

    @staticmethod
    def _normalize_value(label: str, value: Any, allowed: tuple[Any, ...]) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise InvalidInputError(
                f"{label}: expected a number, one of {list(allowed)}; got {value!r} ({type(value).__name__})"
            )
        for choice in allowed:
            if value == choice:
                return choice
        raise InvalidInputError(f"{label}: {value!r} is not allowed; allowed values: {list(allowed)}")

    def min_sample(self) -> Sample:
        """The smallest subnet: smallest choice of every label."""
        return {label: self.choices(label)[0] for label in self.labels}

    def max_sample(self) -> Sample:
        """The largest subnet: largest choice of every label."""
        return {label: self.choices(label)[-1] for label in self.labels}

    def random_sample(self, rng: np.random.Generator | int | None = None) -> Sample:
        """A uniformly random sample (every label independently uniform over its choices)."""
        return self.from_indices(self.random_indices(1, rng)[0])

    def random_indices(self, n: int, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """``n`` uniformly random samples as an integer array of shape ``(n, len(labels))``."""
        rng = np.random.default_rng(rng)
        return rng.integers(0, self.cardinalities, size=(n, len(self.labels)))

    # -------------------------------------------------------------- encodings
    def to_indices(self, sample: Mapping[str, Any]) -> np.ndarray:
        """Integer encoding: the index of each label's value among its choices (:attr:`labels` order)."""
        sample = self.validate(sample)
        return np.array([self.choices(label).index(sample[label]) for label in self.labels], dtype=np.int64)

    def from_indices(self, indices: Sequence[int] | np.ndarray) -> Sample:
        """Inverse of :meth:`to_indices` (the row is checked by :meth:`check_indices`)."""
        row = np.asarray(indices)
        if row.shape != (len(self.labels),):
            raise InvalidInputError(f"expected {len(self.labels)} indices, got shape {row.shape}")
        row = self.check_indices(row[None], "indices")[0]
        return {label: self.choices(label)[index] for label, index in zip(self.labels, row.tolist(), strict=True)}

    def check_indices(self, rows: Any, what: str = "index array") -> np.ndarray:
        """``rows`` as a checked ``(n, len(labels))`` int64 array of choice indices (:meth:`to_indices`
        order): the one check of index rows, used by the costs, the predictors and the search.

        Raises:
            InvalidInputError: for a wrong shape, a non-integer array, or an index outside a label's
                choices (naming the row, the label and the allowed range).
        """
        array = np.asarray(rows)
        if array.ndim != 2 or array.shape[1] != len(self.labels):
            raise InvalidInputError(
                f"{what} must have shape (n, {len(self.labels)}) (ArchSpace.to_indices order), got shape {array.shape}"
            )
        if array.size and array.dtype.kind not in "iu":
            raise InvalidInputError(f"{what} must hold integer choice indices, got dtype {array.dtype}")
        array = array.astype(np.int64, copy=False)
        bad = (array < 0) | (array >= self.cardinalities)
        if bad.any():
            row, column = (int(i) for i in np.argwhere(bad)[0])
            label = self.labels[column]
            raise InvalidInputError(
                f"{what}: row {row}: index {array[row, column]} of {label!r} is out of range; allowed "
                f"0..{len(self.choices(label)) - 1} (choices {list(self.choices(label))})"
            )
        return array

    def canonical_sample(self, sample: Mapping[str, Any]) -> Sample:
        """``sample`` with the genes that do not matter (e.g. of inactive blocks) at their smallest
        choice (the same subnet; equal canonical samples <=> the same subnet)."""
        return self.from_indices(self.canonical_indices(self.to_indices(sample)[None])[0])
