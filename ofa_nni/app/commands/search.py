"""``ofa-nni search``: predictor-guided specialization for many deployment targets in one call.

``ofa-nni search --predictor predictor.npz --lut lut.json --target 'latency_ms<=3.5'
--target 'latency_ms<=5,macs<=40M' --pareto --out search.json`` runs OFA's evolutionary search
(Cai et al., ICLR 2020, Sec. 3.3; :class:`ofa_nni.search.EvolutionSearch`) once for every target
together, guided by the accuracy predictor, and prints each target's subnet with its predicted
accuracy and every cost. ``--pareto`` adds the Pareto front of predicted accuracy against one cost
(:class:`ofa_nni.search.ParetoSearch`). The JSON file (kind ``ofa-nni/search``) feeds
``ofa-nni export --search`` and ``ofa-nni report``.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ofa_nni.app.commands import seed
from ofa_nni.errors import InvalidInputError

__all__ = ["register", "parse_target", "COST_NAMES"]

COST_NAMES = ("macs", "params", "latency_ms")
"""Costs a target can budget (``latency_ms`` needs ``--lut``)."""

DEFAULT_POPULATION = 100
DEFAULT_GENERATIONS = 500
"""OFA's evolution settings (the paper's and :class:`~ofa_nni.search.EvolutionSearch`'s defaults):
about 50K predictor queries per run, a few seconds on a CPU for any number of targets."""

_SUFFIXES = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}
_BUDGET = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*<=\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([A-Za-z]*)\s*$")
_SYNTAX = "NAME<=NUMBER with an optional K, M or G suffix, several joined by commas, e.g. 'latency_ms<=3.5,macs<=40M'"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "search",
        help="specialize: the best subnet per deployment target (predictor-guided evolution), Pareto front",
        description=(
            "Find, for every --target, the subnet with the highest predicted accuracy whose costs meet the "
            "target's budgets: one predictor-guided evolutionary search for all targets together (OFA Sec. 3.3). "
            "Costs: macs and params (exact counts) and latency_ms (with --lut, a table from 'ofa-nni lut "
            "build'). Prints one row per target; --out writes them as JSON for 'ofa-nni export --search' and "
            "'ofa-nni report'. Deterministic for a --seed."
        ),
        epilog="example: ofa-nni search --predictor predictor.npz --lut lut.json --target 'latency_ms<=3.5' "
               "--target 'latency_ms<=5,macs<=40M' --pareto --out search.json",
    )
    parser.add_argument("--predictor", type=Path, required=True, metavar="FILE",
                        help="accuracy predictor (.npz from 'ofa-nni predictor build', or mit-han-lab's released "
                             "acc_predictor.pth: the OFA tutorial's space); its space is searched")
    parser.add_argument("--lut", type=Path, default=None, metavar="FILE",
                        help="latency table (.json from 'ofa-nni lut build', same space; or mit-han-lab's released "
                             "per-resolution .yaml tables: a folder such as note10/, or one file, or "
                             "proxylessnas/mobile_trim.yaml for an OFA-ProxylessNAS predictor; the search keeps "
                             "the resolutions they cover): makes latency_ms a cost")
    parser.add_argument("--target", action="append", default=[], metavar="BUDGETS",
                        help=f"a deployment target: {_SYNTAX}; costs {', '.join(COST_NAMES)}. Repeat for more "
                             "targets (all searched at once)")
    parser.add_argument("--pareto", action="store_true",
                        help="also compute the Pareto front of predicted accuracy against one cost")
    parser.add_argument("--pareto-cost", choices=COST_NAMES, default=None, metavar="COST",
                        help="the front's cost: macs, params or latency_ms (default: the first cost of the "
                             "first --target)")
    parser.add_argument("--population", type=int, default=DEFAULT_POPULATION, metavar="N",
                        help=f"population size (default {DEFAULT_POPULATION}, OFA's). A generation is scored as one "
                             "batch: --population 1000 --generations 50 scores the same number of subnets ~3.5x "
                             "faster (benchmarks/results/search_vs_ofa.md)")
    parser.add_argument("--generations", type=int, default=DEFAULT_GENERATIONS, metavar="N",
                        help=f"generations (default {DEFAULT_GENERATIONS}, OFA's)")
    parser.add_argument("--seed", type=seed, default=0, metavar="N", help="seed of the search (default 0)")
    parser.add_argument("--out", type=Path, default=None, metavar="FILE",
                        help="write the results as JSON (kind ofa-nni/search)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def parse_target(text: str, available: Sequence[str]) -> dict[str, float]:
    """``'latency_ms<=3.5,macs<=40M'`` -> ``{"latency_ms": 3.5, "macs": 40e6}``.

    Raises ValueError naming the culprit: bad syntax, a cost not in ``available`` (``latency_ms``
    without a latency table), a cost given twice.
    """
    budgets: dict[str, float] = {}
    for part in text.split(","):
        match = _BUDGET.match(part)
        if match is None:
            raise InvalidInputError(f"--target {text!r}: cannot read {part.strip()!r}; expected {_SYNTAX}")
        name, number, suffix = match.groups()
        if suffix not in _SUFFIXES:
            raise InvalidInputError(f"--target {text!r}: unknown suffix {suffix!r} in {part.strip()!r}; "
                                    "allowed: K, M, G "
                             "(thousand, million, billion) or none")
        if name not in available:
            if name == "latency_ms" and name in COST_NAMES:
                raise InvalidInputError(f"--target {text!r}: latency_ms needs --lut (a latency table from "
                                 "'ofa-nni lut build' for the predictor's space)")
            raise InvalidInputError(f"--target {text!r}: unknown cost {name!r}; allowed: {', '.join(available)}"
                             + ("" if "latency_ms" in available else " (and latency_ms with --lut)"))
        if name in budgets:
            raise InvalidInputError(f"--target {text!r}: {name} is given twice")
        budgets[name] = float(number) * _SUFFIXES[suffix]
    return budgets


def _human(value: float) -> str:
    """Three significant digits with a K/M/G suffix (the suffixes --target reads): 817K, 1M, 5.12M."""
    for factor, suffix in ((1.0, ""), (1e3, "K"), (1e6, "M")):
        text = f"{value / factor:.3g}"
        if abs(float(text)) < 1000:
            return text + suffix
    return f"{value / 1e9:.3g}G"


def _show_cost(name: str, value: float) -> str:
    return f"{value:.3f}" if name == "latency_ms" else _human(value)


def _costs(arch_space: Any, lut: Path | None) -> tuple[dict[str, Any], Any]:
    from ofa_nni.efficiency import MacsModel, ParamsModel
    from ofa_nni.ofa_released import load_latency_table_file

    table = None if lut is None else load_latency_table_file(lut, arch_space)
    if table is not None:
        arch_space = table.arch_space  # released tables may cover only some of the resolutions
    costs: dict[str, Any] = {"macs": MacsModel(arch_space), "params": ParamsModel(arch_space)}
    if table is not None:
        costs["latency_ms"] = table
    return costs, table


def _infeasible_target(error: ValueError, arch_space: Any, costs: Mapping[str, Any], names: Sequence[str],
                       targets: Sequence[Mapping[str, float]]) -> ValueError:
    """The engine's message for the first target that fails on its own, naming the --target."""
    from ofa_nni.search import EvolutionSearch

    for name, budgets in zip(names, targets, strict=True):
        try:
            EvolutionSearch(arch_space=arch_space, costs=costs, targets=budgets, generations=0)
        except ValueError as alone:
            return InvalidInputError(f"--target {name!r}: {alone}")
    return error  # only the combination fails (not expected for costs that grow with every choice)


def _drive(search: Any, predictor: Any, description: str, args: argparse.Namespace) -> Any:
    """Ask, score with the predictor, tell, until done, with a progress bar over generations."""
    from tqdm.auto import tqdm

    # disable=None: no bar when stderr is not a terminal (a log file or a pipe got thousands of updates)
    with tqdm(total=args.generations + 1, desc=description, unit="gen", disable=True if args.quiet else None,
              dynamic_ncols=True) as bar:
        while True:
            rows = search.ask()
            if len(rows) == 0:
                break
            search.tell(rows, predictor(rows))
            bar.update(search.generation + 1 - bar.n)
    return search.result()


def _run_search(arch_space: Any, predictor: Any, costs: Mapping[str, Any], names: Sequence[str],
                targets: Sequence[Mapping[str, float]], args: argparse.Namespace) -> Any:
    from ofa_nni.search import EvolutionSearch

    try:
        search = EvolutionSearch(arch_space=arch_space, costs=costs, targets=list(targets),
                                 population_size=args.population, generations=args.generations, seed=args.seed)
    except ValueError as error:
        raise _infeasible_target(error, arch_space, costs, names, targets) from None
    return _drive(search, predictor, f"search ({len(targets)} targets)", args)


def _pareto(arch_space: Any, predictor: Any, costs: Mapping[str, Any], cost: str,
            args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from ofa_nni.search import ParetoSearch

    search = ParetoSearch(arch_space=arch_space, costs={cost: costs[cost]}, population_size=args.population,
                          generations=args.generations, seed=args.seed)
    front = _drive(search, predictor, f"Pareto front ({cost})", args)
    return {
        "cost": cost,
        "evaluations": front.evaluations,
        "archs": front.archs(),
        "scores": [float(s) for s in front.scores],
        "costs": {name: [float(v) for v in np.asarray(fn(front.indices))] for name, fn in costs.items()},
    }


MAX_POPULATION = 100_000
"""The largest --population: 1,000x OFA's 100, about 50 MB of arrays per generation for the default
space (10^8 ended in a 4 GiB MemoryError traceback)."""


def _check_settings(args: argparse.Namespace) -> None:
    if not 2 <= args.population <= MAX_POPULATION:
        raise InvalidInputError(f"--population must be in [2, {MAX_POPULATION:,}], got {args.population:,}")
    if args.generations < 0:
        raise InvalidInputError(f"--generations must be >= 0, got {args.generations}")
    if not args.target and not args.pareto:
        raise InvalidInputError("give at least one --target (e.g. --target 'macs<=40M'), or --pareto with "
                                "--pareto-cost")
    if args.pareto_cost is not None and not args.pareto:
        raise InvalidInputError("--pareto-cost goes with --pareto")
    if args.pareto and not args.target and args.pareto_cost is None:
        raise InvalidInputError("--pareto without a --target needs --pareto-cost (one of macs, params, latency_ms)")


def run(args: argparse.Namespace) -> int:
    from ofa_nni._artifacts import existing_file_mode
    from ofa_nni.app.report import text_table
    from ofa_nni.ofa_released import load_predictor_file, restrict_predictor

    _check_settings(args)
    if args.out is not None:
        existing_file_mode(args.out)  # a directory, link or device at --out is refused before the search, not after
    predictor = load_predictor_file(args.predictor)
    arch_space = predictor.arch_space
    costs, table = _costs(arch_space, args.lut)
    if table is not None and table.arch_space != arch_space:
        print(f"note: {table.coverage_note(arch_space.resolutions)}")
        arch_space, predictor = table.arch_space, restrict_predictor(predictor, table.arch_space)
    targets = [parse_target(text, list(costs)) for text in args.target]
    names = [text.replace(" ", "") for text in args.target]
    pareto_cost = str(args.pareto_cost or (next(iter(targets[0])) if targets else ""))
    if args.pareto and pareto_cost not in costs:
        raise InvalidInputError(f"--pareto-cost {pareto_cost}: latency_ms needs --lut")

    started = time.perf_counter()
    result = _run_search(arch_space, predictor, costs, names, targets, args) if targets else None
    front = _pareto(arch_space, predictor, costs, pareto_cost, args) if args.pareto else None
    seconds = time.perf_counter() - started

    cost_names = list(costs)
    if result is not None:
        header = ["target", "predicted acc", *cost_names, "arch"]
        rows = [[name, f"{100 * t.score:.2f}%", *(_show_cost(c, t.costs[c]) for c in cost_names), t.arch]
                for name, t in zip(names, result.targets, strict=True)]
        print(text_table(header, rows, right=range(1, 2 + len(cost_names))))
        print(f"{len(targets)} target(s) in one search: {result.evaluations} predictor queries, "
              f"{result.generations} generations")
    if front is not None:
        _print_front(front, cost_names)
    print(f"searched in {seconds:.1f} s")
    if args.out is not None:
        _document(args, predictor, table, cost_names, names, result, front, seconds).save(args.out)
        print(f"wrote {args.out}")
    return 0


def _document(args: argparse.Namespace, predictor: Any, table: Any, cost_names: Sequence[str], names: Sequence[str],
              result: Any, front: Mapping[str, Any] | None, seconds: float) -> Any:
    """The search's :class:`~ofa_nni.app.documents.SearchDocument`."""
    from ofa_nni.app.documents import SearchDocument
    from ofa_nni.app.report import COST_UNITS

    return SearchDocument.create(
        space=predictor.arch_space.signature(),
        predictor={"path": str(args.predictor), "kind": predictor.kind, "metrics": predictor.metrics},
        latency_table=None if table is None else {"path": str(args.lut), "description": _table_description(table),
                                                  "statistic": table.statistic},
        costs={name: COST_UNITS[name] for name in cost_names},
        settings={"population_size": args.population, "generations": args.generations, "seed": args.seed,
                  "evaluations": 0 if result is None else result.evaluations, "seconds": round(seconds, 3)},
        targets=[] if result is None else [
            {"name": name, "budgets": t.budgets, "arch": t.arch, "sample": t.sample, "score": t.score,
             "costs": t.costs}
            for name, t in zip(names, result.targets, strict=True)
        ],
        pareto=front,
    )


def _table_description(table: Any) -> str:
    meta = table.metadata
    device = meta.get("device", {})
    return (f"backend {meta.get('backend')} on {device.get('type')} ({device.get('name')}), batch size "
            f"{meta.get('batch_size')}, {table.statistic} timings")


def _print_front(front: Mapping[str, Any], cost_names: Sequence[str]) -> None:
    """The front as a table: all of it up to 20 subnets, else 20 spread along it."""
    from ofa_nni.app.report import text_table

    count = len(front["archs"])
    shown = list(range(count)) if count <= 20 else sorted({round(i * (count - 1) / 19) for i in range(20)})
    rows = [[str(i + 1), f"{100 * front['scores'][i]:.2f}%",
             *(_show_cost(c, front["costs"][c][i]) for c in cost_names), front["archs"][i]] for i in shown]
    print(f"\nPareto front, predicted accuracy vs {front['cost']}: {count} subnets"
          + ("" if count <= 20 else " (20 shown; all in --out)"))
    print(text_table(["#", "predicted acc", *cost_names, "arch"], rows, right=range(0, 2 + len(cost_names))))
