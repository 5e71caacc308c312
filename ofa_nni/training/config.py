"""The training configuration (``ofa-nni train --config train.yaml``), validated strictly.

Every section is a frozen dataclass; :func:`load_config` reads YAML (or a dict) and refuses unknown
keys, wrong types and bad phase names with one :class:`ConfigError` naming the key and what is
allowed. ``examples/train_digits.yaml`` shows every key.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

import yaml

from ofa_nni.arch import ArchSpace, arch_space_for
from ofa_nni.data import DATA_KINDS
from ofa_nni.errors import InvalidInputError, MissingInputError
from ofa_nni.training.schedule import (
    PHASE_NAMES,
    PHASE_OVERRIDE_FIELDS,
    RECIPES,
    RESNET_PHASE_NAMES,
    Phase,
    progressive_shrinking,
)
from ofa_nni.training.settings import TrainingSettings, check_training_setting, require_in_range

__all__ = [
    "ConfigError",
    "SpaceConfig",
    "DataConfig",
    "ProgressiveShrinkingConfig",
    "SandwichConfig",
    "OptimizerConfig",
    "ValidationConfig",
    "TrainerConfig",
    "TrainConfig",
    "SPACE_PRESETS",
    "PROXYLESS_PRESETS",
    "PRESETS_BY_SPACE",
    "load_config",
    "demo_config",
]


class ConfigError(InvalidInputError):
    """An invalid training configuration (the message names the key and what is allowed)."""


# Range checks name the YAML key and raise ConfigError; the rules are the training settings' own.
_require = functools.partial(require_in_range, error=ConfigError)


_CPU_SIZES: Mapping[str, Any] = {
    "kernel_sizes": (3, 5, 7),
    "expand_ratios": (2, 3, 4),
    "depths": (1, 2, 3),
    "resolutions": (24, 28, 32),
    "base_widths": (8, 8, 16, 24, 32, 48, 64),
}
"""The choices and widths the ``cpu`` presets of both MobileNet layouts share (one home: the demo's
MobileNetV3 and ProxylessNAS spaces differ only in their stages' strides, activations and SE)."""

SPACE_PRESETS: Mapping[str, Mapping[str, Any]] = {
    # The paper's OFA-MobileNetV3 space (OFAMobileNetV3Space's defaults).
    "ofa-mobilenetv3": {},
    # A CPU-sized space with the same structure (3 choices per dimension, so every phase of
    # progressive shrinking unlocks something new): 3 elastic stages of up to 3 blocks, narrow
    # widths, resolutions 24-32 (digits are 8x8 upscaled). ~125K parameters at 10 classes; the
    # largest subnet costs 1.6M MACs at 32x32, the smallest 0.14M.
    "cpu": {
        **_CPU_SIZES,
        "stage_strides": (2, 2, 2),
        "stage_activations": ("relu", "hswish", "hswish"),
        "stage_se": (False, True, True),
    },
}
"""Named OFA-MobileNetV3 spaces for ``space.preset``."""

PROXYLESS_PRESETS: Mapping[str, Mapping[str, Any]] = {
    # The released OFA-ProxylessNAS space (OFAProxylessNASSpace's defaults, width 1.3).
    "ofa-proxylessnas": {},
    # The CPU preset's sizes in ProxylessNAS's layout: 3 elastic stages of up to 3 blocks, then the
    # single-block stage; width 1.0.
    "cpu": {
        **_CPU_SIZES,
        "stage_strides": (2, 2, 2, 1),
        "width_mult": 1.0,
    },
}
"""Named OFA-ProxylessNAS spaces for ``space.preset`` (with ``space.name: ofa-proxyless``)."""

RESNET_PRESETS: Mapping[str, Mapping[str, Any]] = {
    # The released OFA-ResNet50 space (OFAResNetSpace's defaults).
    "ofa-resnet50": {},
    # A CPU-sized ResNet-D: two stages of 1 + {0, 1, 2} bottlenecks, narrow widths, resolutions
    # 24-32 (digits are 8x8 upscaled), the released choices otherwise. The widths are the narrowest
    # at which every width multiplier still changes the stem's and each stage's width once rounded
    # to multiples of 8 (16, 32, 64 gave one stem width for all three, so `stem.width` and
    # `stem.mid_width` changed nothing and repeated subnets); `stem.mid_width` 0.65 and 0.8 stay one
    # width, as in the released space.
    "cpu": {
        "resolutions": (24, 28, 32),
        "base_depths": (1, 1),
        "base_widths": (40, 48, 96),
        "stage_strides": (1, 2),
    },
}
"""Named OFA-ResNet50 spaces for ``space.preset`` (with ``space.name: ofa-resnet50``)."""

PRESETS_BY_SPACE: Mapping[str, Mapping[str, Mapping[str, Any]]] = {
    "ofa-mbv3": SPACE_PRESETS,
    "ofa-proxyless": PROXYLESS_PRESETS,
    "ofa-resnet50": RESNET_PRESETS,
}
"""The presets of each search space, by the space's registered name (``space.name``)."""


@dataclasses.dataclass(frozen=True)
class SpaceConfig:
    """``space:`` the search space: its registered ``name`` (``ofa-mbv3``, ``ofa-proxyless``), a
    preset of that space, optionally with arguments of the space's class."""

    preset: str = "cpu"
    name: str = "ofa-mbv3"
    kernel_sizes: list[int] | None = None
    expand_ratios: list[float] | None = None
    depths: list[int] | None = None
    resolutions: list[int] | None = None
    base_widths: list[int] | None = None
    stage_strides: list[int] | None = None
    stage_activations: list[str] | None = None
    stage_se: list[bool] | None = None
    width_mult: float | None = None
    width_mults: list[float] | None = None  # OFA-ResNet50's
    base_depths: list[int] | None = None  # OFA-ResNet50's
    dropout: float | None = None

    def __post_init__(self) -> None:
        if self.name not in PRESETS_BY_SPACE:
            raise ConfigError(f"space.name: {self.name!r} is not a search space; allowed: {list(PRESETS_BY_SPACE)}")
        presets = PRESETS_BY_SPACE[self.name]
        if self.preset not in presets:
            raise ConfigError(f"space.preset: {self.preset!r} is not a preset; allowed: {list(presets)} "
                              f"(the presets of {self.name})")
        _require("space.dropout", self.dropout, 0.0, 1.0, high_open=True)
        # The space's own checks (odd kernels, one activation per stage, ...) at load time, not at
        # the first training step.
        arch_kwargs = {key: value for key, value in self.space_kwargs().items() if key != "dropout"}
        try:
            arch_space_for(self.name, **arch_kwargs)
        except ValueError as error:
            raise ConfigError(f"space: {error}") from None

    def space_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the space's class (without ``num_classes``)."""
        kwargs = dict(PRESETS_BY_SPACE[self.name][self.preset])
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name not in ("preset", "name") and value is not None:
                kwargs[field.name] = tuple(value) if isinstance(value, list) else value
        return kwargs


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """``data:`` where the images come from and how they are batched."""

    kind: str = "digits"
    root: str | None = None
    batch_size: int = 64
    num_workers: int = 0
    calibration_images: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in DATA_KINDS:
            raise ConfigError(f"data.kind: {self.kind!r} is not supported; allowed: {list(DATA_KINDS)}")
        if self.batch_size < 1:
            raise ConfigError(f"data.batch_size must be >= 1, got {self.batch_size}")
        if self.num_workers < 0:
            raise ConfigError(f"data.num_workers must be >= 0, got {self.num_workers}")
        _require("data.calibration_images", self.calibration_images, 1)


@dataclasses.dataclass(frozen=True)
class ProgressiveShrinkingConfig:
    """``strategy:`` with ``name: progressive_shrinking``: a named recipe (``paper`` or ``short``)
    scaled, with per-phase overrides (``phases: {kernel: {epochs: 3, lr: 0.05}}``)."""

    name: str = "progressive_shrinking"
    recipe: str = "paper"
    epochs_factor: float = 1.0
    kd_ratio: float = 1.0
    phases: dict[str, dict[str, float | bool]] | None = None

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise ConfigError(f"strategy.recipe: {self.recipe!r} is not a recipe; allowed: {list(RECIPES)}")
        if self.epochs_factor <= 0:
            raise ConfigError(f"strategy.epochs_factor must be > 0, got {self.epochs_factor}")
        _require("strategy.kd_ratio", self.kd_ratio, 0.0)
        allowed_fields = PHASE_OVERRIDE_FIELDS
        lowest = {"epochs": 1, "warmup_epochs": 0, "lr": 0.0, "subnets_per_step": 1, "kd_ratio": 0.0}
        for name, fields in (self.phases or {}).items():
            if name not in PHASE_NAMES and name not in RESNET_PHASE_NAMES:
                raise ConfigError(f"strategy.phases: unknown phase {name!r}; allowed: {list(PHASE_NAMES)} "
                                  f"(OFA-ResNet50: {list(RESNET_PHASE_NAMES)})")
            if not isinstance(fields, dict):
                raise ConfigError(f"strategy.phases.{name}: expected a mapping of {list(allowed_fields)}")
            for key, value in fields.items():
                if key not in allowed_fields:
                    raise ConfigError(f"strategy.phases.{name}: unknown key {key!r}; allowed: {list(allowed_fields)}")
                if key == "include_smallest":
                    if not isinstance(value, bool):
                        raise ConfigError(f"strategy.phases.{name}.{key}: expected true or false, got {value!r}")
                    continue
                integer = key in ("epochs", "warmup_epochs", "subnets_per_step")
                if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)) or \
                        not _finite(value):
                    raise ConfigError(
                        f"strategy.phases.{name}.{key}: expected {'an int' if integer else 'a number'}, got {value!r}"
                    )
                _require(f"strategy.phases.{name}.{key}", value, lowest[key], low_open=key == "lr")

    def schedule(self, arch: ArchSpace, *, batch_size: int) -> tuple[Phase, ...]:
        """The phases this configuration trains ``arch`` with at global batch ``batch_size``."""
        return progressive_shrinking(arch, recipe=self.recipe, epochs_factor=self.epochs_factor,
                                     batch_size=batch_size, kd_ratio=self.kd_ratio, overrides=self.phases)


@dataclasses.dataclass(frozen=True)
class SandwichConfig:
    """``strategy:`` with ``name: sandwich``: BigNAS's sandwich rule."""

    name: str = "sandwich"
    epochs: int = 10
    lr: float | None = None
    num_random: int = 2
    warmup_epochs: int = 0

    def __post_init__(self) -> None:
        _require("strategy.epochs", self.epochs, 1)
        _require("strategy.lr", self.lr, 0.0, low_open=True)
        _require("strategy.num_random", self.num_random, 0)
        _require("strategy.warmup_epochs", self.warmup_epochs, 0, self.epochs, high_open=True)


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """``optimizer:`` SGD settings and the label loss (OFA's defaults)."""

    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 3e-5
    label_smoothing: float = 0.1

    def __post_init__(self) -> None:
        for name in ("momentum", "nesterov", "weight_decay", "label_smoothing"):
            check_training_setting(name, getattr(self, name), key=f"optimizer.{name}", error=ConfigError)


@dataclasses.dataclass(frozen=True)
class ValidationConfig:
    """``validation:`` per-epoch validation of smallest, median, largest and random subnets."""

    random_subnets: int = 2
    calibration_batches: int = 8
    every_n_epochs: int = 1

    def __post_init__(self) -> None:
        check_training_setting("validation_random_subnets", self.random_subnets, key="validation.random_subnets",
                               error=ConfigError)
        check_training_setting("calibration_batches", self.calibration_batches, key="validation.calibration_batches",
                               error=ConfigError)
        _require("validation.every_n_epochs", self.every_n_epochs, 1)


@dataclasses.dataclass(frozen=True)
class TrainerConfig:
    """``trainer:`` Lightning trainer settings (``devices: 2, strategy: ddp_find_unused_parameters_true``
    for data parallelism)."""

    accelerator: str = "cpu"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    loggers: list[str] = dataclasses.field(default_factory=lambda: ["csv"])
    progress_bar: bool = True
    limit_train_batches: int | float = 1.0
    limit_val_batches: int | float = 1.0

    def __post_init__(self) -> None:
        bad = [name for name in self.loggers if name not in ("csv", "tensorboard")]
        if bad:
            raise ConfigError(f"trainer.loggers: unknown logger(s) {bad}; allowed: ['csv', 'tensorboard']")
        if isinstance(self.devices, int):
            _require("trainer.devices", self.devices, 1)
        _require("trainer.num_nodes", self.num_nodes, 1)
        for key in ("limit_train_batches", "limit_val_batches"):
            # Lightning: a float is a fraction of the batches, an int a number of batches.
            value = getattr(self, key)
            _require(f"trainer.{key}", value, 0.0, 1.0 if isinstance(value, float) else math.inf, low_open=True)


_STRATEGIES = {"progressive_shrinking": ProgressiveShrinkingConfig, "sandwich": SandwichConfig}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A whole training run."""

    seed: int = 0
    run_dir: str | None = None
    space: SpaceConfig = dataclasses.field(default_factory=SpaceConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    strategy: ProgressiveShrinkingConfig | SandwichConfig = dataclasses.field(
        default_factory=ProgressiveShrinkingConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    validation: ValidationConfig = dataclasses.field(default_factory=ValidationConfig)
    trainer: TrainerConfig = dataclasses.field(default_factory=TrainerConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (YAML-able, stored in checkpoints)."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def training_settings(self, *, checkpoint_dir: str | Path | None = None, resume: bool = False) -> TrainingSettings:
        """The settings the one-shot training module runs with: this configuration's seed,
        ``optimizer:`` and ``validation:`` values unchanged, where checkpoints go, and the whole
        configuration (stored in every checkpoint)."""
        return TrainingSettings(
            seed=self.seed,
            label_smoothing=self.optimizer.label_smoothing,
            momentum=self.optimizer.momentum,
            nesterov=self.optimizer.nesterov,
            weight_decay=self.optimizer.weight_decay,
            validation_random_subnets=self.validation.random_subnets,
            calibration_batches=self.validation.calibration_batches,
            checkpoint_dir=None if checkpoint_dir is None else Path(checkpoint_dir),
            resume=resume,
            run_config=self.to_dict(),
        )


def demo_config(*, run_dir: str | None = None, seed: int = 0) -> TrainConfig:
    """The default run behind the demo: progressive shrinking of the ``cpu`` space on digits.

    The ``short`` recipe (the paper's, with its depth and expand phases at the kernel phase's
    learning rate and the smallest subnet in every step of them) at 1/16 of the paper's epochs
    (11+8+2+8+2+8 = 39 epochs), batch 64, with per-epoch validation of 4 subnets: 205 s wall,
    231 s CPU on an idle 2-core machine (``docs/training.md``; the ablation against NNI's
    RandomOneShot is in ``benchmarks/results/ps_vs_random_oneshot.md``).
    """
    return TrainConfig(
        seed=seed,
        run_dir=run_dir,
        strategy=ProgressiveShrinkingConfig(recipe="short", epochs_factor=1 / 16),
        validation=ValidationConfig(random_subnets=1, calibration_batches=4),
    )


# ------------------------------------------------------------------------ validation
def _finite(value: int | float) -> bool:
    """Whether ``value`` is a finite float (YAML's ``.nan``/``.inf`` are not; nor an int too large for one)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return "null"
    if origin is list:
        return f"a list of {_type_name(typing.get_args(annotation)[0])}"
    if origin is dict:
        return "a mapping"
    return {int: "an int", float: "a number", str: "a string", bool: "true/false"}.get(annotation, str(annotation))


def _convert(value: Any, annotation: Any, key: str) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        errors = []
        for option in typing.get_args(annotation):
            try:
                return _convert(value, option, key)
            except ConfigError as error:
                errors.append(error)
        raise ConfigError(f"{key}: expected {_type_name(annotation)}, got {value!r}")
    if annotation is type(None):
        if value is not None:
            raise ConfigError(f"{key}: expected null, got {value!r}")
        return None
    if dataclasses.is_dataclass(annotation):
        return _build(annotation, value, key)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected {_type_name(annotation)}, got {value!r}")
        (item_type,) = typing.get_args(annotation)
        return [_convert(item, item_type, f"{key}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return value  # checked by the section's __post_init__
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an int, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported annotation {annotation!r} for {key}")


def _build(cls: Any, data: Any, prefix: str) -> Any:
    where = prefix or "the configuration"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of {[f.name for f in dataclasses.fields(cls)]}, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {field.name for field in dataclasses.fields(cls)}
    unknown = [key for key in data if key not in fields]
    if unknown:
        raise ConfigError(f"{prefix + '.' if prefix else ''}{unknown[0]}: unknown key; allowed in {where}: "
                          f"{sorted(fields)}")
    values = {}
    for key, value in data.items():
        annotation = hints[key]
        full_key = f"{prefix}.{key}" if prefix else key
        if key == "strategy" and cls is TrainConfig:
            values[key] = _build_strategy(value)
        else:
            values[key] = _convert(value, annotation, full_key)
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where}: {error}") from None


def _build_strategy(data: Any) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"strategy: expected a mapping with 'name' ({list(_STRATEGIES)}), got {data!r}")
    name = data.get("name", "progressive_shrinking")
    if not isinstance(name, str) or name not in _STRATEGIES:
        raise ConfigError(f"strategy.name: {name!r} is not a strategy; allowed: {list(_STRATEGIES)}")
    return _build(_STRATEGIES[name], data, "strategy")


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last
    silently, so a setting written twice would quietly lose one of its values)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)  # resolve '<<' merge keys first (what the base class does)
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, f"key {key!r} is given twice", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def load_config(source: str | Path | Mapping[str, Any]) -> TrainConfig:
    """A :class:`TrainConfig` from a YAML file, a YAML string's parsed dict, or a dict.

    Raises:
        FileNotFoundError: the file does not exist.
        ConfigError: invalid YAML, unknown key, wrong type, bad phase or strategy name.
    """
    if isinstance(source, Mapping):
        return _build(TrainConfig, source, "")
    path = Path(source)
    if not path.is_file():
        raise MissingInputError(f"training config {str(path)!r} does not exist"
                                + (" (it is a directory; give the YAML file)" if path.is_dir() else ""))
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # a SafeLoader
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not a YAML text file (byte {error.start} is not UTF-8)") from None
    except yaml.YAMLError as error:
        # One line, pointing at the place: PyYAML's own message spans several lines with a snippet.
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        context = getattr(error, "context", None)
        raise ConfigError(f"{where}: not valid YAML: {problem}" + (f" ({context})" if context else "")) from None
    try:
        return _build(TrainConfig, data or {}, "")
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
