"""``ofa-nni predictor``: build an accuracy predictor from a trained supernet, or show one.

* ``ofa-nni predictor build --supernet runs/digits/supernet.pt --data digits --num-subnets 1000
  --out predictor.npz`` evaluates subnets (BN recalibrated, held-out split) into
  ``predictor.subnets.jsonl`` -- resumable after a kill, reused by later builds -- then trains the
  predictor and prints its held-out RMSE, Kendall tau and Spearman rho.
* ``ofa-nni predictor show predictor.npz`` prints what a predictor file holds.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ofa_nni._predictor_verdict import predictor_verdict_lines
from ofa_nni.app.commands import DeferredChoices, load_supernet_data, seed
from ofa_nni.errors import InvalidInputError

__all__ = ["register"]

_IN_MEMORY_BYTES = 512 * 2**20
"""Evaluation and calibration images up to this size are decoded once and kept as tensors."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predictor",
        help="accuracy predictors (build from a trained supernet, show)",
        description="Accuracy predictors learned from subnets evaluated with inherited weights (OFA Sec. 3.4).",
    )
    actions = parser.add_subparsers(dest="predictor_command", metavar="ACTION", required=True)
    build = actions.add_parser(
        "build",
        help="evaluate subnets of a trained supernet and train a predictor on them",
        description="Evaluate N subnets (stratified over resolutions, plus the smallest and largest), each "
                    "BN-recalibrated on training images and evaluated on the held-out split, into a JSON-lines "
                    "data set (resumable, reusable); train the predictor on 80%% and report RMSE, Kendall tau "
                    "and Spearman rho on the other 20%%.",
    )
    build.add_argument("--supernet", type=Path, default=None,
                       help="trained supernet (supernet.pt or a checkpoint); without it, --dataset must be a "
                            "finished data set, and the predictor is trained on it")
    build.add_argument("--data", choices=DeferredChoices("ofa_nni.data", "DATA_KINDS"), default="digits",
                       metavar="KIND", help="data set kind: %(choices)s (default: digits)")
    build.add_argument("--data-root", type=Path, default=None, help="data directory (all kinds but digits)")
    build.add_argument("--num-subnets", type=int, default=1000, help="subnets to evaluate (default 1000)")
    build.add_argument("--dataset", type=Path, default=None,
                       help="evaluated-subnets file (default: OUT with suffix .subnets.jsonl)")
    kinds = DeferredChoices("ofa_nni.accuracy", "PREDICTOR_KINDS")
    build.add_argument("--kind", choices=kinds, default="mlp", metavar="KIND",
                       help="mlp (OFA's), mlp-ensemble, ridge, or auto (the best on a validation split)")
    build.add_argument("--test-fraction", type=float, default=0.2, help="held-out fraction (default 0.2)")
    build.add_argument("--calibration-images", type=int, default=None,
                       help="training images for BN recalibration (default: 500 digits, 2000 otherwise)")
    build.add_argument("--batch-size", type=int, default=200, help="evaluation batch size (default 200)")
    build.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    build.add_argument("--seed", type=seed, default=0, help="seed of the subnet list and the training")
    build.add_argument("--out", type=Path, required=True, help="predictor file (.npz)")
    build.add_argument("--quiet", action="store_true", help="no progress bar")
    build.set_defaults(func=run_build)

    show = actions.add_parser("show", help="print a predictor's kind, space and metrics",
                              description="Print a predictor file's summary.")
    show.add_argument("predictor", type=Path)
    show.set_defaults(func=run_show)


def _batches(dataset: Any, batch_size: int) -> Iterable[Any]:
    """Batches of ``dataset`` in a fixed order, decoded once if they fit in memory."""
    import torch
    from torch.utils.data import DataLoader

    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    first = dataset[0][0]
    if isinstance(first, torch.Tensor) and first.numel() * first.element_size() * len(dataset) <= _IN_MEMORY_BYTES:
        return list(loader)
    return loader


def _metrics_lines(metrics: Mapping[str, Any], info: Mapping[str, Any]) -> list[str]:
    lines = [
        f"held-out ({metrics['num_subnets']} subnets not used for training; trained on {info.get('num_train')}):",
        f"  RMSE {metrics['rmse_percent']:.3f} %   MAE {metrics['mae_percent']:.3f} %   "
        f"Kendall tau {metrics['kendall']:.4f}   Spearman rho {metrics['spearman']:.4f}",
    ]
    selection = info.get("selection")
    if selection:
        lines.append(f"kind chosen by {selection['criterion']}:")
        for kind, figures in selection["validation"].items():
            mark = "*" if kind == selection["chosen"] else " "
            lines.append(f"  {mark} {kind:13s} RMSE {figures['rmse_percent']:.3f} %  Kendall {figures['kendall']:.4f}  "
                         f"Spearman {figures['spearman']:.4f}")
    return lines


def run_build(args: argparse.Namespace) -> int:
    import torch

    from ofa_nni.accuracy import AccuracyDataset, collect_accuracy_dataset
    from ofa_nni.data import digits_split_digest
    from search_spaces import load_supernet

    if args.supernet is None:
        if args.dataset is None:
            raise InvalidInputError("give --supernet (to evaluate subnets) or --dataset (a finished data set), or both")
        dataset = AccuracyDataset.load(args.dataset, complete=True)
        return _train_and_save(dataset, args.dataset, args)
    if args.num_subnets < 5:
        raise InvalidInputError("--num-subnets must be at least 5 (to train and hold some out), got "
                                f"{args.num_subnets}")
    if args.batch_size < 1:
        raise InvalidInputError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError("--device cuda requested but torch sees no CUDA GPU here; use --device cpu")
    supernet = load_supernet(args.supernet).to(args.device)
    arch_space = supernet.arch_space
    data = load_supernet_data(args, arch_space)
    description = f"{args.data}" + (f" split {digits_split_digest()}" if args.data == "digits" else
                                    f" at {args.data_root.resolve() if args.data_root else ''}")
    description += (f"; held-out {len(data.val)} images; "  # type: ignore[arg-type]
                    f"BN calibration {len(data.calibration)} training images")  # type: ignore[arg-type]
    dataset_path = args.dataset or args.out.with_suffix(".subnets.jsonl")
    if dataset_path.exists():
        print(f"resuming/reusing {dataset_path}")
    dataset = collect_accuracy_dataset(
        supernet, path=dataset_path, num_subnets=args.num_subnets,
        calibration_batches=_batches(data.calibration, args.batch_size),
        eval_batches=_batches(data.val, args.batch_size),
        seed=args.seed, data_description=description, data_fingerprint=data.fingerprint,
        show_progress=not args.quiet,
    )
    return _train_and_save(dataset, dataset_path, args)


def _train_and_save(dataset: Any, dataset_path: Path, args: argparse.Namespace) -> int:
    import numpy as np

    from ofa_nni.accuracy import build_accuracy_predictor

    accuracies = dataset.accuracies
    print(f"{len(dataset)} subnets evaluated ({dataset_path}): accuracy {accuracies.min():.4f}.."
          f"{accuracies.max():.4f}, mean {accuracies.mean():.4f}")
    alike = np.ptp(accuracies) == 0
    if alike:  # the predictor still builds, but nothing tells subnets apart
        print(f"note: every subnet scored {accuracies[0]:.4f}, so the predictor can rank nothing (its Kendall tau "
              "and Spearman rho are nan) and a search has nothing to choose by; the supernet likely needs more "
              "training, or the data more classes of images", file=sys.stderr)
    predictor = build_accuracy_predictor(dataset, kind=args.kind, test_fraction=args.test_fraction, seed=args.seed)
    predictor.save(args.out)
    print(f"predictor {predictor.kind}:")
    print("\n".join(_metrics_lines(predictor.metrics, predictor.info)))
    for line in [] if alike else predictor_verdict_lines(predictor.metrics):  # alike: the note said why
        print(line, file=sys.stderr)
    print(f"wrote {args.out}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from ofa_nni.accuracy import AccuracyPredictor

    predictor = AccuracyPredictor.load(args.predictor)
    from ofa_nni.arch import ArchSpace

    arch = predictor.arch_space
    print(f"accuracy predictor {predictor.kind} ({predictor.settings()})")
    # Every arch space has labels, resolutions and features; the stage/block choices differ by family.
    print(f"  space: {arch.signature().get('layout', 'mbv3')}, {len(arch.labels)} labels, resolutions "
          f"{list(arch.resolutions)}, {arch.num_classes} classes; {arch.feature_dim} features")
    if isinstance(arch, ArchSpace):
        print(f"    {arch.num_stages} stages x {arch.max_depth} blocks, kernels {list(arch.kernel_sizes)}, "
              f"expands {list(arch.expand_ratios)}, depths {list(arch.depths)}")
    else:
        print(f"    depths {list(arch.depths)}, expands {list(arch.expand_ratios)}, widths {list(arch.width_mults)}")
    if predictor.metrics:
        print("\n".join(_metrics_lines(predictor.metrics, predictor.info)))
        for line in predictor_verdict_lines(predictor.metrics):
            print(line, file=sys.stderr)
    return 0
