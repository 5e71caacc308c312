"""The OFA-MobileNetV3 search space as plain data: choices, labels, samples, arch strings, encodings.

Nothing here needs torch or NNI, so the search engine, the predictors and the cost models work on
samples and integer-encoded populations without building a network.

Labels (stable, documented; stages and blocks count from 1)::

    resolution                 input resolution, e.g. 160
    stage{s}.depth             number of active blocks of elastic stage s (the first d run)
    stage{s}.block{b}.kernel   depthwise kernel size of block b of stage s
    stage{s}.block{b}.expand   expand ratio of block b of stage s

A stage of fixed depth (OFA-ProxylessNAS's last, one block) has a depth label with that one value.
Blocks beyond a stage's depth are inactive: their kernel/expand values are kept in the sample (NNI
samples every label) but do not affect the forward pass, the MACs or the feature encoding.

Arch strings (in the spirit of timm's block strings) write a sample compactly::

    r160_k3e4-k5e6|k7e6-k3e3_k5e3-k5e3-k5e3-k5e3_...

``r160`` is the resolution; then one ``_``-separated group per stage with one ``k<kernel>e<expand>``
token per block; ``|`` marks the stage's depth (blocks after it are inactive). No ``|`` means the
stage runs at full depth.
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
from ofa_nni.resnet_arch import ResNetArchSpace

__all__ = [
    "ArchSpace",
    "ChoiceSpace",
    "Sample",
    "DEFAULT_RESOLUTIONS",
    "proxyless_arch_space",
    "SPACE_ARCHS",
    "arch_space_for",
    "arch_space_from_signature",
    "family_name",
    "ResNetArchSpace",
    "space_arguments",
]



_ACTIVATIONS = ("relu", "relu6", "hswish")
_LAYOUTS = ("mbv3", "proxyless")
_BLOCK_TOKEN = re.compile(r"^k(\d+)e(\d+(?:\.\d+)?)$")


@dataclasses.dataclass(frozen=True)
class ArchSpace(ChoiceSpace):
    """Shape and choices of an OFA-MobileNetV3 supernet (Cai et al., ICLR 2020, Sec. 3.1).

    The defaults reproduce the paper's space: 5 elastic stages of up to 4 blocks, kernel {3, 5, 7},
    expand ratio {3, 4, 6}, depth {2, 3, 4}, resolution {128, 132, ..., 224}. Every choice list and
    width is an argument so that tests and CPU demos can build a small space.

    Args:
        kernel_sizes: Depthwise kernel choices (odd, ascending after normalisation).
        expand_ratios: Expand-ratio choices of the elastic blocks.
        depths: Depth choices of every elastic stage; the largest is the number of blocks per stage.
        resolutions: Input resolution choices.
        base_widths: Widths before ``width_mult``: stem, first block, one per elastic stage, final
            expand, feature mix (``2 + num_stages + 2`` values).
        stage_strides: Stride of the first block of each elastic stage.
        stage_activations: ``"relu"`` or ``"hswish"`` per elastic stage.
        stage_se: Whether each elastic stage uses squeeze-and-excite.
        width_mult: Width multiplier applied to ``base_widths`` (rounded to multiples of 8).
        num_classes: Classifier outputs.
        fixed_depths: Per stage, None for an elastic depth (choices ``depths``, ``max(depths)``
            blocks) or a fixed number of blocks (the stage's depth label then has that one choice:
            OFA-ProxylessNAS's last stage is one block). Empty (default): every stage is elastic.
        layout: The network around the elastic stages. ``"mbv3"`` (default): stem h-swish, first
            block ReLU, final expand 1x1 + BN, global pool, feature mix 1x1 without BN (h-swish);
            ``base_widths`` ends with final expand and feature mix. ``"proxyless"``: stem and first
            block relu6 (no residual), feature mix 1x1 + BN + relu6 *before* the pool, no final
            expand; ``base_widths`` ends with the feature mix only.
    """

    kernel_sizes: tuple[int, ...] = (3, 5, 7)
    expand_ratios: tuple[float, ...] = (3, 4, 6)
    depths: tuple[int, ...] = (2, 3, 4)
    resolutions: tuple[int, ...] = DEFAULT_RESOLUTIONS
    base_widths: tuple[int, ...] = (16, 16, 24, 40, 80, 112, 160, 960, 1280)
    stage_strides: tuple[int, ...] = (2, 2, 2, 1, 2)
    stage_activations: tuple[str, ...] = ("relu", "relu", "hswish", "hswish", "hswish")
    stage_se: tuple[bool, ...] = (False, True, False, True, True)
    width_mult: float = 1.0
    num_classes: int = 1000
    fixed_depths: tuple[int | None, ...] = ()
    layout: str = "mbv3"

    def __post_init__(self) -> None:
        def set_field(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        for name in ("kernel_sizes", "expand_ratios", "depths", "resolutions"):
            values = _as_tuple(name, getattr(self, name))
            for value in values:
                if not _is_finite_number(value):
                    raise InvalidInputError(f"{name} must hold numbers, got {value!r}")
                if value <= 0:
                    raise InvalidInputError(f"{name} must be positive, got {value!r}")
            if len(set(values)) != len(values):
                raise InvalidInputError(f"{name} has duplicates: {values}")
            kind = float if name == "expand_ratios" else int
            normalized = tuple(sorted(kind(v) for v in values))
            if kind is int and any(float(v) != int(v) for v in values):
                raise InvalidInputError(f"{name} must hold whole numbers, got {values}")
            if name == "expand_ratios":
                normalized = tuple(int(v) if float(v).is_integer() else v for v in normalized)
            set_field(name, normalized)
        if any(k % 2 == 0 for k in self.kernel_sizes):
            raise InvalidInputError(f"kernel_sizes must be odd, got {self.kernel_sizes}")
        for name in ("base_widths", "stage_strides", "stage_activations", "stage_se"):
            set_field(name, _as_tuple(name, getattr(self, name)))
        if not all(_is_finite_number(w) and w > 0 and float(w).is_integer() for w in self.base_widths):
            raise InvalidInputError(f"base_widths must hold positive whole numbers, got {self.base_widths}")
        if not all(isinstance(se, (bool, np.bool_)) for se in self.stage_se):
            raise InvalidInputError(f"stage_se must hold true/false per stage, got {self.stage_se}")
        num_stages = len(self.stage_strides)
        if self.layout not in _LAYOUTS:
            raise InvalidInputError(f"layout must be one of {list(_LAYOUTS)}, got {self.layout!r}")
        head_widths, n_head = ("final expand, feature mix", 2) if self.layout == "mbv3" else ("feature mix", 1)
        n_widths = num_stages + 2 + n_head
        if len(self.base_widths) != n_widths:
            raise InvalidInputError(
                f"base_widths needs {n_widths} values (stem, first block, {num_stages} stages, "
                f"{head_widths}) for {num_stages} stages, got {len(self.base_widths)}"
            )
        try:
            fixed = tuple(self.fixed_depths)
        except TypeError:
            raise InvalidInputError(f"fixed_depths must be a sequence, got {self.fixed_depths!r}") from None
        if fixed and len(fixed) != num_stages:
            raise InvalidInputError(f"fixed_depths needs {num_stages} values (one per stage: None or a block count), "
                                    f"got {fixed}")
        for depth in fixed:
            if depth is not None and not (_is_finite_number(depth) and float(depth).is_integer() and depth >= 1):
                raise InvalidInputError(f"fixed_depths must hold None or positive whole numbers, got {fixed}")
        set_field("fixed_depths", tuple(None if d is None else int(d) for d in fixed))
        for name in ("stage_activations", "stage_se"):
            if len(getattr(self, name)) != num_stages:
                raise InvalidInputError(f"{name} needs {num_stages} values (one per stage), got {getattr(self, name)}")
        for act in self.stage_activations:
            if act not in _ACTIVATIONS:
                raise InvalidInputError(f"stage_activations: unknown activation {act!r}; allowed: {_ACTIVATIONS}")
        if any(s not in (1, 2) for s in self.stage_strides):
            raise InvalidInputError(f"stage_strides must be 1 or 2, got {self.stage_strides}")
        if not _is_finite_number(self.width_mult) or self.width_mult <= 0:
            raise InvalidInputError(f"width_mult must be positive (a number), got {self.width_mult!r}")
        if not _is_finite_number(self.num_classes) or int(self.num_classes) != self.num_classes or \
                self.num_classes < 1:
            raise InvalidInputError(f"num_classes must be a positive integer, got {self.num_classes!r}")

    # ------------------------------------------------------------------ shape
    @property
    def num_stages(self) -> int:
        return len(self.stage_strides)

    @property
    def max_depth(self) -> int:
        """Blocks per elastic stage in the supernet."""
        return max(self.depths)

    @property
    def num_blocks(self) -> int:
        """Elastic blocks in the supernet (20 in the default space; 21 in OFA-ProxylessNAS's)."""
        return len(self.blocks)

    def stage_depths(self, stage: int) -> tuple[int, ...]:
        """The depth choices of (0-based) ``stage``: ``depths``, or its fixed depth alone."""
        fixed = self.fixed_depths[stage] if self.fixed_depths else None
        return self.depths if fixed is None else (fixed,)

    def stage_num_blocks(self, stage: int) -> int:
        """Blocks of (0-based) ``stage`` in the supernet (its largest depth)."""
        return self.stage_depths(stage)[-1]

    @property
    def blocks(self) -> tuple[tuple[int, int], ...]:
        """``(stage, block)`` (0-based) of every block of the supernet, in order (OFA's ``blocks[1:]``)."""
        cached = self.__dict__.get("_blocks_cache")
        if cached is None:
            cached = tuple((s, b) for s in range(self.num_stages) for b in range(self.stage_num_blocks(s)))
            object.__setattr__(self, "_blocks_cache", cached)
        return cached

    @property
    def widths(self) -> tuple[int, ...]:
        """``base_widths`` scaled by ``width_mult`` and rounded to multiples of 8."""
        return tuple(make_divisible(w * self.width_mult) for w in self.base_widths)

    @property
    def stem_width(self) -> int:
        return self.widths[0]

    @property
    def first_block_width(self) -> int:
        return self.widths[1]

    @property
    def stage_widths(self) -> tuple[int, ...]:
        return self.widths[2 : 2 + self.num_stages]

    @property
    def final_expand_width(self) -> int:
        """Width of the final expand 1x1 conv (0: the ``"proxyless"`` layout has none)."""
        return self.widths[-2] if self.layout == "mbv3" else 0

    @property
    def stem_activation(self) -> str:
        return "hswish" if self.layout == "mbv3" else "relu6"

    @property
    def first_block_activation(self) -> str:
        return "relu" if self.layout == "mbv3" else "relu6"

    @property
    def head_activation(self) -> str:
        """Activation of the final expand and the feature mix."""
        return "hswish" if self.layout == "mbv3" else "relu6"

    @property
    def feature_mix_width(self) -> int:
        return self.widths[-1]

    def block_in_channels(self, stage: int, block: int) -> int:
        """Input channels of (0-based) ``block`` of (0-based) ``stage``."""
        if block > 0:
            return self.stage_widths[stage]
        return self.stage_widths[stage - 1] if stage > 0 else self.first_block_width

    def mid_channels(self, in_channels: int, expand_ratio: float) -> int:
        """Width of an MBConv block's expanded layer (OFA: make_divisible(round(in * e), 8))."""
        return make_divisible(round(in_channels * expand_ratio))

    @staticmethod
    def se_channels(mid_channels: int) -> int:
        """Squeeze-and-excite reduce width (OFA: make_divisible(mid // 4, 8))."""
        return make_divisible(mid_channels // 4)

    # ----------------------------------------------------------------- labels
    @staticmethod
    def kernel_label(stage: int, block: int) -> str:
        return f"stage{stage + 1}.block{block + 1}.kernel"

    @staticmethod
    def expand_label(stage: int, block: int) -> str:
        return f"stage{stage + 1}.block{block + 1}.expand"

    @staticmethod
    def depth_label(stage: int) -> str:
        return f"stage{stage + 1}.depth"

    def _label_hint(self) -> str:
        return (f"'stage1.block1.kernel', 'stage1.block1.expand', 'stage1.depth', 'resolution' "
                f"({self.num_stages} stages, {self.max_depth} blocks each)")

    @property
    def mutation_units(self) -> np.ndarray:
        """One draw per block (kernel and expand redrawn together), one per stage depth and one for
        the resolution."""
        cached = self.__dict__.get("_mutation_units_cache")
        if cached is None:  # cached: every mutation reads it
            block = np.arange(self.num_blocks)
            cached = np.concatenate([block, block, self.num_blocks + np.arange(self.num_stages + 1)])
            object.__setattr__(self, "_mutation_units_cache", cached)
        return cached

    @property
    def labels(self) -> tuple[str, ...]:
        """All labels in canonical order: kernels, expands (block order), depths, resolution.

        The order is OFA's (``ks``, ``e``, ``d``, ``r``) and is the column order of
        :meth:`to_indices`.
        """
        cached = self.__dict__.get("_labels_cache")
        if cached is None:  # computed once: the search reads it for every batch of candidates
            blocks = self.blocks
            cached = (
                tuple(self.kernel_label(s, b) for s, b in blocks)
                + tuple(self.expand_label(s, b) for s, b in blocks)
                + tuple(self.depth_label(s) for s in range(self.num_stages))
                + (self.RESOLUTION_LABEL,)
            )
            object.__setattr__(self, "_labels_cache", cached)
        return cached

    def _choices_by_label(self) -> dict[str, tuple[Any, ...]]:
        cached = self.__dict__.get("_choices_cache")
        if cached is None:
            cached = {}
            depth_choices = {self.depth_label(s): self.stage_depths(s) for s in range(self.num_stages)}
            for label in self.labels:
                if label.endswith(".kernel"):
                    cached[label] = self.kernel_sizes
                elif label.endswith(".expand"):
                    cached[label] = self.expand_ratios
                elif label.endswith(".depth"):
                    cached[label] = depth_choices[label]
                else:
                    cached[label] = self.resolutions
            object.__setattr__(self, "_choices_cache", cached)
        return cached

    def is_block_active(self, sample: Mapping[str, Any], stage: int, block: int) -> bool:
        return block < sample[self.depth_label(stage)]

    def _depth_patterns(self) -> np.ndarray:
        """``(len(depths), max_depth)`` bool: which block positions of a stage run at each depth
        choice (cached: the search builds block masks thousands of times)."""
        cached = self.__dict__.get("_depth_patterns_cache")
        if cached is None:
            cached = np.arange(self.max_depth)[None, :] < np.asarray(self.depths)[:, None]
            object.__setattr__(self, "_depth_patterns_cache", cached)
        return cached

    def _fixed_depth_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """For spaces with fixed-depth stages: ``patterns[s, d, b]`` (block b of stage s runs at the
        stage's d-th depth choice, padded to the largest stage) and the flat ``(s, b)`` positions of
        the real blocks in a ``(num_stages * width)`` row."""
        cached = self.__dict__.get("_fixed_depth_tables_cache")
        if cached is None:
            width = max(self.stage_num_blocks(s) for s in range(self.num_stages))
            n_choices = max(len(self.stage_depths(s)) for s in range(self.num_stages))
            patterns = np.zeros((self.num_stages, n_choices, width), dtype=bool)
            for s in range(self.num_stages):
                depths = np.asarray(self.stage_depths(s))
                patterns[s, : len(depths)] = np.arange(width)[None, :] < depths[:, None]
            positions = np.array([s * width + b for s, b in self.blocks], dtype=np.int64)
            cached = (patterns, positions)
            object.__setattr__(self, "_fixed_depth_tables_cache", cached)
        return cached

    def active_block_mask(self, indices: np.ndarray) -> np.ndarray:
        """``(n, num_blocks)`` bool: which blocks of each integer-encoded sample run (block position <
        its stage's depth), batched over the rows of an (n, len(labels)) index array."""
        depth_choices = indices[:, 2 * self.num_blocks : 2 * self.num_blocks + self.num_stages]
        if self.fixed_depths:  # stages of different lengths: gather per stage, keep the real blocks
            patterns, positions = self._fixed_depth_tables()
            per_stage = patterns[np.arange(self.num_stages)[None, :], depth_choices]
            return np.take(per_stage.reshape(len(indices), -1), positions, axis=1)
        # np.take, not fancy indexing: several times faster on these small tables
        return np.take(self._depth_patterns(), depth_choices, axis=0).reshape(len(indices), self.num_blocks)

    def active_gene_mask(self, indices: np.ndarray) -> np.ndarray:
        """``(n, len(labels))`` bool: which genes matter -- kernels and expands of active blocks, every
        depth and the resolution (a gene outside the mask does not change the subnet)."""
        blocks = self.active_block_mask(indices)
        mask = np.ones(indices.shape, dtype=bool)
        mask[:, : self.num_blocks] = blocks
        mask[:, self.num_blocks : 2 * self.num_blocks] = blocks
        return mask

    def canonical_indices(self, indices: np.ndarray) -> np.ndarray:
        """Index rows with the genes of inactive blocks set to 0 (their smallest choice): two rows are
        the same subnet iff their canonical rows are equal. Rows must be checked (:meth:`check_indices`)."""
        blocks = self.active_block_mask(indices)
        canonical = np.array(indices, dtype=np.int64, copy=True)
        canonical[:, : self.num_blocks] *= blocks
        canonical[:, self.num_blocks : 2 * self.num_blocks] *= blocks
        return canonical

    @property
    def feature_dim(self) -> int:
        """Length of :meth:`to_features` vectors (145 in the default space)."""
        return len(self.resolutions) + self.num_blocks * (len(self.kernel_sizes) + len(self.expand_ratios))

    def to_features(self, samples: Sample | Sequence[Sample] | np.ndarray) -> np.ndarray:
        """OFA's predictor features: one-hot resolution, then one-hot kernel per block, then one-hot
        expand ratio per block; inactive blocks are all zeros (the layout of OFA's
        ``MobileNetArchEncoder``, so its predictors can be reused).

        Accepts one sample, a list of samples, or an integer array from :meth:`to_indices`
        (``(n, len(labels))``, batched without a Python loop per row). Returns ``float32``.
        """
        if isinstance(samples, Mapping):
            return self.to_features(self.to_indices(samples)[None])[0]
        if not isinstance(samples, np.ndarray):
            samples = (
                np.stack([self.to_indices(s) for s in samples])
                if len(samples)
                else np.zeros((0, len(self.labels)), dtype=np.int64)
            )
        indices = np.asarray(samples, dtype=np.int64)
        n_blocks, n_k, n_e = self.num_blocks, len(self.kernel_sizes), len(self.expand_ratios)
        kernels = indices[:, :n_blocks]
        expands = indices[:, n_blocks : 2 * n_blocks]
        active = self.active_block_mask(indices)
        n = indices.shape[0]
        # One flat scatter of ones: per row the resolution's column and, per active block, its
        # kernel's and its expand ratio's columns; inactive blocks write to a spare last column.
        dim = self.feature_dim
        offset = len(self.resolutions)
        block_ids = np.arange(n_blocks)
        columns = np.empty((n, 1 + 2 * n_blocks), dtype=np.int64)
        columns[:, 0] = indices[:, -1]
        columns[:, 1 : 1 + n_blocks] = np.where(active, offset + block_ids * n_k + kernels, dim)
        offset += n_blocks * n_k
        columns[:, 1 + n_blocks :] = np.where(active, offset + block_ids * n_e + expands, dim)
        return _one_hot_rows(columns, dim)

    # ------------------------------------------------------------ arch strings
    def format(self, sample: Mapping[str, Any]) -> str:
        """The compact arch string of ``sample`` (see the module docstring)."""
        sample = self.validate(sample)
        groups = [f"r{sample[self.RESOLUTION_LABEL]}"]
        for s in range(self.num_stages):
            tokens = [
                f"k{sample[self.kernel_label(s, b)]}e{_format_number(sample[self.expand_label(s, b)])}"
                for b in range(self.stage_num_blocks(s))
            ]
            groups.append(_join_stage(tokens, sample[self.depth_label(s)]))
        return "_".join(groups)

    def parse(self, arch: str) -> Sample:
        """Parse an arch string written by :meth:`format` (raises ValueError saying what is wrong)."""
        example = f"'{self.format(self.max_sample())[:40]}...'" if isinstance(arch, str) else ""
        groups = _split_groups(arch, self.num_stages + 1, f"resolution + {self.num_stages} stages", example)
        sample: Sample = {self.RESOLUTION_LABEL: int(groups[0][1:])}
        for s, group in enumerate(groups[1:]):
            tokens, sample[self.depth_label(s)] = _split_stage(arch, s, group, self.stage_num_blocks(s))
            for b, token in enumerate(tokens):
                match = _BLOCK_TOKEN.match(token)
                if match is None:
                    raise InvalidInputError(
                        f"arch string {arch!r}: stage {s + 1} block {b + 1}: {token!r} is not "
                        f"'k<kernel>e<expand>' (e.g. 'k5e4')"
                    )
                expand = float(match.group(2))
                sample[self.kernel_label(s, b)] = int(match.group(1))
                sample[self.expand_label(s, b)] = int(expand) if expand.is_integer() else expand
        return self.validate(sample)

    # ------------------------------------------------------------- signature
    def signature(self) -> dict[str, Any]:
        """A JSON-able description of the space, stored with predictors, tables and checkpoints so
        that an artefact built for another space is refused."""
        data = dataclasses.asdict(self)
        # Fields added after the first release are left out at their defaults, so a MobileNetV3
        # space's signature is what it always was (artefacts saved before still match).
        for name in ("fixed_depths", "layout"):
            if data[name] == _FIELD_DEFAULTS[name]:
                del data[name]
        return {key: list(value) if isinstance(value, tuple) else value for key, value in data.items()}

    @classmethod
    def from_signature(cls, signature: Mapping[str, Any]) -> ArchSpace:
        kwargs: dict[str, Any] = {key: tuple(v) if isinstance(v, list) else v for key, v in signature.items()}
        return cls(**kwargs)


_FIELD_DEFAULTS = {field.name: field.default for field in dataclasses.fields(ArchSpace)}


def proxyless_arch_space(
    *,
    kernel_sizes: Sequence[int] = (3, 5, 7),
    expand_ratios: Sequence[float] = (3, 4, 6),
    depths: Sequence[int] = (2, 3, 4),
    resolutions: Sequence[int] = DEFAULT_RESOLUTIONS,
    base_widths: Sequence[int] = (32, 16, 24, 40, 80, 96, 192, 320, 1280),
    stage_strides: Sequence[int] = (2, 2, 2, 1, 2, 1),
    width_mult: float = 1.3,
    num_classes: int = 1000,
) -> ArchSpace:
    """The :class:`ArchSpace` of OFA-ProxylessNAS (mit-han-lab's ``OFAProxylessNASNets``; defaults:
    the released supernet, width 1.3): relu6, no squeeze-and-excite, the ``"proxyless"`` head, and a
    last stage of one block (``stage_strides`` includes it)."""
    num_stages = len(_as_tuple("stage_strides", stage_strides))
    return ArchSpace(
        kernel_sizes=tuple(kernel_sizes),
        expand_ratios=tuple(expand_ratios),
        depths=tuple(depths),
        resolutions=tuple(resolutions),
        base_widths=tuple(base_widths),
        stage_strides=tuple(stage_strides),
        stage_activations=("relu6",) * num_stages,
        stage_se=(False,) * num_stages,
        width_mult=width_mult,
        num_classes=num_classes,
        fixed_depths=(None,) * (num_stages - 1) + (1,),
        layout="proxyless",
    )


def arch_space_from_signature(signature: Mapping[str, Any]) -> Any:
    """The arch description a :meth:`signature` describes (a ResNet one by its ``layout``)."""
    if not isinstance(signature, Mapping):
        raise InvalidInputError(f"a space signature must be a dict, got {type(signature).__name__}")
    if signature.get("layout") == "resnet":
        return ResNetArchSpace.from_signature(signature)
    return ArchSpace.from_signature(signature)


_FAMILY_NAMES = {"mbv3": "OFA-MobileNetV3", "proxyless": "OFA-ProxylessNAS", "resnet": "OFA-ResNet50"}


def family_name(signature: Mapping[str, Any]) -> str:
    """The OFA family a :meth:`signature` belongs to, by its ``layout`` (none: OFA-MobileNetV3, whose
    signature leaves the default out), e.g. ``"OFA-ProxylessNAS"``."""
    layout = signature.get("layout", "mbv3")
    return _FAMILY_NAMES.get(str(layout), f"unknown ({layout!r})")


SPACE_ARCHS: Mapping[str, Any] = {"ofa-mbv3": ArchSpace, "ofa-proxyless": proxyless_arch_space,
                                  "ofa-resnet50": ResNetArchSpace}
"""The arch description of each registered search space, by its name, from the same keyword
arguments as the space (without ``dropout`` and the BN settings)."""


def arch_space_for(name: str, **kwargs: Any) -> ArchSpace:
    """The :class:`ArchSpace` of the search space registered as ``name`` with ``kwargs``.

    Raises:
        InvalidInputError: for an unknown name or an argument that space does not take, naming the
            allowed ones.
    """
    allowed = space_arguments(name)
    unknown = [key for key in kwargs if key not in allowed]
    if unknown:
        raise InvalidInputError(f"space {name!r} has no argument {unknown[0]!r}; allowed: {allowed}")
    return SPACE_ARCHS[name](**kwargs)  # type: ignore[no-any-return]


def space_arguments(name: str) -> list[str]:
    """The arch arguments of the search space registered as ``name`` (InvalidInputError if unknown)."""
    import inspect

    if name not in SPACE_ARCHS:
        raise InvalidInputError(f"unknown search space {name!r}; known: {', '.join(sorted(SPACE_ARCHS))}")
    build = SPACE_ARCHS[name]
    if build is ArchSpace:
        return list(_MBV3_ARGUMENTS)
    return list(inspect.signature(build).parameters)


# OFAMobileNetV3Space's arguments that describe its arch (the ArchSpace fields of its signature).
_MBV3_ARGUMENTS = ("kernel_sizes", "expand_ratios", "depths", "resolutions", "base_widths", "stage_strides",
                   "stage_activations", "stage_se", "width_mult", "num_classes")
