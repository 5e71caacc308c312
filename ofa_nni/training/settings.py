"""``TrainingSettings``: the settings of a supernet training run, declared and checked once.

The YAML configuration (:meth:`ofa_nni.training.TrainConfig.training_settings`), the training
runner, the NNI one-shot strategies (``strategies.ProgressiveShrinking``, ``strategies.SandwichRule``,
whose keyword arguments map one to one onto these fields) and their Lightning module all hand this
one object along. The schedule (phases, learning rates) is not in it: the strategies build that
from their recipe.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ofa_nni._utils import replace_settings
from ofa_nni.errors import InvalidInputError

__all__ = ["TrainingSettings", "require_in_range", "check_training_setting"]


def require_in_range(key: str, value: Any, low: float, high: float = math.inf, *, low_open: bool = False,
                     high_open: bool = False, error: type[InvalidInputError] = InvalidInputError) -> None:
    """Raise ``error`` naming ``key`` and the allowed interval unless ``value`` lies in it (None passes)."""
    if value is None:
        return
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    if not (above and below):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open or high == math.inf else ']'}"
        raise error(f"{key}: {value!r} is out of range; allowed: {interval}")


# The allowed interval of each numeric setting: (low, high, low_open, high_open). The YAML sections
# (``optimizer:``, ``validation:``) check their keys against these same rules.
_RANGES: Mapping[str, tuple[float, float, bool, bool]] = {
    "label_smoothing": (0.0, 1.0, False, True),
    "momentum": (0.0, 1.0, False, True),
    "weight_decay": (0.0, math.inf, False, False),
    "validation_random_subnets": (0, math.inf, False, False),
    "calibration_batches": (1, math.inf, False, False),
}
_INTEGERS = ("seed", "validation_random_subnets", "calibration_batches")
_BOOLEANS = ("nesterov", "resume")


def check_training_setting(name: str, value: Any, *, key: str | None = None,
                           error: type[InvalidInputError] = InvalidInputError) -> None:
    """Refuse ``value`` for the setting ``name`` (its type and range), naming ``key`` (default: ``name``)."""
    where = key or name
    if name in _INTEGERS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise error(f"{where}: expected an int, got {value!r}")
    elif name in _BOOLEANS:
        if not isinstance(value, bool):
            raise error(f"{where}: expected true or false, got {value!r}")
    elif name in _RANGES:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise error(f"{where}: expected a finite number, got {value!r}")
    if name in _RANGES:
        low, high, low_open, high_open = _RANGES[name]
        require_in_range(where, value, low, high, low_open=low_open, high_open=high_open, error=error)


@dataclasses.dataclass(frozen=True)
class TrainingSettings:
    """What the one-shot training module needs besides its schedule. Defaults are OFA's
    (``mit-han-lab/once-for-all``'s ``RunConfig``: SGD with Nesterov momentum 0.9, weight decay 3e-5,
    label smoothing 0.1).

    Args:
        seed: Seeds the subnets each step trains, the data order and the validated random subnets.
        label_smoothing: Of the label loss, in [0, 1).
        momentum: SGD momentum, in [0, 1).
        nesterov: Nesterov momentum (only with ``momentum > 0``).
        weight_decay: SGD weight decay, >= 0 (none on batch norms and biases).
        validation_random_subnets: Random subnets validated every epoch besides the smallest,
            median and largest, >= 0.
        calibration_batches: Batches each validated subnet's batch norms are recalibrated on, >= 1.
        checkpoint_dir: Where checkpoints are written (none if ``None``).
        resume: Continue from ``checkpoint_dir/last.pt`` (needs ``checkpoint_dir``).
        run_config: The run's configuration as plain data, stored in every checkpoint.

    Raises:
        InvalidInputError: naming the field and what is allowed, for a value of the wrong type or
            out of range.
    """

    seed: int = 0
    label_smoothing: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 3e-5
    validation_random_subnets: int = 2
    calibration_batches: int = 10
    checkpoint_dir: Path | None = None
    resume: bool = False
    run_config: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            check_training_setting(field.name, getattr(self, field.name))
        if self.checkpoint_dir is not None:
            if not isinstance(self.checkpoint_dir, (str, Path)):
                raise InvalidInputError(f"checkpoint_dir: expected a path or None, got {self.checkpoint_dir!r}")
            object.__setattr__(self, "checkpoint_dir", Path(self.checkpoint_dir))
        if self.resume and self.checkpoint_dir is None:
            raise InvalidInputError("resume=True needs checkpoint_dir (where the run's checkpoints are)")
        if self.run_config is not None:
            if not isinstance(self.run_config, Mapping):
                raise InvalidInputError(f"run_config: expected a mapping or None, got {self.run_config!r}")
            object.__setattr__(self, "run_config", dict(self.run_config))

    @classmethod
    def build(cls, settings: TrainingSettings | None = None, **overrides: Any) -> TrainingSettings:
        """``settings`` (default: OFA's) with keyword ``overrides`` of its fields: how the strategies
        map their keyword arguments onto one settings object."""
        return replace_settings(cls, settings, overrides, what="training")
