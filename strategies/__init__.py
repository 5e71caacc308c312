"""NNI strategies for OFA supernets: thin adapters over :mod:`ofa_nni`."""

import ofa_nni  # noqa: F401  (applies the NNI 3.0 compat patches before NNI is used)
from strategies.evolution import OFAEvolution
from strategies.nni_tuner import OFAEvolutionTuner
from strategies.optuna_sampler import OFAEvolutionSampler, publish_to_dashboard, set_constraints, suggest_sample
from strategies.progressive_shrinking import ProgressiveShrinking, SandwichRule

__all__ = ["ProgressiveShrinking", "SandwichRule", "OFAEvolutionTuner", "OFAEvolution",
           "OFAEvolutionSampler", "suggest_sample", "set_constraints", "publish_to_dashboard"]
