"""Supernet runtime utilities that work on any module: BN recalibration of the active subnet."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from ofa_nni.errors import InvalidInputError

__all__ = ["recalibrate_batchnorm", "RECALIBRATED_ATTRIBUTE", "is_recalibrated"]

RECALIBRATED_ATTRIBUTE = "ofa_nni_batchnorm_recalibrated"
"""Set (True) on a module whose BN statistics :func:`recalibrate_batchnorm` recomputed: lets NNI's
evaluation of a frozen OFA subnet tell whether it was recalibrated (:mod:`ofa_nni._nni_compat`)."""


def is_recalibrated(model: nn.Module) -> bool:
    """Whether :func:`recalibrate_batchnorm` recomputed ``model``'s batch-norm statistics."""
    return bool(getattr(model, RECALIBRATED_ATTRIBUTE, False))


def _images_of(batch: Any) -> torch.Tensor:
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0]
    if isinstance(batch, dict) and isinstance(batch.get("image"), torch.Tensor):
        return batch["image"]
    raise InvalidInputError(
        f"cannot find images in a batch of type {type(batch).__name__}: expected a tensor, "
        "(images, labels) or {'image': images}"
    )


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Iterable[Any], num_batches: int | None = None) -> int:
    """Recompute the running statistics of every batch norm for the subnet that is active now.

    OFA's semantics (``set_running_statistics``): each BN's running mean and variance become the
    average over the batches of the batch mean and (biased) batch variance of its input, for the
    channels the active subnet uses (sliced in an elastic BN, all in a static one); the forward
    pass normalises with batch statistics meanwhile. The paper uses ~2,000 training images in
    batches of 200. Other modules stay in eval mode (no dropout); the model's mode is restored.

    Args:
        model: A supernet with a sample active, or a frozen subnet.
        batches: Images, ``(images, labels)`` or ``{'image': images}`` batches (e.g. a DataLoader).
        num_batches: Stop after this many batches (default: all).

    Returns:
        The number of batches used.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d) and m.track_running_stats]
    sums: dict[nn.BatchNorm2d, list[Any]] = {bn: [None, None, 0] for bn in norms}

    def record(bn: nn.BatchNorm2d, inputs: tuple[torch.Tensor, ...]) -> None:
        x = inputs[0]
        mean = x.mean(dim=(0, 2, 3))
        var = (x - mean[None, :, None, None]).pow(2).mean(dim=(0, 2, 3))
        entry = sums[bn]
        if entry[0] is None:
            entry[0], entry[1] = mean.double(), var.double()
        else:
            entry[0] += mean.double()
            entry[1] += var.double()
        entry[2] += 1

    was_training = {m: m.training for m in model.modules()}
    handles = [bn.register_forward_pre_hook(record) for bn in norms]
    saved_momentum = {bn: bn.momentum for bn in norms}
    used = 0
    try:
        model.eval()
        for bn in norms:
            bn.train()  # normalise with batch statistics, as OFA does while collecting them
            bn.momentum = 0.0  # ...without touching the running statistics in the meantime
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        for batch in batches:
            if num_batches is not None and used >= num_batches:
                break
            model(_images_of(batch).to(device))
            used += 1
    finally:
        for handle in handles:
            handle.remove()
        for bn in norms:
            bn.momentum = saved_momentum[bn]
        for module, training in was_training.items():
            module.training = training
    if used == 0:
        raise InvalidInputError("recalibrate_batchnorm got no batches: pass a non-empty data loader")
    for bn, (mean_sum, var_sum, count) in sums.items():
        if count == 0:
            continue  # BN of an inactive block
        channels = mean_sum.shape[0]
        assert bn.running_mean is not None and bn.running_var is not None
        bn.running_mean[:channels] = (mean_sum / count).to(bn.running_mean.dtype)
        bn.running_var[:channels] = (var_sum / count).to(bn.running_var.dtype)
    setattr(model, RECALIBRATED_ATTRIBUTE, True)
    return used
