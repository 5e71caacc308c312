"""OptunaHub package: OFA's evolutionary search over a Once-for-All supernet's subnets.

The sampler lives in the ``ofa-nni`` package (``strategies.optuna_sampler``); this package exposes
it in OptunaHub's layout. Load it with ``optunahub.load_module("samplers/ofa_evolution")`` or, from
a checkout, offline with ``optunahub.load_local_module("samplers/ofa_evolution",
registry_root="optunahub_registry")``.
"""

try:
    from strategies.optuna_sampler import (
        OFAEvolutionSampler,
        optuna_search_space,
        publish_to_dashboard,
        set_constraints,
        suggest_sample,
        trial_sample,
    )
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"the ofa_evolution sampler needs the ofa-nni package ({error}); install it: pip install ofa-nni"
    ) from error

__all__ = [
    "OFAEvolutionSampler",
    "optuna_search_space",
    "publish_to_dashboard",
    "set_constraints",
    "suggest_sample",
    "trial_sample",
]
