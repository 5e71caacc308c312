"""Evaluate one subnet of a trained supernet the OFA way: freeze, recalibrate BN, held-out accuracy, costs.

A frozen subnet inherits the supernet's batch-norm statistics, which were accumulated over many
subnets and fit none of them: scored with them, subnets read 0.3-0.9 where the same subnets score
0.98-0.99 after recalibration (Cai et al., ICLR 2020, Sec. 3.3: OFA recomputes them on ~2,000 training
images before every evaluation). :func:`evaluate_frozen_subnet` is the one place for that sequence;
the NNI trial, ``ofa-nni export``, the demo and the NNI evaluator
(:class:`strategies.RecalibratedEvaluator`) call it. Latency is measured by the callers (export and
the demo time all their subnets together, interleaved, so that load on the machine hits them alike).

The supernet is duck-typed (anything with ``freeze(sample)``, ``macs(sample)`` and ``params(sample)``,
e.g. :class:`search_spaces.OFAMobileNetV3Space`): the core does not import the space layer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from torch import nn

__all__ = ["SubnetEvaluation", "evaluate_frozen_subnet", "evaluate_recalibrated"]


ModelT = TypeVar("ModelT", bound=nn.Module)
_FrozenT = TypeVar("_FrozenT", bound=nn.Module, covariant=True)


class _Supernet(Protocol[_FrozenT]):
    def freeze(self, sample: Mapping[str, Any]) -> _FrozenT: ...
    def macs(self, sample: Mapping[str, Any]) -> int: ...
    def params(self, sample: Mapping[str, Any]) -> int: ...


@dataclass
class SubnetEvaluation(Generic[ModelT]):
    """One evaluated subnet: the recalibrated model and what was measured on it."""

    model: ModelT
    """The frozen subnet, its BN statistics recalibrated (export or time it as it is)."""
    calibration_batches: int
    """Batches the BN statistics were recomputed on."""
    accuracy: float | None = None
    """Held-out top-1 accuracy (fraction); None when no held-out data was given."""
    loss: float | None = None
    """Held-out mean cross-entropy; None when no held-out data was given."""
    num_images: int | None = None
    """Held-out images evaluated; None when no held-out data was given."""
    macs: int | None = None
    """Analytic multiply-accumulates of the subnet (only from :func:`evaluate_frozen_subnet`)."""
    params: int | None = None
    """Analytic parameter count of the subnet (only from :func:`evaluate_frozen_subnet`)."""


def evaluate_recalibrated(
    model: ModelT,
    calibration_data: Iterable[Any],
    held_out_data: Iterable[Any] | None = None,
    *,
    calibration_batches: int | None = None,
) -> SubnetEvaluation[ModelT]:
    """Recalibrate the batch norms of a frozen ``model`` on ``calibration_data`` (training images), then
    measure its accuracy on ``held_out_data`` (``(images, labels)`` batches) if given."""
    from ofa_nni.accuracy import evaluate_subnet
    from ofa_nni.runtime import recalibrate_batchnorm

    used = recalibrate_batchnorm(model, calibration_data, calibration_batches)
    evaluation = SubnetEvaluation(model=model, calibration_batches=used)
    if held_out_data is not None:
        scores = evaluate_subnet(model, held_out_data)
        evaluation.accuracy = float(scores["accuracy"])
        evaluation.loss = float(scores["loss"])
        evaluation.num_images = int(scores["num_images"])
    return evaluation


def evaluate_frozen_subnet(
    supernet: _Supernet[ModelT],
    sample: Mapping[str, Any],
    calibration_data: Iterable[Any],
    held_out_data: Iterable[Any] | None = None,
    *,
    calibration_batches: int | None = None,
) -> SubnetEvaluation[ModelT]:
    """Freeze ``sample``'s subnet of a trained ``supernet`` (inherited weights), recalibrate its batch
    norms, measure its held-out accuracy (if ``held_out_data``) and its analytic MACs and parameters."""
    evaluation = evaluate_recalibrated(supernet.freeze(sample), calibration_data, held_out_data,
                                       calibration_batches=calibration_batches)
    evaluation.macs = int(supernet.macs(sample))
    evaluation.params = int(supernet.params(sample))
    return evaluation
