"""OFA's tutorial, side by side: mit-han-lab's released artefacts, their search and ours.

The OFA tutorial (``ofa/tutorial``) specialises OFA-MobileNetV3 (w1.2) for a Samsung Note10 with the
released accuracy predictor (``acc_predictor.pth``) and the released per-resolution Note10 latency
tables, running ``EvolutionFinder`` once per latency constraint at its defaults (population 100,
500 generations, mutation probability 0.1, parent ratio 0.25, mutation ratio 0.5). Here:

* **theirs**: ``ofa.tutorial.EvolutionFinder`` with ``ofa.tutorial``'s own ``AccuracyPredictor``
  (the released weights) and ``LatencyEstimator`` per resolution (the released tables), one run per
  constraint (15, 20, 25, 30 ms) and seed;
* **ours**: the same files read by :mod:`ofa_nni.ofa_released` (checked first: same predictions and
  latencies on 1,000 random subnets), :class:`ofa_nni.search.EvolutionSearch` with all four
  constraints as targets of **one call**, at the query budget of their four runs together
  (4 x 50,100 predictor queries), population 500 (``--population``: a generation is one batch for
  the predictor and the engine, so larger generations cost less per query); its best after the
  first 50,100 queries (one of their runs' budget, for all four constraints) is read from the same
  run. Plus, at their settings exactly (population 100, 50,100 queries), one single-target run per
  constraint.

Reported per constraint and seed: best predicted top-1 of each side (ours re-scored by their
predictor, in one batch with theirs), whether ours >= theirs, wall times, the wall-time ratios, and
the time our one call took to first reach their final best. Per seed also the **floor**: the released
MLP alone (our float32 numpy implementation) on as many random subnets in the same batches as our
call -- no search making that many queries with this predictor can be faster, so their time over it
bounds the ratio any search can reach at equal query budget -- and the ratios in CPU seconds. The file paths default to
``../shared/ofa-released`` (they are not part of the project).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_ofa_tutorial.py --out benchmarks/results/ofa_tutorial.md
    python benchmarks/bench_ofa_tutorial.py --generations 20 --seeds 1      # a quick look
"""

from __future__ import annotations

import os

# Threads that wait passively (see bench_search_vs_ofa.py): both sides run in this process.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import contextlib
import io
import random
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ofa_nni import arch_to_ofa  # noqa: E402
from ofa_nni._artifacts import atomic_write  # noqa: E402
from ofa_nni.arch import ArchSpace  # noqa: E402
from ofa_nni.ofa_released import TUTORIAL_RESOLUTIONS, load_ofa_accuracy_predictor, load_ofa_latency_table  # noqa: E402
from ofa_nni.search import EvolutionSearch  # noqa: E402

CONSTRAINTS = (15.0, 20.0, 25.0, 30.0)
POPULATION = 100  # EvolutionFinder's default


def reference(released: Path) -> tuple[Any, Any]:
    """``ofa.tutorial``'s predictor (released weights) and latency table (released Note10 files)."""
    sys.modules.setdefault("gdown", types.ModuleType("gdown"))  # imported by ofa.model_zoo, unused here
    load = yaml.load
    yaml.load = lambda stream, Loader=yaml.SafeLoader: load(stream, Loader)  # their PyYAML<6 call
    from ofa.tutorial import AccuracyPredictor, LatencyTable
    from ofa.tutorial.latency_table import LatencyEstimator

    predictor = AccuracyPredictor(pretrained=False, device="cpu")
    predictor.model.load_state_dict(torch.load(released / "ofa" / "acc_predictor.pth", map_location="cpu",
                                               weights_only=True))
    table = LatencyTable.__new__(LatencyTable)  # its constructor downloads: fill it from the local files
    table.latency_tables = {r: LatencyEstimator(url=str(released / "ofa" / "note10" / f"{r}_lookup_table.yaml"))
                            for r in TUTORIAL_RESOLUTIONS}
    return predictor, table


def spec(space: ArchSpace, row: np.ndarray) -> dict[str, Any]:
    arch = arch_to_ofa(space.from_indices(row), space=space)
    return {"ks": arch["ks"], "e": arch["e"], "d": arch["d"], "r": [arch["r"]]}


def check_same_functions(space: ArchSpace, ours: Any, table: Any, their_acc: Any, their_lat: Any) -> str:
    rows = space.random_indices(1000, np.random.default_rng(123))
    specs = [spec(space, row) for row in rows]
    with torch.no_grad():
        acc_gap = float(np.abs(their_acc.predict_accuracy(specs).numpy().reshape(-1) - ours(rows)).max())
    theirs = np.array([their_lat.predict_efficiency(s) for s in specs])
    lat_gap = float(np.abs(table(rows) / theirs - 1).max())
    if acc_gap > 1e-6 or lat_gap > 1e-9:
        raise SystemExit(f"the two sides do not read the files alike: accuracy gap {acc_gap}, latency gap {lat_gap}")
    return (f"same functions on 1,000 random subnets: max |top-1 diff| {acc_gap:.1e}, "
            f"max relative latency diff {lat_gap:.1e}")


def run_theirs(their_acc: Any, their_lat: Any, constraint: float, generations: int, seed: int) -> dict[str, Any]:
    from ofa.tutorial import EvolutionFinder

    random.seed(seed)
    np.random.seed(seed)
    finder = EvolutionFinder("note10", constraint, their_lat, their_acc, population_size=POPULATION,
                             max_time_budget=generations)
    started, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), torch.no_grad():
        _, best = finder.run_evolution_search()
    return {"seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu,
            "queries": POPULATION * (generations + 1),
            "accuracy": float(best[0]), "spec": best[1], "latency": float(best[2])}


def run_ours(space: ArchSpace, predictor: Any, table: Any, targets: list[dict[str, float]], max_evaluations: int,
             seed: int, population: int) -> dict[str, Any]:
    """Ask/tell until the query budget is spent, noting when each generation completed and the
    queries made by then."""
    search = EvolutionSearch(arch_space=space, costs={"latency_ms": table}, targets=targets, population_size=population,
                             generations=10**6, max_evaluations=max_evaluations, seed=seed)
    completed_at: list[float] = []  # completed_at[g]: seconds when generation g (0: initial) was complete
    queries_at: list[int] = []  # queries_at[g]: predictor queries made by then
    batches: list[int] = []  # the size of every predictor call, for the floor (mlp_alone)
    started, cpu = time.perf_counter(), time.process_time()
    while True:
        rows = search.ask()
        if len(rows) == 0:
            break
        batches.append(len(rows))
        search.tell(rows, predictor(rows))
        now = time.perf_counter() - started
        missing = search.generation + 1 - len(completed_at)
        completed_at.extend([now] * missing)
        queries_at.extend([search.evaluations] * missing)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "result": search.result(), "completed_at": completed_at,
            "queries_at": queries_at, "batches": batches}


def mlp_alone(space: ArchSpace, predictor: Any, batches: list[int]) -> tuple[float, float]:
    """Wall and CPU seconds the predictor's MLP alone takes on as many random subnets, in the same
    batches as our call (features encoded beforehand, not timed): the floor of any search that makes
    these queries with this predictor."""
    features = space.to_features(space.random_indices(sum(batches), np.random.default_rng(7)))
    ends = np.cumsum(batches)
    started, cpu = time.perf_counter(), time.process_time()
    for start, end in zip(ends - batches, ends, strict=True):
        predictor.predict_features(features[start:end])
    return time.perf_counter() - started, time.process_time() - cpu


def first_time_reaching(run: dict[str, Any], target: int, score: float) -> float | None:
    history = run["result"].history[:, target]
    reached = np.nonzero(history >= score)[0]
    if not len(reached):
        return None
    return run["completed_at"][min(int(reached[0]), len(run["completed_at"]) - 1)]


def best_within(run: dict[str, Any], queries: int) -> tuple[np.ndarray, float, int]:
    """Best score per target after the last generation completed within ``queries`` queries, the
    seconds it took, and the queries made."""
    within = [g for g, q in enumerate(run["queries_at"]) if q <= queries]
    g = within[-1] if within else 0
    return run["result"].history[g], run["completed_at"][g], run["queries_at"][g]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--released", type=Path, default=REPO.parent / "shared" / "ofa-released",
                        help="folder of mit-han-lab's files (default ../shared/ofa-released)")
    parser.add_argument("--generations", type=int, default=500, help="EvolutionFinder generations (default 500)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..n-1 (default 3)")
    parser.add_argument("--population", type=int, default=500, help="population of our one call (default 500)")
    parser.add_argument("--out", type=Path, default=None, help="also write the output (markdown) here")
    args = parser.parse_args()

    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    torch.set_num_threads(threads)
    predictor = load_ofa_accuracy_predictor(args.released / "ofa" / "acc_predictor.pth")
    table = load_ofa_latency_table(args.released / "ofa" / "note10")
    space = table.arch_space
    their_acc, their_lat = reference(args.released)
    lines: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    say(f"# OFA tutorial: EvolutionFinder vs ofa-nni on the released predictor and Note10 tables "
        f"({threads} thread(s), torch {torch.__version__})")
    say()
    say(f"load average at start: {', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    say(check_same_functions(space, predictor, table, their_acc, their_lat))
    one_run = POPULATION * (args.generations + 1)
    say(f"constraints (Note10 ms): {', '.join(f'{c:g}' for c in CONSTRAINTS)}; theirs: population {POPULATION}, "
        f"{args.generations} generations per constraint ({one_run:,} predictor queries each); ours: one call with the "
        f"four constraints as targets, population {args.population}, at their four runs' budget "
        f"({4 * one_run:,} queries; its best after {one_run:,} queries read from the same run), and one "
        f"single-target run per constraint at their settings (population {POPULATION}, {one_run:,} queries)")
    say()
    say(f"| seed | constraint ms | theirs: top-1 | ms | wall s | ours, one call: top-1 (their predictor) | ms "
        f"| ours >= theirs | ours to reach theirs, s | ours after {one_run:,} queries: top-1 | >= theirs "
        f"| ours, single target: top-1 | wall s |")
    say("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    summary = []
    targets = [{"latency_ms": c} for c in CONSTRAINTS]
    for seed in range(args.seeds):
        theirs = [run_theirs(their_acc, their_lat, c, args.generations, seed) for c in CONSTRAINTS]
        budget = sum(t["queries"] for t in theirs)
        multi = run_ours(space, predictor, table, targets, budget, seed, args.population)
        early, early_seconds, early_queries = best_within(multi, one_run)
        floor, floor_cpu = mlp_alone(space, predictor, multi["batches"])
        singles = [run_ours(space, predictor, table, [t], one_run, seed, POPULATION) for t in targets]
        for i, (constraint, their) in enumerate(zip(CONSTRAINTS, theirs, strict=True)):
            ours = multi["result"].targets[i]
            single = singles[i]["result"].targets[0]
            with torch.no_grad():  # both bests through their predictor, in one batch
                rescored = their_acc.predict_accuracy([spec(space, ours.indices), their["spec"]]).numpy().reshape(-1)
            their_latency = their_lat.predict_efficiency(spec(space, ours.indices))
            if their_latency > constraint or their["latency"] > constraint:
                raise SystemExit(f"a result violates the constraint {constraint}")
            met = bool(rescored[0] >= rescored[1])
            # Our own scores equal their predictor's to the checked gap (< 1e-6): compared as they are.
            early_met = bool(early[i] >= their["accuracy"])
            single_met = bool(single.score >= their["accuracy"])
            reach = first_time_reaching(multi, i, their["accuracy"])
            summary.append({"seed": seed, "constraint": constraint, "met": met, "gain": rescored[0] - rescored[1],
                            "reach": reach, "early_met": early_met, "single_met": single_met})
            say(f"| {seed} | {constraint:g} | {100 * their['accuracy']:.3f}% | {their['latency']:.2f} "
                f"| {their['seconds']:.1f} | {100 * rescored[0]:.3f}% | {their_latency:.2f} | {'yes' if met else 'NO'} "
                f"| {'never' if reach is None else f'{reach:.2f}'} | {100 * early[i]:.3f}% "
                f"| {'yes' if early_met else 'NO'} | {100 * single.score:.3f}% | {singles[i]['seconds']:.2f} |")
        their_total = sum(t["seconds"] for t in theirs)
        say(f"| {seed} | all four | | | {their_total:.1f} | one call: {multi['seconds']:.2f} s, "
            f"{multi['result'].evaluations:,} queries, {multi['result'].generations} generations | | | "
            f"ratio {their_total / multi['seconds']:.0f}x | {early_seconds:.2f} s ({early_queries:,} queries) "
            f"| ratio {their_total / early_seconds:.0f}x | singles together: "
            f"{sum(s['seconds'] for s in singles):.2f} s | |")
        say(f"| {seed} | floor | | | | the MLP alone on {sum(multi['batches']):,} random subnets in our call's "
            f"{len(multi['batches'])} batches: {floor:.2f} s ({100 * floor / multi['seconds']:.0f}% of our call) | | "
            f"| floor ratio {their_total / floor:.0f}x | | | | |")
        summary[-1]["ratio"] = their_total / multi["seconds"]
        summary[-1]["early_ratio"] = their_total / early_seconds
        summary[-1]["floor_ratio"] = their_total / floor
        their_cpu = sum(t["cpu_seconds"] for t in theirs)
        summary[-1]["cpu_ratio"] = their_cpu / multi["cpu_seconds"]
        summary[-1]["floor_cpu_ratio"] = their_cpu / floor_cpu
    say()
    met_all = all(row["met"] for row in summary)
    ratios = [row["ratio"] for row in summary if "ratio" in row]
    early_ratios = [row["early_ratio"] for row in summary if "early_ratio" in row]
    reach = [row["reach"] for row in summary]
    say(f"ours (one call, {4 * one_run:,} queries) >= theirs at every constraint on every seed: "
        f"{'yes' if met_all else 'NO'} ({sum(row['met'] for row in summary)} of {len(summary)}); top-1 gain "
        f"(ours - theirs, percentage points): min {100 * min(r['gain'] for r in summary):+.3f}, "
        f"mean {100 * np.mean([r['gain'] for r in summary]):+.3f}")
    say(f"ours (same call after {one_run:,} queries) >= theirs: {sum(r['early_met'] for r in summary)} of "
        f"{len(summary)}; ours single-target at their settings >= theirs: {sum(r['single_met'] for r in summary)} "
        f"of {len(summary)}")
    floor_ratios = [row["floor_ratio"] for row in summary if "floor_ratio" in row]
    say(f"wall-time ratio (their four runs / our one call), per seed: {', '.join(f'{r:.0f}x' for r in ratios)}; "
        f"to our best after {one_run:,} queries: {', '.join(f'{r:.0f}x' for r in early_ratios)}")
    say(f"floor ratio (their four runs / the MLP alone on our call's {4 * one_run:,} queries, the most any search "
        f"making them could reach here), per seed: {', '.join(f'{r:.0f}x' for r in floor_ratios)}")
    say("the same in CPU seconds (less sensitive to other processes' load): ratio "
        + ", ".join(f"{row['cpu_ratio']:.0f}x" for row in summary if "cpu_ratio" in row) + "; floor ratio "
        + ", ".join(f"{row['floor_cpu_ratio']:.0f}x" for row in summary if "floor_cpu_ratio" in row))
    if all(r is not None for r in reach):
        say(f"time for our one call to first reach their final best: max {max(reach):.2f} s, "
            f"median {float(np.median(reach)):.2f} s over the {len(reach)} (seed, constraint) pairs")
    else:
        say(f"time for our one call to first reach their final best: not reached in "
            f"{sum(r is None for r in reach)} of {len(reach)} pairs")
    say(f"load average at end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if args.out:
        text = "\n".join(lines) + "\n"
        atomic_write(args.out, lambda file: file.write(text.encode()))


if __name__ == "__main__":
    main()
