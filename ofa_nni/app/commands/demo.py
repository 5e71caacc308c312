"""``ofa-nni demo``: the whole flow on the offline embedded default (see :mod:`ofa_nni.app.demo`)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ofa_nni.app.commands import seed


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="train once, measure, specialize for several targets, export and report (CPU, offline)",
        description=(
            "The whole Once-for-All flow on scikit-learn's digits with a CPU-sized space: progressive "
            "shrinking, accuracy predictor, this machine's latency table, one search for several latency "
            "targets, TorchScript/ONNX export of each chosen subnet with measured accuracy and latency, and "
            "the cost of training once vs training one network per target. Writes a markdown report and a "
            "Pareto plot into the run directory. Re-running with the same --run-dir reuses finished steps."
        ),
    )
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="where to write everything (default: runs/demo-<date>-<time>)")
    parser.add_argument("--targets", type=int, default=3, help="number of latency targets (default 3)")
    parser.add_argument("--subnets", type=int, default=200,
                        help="subnets evaluated for the accuracy predictor (default 200)")
    parser.add_argument("--seed", type=seed, default=0, help="seed of every random step (default 0)")
    parser.add_argument("--quick", action="store_true",
                        help="a much shorter run (a quarter of the training epochs, fewer subnets): a smoke test")
    parser.add_argument("--data", type=Path, default=None, metavar="PATH.npz",
                        help="run on your images: an .npz with x_train, y_train (and optionally x_test, y_test); "
                             "see docs/data.md (default: scikit-learn's digits, offline)")
    parser.add_argument("--space", default="ofa-mbv3", metavar="NAME",
                        help="the search space whose CPU-sized preset is trained: ofa-mbv3 (default), ofa-proxyless "
                             "or ofa-resnet50")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ofa_nni.app.demo import DemoSettings, run_demo

    run_dir = args.run_dir or Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    if args.quick:
        settings = DemoSettings(num_targets=args.targets, accuracy_subnets=min(args.subnets, 40),
                                latency_validation_subnets=8, search_generations=20, train_epochs_factor=1 / 64,
                                scratch_epochs=2, seed=args.seed, show_progress=not args.no_progress,
                                data=args.data, space=args.space)
    else:
        settings = DemoSettings(num_targets=args.targets, accuracy_subnets=args.subnets, seed=args.seed,
                                show_progress=not args.no_progress, data=args.data, space=args.space)
    run_demo(run_dir, settings)
    return 0
