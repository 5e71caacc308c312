"""``ofa-nni train``: train a supernet once (progressive shrinking or the sandwich rule)."""

from __future__ import annotations

import argparse

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train an elastic supernet (progressive shrinking / sandwich rule) from a YAML config",
        description=(
            "Train an OFA supernet once, as the YAML configuration says (examples/train_digits.yaml: "
            "the offline digits default; examples/train_imagefolder.yaml: your own images). Checkpoints "
            "are written after every epoch; --resume continues an interrupted run."
        ),
    )
    parser.add_argument("--config", required=True, help="training configuration (YAML)")
    parser.add_argument("--run-dir", default=None, help="run directory (overrides run_dir in the config)")
    parser.add_argument("--resume", action="store_true", help="continue the run in the run directory")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ofa_nni.app.runner import train
    from ofa_nni.training import load_config

    config = load_config(args.config)
    result = train(config, run_dir=args.run_dir, resume=args.resume)
    if not result.is_global_zero:
        return 0  # the other processes of a data-parallel run: rank 0 reports
    print(f"trained in {result.seconds:.1f} s (this session); run directory {result.run_dir}")
    names = sorted({key for phase in result.phases for key in phase if key.startswith("val_acc_")},
                   key=lambda key: ("smallest", "median", "largest").index(key[8:])
                   if key[8:] in ("smallest", "median", "largest") else 3)
    header = "  ".join(f"{name[8:]:>8s}" for name in names)
    print(f"  {'phase':8s} {'epochs':>6s} {'seconds':>8s}  {header}   (held-out accuracy, BN recalibrated)")
    for phase in result.phases:
        accuracies = "  ".join(f"{phase[name]:8.3f}" if name in phase else f"{'-':>8s}" for name in names)
        print(f"  {phase['name']:8s} {phase['epochs']:6d} {phase['seconds']:8.1f}  {accuracies}")
    print(f"supernet: {result.supernet_path}")
    print(f"checkpoint: {result.checkpoint}")
    return 0
