"""The paper's ablation in small: progressive shrinking vs uniform random sampling from scratch.

OFA (Cai et al., ICLR 2020, Fig. 7) reports that progressive shrinking makes the subnets of one
supernet more accurate than training them jointly from scratch. Here, on the embedded default
(scikit-learn's digits, fixed held-out split) and the CPU-sized space (``space.preset: cpu``),
side by side in one run, for each seed:

(a) progressive shrinking: ``ofa_nni.training.train`` with the demo's schedule (the ``--recipe``,
    default the demo's ``short``, x ``--epochs-factor``, with the per-phase overrides of
    ``--phases``, the configuration's ``strategy.phases`` as JSON), no per-epoch validation;
(b) NNI's ``RandomOneShot`` (uniform random subnet every step, all choices from the start) with
    the same total number of subnet-steps (forward+backward passes of a subnet; a progressive-
    shrinking step with k subnets counts k; the teacher's forward passes are not counted), the
    same space, data, batch size, augmentation, optimizer (SGD Nesterov 0.9, weight decay 3e-5,
    label smoothing 0.1) and the full-network learning rate with a cosine decay over the run.

Then every supernet is evaluated on the held-out digits: the smallest, the median (middle choice of
every label, :func:`ofa_nni.training.median_sample`), the largest and 10 fixed random subnets, each
with its BN statistics recalibrated on the same 256 training images. Wall times are of training
only. Run (``--markdown`` writes a fresh file with the table)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ps_vs_random_oneshot.py --seeds 0 1 --threads 1 \\
        --markdown /tmp/ps_vs_random_oneshot.md

The paper's recipe itself, or a variant of a recipe, e.g. the paper's with the later phases at the
kernel phase's learning rate (variant A in the results; 0.03 at batch 64)::

    .venv/bin/python benchmarks/ps_vs_random_oneshot.py --seeds 0 1 --recipe paper
    .venv/bin/python benchmarks/ps_vs_random_oneshot.py --seeds 0 1 --recipe paper --epochs-factor 0.125 \\
        --phases '{"depth1": {"lr": 0.03}, "depth2": {"lr": 0.03}, "expand1": {"lr": 0.03}, "expand2": {"lr": 0.03}}'

On an ``.npz`` (docs/data.md), e.g. Animal-MNIST from ``benchmarks/data.py``: ``--data PATH.npz``.

RandomOneShot always gets as many subnet-steps as the (overridden) schedule has. The numbers in
``benchmarks/results/ps_vs_random_oneshot.md`` were taken with ``--threads 1``, one seed per process.

A training stopped before its last step (SIGTERM, which Lightning turns into an early end of the fit, or
Ctrl-C) is an error: the script then evaluates, prints and saves nothing more and exits with status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import functools
import json
import os
import platform
import random
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ofa_nni.app.runner import build_space, train
from ofa_nni.data import digits_split_digest, load_data
from ofa_nni.runtime import recalibrate_batchnorm
from ofa_nni.training import RECIPES, demo_config, median_sample, progressive_shrinking
from ofa_nni.training.config import ConfigError, ProgressiveShrinkingConfig, TrainerConfig, ValidationConfig
from search_spaces import load_supernet, save_supernet

RANDOM_SUBNETS = 10
CALIBRATION_BATCHES = 4
CALIBRATION_SEED = 0


class TrainingInterrupted(RuntimeError):
    """A training ended before its planned last step; its supernet must not be evaluated or kept."""


@contextlib.contextmanager
def _stopping_is_an_error(training: str) -> Iterator[None]:
    """Turn the ways a training is stopped from outside into :class:`TrainingInterrupted`.

    On SIGTERM, Lightning ends the fit early by raising ``SIGTERMException``, a ``SystemExit`` without
    a code (so the process would exit with status 0), and on Ctrl-C it calls ``sys.exit(1)``; NNI's
    experiment swallows a ``KeyboardInterrupt`` and returns as if it had finished."""
    try:
        yield
    except (SystemExit, KeyboardInterrupt) as stop:
        raise TrainingInterrupted(f"{training} was stopped ({type(stop).__name__}) before its last step; "
                                  "nothing of it is evaluated or saved") from stop


def _loaders(config: Any, data: Any) -> tuple[Any, Any]:
    from nni.nas.evaluator.pytorch import DataLoader

    train_loader = DataLoader(data.train, batch_size=config.data.batch_size, shuffle=True, drop_last=True)
    val_loader = DataLoader(data.val, batch_size=256, shuffle=False)
    return train_loader, val_loader


def _train_random_oneshot(config: Any, data: Any, subnet_steps: int, seed: int,
                          callbacks: Sequence[Any] = ()) -> tuple[Any, tuple[float, float], int]:
    """NNI's RandomOneShot with the same optimizer recipe and ``subnet_steps`` steps.

    ``callbacks``: extra Lightning callbacks for the trainer. Raises :class:`TrainingInterrupted` unless
    the trainer finished all its planned steps."""
    import nni
    from nni.nas.evaluator.pytorch import ClassificationModule, Lightning, Trainer
    from nni.nas.experiment import NasExperiment
    from nni.nas.strategy import RandomOneShot
    from pytorch_lightning.trainer.states import TrainerStatus

    torch.manual_seed(seed)
    random.seed(seed)  # NNI's supernet modules sample with the random module
    space = build_space(config, num_classes=data.num_classes)
    train_loader, val_loader = _loaders(config, data)
    steps_per_epoch = len(train_loader)
    epochs = max(1, round(subnet_steps / steps_per_epoch))
    lr = progressive_shrinking(space.arch_space, batch_size=config.data.batch_size)[0].lr  # every recipe's phase one
    total_steps = epochs * steps_per_epoch

    @nni.trace
    class CosineSGDClassification(ClassificationModule):
        def configure_optimizers(self) -> Any:
            optimizer = torch.optim.SGD(self.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=3e-5)
            schedule = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda step: 0.5 * (1 + np.cos(np.pi * min(step, total_steps) / total_steps)))
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    module = CosineSGDClassification(criterion=functools.partial(torch.nn.CrossEntropyLoss, label_smoothing=0.1),
                                     num_classes=data.num_classes)
    trainer = Trainer(max_epochs=epochs, accelerator="cpu", enable_progress_bar=False, logger=False,
                      enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0,
                      check_val_every_n_epoch=10**6, callbacks=list(callbacks))
    evaluator = Lightning(module, trainer, train_dataloaders=train_loader, val_dataloaders=val_loader)
    with tempfile.TemporaryDirectory() as working:
        experiment = NasExperiment(space, evaluator, RandomOneShot())
        experiment.config.experiment_working_directory = working
        started, cpu_started = time.perf_counter(), time.process_time()
        with _stopping_is_an_error(f"RandomOneShot (seed {seed})"):
            experiment.run()
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    # Whatever NNI or Lightning caught on the way: a run is complete only if the trainer says so.
    if trainer.state.status != TrainerStatus.FINISHED or trainer.global_step != total_steps:
        raise TrainingInterrupted(f"RandomOneShot (seed {seed}) stopped after {trainer.global_step} of "
                                  f"{total_steps} steps (trainer status {trainer.state.status.value}); "
                                  "nothing of it is evaluated or saved")
    return space, (seconds, cpu_seconds), total_steps


@torch.no_grad()
def _evaluate(space: Any, data: Any, seed: int) -> dict[str, float]:
    arch = space.arch_space
    # A fixed random draw of the calibration subset, not its first batches: that subset is kept in file order,
    # and a file sorted by class (Animal-MNIST from benchmarks/data.py) gave BN statistics of two classes of ten.
    draw = np.random.default_rng(CALIBRATION_SEED).permutation(len(data.calibration))[:CALIBRATION_BATCHES * 64]
    calibration = list(torch.utils.data.DataLoader(torch.utils.data.Subset(data.calibration, draw.tolist()),
                                                   batch_size=64))
    images = torch.stack([data.val[i][0] for i in range(len(data.val))])
    labels = torch.tensor([data.val[i][1] for i in range(len(data.val))])
    rng = np.random.default_rng([1234, seed])
    subnets = {"smallest": arch.min_sample(), "median": median_sample(arch), "largest": arch.max_sample()}
    subnets.update({f"random{i}": arch.random_sample(rng) for i in range(RANDOM_SUBNETS)})
    result = {}
    space.eval()
    for name, sample in subnets.items():
        space.activate(sample)
        recalibrate_batchnorm(space, calibration)
        result[name] = float((space(images).argmax(1) == labels).float().mean())
    result["random_mean"] = statistics.fmean(result[f"random{i}"] for i in range(RANDOM_SUBNETS))
    return result


def _phase_overrides(text: str) -> dict[str, Any]:
    """``--phases``: a JSON object ``{phase: {field: value}}`` (checked by ProgressiveShrinkingConfig)."""
    try:
        overrides = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not JSON ({error}): {text!r}") from None
    if not isinstance(overrides, dict) or not all(isinstance(v, dict) for v in overrides.values()):
        raise argparse.ArgumentTypeError(f"expected a JSON object of phase -> {{field: value}}, got {text!r}")
    return overrides


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--threads", type=int, default=2)
    demo_strategy: Any = demo_config().strategy
    parser.add_argument("--recipe", choices=tuple(RECIPES), default=demo_strategy.recipe,
                        help=f"progressive-shrinking recipe (default: the demo's, {demo_strategy.recipe})")
    parser.add_argument("--epochs-factor", type=float, default=demo_strategy.epochs_factor)
    parser.add_argument("--phases", type=_phase_overrides, default=None, metavar="JSON",
                        help="per-phase overrides of progressive shrinking (strategy.phases), e.g. "
                             "'{\"expand2\": {\"lr\": 0.03}}'")
    parser.add_argument("--trainings", nargs="+", choices=("ps", "random"), default=["ps", "random"],
                        help="which trainings to run (RandomOneShot does not depend on --phases, so a PS variant "
                             "can reuse an earlier RandomOneShot run of the same seed and budget)")
    parser.add_argument("--markdown", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=None, metavar="PATH.npz",
                        help="an .npz data set (docs/data.md) instead of digits")
    parser.add_argument("--keep-runs", type=Path, default=None, metavar="DIR",
                        help="keep each progressive-shrinking run (its supernet.pt, for bench_predictor_quality.py "
                             "or ofa_vs_scratch.py) in DIR/RECIPE-seedS instead of a temporary directory, and "
                             "RandomOneShot's supernet as DIR/random-seedS.pt")
    parser.add_argument("--evaluate", type=Path, nargs="+", default=None, metavar="SUPERNET",
                        help="train nothing: evaluate these supernet files (e.g. kept with --keep-runs) as the "
                             "trained ones are, with the evaluation seed --seeds (one)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    base = demo_config()
    try:
        strategy = ProgressiveShrinkingConfig(recipe=args.recipe, epochs_factor=args.epochs_factor, phases=args.phases)
    except ConfigError as error:
        parser.error(f"--phases: {error}")
    config = base.replace(
        strategy=strategy,
        validation=ValidationConfig(random_subnets=0, calibration_batches=1, every_n_epochs=10**6),
        trainer=TrainerConfig(progress_bar=False, loggers=[]),
    )
    if args.data is not None:
        config = config.replace(data=dataclasses.replace(config.data, kind="npz", root=str(args.data.resolve())))
    resolution = max(build_space(config, num_classes=2).arch_space.resolutions)
    data = load_data(config.data.kind, root=config.data.root, resolution=resolution,
                     calibration_images=config.data.calibration_images)
    space_for_size = build_space(config, num_classes=data.num_classes)
    if args.evaluate is not None:
        if len(args.seeds) != 1:
            parser.error("--evaluate takes one --seeds (the seed of the random subnets drawn)")
        for path in args.evaluate:
            accuracy = _evaluate(load_supernet(path), data, args.seeds[0])
            print(f"| {path} | " + " | ".join(f"{accuracy[k]:.3f}" for k in ("smallest", "median", "largest",
                                                                           "random_mean")) + " |", flush=True)
        return 0
    rows = []
    phases = strategy.schedule(space_for_size.arch_space, batch_size=config.data.batch_size)
    steps_per_epoch = len(data.train) // config.data.batch_size  # type: ignore[arg-type]
    subnet_steps = sum(p.epochs * steps_per_epoch * p.subnets_per_step for p in phases)
    for seed in args.seeds:
        added = 0
        if "ps" in args.trainings:
            with contextlib.ExitStack() as stack:
                if args.keep_runs is None:
                    run_dir = stack.enter_context(tempfile.TemporaryDirectory())
                else:
                    run_dir = str(args.keep_runs / f"{args.recipe}-seed{seed}")
                cpu_started = time.process_time()
                with _stopping_is_an_error(f"progressive shrinking ({args.recipe}, seed {seed})"):
                    result = train(config.replace(seed=seed), run_dir=run_dir)
                ps_seconds = (result.seconds, time.process_time() - cpu_started)
                ps_space = load_supernet(result.supernet_path)
            rows.append((seed, "progressive shrinking", subnet_steps, ps_seconds, _evaluate(ps_space, data, seed)))
            added += 1
        if "random" in args.trainings:
            random_space, random_seconds, random_steps = _train_random_oneshot(config, data, subnet_steps, seed)
            if args.keep_runs is not None:
                save_supernet(random_space, args.keep_runs / f"random-seed{seed}.pt")
            random_accuracy = _evaluate(random_space, data, seed)
            rows.append((seed, "RandomOneShot (NNI)", random_steps, random_seconds, random_accuracy))
            added += 1
        for row in rows[len(rows) - added:]:
            print(f"seed {row[0]} {row[1]:24s} subnet-steps {row[2]:5d} train {row[3][0]:7.1f} s "
                  f"(cpu {row[3][1]:7.1f} s)  " + "  ".join(
                f"{k} {row[4][k]:.3f}" for k in ("smallest", "median", "largest", "random_mean")), flush=True)
            # every subnet's accuracy (the 10 random ones too), for results that show more than the mean
            print(f"seed {row[0]} {row[1]} accuracies " + json.dumps({k: round(v, 4) for k, v in row[4].items()}),
                  flush=True)

    data_name = "digits" if args.data is None else args.data.name
    data_text = (f"scikit-learn digits, held-out split digest {digits_split_digest()}" if args.data is None
                 else f"`{args.data}` (its test split)")
    lines = [
        f"# Progressive shrinking vs NNI RandomOneShot ({data_name}, CPU-sized space)",
        "",
        f"Run: `{shlex.join([Path(sys.executable).name, *sys.argv])}` on {datetime.date.today()}, "
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads, "
        f"os.getloadavg() at the end {tuple(round(x, 1) for x in os.getloadavg())} "
        f"(2 cores shared with other processes).",
        f"Data: {data_text} ({len(data.val)} held-out images); "  # type: ignore[arg-type]
        f"space preset `cpu`; schedule: the {args.recipe!r} recipe x {args.epochs_factor:.4g} "
        f"({'+'.join(str(p.epochs) for p in phases)} epochs), batch {config.data.batch_size}; "
        f"per-phase overrides: {json.dumps(args.phases) if args.phases else 'none'}.",
        "Held-out top-1 after BN recalibration (256 training images, a fixed random draw); "
        "median = middle choice of every label; "
        f"random = mean of {RANDOM_SUBNETS} fixed random subnets. Training time only: wall and CPU (all threads) "
        "seconds; progressive shrinking's include loading the data and its teacher's forward passes.",
        "",
        "| seed | training | subnet-steps | wall s | CPU s | smallest | median | largest | random (mean) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for seed, name, steps, seconds, accuracy in rows:
        lines.append(f"| {seed} | {name} | {steps} | {seconds[0]:.0f} | {seconds[1]:.0f} | "
                     f"{accuracy['smallest']:.3f} | "
                     f"{accuracy['median']:.3f} | {accuracy['largest']:.3f} | {accuracy['random_mean']:.3f} |")
    for name in ("progressive shrinking", "RandomOneShot (NNI)"):
        chosen = [r for r in rows if r[1] == name]
        if not chosen:
            continue
        means = " | ".join(f"{statistics.fmean(r[4][k] for r in chosen):.3f}"
                           for k in ("smallest", "median", "largest", "random_mean"))
        wall, cpu = (statistics.fmean(r[3][i] for r in chosen) for i in (0, 1))
        lines.append(f"| mean | {name} | {chosen[0][2]} | {wall:.0f} | {cpu:.0f} | {means} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except TrainingInterrupted as error:
        print(f"{Path(__file__).name}: error: {error}", file=sys.stderr)
        sys.exit(1)
