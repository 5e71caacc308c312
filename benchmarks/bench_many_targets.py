"""Many deployment targets in one search (issue 13, item 8): 1 / 10 / 100 / 1,000 MACs budgets, one
run each, in one process; the time of each against one target's, and every sampled target's result
against a single-target search for it at the same settings.

The objective is ``ofa``'s own MLP accuracy predictor with seeded random weights and MACs are
``AnalyticCostModel.macs``, as in ``bench_search_vs_ofa.py`` (same helpers). Targets: budgets
spread evenly over 100-400 M MACs (one target: 200 M). Settings: OFA's (population 100, 500
generations) unless ``--generations`` says otherwise.

Usage::

    OMP_NUM_THREADS=2 python benchmarks/bench_many_targets.py --out benchmarks/results/many.txt
    python benchmarks/bench_many_targets.py --counts 1,10 --generations 100   # quick look

Only the public API is used, so the same script also measures an older tree (``PYTHONPATH=<tree>``).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as bench_search_vs_ofa.py: passive torch threads

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

# The engine measured is the one on PYTHONPATH (imported before the helpers, which put this tree first).
from ofa_nni import AnalyticCostModel, ArchSpace  # noqa: E402
from ofa_nni.search import EvolutionSearch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_search_vs_ofa import batched_predictor, build_reference  # noqa: E402


def budgets_for(count: int) -> np.ndarray:
    return np.array([200e6]) if count == 1 else np.linspace(100e6, 400e6, count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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

    space = ArchSpace()
    predictor, _ = build_reference(space, seed=0)
    objective = batched_predictor(space, predictor)
    macs = AnalyticCostModel(space).macs
    settings = {"population_size": args.population, "generations": args.generations, "seed": args.seed}
    say(f"# Many MACs targets in one search ({torch.get_num_threads()} thread(s), engine from "
        f"{Path(sys.modules['ofa_nni'].__file__).parents[1]})")
    say(f"load average at start: {', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    say(f"settings: {settings}; budgets spread evenly over 100-400 M MACs (one target: 200 M)")
    say()
    say("| targets | wall s | CPU s | predictor queries | time / one target's |")
    say("|---|---|---|---|---|")
    runs = {}
    for count in counts:
        targets = [{"macs": float(b)} for b in budgets_for(count)]
        search = EvolutionSearch(arch_space=space, costs={"macs": macs}, targets=targets, **settings)
        start, cpu = time.perf_counter(), time.process_time()
        result = search.run(objective)
        runs[count] = (time.perf_counter() - start, time.process_time() - cpu, result)
        ratio = runs[count][0] / runs[counts[0]][0]
        say(f"| {count} | {runs[count][0]:.2f} | {runs[count][1]:.2f} | {result.evaluations} | {ratio:.2f}x |")
    largest = max(counts)
    budgets = budgets_for(largest)
    scores = [t.score for t in runs[largest][2]]
    say()
    say(f"{largest} targets: more budget never worse: "
        f"{all(a <= b for a, b in zip(scores, scores[1:], strict=False))}")
    if args.sample:
        at = np.unique(np.round(np.linspace(0, largest - 1, min(args.sample, largest))).astype(np.int64))
        say()
        seeds = [args.seed + k for k in range(args.single_seeds)]
        singles_header = " | ".join(f"single, seed {seed}" for seed in seeds)
        say(f"| MACs budget (M) | {largest}-target search: acc | {singles_header} | difference to seed {args.seed} |"
            + (" spread of the singles |" if len(seeds) > 1 else ""))
        say("|---|---|" + "---|" * len(seeds) + "---|" + ("---|" if len(seeds) > 1 else ""))
        worse, worse_than_all, single_seconds, spreads = 0, 0, [], []
        for i in at:
            singles = []
            for seed in seeds:
                start = time.perf_counter()
                singles.append(EvolutionSearch(arch_space=space, costs={"macs": macs},
                                               targets={"macs": float(budgets[i])},
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
            say(f"| {budgets[i] / 1e6:.1f} | {ours:.5f} | {cells} | {ours - theirs[0]:+.5f} |"
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
