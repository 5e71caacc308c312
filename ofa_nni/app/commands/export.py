"""``ofa-nni export``: freeze subnets of a trained supernet, export them, measure them.

``ofa-nni export --supernet runs/digits/supernet.pt --search search.json --out-dir exports``
freezes every target's subnet of a search (or each ``--arch``), recalibrates its batch norms on
training images (OFA Sec. 3.3: the supernet's statistics do not fit a subnet), writes
TorchScript and ONNX files, each checked numerically against the PyTorch subnet
(:func:`ofa_nni.export.export_subnet`), measures held-out accuracy and end-to-end latency, and
writes ``exports.json`` (kind ``ofa-nni/exports``) for ``ofa-nni report``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from ofa_nni.app.commands import DeferredChoices, load_supernet_data, seed
from ofa_nni.errors import InvalidInputError

__all__ = ["latency_visits", "register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    from ofa_nni.latency.protocol import DEFAULT_REPEATS, DEFAULT_ROUNDS, STATISTICS

    parser = subparsers.add_parser(
        "export",
        help="deploy: freeze subnets, recalibrate BN, export TorchScript/ONNX (checked), measure accuracy/latency",
        description=(
            "Freeze each subnet (every target of --search, and every --arch) with the supernet's weights, "
            "recalibrate its batch norms on training images of --data, export it (each file loaded back and "
            "compared with the PyTorch subnet; a mismatch is an error and leaves no file), measure its held-out "
            "accuracy and its latency (torch, CPU, batch 1, end to end), and write OUT_DIR/exports.json. The files "
            "appear in OUT_DIR only once all are complete: a failed or interrupted export leaves an earlier one there "
            "as it was."
        ),
        epilog="example: ofa-nni export --supernet runs/digits/supernet.pt --search search.json --out-dir exports",
    )
    parser.add_argument("--supernet", type=Path, required=True, metavar="FILE",
                        help="trained supernet (supernet.pt or a checkpoint)")
    parser.add_argument("--arch", action="append", default=[], help="an arch string to export (repeatable)")
    parser.add_argument("--search", type=Path, default=None, metavar="FILE",
                        help="results of 'ofa-nni search --out' (same space): export every target's subnet")
    parser.add_argument("--out-dir", type=Path, required=True, metavar="DIR",
                        help="where the files and exports.json go; an export into a folder that holds one replaces "
                             "it (the files its exports.json listed and this one does not write are removed; other "
                             "files stay)")
    parser.add_argument("--formats", default=None, metavar="LIST",
                        help="comma-separated export formats (default: all of them; torchscript and onnx today)")
    parser.add_argument("--data", choices=DeferredChoices("ofa_nni.data", "DATA_KINDS"), default="digits",
                        metavar="KIND", help="data for BN recalibration (training images) and accuracy (held-out): "
                                             "%(choices)s (default digits)")
    parser.add_argument("--data-root", type=Path, default=None, metavar="DIR",
                        help="data directory (all kinds but digits)")
    parser.add_argument("--calibration-images", type=int, default=None, metavar="N",
                        help="training images for BN recalibration (default: 500 digits, 2000 otherwise)")
    parser.add_argument("--batch-size", type=int, default=100, metavar="N",
                        help="recalibration/evaluation batch size (default 100)")
    parser.add_argument("--no-evaluate", action="store_true", help="skip the held-out accuracy")
    parser.add_argument("--no-latency", action="store_true", help="skip the latency measurement")
    # None: not given (a latency table's protocol then replaces them, and the note says so).
    parser.add_argument("--latency-repeats", type=int, default=None, metavar="N",
                        help=f"timed calls per round without a latency table (default {DEFAULT_REPEATS}, as "
                             "'ofa-nni lut build')")
    parser.add_argument("--latency-rounds", type=int, default=None, metavar="N",
                        help=f"interleaved rounds without a latency table (default {DEFAULT_ROUNDS}, as "
                             "'ofa-nni lut build')")
    parser.add_argument("--statistic", choices=STATISTICS, default=None,
                        help="the latency reported: min (default without a latency table, as 'ofa-nni lut build': "
                             "steady on a machine shared with other busy processes; with one, the table's) or median "
                             "of the timed calls; exports.json keeps both")
    parser.add_argument("--lut", type=Path, default=None, metavar="FILE",
                        help="latency table: measure with its protocol (backend, threads, clock, repeats, statistic) "
                             "and check each subnet against its latency target (default: the table --search used, "
                             "where it still exists); without one, torch eager on the CPU with the options below")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="CPU threads of the latency measurement (default: torch's setting; use the latency "
                             "table's for comparable numbers)")
    parser.add_argument("--atol", type=float, default=1e-4, metavar="X",
                        help="largest absolute output difference an exported file may show (default 1e-4)")
    parser.add_argument("--seed", type=seed, default=0, metavar="N",
                        help="seed of the latency measurement order (default 0)")
    parser.add_argument("--ofa-config", action="store_true",
                        help="also write each subnet in OFA's specialized-network format: OUT_DIR/NAME/net.config "
                             "(as ofa's get_active_net_config() writes it) and run.config (image_size)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def _formats(text: str | None) -> list[str]:
    from ofa_nni.export import EXPORT_FORMATS

    if text is None:
        return list(EXPORT_FORMATS)
    formats = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in formats if f not in EXPORT_FORMATS]
    if unknown or not formats:
        raise InvalidInputError(f"--formats {text!r}: unknown format(s) {unknown}; allowed: "
                                f"{', '.join(EXPORT_FORMATS)} (comma-separated)")
    return list(dict.fromkeys(formats))


def _subnets(arch_space: Any, args: argparse.Namespace, search: Any) -> list[dict[str, Any]]:
    """What to export: ``{"name", "arch", "sample", ["target", "predicted_accuracy"]}`` per subnet
    (``search``: the loaded ``--search`` document, or None)."""
    from ofa_nni._artifacts import require_same_space

    subnets: list[dict[str, Any]] = []
    if search is not None:
        require_same_space(search["space"], arch_space, artefact=f"search results {args.search} (against the supernet)",
                           allow_fewer_resolutions=True)
        if not search["targets"]:
            raise InvalidInputError(f"{args.search} has no targets (only a Pareto front): pass --arch strings from it")
        for index, target in enumerate(search["targets"]):
            sample = arch_space.validate(target["sample"])
            subnets.append({"name": f"target{index + 1}", "arch": arch_space.format(sample), "sample": sample,
                            "target": target["name"], "predicted_accuracy": target["score"],
                            "latency_target_ms": target["budgets"].get("latency_ms"),
                            "latency_predicted_ms": target["costs"].get("latency_ms")})
    for index, text in enumerate(args.arch):
        try:
            sample = arch_space.parse(text)
        except ValueError as error:
            raise InvalidInputError(f"--arch: {error}") from None
        subnets.append({"name": f"subnet{index + 1}", "arch": arch_space.format(sample), "sample": sample})
    if not subnets:
        raise InvalidInputError("nothing to export: give --search search.json and/or --arch ARCH")
    return subnets


def _check(args: argparse.Namespace) -> None:
    if args.threads is not None and args.threads < 1:
        raise InvalidInputError(f"--threads must be >= 1, got {args.threads}")
    for name in ("batch_size", "latency_repeats", "latency_rounds"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise InvalidInputError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not args.atol >= 0:
        raise InvalidInputError(f"--atol must be >= 0, got {args.atol}")
    if args.calibration_images is not None and args.calibration_images < 1:
        raise InvalidInputError(f"--calibration-images must be >= 1, got {args.calibration_images} (leave it out for "
                                "the default: 500 digits, 2000 otherwise)")


def run(args: argparse.Namespace) -> int:
    from ofa_nni._artifacts import exclusive_lock
    from ofa_nni.app.documents import SearchDocument
    from search_spaces import load_supernet

    _check(args)
    formats = _formats(args.formats)
    supernet = load_supernet(args.supernet)
    search = None if args.search is None else SearchDocument.load(args.search)
    subnets = _subnets(supernet.arch_space, args, search)
    if args.ofa_config:  # a subnet OFA's format cannot describe is refused before any work
        from ofa_nni.ofa_released import ofa_net_config

        for entry in subnets:
            ofa_net_config(entry["sample"], space=supernet)
    # The table is read before any work: a bad --lut is refused at once, not after the exports.
    table = _latency_table(supernet.arch_space, args, search)
    _check_out_dir(args.out_dir, [f"{entry['name']}{_SUFFIXES[fmt]}" for entry in subnets for fmt in formats])
    with exclusive_lock(args.out_dir, "export directory"):
        written, latency = _export(args, supernet, subnets, formats, table)
    _print_table(subnets, formats)
    check = latency.get("check")
    if check:
        from ofa_nni.latency.deployment import deployment_lines

        print("\n".join(deployment_lines(check)))
    print(f"wrote {len(written)} file(s) and {args.out_dir / 'exports.json'}")
    return 0


_SUFFIXES = {"torchscript": ".pt", "onnx": ".onnx"}
"""The file each format writes (``ofa_nni.export.export_subnet``: ``<name>.pt``, ``<name>.onnx``)."""


def _check_out_dir(out_dir: Path, names: list[str]) -> None:
    """Refuse an output directory that is a file, or whose files to replace are not regular files,
    before any work is done (a refusal at the end would throw the work away)."""
    from ofa_nni._artifacts import existing_file_mode
    from ofa_nni.errors import OutputError

    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"--out-dir {str(out_dir)!r} exists and is not a directory")
    for name in [*names, "exports.json"]:
        existing_file_mode(out_dir / name)


_STAGING_PREFIX, _STAGING_SUFFIX = ".export-", ".partial"
"""The staging folder's name in --out-dir (hidden; removed when the export ends, or by the next one)."""


def _export(args: argparse.Namespace, supernet: Any, subnets: list[dict[str, Any]],
            formats: list[str], table: Any) -> tuple[list[Path], dict[str, Any]]:
    """Export into a staging folder inside ``--out-dir``, then move the files into place: until every
    file and exports.json are complete, the earlier export in ``--out-dir`` stays exactly as it was
    (a failed check, a full disk or Ctrl-C leaves it untouched and no staged file behind). Returns the
    model files written and the latency settings (with the deployment check, given a table)."""
    import shutil
    import tempfile

    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from ofa_nni._artifacts import output_error
    from ofa_nni.app.documents import ExportsDocument
    from ofa_nni.data import calibration_loader
    from ofa_nni.evaluation import evaluate_frozen_subnet
    from ofa_nni.export import export_subnet

    arch_space = supernet.arch_space
    data = load_supernet_data(args, arch_space)
    calibration = list(calibration_loader(data, batch_size=args.batch_size))
    held_out = None if args.no_evaluate else DataLoader(data.val, batch_size=args.batch_size)
    created = not args.out_dir.exists()
    for stale in args.out_dir.glob(f"{_STAGING_PREFIX}*{_STAGING_SUFFIX}"):
        shutil.rmtree(stale, ignore_errors=True)  # of an export killed with SIGKILL (we hold the folder's lock)
    try:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=args.out_dir, prefix=_STAGING_PREFIX, suffix=_STAGING_SUFFIX))
    except OSError as error:
        if created:
            _remove_empty_folder(args.out_dir)
        raise output_error(args.out_dir, error) from None
    done = False
    try:
        models = []
        with warnings.catch_warnings():  # torch.jit's deprecation notices (two per file) would drown the output
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit.*")
            for entry in tqdm(subnets, desc="freeze, recalibrate, export", unit="subnet", disable=args.quiet,
                              dynamic_ncols=True):
                evaluation = evaluate_frozen_subnet(supernet, entry["sample"], calibration, held_out)
                subnet = evaluation.model
                entry["accuracy"] = evaluation.accuracy
                files = export_subnet(subnet, staging, name=entry["name"], formats=formats, atol=args.atol)
                entry["files"] = {f.format: {"path": f.path.name, "max_abs_diff": f.max_abs_diff} for f in files}
                entry["macs"], entry["params"] = evaluation.macs, evaluation.params
                models.append((subnet, subnet.resolution))
        latency = _measure_latency(models, subnets, args, table)
        if args.ofa_config:
            from ofa_nni.ofa_released import write_ofa_net_config

            for entry in subnets:
                write_ofa_net_config(staging / entry["name"], entry["sample"], space=supernet)
                entry["ofa_config"] = f"{entry['name']}/net.config"
        ExportsDocument.create(
            space=arch_space.signature(),
            supernet=str(args.supernet),
            search=None if args.search is None else str(args.search),
            data=None if args.no_evaluate else _data_description(args, data),
            calibration_images=len(data.calibration),  # type: ignore[arg-type]
            latency=latency,
            atol=args.atol,
            subnets=subnets,
        ).save(staging / "exports.json")
        replaced = _files_of_previous_export(args.out_dir)
        written = _move_into_place(staging, args.out_dir)
        _remove_stale(args.out_dir, replaced, keep={path.relative_to(args.out_dir) for path in written})
        done = True
        return written, latency
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created and not done:
            _remove_empty_folder(args.out_dir)


def _remove_empty_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()


def _files_of_previous_export(out_dir: Path) -> set[Path]:
    """The files an earlier export into ``out_dir`` listed in its exports.json (model files, and with
    --ofa-config each NAME/net.config and its run.config), relative to ``out_dir``: this export
    replaces them. Nothing if there is none or it cannot be read (then nothing is removed)."""
    from ofa_nni.app.documents import ExportsDocument

    try:
        previous = ExportsDocument.load(out_dir / "exports.json")
    except (OSError, ValueError):
        return set()
    listed: set[Path] = set()
    for entry in previous["subnets"]:
        listed.update(Path(f["path"]) for f in entry["files"].values())
        if isinstance(entry.get("ofa_config"), str):
            config = Path(entry["ofa_config"])
            listed.update({config, config.with_name("run.config")})
    return listed


def _remove_stale(out_dir: Path, listed: set[Path], keep: set[Path]) -> None:
    """Remove what the previous export listed and this one did not rewrite (a re-export without
    --ofa-config left the old NAME/net.config describing another subnet than NAME.pt), then the
    folders that leaves empty. Only regular files inside ``out_dir`` (an exports.json names paths
    relative to it; anything else it names is left alone)."""
    root = out_dir.resolve()
    for relative in sorted(listed - keep):
        path = out_dir / relative  # an absolute or '..' path resolves outside the folder
        if path.is_symlink() or not path.is_file() or root not in path.resolve().parents:
            continue
        with contextlib.suppress(OSError):
            path.unlink()
        if path.parent != out_dir:
            _remove_empty_folder(path.parent)


def _move_into_place(staging: Path, out_dir: Path) -> list[Path]:
    """Rename every staged file into ``out_dir``, exports.json last, with SIGINT and SIGTERM held
    until all are moved (renames in one file system: a few microseconds each), so an interrupt
    never leaves new model files beside the old exports.json. Returns the model files."""
    import signal

    names = sorted(str(path.relative_to(staging)) for path in staging.rglob("*")
                   if path.is_file() and path.name != "exports.json")  # --ofa-config: NAME/net.config
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    held = signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    try:
        for name in [*names, "exports.json"]:
            (out_dir / name).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / name, out_dir / name)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)  # a signal that came meanwhile is delivered now
    return [out_dir / name for name in names]


def _latency_table(arch_space: Any, args: argparse.Namespace, search: Any) -> Any:
    """The table whose protocol measures the deployments: --lut, else the search's (if still there)."""
    from ofa_nni.latency import LatencyTable

    path = args.lut
    if path is None and search is not None and not args.no_latency:
        recorded = (search["latency_table"] or {}).get("path")
        # Released tables (mit-han-lab's YAML, another device's timings) have no protocol to measure with here.
        path = Path(recorded) if recorded and Path(recorded).is_file() and Path(recorded).suffix == ".json" else None
    return None if path is None else LatencyTable.load(path, arch_space=arch_space)


def latency_visits(args: argparse.Namespace) -> tuple[int, int]:
    """``(repeats, rounds)`` of a measurement without a latency table: the options, or the protocol's."""
    from ofa_nni.latency.protocol import DEFAULT_REPEATS, DEFAULT_ROUNDS

    return args.latency_repeats or DEFAULT_REPEATS, args.latency_rounds or DEFAULT_ROUNDS


def _measure_latency(models: list[Any], subnets: list[dict[str, Any]], args: argparse.Namespace,
                     table: Any = None) -> dict[str, Any]:
    """Each subnet's end-to-end latency into its entry; the settings. With a latency table: its
    protocol, and the check against each subnet's target (:func:`~ofa_nni.latency.check_deployments`)."""
    if args.no_latency:
        for entry in subnets:
            entry["latency_ms"] = entry["latency_median_ms"] = entry["latency_min_ms"] = None
        return {"description": None}
    if table is not None:
        from ofa_nni.latency import check_deployments

        ignored = [f"--{name.replace('_', '-')} {getattr(args, name)}" for name in ("latency_repeats", "latency_rounds",
                                                                                      "threads")
                   if getattr(args, name) is not None]
        if ignored:  # a table's deployments are measured as the table was, or the check would compare unlike
            print(f"note: {', '.join(ignored)} not used: the subnets are measured with the latency table's protocol "
                  f"({table.protocol['rounds']} x {table.protocol['repeats']} timed calls, "
                  f"{table.protocol['num_threads']} thread(s)); --no-latency skips the measurement", file=sys.stderr)

        check = check_deployments(table, models, names=[entry["name"] for entry in subnets],
                                  targets_ms=[entry.get("latency_target_ms") for entry in subnets],
                                  predicted_ms=[entry.get("latency_predicted_ms") for entry in subnets],
                                  seed=args.seed, show_progress=not args.quiet)
        p = check["protocol"]
        statistic = args.statistic or p["statistic"]
        for entry, row in zip(subnets, check["subnets"], strict=True):
            entry["latency_median_ms"], entry["latency_min_ms"] = row["measured_median_ms"], row["measured_min_ms"]
            entry["latency_ms"] = entry[f"latency_{statistic}_ms"]
            entry["latency_over_target"], entry["latency_over_by_ms"] = row["over_target"], row["over_by_ms"]
        return {"description": f"{p['backend']}, {p['device']}, {p['num_threads']} thread(s), batch {p['batch_size']}, "
                               f"{statistic} of {p['rounds']} x {p['repeats']} {p['clock']}-clock timed calls"
                               + (" normalised by a reference op" if p.get("normalise") == "reference" else "")
                               + " (the latency table's protocol)", **p, "statistic": statistic, "check": check}
    import torch

    from ofa_nni.latency import measure_end_to_end

    statistic = args.statistic or "min"
    repeats, rounds = latency_visits(args)
    timings = measure_end_to_end(models, backend="torch", device="cpu", batch_size=1, repeats=repeats,
                                 rounds=rounds, num_threads=args.threads, seed=args.seed,
                                 show_progress=not args.quiet)
    for index, entry in enumerate(subnets):
        entry["latency_median_ms"] = float(timings["median"][index])
        entry["latency_min_ms"] = float(timings["min"][index])
        entry["latency_ms"] = entry[f"latency_{statistic}_ms"]
    threads = args.threads or torch.get_num_threads()
    return {"description": f"torch eager, CPU, {threads} thread(s), batch 1, {statistic} of "
                           f"{rounds} x {repeats} timed calls", "statistic": statistic,
            "backend": "torch", "device": "cpu", "num_threads": threads, "batch_size": 1,
            "repeats": repeats, "rounds": rounds}


def _data_description(args: argparse.Namespace, data: Any) -> str:
    where = "" if args.data_root is None else f" at {args.data_root}"
    return f"{args.data}{where}, held-out split ({len(data.val)} images)"


def _print_table(subnets: list[dict[str, Any]], formats: list[str]) -> None:
    from ofa_nni.app.report import format_cost, text_table

    header = ["name", "accuracy", "latency ms", "MACs", "params", *(f"{f} max|diff|" for f in formats), "arch"]
    rows = [[entry["name"],
             "-" if entry["accuracy"] is None else f"{100 * entry['accuracy']:.2f}%",
             "-" if entry["latency_ms"] is None else f"{entry['latency_ms']:.3f}",
             format_cost("macs", entry["macs"]), format_cost("params", entry["params"]),
             *(f"{entry['files'][f]['max_abs_diff']:.1e}" for f in formats), entry["arch"]]
            for entry in subnets]
    print(text_table(header, rows, right=range(1, 5 + len(formats))))
