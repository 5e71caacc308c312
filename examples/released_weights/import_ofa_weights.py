"""Import mit-han-lab's released Once-for-All MobileNetV3 weights, specialize, freeze and export.

Download a checkpoint yourself from https://github.com/mit-han-lab/once-for-all (nothing is
downloaded here), e.g. ``ofa_mbv3_d234_e346_k357_w1.0`` (width 1.0) or ``..._w1.2``, then::

    python examples/released_weights/import_ofa_weights.py --checkpoint ofa_mbv3_d234_e346_k357_w1.0 \\
        --data-root /data/imagenet --target 'macs<=200M' --target 'macs<=300M' --out runs/ofa-mbv3

1. ``OFAMobileNetV3Space.from_ofa_state_dict`` maps the checkpoint onto our space, whose defaults
   are the paper's space (Cai et al., ICLR 2020): the supernet is saved as ``OUT/supernet.pt``, which
   every ``ofa-nni`` command reads (``lut build``, ``predictor build``, ``export``, ...).
2. An accuracy predictor guides the search: ``--predictor`` (an ``ofa-nni predictor build`` file for
   this space) or, with ``--data-root``, one built here from ``--num-subnets`` subnets evaluated on
   your held-out images (BN recalibrated on training images; resumable).
3. One search finds the best subnet for every ``--target`` budget (``macs`` and ``params``, with
   K/M/G suffixes, as ``ofa-nni search`` reads them).
4. Each subnet is frozen into a static module, its batch norms recalibrated on training images
   (with ``--data-root``; the checkpoint's statistics belong to the full network), and exported to
   TorchScript and ONNX, each file checked against PyTorch.

``--data-root`` is an ImageNet-style folder: ``ROOT/train/<class>/*.JPEG`` and ``ROOT/val/<class>/*.JPEG``.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path
from typing import Any

import torch


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True,
                        help="a released OFA-MobileNetV3 checkpoint (or an OFAMobileNetV3 state_dict saved with torch)")
    parser.add_argument("--width-mult", type=float, default=1.0, help="the checkpoint's width (1.0 or 1.2)")
    parser.add_argument("--num-classes", type=int, default=1000,
                        help="classifier outputs (1000 for the released ImageNet checkpoints)")
    parser.add_argument("--target", action="append", required=True,
                        help="budgets of one deployment target, e.g. 'macs<=200M' or 'macs<=300M,params<=5M' "
                             "(repeatable)")
    parser.add_argument("--predictor", type=Path, default=None,
                        help="an ofa-nni accuracy predictor for this space, or mit-han-lab's released "
                             "acc_predictor.pth (its space: width 1.2, resolutions 160-224; the search keeps to them)")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="ImageNet-style image folder: BN recalibration, held-out accuracy and, without "
                             "--predictor, the subnets the predictor is built from")
    parser.add_argument("--num-subnets", type=int, default=200,
                        help="subnets evaluated to build the predictor (default 200; OFA used 16K)")
    parser.add_argument("--calibration-images", type=int, default=2000,
                        help="training images for BN recalibration (default 2000, as OFA)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("runs/ofa-mbv3"), help="output directory")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = _arguments(argv)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit.*")  # TorchScript's deprecation
    from ofa_nni._artifacts import require_same_space
    from ofa_nni.accuracy import (
        AccuracyDataset,
        build_accuracy_predictor,
        collect_accuracy_dataset,
        evaluate_subnet,
    )
    from ofa_nni.app.commands.search import parse_target
    from ofa_nni.data import calibration_loader, load_data
    from ofa_nni.efficiency import MacsModel, ParamsModel
    from ofa_nni.errors import InvalidInputError
    from ofa_nni.export import export_subnet
    from ofa_nni.ofa_released import load_predictor_file
    from ofa_nni.runtime import recalibrate_batchnorm
    from ofa_nni.search import specialize
    from search_spaces import OFAMobileNetV3Space

    if args.predictor is None and args.data_root is None:
        raise SystemExit("give --data-root (to build an accuracy predictor from subnets evaluated on your images) "
                         "or --predictor (one built before with 'ofa-nni predictor build')")
    # 1. Import: the released checkpoint is {"state_dict": ...} of plain tensors.
    state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    supernet = OFAMobileNetV3Space.from_ofa_state_dict(state, width_mult=args.width_mult,
                                                      num_classes=args.num_classes).eval()
    arch = supernet.arch_space
    args.out.mkdir(parents=True, exist_ok=True)
    supernet.save(args.out / "supernet.pt")
    smallest, largest = supernet.macs(arch.min_sample()) / 1e6, supernet.macs(arch.max_sample()) / 1e6
    print(f"imported {args.checkpoint}: {sum(p.numel() for p in supernet.parameters()):,} parameters; subnets from "
          f"{smallest:.0f}M to {largest:.0f}M MACs; saved {args.out / 'supernet.pt'}")

    # 2. The accuracy predictor.
    calibration: list[Any] | None = None  # BN recalibration batches (training images)
    held_out: Any = None  # held-out batches
    if args.data_root is not None:
        data = load_data("imagefolder", root=args.data_root, resolution=max(arch.resolutions),
                         calibration_images=args.calibration_images)
        if data.num_classes != arch.num_classes:
            raise SystemExit(f"{args.data_root} has {data.num_classes} classes, the checkpoint {arch.num_classes}")
        calibration = list(calibration_loader(data, batch_size=args.batch_size))
        held_out = torch.utils.data.DataLoader(data.val, batch_size=args.batch_size)
    search_space = arch  # the space searched: the predictor's, where it knows fewer resolutions
    if args.predictor is not None:
        predictor = load_predictor_file(args.predictor)
        try:
            require_same_space(predictor.arch_space.signature(), arch, artefact=f"predictor {args.predictor}",
                               allow_fewer_resolutions=True)
        except InvalidInputError as error:
            raise SystemExit(f"error: {error}") from None
        search_space = predictor.arch_space
    else:
        assert calibration is not None  # --data-root is given (checked above)
        dataset_path = args.out / "accuracy_dataset.jsonl"
        collect_accuracy_dataset(supernet, path=dataset_path, num_subnets=args.num_subnets,
                                 calibration_batches=calibration, eval_batches=held_out, seed=args.seed,
                                 data_description=f"imagefolder {args.data_root.resolve()}")
        predictor = build_accuracy_predictor(AccuracyDataset.load(dataset_path, arch_space=arch, complete=True),
                                             kind="mlp", seed=args.seed)
        predictor.save(args.out / "predictor.npz")
        print(f"predictor from {args.num_subnets} subnets: held-out RMSE {predictor.metrics['rmse_percent']:.2f} "
              f"points, Kendall tau {predictor.metrics['kendall']:.3f}; saved {args.out / 'predictor.npz'}")

    # 3. Specialize: one search for every target.
    costs = {"macs": MacsModel(search_space), "params": ParamsModel(search_space)}
    targets = [parse_target(text, list(costs)) for text in args.target]
    result = specialize(search_space, predictor, costs, targets, seed=args.seed)

    # 4. Freeze, recalibrate, export.
    rows = []
    for index, (text, target) in enumerate(zip(args.target, result, strict=True)):
        subnet = supernet.freeze(target.sample)
        accuracy = None
        if calibration is not None:
            recalibrate_batchnorm(subnet, calibration)
            accuracy = evaluate_subnet(subnet, held_out)["accuracy"]
        files = export_subnet(subnet, args.out, name=f"target{index + 1}")
        rows.append({"target": text, "arch": target.arch, "predicted_accuracy": target.score,
                     "accuracy": accuracy, "macs": target.costs["macs"], "params": target.costs["params"],
                     "files": {f.format: {"path": str(f.path), "max_abs_diff": f.max_abs_diff} for f in files}})
        measured = "not measured (no --data-root)" if accuracy is None else f"{100 * accuracy:.2f}%"
        print(f"{text}: {target.arch}\n  {target.costs['macs'] / 1e6:.1f}M MACs, {target.costs['params'] / 1e6:.2f}M "
              f"params, accuracy predicted {100 * target.score:.2f}%, measured {measured}; "
              + ", ".join(f"{f.path.name} (max |diff| {f.max_abs_diff:.1e})" for f in files))
    if calibration is None:
        print("note: without --data-root the exported subnets keep the checkpoint's batch-norm statistics (those "
              "of the full network); recalibrate them on ~2,000 training images before deployment")
    (args.out / "specialized.json").write_text(json.dumps({"targets": rows}, indent=1))
    print(f"wrote {args.out / 'specialized.json'}")
    return {"targets": rows}


if __name__ == "__main__":
    main()
