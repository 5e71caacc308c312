"""``ofa-nni lut``: measure a latency lookup table on this machine, validate it, show one.

* ``ofa-nni lut build --preset ofa-mobilenetv3 --backend torch --device cpu --out lut.json``
  measures every stem/block/head shape of the space (resumable: rerun the same command after an
  interruption), then validates the table against end-to-end measurements of random frozen
  subnets and stores Spearman/MAPE (raw sum and fitted correction) in the file.
* ``ofa-nni lut show lut.json`` prints what a table holds and how good it is.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ofa_nni.app.commands import seed
from ofa_nni.arch import ArchSpace
from ofa_nni.errors import InvalidInputError
from ofa_nni.latency import BACKENDS, CLOCKS, DEVICES, STATISTICS

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "lut",
        help="latency lookup tables measured on this device (build, show)",
        description="Latency lookup tables: per stem/block/head shape and resolution, measured on this machine.",
    )
    actions = parser.add_subparsers(dest="lut_command", metavar="ACTION", required=True)

    build = actions.add_parser(
        "build",
        help="measure a latency table and validate it end to end",
        description="Measure every op shape of the space with warm-up, repeats and the minimum, in interleaved "
                    "rounds; validate on random frozen subnets (Spearman, MAPE). Resumable: progress is kept in "
                    "OUT.partial.json; rerun the same command to continue.",
    )
    source = build.add_mutually_exclusive_group(required=True)
    source.add_argument("--supernet", type=Path, help="trained supernet (supernet.pt or a training checkpoint)")
    source.add_argument("--preset", help="space preset (cpu, ofa-mobilenetv3; with --space ofa-proxyless: cpu, "
                        "ofa-proxylessnas)")
    build.add_argument("--space", default=None, help="with --preset: the search space (ofa-mbv3, the default, "
                       "or ofa-proxyless)")
    build.add_argument("--num-classes", type=int, default=None, help="with --preset: classifier outputs")
    build.add_argument("--backend", choices=BACKENDS, default="torch", help="torch (eager) or onnxruntime")
    build.add_argument("--device", choices=DEVICES, default="cpu", help="cpu or cuda")
    build.add_argument("--batch-size", type=int, default=1, help="images per call (default 1)")
    which = build.add_mutually_exclusive_group()
    which.add_argument("--resolutions", type=int, nargs="+", help="resolutions to measure (default: all); "
                       "the others are interpolated")
    which.add_argument("--measure-every", type=int, default=None, metavar="N",
                       help="measure every N-th resolution of the space (and the largest), interpolate the rest")
    build.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's setting)")
    build.add_argument("--warmup", type=int, default=3, help="untimed calls per visit (default 3)")
    build.add_argument("--repeats", type=int, default=30, help="timed calls per visit (default 30)")
    build.add_argument("--rounds", type=int, default=3, help="visits per entry, in shuffled order (default 3)")
    build.add_argument("--clock", choices=CLOCKS, default="wall",
                       help="wall (elapsed time, default) or cpu (the thread's CPU time: not inflated by other busy "
                            "processes; needs --threads 1)")
    build.add_argument("--statistic", choices=STATISTICS, default="min",
                       help="sum the minimum (default) or the median of each entry's timings (the minimum "
                            "reproduces between runs; timings above it come from other processes)")
    build.add_argument("--validate", type=int, default=30, metavar="K",
                       help="random subnets for the end-to-end validation (default 30; 0 skips it)")
    build.add_argument("--calibration-subnets", type=int, default=30,
                       help="other random subnets that fit the correction (default 30)")
    build.add_argument("--seed", type=seed, default=0)
    build.add_argument("--out", type=Path, required=True, help="output table (JSON)")
    build.add_argument("--quiet", action="store_true", help="no progress bars")
    build.set_defaults(func=run_build)

    show = actions.add_parser("show", help="print a latency table's summary", description="Print a table's summary.")
    show.add_argument("table", type=Path)
    show.set_defaults(func=run_show)


def _resolutions(space: ArchSpace, args: argparse.Namespace) -> list[int] | None:
    if args.measure_every is not None:
        if args.measure_every < 1:
            raise InvalidInputError(f"--measure-every must be >= 1, got {args.measure_every}")
        chosen = list(space.resolutions[:: args.measure_every])
        return sorted(set(chosen) | {space.resolutions[-1]})
    if args.resolutions:
        unknown = [r for r in args.resolutions if r not in space.resolutions]
        if unknown:
            raise InvalidInputError(f"--resolutions {unknown} not in the space; allowed: {list(space.resolutions)}")
    return args.resolutions


def _supernet(args: argparse.Namespace) -> Any:
    """The supernet whose ``freeze`` makes the validation models (weights do not matter for latency)."""
    if args.supernet is not None:
        if args.num_classes is not None or args.space is not None:
            raise InvalidInputError("--num-classes and --space go with --preset; with --supernet the space is the "
                                    "supernet's")
        from search_spaces import load_supernet

        return load_supernet(args.supernet)
    from ofa_nni.nni_search_space import arch_space_from_spec
    from search_spaces import space_class

    spec: dict[str, Any] = {"preset": args.preset, "name": args.space or "ofa-mbv3"}
    if args.num_classes is not None:
        spec["num_classes"] = args.num_classes
    signature = arch_space_from_spec(spec).signature()
    kwargs: dict[str, Any] = {key: tuple(v) if isinstance(v, list) else v for key, v in signature.items()}
    cls = space_class(spec["name"])
    return cls(**cls.kwargs_from_arch_signature(kwargs))


def run_build(args: argparse.Namespace) -> int:
    from ofa_nni.latency import build_latency_table, validate_latency_table

    for name in ("batch_size", "repeats", "rounds"):
        if getattr(args, name) < 1:
            raise InvalidInputError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.threads is not None and args.threads < 1:
        raise InvalidInputError(f"--threads must be >= 1, got {args.threads}")
    if args.validate and (args.validate < 3 or args.calibration_subnets < 2):
        raise InvalidInputError("--validate needs at least 3 subnets and --calibration-subnets at least 2 (or --validate 0)")
    supernet = _supernet(args)
    space: ArchSpace = supernet.arch_space
    partial = args.out.with_name(args.out.name + ".partial.json")
    if partial.exists():
        print(f"resuming from {partial}")
    table = build_latency_table(
        space, backend=args.backend, device=args.device, batch_size=args.batch_size,
        resolutions=_resolutions(space, args), warmup=args.warmup, repeats=args.repeats, rounds=args.rounds,
        num_threads=args.threads, statistic=args.statistic, clock=args.clock, seed=args.seed, progress_path=partial,
        show_progress=not args.quiet,
    )
    table.save(args.out)
    if args.validate:
        validate_latency_table(table, supernet.freeze, num_subnets=args.validate,
                               calibration_subnets=args.calibration_subnets, seed=args.seed,
                               show_progress=not args.quiet)
        table.save(args.out)
    os.remove(partial)
    print(table.summary())
    print(f"wrote {args.out}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from ofa_nni.latency import LatencyTable

    print(LatencyTable.load(args.table).summary())
    return 0
