"""``ofa-nni lut``: measure a latency lookup table on this machine, validate it, show one.

* ``ofa-nni lut build --preset ofa-mobilenetv3 --backend torch --device cpu --out lut.json``
  measures every stem/block/head shape of the space (resumable: rerun the same command after an
  interruption), then validates the table against end-to-end measurements of random frozen
  subnets and stores Spearman/MAPE (raw sum and fitted correction) in the file.
* ``ofa-nni lut validate lut.json`` re-checks a table on the machine as it is now (end to end, the
  table's protocol) and says whether the machine's load has changed since it was built.
* ``ofa-nni lut bundle --preset ofa-mobilenetv3 --out DIR`` writes every op shape as ONNX plus a
  single-file runner needing only numpy and onnxruntime; ``ofa-nni lut import DIR/results.json``
  turns what it measured on the device into a table.
* ``ofa-nni lut show lut.json`` prints what a table holds and how good it is.

Every command that writes a file holds an OS lock on it for its whole run (``ofa_nni._artifacts.exclusive_lock``): a
second one into the same file is refused at once, naming the first's PID.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from ofa_nni.app.commands import seed as seed_type
from ofa_nni.arch import ArchSpace
from ofa_nni.errors import InvalidInputError
from ofa_nni.latency.protocol import (
    BACKENDS,
    CLOCK_CHOICES,
    DEFAULT_MAX_VALIDATION_ROUNDS,
    DEFAULT_REPEATS,
    DEFAULT_ROUNDS,
    DEFAULT_WARMUP,
    DEVICES,
    NORMALISATIONS,
    ORDERS,
    REPEATABILITY_TARGET,
    STATISTICS,
)

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "lut",
        help="latency lookup tables measured on this device (build, validate, show, bundle, import)",
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
    _space_source_arguments(build)
    build.add_argument("--backend", choices=BACKENDS, default="torch", help="torch (eager) or onnxruntime")
    build.add_argument("--device", choices=DEVICES, default="cpu", help="cpu or cuda")
    build.add_argument("--batch-size", type=int, default=1, help="images per call (default 1)")
    which = build.add_mutually_exclusive_group()
    which.add_argument("--resolutions", type=int, nargs="+", help="resolutions to measure (default: all); "
                       "the others are interpolated")
    which.add_argument("--measure-every", type=int, default=None, metavar="N",
                       help="measure every N-th resolution of the space (and the largest), interpolate the rest")
    build.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's setting)")
    build.add_argument("--warmup", type=int, default=DEFAULT_WARMUP,
                       help=f"untimed calls per visit (default {DEFAULT_WARMUP})")
    build.add_argument("--repeats", type=int, default=DEFAULT_REPEATS,
                       help=f"timed calls per visit (default {DEFAULT_REPEATS})")
    build.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS,
                       help=f"visits per entry, in a fresh random order each round (default {DEFAULT_ROUNDS})")
    build.add_argument("--clock", choices=CLOCK_CHOICES, default="auto",
                       help="auto (default: cpu with --threads 1 on the CPU, else wall), wall (elapsed time) or cpu "
                            "(the thread's CPU time: not inflated by other busy processes taking the core; holds "
                            "under competing load, see benchmarks/results/latency_table.md; needs --threads 1)")
    build.add_argument("--order", choices=ORDERS, default="interleaved",
                       help="interleaved (default: every round visits all entries in a fresh random order, so a "
                            "burst of load spreads over many) or block (each entry's rounds back to back)")
    build.add_argument("--normalise", choices=NORMALISATIONS, default="none",
                       help="none (default) or reference: time a mid-sized block of the space at least every 0.1 s "
                            "between the entries and divide each entry's timings by how much slower than its quiet "
                            "speed it ran then, so slow phases of the machine (memory-bandwidth contention, which "
                            "the cpu clock does not hide; a frequency drop) scale out; recorded in the table, and "
                            "validation and deployment checks normalise the same way")
    build.add_argument("--statistic", choices=STATISTICS, default="min",
                       help="sum the minimum (default) or the median of each entry's timings (the minimum "
                            "reproduces between runs; timings above it come from other processes)")
    _validation_arguments(build, 30, seed=0, skippable=True)
    build.add_argument("--out", type=Path, required=True, help="output table (JSON)")
    build.add_argument("--quiet", action="store_true", help="no progress bars")
    build.set_defaults(func=run_build)

    validate = actions.add_parser(
        "validate",
        help="re-check a table on this machine as it is now (end to end, the table's protocol)",
        description="Measure random frozen subnets end to end with the table's own protocol (backend, threads, "
                    "clock, order, normalisation, repeats, statistic), store the new Spearman/MAPE and correction in "
                    "the table, and re-time a few of its entries to tell whether the machine's load has changed "
                    "since it was built. The space comes from the table (weights do not matter for latency).",
    )
    validate.add_argument("table", type=Path, help="latency table (JSON) to re-check")
    _validation_arguments(validate, 30, seed=1)
    validate.add_argument("--rounds", type=int, default=None, metavar="N",
                          help="visits per subnet end to end (default: the table's); under load more visits make "
                               "the timings repeat better (the summary says how well they do)")
    validate.add_argument("--out", type=Path, default=None, help="where the re-checked table goes (default: in place)")
    validate.add_argument("--quiet", action="store_true", help="no progress bars")
    validate.set_defaults(func=run_validate)

    bundle = actions.add_parser(
        "bundle",
        help="write every op shape as ONNX plus a runner needing only numpy+onnxruntime, for another device",
        description="Write, into DIR, every distinct op shape of the space as an ONNX model, a few end-to-end ONNX "
                    "subnets for validation, manifest.json and run_latency.py: a single-file runner that needs only "
                    "Python, numpy and onnxruntime (no torch, no ofa-nni). Copy DIR to the device, run "
                    "'python3 run_latency.py' there, bring DIR/results.json back and run 'ofa-nni lut import'.",
    )
    _space_source_arguments(bundle)
    bundle_which = bundle.add_mutually_exclusive_group()
    bundle_which.add_argument("--resolutions", type=int, nargs="+", help="resolutions to measure (default: all)")
    bundle_which.add_argument("--measure-every", type=int, default=None, metavar="N",
                              help="measure every N-th resolution of the space (and the largest)")
    bundle.add_argument("--batch-size", type=int, default=1, help="images per call (default 1)")
    _validation_arguments(bundle, 20, seed=0)
    bundle.add_argument("--out", type=Path, required=True, metavar="DIR", help="bundle directory")
    bundle.set_defaults(func=run_bundle)

    import_ = actions.add_parser(
        "import",
        help="turn a bundle's results.json (timed on the device) into a latency table",
        description="Read DIR/results.json written by a bundle's run_latency.py and write a latency table (backend "
                    "onnxruntime, the device's name and providers recorded) validated on the bundle's end-to-end "
                    "subnets.",
    )
    import_.add_argument("results", type=Path, help="results.json written by run_latency.py")
    import_.add_argument("--out", type=Path, required=True, help="output table (JSON)")
    import_.set_defaults(func=run_import)

    show = actions.add_parser("show", help="print a latency table's summary", description="Print a table's summary.")
    show.add_argument("table", type=Path)
    show.set_defaults(func=run_show)


def _validation_arguments(parser: argparse.ArgumentParser, subnets: int, *, seed: int, skippable: bool = False) -> None:
    parser.add_argument("--validate", type=int, default=subnets, metavar="K",
                        help=f"random subnets for the end-to-end validation (default {subnets}"
                             + ("; 0 skips it)" if skippable else ")"))
    parser.add_argument("--calibration-subnets", type=int, default=subnets,
                        help=f"other random subnets that fit the correction (default {subnets})")
    parser.add_argument("--seed", type=seed_type, default=seed, help=f"seed of the random subnets (default {seed})")
    parser.add_argument("--max-rounds", type=int, default=DEFAULT_MAX_VALIDATION_ROUNDS, metavar="N",
                        help="while the subnets' own timings repeat below Spearman "
                             f"{REPEATABILITY_TARGET} (a busy machine), visit them again, as many visits at a time, "
                             f"up to N visits per subnet in all (default {DEFAULT_MAX_VALIDATION_ROUNDS}; none are "
                             "added when the first visits reach N)")


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


def _module_for(space: ArchSpace) -> Any:
    """A supernet of ``space`` with random weights, whose ``freeze`` makes the validation models."""
    from search_spaces.registry import space_class, space_name_for_layout

    signature = space.signature()
    cls = space_class(space_name_for_layout(signature.get("layout")))
    kwargs: dict[str, Any] = {key: tuple(v) if isinstance(v, list) else v for key, v in signature.items()}
    return cls(**cls.kwargs_from_arch_signature(kwargs))


def _space_source_arguments(parser: argparse.ArgumentParser) -> None:
    """Where ``build`` and ``bundle`` take their space from: a trained supernet, or a space by name and
    preset (either alone: ``--space`` gives the space's released preset, ``--preset`` the default space)."""
    parser.add_argument("--supernet", type=Path, help="trained supernet (supernet.pt or a training checkpoint)")
    parser.add_argument("--space", default=None,
                        help="the search space (ofa-mbv3, the default; ofa-proxyless; ofa-resnet50)")
    parser.add_argument("--preset", help="the space's preset: cpu or the released one, the default (ofa-mobilenetv3, "
                        "ofa-proxylessnas, ofa-resnet50)")
    parser.add_argument("--num-classes", type=int, default=None, help="with --space/--preset: classifier outputs")


def _supernet(args: argparse.Namespace) -> Any:
    """The supernet whose ``freeze`` makes the validation models (weights do not matter for latency)."""
    if args.supernet is not None:
        if args.num_classes is not None or args.space is not None or args.preset is not None:
            raise InvalidInputError("--space, --preset and --num-classes describe a space without weights; with "
                                    "--supernet the space is the supernet's")
        from search_spaces import load_supernet

        return load_supernet(args.supernet)
    if args.space is None and args.preset is None:
        raise InvalidInputError("give --supernet FILE, or --space NAME and/or --preset PRESET")
    from ofa_nni.nni_search_space import arch_space_from_spec

    spec: dict[str, Any] = {"name": args.space or "ofa-mbv3"}
    if args.preset is not None:
        spec["preset"] = args.preset
    if args.num_classes is not None:
        spec["num_classes"] = args.num_classes
    return _module_for(arch_space_from_spec(spec))


def run_build(args: argparse.Namespace) -> int:
    from ofa_nni._artifacts import exclusive_lock
    from ofa_nni.latency.build import build_latency_table
    from ofa_nni.latency.validation import validate_latency_table

    for name in ("batch_size", "repeats", "rounds"):
        if getattr(args, name) < 1:
            raise InvalidInputError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.threads is not None and args.threads < 1:
        raise InvalidInputError(f"--threads must be >= 1, got {args.threads}")
    if args.max_rounds is not None and args.max_rounds < 1:
        raise InvalidInputError(f"--max-rounds must be >= 1, got {args.max_rounds}")
    if args.validate and (args.validate < 3 or args.calibration_subnets < 2):
        raise InvalidInputError(
            "--validate needs at least 3 subnets and --calibration-subnets at least 2 (or --validate 0)")
    supernet = _supernet(args)
    space: ArchSpace = supernet.arch_space
    partial = args.out.with_name(args.out.name + ".partial.json")
    resolutions = _resolutions(space, args)
    # Held from the first read of the progress file to its removal: a second build into the same
    # file is refused at once instead of racing on the progress file.
    with exclusive_lock(args.out, "latency table"):
        if partial.exists():
            print(f"resuming from {partial}")
        table = build_latency_table(
            space, backend=args.backend, device=args.device, batch_size=args.batch_size,
            resolutions=resolutions, warmup=args.warmup, repeats=args.repeats, rounds=args.rounds,
            num_threads=args.threads, statistic=args.statistic, clock=args.clock, order=args.order,
            normalise=args.normalise, seed=args.seed,
            progress_path=partial, show_progress=not args.quiet,
        )
        table.save(args.out)
        if args.validate:
            validate_latency_table(table, supernet.freeze, num_subnets=args.validate,
                                   calibration_subnets=args.calibration_subnets, seed=args.seed,
                                   max_rounds=args.max_rounds, show_progress=not args.quiet)
            table.save(args.out)
        os.remove(partial)
    print(table.summary())
    print(f"wrote {args.out}")
    return 0


def run_validate(args: argparse.Namespace) -> int:
    from ofa_nni._artifacts import exclusive_lock
    from ofa_nni.latency import LatencyTable
    from ofa_nni.latency.deployment import retime_entries
    from ofa_nni.latency.validation import validate_latency_table

    if args.validate < 3 or args.calibration_subnets < 2:
        raise InvalidInputError("--validate needs at least 3 subnets and --calibration-subnets at least 2")
    for option, value in (("--rounds", args.rounds), ("--max-rounds", args.max_rounds)):
        if value is not None and value < 1:
            raise InvalidInputError(f"{option} must be >= 1, got {value}")
    out = args.out or args.table
    with exclusive_lock(out, "latency table"):
        table = LatencyTable.load(args.table)
        before = dict(table.validation or {})
        load = retime_entries(table, seed=args.seed, show_progress=not args.quiet)
        validate_latency_table(table, _module_for(table.arch_space).freeze, num_subnets=args.validate,
                               calibration_subnets=args.calibration_subnets, seed=args.seed, rounds=args.rounds,
                               max_rounds=args.max_rounds, show_progress=not args.quiet)
        assert table.validation is not None
        table.validation["entries_retimed"] = load
        table.validation["previous"] = {key: before.get(key) for key in ("raw", "corrected", "load", "seed")
                                        } if before else None
        table.save(out)
    print(table.summary())
    print(f"  {load['entries']} entries re-timed now: {load['ratio']:.2f}x their stored times ("
          + ("the machine's load changed since the table was built: rebuild it with 'ofa-nni lut build'"
             if load["load_changed"] else "load as when built") + ")")
    print(f"wrote {out}")
    return 0


def run_bundle(args: argparse.Namespace) -> int:
    from ofa_nni._artifacts import exclusive_lock
    from ofa_nni.latency.bundle import RUNNER_NAME, write_bundle

    if args.batch_size < 1:
        raise InvalidInputError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.validate < 3 or args.calibration_subnets < 2:
        raise InvalidInputError("--validate needs at least 3 subnets and --calibration-subnets at least 2")
    supernet = _supernet(args)
    space: ArchSpace = supernet.arch_space
    started = time.perf_counter()
    with exclusive_lock(args.out, "latency table"):
        manifest = write_bundle(space, args.out, supernet.freeze, resolutions=_resolutions(space, args),
                                batch_size=args.batch_size, validation_subnets=args.validate,
                                calibration_subnets=args.calibration_subnets, seed=args.seed)
    size = sum(path.stat().st_size for path in args.out.rglob("*") if path.is_file())
    models = len({entry["model"] for entry in manifest["entries"]})
    print(f"wrote {args.out}: {len(manifest['entries'])} op shapes in {models} ONNX files, "
          f"{len(manifest['subnets'])} end-to-end subnets, {size / 2**20:.1f} MiB, "
          f"in {time.perf_counter() - started:.0f} s")
    print(f"on the device (Python with numpy and onnxruntime only): python3 {args.out / RUNNER_NAME}; then: "
          f"ofa-nni lut import {args.out / 'results.json'} --out lut.json")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from ofa_nni._artifacts import exclusive_lock
    from ofa_nni.latency.bundle import import_results

    with exclusive_lock(args.out, "latency table"):
        table = import_results(args.results)
        table.save(args.out)
    print(table.summary())
    print(f"wrote {args.out}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from ofa_nni.latency import LatencyTable

    print(LatencyTable.load(args.table).summary())
    return 0
