"""ofa-nni: Once-for-All (Cai et al., ICLR 2020) for NNI and Optuna.

Train one elastic supernet, then specialize it for many deployment targets. The core (this
package) needs neither NNI's experiment machinery nor Optuna; ``search_spaces`` and ``strategies``
adapt it to them.
"""

import os

# OpenMP threads that spin while they wait hold a core that the thread they wait for needs: on a
# machine whose cores are busy with other work, 2-thread torch trained our accuracy predictor in
# 120-257 s instead of 7-12 s on 1 thread, and in 3.2 s with passive waiting (measured here, load
# 5-7 on 2 cores). libgomp reads this when torch loads it, so it only takes effect if ofa_nni is
# imported before torch (as in the ``ofa-nni`` command); a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ofa_nni import _nni_compat  # noqa: E402
from ofa_nni.accuracy import (  # noqa: E402
    AccuracyDataset,
    AccuracyPredictor,
    build_accuracy_predictor,
    collect_accuracy_dataset,
)
from ofa_nni.arch import DEFAULT_RESOLUTIONS, ArchSpace, Sample  # noqa: E402
from ofa_nni.costs import AnalyticCostModel  # noqa: E402
from ofa_nni.efficiency import EfficiencyModel, MacsModel, ParamsModel  # noqa: E402
from ofa_nni.latency import LatencyTable, build_latency_table, validate_latency_table  # noqa: E402
from ofa_nni.ofa_weights import arch_from_ofa, arch_to_ofa, convert_ofa_state_dict  # noqa: E402
from ofa_nni.search import EvolutionSearch, ParetoFront, ParetoSearch, SearchResult, TargetResult, specialize  # noqa: E402

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
