"""ofa-nni: Once-for-All (Cai et al., ICLR 2020) for NNI and Optuna.

Train one elastic supernet, then specialize it for many deployment targets. This package is the
core: arch descriptions, costs, the search engine, predictors, latency tables, elastic ops,
training schedules, data and export. ``search_spaces`` (the OFA spaces as NNI ``ModelSpace`` s)
and ``strategies`` (NNI and Optuna adapters) sit above it, and the application (``ofa_nni.app``:
the ``ofa-nni`` command line, the demo, reports, the training runner) on top; the layers are an
import-linter contract (``pyproject.toml``).

Importing the core has no side effects: it patches nothing, sets no environment variable and loads
neither torch nor NNI. The exports below load on first use (PEP 562), as Optuna's do, so
``from ofa_nni import ArchSpace`` costs numpy only.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "ArchSpace": "ofa_nni.arch",
    "Sample": "ofa_nni.arch",
    "DEFAULT_RESOLUTIONS": "ofa_nni.arch",
    "AnalyticCostModel": "ofa_nni.costs",
    "InvalidInputError": "ofa_nni.errors",
    "convert_ofa_state_dict": "ofa_nni.ofa_weights",
    "arch_from_ofa": "ofa_nni.ofa_weights",
    "arch_to_ofa": "ofa_nni.ofa_weights",
    "AccuracyDataset": "ofa_nni.accuracy",
    "AccuracyPredictor": "ofa_nni.accuracy",
    "build_accuracy_predictor": "ofa_nni.accuracy",
    "collect_accuracy_dataset": "ofa_nni.accuracy",
    "EfficiencyModel": "ofa_nni.efficiency",
    "MacsModel": "ofa_nni.efficiency",
    "ParamsModel": "ofa_nni.efficiency",
    "LatencyTable": "ofa_nni.latency",
    "build_latency_table": "ofa_nni.latency",
    "validate_latency_table": "ofa_nni.latency",
    "EvolutionSearch": "ofa_nni.search",
    "ParetoSearch": "ofa_nni.search",
    "specialize": "ofa_nni.search",
    "SearchResult": "ofa_nni.search",
    "TargetResult": "ofa_nni.search",
    "ParetoFront": "ofa_nni.search",
}

__all__ = [
    "ArchSpace",
    "Sample",
    "DEFAULT_RESOLUTIONS",
    "AnalyticCostModel",
    "InvalidInputError",
    "convert_ofa_state_dict",
    "arch_from_ofa",
    "arch_to_ofa",
    "AccuracyDataset",
    "AccuracyPredictor",
    "build_accuracy_predictor",
    "collect_accuracy_dataset",
    "EfficiencyModel",
    "MacsModel",
    "ParamsModel",
    "LatencyTable",
    "build_latency_table",
    "validate_latency_table",
    "EvolutionSearch",
    "ParetoSearch",
    "specialize",
    "SearchResult",
    "TargetResult",
    "ParetoFront",
]

if TYPE_CHECKING:
    from ofa_nni.accuracy import AccuracyDataset, AccuracyPredictor, build_accuracy_predictor, collect_accuracy_dataset
    from ofa_nni.arch import DEFAULT_RESOLUTIONS, ArchSpace, Sample
    from ofa_nni.costs import AnalyticCostModel
    from ofa_nni.efficiency import EfficiencyModel, MacsModel, ParamsModel
    from ofa_nni.errors import InvalidInputError
    from ofa_nni.latency import LatencyTable, build_latency_table, validate_latency_table
    from ofa_nni.ofa_weights import arch_from_ofa, arch_to_ofa, convert_ofa_state_dict
    from ofa_nni.search import EvolutionSearch, ParetoFront, ParetoSearch, SearchResult, TargetResult, specialize


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ofa_nni' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
