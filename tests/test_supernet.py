"""The elastic supernet: exact freezing, analytic costs, BN recalibration, channel sorting."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY_SPACE_KWARGS, randomize_batchnorm_, randomize_transforms_
from torch.utils.flop_counter import FlopCounterMode

from ofa_nni.elastic import ElasticDepthwiseConv2d, ElasticMBConv
from ofa_nni.layers import MobileNetV3Subnet
from ofa_nni.runtime import recalibrate_batchnorm
from search_spaces import OFAMobileNetV3Space


def _samples(space, n_random=4, seed=0):
    rng = np.random.default_rng(seed)
    return [space.min_sample(), space.max_sample()] + [space.random_sample(rng) for _ in range(n_random)]


def test_default_space_has_the_papers_parameter_count():
    space = OFAMobileNetV3Space()
    assert sum(p.numel() for p in space.parameters()) == 7_678_880
    assert len(space.simplify()) == 46


def test_labels_are_nni_mutables(tiny_space):
    mutables = tiny_space.simplify()
    assert set(mutables) == set(tiny_space.arch_space.labels)
    assert list(mutables["stage2.block1.kernel"].values) == [3, 5]
    assert list(mutables["resolution"].values) == [32, 40]


@pytest.mark.parametrize("input_size", [None, 48])
def test_freeze_equals_active_supernet(small_space, input_size):
    randomize_batchnorm_(small_space)
    randomize_transforms_(small_space)
    small_space.eval()
    for sample in _samples(small_space):
        size = input_size or sample["resolution"]
        x = torch.randn(2, 3, size, size)
        small_space.activate(sample)
        expected = small_space(x)
        subnet = small_space.freeze(sample).eval()
        assert isinstance(subnet, MobileNetV3Subnet)
        assert torch.allclose(subnet(x), expected, atol=1e-5, rtol=0), small_space.arch_space.format(sample)


def test_freeze_keeps_the_active_sample_and_has_plain_layers(tiny_space):
    before = tiny_space.activate(tiny_space.min_sample())
    subnet = tiny_space.freeze(tiny_space.max_sample())
    assert tiny_space.active_sample() == before
    assert not any(isinstance(m, (ElasticMBConv, ElasticDepthwiseConv2d)) for m in subnet.modules())
    assert not any("transform" in name for name, _ in subnet.named_parameters())
    assert subnet.arch == tiny_space.arch_space.format(tiny_space.max_sample())
    # The frozen model is independent: training it does not touch the supernet.
    before_weights = {k: v.clone() for k, v in tiny_space.state_dict().items()}
    for p in subnet.parameters():
        p.data.add_(1.0)
    assert all(torch.equal(v, tiny_space.state_dict()[k]) for k, v in before_weights.items())


def test_freeze_accepts_arch_strings(tiny_space):
    sample = tiny_space.random_sample(3)
    text = tiny_space.arch_space.format(sample)
    assert tiny_space.freeze(text).arch == text


def test_freeze_is_scriptable(tiny_space):
    tiny_space.eval()
    sample = tiny_space.random_sample(1)
    subnet = tiny_space.freeze(sample).eval()
    scripted = torch.jit.script(subnet)
    x = torch.randn(2, 3, sample["resolution"], sample["resolution"])
    assert torch.allclose(scripted(x), subnet(x), atol=1e-6)


def test_elastic_kernel_is_transformed_centre_crop():
    conv = ElasticDepthwiseConv2d(4, (3, 5, 7), stride=1)
    # Identity transforms: plain centre crops.
    assert torch.equal(conv.active_kernel(5, 4), conv.weight[:, :, 1:6, 1:6])
    assert torch.equal(conv.active_kernel(3, 2), conv.weight[:2, :, 2:5, 2:5])
    assert conv.transform_7to5.shape == (25, 25) and conv.transform_5to3.shape == (9, 9)
    with torch.no_grad():
        conv.transform_7to5.copy_(torch.randn(25, 25))
        conv.transform_5to3.copy_(torch.randn(9, 9))
    five = (conv.weight[:, :, 1:6, 1:6].reshape(4, 25) @ conv.transform_7to5.T).view(4, 1, 5, 5)
    three = (five[:, :, 1:4, 1:4].reshape(4, 9) @ conv.transform_5to3.T).view(4, 1, 3, 3)
    assert torch.allclose(conv.active_kernel(5, 4), five)
    assert torch.allclose(conv.active_kernel(3, 4), three)  # progressive: 7 -> 5 -> 3


def test_gradients_reach_transforms_and_only_active_weights(tiny_space):
    tiny_space.train()
    sample = tiny_space.min_sample()
    tiny_space.activate(sample)
    tiny_space(torch.randn(4, 3, 32, 32)).sum().backward()
    block = tiny_space.stages[0].blocks[0]
    assert block.depthwise_conv.transform_5to3.grad is not None
    assert block.depthwise_conv.transform_5to3.grad.abs().sum() > 0
    mid = block.mid_channels
    assert block.expand_conv.weight.grad[mid:].abs().sum() == 0  # channels beyond the active width
    assert block.expand_conv.weight.grad[:mid].abs().sum() > 0
    inactive = tiny_space.stages[0].blocks[1]  # depth 1: the second block is skipped
    assert all(p.grad is None for p in inactive.parameters())


def test_training_updates_only_the_active_bn_slice(tiny_space):
    tiny_space.train()
    tiny_space.activate(tiny_space.min_sample())
    bn = tiny_space.stages[1].blocks[0].depthwise_bn
    before = bn.running_mean.clone()
    tiny_space(torch.randn(4, 3, 32, 32))
    mid = tiny_space.stages[1].blocks[0].mid_channels
    assert not torch.equal(bn.running_mean[:mid], before[:mid])
    assert torch.equal(bn.running_mean[mid:], before[mid:])


def test_input_is_resized_to_the_active_resolution(tiny_space):
    tiny_space.eval()
    tiny_space.activate(dict(tiny_space.max_sample(), resolution=32))
    x = torch.randn(1, 3, 40, 40)
    resized = torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
    assert torch.allclose(tiny_space(x), tiny_space(resized), atol=1e-6)


def test_activate_validates(tiny_space):
    with pytest.raises(ValueError, match=r"stage1\.block1\.kernel: 7 is not allowed; allowed values: \[3, 5\]"):
        tiny_space.activate(dict(tiny_space.max_sample(), **{"stage1.block1.kernel": 7}))
    with pytest.raises(ValueError, match="unknown label"):
        tiny_space.freeze(dict(tiny_space.max_sample(), bogus=1))


@pytest.mark.parametrize("space_kwargs", [TINY_SPACE_KWARGS, dict(num_classes=1000)], ids=["tiny", "default"])
def test_analytic_costs_equal_measured_counts(space_kwargs):
    space = OFAMobileNetV3Space(**space_kwargs)
    costs = space.cost_model
    population = _samples(space, n_random=6, seed=1)
    indices = np.stack([space.arch_space.to_indices(s) for s in population])
    batched_macs, batched_params = costs.macs(indices), costs.params(indices)
    for i, sample in enumerate(population):
        subnet = space.freeze(sample).eval()
        x = torch.randn(1, 3, sample["resolution"], sample["resolution"])
        with FlopCounterMode(display=False) as counter:
            subnet(x)
        measured_macs = counter.get_total_flops() // 2
        measured_params = sum(p.numel() for p in subnet.parameters())
        assert space.macs(sample) == measured_macs == batched_macs[i]
        assert space.params(sample) == measured_params == batched_params[i]


def test_default_space_cost_range():
    space = OFAMobileNetV3Space()
    # OFA's space spans roughly 40M-600M MACs (the paper's 80.0% model is 595M at width 1.2).
    assert 35e6 < space.macs(space.min_sample()) < 50e6
    assert 500e6 < space.macs(space.max_sample()) < 600e6


def test_bn_recalibration_follows_ofa_semantics(tiny_space):
    sample = tiny_space.random_sample(5)
    tiny_space.activate(sample)
    batches = [torch.randn(8, 3, 32, 32) * 2 + 1 for _ in range(3)]
    # Expected: per-batch mean and biased variance of each BN input, averaged over batches.
    subnet = tiny_space.freeze(sample)
    inputs = {}
    hooks = [
        m.register_forward_pre_hook(lambda m, a, name=name: inputs.setdefault(name, []).append(a[0].detach()))
        for name, m in subnet.named_modules()
        if isinstance(m, torch.nn.BatchNorm2d)
    ]
    subnet.train()
    with torch.no_grad():
        for batch in batches:
            subnet(batch)
    for h in hooks:
        h.remove()
    used = recalibrate_batchnorm(subnet, batches)
    assert used == 3
    for name, module in subnet.named_modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            means = torch.stack([x.mean((0, 2, 3)) for x in inputs[name]])
            variances = torch.stack([x.var((0, 2, 3), unbiased=False) for x in inputs[name]])
            assert torch.allclose(module.running_mean, means.mean(0), atol=1e-5)
            assert torch.allclose(module.running_var, variances.mean(0), atol=1e-4)
    # Recalibrating the supernet's active slice gives the same statistics, hence the same function.
    tiny_space.train()  # mode is restored by the recalibration
    recalibrate_batchnorm(tiny_space, [(b, torch.zeros(8)) for b in batches])
    assert tiny_space.training
    tiny_space.eval()
    subnet.eval()
    x = torch.randn(2, 3, 40, 40)
    assert torch.allclose(tiny_space(x), subnet(x), atol=1e-5)


def test_bn_recalibration_stops_after_num_batches_and_rejects_empty_input(tiny_space):
    tiny_space.activate(tiny_space.max_sample())
    assert recalibrate_batchnorm(tiny_space, (torch.randn(2, 3, 40, 40) for _ in range(10)), num_batches=2) == 2
    with pytest.raises(ValueError, match="no batches"):
        recalibrate_batchnorm(tiny_space, [])
    with pytest.raises(ValueError, match="cannot find images"):
        recalibrate_batchnorm(tiny_space, ["not a batch"])


def _outputs(space, samples, x):
    space.eval()
    results = []
    for sample in samples:
        space.activate(sample)
        results.append(space(x))
    return results


def test_sort_channels_keeps_trained_subnets_and_orders_by_importance(small_space):
    randomize_batchnorm_(small_space)
    randomize_transforms_(small_space)
    arch = small_space.arch_space
    rng = np.random.default_rng(0)
    full_width = [
        dict(
            small_space.random_sample(rng),
            **{label: arch.expand_ratios[-1] for label in arch.labels if label.endswith(".expand")},
        )
        for _ in range(4)
    ]
    x = torch.randn(2, 3, 64, 64)
    before = _outputs(small_space, full_width, x)
    small_space.sort_channels()
    for expected, actual in zip(before, _outputs(small_space, full_width, x), strict=True):
        assert torch.allclose(expected, actual, atol=1e-5)
    for stage in small_space.stages:
        for block in stage.blocks:
            importance = block.project_conv.weight.abs().sum(dim=(0, 2, 3))
            assert torch.all(importance[:-1] >= importance[1:])  # most important first


def test_sort_channels_in_the_second_width_step_keeps_every_trained_width(small_space):
    randomize_batchnorm_(small_space)
    arch = small_space.arch_space
    rng = np.random.default_rng(1)
    trained = (4, 6)  # the first width step trained E{4, 6}; the second unlocks 3
    samples = []
    for _ in range(6):
        sample = small_space.random_sample(rng)
        for label in arch.labels:
            if label.endswith(".expand"):
                sample[label] = trained[int(rng.integers(2))]
        samples.append(sample)
    x = torch.randn(2, 3, 72, 72)
    before = _outputs(small_space, samples, x)
    small_space.sort_channels(trained_expand_ratios=trained)
    for expected, actual in zip(before, _outputs(small_space, samples, x), strict=True):
        assert torch.allclose(expected, actual, atol=1e-5)
    with pytest.raises(ValueError, match=r"trained_expand_ratios \[5\]"):
        small_space.sort_channels(trained_expand_ratios=(5,))


def test_sort_channels_changes_narrow_subnets(small_space):
    """Sorting is not a no-op: subnets narrower than any trained width pick other channels."""
    randomize_batchnorm_(small_space)
    narrow = small_space.min_sample()
    x = torch.randn(2, 3, 64, 64)
    (before,) = _outputs(small_space, [narrow], x)
    small_space.sort_channels()
    (after,) = _outputs(small_space, [narrow], x)
    assert not torch.allclose(before, after, atol=1e-4)


def test_invalid_space_arguments_are_reported():
    with pytest.raises(ValueError, match="dropout"):
        OFAMobileNetV3Space(dropout=1.5)
    with pytest.raises(ValueError, match="kernel_sizes must be odd"):
        OFAMobileNetV3Space(kernel_sizes=(2, 3))
    with pytest.raises((TypeError, ValueError), match="keyword"):
        OFAMobileNetV3Space((3, 5))  # keyword-only (NNI's init wrapper raises ValueError)
