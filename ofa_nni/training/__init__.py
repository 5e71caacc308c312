"""Supernet training: OFA's progressive shrinking and BigNAS's sandwich rule.

The schedule logic (phases, unlocked choices, subnets per step, learning rates, distillation) is
framework-light and lives here; ``strategies.ProgressiveShrinking`` / ``strategies.SandwichRule``
plug it into NNI's one-shot strategies, and ``ofa_nni.app.runner.train`` runs a whole configuration
(what ``ofa-nni train --config`` calls).
"""

from ofa_nni.training.checkpoint import CheckpointError, atomic_torch_save, load_checkpoint, save_checkpoint
from ofa_nni.training.config import ConfigError, TrainConfig, demo_config, load_config
from ofa_nni.training.schedule import (
    PAPER_BATCH_SIZE,
    PAPER_RECIPE,
    PHASE_NAMES,
    PHASE_OVERRIDE_FIELDS,
    RECIPES,
    SHORT_RECIPE,
    Phase,
    SubnetStep,
    learning_rate,
    locate_epoch,
    plan_step,
    progressive_shrinking,
    sandwich_rule,
    step_seed,
    unlocked_choices,
)
from ofa_nni.training.settings import TrainingSettings
from ofa_nni.training.steps import (
    distillation_loss,
    median_sample,
    soft_cross_entropy,
    train_subnets,
    validation_subnets,
)

__all__ = [
    "Phase",
    "SubnetStep",
    "PHASE_NAMES",
    "PAPER_RECIPE",
    "SHORT_RECIPE",
    "RECIPES",
    "PHASE_OVERRIDE_FIELDS",
    "PAPER_BATCH_SIZE",
    "progressive_shrinking",
    "sandwich_rule",
    "unlocked_choices",
    "plan_step",
    "learning_rate",
    "locate_epoch",
    "step_seed",
    "soft_cross_entropy",
    "distillation_loss",
    "train_subnets",
    "median_sample",
    "validation_subnets",
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "atomic_torch_save",
    "ConfigError",
    "TrainConfig",
    "TrainingSettings",
    "load_config",
    "demo_config",
]
