"""``train(config)``: a whole supernet training run from a configuration, without writing NNI code.

This is the application layer (like :mod:`ofa_nni.app.commands`): it builds the space
(``search_spaces``), the data (:mod:`ofa_nni.data`), an NNI Lightning evaluator and the strategy
(``strategies``), and runs the strategy on NNI's sequential execution engine, i.e. exactly what
``NasExperiment(space, evaluator, strategy).run()`` does with a one-shot strategy, minus the
experiment manifest and log redirection under ``~/nni-experiments`` (the run directory holds
everything).

Run directory::

    config.yaml               the resolved configuration
    checkpoints/last.pt       after every epoch (atomic); phase<k>-<name>.pt at phase ends
    supernet.pt               the trained supernet (search_spaces.supernet_file)
    metrics.json              per-epoch history and per-phase summary (atomic)
    logs/version_<n>/         Lightning CSV (and TensorBoard) logs, one version per session
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ofa_nni._artifacts import atomic_write, exclusive_lock
from ofa_nni.data import ImageData, calibration_loader, check_batch_size, load_data
from ofa_nni.errors import InvalidInputError
from ofa_nni.training.checkpoint import CheckpointError, check_compatible, load_checkpoint
from ofa_nni.training.config import ConfigError, ProgressiveShrinkingConfig, TrainConfig, load_config
from search_spaces import save_supernet, space_class
from strategies import ProgressiveShrinking, SandwichRule

__all__ = ["TrainResult", "train", "build_space"]


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What a training run produced.

    Attributes:
        run_dir: The run directory.
        checkpoint: The last training checkpoint (resumable).
        supernet_path: The trained supernet (``search_spaces.load_supernet``).
        phases: Per phase: ``name``, ``epochs``, ``seconds``, last epoch's ``val_acc_*``.
        history: Per epoch: ``epoch``, ``phase``, ``train_loss``, ``val_acc_*``, ``seconds``.
        seconds: Wall time of this call (a resumed call counts only its own time).
        is_global_zero: False in the other processes of a data-parallel run (which write nothing).
    """

    run_dir: Path
    checkpoint: Path
    supernet_path: Path
    phases: list[dict[str, Any]]
    history: list[dict[str, Any]]
    seconds: float
    is_global_zero: bool = True


def build_space(config: TrainConfig, num_classes: int) -> Any:
    """The search space of ``config.space`` (its class by ``space.name``) with ``num_classes`` outputs."""
    try:
        return space_class(config.space.name)(num_classes=num_classes, **config.space.space_kwargs())
    except (TypeError, ValueError) as error:
        raise InvalidInputError(f"space: {error}") from None


def _atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda stream: stream.write(text.encode("utf-8")))


def _phase_summary(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    phases: list[dict[str, Any]] = []
    for record in history:
        if not phases or phases[-1]["name"] != record["phase"]:
            phases.append({"name": record["phase"], "epochs": 0, "seconds": 0.0})
        summary = phases[-1]
        summary["epochs"] += 1
        summary["seconds"] += record["seconds"]
        summary.update({key: value for key, value in record.items() if key.startswith("val_acc_")})
    return phases


def _strategy(config: TrainConfig, data: ImageData, checkpoint_dir: Path, resume: bool) -> Any:
    settings = config.training_settings(checkpoint_dir=checkpoint_dir, resume=resume)
    calibration_data = calibration_loader(data, batch_size=config.data.batch_size)
    strategy = config.strategy
    if isinstance(strategy, ProgressiveShrinkingConfig):
        return ProgressiveShrinking(recipe=strategy.recipe, epochs_factor=strategy.epochs_factor,
                                    kd_ratio=strategy.kd_ratio, phase_overrides=strategy.phases,
                                    settings=settings, calibration_data=calibration_data)
    return SandwichRule(epochs=strategy.epochs, lr=strategy.lr, num_random=strategy.num_random,
                        warmup_epochs=strategy.warmup_epochs, settings=settings, calibration_data=calibration_data)


def _steps_per_epoch(batches: int, limit: int | float) -> int:
    return min(batches, limit) if isinstance(limit, int) else int(batches * limit)


def _loggers(config: TrainConfig, run_dir: Path) -> list[Any]:
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    loggers: list[Any] = []
    for name in config.trainer.loggers:
        if name == "csv":
            loggers.append(CSVLogger(save_dir=str(run_dir), name="logs"))
        else:
            try:
                import tensorboard  # noqa: F401
            except ImportError:
                raise InvalidInputError("trainer.loggers: 'tensorboard' needs the tensorboard package "
                                 "(pip install tensorboard), or use ['csv']") from None
            loggers.append(TensorBoardLogger(save_dir=str(run_dir), name="logs"))
    return loggers


def _trainer(config: TrainConfig, run_path: Path, train_loader: Any) -> Any:
    """The Lightning trainer of the run; settings Lightning refuses are a one-line :class:`ConfigError`."""
    from lightning_fabric.utilities.exceptions import MisconfigurationException
    from nni.nas.evaluator.pytorch import Trainer

    settings = config.trainer
    try:
        return Trainer(
            accelerator=settings.accelerator,
            devices=settings.devices,
            num_nodes=settings.num_nodes,
            strategy=settings.strategy,
            precision=settings.precision,
            logger=_loggers(config, run_path),
            enable_checkpointing=False,  # our own checkpoints (atomic, weights_only-loadable)
            enable_progress_bar=settings.progress_bar,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            check_val_every_n_epoch=config.validation.every_n_epochs,
            limit_train_batches=settings.limit_train_batches,
            limit_val_batches=settings.limit_val_batches,
            log_every_n_steps=max(1, min(50, _steps_per_epoch(len(train_loader), settings.limit_train_batches) // 2)),
            default_root_dir=str(run_path),
        )
    except (MisconfigurationException, ValueError, TypeError, ImportError) as error:
        # Lightning checks accelerator, devices, strategy and precision together, in its own words.
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(
            f"trainer: Lightning refuses accelerator {settings.accelerator!r}, devices {settings.devices!r}, "
            f"strategy {settings.strategy!r}, precision {settings.precision!r} on this machine: {first_line}"
        ) from None


def train(config: TrainConfig | Mapping[str, Any] | str | Path, *, run_dir: str | Path | None = None,
          resume: bool = False) -> TrainResult:
    """Train a supernet as ``config`` says (a :class:`TrainConfig`, a dict or a YAML path).

    Args:
        config: The run's configuration (see ``examples/train_digits.yaml``).
        run_dir: Overrides ``config.run_dir`` (one of them is required).
        resume: Continue the run in ``run_dir`` from its last checkpoint (same configuration
            required; a run directory without one is refused); without it, a run directory that
            already holds a checkpoint is refused.

    The run directory is locked for the whole run (:func:`ofa_nni._artifacts.exclusive_lock`): a
    second run into it is refused at once, naming the process that holds it.

    Returns:
        A :class:`TrainResult` (run directory, checkpoint, supernet path, per-phase metrics).
    """
    started = time.perf_counter()
    if not isinstance(config, TrainConfig):
        config = load_config(config)
    chosen = run_dir if run_dir is not None else config.run_dir
    if chosen is None:
        raise InvalidInputError("no run directory: set run_dir in the configuration or pass --run-dir")
    run_path = Path(chosen).expanduser()
    config = config.replace(run_dir=str(run_path))

    # Build the space first with a placeholder class count: its resolutions decide the image size.
    resolution = max(build_space(config, num_classes=2).arch_space.resolutions)
    data = load_data(config.data.kind, root=config.data.root, resolution=resolution,
                     calibration_images=config.data.calibration_images)
    check_batch_size(data, config.data.batch_size)
    # Everything is checked: from here on the run directory is this process's until it returns (a
    # second run into it, even one started a moment later, is refused at once). The other processes
    # of a data-parallel run (Lightning starts them with LOCAL_RANK >= 1) work under the lock of the
    # process that started them.
    spawned_by_lightning = int(os.environ.get("LOCAL_RANK", "0") or 0) > 0
    lock = contextlib.nullcontext() if spawned_by_lightning else exclusive_lock(run_path, "run directory")
    with lock:
        return _train_locked(config, run_path, data, resume, started)


def _train_locked(config: TrainConfig, run_path: Path, data: ImageData, resume: bool, started: float) -> TrainResult:
    from nni.nas.evaluator.pytorch import ClassificationModule, DataLoader, Lightning
    from nni.nas.execution import SequentialExecutionEngine
    from nni.nas.space import RawFormatModelSpace

    checkpoint_dir = run_path / "checkpoints"
    last = checkpoint_dir / "last.pt"
    if last.exists() and not resume:
        raise CheckpointError(f"{str(run_path)!r} already holds a training run ({last}); pass --resume "
                              "(resume=True) to continue it, or choose another run directory")
    if resume and not last.exists():
        raise CheckpointError(f"--resume: {str(run_path)!r} holds no checkpoint to continue ({last} does not exist); "
                              "run without --resume to start a new run there")
    torch.manual_seed(config.seed)  # the initial weights: a resumed run must rebuild the same supernet
    supernet = build_space(config, num_classes=data.num_classes)
    train_loader = DataLoader(data.train, batch_size=config.data.batch_size, shuffle=True, drop_last=True,
                              num_workers=config.data.num_workers)
    val_loader = DataLoader(data.val, batch_size=max(config.data.batch_size, 128), shuffle=False,
                            num_workers=config.data.num_workers)
    for key, loader in (("limit_train_batches", train_loader), ("limit_val_batches", val_loader)):
        limit = getattr(config.trainer, key)
        if _steps_per_epoch(len(loader), limit) < 1:  # Lightning would fail mid-run with a traceback
            raise ConfigError(f"trainer.{key}: {limit!r} of {len(loader)} batches is less than one batch; allowed: "
                              f"a fraction >= {1 / len(loader):.3g} or a number of batches >= 1")
    trainer = _trainer(config, run_path, train_loader)
    run_path.mkdir(parents=True, exist_ok=True)
    import yaml

    if not (resume and (run_path / "config.yaml").is_file()):
        # A resumed run keeps the file of the run it continues: a resume refused for another
        # configuration must not leave that configuration behind as the run's.
        _atomic_write_text(run_path / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))

    evaluator = Lightning(ClassificationModule(num_classes=data.num_classes), trainer,
                          train_dataloaders=train_loader, val_dataloaders=val_loader)
    strategy = _strategy(config, data, checkpoint_dir, resume)
    if resume:
        # The strategy checks this too, once NNI runs it; NNI then logs its own failure lines
        # ("Model 1 fails to be executed") before our one-line error. Checked here first, they never come.
        check_compatible(load_checkpoint(last), space=supernet.arch_space.signature(),
                         schedule=[phase.to_dict() for phase in strategy.build_phases(supernet, evaluator)],
                         seed=strategy.settings.seed, path=last)
    strategy.initialize(RawFormatModelSpace(supernet, evaluator), SequentialExecutionEngine())
    strategy.run()

    module = strategy.oneshot_module
    history = list(module.history)
    supernet_path = run_path / "supernet.pt"
    if trainer.is_global_zero:
        save_supernet(supernet, supernet_path, history=history)
        phases = _phase_summary(history)
        _atomic_write_text(run_path / "metrics.json", json.dumps({"phases": phases, "history": history}, indent=2))
    return TrainResult(run_dir=run_path, checkpoint=last, supernet_path=supernet_path,
                       phases=_phase_summary(history), history=history, seconds=time.perf_counter() - started,
                       is_global_zero=bool(trainer.is_global_zero))
