"""An OFA subnet search with Optuna, stored in SQLite and published for optuna-dashboard.

Runs OFAEvolutionSampler on the default OFA-MobileNetV3 space under a MACs budget, then uploads the
Pareto plot and the chosen subnet's summary (artifacts and notes). The objective is a stand-in for
a trained accuracy predictor (seeded, deterministic: a random linear model of OFA's subnet features
plus a log-MACs term), so the example needs no supernet; replace ``accuracy`` with your predictor
(``ofa_nni.accuracy``) or a real evaluation of ``space.freeze(sample)``.

Usage::

    python examples/optuna/dashboard_study.py --out /tmp/ofa-optuna      # then run the printed command
    optuna-dashboard sqlite:////tmp/ofa-optuna/study.db --artifact-dir /tmp/ofa-optuna/artifacts \\
        --host 127.0.0.1 --port 8080

In the dashboard: the trials list shows each trial's ``arch`` user attribute and its ``macs``
constraint; the study page shows the Pareto front, the chosen subnet's summary (artifacts) and a
note naming the chosen trial, whose own note is the summary.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import optuna

from ofa_nni import AnalyticCostModel, ArchSpace
from strategies.optuna_sampler import OFAEvolutionSampler, publish_to_dashboard, set_constraints, suggest_sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="ofa-optuna", help="directory for study.db and artifacts/")
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--macs", type=float, default=200.0, help="MACs budget in millions")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    if args.trials < 1:
        parser.error(f"--trials must be at least 1, got {args.trials}")

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{out / 'study.db'}"
    space = ArchSpace()
    cost_model = AnalyticCostModel(space)
    weights = np.random.default_rng(0).normal(scale=0.01, size=space.feature_dim)

    def accuracy(sample: dict) -> float:
        # A stand-in predictor: a fixed linear score, squashed into (0, 1) around 0.75 as accuracies are.
        score = space.to_features([sample])[0] @ weights + 0.03 * np.log(cost_model.macs(sample) / 176e6)
        return float(1.0 / (1.0 + np.exp(-(np.log(3.0) + 4.0 * score))))

    def objective(trial: optuna.Trial) -> float:
        sample = suggest_sample(trial, space)  # every label; user attribute "arch"
        macs = cost_model.macs(sample)
        trial.set_user_attr("macs_m", round(macs / 1e6, 2))
        set_constraints(trial, {"macs": macs / 1e6 - args.macs})  # both formats: samplers and dashboard
        return accuracy(sample)

    # The budget is a constraint the trials report (so that the dashboard shows infeasible ones), not
    # one the sampler repairs to; a budget no subnet meets is refused now, not after every trial ran.
    smallest = cost_model.macs(space.min_sample()) / 1e6
    if args.macs < smallest:
        parser.error(f"--macs {args.macs:g} is below the smallest subnet's {smallest:.1f} (millions of MACs)")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Optuna creates the tables: optuna-dashboard opens a storage without creating them.
    study = optuna.create_study(
        study_name=f"ofa-mobilenetv3-macs{args.macs:g}M",
        storage=storage,
        direction="maximize",
        sampler=OFAEvolutionSampler(arch_space=space, seed=0),
        load_if_exists=True,
    )
    study.set_metric_names(["predicted accuracy"])
    study.optimize(objective, n_trials=args.trials)
    published = publish_to_dashboard(study, space, out / "artifacts")
    print(f"chosen: trial {published['trial']}  {published['arch']}")
    print("view it with:")
    print(f"  optuna-dashboard {storage} --artifact-dir {out / 'artifacts'} --host 127.0.0.1 --port {args.port}")


if __name__ == "__main__":
    main()
