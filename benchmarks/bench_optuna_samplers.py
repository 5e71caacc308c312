"""OFAEvolutionSampler vs Optuna's built-in samplers and NNI's RegularizedEvolution, side by side.

Every sampler gets the same problem, one objective query per trial:

* Objective (maximised): a deterministic stand-in for an accuracy predictor on the default
  OFA-MobileNetV3 space (46 labels, ~10^19 subnets x 25 resolutions): OFA's predictor architecture
  (MLP 3x400 ReLU on :meth:`ArchSpace.to_features`, linear output without bias, base accuracy
  0.75) with seeded random weights, plus ``0.03 * log(MACs / 176M)`` so that, as with a real
  predictor, bigger subnets tend to be more accurate and the budget binds (176M = the median MACs
  of random subnets). No trained predictor is needed to compare samplers; the numbers are not
  ImageNet accuracies.
* Constraint: analytic MACs (:class:`AnalyticCostModel`) <= ``--budget`` (200M by default; ~60% of
  random subnets meet it), reported to Optuna with ``trial.set_constraint("macs", MACs/1e6 - budget)``
  (Optuna 5 samplers all read ``trial.constraints``; ``constraints_func`` is deprecated there).

Samplers: ``ofa`` = OFAEvolutionSampler as plain evolution (``predictor=None``) with trial feedback
only (it learns the constraint from ``set_constraint`` as the others do); ``ofa+ridge`` = its default,
``predictor="ridge"`` (a surrogate fitted on finished trials, pre-screening 1024 candidates per
trial; nothing given to it that the others lack); ``ofa+costs`` = plain evolution given the MACs
model and budget (``costs``/``budgets``: knowledge the others do not get, reported separately);
Optuna's TPESampler, NSGAIISampler, GPSampler (``deterministic_objective=True``: the objective is),
RandomSampler (seeded, otherwise defaults); NNI 3.0's ``RegularizedEvolution`` (defaults:
population 100, sample size 25, mutation prob 0.05), whose own sampling logic (``random()``,
``new_individual()``, aging population) is driven directly over the same labels as a
``nni.mutable.MutableDict`` of categoricals -- NNI's engine would only add a process boundary; its
metric for an infeasible subnet is ``-violation`` (below every feasible value).

Reported per sampler and budget (200 and 1000 queries): best feasible objective, median over seeds,
and sampler overhead per trial = (wall time of the run - time inside the objective's predictor and
cost calls) / trials: sampling plus Optuna's bookkeeping, in memory storage. GPSampler costs
seconds per trial here, so it runs at 200 trials only (``--gp-trials``), with 3 seeds in the
reported run (``--gp-seeds``) because the machine is shared.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_optuna_samplers.py --gp-seeds 3 --workers 3   # the reported run
    python benchmarks/bench_optuna_samplers.py --seeds 1 --trials 200 --gp-trials 0   # quick look
"""

from __future__ import annotations

import argparse
import logging
import math
import multiprocessing
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ofa_nni import AnalyticCostModel, ArchSpace  # noqa: E402

CHECKPOINTS = (200, 1000)


def make_objective(space: ArchSpace, seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """OFA-architecture MLP with seeded random weights (PyTorch's default init ranges) plus a
    log-MACs term: deterministic, batched, numpy only."""
    rng = np.random.default_rng(seed)
    sizes = [space.feature_dim, 400, 400, 400, 1]
    weights = [rng.uniform(-1, 1, size=(a, b)) / math.sqrt(a) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    biases = [rng.uniform(-1, 1, size=b) / math.sqrt(a) for a, b in zip(sizes[:-2], sizes[1:-1], strict=True)]
    macs = AnalyticCostModel(space).macs
    median_macs = 176e6

    def objective(rows: np.ndarray) -> np.ndarray:
        hidden = space.to_features(rows)
        for w, b in zip(weights[:-1], biases, strict=True):
            hidden = np.maximum(hidden @ w + b, 0.0)
        return 0.75 + (hidden @ weights[-1])[:, 0] + 0.03 * np.log(macs(rows) / median_macs)

    return objective


class Problem:
    """The objective and the constraint, with the time spent inside them and every query kept."""

    def __init__(self, space: ArchSpace, budget_m: float) -> None:
        self.space = space
        self.budget_m = budget_m
        self.objective = make_objective(space)
        self.macs = AnalyticCostModel(space).macs
        self.seconds = 0.0
        self.best_feasible: list[float] = []  # running best after each query

    def evaluate(self, row: np.ndarray) -> tuple[float, float]:
        start = time.perf_counter()
        value = float(self.objective(row[None])[0])
        violation = float(self.macs(row[None])[0]) / 1e6 - self.budget_m
        self.seconds += time.perf_counter() - start
        previous = self.best_feasible[-1] if self.best_feasible else -math.inf
        self.best_feasible.append(max(previous, value) if violation <= 0 else previous)
        return value, violation


def run_optuna(name: str, seed: int, n_trials: int, budget_m: float) -> dict[str, Any]:
    import optuna

    from strategies.optuna_sampler import OFAEvolutionSampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore")
    space = ArchSpace()
    problem = Problem(space, budget_m)
    labels = space.labels
    choices = [space.choices(label) for label in labels]
    index_of = [{v: i for i, v in enumerate(c)} for c in choices]
    samplers: dict[str, Callable[[], Any]] = {
        "ofa": lambda: OFAEvolutionSampler(arch_space=space, seed=seed, predictor=None),
        "ofa+ridge": lambda: OFAEvolutionSampler(arch_space=space, seed=seed, predictor="ridge"),
        "ofa+costs": lambda: OFAEvolutionSampler(
            arch_space=space, seed=seed, predictor=None, costs={"macs": problem.macs},
            budgets={"macs": budget_m * 1e6},
        ),
        "TPE": lambda: optuna.samplers.TPESampler(seed=seed),
        "NSGAII": lambda: optuna.samplers.NSGAIISampler(seed=seed),
        "GP": lambda: optuna.samplers.GPSampler(seed=seed, deterministic_objective=True),
        "Random": lambda: optuna.samplers.RandomSampler(seed=seed),
    }

    def objective(trial: optuna.Trial) -> float:
        row = np.array([index_of[c][trial.suggest_categorical(label, choices[c])] for c, label in enumerate(labels)])
        value, violation = problem.evaluate(row)
        trial.set_constraint("macs", violation)
        return value

    study = optuna.create_study(direction="maximize", sampler=samplers[name]())
    start = time.perf_counter()
    study.optimize(objective, n_trials=n_trials)
    wall = time.perf_counter() - start
    return {"best": problem.best_feasible, "overhead": (wall - problem.seconds) / n_trials}


def run_nni(seed: int, n_trials: int, budget_m: float) -> dict[str, Any]:
    import nni
    from nni.mutable import MutableDict
    from nni.nas.strategy import RegularizedEvolution
    from nni.nas.strategy.evolution import Individual

    warnings.filterwarnings("ignore")
    logging.getLogger("nni").setLevel(logging.WARNING)  # NNI logs every individual at INFO
    space = ArchSpace()
    problem = Problem(space, budget_m)
    labels = space.labels
    index_of = [{v: i for i, v in enumerate(space.choices(label))} for label in labels]
    strategy = RegularizedEvolution(seed=seed)  # NNI's defaults
    # What Strategy.initialize would set, minus the engine: the search space NNI samples from.
    strategy._model_space = MutableDict({label: nni.choice(label, list(space.choices(label))) for label in labels})
    start = time.perf_counter()
    for _ in range(n_trials):
        # Over a MutableDict, random() and new_individual() return the sample (freeze of a dict).
        initial = len(strategy._population) < strategy.population_size
        sample = strategy._retry_helper.retry(strategy.random if initial else strategy.new_individual)
        if sample is None:
            raise SystemExit("NNI's RegularizedEvolution found no new sample")
        row = np.array([index_of[c][sample[label]] for c, label in enumerate(labels)])
        value, violation = problem.evaluate(row)
        strategy._population.append(Individual(sample, value if violation <= 0 else -violation))
        if len(strategy._population) > strategy.population_size:
            strategy._population.popleft()
    wall = time.perf_counter() - start
    return {"best": problem.best_feasible, "overhead": (wall - problem.seconds) / n_trials}


def run_one(job: tuple[str, int, int, float]) -> tuple[str, int, dict[str, Any]]:
    name, seed, n_trials, budget_m = job
    result = run_nni(seed, n_trials, budget_m) if name == "NNI-RegEvo" else run_optuna(name, seed, n_trials, budget_m)
    print(f"  done {name} seed {seed}: best@{n_trials} {result['best'][-1]:.5f}, "
          f"overhead {1000 * result['overhead']:.1f} ms/trial", flush=True)
    return name, seed, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--gp-trials", type=int, default=200, help="GPSampler's trials (0 = skip)")
    parser.add_argument("--gp-seeds", type=int, default=None, help="GPSampler's seeds (default: --seeds)")
    parser.add_argument("--budget", type=float, default=200.0, help="MACs budget in millions")
    parser.add_argument("--samplers", default="ofa,ofa+ridge,ofa+costs,TPE,NSGAII,GP,Random,NNI-RegEvo")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 1)))
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "optuna_samplers.md"))
    args = parser.parse_args()

    names = args.samplers.split(",")
    jobs = []
    for name in sorted(names, key=lambda n: n != "GP"):  # the slowest runs start first
        trials = args.gp_trials if name == "GP" else args.trials
        seeds = args.gp_seeds if name == "GP" and args.gp_seeds is not None else args.seeds
        if trials > 0:
            jobs.extend((name, seed, trials, args.budget) for seed in range(seeds))
    print(f"{len(jobs)} runs on {args.workers} processes (each run single-threaded)", flush=True)
    start = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        results = list(pool.imap_unordered(run_one, jobs, chunksize=1))
    elapsed = time.perf_counter() - start

    table: dict[str, dict[int, dict[str, Any]]] = {}
    for name, seed, result in results:
        table.setdefault(name, {})[seed] = result
    checkpoints = [c for c in CHECKPOINTS if c <= args.trials]

    def best_at(name: str, n: int) -> float | None:
        runs = table.get(name, {})
        values = [r["best"][n - 1] for r in runs.values() if len(r["best"]) >= n]
        return float(np.median(values)) if len(values) == len(runs) and values else None

    def overhead(name: str) -> float:
        return float(np.median([r["overhead"] for r in table[name].values()]))

    lines = [
        "# OFAEvolutionSampler vs Optuna samplers and NNI RegularizedEvolution",
        "",
        f"Default OFA-MobileNetV3 space; objective: seeded OFA-architecture MLP + log-MACs term; constraint MACs <= "
        f"{args.budget:g}M. Median over {args.seeds} seeds (GPSampler: "
        f"{args.gp_seeds if args.gp_seeds is not None else args.seeds}); best *feasible* objective after N queries; "
        f"overhead = (wall - objective time) / trials (median). One run, {args.workers} processes in parallel, "
        f"{elapsed:.0f} s. Command: `{' '.join(['python'] + sys.argv)}`",
        "",
        "| sampler | " + " | ".join(f"best@{n}" for n in checkpoints) + " | overhead ms/trial | trials run |",
        "|---|" + "---|" * (len(checkpoints) + 2),
    ]
    for name in names:
        if name not in table:
            continue
        cells = [("-" if best_at(name, n) is None else f"{best_at(name, n):.5f}") for n in checkpoints]
        n_run = len(next(iter(table[name].values()))["best"])
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {1000 * overhead(name):.2f} | {n_run} |")
    lines += ["", "Ratios and gaps (ofa variants vs each other sampler; best: difference in objective, "
              "positive = ours better; overhead: ours / theirs):", ""]
    ours = [n for n in names if n.startswith("ofa") and n in table]
    for mine in ours:
        for other in [n for n in names if n in table and not n.startswith("ofa")]:
            parts = []
            for n in checkpoints:
                a, b = best_at(mine, n), best_at(other, n)
                if a is not None and b is not None:
                    parts.append(f"best@{n} {a - b:+.5f}{' (>=)' if a >= b else ' (BELOW)'}")
            parts.append(f"overhead x{overhead(mine) / overhead(other):.2f}")
            lines.append(f"- {mine} vs {other}: " + ", ".join(parts))
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, out)
    print(f"written {out}")


if __name__ == "__main__":
    main()
