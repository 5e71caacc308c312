"""How well end-to-end timings repeat themselves under competing load, for 3 and for 9 visits per subnet.

The same random subnets of a space are measured end to end (``ofa_nni.latency.measure_end_to_end``,
the thread's CPU clock, the minimum) with each number of visits, under the competing load of
``bench_latency_table.py --stress``; for each run it prints the split-half repeatability of its
timings (even vs odd visits, stepped up to the whole run: ``ofa_nni.latency.validation.repeatability``)
and, with ``--runs 2`` or more, the Spearman between whole runs. A perfect latency table would be seen
at about sqrt(repeatability) in a validation under that load (issue 17).

    .venv/bin/python benchmarks/bench_validation_repeatability.py --stress memory:1 --visits 3,9
"""

from __future__ import annotations

import argparse
import itertools
import os
import time

import torch
from bench_latency_table import stress
from scipy import stats

from ofa_nni.latency import measure_end_to_end
from ofa_nni.latency.validation import repeatability
from ofa_nni.nni_search_space import arch_space_from_spec
from search_spaces import OFAMobileNetV3Space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="ofa-mobilenetv3", help="space preset (default: the paper's)")
    parser.add_argument("--subnets", type=int, default=20)
    parser.add_argument("--visits", default="3,9", help="comma-separated visits per subnet (default 3,9)")
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per visit (default 30)")
    parser.add_argument("--runs", type=int, default=1, help="runs of each number of visits, alternating (default 1)")
    parser.add_argument("--stress", default="memory:1", metavar="KIND:N", help="competing load (default memory:1)")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    visits = [int(v) for v in args.visits.split(",")]
    if min(visits) < 2 or args.runs < 1:
        raise SystemExit("--visits needs numbers >= 2 (halves of the visits) and --runs >= 1")
    torch.set_num_threads(1)
    signature = arch_space_from_spec({"preset": args.preset}).signature()
    space = OFAMobileNetV3Space(**{k: tuple(v) if isinstance(v, list) else v for k, v in signature.items()})
    arch = space.arch_space
    samples = [arch.from_indices(row) for row in arch.random_indices(args.subnets, args.seed)]
    models = [(space.freeze(sample).eval(), int(sample[arch.RESOLUTION_LABEL])) for sample in samples]
    kind, count = args.stress.split(":")
    print(f"{args.preset}, {args.subnets} subnets, {args.repeats} timings per visit, stress {args.stress}, "
          f"load {os.getloadavg()[0]:.1f}", flush=True)
    minima: dict[int, list] = {v: [] for v in visits}
    with stress(kind, int(count)):
        for run in range(args.runs):
            for rounds in visits if run % 2 == 0 else visits[::-1]:  # alternating: a load that drifts favours none
                started = time.perf_counter()
                measured = measure_end_to_end(models, backend="torch", rounds=rounds, repeats=args.repeats,
                                              num_threads=1, clock="cpu", seed=run)
                minima[rounds].append(measured["min"])
                print(f"{rounds} visits, run {run}: {time.perf_counter() - started:.0f} s, repeatability "
                      f"{repeatability(measured['min_halves']):.3f}, load {os.getloadavg()[0]:.1f}", flush=True)
    for rounds, runs in minima.items():
        if len(runs) > 1:
            rhos = [stats.spearmanr(a, b).statistic for a, b in itertools.combinations(runs, 2)]
            print(f"{rounds} visits: Spearman between whole runs {', '.join(f'{r:.3f}' for r in rhos)}", flush=True)


if __name__ == "__main__":
    main()
