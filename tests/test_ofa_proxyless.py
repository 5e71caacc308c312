"""OFA-ProxylessNAS: the space (labels, arch strings, freezing, costs, BN recalibration, files) and its
equivalence with mit-han-lab's reference ``OFAProxylessNASNets`` (PyPI ``ofa``, test-only)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY_PROXYLESS_KWARGS, randomize_batchnorm_, randomize_transforms_
from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3, OFAProxylessNASNets
from test_ofa_reference import _calibrate_reference_, _legacy_state_dict, _randomized_ofa_net
from torch.utils.flop_counter import FlopCounterMode

from ofa_nni.arch import ArchSpace
from ofa_nni.layers import MobileNetV3Subnet
from ofa_nni.runtime import recalibrate_batchnorm
from search_spaces import OFAMobileNetV3Space, OFAProxylessNASSpace, load_supernet, space_class

RELATIVE_TOLERANCE = 1e-4

RELEASED_OFA = dict(width_mult=1.3, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4])
CUSTOM_OFA = dict(n_classes=10, width_mult=0.5, ks_list=[3, 5], expand_ratio_list=[2, 3], depth_list=[1, 2])
CUSTOM_SPACE = dict(
    num_classes=10, width_mult=0.5, kernel_sizes=(3, 5), expand_ratios=(2, 3), depths=(1, 2), resolutions=(64, 96)
)


def _samples(space, n_random: int, seed: int):
    rng = np.random.default_rng(seed)
    return [space.min_sample(), space.max_sample()] + [space.random_sample(rng) for _ in range(n_random)]


def _relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours - reference).abs().max() / reference.abs().max())


# ------------------------------------------------------------------------------------ the space
def test_default_space_is_the_released_supernet():
    space = OFAProxylessNASSpace()
    arch = space.arch_space
    reference = OFAProxylessNASNets(**RELEASED_OFA)
    assert sum(p.numel() for p in space.parameters()) == sum(p.numel() for p in reference.parameters())
    assert arch.widths == (40, 24, 32, 56, 104, 128, 248, 416, 1664)
    assert arch.num_blocks == len(reference.blocks) - 1 == 21
    assert arch.choices("stage6.depth") == (1,) and arch.choices("stage5.depth") == (2, 3, 4)
    assert len(space.simplify()) == len(arch.labels) == 2 * 21 + 6 + 1
    assert space.first_block.residual is False and space.final_expand is None
    assert all(m.eps == 1e-3 for m in space.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert arch.feature_dim == 25 + 21 * 6


def test_labels_and_arch_strings(tiny_proxyless):
    arch = tiny_proxyless.arch_space
    assert set(tiny_proxyless.simplify()) == set(arch.labels)
    assert arch.labels[: arch.num_blocks][-1] == "stage4.block1.kernel"
    assert arch.format(arch.min_sample()) == "r32_k3e2|k3e2_k3e2|k3e2_k3e2|k3e2_k3e2"
    rng = np.random.default_rng(0)
    for sample in _samples(tiny_proxyless, 20, 0) + [arch.random_sample(rng) for _ in range(20)]:
        text = arch.format(sample)
        assert arch.parse(text) == sample
        assert text.split("_")[-1].count("-") == 0  # the last stage lists its one block
    with pytest.raises(ValueError, match="stage 4 must list 1 blocks"):
        arch.parse("r32_k3e2|k3e2_k3e2|k3e2_k3e2|k3e2_k3e2-k3e2")
    with pytest.raises(ValueError, match=r"stage4\.depth: 0 is not allowed; allowed values: \[1\]"):
        arch.parse("r32_k3e2|k3e2_k3e2|k3e2_k3e2|k3e2_|k3e2")


def test_bad_values_are_refused_naming_label_and_allowed_values(tiny_proxyless):
    sample = tiny_proxyless.max_sample()
    with pytest.raises(ValueError, match=r"stage4\.block1\.kernel: 7 is not allowed; allowed values: \[3, 5\]"):
        tiny_proxyless.activate({**sample, "stage4.block1.kernel": 7})
    with pytest.raises(ValueError, match=r"stage4\.depth: 2 is not allowed; allowed values: \[1\]"):
        tiny_proxyless.freeze({**sample, "stage4.depth": 2})
    with pytest.raises(ValueError, match="unknown label"):
        tiny_proxyless.activate({**sample, "stage4.block2.kernel": 3})
    with pytest.raises(ValueError, match="dropout"):
        OFAProxylessNASSpace(dropout=1.0)
    with pytest.raises(ValueError, match=r"bn_eps must be in \(0, 1\), got 0"):
        OFAProxylessNASSpace(bn_eps=0)
    with pytest.raises(ValueError, match="base_widths needs 9 values .* feature mix"):
        OFAProxylessNASSpace(base_widths=(32, 16, 24, 40, 80, 96, 192, 320, 960, 1280))


def test_active_block_mask_and_features_follow_the_depths(tiny_proxyless):
    arch = tiny_proxyless.arch_space
    indices = arch.random_indices(200, 1)
    mask = arch.active_block_mask(indices)
    for row, active in zip(indices, mask, strict=True):
        sample = arch.from_indices(row)
        assert active.tolist() == [arch.is_block_active(sample, s, b) for s, b in arch.blocks]
        assert active[-1]  # the single-block stage always runs
    features = arch.to_features(indices)
    assert features.shape == (200, arch.feature_dim)
    assert (features.sum(1) == 1 + 2 * mask.sum(1)).all()


@pytest.mark.parametrize("input_size", [None, 48])
def test_freeze_equals_active_supernet(tiny_proxyless, input_size):
    randomize_batchnorm_(tiny_proxyless)
    randomize_transforms_(tiny_proxyless)
    tiny_proxyless.eval()
    for sample in _samples(tiny_proxyless, 4, 1):
        size = input_size or sample["resolution"]
        x = torch.randn(2, 3, size, size)
        tiny_proxyless.activate(sample)
        expected = tiny_proxyless(x)
        subnet = tiny_proxyless.freeze(sample).eval()
        assert isinstance(subnet, MobileNetV3Subnet) and subnet.final_expand is None
        assert (subnet(x) - expected).abs().max() <= 1e-5, tiny_proxyless.arch_space.format(sample)
    assert tiny_proxyless.active_sample() == sample


@pytest.mark.parametrize("space_kwargs", [TINY_PROXYLESS_KWARGS, {}], ids=["tiny", "released"])
def test_analytic_costs_equal_measured_counts(space_kwargs):
    space = OFAProxylessNASSpace(**space_kwargs)
    population = _samples(space, 3, 2)
    indices = np.stack([space.arch_space.to_indices(s) for s in population])
    batched_macs, batched_params = space.cost_model.macs(indices), space.cost_model.params(indices)
    for i, sample in enumerate(population):
        subnet = space.freeze(sample).eval()
        x = torch.randn(1, 3, sample["resolution"], sample["resolution"])
        with FlopCounterMode(display=False) as counter:
            subnet(x)
        assert space.macs(sample) == counter.get_total_flops() // 2 == batched_macs[i]
        assert space.params(sample) == sum(p.numel() for p in subnet.parameters()) == batched_params[i]


def test_bn_recalibration_of_the_supernet_equals_the_frozen_subnets(tiny_proxyless):
    sample = tiny_proxyless.random_sample(3)
    tiny_proxyless.activate(sample)
    batches = [torch.randn(8, 3, 40, 40) * 2 + 1 for _ in range(3)]
    subnet = tiny_proxyless.freeze(sample)
    assert recalibrate_batchnorm(subnet, batches) == 3
    assert recalibrate_batchnorm(tiny_proxyless, batches) == 3
    x = torch.randn(2, 3, 40, 40)
    with torch.no_grad():
        assert (tiny_proxyless.eval()(x) - subnet.eval()(x)).abs().max() <= 1e-5
    feature_bn = subnet.feature_mix.bn
    assert feature_bn is not None
    assert not torch.allclose(feature_bn.running_var, torch.ones_like(feature_bn.running_var))


def test_space_kwargs_save_and_load(tiny_proxyless, tmp_path):
    assert space_class("ofa-proxyless") is OFAProxylessNASSpace
    assert OFAProxylessNASSpace(**tiny_proxyless.space_kwargs()).arch_space == tiny_proxyless.arch_space
    randomize_batchnorm_(tiny_proxyless)
    path = tiny_proxyless.save(tmp_path / "supernet.pt")
    loaded = load_supernet(path)
    assert type(loaded) is OFAProxylessNASSpace and loaded.space_kwargs() == tiny_proxyless.space_kwargs()
    for key, value in tiny_proxyless.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert OFAProxylessNASSpace.load(path).arch_space == tiny_proxyless.arch_space
    with pytest.raises(ValueError, match="holds a OFAProxylessNASSpace supernet, not OFAMobileNetV3Space"):
        OFAMobileNetV3Space.load(path)


def test_mobilenetv3_signature_is_unchanged():
    """The new ArchSpace fields stay out of a MobileNetV3 space's signature (saved artefacts match)."""
    signature = OFAMobileNetV3Space(num_classes=10).arch_space.signature()
    assert "fixed_depths" not in signature and "layout" not in signature
    assert ArchSpace.from_signature(signature) == ArchSpace(num_classes=10)
    proxyless = OFAProxylessNASSpace().arch_space
    assert ArchSpace.from_signature(proxyless.signature()) == proxyless


# ---------------------------------------------------------------------------- the reference
@pytest.fixture(scope="module")
def released_pair():
    ofa_net = _randomized_ofa_net(0, OFAProxylessNASNets, **RELEASED_OFA)
    ours = OFAProxylessNASSpace.from_ofa_state_dict(ofa_net.state_dict()).eval()
    return ofa_net, ours


def _check_subnets(ofa_net, ours, samples, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    for sample in samples:
        arch = ours.arch_space.format(sample)
        resolution = sample["resolution"]
        settings = ours.ofa_settings(sample)
        ofa_net.set_active_subnet(**settings)
        _calibrate_reference_(ofa_net, resolution, generator)
        ours.load_state_dict(type(ours).from_ofa_state_dict(ofa_net.state_dict(), **ours.space_kwargs()).state_dict())
        ours.activate(sample)
        x = torch.randn(2, 3, resolution, resolution, generator=generator)
        with torch.no_grad():
            reference, dynamic = ofa_net(x), ours(x)
            reference_frozen = ofa_net.get_active_subnet(preserve_weight=True).eval()(x)
            frozen = ours.freeze(sample).eval()(x)
        assert (reference[0] - reference[1]).abs().max() > 0.1 * reference.abs().max(), arch
        assert _relative_error(dynamic, reference) <= RELATIVE_TOLERANCE, arch
        assert _relative_error(frozen, reference_frozen) <= RELATIVE_TOLERANCE, arch
        assert (frozen - dynamic).abs().max() <= 1e-5 * reference.abs().max(), arch


def test_released_space_subnets_equal_the_reference(released_pair):
    ofa_net, ours = released_pair
    _check_subnets(ofa_net, ours, _samples(ours, 2, seed=1), seed=1)


def test_custom_space_subnets_equal_the_reference():
    ofa_net = _randomized_ofa_net(3, OFAProxylessNASNets, **CUSTOM_OFA)
    ours = OFAProxylessNASSpace.from_ofa_state_dict(ofa_net.state_dict(), **CUSTOM_SPACE).eval()
    assert ours.arch_space.num_blocks == 11
    _check_subnets(ofa_net, ours, _samples(ours, 4, seed=2), seed=2)


def test_a_different_subnet_gives_a_different_output(released_pair):
    ofa_net, ours = released_pair
    sample = ours.max_sample()
    ofa_net.set_active_subnet(**ours.ofa_settings({**sample, "stage6.block1.kernel": 3}))
    ours.activate(sample)
    x = torch.randn(2, 3, 160, 160, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert _relative_error(ours(x), ofa_net(x)) > 100 * RELATIVE_TOLERANCE


def test_legacy_names_and_wrapper_load_the_same_weights(released_pair):
    """The released checkpoints' naming (``mobile_inverted_conv``, flat dynamic ops, no BN counters),
    in a ``{"state_dict": ...}`` wrapper, with a DataParallel prefix: the reference accepts it, so do we."""
    ofa_net, ours = released_pair
    legacy = _legacy_state_dict(ofa_net.state_dict())
    assert any(".mobile_inverted_conv." in key for key in legacy)
    OFAProxylessNASNets(**RELEASED_OFA).load_state_dict(legacy)
    expected = OFAProxylessNASSpace.from_ofa_state_dict(ofa_net.state_dict()).state_dict()
    for variant in ({"state_dict": legacy, "epoch": 120}, {f"module.{key}": value for key, value in legacy.items()}):
        loaded = OFAProxylessNASSpace.from_ofa_state_dict(variant).state_dict()
        assert loaded.keys() == expected.keys()
        for key, value in expected.items():
            if not key.endswith("num_batches_tracked"):
                assert torch.equal(loaded[key], value), key


# ----------------------------------------------------------------------------- OFA settings
def test_reference_sampled_settings_round_trip(released_pair):
    ofa_net, ours = released_pair
    for resolution in (128, 224):
        settings = {**ofa_net.sample_active_subnet(), "r": resolution}
        sample = ours.ofa_sample(settings)
        assert ours.ofa_settings(sample) == settings
        assert sample["stage6.depth"] == 1 and sample["resolution"] == resolution


def test_ofa_sample_takes_the_references_shorthands():
    space = OFAProxylessNASSpace(**CUSTOM_SPACE)
    assert space.ofa_sample(dict(ks=5, e=3, d=2, r=96)) == space.max_sample()  # set_max_net's form
    assert space.ofa_sample(dict(ks=[3] * 11, e=[2] * 11, d=[1] * 5, r=64)) == space.min_sample()
    mbv3 = OFAMobileNetV3Space(num_classes=10)
    assert mbv3.ofa_sample(dict(ks=7, e=6, d=4, r=224)) == mbv3.max_sample()
    sample = mbv3.random_sample(4)
    assert mbv3.ofa_sample(mbv3.ofa_settings(sample)) == sample


@pytest.mark.parametrize(
    "settings, fragments",
    [
        (dict(ks=7, e=6, d=4), ["missing: ['r']"]),
        (dict(ks=7, e=6, d=4, r=224, w=1), ["unknown: ['w']"]),
        (dict(ks=[7] * 20, e=6, d=4, r=224), ["ks must be a list of 21 kernel sizes", "got 20"]),
        (dict(ks=9, e=6, d=4, r=224), ["ks[0] = 9 (stage1.block1.kernel)", "[3, 5, 7]"]),
        (dict(ks=7, e=6, d=[4, 4, 4, 4, 5, 1], r=224), ["d[4] = 5 (stage5.depth)", "[2, 3, 4]"]),
        (dict(ks=7, e=6, d=4, r=226), ["r = 226 (resolution)"]),
    ],
)
def test_ofa_sample_refuses_bad_settings(settings, fragments):
    with pytest.raises(ValueError) as error:
        OFAProxylessNASSpace().ofa_sample(settings)
    for fragment in fragments:
        assert fragment in str(error.value)


def test_mobilenetv3_checkpoint_is_refused_by_the_proxyless_space():
    state = OFAMobileNetV3(ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4]).state_dict()
    with pytest.raises(ValueError) as error:
        OFAProxylessNASSpace.from_ofa_state_dict(state)
    message = str(error.value)
    assert "has the OFA-MobileNetV3 (OFAMobileNetV3: final_expand_layer) layout" in message
    assert "OFAProxylessNASSpace expects OFA-ProxylessNAS" in message
    assert "load it with OFAMobileNetV3Space.from_ofa_state_dict" in message
    proxyless_state = OFAProxylessNASNets(**RELEASED_OFA).state_dict()
    with pytest.raises(ValueError, match="has the OFA-ProxylessNAS .* OFAMobileNetV3Space expects OFA-MobileNetV3"):
        OFAMobileNetV3Space.from_ofa_state_dict(proxyless_state)


def test_frozen_subnet_is_scriptable(tiny_proxyless):
    subnet = tiny_proxyless.freeze(tiny_proxyless.random_sample(2)).eval()
    x = torch.randn(2, 3, 40, 40)
    scripted = torch.jit.script(subnet)
    assert torch.allclose(scripted(x), subnet(x), atol=1e-6)
