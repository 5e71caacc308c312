"""The paper's headline claim in small: subnets taken from a trained supernet vs the same
architectures trained from scratch.

OFA (Cai et al., ICLR 2020, Table 1 / Fig. 1) reports that a subnet taken from the once-for-all
network, with BN statistics recalibrated, is as accurate as the same architecture trained alone
(and more so after a short fine-tune, "OFA + fine-tune"). Here, for three architectures across the
MACs range of the space (smallest, median, largest), side by side in one run:

(a) from the supernet: frozen, BN recalibrated on the calibration images, evaluated;
(b) OFA + fine-tune: (a) trained alone for ``--finetune-epochs`` from its inherited weights
    (SGD Nesterov, cosine decay from ``--finetune-lr``);
(c) from scratch: the same architecture re-initialised and trained alone for ``--scratch-epochs``
    (the same optimiser, from the full-network phase's learning rate), once per ``--seeds``.

All on the held-out split of the data (digits, or ``--data PATH.npz``, e.g. Animal-MNIST from
``benchmarks/data.py``). Run::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ofa_vs_scratch.py --supernet RUN/train/supernet.pt \\
        --data ~/.cache/ofa-nni/data/animal-mnist.npz --scratch-epochs 39 --finetune-epochs 3 --seeds 0 1 2 \\
        --markdown benchmarks/results/ofa_vs_scratch_animal_mnist.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ofa_nni.accuracy import evaluate_subnet
from ofa_nni.app.demo import train_subnet
from ofa_nni.costs import AnalyticCostModel
from ofa_nni.data import calibration_loader, load_data
from ofa_nni.runtime import recalibrate_batchnorm
from ofa_nni.training import demo_config
from ofa_nni.training.steps import median_sample
from search_spaces import load_supernet


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--supernet", type=Path, required=True, help="a supernet trained on the same data")
    parser.add_argument("--data", type=Path, default=None, metavar="PATH.npz", help="default: digits")
    parser.add_argument("--scratch-epochs", type=int, default=39,
                        help="default: the demo schedule's 39 epochs; 0 trains nothing from scratch (the "
                             "architectures depend only on the space, so a second supernet of the same space "
                             "can reuse the first one's from-scratch figures)")
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--finetune-lr", type=float, default=0.005)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--markdown", type=Path, default=None)
    parser.add_argument("--subnets", nargs="+", choices=("smallest", "median", "largest"),
                        default=["smallest", "median", "largest"],
                        help="which architectures (one per process lets a slow machine finish some of them)")
    args = parser.parse_args()
    if args.scratch_epochs < 0 or args.finetune_epochs < 0:
        parser.error("--scratch-epochs and --finetune-epochs must be >= 0")
    torch.set_num_threads(args.threads)
    load_at_start = os.getloadavg()

    supernet = load_supernet(args.supernet)
    arch = supernet.arch_space
    kind, root = ("digits", None) if args.data is None else ("npz", args.data)
    data = load_data(kind, root=root, resolution=max(arch.resolutions))
    calibration = calibration_loader(data, batch_size=100)
    held_out = DataLoader(data.val, batch_size=500)
    config = demo_config()
    batch_size = config.data.batch_size
    full_lr = config.strategy.schedule(arch, batch_size=batch_size)[0].lr  # type: ignore[union-attr]
    macs = AnalyticCostModel(arch).macs
    samples = {"smallest": arch.min_sample(), "median": median_sample(arch), "largest": arch.max_sample()}
    samples = {name: samples[name] for name in args.subnets}
    rows = []
    for name, sample in samples.items():
        started = time.perf_counter()
        subnet = supernet.freeze(sample)
        recalibrate_batchnorm(subnet, calibration)
        inherited = evaluate_subnet(subnet, held_out)["accuracy"]
        inherited_s = time.perf_counter() - started
        started, started_cpu = time.perf_counter(), time.process_time()
        finetuned = train_subnet(subnet, data, epochs=args.finetune_epochs, batch_size=batch_size,
                                 lr=args.finetune_lr, seed=0, from_scratch=False) if args.finetune_epochs else None
        finetune_s, finetune_cpu_s = time.perf_counter() - started, time.process_time() - started_cpu
        scratch, scratch_s, scratch_cpu_s = [], [], []
        for seed in args.seeds if args.scratch_epochs else ():
            started, started_cpu = time.perf_counter(), time.process_time()
            scratch.append(train_subnet(supernet.freeze(sample), data, epochs=args.scratch_epochs,
                                        batch_size=batch_size, lr=full_lr, seed=seed))
            scratch_s.append(time.perf_counter() - started)
            scratch_cpu_s.append(time.process_time() - started_cpu)
        row = {"name": name, "arch": arch.format(sample), "macs": int(macs(sample)), "inherited": inherited,
               "inherited_s": inherited_s, "finetuned": finetuned, "finetune_s": finetune_s,
               "finetune_cpu_s": finetune_cpu_s, "scratch": scratch,
               "scratch_s": statistics.fmean(scratch_s) if scratch else None,
               "scratch_cpu_s": statistics.fmean(scratch_cpu_s) if scratch else None}
        rows.append(row)
        print(f"{name}: inherited {inherited:.4f}, fine-tuned {finetuned}, scratch {scratch}", flush=True)

    lines = [
        f"# Subnets from the supernet vs trained from scratch ({'digits' if args.data is None else args.data.name})",
        "",
        f"Run: `{shlex.join([Path(sys.executable).name, *sys.argv])}` on {datetime.date.today()}, "
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} threads; "
        f"load average at start {tuple(round(x, 1) for x in load_at_start)}, at the end "
        f"{tuple(round(x, 1) for x in os.getloadavg())} (2 cores shared with other processes).",
        f"Held-out split: {len(data.val)} images; BN recalibration on {len(data.calibration)} training images. "  # type: ignore[arg-type]
        f"Fine-tune: {args.finetune_epochs} epochs from lr {args.finetune_lr}; from scratch: {args.scratch_epochs} "
        f"epochs from lr {full_lr} (cosine), batch {batch_size}, seeds {args.seeds}.",
        "",
        "| subnet | MACs | from supernet (BN recal.) | OFA + fine-tune | from scratch (mean of seeds) | scratch seeds "
        "| fine-tune s | scratch s per seed | fine-tune CPU s | scratch CPU s per seed |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        cells = {key: "-" if row[key] is None else f"{row[key]:.4f}" for key in ("inherited", "finetuned")}
        cells.update({key: "-" if row[key] is None else f"{row[key]:.0f}" for key in ("scratch_s", "scratch_cpu_s")})
        scratch_mean = f"{statistics.fmean(row['scratch']):.4f}" if row["scratch"] else "-"
        lines.append(f"| {row['name']} | {row['macs'] / 1e6:.2f}M | {cells['inherited']} | {cells['finetuned']} | "
                     f"{scratch_mean} | {', '.join(f'{a:.4f}' for a in row['scratch']) or '-'} | "
                     f"{row['finetune_s']:.0f} | {cells['scratch_s']} | {row['finetune_cpu_s']:.0f} | "
                     f"{cells['scratch_cpu_s']} |")
    print("\n".join(lines))
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
