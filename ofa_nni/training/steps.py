"""One training step of a weight-sharing supernet, and the subnets validated every epoch.

Framework-free (torch only): the Lightning adapter in ``strategies`` passes its own ``activate``
and ``backward`` (Lightning's ``manual_backward``, which handles DDP and mixed precision).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ofa_nni.arch import ArchSpace, Sample
from ofa_nni.errors import InvalidInputError
from ofa_nni.layers import resize_to_resolution
from ofa_nni.training.schedule import SubnetStep

__all__ = [
    "soft_cross_entropy",
    "distillation_loss",
    "train_subnets",
    "median_sample",
    "validation_subnets",
    "batchnorm_buffers",
    "load_batchnorm_buffers",
]


def soft_cross_entropy(logits: torch.Tensor, soft_targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against a distribution per row: ``mean_i(-sum_c p_ic log softmax(z)_ic)``."""
    return torch.sum(-soft_targets * F.log_softmax(logits, dim=1), dim=1).mean()


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """OFA's knowledge-distillation loss: soft cross-entropy to the teacher's softmax (temperature
    1, teacher detached), the ``kd_type='ce'`` of once-for-all's training script."""
    return soft_cross_entropy(student_logits, F.softmax(teacher_logits.detach(), dim=1))


def train_subnets(
    supernet: nn.Module,
    step: SubnetStep,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    activate: Callable[[Sample], Any],
    backward: Callable[[torch.Tensor], None],
    teacher: nn.Module | None = None,
    label_smoothing: float = 0.0,
) -> dict[str, float]:
    """Forward and backward every subnet of ``step``; gradients accumulate (summed, as OFA does:
    one ``loss.backward()`` per subnet, then one optimizer step by the caller).

    Progressive shrinking: the batch is resized once to the step's resolution; each subnet's loss
    is ``CE(labels, smoothing) + kd_ratio * KD(teacher)``. Sandwich rule: the first (largest)
    subnet learns from the labels and its detached logits are the soft labels of the others
    (``kd_ratio * KD`` only).

    Returns:
        ``loss`` (mean over subnets) and ``accuracy`` of the first subnet on this batch.
    """
    if step.distill_from == "teacher" and teacher is None:
        raise InvalidInputError("this step distills from the teacher, but no teacher was given")
    resolutions = {sample[ArchSpace.RESOLUTION_LABEL] for sample in step.samples}
    if len(resolutions) == 1:  # resize once for all subnets (and the teacher)
        images = resize_to_resolution(images, next(iter(resolutions)))
    soft_source: torch.Tensor | None = None
    if step.distill_from == "teacher":
        assert teacher is not None
        with torch.no_grad():
            teacher.resolution = int(images.shape[-1])  # type: ignore[assignment]  # a no-op resize
            soft_source = teacher(images)
    total, accuracy = 0.0, 0.0
    for index, (sample, use_labels) in enumerate(zip(step.samples, step.label_loss, strict=True)):
        activate(sample)
        logits = supernet(images)
        loss = logits.new_zeros(())
        if use_labels:
            loss = loss + F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
        if soft_source is not None and step.kd_ratio > 0 and not (step.distill_from == "first" and index == 0):
            loss = loss + step.kd_ratio * distillation_loss(logits, soft_source)
        backward(loss)
        if index == 0:
            accuracy = float((logits.detach().argmax(1) == labels).float().mean())
            if step.distill_from == "first":
                soft_source = logits.detach()
        total += float(loss.detach())
    return {"loss": total / len(step.samples), "accuracy": accuracy}


def median_sample(arch: ArchSpace) -> Sample:
    """The "median" subnet: the middle choice of every label (the lower middle for an even count),
    e.g. kernel 5, expand 4, depth 3 and resolution 176 in the paper's space."""
    return {label: arch.choices(label)[(len(arch.choices(label)) - 1) // 2] for label in arch.labels}


def validation_subnets(arch: ArchSpace, *, num_random: int = 2, seed: int = 0) -> dict[str, Sample]:
    """The subnets validated every epoch: smallest, median, largest and ``num_random`` random ones
    (fixed by ``seed``, the same every epoch so their curves are comparable)."""
    subnets = {"smallest": arch.min_sample(), "median": median_sample(arch), "largest": arch.max_sample()}
    rng = np.random.default_rng([int(seed), 7919])
    for index in range(num_random):
        subnets[f"random{index}"] = arch.random_sample(rng)
    return subnets


def batchnorm_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of every batch norm's running statistics (to restore after a recalibration)."""
    return {
        name: buffer.detach().clone()
        for module_name, module in model.named_modules()
        if isinstance(module, nn.modules.batchnorm._BatchNorm)
        for name, buffer in ((f"{module_name}.{key}", value) for key, value in module.named_buffers(recurse=False))
        if buffer is not None
    }


def load_batchnorm_buffers(model: nn.Module, buffers: Mapping[str, torch.Tensor]) -> None:
    """Write statistics saved by :func:`batchnorm_buffers` back (in place)."""
    current = dict(model.named_buffers())
    for name, value in buffers.items():
        current[name].copy_(value)
