"""The one place for NNI 3.0 workarounds on today's torch / Lightning / numpy.

NNI 3.0 (its last release, 2023) predates torch 2.2+, Lightning 2.2+, numpy 2 and setuptools 81.
Each workaround below names what breaks; :func:`apply` is called when ``ofa_nni`` is imported and
is idempotent. ``tests/test_nni_compat.py`` checks both that every patch is still *needed* (the
unpatched behaviour still fails) and that it *works*, so a future NNI or torch release that fixes
or changes the behaviour makes a test fail instead of leaving dead code here.

1. Import-time RuntimeWarnings: ``nni.nas.nn.pytorch.layers`` wraps every class in ``torch.nn``
   and warns for each one that is not a Module (``torch.nn.Buffer``, ...), once per process.
2. ``MixedOperation.freeze`` (one-shot supermodules, e.g. NNI's own MobileNetV3Space under
   ``RandomOneShot``) builds a state dict with ``{'bias': None}`` for bias-free convs, which
   ``load_state_dict`` of torch >= 2.x rejects; the patch drops ``None`` entries.
3. ``nnictl`` imports ``pkg_resources``: pinned ``setuptools<81`` in pyproject.toml (not a patch).
4. ``NasExperiment`` with the sequential engine (every one-shot and our multi-trial strategies)
   warns "`training_service` will be ignored" about the default it set itself, at every config
   canonicalisation (about ten times a run); a logging filter drops that one message.
5. Import order: ``nni.nas.oneshot.pytorch.strategy`` imports ``nni.nas.strategy``, whose
   ``oneshot`` module imports the former back; if the former is imported first (as a subclass of
   ``OneShotStrategy`` does), the cycle fails silently and ``nni.nas.strategy.RandomOneShot``, DARTS,
   ENAS, ... become ``ImportFailedStrategy`` for the whole process. Importing ``nni.nas.strategy``
   first breaks the cycle.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

__all__ = ["apply", "NON_MODULE_WARNING", "TRAINING_SERVICE_WARNING", "original_mixed_operation_freeze"]

NON_MODULE_WARNING = r".* is found to be not a nn\.Module, which is unexpected"
"""Message pattern of NNI's import-time RuntimeWarning (workaround 1)."""

TRAINING_SERVICE_WARNING = "`training_service` will be ignored for sequential execution engine."
"""NNI's self-inflicted warning (workaround 4)."""
NAS_CONFIG_LOGGER = "nni.nas.experiment.config.experiment"

_applied = False
original_mixed_operation_freeze: Any = None
"""NNI's own ``MixedOperation.freeze``, kept so tests can show the patch is still needed."""


def _mixed_operation_freeze(self: Any, sample: Any) -> Any:
    """``MixedOperation.freeze`` of NNI 3.0, without ``None`` entries in the copied state dict."""
    arguments = {**self.init_arguments}
    for name, mutable in self.mutable_arguments.items():
        arguments[name] = mutable.freeze(sample)
    operation = self.bound_type(**arguments)
    state_dict = {key: value for key, value in self.freeze_weight(**arguments).items() if value is not None}
    operation.load_state_dict(state_dict)
    return operation


class _DropTrainingServiceWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != TRAINING_SERVICE_WARNING


TRAINING_SERVICE_FILTER = _DropTrainingServiceWarning()


def apply() -> None:
    """Apply the workarounds (idempotent)."""
    global _applied, original_mixed_operation_freeze
    if _applied:
        return
    warnings.filterwarnings("ignore", message=NON_MODULE_WARNING, category=RuntimeWarning)
    from nni.nas.oneshot.pytorch.supermodule.operation import MixedOperation

    original_mixed_operation_freeze = MixedOperation.freeze
    MixedOperation.freeze = _mixed_operation_freeze  # type: ignore[method-assign]
    logging.getLogger(NAS_CONFIG_LOGGER).addFilter(TRAINING_SERVICE_FILTER)
    _import_nni_strategies_first()
    _applied = True


def _import_nni_strategies_first() -> None:
    """Workaround 5: import ``nni.nas.strategy`` before anyone imports NNI's one-shot strategies."""
    import nni.nas.strategy  # noqa: F401
