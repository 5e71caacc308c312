"""Find the most accurate OFA-MobileNetV3 subnet under 250M MACs with OFAEvolutionSampler.

The objective here is a stand-in for an accuracy predictor (a fixed random linear model of OFA's
subnet features plus a size term) so the example runs in seconds without a trained supernet; swap
in ``predictor(indices)`` or a real evaluation of ``space.freeze(sample)``.
"""

import numpy as np
import optuna
import optunahub

from ofa_nni import AnalyticCostModel, ArchSpace

module = optunahub.load_module("samplers/ofa_evolution")  # or load_local_module(..., registry_root=...)
OFAEvolutionSampler = module.OFAEvolutionSampler

space = ArchSpace()  # the paper's space; OFAMobileNetV3Space(...) works too
cost_model = AnalyticCostModel(space)
weights = np.random.default_rng(0).normal(scale=0.01, size=space.feature_dim)


def objective(trial: optuna.Trial) -> float:
    sample = module.suggest_sample(trial, space)  # every label; user attr "arch"
    macs = cost_model.macs(sample)
    module.set_constraints(trial, {"macs": macs / 1e6 - 250})  # <= 0 is feasible
    return float(space.to_features([sample])[0] @ weights + 0.03 * np.log(macs / 176e6))


sampler = OFAEvolutionSampler(arch_space=space, seed=0)
study = optuna.create_study(direction="maximize", sampler=sampler)
study.optimize(objective, n_trials=100)
print(study.best_trial.number, study.best_value, study.best_trial.user_attrs["arch"])
