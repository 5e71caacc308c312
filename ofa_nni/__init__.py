"""ofa-nni: Once-for-All (Cai et al., ICLR 2020) for NNI and Optuna.

Train one elastic supernet, then specialize it for many deployment targets. The core (this
package) needs neither NNI's experiment machinery nor Optuna; ``search_spaces`` and ``strategies``
adapt it to them.
"""

from ofa_nni import _nni_compat
from ofa_nni.accuracy import (
    AccuracyDataset,
    AccuracyPredictor,
    build_accuracy_predictor,
    collect_accuracy_dataset,
)
from ofa_nni.arch import DEFAULT_RESOLUTIONS, ArchSpace, Sample
from ofa_nni.costs import AnalyticCostModel
from ofa_nni.efficiency import EfficiencyModel, MacsModel, ParamsModel
from ofa_nni.latency import LatencyTable, build_latency_table, validate_latency_table
from ofa_nni.ofa_weights import arch_from_ofa, arch_to_ofa, convert_ofa_state_dict
from ofa_nni.search import EvolutionSearch, ParetoFront, ParetoSearch, SearchResult, TargetResult, specialize

_nni_compat.apply()

__all__ = [
    "ArchSpace",
    "Sample",
    "DEFAULT_RESOLUTIONS",
    "AnalyticCostModel",
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

__version__ = "0.1.0"
