"""Once-for-All with NNI's Python API: two ``NasExperiment`` runs on one space object.

1. Train once: ``NasExperiment(space, Classification(...), ProgressiveShrinking(...)).run()`` trains
   the elastic supernet with OFA's progressive shrinking (Cai et al., ICLR 2020, Sec. 3.2) on NNI's
   one-shot machinery (Lightning underneath).
2. Specialize: ``NasExperiment(space, RecalibratedEvaluator(calibration, held_out), OFAEvolution(...)).run()``
   runs OFA's evolutionary search (Sec. 3.3) as an NNI multi-trial strategy on the *same* space object:
   NNI's sequential engine hands every candidate to the evaluator as a subnet frozen with the trained
   weights, the evaluator recalibrates its batch norms on training images and reports its held-out
   accuracy, and the search keeps, for each MACs budget, the most accurate subnet that meets it.
   Nothing is retrained. The same evaluator serves NNI's own strategies (``RegularizedEvolution``,
   ``Random``) on this space.

Data: scikit-learn's digits (offline, real); space: the CPU preset of ``ofa-nni train`` of OFA-MobileNetV3
or, with ``--space ofa-proxyless``, of OFA-ProxylessNAS::

    python examples/nni_python/nas_experiment.py --quick --out runs/nas-python   # about 2 minutes on a CPU
    python examples/nni_python/nas_experiment.py --out runs/nas-python           # the longer schedule
    python examples/nni_python/nas_experiment.py --quick --space ofa-proxyless --out runs/nas-proxyless

Writes ``results.json`` (each target's budget, subnet, held-out accuracy, MACs) and the trained
supernet's checkpoints into ``--out``; NNI's experiment records go to ``--out/nni-experiments``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/nas-python"), help="output directory")
    parser.add_argument("--quick", action="store_true",
                        help="a short run (1 epoch per progressive-shrinking phase, a small search)")
    parser.add_argument("--targets", type=int, default=3, help="MACs budgets to specialize for (default 3)")
    parser.add_argument("--space", default="ofa-mbv3", choices=["ofa-mbv3", "ofa-proxyless"],
                        help="the search space whose CPU preset is trained (default ofa-mbv3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true", help="no Lightning progress bars")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = _arguments(argv)
    import search_spaces  # noqa: F401  (applies the NNI 3.0 workarounds before NNI's NAS modules load)

    # isort: split
    from nni.nas.evaluator.pytorch import Classification, DataLoader
    from nni.nas.experiment import NasExperiment

    from ofa_nni.data import calibration_loader, load_data
    from ofa_nni.training.config import PRESETS_BY_SPACE
    from search_spaces import space_class
    from strategies import OFAEvolution, ProgressiveShrinking, RecalibratedEvaluator

    started = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    space = space_class(args.space)(**PRESETS_BY_SPACE[args.space]["cpu"], num_classes=10)
    data = load_data("digits", resolution=max(space.arch_space.resolutions))
    calibration = list(calibration_loader(data, batch_size=100))  # ~500 training images, for BN recalibration
    held_out = list(torch.utils.data.DataLoader(data.val, batch_size=256))

    # 1. Train once: progressive shrinking as an NNI one-shot strategy ----------------------------------
    evaluator = Classification(
        train_dataloaders=DataLoader(data.train, batch_size=64, shuffle=True, drop_last=True),
        val_dataloaders=DataLoader(data.val, batch_size=256),
        num_classes=10, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_model_summary=False, num_sanity_val_steps=0, enable_progress_bar=not args.no_progress,
    )
    training = ProgressiveShrinking(
        recipe="short",  # the paper's phases, tuned for a small fraction of its epochs (docs/training.md)
        epochs_factor=1 / 600 if args.quick else 1 / 16,  # the paper's 600 epochs: 6 (one per phase) or 39
        validation_random_subnets=0 if args.quick else 1, calibration_data=calibration, calibration_batches=2,
        checkpoint_dir=args.out / "checkpoints", seed=args.seed,
    )
    experiment = NasExperiment(space, evaluator, training)
    experiment.config.experiment_working_directory = str(args.out / "nni-experiments")
    experiment.run()
    experiment.stop()
    print("\ntrained: held-out accuracy of the largest / smallest subnet after each phase (BN recalibrated)")
    for row in training.oneshot_module.history:
        print(f"  {row['phase']:8s} {100 * row['val_acc_largest']:5.1f}% / {100 * row['val_acc_smallest']:5.1f}%")

    # 2. Specialize: OFA's evolution as an NNI multi-trial strategy on the trained space ----------------
    macs = space.cost_model.macs
    smallest, largest = float(macs(space.arch_space.min_sample())), float(macs(space.arch_space.max_sample()))
    budgets = [round(smallest + f * (largest - smallest)) for f in torch.linspace(0.2, 0.7, args.targets).tolist()]
    search = OFAEvolution(  # at most len(targets) x population_size x (generations + 1) evaluations
        targets=[{"macs": budget} for budget in budgets],
        population_size=8 if args.quick else 24,
        generations=3 if args.quick else 10,
        seed=args.seed,
    )
    # Each subnet: BN recalibrated on the training images, then its held-out accuracy is the metric.
    experiment = NasExperiment(space, RecalibratedEvaluator(calibration, held_out), search)
    experiment.config.experiment_working_directory = str(args.out / "nni-experiments")
    experiment.run()
    experiment.stop()

    assert search.result is not None and search.search is not None
    targets = [{"budget_macs": budget, "arch": target.arch, "accuracy": target.score,
                "macs": target.costs["macs"], "params": target.costs["params"]}
               for budget, target in zip(budgets, search.result, strict=True)]
    print(f"\nspecialized: {search.search.evaluations} subnets evaluated (each frozen with the trained weights, "
          "BN recalibrated, held-out accuracy)")
    print(f"  {'MACs budget':>11}  {'accuracy':>8}  {'MACs':>6}  arch")
    for entry in targets:
        print(f"  {entry['budget_macs'] / 1e6:10.2f}M  {100 * entry['accuracy']:7.1f}%  "
              f"{entry['macs'] / 1e6:5.2f}M  {entry['arch']}")
    (best,) = experiment.export_top_models(top_k=1, formatter="dict")
    subnet = space.freeze(best)  # a static nn.Module with the supernet's weights: deploy or fine-tune it
    print(f"best evaluated subnet: {space.arch_space.format(best)} "
          f"({sum(p.numel() for p in subnet.parameters())} parameters)")

    results = {"space": args.space, "targets": targets, "evaluations": search.search.evaluations,
               "training": training.oneshot_module.history, "seconds": time.perf_counter() - started}
    (args.out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    print(f"wrote {args.out / 'results.json'} ({results['seconds']:.0f} s)")
    return results


if __name__ == "__main__":
    main()
