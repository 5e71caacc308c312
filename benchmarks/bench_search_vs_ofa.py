"""ofa-nni's search engine vs mit-han-lab's ``EvolutionFinder`` (PyPI ``ofa``), side by side.

Both searches get the *same* functions: the accuracy predictor is ``ofa``'s own
``AccuracyPredictor`` (MLP 3x400, random weights from a fixed seed: no pretrained weights are
needed to compare search engines), and the constraint is MACs. ``EvolutionFinder`` uses ``ofa``'s
``Mbv3FLOPsModel``; our engine uses ``ofa_nni.AnalyticCostModel.macs``. The script first checks, on
random subnets, that the two MACs models agree exactly and that our batched call of their
predictor returns what their ``predict_acc`` returns -- so the comparison is of search engines only.

Measured (in one run, same threads):
  * candidates/s: subnets scored by the predictor per second (their queries: 100 per generation plus
    the initial 100; ours: distinct subnets scored -- duplicates are looked up, not re-scored) and
    children/s (offspring produced and scored or looked up per second);
  * best predicted accuracy meeting the constraint, at the same generations and at the same query
    budget (ours stops after as many predictor queries as theirs made), and at the same query budget
    with a population of 1000 (``--wide-population``): the engine works a generation as one batch,
    so larger generations give the predictor larger batches and spread the per-generation work;
  * ten MACs targets in one call: wall time, and each target's accuracy next to a single-target run.

Usage::

    OMP_NUM_THREADS=2 python benchmarks/bench_search_vs_ofa.py            # the reported run
    python benchmarks/bench_search_vs_ofa.py --their-generations 50 --seeds 1   # quick look

With ``--their-generations`` below 500 their time is also extrapolated to 500 generations (their
cost per generation is constant: every generation scores 100 children).
"""

from __future__ import annotations

import os

# Threads that wait passively: with the default (spinning) wait policy, two torch threads on a
# shared, oversubscribed machine run small matrix products up to ~70x slower (measured here).
# Must be set before torch starts its OpenMP runtime; it applies to both sides.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import contextlib
import io
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ofa_nni import AnalyticCostModel, ArchSpace  # noqa: E402
from ofa_nni.search import EvolutionSearch  # noqa: E402


def build_reference(space: ArchSpace, seed: int) -> tuple[Any, Any]:
    """``ofa``'s MLP predictor (random weights from ``seed``) and its MACs model."""
    from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3
    from ofa.nas.accuracy_predictor import AccuracyPredictor, MobileNetArchEncoder
    from ofa.nas.efficiency_predictor import Mbv3FLOPsModel

    encoder = MobileNetArchEncoder(
        image_size_list=list(space.resolutions),
        ks_list=list(space.kernel_sizes),
        expand_list=list(space.expand_ratios),
        depth_list=list(space.depths),
        n_stage=space.num_stages,
    )
    torch.manual_seed(seed)
    predictor = AccuracyPredictor(encoder, device="cpu")
    # A plausible accuracy scale (the MLP's output plus a base accuracy, as the released one has).
    predictor.base_acc.data.fill_(0.75)
    supernet = OFAMobileNetV3(
        ks_list=list(space.kernel_sizes),
        expand_ratio_list=list(space.expand_ratios),
        depth_list=list(space.depths),
    )
    return predictor, Mbv3FLOPsModel(supernet)


def to_ofa_arch(space: ArchSpace, row: np.ndarray) -> dict[str, Any]:
    """One of our index rows as ``ofa``'s arch dict (ks, e, d, image_size)."""
    sample = space.from_indices(row)
    n_blocks, labels = space.num_blocks, space.labels
    return {
        "ks": [sample[label] for label in labels[:n_blocks]],
        "e": [sample[label] for label in labels[n_blocks : 2 * n_blocks]],
        "d": [sample[label] for label in labels[2 * n_blocks : 2 * n_blocks + space.num_stages]],
        "image_size": sample[space.RESOLUTION_LABEL],
    }


def batched_predictor(space: ArchSpace, predictor: Any) -> Callable[[np.ndarray], np.ndarray]:
    """Their MLP on our index arrays: our feature encoding is their layout, one forward per batch."""

    @torch.inference_mode()
    def predict(indices: np.ndarray) -> np.ndarray:
        features = torch.from_numpy(space.to_features(indices))
        return predictor(features).reshape(-1).numpy()

    return predict


def check_same_functions(space: ArchSpace, predictor: Any, efficiency: Any, objective: Callable, macs: Callable) -> str:
    rows = space.random_indices(500, np.random.default_rng(123))
    archs = [to_ofa_arch(space, row) for row in rows]
    their_macs = np.array([efficiency.get_efficiency(arch) for arch in archs])
    our_macs = macs(rows) / 1e6
    with torch.inference_mode():
        their_acc = predictor.predict_acc(archs).numpy()
    our_acc = objective(rows)
    macs_gap = float(np.abs(their_macs - our_macs).max())
    acc_gap = float(np.abs(their_acc - our_acc).max())
    if macs_gap > 1e-6 or acc_gap > 1e-5:
        raise SystemExit(f"the two sides do not get the same functions: MACs gap {macs_gap}, accuracy gap {acc_gap}")
    return f"same functions checked on 500 random subnets: max |MACs diff| {macs_gap:g} M, max |acc diff| {acc_gap:.1e}"


def run_theirs(predictor: Any, efficiency: Any, constraint: float, generations: int, seed: int) -> dict[str, Any]:
    from ofa.nas.search_algorithm import EvolutionFinder

    calls = {"efficiency": 0}
    get_efficiency = efficiency.get_efficiency

    def counted(arch: dict[str, Any]) -> float:
        calls["efficiency"] += 1
        return get_efficiency(arch)

    efficiency.get_efficiency = counted
    random.seed(seed)
    np.random.seed(seed)
    finder = EvolutionFinder(efficiency, predictor, population_size=100, max_time_budget=generations)
    start, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
        _, best = finder.run_evolution_search(constraint)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    efficiency.get_efficiency = get_efficiency
    queries = 100 + 100 * generations
    return {
        "seconds": seconds,
        "cpu": cpu,
        "queries": queries,
        "children": queries,
        "efficiency_calls": calls["efficiency"],
        "accuracy": float(best[0]),
        "macs": float(best[2]),
        "arch": best[1],
    }


def run_ours(
    space: ArchSpace, objective: Callable, macs: Callable, targets: Any, repeats: int = 1, **settings: Any
) -> dict[str, Any]:
    """Our search, ``repeats`` times (deterministic: the same result each time); median wall and CPU
    time (a run of ours is ~0.5 s, so one scheduler hiccup on a shared machine would skew a single
    timing; theirs runs ~50 s and averages such noise out by itself)."""
    walls, cpus, result, search = [], [], None, None
    for _ in range(repeats):
        search = EvolutionSearch(arch_space=space, costs={"macs": macs}, targets=targets, **settings)
        start, cpu = time.perf_counter(), time.process_time()
        run = search.run(objective)
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
        if result is not None and [t.score for t in run] != [t.score for t in result]:
            raise SystemExit("our search is not deterministic for a seed")
        result = run
    assert result is not None and search is not None
    children = (result.generations + 1) * search.population_size * search.n_targets
    return {
        "seconds": float(np.median(walls)),
        "cpu": float(np.median(cpus)),
        "queries": result.evaluations,
        "children": children,
        "result": result,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--constraint", type=float, default=200.0, help="MACs budget in millions (default 200)")
    parser.add_argument("--their-generations", type=int, default=500, help="EvolutionFinder generations (OFA: 500)")
    parser.add_argument("--seeds", type=int, default=3, help="repetitions with seeds 0..n-1 (default 3)")
    parser.add_argument("--targets-generations", type=int, default=30, help="generations of the 10-target run")
    parser.add_argument("--wide-population", type=int, default=1000,
                        help="population of our throughput run at the same query budget (default 1000)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of ours per setting and seed; median time reported (default 3)")
    parser.add_argument("--out", type=Path, default=None, help="also write the report (markdown) here")
    args = parser.parse_args()

    threads = int(os.environ.get("OMP_NUM_THREADS", "2"))
    torch.set_num_threads(threads)
    space = ArchSpace()
    cost_model = AnalyticCostModel(space)
    predictor, efficiency = build_reference(space, seed=0)
    objective = batched_predictor(space, predictor)
    lines: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    say(f"# Search engine vs ofa's EvolutionFinder ({threads} thread(s), torch {torch.__version__})")
    say()
    say(f"load average at start: {', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    say(check_same_functions(space, predictor, efficiency, objective, cost_model.macs))
    budget = args.constraint * 1e6
    say(
        f"constraint: MACs <= {args.constraint:g}M; population 100, parent ratio 0.25, mutation ratio 0.5, "
        f"mutation prob 0.1, resolution mutation prob 0.5 on both sides"
    )
    say(f"timings of ours: median of {args.repeats} runs per setting and seed (same result each run); theirs: one run")
    say()
    say("| seed | engine | generations | predictor queries | wall s | CPU s | candidates/s | best acc | MACs (M) |")
    say("|---|---|---|---|---|---|---|---|---|")
    rows: list[dict[str, Any]] = []
    for seed in range(args.seeds):
        theirs = run_theirs(predictor, efficiency, args.constraint, args.their_generations, seed)
        same_generations = run_ours(
            space, objective, cost_model.macs, {"macs": budget}, args.repeats,
            generations=args.their_generations, seed=seed,
        )
        same_queries = run_ours(
            space,
            objective,
            cost_model.macs,
            {"macs": budget},
            args.repeats,
            generations=100 * args.their_generations,
            max_evaluations=theirs["queries"],
            seed=seed,
        )
        # The engine batches a generation: a larger population (same query budget, fewer generations)
        # gives the predictor larger batches and spreads the engine's per-generation work.
        wide = run_ours(
            space,
            objective,
            cost_model.macs,
            {"macs": budget},
            args.repeats,
            population_size=args.wide_population,
            generations=100 * args.their_generations,
            max_evaluations=theirs["queries"],
            seed=seed,
        )
        rows.append({"theirs": theirs, "ours_gen": same_generations, "ours_q": same_queries, "ours_wide": wide})
        say(
            f"| {seed} | EvolutionFinder | {args.their_generations} | {theirs['queries']} | {theirs['seconds']:.2f} "
            f"| {theirs['cpu']:.2f} | {theirs['queries'] / theirs['seconds']:,.0f} | {theirs['accuracy']:.5f} "
            f"| {theirs['macs']:.1f} |"
        )
        for name, run in (
            ("ofa-nni, same generations", same_generations),
            ("ofa-nni, same queries", same_queries),
            (f"ofa-nni, same queries, population {args.wide_population}", wide),
        ):
            best = run["result"][0]
            say(
                f"| {seed} | {name} | {run['result'].generations} | {run['queries']} | {run['seconds']:.3f} "
                f"| {run['cpu']:.3f} | {run['queries'] / run['seconds']:,.0f} | {best.score:.5f} "
                f"| {best.costs['macs'] / 1e6:.1f} |"
            )
            if best.costs["macs"] > budget:
                raise SystemExit("our result violates the constraint")
            # Our result re-scored by their own predict_acc (same function, their code path).
            with torch.inference_mode():
                rescored = float(predictor.predict_acc([to_ofa_arch(space, best.indices)]).reshape(-1)[0])
            assert abs(rescored - best.score) < 1e-5, (rescored, best.score)
        if theirs["macs"] > args.constraint:
            raise SystemExit("their result violates the constraint")

    def mean(key: str, field: str) -> float:
        return float(np.mean([r[key][field] for r in rows]))

    def rate(key: str, clock: str) -> float:
        return float(np.mean([r[key]["queries"] / r[key][clock] for r in rows]))

    their_acc = np.mean([r["theirs"]["accuracy"] for r in rows])
    acc_gen = np.mean([r["ours_gen"]["result"][0].score for r in rows])
    acc_q = np.mean([r["ours_q"]["result"][0].score for r in rows])
    say()
    acc_wide = np.mean([r["ours_wide"]["result"][0].score for r in rows])
    for key, setting in (("ours_q", "population 100"), ("ours_wide", f"population {args.wide_population}")):
        for clock, what in (("seconds", "wall"), ("cpu", "CPU")):
            ours, theirs_rate = rate(key, clock), rate("theirs", clock)
            say(
                f"candidates/s ({what} clock; predictor queries per second at the same query budget; ours with "
                f"{setting}): ours {ours:,.0f} vs theirs {theirs_rate:,.0f} -> {ours / theirs_rate:.0f}x"
            )
    their_500 = mean("theirs", "seconds") * 501 / (args.their_generations + 1)
    extrapolated = f" (extrapolated to 500 generations: {their_500:.0f} s)" if args.their_generations < 500 else ""
    say(
        f"time for the same query budget: ours {mean('ours_q', 'seconds'):.3f} s vs theirs "
        f"{mean('theirs', 'seconds'):.1f} s wall{extrapolated}"
    )
    say(
        f"best predicted accuracy (mean of {len(rows)} seed(s)): theirs {their_acc:.5f}; ours at the same "
        f"generations {acc_gen:.5f} ({acc_gen - their_acc:+.5f}), at the same queries {acc_q:.5f} "
        f"({acc_q - their_acc:+.5f}), at the same queries with population {args.wide_population} {acc_wide:.5f} "
        f"({acc_wide - their_acc:+.5f})"
    )
    say(
        f"their MACs-model calls per predictor query (re-drawing until feasible): "
        f"{mean('theirs', 'efficiency_calls') / mean('theirs', 'queries'):.2f}"
    )

    # ---------------------------------------------------------------- ten targets, one call
    budgets = np.linspace(100, 400, 10)
    targets = [{"macs": float(b) * 1e6} for b in budgets]
    say()
    say(
        f"## 10 MACs targets ({', '.join(f'{b:g}' for b in budgets)} M) in one call: population 100, "
        f"{args.targets_generations} generations"
    )
    repeats = [
        run_ours(space, objective, cost_model.macs, targets, generations=args.targets_generations, seed=0)
        for _ in range(3)
    ]
    multi = repeats[0]
    walls = sorted(r["seconds"] for r in repeats)
    singles = [run_ours(space, objective, cost_model.macs, target, generations=500, seed=0) for target in targets]
    their_ten = 10 * their_500
    say(
        f"one call: {walls[1]:.3f} s wall (median of 3; min {walls[0]:.3f}), {multi['cpu']:.3f} s CPU, "
        f"{multi['queries']} predictor queries in all; EvolutionFinder (one target per run, 500 generations): "
        f"~{their_ten:.0f} s for 10 targets (10 x its measured time per run)"
    )
    say()
    say("| MACs budget (M) | 10-target call: acc | MACs (M) | ofa-nni single target, 500 gen: acc | difference |")
    say("|---|---|---|---|---|")
    for b, target, single in zip(budgets, multi["result"].targets, singles, strict=True):
        best = single["result"][0]
        say(
            f"| {b:g} | {target.score:.5f} | {target.costs['macs'] / 1e6:.1f} | {best.score:.5f} | "
            f"{target.score - best.score:+.5f} |"
        )
    scores = [t.score for t in multi["result"].targets]
    say()
    say(f"more budget never worse: {all(a <= b for a, b in zip(scores, scores[1:], strict=False))}")
    say(f"load average at end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
