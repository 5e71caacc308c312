"""Many deployment targets in one search (issue 13, item 8): 1 / 10 / 100 / 1,000 MACs budgets, one
run each, in one process; the time of each against one target's, and every sampled target's result
against a single-target search for it at the same settings.

Two problems (``--problem``):

* ``random-mlp`` (default): ``ofa``'s own MLP accuracy predictor with seeded random weights, and
  MACs from ``AnalyticCostModel.macs``, as in ``bench_search_vs_ofa.py`` (same helpers); budgets
  spread evenly over 100-400 M MACs (one target: 200 M). A random MLP is a rugged objective with
  many isolated optima: the hard case for a shared search.
* ``note10``: what OFA's users search with: mit-han-lab's released ImageNet accuracy predictor
  (``acc_predictor.pth``) and Samsung Note10 latency tables (``--released``, default
  ``../shared/ofa-released``; not part of the project), budgets spread evenly over 15-40 ms (one
  target: 25 ms), one per device variant as the issue puts it.

Settings: OFA's (population 100, 500 generations) unless ``--generations`` says otherwise.

Usage::

    OMP_NUM_THREADS=2 python benchmarks/bench_many_targets.py --out benchmarks/results/many.txt
    python benchmarks/bench_many_targets.py --counts 1,10 --generations 100   # quick look
    python benchmarks/bench_many_targets.py --problem note10 --counts 1,1000 --single-seeds 3

Only the public API is used, so the same script also measures an older tree (``PYTHONPATH=<tree>``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as bench_search_vs_ofa.py: passive torch threads

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

# The engine measured is the one on PYTHONPATH (imported before the helpers, which put this tree first).
from ofa_nni import AnalyticCostModel, ArchSpace  # noqa: E402
from ofa_nni.search import EvolutionSearch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_search_vs_ofa import batched_predictor, build_reference  # noqa: E402

# problem -> (cost name, unit, display scale, lowest budget, highest budget, the one target's budget)
BUDGETS = {"random-mlp": ("macs", "M MACs", 1e6, 100e6, 400e6, 200e6),
           "note10": ("latency_ms", "Note10 ms", 1.0, 15.0, 40.0, 25.0)}


def budgets_for(problem: str, count: int) -> np.ndarray:
    _, _, _, low, high, one = BUDGETS[problem]
    return np.array([one]) if count == 1 else np.linspace(low, high, count)


def build_problem(problem: str, released: Path) -> tuple[ArchSpace, Callable[[np.ndarray], np.ndarray], Any]:
    """The space, the objective (index rows -> scores) and the cost model of ``problem``."""
    if problem == "note10":
        from ofa_nni.ofa_released import load_ofa_accuracy_predictor, load_ofa_latency_table

        table = load_ofa_latency_table(released / "ofa" / "note10")
        return table.arch_space, load_ofa_accuracy_predictor(released / "ofa" / "acc_predictor.pth"), table
    space = ArchSpace()
    predictor, _ = build_reference(space, seed=0)
    return space, batched_predictor(space, predictor), AnalyticCostModel(space).macs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problem", choices=sorted(BUDGETS), default="random-mlp",
                        help="objective and cost (default random-mlp; note10: the released predictor and tables)")
    parser.add_argument("--released", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared" / "ofa-released",
                        help="folder of mit-han-lab's files, for --problem note10 (default ../shared/ofa-released)")
    parser.add_argument("--counts", default="1,10,100,1000", help="target counts, comma-separated")
    parser.add_argument("--generations", type=int, default=500, help="generations (OFA: 500)")
    parser.add_argument("--population", type=int, default=100, help="population (OFA: 100)")
    parser.add_argument("--sample", type=int, default=12,
                        help="targets of the largest run compared with a single-target search each (default 12)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--single-seeds", type=int, default=1,
                        help="single-target searches per sampled target, seeds --seed, --seed+1, ... (default 1): "
                             "how much a single-target search's own result moves with its seed")
    parser.add_argument("--out", type=Path, default=None, help="also write the output here")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    lines: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    space, objective, cost_model = build_problem(args.problem, args.released)
    cost, unit, scale, low, high, one = BUDGETS[args.problem]
    settings = {"population_size": args.population, "generations": args.generations, "seed": args.seed}
    say(f"# Many {unit} targets in one search ({args.problem}, {torch.get_num_threads()} thread(s), engine from "
        f"{Path(sys.modules['ofa_nni'].__file__).parents[1]})")
    say(f"load average at start: {', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    say(f"settings: {settings}; budgets spread evenly over {low / scale:g}-{high / scale:g} {unit} "
        f"(one target: {one / scale:g})")
    say()
    say("| targets | wall s | CPU s | predictor queries | time / one target's |")
    say("|---|---|---|---|---|")
    runs = {}
    for count in counts:
        targets = [{cost: float(b)} for b in budgets_for(args.problem, count)]
        search = EvolutionSearch(arch_space=space, costs={cost: cost_model}, targets=targets, **settings)
        start, cpu = time.perf_counter(), time.process_time()
        result = search.run(objective)
        runs[count] = (time.perf_counter() - start, time.process_time() - cpu, result)
        ratio = runs[count][0] / runs[counts[0]][0]
        say(f"| {count} | {runs[count][0]:.2f} | {runs[count][1]:.2f} | {result.evaluations} | {ratio:.2f}x |")
    largest = max(counts)
    budgets = budgets_for(args.problem, largest)
    scores = [t.score for t in runs[largest][2]]
    say()
    say(f"{largest} targets: more budget never worse: "
        f"{all(a <= b for a, b in zip(scores, scores[1:], strict=False))}")
    if args.sample:
        at = np.unique(np.round(np.linspace(0, largest - 1, min(args.sample, largest))).astype(np.int64))
        say()
        seeds = [args.seed + k for k in range(args.single_seeds)]
        singles_header = " | ".join(f"single, seed {seed}" for seed in seeds)
        say(f"| budget ({unit}) | {largest}-target search: acc | {singles_header} | difference to seed {args.seed} |"
            + (" spread of the singles |" if len(seeds) > 1 else ""))
        say("|---|---|" + "---|" * len(seeds) + "---|" + ("---|" if len(seeds) > 1 else ""))
        worse, worse_than_all, single_seconds, spreads = 0, 0, [], []
        for i in at:
            singles = []
            for seed in seeds:
                start = time.perf_counter()
                singles.append(EvolutionSearch(arch_space=space, costs={cost: cost_model},
                                               targets={cost: float(budgets[i])},
                                               **{**settings, "seed": seed}).run(objective)[0])
                single_seconds.append(time.perf_counter() - start)
            shared = runs[largest][2][int(i)]
            # scored again side by side: the predictor's float32 batches give the same subnet
            # slightly different scores in batches of other sizes
            ours, *theirs = objective(np.stack([shared.indices, *(single.indices for single in singles)]))
            worse += ours < theirs[0]
            worse_than_all += ours < min(theirs)
            spreads.append(max(theirs) - min(theirs))
            cells = " | ".join(f"{t:.5f}" for t in theirs)
            say(f"| {budgets[i] / scale:.2f} | {ours:.5f} | {cells} | {ours - theirs[0]:+.5f} |"
                + (f" {max(theirs) - min(theirs):.5f} |" if len(seeds) > 1 else ""))
        say()
        say(f"sampled targets worse than their single-target search (seed {args.seed}): {worse} of {len(at)}; a "
            f"single-target search took {np.median(single_seconds):.2f} s (median)")
        if len(seeds) > 1:
            say(f"worse than every one of the {len(seeds)} single-target seeds: {worse_than_all} of {len(at)}; "
                f"the singles' own spread (best - worst seed): median {np.median(spreads):.5f}, "
                f"max {max(spreads):.5f}")
    say(f"load average at end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
