"""The OFA-ResNet50 search space as plain data (mit-han-lab's ``OFAResNets``, the ResNet50-D family).

Like :class:`ofa_nni.arch.ArchSpace` (same sample, index-row and check interface, see
:class:`ofa_nni.arch.ChoiceSpace`), nothing here needs torch.

Labels (stable, documented; stages and blocks count from 1)::

    resolution                input resolution, e.g. 224
    stem.depth                convolutions of the input stem: 3, or 2 with its residual conv skipped
    stem.mid_width            width multiplier of the stem's first two convolutions
    stem.width                width multiplier of the stem's output
    stage{s}.depth            active bottleneck blocks of stage s (its base depth plus 0, 1 or 2)
    stage{s}.width            width multiplier of stage s's output channels
    stage{s}.block{b}.expand  bottleneck ratio of block b of stage s (middle = expand * out width)

Blocks beyond a stage's depth are inactive: their expand values are kept in the sample but do not
change the subnet, its costs or its features.

Arch strings::

    r224_d3w0.65w1_w1:e0.25-e0.35|e0.2-e0.2_w0.8:e0.2-e0.2-e0.2-e0.2_...

``r224`` is the resolution; the stem group is ``d<stem depth>w<mid width>w<width>``; then one group
per stage, ``w<width>:`` and one ``e<expand>`` token per block, ``|`` marking the stage's depth as in
MobileNetV3's strings.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ofa_nni._utils import make_divisible
from ofa_nni.arch_base import (
    DEFAULT_RESOLUTIONS,
    ChoiceSpace,
    Sample,
    _as_tuple,
    _format_number,
    _is_finite_number,
    _join_stage,
    _one_hot_rows,
    _split_groups,
    _split_stage,
)
from ofa_nni.errors import InvalidInputError

__all__ = ["ResNetArchSpace", "RESNET_LAYOUT"]

RESNET_LAYOUT = "resnet"
"""The ``layout`` a ResNet space's :meth:`ResNetArchSpace.signature` records."""

_STEM_GROUP = re.compile(r"^d(\d+)w(\d+(?:\.\d+)?)w(\d+(?:\.\d+)?)$")
_STAGE_HEAD = re.compile(r"^w(\d+(?:\.\d+)?)$")
_EXPAND_TOKEN = re.compile(r"^e(\d+(?:\.\d+)?)$")
_STEM_FULL, _STEM_SKIPPED = 3, 2  # convolutions of the input stem with / without its residual conv


def _number(text: str) -> float | int:
    value = float(text)
    return int(value) if value.is_integer() else value


@dataclasses.dataclass(frozen=True)
class ResNetArchSpace(ChoiceSpace):
    """Shape and choices of an OFA-ResNet supernet (defaults: the released ``ofa_resnet50``).

    Args:
        depths: Extra blocks per stage on top of ``base_depths`` (the reference's ``depth_list``);
            the supernet has ``base + max(depths)`` blocks per stage. With more than one choice the
            input stem's residual conv is elastic too (skipped at the smallest depth).
        expand_ratios: Bottleneck ratios (middle width = ``make_divisible(round(out * e), 8)``).
        width_mults: Width multipliers of the stem and of every stage (rounded to multiples of 8).
        resolutions: Input resolution choices.
        base_depths: Blocks per stage before ``depths`` (ResNet50: 2, 2, 4, 2).
        base_widths: Stem output width, then each stage's output width, at multiplier 1 (ResNet50:
            64, 256, 512, 1024, 2048); the stem's first two convs are half the stem width.
        stage_strides: Stride of each stage's first block (ResNet50-D: 1, 2, 2, 2).
        num_classes: Classifier outputs.
    """

    depths: tuple[int, ...] = (0, 1, 2)
    expand_ratios: tuple[float, ...] = (0.2, 0.25, 0.35)
    width_mults: tuple[float, ...] = (0.65, 0.8, 1.0)
    resolutions: tuple[int, ...] = DEFAULT_RESOLUTIONS
    base_depths: tuple[int, ...] = (2, 2, 4, 2)
    base_widths: tuple[int, ...] = (64, 256, 512, 1024, 2048)
    stage_strides: tuple[int, ...] = (1, 2, 2, 2)
    num_classes: int = 1000

    def __post_init__(self) -> None:
        def set_field(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        for name, kind, minimum in (("depths", int, 0), ("expand_ratios", float, None),
                                    ("width_mults", float, None), ("resolutions", int, 1)):
            values = _as_tuple(name, getattr(self, name))
            for value in values:
                if not _is_finite_number(value) or (minimum is None and value <= 0) or (
                        minimum is not None and value < minimum):
                    bound = "positive numbers" if minimum is None else f"whole numbers >= {minimum}"
                    raise InvalidInputError(f"{name} must hold {bound}, got {value!r}")
                if kind is int and not float(value).is_integer():
                    raise InvalidInputError(f"{name} must hold whole numbers, got {values}")
            if len(set(values)) != len(values):
                raise InvalidInputError(f"{name} has duplicates: {values}")
            normalized = sorted(int(v) if kind is int or float(v).is_integer() else float(v) for v in values)
            set_field(name, tuple(normalized))
        for name in ("base_depths", "base_widths", "stage_strides"):
            values = _as_tuple(name, getattr(self, name))
            if not all(_is_finite_number(v) and float(v).is_integer() and v >= 1 for v in values):
                raise InvalidInputError(f"{name} must hold positive whole numbers, got {values}")
            set_field(name, tuple(int(v) for v in values))
        num_stages = len(self.base_depths)
        if len(self.base_widths) != num_stages + 1:
            raise InvalidInputError(f"base_widths needs {num_stages + 1} values (stem, then one per stage) for "
                                    f"{num_stages} stages, got {len(self.base_widths)}")
        if len(self.stage_strides) != num_stages:
            raise InvalidInputError(f"stage_strides needs {num_stages} values (one per stage), "
                                    f"got {self.stage_strides}")
        if any(s not in (1, 2) for s in self.stage_strides):
            raise InvalidInputError(f"stage_strides must be 1 or 2, got {self.stage_strides}")
        if not _is_finite_number(self.num_classes) or int(self.num_classes) != self.num_classes or \
                self.num_classes < 1:
            raise InvalidInputError(f"num_classes must be a positive integer, got {self.num_classes!r}")
        set_field("num_classes", int(self.num_classes))

    # ------------------------------------------------------------------ shape
    @property
    def num_stages(self) -> int:
        return len(self.base_depths)

    def stage_num_blocks(self, stage: int) -> int:
        """Blocks of (0-based) ``stage`` in the supernet."""
        return self.base_depths[stage] + max(self.depths)

    @property
    def blocks(self) -> tuple[tuple[int, int], ...]:
        """``(stage, block)`` (0-based) of every block of the supernet, in order."""
        return tuple((s, b) for s in range(self.num_stages) for b in range(self.stage_num_blocks(s)))

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    def stem_widths(self) -> tuple[int, ...]:
        """The stem's output width per width multiplier."""
        return tuple(make_divisible(self.base_widths[0] * w) for w in self.width_mults)

    def stem_mid_widths(self) -> tuple[int, ...]:
        """The width of the stem's first two convs per width multiplier (half the stem's, as OFA)."""
        return tuple(make_divisible(width // 2) for width in self.stem_widths())

    def stage_widths(self, stage: int) -> tuple[int, ...]:
        """Output widths of (0-based) ``stage`` per width multiplier."""
        return tuple(make_divisible(self.base_widths[stage + 1] * w) for w in self.width_mults)

    @staticmethod
    def mid_channels(out_channels: int, expand_ratio: float) -> int:
        """A bottleneck's middle width (OFA: make_divisible(round(out * e), 8))."""
        return make_divisible(round(out_channels * expand_ratio))

    @property
    def stem_depths(self) -> tuple[int, ...]:
        """Choices of ``stem.depth``: the residual conv is elastic when the depth is."""
        return (_STEM_SKIPPED, _STEM_FULL) if len(self.depths) > 1 else (_STEM_FULL,)

    def stage_depths(self, stage: int) -> tuple[int, ...]:
        """Choices of ``stage{s}.depth`` (active blocks) of (0-based) ``stage``."""
        return tuple(self.base_depths[stage] + d for d in self.depths)

    # ----------------------------------------------------------------- labels
    STEM_DEPTH_LABEL = "stem.depth"
    STEM_MID_WIDTH_LABEL = "stem.mid_width"
    STEM_WIDTH_LABEL = "stem.width"

    @staticmethod
    def expand_label(stage: int, block: int) -> str:
        return f"stage{stage + 1}.block{block + 1}.expand"

    @staticmethod
    def depth_label(stage: int) -> str:
        return f"stage{stage + 1}.depth"

    @staticmethod
    def width_label(stage: int) -> str:
        return f"stage{stage + 1}.width"

    @property
    def labels(self) -> tuple[str, ...]:
        """All labels in canonical order (the columns of :meth:`to_indices`): expands (block order),
        stem depth and stage depths, stem widths and stage widths, resolution."""
        return self._cached("_labels_cache", lambda: (
            tuple(self.expand_label(s, b) for s, b in self.blocks)
            + (self.STEM_DEPTH_LABEL,) + tuple(self.depth_label(s) for s in range(self.num_stages))
            + (self.STEM_MID_WIDTH_LABEL, self.STEM_WIDTH_LABEL)
            + tuple(self.width_label(s) for s in range(self.num_stages))
            + (self.RESOLUTION_LABEL,)
        ))

    def _choices_by_label(self) -> dict[str, tuple[Any, ...]]:
        return self._cached("_choices_cache", self._build_choices)  # type: ignore[no-any-return]

    def _build_choices(self) -> dict[str, tuple[Any, ...]]:
        choices = {self.expand_label(s, b): self.expand_ratios for s, b in self.blocks}
        choices[self.STEM_DEPTH_LABEL] = self.stem_depths
        choices.update({self.depth_label(s): self.stage_depths(s) for s in range(self.num_stages)})
        choices[self.STEM_MID_WIDTH_LABEL] = choices[self.STEM_WIDTH_LABEL] = self.width_mults
        choices.update({self.width_label(s): self.width_mults for s in range(self.num_stages)})
        choices[self.RESOLUTION_LABEL] = self.resolutions
        return {label: choices[label] for label in self.labels}

    def _label_hint(self) -> str:
        return (f"'stage1.block1.expand', 'stage1.depth', 'stage1.width', 'stem.depth', 'stem.mid_width', "
                f"'stem.width', 'resolution' ({self.num_stages} stages)")

    # ------------------------------------------------------------ index rows
    @property
    def depth_columns(self) -> slice:
        """Columns of the stage depths (after the stem depth) in an index row."""
        return slice(self.num_blocks + 1, self.num_blocks + 1 + self.num_stages)

    @property
    def width_columns(self) -> slice:
        """Columns of the widths: stem mid width, stem width, then one per stage."""
        start = self.num_blocks + 1 + self.num_stages
        return slice(start, start + 2 + self.num_stages)

    def _block_stage_and_position(self) -> tuple[np.ndarray, np.ndarray]:
        return self._cached(  # type: ignore[no-any-return]
            "_block_positions_cache",
            lambda: (np.array([s for s, _ in self.blocks]), np.array([b for _, b in self.blocks])))

    def active_block_mask(self, indices: np.ndarray) -> np.ndarray:
        """``(n, num_blocks)`` bool: which blocks of each index row run."""
        stage, position = self._block_stage_and_position()
        base = np.asarray(self.base_depths)[stage]
        depth = base[None, :] + np.asarray(self.depths)[indices[:, self.depth_columns][:, stage]]
        return position[None, :] < depth

    def active_gene_mask(self, indices: np.ndarray) -> np.ndarray:
        """``(n, len(labels))`` bool: the expands of active blocks and every other gene."""
        mask = np.ones(indices.shape, dtype=bool)
        mask[:, : self.num_blocks] = self.active_block_mask(indices)
        return mask

    @property
    def mutation_units(self) -> np.ndarray:
        """Every gene is its own mutation draw (the resolution's is the last)."""
        return np.arange(len(self.labels))

    def is_block_active(self, sample: Mapping[str, Any], stage: int, block: int) -> bool:
        return block < sample[self.depth_label(stage)]

    # -------------------------------------------------------------- features
    @property
    def feature_dim(self) -> int:
        """Length of :meth:`to_features` vectors (OFA's ``ResNetArchEncoder`` layout)."""
        return (len(self.resolutions) + 2 + (self.num_stages + 2) * len(self.width_mults)
                + self.num_blocks * len(self.expand_ratios))

    def to_features(self, samples: Sample | Sequence[Sample] | np.ndarray) -> np.ndarray:
        """OFA's ``ResNetArchEncoder.arch2feature`` layout: one-hot resolution, one-hot input-stem
        depth (skipped, full), one-hot width per stem layer and stage, one-hot expand per block slot
        (inactive blocks all zeros). Accepts a sample, samples, or index rows; returns float32."""
        if isinstance(samples, Mapping):
            return self.to_features(self.to_indices(samples)[None])[0]
        if not isinstance(samples, np.ndarray):
            samples = (np.stack([self.to_indices(s) for s in samples]) if len(samples)
                       else np.zeros((0, len(self.labels)), dtype=np.int64))
        indices = np.asarray(samples, dtype=np.int64)
        n, n_w, n_e, n_blocks = len(indices), len(self.width_mults), len(self.expand_ratios), self.num_blocks
        dim = self.feature_dim
        columns = np.empty((n, 2 + (self.num_stages + 2) + n_blocks), dtype=np.int64)
        columns[:, 0] = indices[:, -1]
        stem_full = np.asarray(self.stem_depths)[indices[:, n_blocks]] == _STEM_FULL
        columns[:, 1] = len(self.resolutions) + stem_full
        offset = len(self.resolutions) + 2
        width_slots = np.arange(self.num_stages + 2) * n_w
        columns[:, 2 : 4 + self.num_stages] = offset + width_slots + indices[:, self.width_columns]
        offset += (self.num_stages + 2) * n_w
        expands = offset + np.arange(n_blocks) * n_e + indices[:, :n_blocks]
        columns[:, 4 + self.num_stages :] = np.where(self.active_block_mask(indices), expands, dim)
        return _one_hot_rows(columns, dim)

    # ------------------------------------------------------------ arch strings
    def format(self, sample: Mapping[str, Any]) -> str:
        """The compact arch string of ``sample`` (see the module docstring)."""
        sample = self.validate(sample)
        groups = [
            f"r{sample[self.RESOLUTION_LABEL]}",
            f"d{sample[self.STEM_DEPTH_LABEL]}w{_format_number(sample[self.STEM_MID_WIDTH_LABEL])}"
            f"w{_format_number(sample[self.STEM_WIDTH_LABEL])}",
        ]
        for s in range(self.num_stages):
            tokens = [f"e{_format_number(sample[self.expand_label(s, b)])}" for b in range(self.stage_num_blocks(s))]
            groups.append(f"w{_format_number(sample[self.width_label(s)])}:"
                          + _join_stage(tokens, sample[self.depth_label(s)]))
        return "_".join(groups)

    def parse(self, arch: str) -> Sample:
        """Parse an arch string written by :meth:`format` (InvalidInputError saying what is wrong)."""
        example = f"'{self.format(self.max_sample())[:40]}...'" if isinstance(arch, str) else ""
        groups = _split_groups(arch, self.num_stages + 2, f"resolution, stem, {self.num_stages} stages", example)
        stem = _STEM_GROUP.match(groups[1])
        if stem is None:
            raise InvalidInputError(f"arch string {arch!r}: the stem group must be 'd<depth>w<mid width>w<width>' "
                                    f"(e.g. 'd3w0.65w1'), got {groups[1]!r}")
        sample: Sample = {self.RESOLUTION_LABEL: int(groups[0][1:]), self.STEM_DEPTH_LABEL: int(stem.group(1)),
                          self.STEM_MID_WIDTH_LABEL: _number(stem.group(2)),
                          self.STEM_WIDTH_LABEL: _number(stem.group(3))}
        for s, group in enumerate(groups[2:]):
            head, _, body = group.partition(":")
            width = _STAGE_HEAD.match(head)
            if width is None or not body:
                raise InvalidInputError(f"arch string {arch!r}: stage {s + 1} must be 'w<width>:e<expand>-...', "
                                        f"got {group!r}")
            sample[self.width_label(s)] = _number(width.group(1))
            tokens, sample[self.depth_label(s)] = _split_stage(arch, s, body, self.stage_num_blocks(s))
            for b, token in enumerate(tokens):
                match = _EXPAND_TOKEN.match(token)
                if match is None:
                    raise InvalidInputError(f"arch string {arch!r}: stage {s + 1} block {b + 1}: {token!r} is not "
                                            f"'e<expand>' (e.g. 'e0.25')")
                sample[self.expand_label(s, b)] = _number(match.group(1))
        return self.validate(sample)

    # ------------------------------------------------------------- signature
    def signature(self) -> dict[str, Any]:
        """A JSON-able description of the space (``layout: "resnet"`` tells it from MobileNet ones)."""
        data = {key: list(value) if isinstance(value, tuple) else value
                for key, value in dataclasses.asdict(self).items()}
        return {**data, "layout": RESNET_LAYOUT}

    @classmethod
    def from_signature(cls, signature: Mapping[str, Any]) -> ResNetArchSpace:
        kwargs: dict[str, Any] = {key: tuple(v) if isinstance(v, list) else v
                                  for key, v in signature.items() if key != "layout"}
        if signature.get("layout") != RESNET_LAYOUT:
            raise InvalidInputError(f"not a ResNet space's signature (layout {signature.get('layout')!r}, "
                                    f"expected {RESNET_LAYOUT!r})")
        return cls(**kwargs)
