"""NNI strategies for OFA supernets: thin adapters over :mod:`ofa_nni`.

The exports load on first use (PEP 562), not when the package is imported: NNI's dispatcher imports
``strategies.nni_tuner`` and must connect back to the NNI manager within 10 seconds of starting
(``nni_node/core/tuner_command_channel.js``), which torch + Lightning + NNI NAS (what the other
strategies and the NNI compat patches import) do not allow on a loaded machine. Add a new
export to ``_EXPORTS`` (and to the ``TYPE_CHECKING`` block for type checkers).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["ProgressiveShrinking", "SandwichRule", "OFAEvolutionTuner", "OFAEvolution", "RecalibratedEvaluator",
           "OFAEvolutionSampler", "suggest_sample", "set_constraints", "publish_to_dashboard"]

_EXPORTS = {
    "ProgressiveShrinking": "strategies.progressive_shrinking",
    "SandwichRule": "strategies.progressive_shrinking",
    "OFAEvolutionTuner": "strategies.nni_tuner",
    "OFAEvolution": "strategies.evolution",
    "RecalibratedEvaluator": "strategies.nni_evaluator",
    "OFAEvolutionSampler": "strategies.optuna_sampler",
    "suggest_sample": "strategies.optuna_sampler",
    "set_constraints": "strategies.optuna_sampler",
    "publish_to_dashboard": "strategies.optuna_sampler",
}

if TYPE_CHECKING:
    from strategies.evolution import OFAEvolution
    from strategies.nni_evaluator import RecalibratedEvaluator
    from strategies.nni_tuner import OFAEvolutionTuner
    from strategies.optuna_sampler import OFAEvolutionSampler, publish_to_dashboard, set_constraints, suggest_sample
    from strategies.progressive_shrinking import ProgressiveShrinking, SandwichRule


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'strategies' has no attribute {name!r}")
    importlib.import_module("ofa_nni._nni_compat").apply()  # the NNI 3.0 workarounds, before NNI's NAS modules load
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
