"""``RecalibratedEvaluator``: the NNI evaluator that scores an OFA subnet the way OFA does.

NNI's multi-trial strategies (``RegularizedEvolution``, ``Random``, ..., and :class:`strategies.OFAEvolution`)
hand the evaluator each subnet frozen from the supernet (NNI's ``raw`` model format, inherited
weights). Its batch norms then still hold the supernet's statistics, accumulated over many subnets:
evaluated as they are, subnets score 0.3-0.9 where the same subnets score 0.98-0.99 after OFA's
recalibration (Cai et al., ICLR 2020, Sec. 3.3). This evaluator recalibrates first
(:func:`ofa_nni.evaluation.evaluate_recalibrated`, the evaluation the NNI trial, ``ofa-nni export`` and
the demo use), then reports the held-out accuracy (or runs your own function on the recalibrated
subnet)::

    NasExperiment(space, RecalibratedEvaluator(calibration_batches, held_out_batches), RegularizedEvolution())

With ``ofa_nni`` imported, NNI warns once when it evaluates a frozen OFA subnet that nobody
recalibrated (:mod:`ofa_nni._nni_compat`, workaround 12). nnictl's tuners (TPE, ...) run
``python -m strategies.nni_trial``, which recalibrates already.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from nni.nas.evaluator import FunctionalEvaluator

from ofa_nni.errors import InvalidInputError
from strategies.nni_tuner import canonical_arch

__all__ = ["RecalibratedEvaluator"]


class RecalibratedEvaluator(FunctionalEvaluator):
    """An NNI evaluator for frozen OFA subnets: recalibrate BN, then score (any NNI strategy).

    Args:
        calibration_data: Training batches (``(images, labels)``, ``{'image': ...}`` or images; e.g. a
            list of the batches of ``ofa_nni.data.calibration_loader``, ~2,000 images in OFA) on which
            every subnet's batch-norm statistics are recomputed. Re-iterable (a list or a DataLoader).
        held_out_data: Held-out ``(images, labels)`` batches: the evaluator reports
            ``{'default': accuracy, 'accuracy', 'loss', 'arch'}`` with ``nni.report_final_result``.
            Not needed with ``function``.
        calibration_batches: Use at most this many batches of ``calibration_data`` per subnet.
        function: Instead of the held-out accuracy: ``function(model, **kwargs)`` is called with the
            recalibrated subnet (as :class:`nni.nas.evaluator.FunctionalEvaluator` would call it) and
            reports its own metric.
        kwargs: Keyword arguments of ``function``.
    """

    def __init__(
        self,
        calibration_data: Iterable[Any],
        held_out_data: Iterable[Any] | None = None,
        *,
        calibration_batches: int | None = None,
        function: Callable[..., Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if calibration_data is None:
            raise InvalidInputError("RecalibratedEvaluator needs calibration_data (training batches for BN "
                                    "recalibration)")
        if function is None and held_out_data is None:
            raise InvalidInputError("RecalibratedEvaluator needs held_out_data (held-out (images, labels) batches) "
                                    "or a function to call with the recalibrated subnet")
        if function is None and kwargs:
            raise InvalidInputError(f"RecalibratedEvaluator: keyword arguments {sorted(kwargs)} go with function=")
        if calibration_batches is not None and (isinstance(calibration_batches, bool) or calibration_batches < 1):
            raise InvalidInputError(
                f"calibration_batches must be a positive integer or None, got {calibration_batches!r}")
        # NNI's tracing (copies, checkpoints) rebuilds the evaluator from these keyword arguments.
        super().__init__(function, calibration_data=calibration_data, held_out_data=held_out_data,
                         calibration_batches=calibration_batches, **kwargs)

    def evaluate(self, model: Any) -> Any:
        import nni

        from ofa_nni.evaluation import evaluate_recalibrated

        arguments = dict(self.arguments)
        calibration_data = arguments.pop("calibration_data")
        held_out_data = arguments.pop("held_out_data")
        calibration_batches = arguments.pop("calibration_batches")
        if self.function is not None:
            evaluate_recalibrated(model, calibration_data, calibration_batches=calibration_batches)
            return self.function(model, **arguments)
        evaluation = evaluate_recalibrated(model, calibration_data, held_out_data,
                                           calibration_batches=calibration_batches)
        metric: dict[str, Any] = {"default": evaluation.accuracy, "accuracy": evaluation.accuracy,
                                  "loss": evaluation.loss}
        arch = _canonical_arch(nni.get_current_parameter())
        if arch is not None:
            metric["arch"] = arch
        nni.report_final_result(metric)
        return metric


def _canonical_arch(model: Any) -> str | None:
    """The canonical arch string of the subnet NNI is evaluating (``nni.get_current_parameter()`` is its
    frozen model space), or None outside NNI / for a space without an arch description."""
    sample = getattr(model, "sample", None)
    arch_space = getattr(getattr(model, "model_space", None), "arch_space", None)
    if sample is None or arch_space is None:
        return None
    return canonical_arch(arch_space, sample)
