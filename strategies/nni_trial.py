"""The NNI trial of :class:`strategies.nni_tuner.OFAEvolutionTuner`: evaluate one subnet for real.

``trialCommand: python -m strategies.nni_trial --supernet runs/digits/supernet.pt ...`` in the
experiment's ``config.yml``. Every location (supernet, data, optional predictor) is a command-line
argument of the trial command, resolved against the trial's working directory (NNI's
``trialCodeDirectory``), so the same config runs under NNI's local, remote and Kubernetes training
services once the paths point at storage the trial machines see.

One trial:

1. loads the trained supernet (``ofa_nni.training.load_supernet``, ``weights_only``),
2. takes its subnet from ``nni.get_next_parameter()`` (or ``--arch`` outside NNI) and freezes it
   (``space.freeze``, exact),
3. recalibrates its batch norms on training images (OFA: batch statistics averaged over ~2,000
   images; ``ofa_nni.runtime.recalibrate_batchnorm``),
4. measures top-1 accuracy on the held-out split,
5. measures the latency of the frozen model (median and minimum over rounds x repeats at the
   configured batch size, ``ofa_nni.latency.measure_end_to_end``), computes MACs and parameters
   analytically,
6. reports ``{'default': accuracy, 'accuracy', 'loss', 'latency_ms' (median), 'latency_min_ms',
   'macs', 'params', 'arch', ['predicted_accuracy']}`` with ``nni.report_final_result``. The
   ``arch`` string identifies the subnet this trial actually ran, in canonical form (inactive blocks
   at their first choice, as the tuner's log and parameters write it): NNI 3.0 can hand a trial
   another trial's parameters under concurrency, and the tuner credits the score to this arch.

Bad input (missing file, a subnet of another space, a data set with another class count) exits with
code 2 and one line on stderr; NNI shows the trial as FAILED and the tuner counts the subnet as failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ofa_nni.arch import family_name
from ofa_nni.errors import InvalidInputError

__all__ = ["main", "evaluate_trial", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    from ofa_nni.data import DATA_KINDS
    from ofa_nni.latency import BACKENDS, DEFAULT_REPEATS, DEFAULT_ROUNDS, DEFAULT_WARMUP, DEVICES

    parser = argparse.ArgumentParser(
        prog="python -m strategies.nni_trial",
        description="Evaluate one subnet of a trained OFA supernet (an NNI trial of OFAEvolutionTuner).",
    )
    parser.add_argument("--supernet", required=True, help="trained supernet (supernet.pt or a training checkpoint)")
    parser.add_argument("--data", default="digits", choices=DATA_KINDS, help="data set kind (default: digits, offline)")
    parser.add_argument("--data-root", default=None, help="directory of the data set (not for digits)")
    parser.add_argument("--calibration-images", type=int, default=None,
                        help="training images kept for BN recalibration (default: 500 for digits, else 2000)")
    parser.add_argument("--calibration-batches", type=int, default=None,
                        help="recalibrate BN on at most this many batches (default: all calibration images)")
    parser.add_argument("--batch-size", type=int, default=100, help="batch size of recalibration and evaluation")
    parser.add_argument("--num-workers", type=int, default=0, help="data loader workers")
    parser.add_argument("--latency-backend", default="torch", choices=BACKENDS, help="latency backend")
    parser.add_argument("--latency-device", default="cpu", choices=DEVICES, help="latency device")
    parser.add_argument("--latency-batch-size", type=int, default=1, help="batch size of the latency measurement")
    parser.add_argument("--latency-repeats", type=int, default=DEFAULT_REPEATS,
                        help=f"timed calls per round (default {DEFAULT_REPEATS}, as 'ofa-nni lut build')")
    parser.add_argument("--latency-rounds", type=int, default=DEFAULT_ROUNDS,
                        help=f"rounds (default {DEFAULT_ROUNDS}; the median is over all timed calls)")
    parser.add_argument("--latency-warmup", type=int, default=DEFAULT_WARMUP,
                        help=f"untimed calls before each round (default {DEFAULT_WARMUP})")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    parser.add_argument("--predictor", default=None,
                        help="accuracy predictor (.npz) of the space: also report its prediction")
    parser.add_argument("--arch", default=None,
                        help="evaluate this arch string instead of asking NNI (to run a trial by hand)")
    return parser


def _positive(args: argparse.Namespace, *names: str) -> None:
    for name in names:
        value = getattr(args, name)
        if value is not None and value < 1:
            raise InvalidInputError(f"--{name.replace('_', '-')} must be >= 1, got {value}")


def evaluate_trial(args: argparse.Namespace, parameters: Any) -> dict[str, Any]:
    """Evaluate the subnet ``parameters`` (a sample dict or an arch string) as ``args`` say; the metric dict."""
    import numpy as np
    import torch
    from torch.utils.data import DataLoader

    from ofa_nni.accuracy import AccuracyPredictor
    from ofa_nni.data import calibration_loader, load_data
    from ofa_nni.evaluation import evaluate_frozen_subnet
    from ofa_nni.latency import measure_end_to_end
    from search_spaces import load_supernet
    from strategies.nni_tuner import canonical_arch

    _positive(args, "calibration_images", "calibration_batches", "batch_size", "latency_batch_size",
              "latency_repeats", "latency_rounds", "threads")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    supernet = load_supernet(Path(args.supernet))
    space = supernet.arch_space
    if isinstance(parameters, str):
        sample = space.parse(parameters)
    else:
        if not parameters:
            raise InvalidInputError("no subnet to evaluate: run this under nnictl (OFAEvolutionTuner) or pass --arch")
        try:
            sample = space.validate(parameters)
        except InvalidInputError as error:
            # The tuner proposes from its classArgs.space and the search space JSON, neither of which
            # names this file: say which of the three disagrees with the supernet the trial loads.
            raise InvalidInputError(
                f"{error} -- this trial's supernet {args.supernet} is an {family_name(space.signature())} space "
                "that the experiment's subnets do not fit: give the tuner classArgs.supernet (this file) instead "
                "of classArgs.space, and regenerate the search space with 'ofa-nni nni search-space --supernet "
                f"{args.supernet}'") from None
    arch = canonical_arch(space, sample)
    predictor = AccuracyPredictor.load(args.predictor, arch_space=space) if args.predictor else None

    data = load_data(args.data, root=args.data_root, resolution=max(space.resolutions),
                     calibration_images=args.calibration_images)
    if data.num_classes != space.num_classes:
        raise InvalidInputError(f"the supernet {args.supernet!r} has {space.num_classes} classes but the {args.data} "
                                f"data has {data.num_classes}: evaluate on the data it was trained on")
    calibration = calibration_loader(data, batch_size=args.batch_size, num_workers=args.num_workers)
    held_out = DataLoader(data.val, batch_size=args.batch_size, shuffle=False, num_workers=args.num_workers)
    evaluation = evaluate_frozen_subnet(supernet, sample, calibration, held_out,
                                        calibration_batches=args.calibration_batches)
    del supernet
    latency = measure_end_to_end(
        [(evaluation.model, int(sample[space.RESOLUTION_LABEL]))],
        backend=args.latency_backend,
        device=args.latency_device,
        batch_size=args.latency_batch_size,
        warmup=args.latency_warmup,
        repeats=args.latency_repeats,
        rounds=args.latency_rounds,
        num_threads=args.threads,
    )
    metric: dict[str, Any] = {
        "default": evaluation.accuracy,
        "accuracy": evaluation.accuracy,
        "loss": evaluation.loss,
        "latency_ms": float(latency["median"][0]),
        "latency_min_ms": float(latency["min"][0]),
        "macs": evaluation.macs,
        "params": evaluation.params,
        "arch": arch,
        "eval_images": evaluation.num_images,
        "calibration_batches": evaluation.calibration_batches,
        "seconds": round(time.perf_counter() - started, 3),
    }
    if predictor is not None:
        metric["predicted_accuracy"] = float(np.asarray(predictor(space.to_indices(sample)[None]))[0])
    return metric


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        import nni  # after ``strategies`` imported ofa_nni, which applies the NNI 3.0 compat patches

        parameters: Any = args.arch if args.arch is not None else nni.get_next_parameter()
        metric = evaluate_trial(args, parameters)
    except (ValueError, FileNotFoundError, NotADirectoryError) as error:
        print(f"nni_trial: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(metric), flush=True)
    nni.report_final_result(metric)
    return 0


if __name__ == "__main__":
    sys.exit(main())
