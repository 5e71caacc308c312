"""Equivalence with mit-han-lab's reference (PyPI ``ofa``, test-only): weights import, subnets, archs.

``ofa``'s OFAMobileNetV3 gets random weights, random BN statistics/affine and transformation
matrices away from identity; loaded into our space with ``from_ofa_state_dict``, every subnet must
compute the same function in both implementations, dynamic and frozen (``get_active_subnet``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3
from torch import nn

from ofa_nni import ArchSpace, arch_from_ofa, arch_to_ofa, convert_ofa_state_dict
from search_spaces import OFAMobileNetV3Space

TOLERANCE = 1e-5

# OFA's constructor settings and the matching space kwargs (OFA hard-codes the MobileNetV3 layout).
DEFAULT_OFA = dict(ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4])
CUSTOM_OFA = dict(n_classes=10, width_mult=0.5, ks_list=[3, 5], expand_ratio_list=[2, 3], depth_list=[1, 2])
CUSTOM_SPACE = dict(
    num_classes=10, width_mult=0.5, kernel_sizes=(3, 5), expand_ratios=(2, 3), depths=(1, 2), resolutions=(64, 72, 96)
)


def _randomized_ofa_net(seed: int, network: type[nn.Module] = OFAMobileNetV3, **ofa_kwargs) -> Any:
    """An ``ofa`` supernet (``network``: OFAMobileNetV3 or OFAProxylessNASNets) with random weights
    (OFA's 'he_fout' scale), random BN affine parameters, transformation matrices away from identity
    (identity would hide a wrong 7->5->3 chain) and random BN statistics of its largest subnet (see
    :func:`_calibrate_reference_`)."""
    torch.manual_seed(seed)
    net = network(**ofa_kwargs)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
                module.weight.normal_(0.0, math.sqrt(2.0 / fan_out), generator=generator)
                if module.bias is not None:
                    module.bias.normal_(0.0, 0.1, generator=generator)
            elif isinstance(module, nn.BatchNorm2d):
                module.weight.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
        for name, param in net.named_parameters():
            if name.endswith("_matrix"):
                param.add_(torch.randn(param.shape, generator=generator) * 0.1)
    _calibrate_reference_(net, 160, generator)
    return net


def _calibrate_reference_(net: nn.Module, resolution: int, generator: torch.Generator) -> None:
    """Random BN running statistics for ``net``'s active subnet, as OFA's BN recalibration makes
    them (the subnet's statistics on a batch, here of random images), then perturbed per channel
    (mildly: the perturbations compound over ~60 BNs).

    Statistics unrelated to the subnet's activations would drown the input in BN biases: every
    image would get the same output and the comparison would test nothing.
    """
    batchnorms = [module for module in net.modules() if isinstance(module, nn.BatchNorm2d)]
    with torch.no_grad():
        for bn in batchnorms:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average: the statistics of the calibration batch
        net.train()(torch.randn(4, 3, resolution, resolution, generator=generator))
        for bn in batchnorms:
            bn.momentum = 0.1
            noise = torch.randn(bn.num_features, generator=generator)
            bn.running_mean.add_(0.02 * noise * bn.running_var.sqrt())
            bn.running_var.mul_(torch.exp(0.05 * torch.randn(bn.num_features, generator=generator)))
    net.eval()


def _activate_both(ofa_net: OFAMobileNetV3, ours: OFAMobileNetV3Space, sample, generator) -> None:
    """Activate ``sample`` in both; recalibrate the reference's BN for it and copy its weights over."""
    ofa_net.set_active_subnet(**arch_to_ofa(sample, space=ours))
    _calibrate_reference_(ofa_net, sample["resolution"], generator)
    ours.load_state_dict(convert_ofa_state_dict(ofa_net.state_dict(), ours.state_dict()))
    ours.activate(sample)


@pytest.fixture(scope="module")
def default_pair():
    ofa_net = _randomized_ofa_net(0, **DEFAULT_OFA)
    ours = OFAMobileNetV3Space.from_ofa_state_dict(ofa_net.state_dict()).eval()
    return ofa_net, ours


def _legacy_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The naming of the released checkpoints: ``mobile_inverted_conv`` blocks, flat dynamic ops,
    no ``num_batches_tracked`` counters (they predate it)."""
    legacy = {}
    for key, value in state_dict.items():
        if key.endswith("num_batches_tracked"):
            continue
        key = key.replace(".conv.", ".mobile_inverted_conv.", 1) if key.startswith("blocks.") else key
        key = key.replace(".bn.bn.", ".bn.").replace(".conv.conv.weight", ".conv.weight")
        legacy[key] = value
    return legacy


def _check_subnets(ofa_net: OFAMobileNetV3, ours: OFAMobileNetV3Space, samples, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    for sample in samples:
        arch = ours.arch_space.format(sample)
        resolution = sample["resolution"]
        x = torch.randn(2, 3, resolution, resolution, generator=generator)
        _activate_both(ofa_net, ours, sample, generator)
        with torch.no_grad():
            reference, dynamic = ofa_net(x), ours(x)
            reference_frozen = ofa_net.get_active_subnet(preserve_weight=True).eval()(x)
            frozen = ours.freeze(sample).eval()(x)
        assert (reference[0] - reference[1]).abs().max() > 0.1, f"{arch}: output does not depend on the input"
        assert (dynamic - reference).abs().max() <= TOLERANCE, arch
        assert (frozen - reference_frozen).abs().max() <= TOLERANCE, arch
        assert (frozen - dynamic).abs().max() <= TOLERANCE, arch


def _samples(space: OFAMobileNetV3Space, n_random: int, seed: int):
    rng = np.random.default_rng(seed)
    return [space.min_sample(), space.max_sample()] + [space.random_sample(rng) for _ in range(n_random)]


def test_default_space_subnets_equal_the_reference(default_pair):
    ofa_net, ours = default_pair
    _check_subnets(ofa_net, ours, _samples(ours, 4, seed=1), seed=1)


def test_custom_space_subnets_equal_the_reference():
    ofa_net = _randomized_ofa_net(3, **CUSTOM_OFA)
    ours = OFAMobileNetV3Space.from_ofa_state_dict(ofa_net.state_dict(), **CUSTOM_SPACE).eval()
    assert ours.arch_space.num_blocks == 10
    _check_subnets(ofa_net, ours, _samples(ours, 4, seed=2), seed=2)


def test_reference_sampled_archs_agree(default_pair):
    """OFA's own sampler's archs, translated with arch_from_ofa, give the same outputs."""
    ofa_net, ours = default_pair
    generator = torch.Generator().manual_seed(5)
    for resolution in (128, 180):
        setting = ofa_net.sample_active_subnet()
        sample = arch_from_ofa(setting["ks"], setting["e"], setting["d"], resolution)
        assert arch_to_ofa(sample) == {**setting, "r": resolution}
        _activate_both(ofa_net, ours, sample, generator)
        x = torch.randn(2, 3, resolution, resolution, generator=generator)
        with torch.no_grad():
            assert (ours(x) - ofa_net(x)).abs().max() <= TOLERANCE


def test_a_different_subnet_gives_a_different_output(default_pair):
    """The equivalence checks can fail: a one-kernel difference is far above the tolerance."""
    ofa_net, ours = default_pair
    sample = ours.max_sample()
    other = {**sample, "stage3.block2.kernel": 3}
    ofa_net.set_active_subnet(**arch_to_ofa(other))
    ours.activate(sample)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (ours(x) - ofa_net(x)).abs().max() > 100 * TOLERANCE


def test_legacy_names_wrapper_and_dataparallel_prefix_load_the_same_weights(default_pair):
    ofa_net, ours = default_pair
    legacy = _legacy_state_dict(ofa_net.state_dict())
    assert any(".mobile_inverted_conv." in key for key in legacy)
    # The legacy form is one the reference itself accepts.
    reference = OFAMobileNetV3(**DEFAULT_OFA)
    reference.load_state_dict(legacy)
    for key, value in ofa_net.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(reference.state_dict()[key], value), key

    expected = ours.state_dict()
    for variant in (
        {"state_dict": legacy, "epoch": 180},
        {f"module.{key}": value for key, value in legacy.items()},
        {"state_dict": {f"module.{key}": value for key, value in ofa_net.state_dict().items()}},
    ):
        loaded = OFAMobileNetV3Space.from_ofa_state_dict(variant).state_dict()
        assert loaded.keys() == expected.keys()
        for key, value in expected.items():
            if not key.endswith("num_batches_tracked"):
                assert torch.equal(loaded[key], value), key


def test_converted_state_dict_has_exactly_our_keys(default_pair):
    ofa_net, ours = default_pair
    source = ofa_net.state_dict()
    keys_before = list(source)
    converted = convert_ofa_state_dict(source, ours.state_dict())
    assert list(source) == keys_before  # the input is left as it was
    assert set(converted) == set(ours.state_dict())
    assert torch.equal(converted["stages.4.blocks.3.depthwise_conv.transform_7to5"],
                       source["blocks.20.conv.depth_conv.conv.7to5_matrix"])
    assert torch.equal(converted["classifier.weight"], source["classifier.linear.weight"])


def _refusal(state: dict[str, torch.Tensor], **space_kwargs) -> str:
    """The message of the ValueError that loading ``state`` into the space must raise."""
    with pytest.raises(ValueError) as error:
        OFAMobileNetV3Space.from_ofa_state_dict(state, **space_kwargs)
    return str(error.value)


def test_ten_class_checkpoint_is_refused_with_the_setting_to_pass():
    state = OFAMobileNetV3(n_classes=10, **DEFAULT_OFA).state_dict()
    message = _refusal(state)
    assert "classifier.weight (1000, 1280) vs classifier.linear.weight (10, 1280)" in message
    assert "num_classes=10" in message
    assert "missing" not in message and "unexpected" not in message
    assert OFAMobileNetV3Space.from_ofa_state_dict(state, num_classes=10).arch_space.num_classes == 10


def test_width_12_checkpoint_is_refused_and_loads_with_width_mult():
    state = OFAMobileNetV3(width_mult=1.2, **DEFAULT_OFA).state_dict()
    message = _refusal(state)
    assert "stem.conv.weight (16, 3, 3, 3) vs first_conv.conv.weight (24, 3, 3, 3)" in message
    assert "width_mult" in message and "ratio 1.20" in message
    space = OFAMobileNetV3Space.from_ofa_state_dict(state, width_mult=1.2)
    assert space.state_dict()["feature_mix.conv.weight"].shape[0] == 1536


def test_other_choices_are_named_in_the_error():
    state = OFAMobileNetV3(**CUSTOM_OFA).state_dict()
    message = _refusal(state, num_classes=10, width_mult=0.5)
    assert "10 elastic blocks (this space: 20" in message and "set depths" in message
    assert "kernel sizes [3, 5] (this space: [3, 5, 7])" in message
    assert "largest expand ratio 3 (this space: 6)" in message


def test_missing_and_unexpected_keys_are_listed(default_pair):
    ofa_net, ours = default_pair
    state = dict(ofa_net.state_dict())
    del state["blocks.7.conv.depth_conv.conv.5to3_matrix"]
    state["blocks.7.conv.depth_conv.conv.9to7_matrix"] = torch.eye(49)
    state["auxiliary_head.weight"] = torch.zeros(3)
    with pytest.raises(ValueError) as error:
        convert_ofa_state_dict(state, ours.state_dict())
    message = str(error.value)
    assert "missing (ours, no OFA key maps to them): 1: stages.1.blocks.2.depthwise_conv.transform_5to3" in message
    assert "unexpected (OFA keys with no place in this space): 2:" in message
    assert "blocks.7.conv.depth_conv.conv.9to7_matrix" in message and "auxiliary_head.weight" in message


@pytest.mark.parametrize("bad", [[1, 2, 3], "not a dict", {"state_dict": {"first_conv.conv.weight": "text"}}])
def test_non_state_dicts_are_refused(bad):
    with pytest.raises(ValueError, match="state dict|tensor"):
        convert_ofa_state_dict(bad, OFAMobileNetV3Space(**CUSTOM_SPACE).state_dict())


# ------------------------------------------------------------------------------- arch lists
def test_arch_round_trip_default_and_custom_spaces():
    for arch in (ArchSpace(), OFAMobileNetV3Space(**CUSTOM_SPACE).arch_space):
        rng = np.random.default_rng(0)
        for sample in [arch.min_sample(), arch.max_sample()] + [arch.random_sample(rng) for _ in range(20)]:
            lists = arch_to_ofa(sample, space=arch)
            assert len(lists["ks"]) == len(lists["e"]) == arch.num_blocks
            assert len(lists["d"]) == arch.num_stages
            assert arch_from_ofa(**lists, space=arch) == sample
            assert arch_to_ofa(arch.format(sample), space=arch) == lists


def test_arch_from_ofa_orders_blocks_as_ofa():
    ks = [3] * 20
    ks[5] = 7  # OFA's blocks[6]: the second block of the second stage
    sample = arch_from_ofa(ks, [6] * 20, [4, 3, 2, 4, 4], [176])
    assert sample["stage2.block2.kernel"] == 7
    assert sample["stage2.depth"] == 3 and sample["stage3.depth"] == 2
    assert sample["resolution"] == 176


@pytest.mark.parametrize(
    "kwargs, fragments",
    [
        (dict(ks=[3] * 19), ["ks", "20 kernel sizes", "5 stages x 4", "got 19"]),
        (dict(e=[6] * 21), ["e must be a list of 20 expand ratios", "got 21"]),
        (dict(d=[4] * 4), ["d must be a list of 5 depths"]),
        (dict(ks=[3] * 3 + [9] + [3] * 16), ["ks[3] = 9 (stage1.block4.kernel)", "[3, 5, 7]"]),
        (dict(e=[6] * 19 + [2.5]), ["e[19] = 2.5 (stage5.block4.expand)", "[3, 4, 6]"]),
        (dict(d=[4, 4, 1, 4, 4]), ["d[2] = 1 (stage3.depth)", "[2, 3, 4]"]),
        (dict(r=226), ["r = 226 (resolution)", "224"]),
        (dict(r=[160, 176]), ["r must be a list of 1 resolution"]),
        (dict(ks=7), ["ks must be a list of 20"]),
    ],
)
def test_arch_from_ofa_rejects_bad_lists(kwargs, fragments):
    arguments = dict(ks=[7] * 20, e=[6] * 20, d=[4] * 5, r=224) | kwargs
    with pytest.raises(ValueError) as error:
        arch_from_ofa(**arguments)
    for fragment in fragments:
        assert fragment in str(error.value)


def test_arch_lists_of_a_custom_space_have_its_lengths():
    space = OFAMobileNetV3Space(**CUSTOM_SPACE)
    with pytest.raises(ValueError, match="10 kernel sizes"):
        arch_from_ofa([3] * 20, [2] * 20, [1] * 5, 64, space=space)
    assert arch_from_ofa([5] * 10, [3] * 10, [2] * 5, 96, space=space) == space.max_sample()
    with pytest.raises(ValueError, match="space must be"):
        arch_to_ofa(space.max_sample(), space="default")
