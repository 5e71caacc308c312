"""Accuracy-predictor quality vs data-set size on the embedded default (digits, ``cpu`` space), or
on an ``.npz`` (``--data``, e.g. Animal-MNIST from ``benchmarks/data.py``, with ``--supernet``
trained on it).

One run: a supernet trained with progressive shrinking on digits (``ofa-nni train`` with
``examples/train_digits.yaml``; pass ``--supernet`` to reuse one), then ``max(sizes) + test``
subnets evaluated with inherited weights (BN recalibrated on 500 training images, held-out split of
360 images). For every size N (default 100, 300, 1000: the first N subnets of the plan) and every
predictor kind, the predictor is built as ``ofa-nni predictor build`` does (80/20 split of the N)
and also scored on the same fixed test set (the last ``--test-subnets`` of the plan, never trained
on). Baselines on the fixed test set: ranking by MACs, and the constant mean (RMSE = spread).

    .venv/bin/python benchmarks/bench_predictor_quality.py --supernet runs/digits-ps/supernet.pt \\
        --markdown benchmarks/results/predictor_quality.md
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from ofa_nni.accuracy import (
    PREDICTOR_KINDS,
    build_accuracy_predictor,
    collect_accuracy_dataset,
    predictor_metrics,
)
from ofa_nni.costs import AnalyticCostModel
from ofa_nni.data import digits_split_digest, load_data
from search_spaces import load_supernet


def _train_supernet(run_dir: Path) -> tuple[Path, float]:
    started = time.perf_counter()
    command = [sys.executable, "-m", "ofa_nni.app.cli", "train", "--config", "examples/train_digits.yaml",
               "--run-dir", str(run_dir)]
    subprocess.run(command, check=True)
    return run_dir / "supernet.pt", time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--supernet", type=Path, default=None, help="trained supernet (default: train one now)")
    parser.add_argument("--data", type=Path, default=None, metavar="PATH.npz",
                        help="an .npz data set (docs/data.md; needs --supernet trained on it); default digits")
    parser.add_argument("--work-dir", type=Path, default=Path("runs/bench-predictor"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--test-subnets", type=int, default=200)
    parser.add_argument("--kinds", nargs="+", default=[k for k in PREDICTOR_KINDS if k != "auto"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    if args.data is not None and args.supernet is None:
        parser.error("--data needs --supernet (a supernet trained on that data)")
    data_name = "digits" if args.data is None else args.data.name
    say(f"# Accuracy predictor quality vs data-set size ({data_name}, `cpu` space)")
    say()
    say(f"Machine: {os.cpu_count()} logical CPUs, torch threads {args.threads}; load average at start "
        f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}.")
    if args.supernet is None:
        supernet_path, train_seconds = _train_supernet(args.work_dir / "digits-ps")
        say(f"Supernet: trained now with `ofa-nni train --config examples/train_digits.yaml` in {train_seconds:.0f} s.")
    else:
        supernet_path = args.supernet
        say(f"Supernet: `{supernet_path}` (progressive shrinking on {data_name}).")
    supernet = load_supernet(supernet_path)
    space = supernet.arch_space
    if args.data is None:
        data = load_data("digits", resolution=max(space.resolutions), calibration_images=500)
        split = f"digits split {digits_split_digest()}"
    else:
        data = load_data("npz", root=args.data, resolution=max(space.resolutions), calibration_images=500)
        split = f"{args.data.resolve()} test split"
    calibration = list(torch.utils.data.DataLoader(data.calibration, batch_size=250))
    evaluation = list(torch.utils.data.DataLoader(data.val, batch_size=500))
    total = max(args.sizes) + args.test_subnets
    description = (f"{split}; held-out {len(data.val)} images; "  # type: ignore[arg-type]
                   f"BN calibration {len(data.calibration)} training images")  # type: ignore[arg-type]
    started = time.perf_counter()
    dataset = collect_accuracy_dataset(supernet, path=args.work_dir / "subnets.jsonl", num_subnets=total,
                                       calibration_batches=calibration, eval_batches=evaluation, seed=args.seed,
                                       data_description=description)
    collect_seconds = time.perf_counter() - started
    per_subnet = collect_seconds / total
    say(f"Data set: {total} subnets (plan seed {args.seed}: smallest, largest, then stratified over resolutions "
        f"{list(space.resolutions)}), BN-recalibrated on {len(data.calibration)} training images and "  # type: ignore[arg-type]
        f"evaluated on the {len(data.val)} held-out images; collected in {collect_seconds:.0f} s this run "  # type: ignore[arg-type]
        f"({per_subnet:.2f} s/subnet; 0 s means it was reused from `{args.work_dir / 'subnets.jsonl'}`).")
    accuracies = dataset.accuracies
    say(f"Accuracy over the {total} subnets: min {accuracies.min():.4f}, max {accuracies.max():.4f}, "
        f"mean {accuracies.mean():.4f}, std {accuracies.std() * 100:.2f} %. One held-out image is "
        f"{100 / len(data.val):.2f} %.")  # type: ignore[arg-type]
    say()

    test = dataset.take(slice(total - args.test_subnets, total))
    macs = AnalyticCostModel(space).macs(test.indices)
    macs_metrics = predictor_metrics(macs.astype(float), test.accuracies)
    say(f"Fixed test set: the last {args.test_subnets} subnets of the plan (never trained on). Baselines on it: "
        f"ranking by MACs Kendall tau {macs_metrics['kendall']:.3f}, Spearman {macs_metrics['spearman']:.3f}; "
        f"predicting the mean: RMSE {test.accuracies.std() * 100:.3f} %.")
    say()
    say("| N subnets | predictor | build s | held-out n | held-out RMSE % | held-out tau | held-out rho "
        "| test RMSE % | test tau | test rho |")
    say("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    best: dict[int, tuple[str, float]] = {}
    for size in args.sizes:
        train = dataset.take(slice(0, size))
        for kind in args.kinds:
            started = time.perf_counter()
            predictor = build_accuracy_predictor(train, kind=kind, seed=args.seed)
            seconds = time.perf_counter() - started
            held, fixed = predictor.metrics, predictor.evaluate(test)
            say(f"| {size} | {kind} | {seconds:.1f} | {held['num_subnets']} | {held['rmse_percent']:.3f} | "
                f"{held['kendall']:.3f} | {held['spearman']:.3f} | {fixed['rmse_percent']:.3f} | "
                f"{fixed['kendall']:.3f} | {fixed['spearman']:.3f} |")
            if size not in best or fixed["kendall"] > best[size][1]:
                best[size] = (kind, fixed["kendall"])
    say()
    say("Best on the fixed test set (Kendall tau): " + "; ".join(f"N={n}: {kind} ({tau:.3f})"
                                                             for n, (kind, tau) in best.items()) + ".")
    say(f"Load average at the end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}.")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
