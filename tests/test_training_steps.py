"""One training step: gradients accumulated over the step's subnets, label + distillation losses."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ofa_nni.layers import resize_to_resolution
from ofa_nni.training import (
    distillation_loss,
    plan_step,
    progressive_shrinking,
    sandwich_rule,
    step_seed,
    train_subnets,
)
from ofa_nni.training.steps import batchnorm_buffers, load_batchnorm_buffers


def _grads(model):
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def _batch(space, n=6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    size = max(space.arch_space.resolutions)
    return torch.randn(n, 3, size, size, generator=generator), torch.randint(0, 4, (n,), generator=generator)


def test_gradients_accumulate_over_the_subnets_with_teacher_distillation(tiny_space):
    space = tiny_space.eval()  # no dropout, fixed BN: the step is a deterministic function
    images, labels = _batch(space)
    teacher = space.freeze(space.max_sample()).eval()
    phase = progressive_shrinking(space.arch_space, batch_size=64)[-1]  # expand2: 4 subnets, KD
    step = plan_step(space.arch_space, phase, step_seed(0, 0, 0))
    assert len(step.samples) == 4 and step.distill_from == "teacher"
    space.zero_grad()
    metrics = train_subnets(space, step, images, labels, activate=space.activate,
                            backward=lambda loss: loss.backward(), teacher=teacher, label_smoothing=0.1)
    accumulated = _grads(space)

    expected: dict[str, torch.Tensor] = {}
    resized = resize_to_resolution(images, step.samples[0]["resolution"])
    with torch.no_grad():
        teacher.resolution = resized.shape[-1]
        soft = teacher(resized)
    losses = []
    for sample in step.samples:
        space.zero_grad()
        space.activate(sample)
        logits = space(resized)
        loss = F.cross_entropy(logits, labels, label_smoothing=0.1) + distillation_loss(logits, soft)
        loss.backward()
        losses.append(float(loss.detach()))
        for name, grad in _grads(space).items():
            expected[name] = expected.get(name, torch.zeros_like(grad)) + grad
    assert set(accumulated) == set(expected)
    for name in expected:
        torch.testing.assert_close(accumulated[name], expected[name], rtol=1e-4, atol=1e-6)
    assert metrics["loss"] == pytest.approx(sum(losses) / len(losses), rel=1e-5)
    assert not any(p.grad is not None and p.grad.abs().sum() > 0 for p in teacher.parameters())


def test_distillation_needs_a_teacher(tiny_space):
    images, labels = _batch(tiny_space)
    step = plan_step(tiny_space.arch_space, progressive_shrinking(tiny_space.arch_space)[1], step_seed(0, 0, 0))
    with pytest.raises(ValueError, match="no teacher"):
        train_subnets(tiny_space, step, images, labels, activate=tiny_space.activate, backward=lambda loss: None)


def test_sandwich_step_distills_inplace_from_the_largest(tiny_space):
    space = tiny_space.eval()
    images, labels = _batch(space)
    (phase,) = sandwich_rule(space.arch_space, epochs=1, lr=0.1, num_random=1)
    step = plan_step(space.arch_space, phase, step_seed(0, 0, 0))
    seen = []

    def backward(loss):
        seen.append(float(loss.detach()))
        loss.backward()

    train_subnets(space, step, images, labels, activate=space.activate, backward=backward, label_smoothing=0.0)
    space.activate(space.max_sample())
    with torch.no_grad():
        largest = space(images)
    assert seen[0] == pytest.approx(float(F.cross_entropy(largest, labels)), rel=1e-5)
    space.activate(space.min_sample())
    with torch.no_grad():
        smallest = space(images)
    assert seen[1] == pytest.approx(float(distillation_loss(smallest, largest)), rel=1e-5)


def test_batchnorm_buffers_round_trip(tiny_space):
    saved = batchnorm_buffers(tiny_space)
    assert saved and all(".running_mean" in k or ".running_var" in k or ".num_batches_tracked" in k for k in saved)
    for module in tiny_space.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.add_(1.0)
    load_batchnorm_buffers(tiny_space, saved)
    for name, value in batchnorm_buffers(tiny_space).items():
        torch.testing.assert_close(value, saved[name])
