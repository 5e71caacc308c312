"""OFA's progressive shrinking and BigNAS's sandwich rule as NNI one-shot strategies.

Thin adapters: the schedule (phases, unlocked choices, subnets per step, learning rates), the loss
(label smoothing + distillation) and the step (gradients accumulated over the step's subnets) live
in :mod:`ofa_nni.training`; here they are plugged into NNI's one-shot machinery
(:class:`~nni.nas.oneshot.pytorch.strategy.OneShotStrategy` +
:class:`~nni.nas.oneshot.pytorch.base_lightning.BaseOneShotLightningModule`, manual optimization),
so that::

    NasExperiment(supernet, evaluator, ProgressiveShrinking(epochs_factor=0.05)).run()

trains the supernet with Lightning (progress bars, loggers, ``devices``/DDP) from the evaluator's
trainer and data loaders. The strategy owns the optimizer (SGD, Nesterov momentum 0.9, weight
decay 3e-5 without decay on BN and biases, OFA's recipe) and the loss: the evaluator's
``learning_rate``, ``optimizer`` and ``criterion`` are not used. Its trainer's ``max_epochs`` is
set to the schedule's length.

Every epoch: the smallest, median, largest and a few random subnets are validated with their BN
statistics recalibrated (``val_acc_<name>`` in the Lightning logs), and, with ``checkpoint_dir``, a
checkpoint is written atomically (``last.pt``, and ``phase<k>-<name>.pt`` when a phase ends).
``resume=True`` continues from ``last.pt``: same schedule, same subnets, same data order.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from nni.nas.evaluator.pytorch.lightning import Lightning, LightningModule
from nni.nas.oneshot.pytorch.base_lightning import BaseOneShotLightningModule
from nni.nas.oneshot.pytorch.strategy import OneShotStrategy
from torch import nn

from ofa_nni.arch import Sample
from ofa_nni.errors import InvalidInputError
from ofa_nni.runtime import recalibrate_batchnorm
from ofa_nni.training.checkpoint import (
    CheckpointError,
    TrainingDivergedError,
    check_compatible,
    load_checkpoint,
    non_finite_weights,
    save_checkpoint,
)
from ofa_nni.training.schedule import (
    PAPER_BATCH_SIZE,
    Phase,
    learning_rate,
    locate_epoch,
    plan_step,
    progressive_shrinking,
    sandwich_rule,
    step_seed,
)
from ofa_nni.training.settings import TrainingSettings
from ofa_nni.training.steps import (
    batchnorm_buffers,
    load_batchnorm_buffers,
    train_subnets,
    validation_subnets,
)
from search_spaces import OFASupernet

__all__ = ["ProgressiveShrinking", "SandwichRule", "SupernetTrainingModule", "LAST_CHECKPOINT"]

_logger = logging.getLogger(__name__)

LAST_CHECKPOINT = "last.pt"
"""File name of the checkpoint written after every epoch (in ``checkpoint_dir``)."""


def _optimizer_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """OFA's ``no_decay_keys='bn#bias'``: no weight decay on batch norms and biases."""
    decay, no_decay = [], []
    for module in model.modules():
        for name, parameter in module.named_parameters(recurse=False):
            if not parameter.requires_grad:
                continue
            if isinstance(module, nn.modules.batchnorm._BatchNorm) or name == "bias":
                no_decay.append(parameter)
            else:
                decay.append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _restore_loop_progress(trainer: Any, epochs: int, steps: int) -> None:
    """Make Lightning's loops continue at global epoch ``epochs`` / step ``steps``.

    Our checkpoints are not Lightning checkpoints (those pickle hyper-parameters and cannot be
    loaded with ``weights_only=True``), so after loading one we set the loop counters that a
    Lightning checkpoint would restore: the epoch counters (``current_epoch``, ``max_epochs``
    stopping, the sampler's ``set_epoch``) and the optimizer-step counters (``global_step``, the
    loggers' x-axis). Called from ``on_train_start``, after Lightning's own reset.
    """
    for progress in (trainer.fit_loop.epoch_progress.current, trainer.fit_loop.epoch_progress.total):
        progress.ready = progress.started = progress.processed = progress.completed = epochs
    epoch_loop = trainer.fit_loop.epoch_loop
    for progress in (epoch_loop.manual_optimization.optim_step_progress.total,):
        progress.ready = progress.completed = steps
    epoch_loop._batches_that_stepped = steps


class SupernetTrainingModule(BaseOneShotLightningModule):
    """The Lightning side of :class:`ProgressiveShrinking` and :class:`SandwichRule`.

    Manual optimization: each training step plans its subnets (:func:`ofa_nni.training.plan_step`,
    seeded by seed/epoch/batch), sets the phase's learning rate, accumulates the subnets'
    gradients (:func:`ofa_nni.training.train_subnets`) and takes one optimizer step.
    """

    def __init__(
        self,
        training_module: LightningModule,
        *,
        phases: Sequence[Phase],
        settings: TrainingSettings,
        calibration_data: Iterable[Any] | None = None,
    ) -> None:
        super().__init__(training_module)
        self.phases = tuple(phases)
        self.settings = settings
        self.calibration_data = calibration_data
        self.teacher: nn.Module | None = None
        self.history: list[dict[str, Any]] = []
        self._phase_index = -1
        self._epoch_in_phase = 0
        self._epoch_started = 0.0
        self._epoch_loss = (0.0, 0)
        self._validation_buffers: dict[str, dict[str, torch.Tensor]] = {}
        self._training_buffers: dict[str, torch.Tensor] = {}
        self._training_sample: Sample | None = None
        self._validation_samples: dict[str, Sample] = {}

    # ----------------------------------------------------------------- helpers
    @property
    def supernet(self) -> OFASupernet:
        model = self.model
        if not isinstance(model, OFASupernet):
            raise TypeError(
                "ProgressiveShrinking/SandwichRule train an OFA space (OFAMobileNetV3Space, OFAProxylessNASSpace, "
                "OFAResNetSpace), "
                f"got {type(model).__name__}"
            )
        return model

    @property
    def phase(self) -> Phase:
        return self.phases[self._phase_index]

    def _state(self) -> dict[str, Any]:
        optimizer = self.optimizers()
        return {
            "space": self.supernet.arch_space.signature(),
            "schedule": [phase.to_dict() for phase in self.phases],
            "seed": self.settings.seed,
            "epochs_completed": self.trainer.current_epoch + 1,
            "steps_completed": int(self.trainer.global_step),
            "phase_index": self._phase_index,
            "phase_name": self.phase.name,
            "supernet": self.supernet.state_dict(),
            "teacher": None if self.teacher is None else self.teacher.state_dict(),
            "optimizer": cast(Any, optimizer).optimizer.state_dict(),
            "rng": {"torch": torch.get_rng_state()},
            "history": self.history,
            "config": self.settings.run_config,
        }

    def _build_teacher(self) -> nn.Module:
        """A frozen copy of the largest subnet as it is now (OFA's teacher: the full network trained
        in phase one), as a static module in eval mode."""
        teacher = self.supernet.freeze(self.supernet.max_sample())
        teacher.requires_grad_(False)
        return teacher.eval().to(self.device)

    # ------------------------------------------------------------------- setup
    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(
            _optimizer_groups(self.supernet, self.settings.weight_decay),
            lr=self.phases[0].lr,
            momentum=self.settings.momentum,
            nesterov=self.settings.nesterov and self.settings.momentum > 0,
        )

    def on_train_start(self) -> None:
        super().on_train_start()
        checkpoint_dir = self.settings.checkpoint_dir
        path = None if checkpoint_dir is None else checkpoint_dir / LAST_CHECKPOINT
        if not self.settings.resume or path is None:
            return
        if not path.exists():
            _logger.info("no checkpoint at %s: starting from scratch", path)
            return
        state = load_checkpoint(path, map_location=self.device)
        check_compatible(state, space=self.supernet.arch_space.signature(),
                         schedule=[phase.to_dict() for phase in self.phases], seed=self.settings.seed, path=path)
        try:
            self.supernet.load_state_dict(state["supernet"])
            cast(Any, self.optimizers()).optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as error:
            raise CheckpointError(f"checkpoint {str(path)!r} does not fit this supernet: {error}") from None
        if state.get("teacher") is not None:
            self.teacher = self._build_teacher()
            self.teacher.load_state_dict(state["teacher"])
        self.history = list(state["history"])
        if "rng" in state:
            torch.set_rng_state(state["rng"]["torch"].cpu())
        epochs = int(state["epochs_completed"])
        _restore_loop_progress(self.trainer, epochs, int(state["steps_completed"]))
        if epochs < len(self.history):
            raise CheckpointError(f"checkpoint {str(path)!r} is inconsistent: {len(self.history)} epochs of history "
                                  f"but {epochs} epochs completed")
        self._phase_index = int(state["phase_index"])  # the phase the last completed epoch belonged to
        _logger.info("resumed from %s: %d epochs, %d steps done", path, epochs, state["steps_completed"])

    def on_train_epoch_start(self) -> None:
        epoch = self.trainer.current_epoch
        phase_index, self._epoch_in_phase = locate_epoch(self.phases, epoch)
        if phase_index != self._phase_index or self._epoch_in_phase == 0:
            self._enter_phase(phase_index)
        # Augmentation, dropout and the loader's shuffle draw from torch's global RNG: seeding it
        # per epoch makes every epoch reproducible on its own, so a resumed run repeats nothing.
        seeds = np.random.SeedSequence([self.settings.seed, epoch, self.global_rank])
        torch.manual_seed(int(seeds.generate_state(1)[0]))
        self._epoch_started = time.perf_counter()
        self._epoch_loss = (0.0, 0)
        super().on_train_epoch_start()

    def _enter_phase(self, phase_index: int) -> None:
        self._phase_index = phase_index
        phase = self.phase
        if self._epoch_in_phase != 0:
            return  # resumed inside a phase: weights, teacher and optimizer came from the checkpoint
        if phase.keep_expand_ratios is not None:
            self.supernet.sort_channels(phase.keep_expand_ratios)
        if phase.kd_ratio > 0 and not phase.sandwich and self.teacher is None:
            self.teacher = self._build_teacher()
        cast(Any, self.optimizers()).optimizer.state.clear()  # a new phase starts a new optimizer (OFA)
        _logger.info("phase %d/%d %s: %d epochs, lr %.4g, %d subnets/step", phase_index + 1, len(self.phases),
                     phase.name, phase.epochs, phase.lr, phase.subnets_per_step)

    # ---------------------------------------------------------------- training
    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        images, labels = batch[0], batch[1]
        phase = self.phase
        seed = step_seed(self.settings.seed, self.trainer.current_epoch, batch_idx)
        step = plan_step(self.supernet.arch_space, phase, seed)
        steps_per_epoch = int(self.trainer.num_training_batches)
        lr = learning_rate(phase, self._epoch_in_phase, batch_idx, steps_per_epoch)
        optimizer = cast(Any, self.optimizers())
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad()
        if self.teacher is not None:
            self.teacher.eval()  # Lightning may have put every submodule in train mode
        metrics = train_subnets(
            self.supernet, step, images, labels,
            activate=self.supernet.activate,
            backward=self.manual_backward,
            teacher=self.teacher,
            label_smoothing=self.settings.label_smoothing,
        )
        if not np.isfinite(metrics["loss"]):
            self._diverged(f"the training loss is {metrics['loss']} at step {batch_idx + 1}")
        optimizer.step()
        total, count = self._epoch_loss
        self._epoch_loss = (total + metrics["loss"], count + 1)
        self.log("train_loss", metrics["loss"], prog_bar=True, on_step=True, on_epoch=True, sync_dist=True)
        self.log("train_acc", metrics["accuracy"], on_step=False, on_epoch=True, sync_dist=True)  # first subnet
        self.log("lr", lr, prog_bar=True)
        self.log("phase", float(self._phase_index))
        return torch.tensor(metrics["loss"])

    # -------------------------------------------------------------- validation
    def _calibration_batches(self) -> Iterable[Any]:
        if self.calibration_data is not None:
            return self.calibration_data
        return self.trainer.train_dataloader  # type: ignore[return-value]

    def on_validation_epoch_start(self) -> None:
        supernet = self.supernet
        self._training_sample = supernet.active_sample()
        self._training_buffers = batchnorm_buffers(supernet)
        self._validation_buffers = {}
        subnets = validation_subnets(supernet.arch_space, num_random=self.settings.validation_random_subnets,
                                     seed=self.settings.seed)
        for name, sample in subnets.items():
            supernet.activate(sample)
            recalibrate_batchnorm(supernet, self._calibration_batches(),
                                  num_batches=self.settings.calibration_batches)
            self._validation_buffers[name] = batchnorm_buffers(supernet)
        self._validation_samples = subnets
        load_batchnorm_buffers(supernet, self._training_buffers)
        super().on_validation_epoch_start()

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        images, labels = batch[0], batch[1]
        supernet = self.supernet
        accuracies = []
        for name, sample in self._validation_samples.items():
            load_batchnorm_buffers(supernet, self._validation_buffers[name])
            supernet.activate(sample)
            accuracy = (supernet(images).argmax(1) == labels).float().mean()
            accuracies.append(accuracy)
            self.log(f"val_acc_{name}", accuracy, on_epoch=True, on_step=False, batch_size=len(labels),
                     sync_dist=True, prog_bar=name in ("smallest", "largest"))
        # ``val_acc``: mean over the validated subnets, the one number NNI's evaluator reports.
        self.log("val_acc", torch.stack(accuracies).mean(), on_epoch=True, on_step=False, batch_size=len(labels),
                 sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        load_batchnorm_buffers(self.supernet, self._training_buffers)
        if self._training_sample is not None:
            self.supernet.activate(self._training_sample)
        self._validation_buffers = {}

    # ------------------------------------------------------------ epoch end
    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        total, count = self._epoch_loss
        record: dict[str, Any] = {
            "epoch": self.trainer.current_epoch,
            "phase": self.phase.name,
            "epoch_in_phase": self._epoch_in_phase,
            "train_loss": total / max(count, 1),
            "seconds": time.perf_counter() - self._epoch_started,
        }
        for key, value in self.trainer.callback_metrics.items():
            if key.startswith("val_acc_"):
                record[key] = float(value)
        bad, total, names = non_finite_weights(self.supernet.state_dict())
        if bad:
            self._diverged(f"{bad:,} of {total:,} weights are not finite (in {names[0]}"
                           f"{f' and {len(names) - 1} more tensors' if len(names) > 1 else ''})")
        self.history.append(record)
        checkpoint_dir = self.settings.checkpoint_dir
        if checkpoint_dir is None or not self.trainer.is_global_zero:
            return
        last = save_checkpoint(checkpoint_dir / LAST_CHECKPOINT, self._state())
        if self._epoch_in_phase == self.phase.epochs - 1:  # phase boundary: keep a copy
            boundary = checkpoint_dir / f"phase{self._phase_index + 1}-{self.phase.name}.pt"
            temporary = boundary.with_name(f".{boundary.name}.tmp")
            shutil.copyfile(last, temporary)
            temporary.replace(boundary)

    def _diverged(self, what: str) -> None:
        """Stop a run that diverged before it writes a checkpoint of it: the last checkpoint (the last
        finite weights) stays what --resume and the supernet loaders find."""
        checkpoint_dir = self.settings.checkpoint_dir
        kept = ("the last finite checkpoint, " + str(checkpoint_dir / LAST_CHECKPOINT) + ", is kept"
                if checkpoint_dir is not None and (checkpoint_dir / LAST_CHECKPOINT).exists()
                else "no checkpoint was written")
        raise TrainingDivergedError(
            f"training diverged in epoch {self.trainer.current_epoch + 1} (phase {self.phase.name!r}): {what}; "
            f"{kept}. Lower the learning rate (strategy.lr, or the phase's lr) and start again"
        )

    def on_fit_end(self) -> None:
        # NNI's evaluator reports ``val_acc`` when fit ends; a resumed run with nothing left to do
        # (or validation every n > 1 epochs) has not logged it in this session: report the last one.
        validated = [record for record in self.history if any(k.startswith("val_acc_") for k in record)]
        if "val_acc" not in self.trainer.callback_metrics and validated:
            accuracies = [v for k, v in validated[-1].items() if k.startswith("val_acc_")]
            self.trainer.callback_metrics["val_acc"] = torch.tensor(sum(accuracies) / len(accuracies))
        super().on_fit_end()

    def export(self) -> Sample:
        """The largest subnet: a supernet trained for every subnet has no single best one; run a
        search (predictor-guided evolution) on it to specialise."""
        return self.supernet.max_sample()


class _SupernetStrategy(OneShotStrategy):
    """Shared parts of the two schedules: the optimizer, validation and checkpoint settings."""

    def __init__(
        self,
        *,
        settings: TrainingSettings | None = None,
        calibration_data: Iterable[Any] | None = None,
        seed: int | None = None,
        label_smoothing: float | None = None,
        momentum: float | None = None,
        nesterov: bool | None = None,
        weight_decay: float | None = None,
        validation_random_subnets: int | None = None,
        calibration_batches: int | None = None,
        checkpoint_dir: str | Path | None = None,
        resume: bool | None = None,
        run_config: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        # NNI's base classes take only mutation_hooks; another key (a misspelt setting) would end in
        # "Strategy.__init__() got an unexpected keyword argument", naming neither this class nor
        # what it takes.
        unknown = sorted(set(kwargs) - {"mutation_hooks"})
        if unknown:
            own = inspect.signature(type(self)).parameters, inspect.signature(_SupernetStrategy).parameters
            allowed = sorted(({*own[0], *own[1]} - {"kwargs"}) | {"mutation_hooks"})
            raise InvalidInputError(f"{type(self).__name__}: unknown setting {unknown[0]!r}; allowed: {allowed}")
        super().__init__(**kwargs)
        # The keyword arguments map one to one onto the settings' fields; those not given (None)
        # keep the values of ``settings`` (default: OFA's). The settings check them, once.
        given = {"seed": seed, "label_smoothing": label_smoothing, "momentum": momentum, "nesterov": nesterov,
                 "weight_decay": weight_decay, "validation_random_subnets": validation_random_subnets,
                 "calibration_batches": calibration_batches, "checkpoint_dir": checkpoint_dir, "resume": resume,
                 "run_config": run_config}
        self.settings = TrainingSettings.build(settings, **{k: v for k, v in given.items() if v is not None})
        self.calibration_data = calibration_data
        self.phases: tuple[Phase, ...] = ()
        self._supernet: OFASupernet | None = None

    def build_phases(self, supernet: OFASupernet, evaluator: Lightning) -> tuple[Phase, ...]:
        raise NotImplementedError

    def default_mutation_hooks(self) -> list[Any]:
        # The space's supernet modules are kept by its own hook (extra_oneshot_hooks); nothing else
        # may carry mutables.
        from nni.nas.oneshot.pytorch.strategy import no_default_hook

        return [no_default_hook]

    def mutate_model(self, model: Any) -> Any:
        if not isinstance(model, OFASupernet):
            raise TypeError(f"{type(self).__name__} trains an OFA space (OFAMobileNetV3Space, OFAProxylessNASSpace, "
                            f"OFAResNetSpace), got {type(model).__name__}")
        self._supernet = model
        return super().mutate_model(model)

    def mutate_evaluator(self, evaluator: Any) -> Any:
        if self._supernet is None:
            raise RuntimeError("mutate_model must run before mutate_evaluator")
        if not isinstance(evaluator, Lightning):
            raise TypeError(
                f"{type(self).__name__} trains with an NNI Lightning evaluator (e.g. "
                f"nni.nas.evaluator.pytorch.Classification), got {type(evaluator).__name__}"
            )
        self.phases = self.build_phases(self._supernet, evaluator)
        mutated = super().mutate_evaluator(evaluator)
        mutated.trainer.fit_loop.max_epochs = sum(phase.epochs for phase in self.phases)
        return mutated

    def state_dict(self) -> dict:
        """For ``NasExperiment``'s own checkpoints: where this strategy's checkpoints are (NNI's
        default looks for a Lightning ModelCheckpoint callback, which our runs do not use)."""
        checkpoint_dir = self.settings.checkpoint_dir
        return {} if checkpoint_dir is None else {"checkpoint_dir": str(checkpoint_dir)}

    def load_state_dict(self, state_dict: dict) -> None:
        """``NasExperiment.resume``: continue from the checkpoints the experiment recorded."""
        if state_dict.get("checkpoint_dir"):
            self.settings = dataclasses.replace(self.settings, checkpoint_dir=Path(state_dict["checkpoint_dir"]),
                                                resume=True)
            module = self.oneshot_module
            if isinstance(module, SupernetTrainingModule):
                module.settings = self.settings

    def configure_oneshot_module(self, training_module: LightningModule) -> SupernetTrainingModule:
        return SupernetTrainingModule(training_module, phases=self.phases, settings=self.settings,
                                      calibration_data=self.calibration_data)


def _global_batch_size(evaluator: Lightning) -> int:
    loader = evaluator.train_dataloaders
    batch_size = getattr(loader, "batch_size", None)
    if not isinstance(batch_size, int):
        raise InvalidInputError(
            "cannot tell the training batch size from the evaluator's train_dataloaders; pass "
            "lr_batch_size= (the global batch size the recipe's learning rates are scaled to)"
        )
    trainer = evaluator.trainer
    return batch_size * int(getattr(trainer, "num_devices", 1)) * int(getattr(trainer, "num_nodes", 1))


class ProgressiveShrinking(_SupernetStrategy):
    """OFA's progressive shrinking (Cai et al., ICLR 2020, Sec. 3.2) as an NNI one-shot strategy.

    Phases: full network -> elastic kernel -> elastic depth (two steps) -> elastic expand ratio
    (two steps); resolution elastic throughout. The named recipe (``"paper"``:
    :data:`ofa_nni.training.PAPER_RECIPE`, 600 epochs on ImageNet; ``"short"``:
    :data:`ofa_nni.training.SHORT_RECIPE`, for a small fraction of them) is scaled by
    ``epochs_factor`` and its learning rates linearly to the batch size. From the kernel phase on,
    each subnet also distils from the full network of phase one (the teacher, frozen, in eval
    mode; soft cross-entropy weighted by ``kd_ratio``). Before each width phase, channels are re-ordered by
    importance (L1 norm), keeping the channel sets already trained.

    Args:
        recipe: ``"paper"`` or ``"short"`` (:data:`ofa_nni.training.RECIPES`).
        epochs_factor: Multiplies every phase's epochs (at least 1 per phase).
        kd_ratio: Weight of the distillation loss (OFA: 1.0).
        phase_overrides: Per phase name, fields to replace (``epochs``, ``warmup_epochs``, ``lr``,
            ``subnets_per_step``, ``kd_ratio``, ``include_smallest``: ``PHASE_OVERRIDE_FIELDS``),
            e.g. ``{"kernel": {"epochs": 3}}``.
        phases: A complete schedule instead of a recipe (``recipe``, ``epochs_factor``, ``kd_ratio``
            and ``phase_overrides`` must then be left at their defaults).
        lr_batch_size: Global batch size the recipe's learning rates are scaled to (default: the
            training loader's batch size times devices).
        settings: The run's :class:`ofa_nni.training.TrainingSettings` (default: OFA's).
        seed, label_smoothing, momentum, nesterov, weight_decay, validation_random_subnets,
            calibration_batches, checkpoint_dir, resume, run_config: The fields of ``settings`` by
            keyword, one to one (a value given here replaces the one in ``settings``):
            ``validation_random_subnets`` random subnets are validated every epoch besides the
            smallest, median and largest, after recalibrating their batch norms on
            ``calibration_batches`` batches; checkpoints go to ``checkpoint_dir`` (none if
            ``None``); ``resume`` continues from ``checkpoint_dir/last.pt`` if it exists.
        calibration_data: Batches for BN recalibration before validation (default: the training
            loader).

    Example:
        >>> strategy = ProgressiveShrinking(epochs_factor=0.05, checkpoint_dir="runs/ps")
        >>> NasExperiment(supernet, Classification(train_dataloaders=..., val_dataloaders=...), strategy).run()
    """

    def __init__(
        self,
        *,
        recipe: str = "paper",
        epochs_factor: float = 1.0,
        kd_ratio: float = 1.0,
        phase_overrides: Mapping[str, Mapping[str, Any]] | None = None,
        phases: Sequence[Phase] | None = None,
        lr_batch_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if phases is not None and (recipe != "paper" or epochs_factor != 1.0 or kd_ratio != 1.0 or phase_overrides):
            raise InvalidInputError(
                "pass either phases= or a recipe with its epochs_factor/kd_ratio/phase_overrides, not both"
            )
        self.recipe = recipe
        self.epochs_factor = epochs_factor
        self.kd_ratio = kd_ratio
        self.phase_overrides = dict(phase_overrides or {})
        self.explicit_phases = None if phases is None else tuple(phases)
        self.lr_batch_size = lr_batch_size

    def build_phases(self, supernet: OFASupernet, evaluator: Lightning) -> tuple[Phase, ...]:
        if self.explicit_phases is not None:
            return self.explicit_phases
        batch_size = self.lr_batch_size or _global_batch_size(evaluator)
        return progressive_shrinking(supernet.arch_space, recipe=self.recipe, epochs_factor=self.epochs_factor,
                                     batch_size=batch_size, kd_ratio=self.kd_ratio, overrides=self.phase_overrides)


class SandwichRule(_SupernetStrategy):
    """BigNAS's sandwich rule (Yu et al., ECCV 2020) as an NNI one-shot strategy.

    No phases: every step trains the largest subnet (at the largest resolution, from labels), the
    smallest (smallest resolution) and ``num_random`` random subnets, the latter from the largest's
    soft labels ("inplace distillation"); gradients are accumulated, then one optimizer step.

    Args:
        epochs: Training epochs.
        lr: Peak learning rate (default: OFA's full-network rate 2.6 scaled to the batch size).
        num_random: Random subnets per step besides the largest and smallest (BigNAS: 2).
        warmup_epochs: Linear warm-up epochs.
        lr_batch_size: As for :class:`ProgressiveShrinking`.
        **kwargs: The shared settings of :class:`ProgressiveShrinking` (seed, checkpoints, ...).
    """

    def __init__(self, *, epochs: int, lr: float | None = None, num_random: int = 2, warmup_epochs: int = 0,
                 lr_batch_size: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.epochs, self.lr, self.num_random, self.warmup_epochs = epochs, lr, num_random, warmup_epochs
        self.lr_batch_size = lr_batch_size

    def build_phases(self, supernet: OFASupernet, evaluator: Lightning) -> tuple[Phase, ...]:
        lr = self.lr
        if lr is None:
            lr = 2.6 * (self.lr_batch_size or _global_batch_size(evaluator)) / PAPER_BATCH_SIZE
        return sandwich_rule(supernet.arch_space, epochs=self.epochs, lr=lr, num_random=self.num_random,
                             warmup_epochs=self.warmup_epochs)
