"""OFA-ResNet50: the space (labels, freezing, costs, BN recalibration, channel sorting, files) and its
equivalence with mit-han-lab's reference ``OFAResNets`` (PyPI ``ofa``, test-only)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY_RESNET_KWARGS, randomize_batchnorm_
from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3, OFAResNets
from test_ofa_proxyless import _check_subnets, _relative_error, _samples
from test_ofa_reference import _randomized_ofa_net
from torch.utils.flop_counter import FlopCounterMode

from ofa_nni.errors import InvalidInputError
from ofa_nni.resnet_layers import ResNetSubnet
from ofa_nni.runtime import recalibrate_batchnorm
from search_spaces import OFAMobileNetV3Space, OFAResNetSpace, load_supernet, space_class

RELATIVE_TOLERANCE = 1e-4
RELEASED_OFA = dict(depth_list=[0, 1, 2], expand_ratio_list=[0.2, 0.25, 0.35], width_mult_list=[0.65, 0.8, 1.0])
# The reference's stages are fixed to ResNet50's; a small variant narrows only the choices.
SMALL_OFA = dict(n_classes=10, depth_list=[0, 1], expand_ratio_list=[0.2, 0.35], width_mult_list=[0.25, 0.5])
SMALL_SPACE = dict(num_classes=10, depths=(0, 1), expand_ratios=(0.2, 0.35), width_mults=(0.25, 0.5),
                   resolutions=(64, 96))


# ------------------------------------------------------------------------------------ the space
def test_default_space_is_the_released_supernet():
    space = OFAResNetSpace()
    reference = OFAResNets(**RELEASED_OFA)
    assert sum(p.numel() for p in space.parameters()) == sum(p.numel() for p in reference.parameters())
    assert len(space.simplify()) == len(space.arch_space.labels) == 18 + 5 + 6 + 1
    assert all(m.eps == 1e-5 for m in space.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert space_class("ofa-resnet50") is OFAResNetSpace


def test_labels_samples_and_activation(tiny_resnet):
    arch = tiny_resnet.arch_space
    assert set(tiny_resnet.simplify()) == set(arch.labels)
    for sample in _samples(tiny_resnet, 10, 0):
        assert tiny_resnet.activate(arch.format(sample)) == sample
        assert tiny_resnet.active_sample() == sample


def test_bad_values_are_refused_naming_label_and_allowed_values(tiny_resnet):
    sample = tiny_resnet.max_sample()
    with pytest.raises(InvalidInputError, match=r"stage2\.width: 0\.8 is not allowed; allowed values: \[0\.5, 1\]"):
        tiny_resnet.activate({**sample, "stage2.width": 0.8})
    with pytest.raises(InvalidInputError, match=r"stage1\.block1\.expand: 0\.2 is not allowed"):
        tiny_resnet.freeze({**sample, "stage1.block1.expand": 0.2})
    with pytest.raises(InvalidInputError, match="dropout"):
        OFAResNetSpace(dropout=1.0)
    with pytest.raises(InvalidInputError, match="base_widths needs 3 values"):
        OFAResNetSpace(**{**TINY_RESNET_KWARGS, "base_widths": (16, 32)})


def test_freeze_equals_the_supernet(tiny_resnet):
    randomize_batchnorm_(tiny_resnet)
    tiny_resnet.eval()
    generator = torch.Generator().manual_seed(0)
    for sample in _samples(tiny_resnet, 12, 1):
        x = torch.randn(2, 3, sample["resolution"], sample["resolution"], generator=generator)
        subnet = tiny_resnet.freeze(sample)
        assert isinstance(subnet, ResNetSubnet) and not subnet.training
        tiny_resnet.activate(sample)
        with torch.no_grad():
            expected, got = tiny_resnet(x), subnet(x)
        assert (expected - got).abs().max() <= 1e-5, tiny_resnet.arch_space.format(sample)
        assert (subnet.stem_conv2 is None) == (sample["stem.depth"] == 2)


def test_macs_and_params_equal_measured_counts(tiny_resnet):
    population = _samples(tiny_resnet, 12, 2)
    indices = np.stack([tiny_resnet.arch_space.to_indices(s) for s in population])
    batched_macs, batched_params = tiny_resnet.cost_model.macs(indices), tiny_resnet.cost_model.params(indices)
    for i, sample in enumerate(population):
        subnet = tiny_resnet.freeze(sample).eval()
        x = torch.randn(1, 3, sample["resolution"], sample["resolution"])
        with FlopCounterMode(display=False) as counter:
            subnet(x)
        assert tiny_resnet.macs(sample) == counter.get_total_flops() // 2 == batched_macs[i]
        assert tiny_resnet.params(sample) == sum(p.numel() for p in subnet.parameters()) == batched_params[i]


def test_released_space_costs_equal_measured_counts():
    space = OFAResNetSpace()
    for sample in (space.min_sample(), space.max_sample()):
        subnet = space.freeze(sample).eval()
        with FlopCounterMode(display=False) as counter:
            subnet(torch.zeros(1, 3, sample["resolution"], sample["resolution"]))
        assert space.macs(sample) == counter.get_total_flops() // 2
        assert space.params(sample) == sum(p.numel() for p in subnet.parameters())


def test_bn_recalibration_of_the_supernet_equals_the_frozen_subnets(tiny_resnet):
    sample = tiny_resnet.random_sample(3)
    tiny_resnet.activate(sample)
    r = sample["resolution"]
    batches = [torch.randn(8, 3, r, r) * 2 + 1 for _ in range(3)]
    subnet = tiny_resnet.freeze(sample)
    assert recalibrate_batchnorm(subnet, batches) == 3
    assert recalibrate_batchnorm(tiny_resnet, batches) == 3
    x = torch.randn(2, 3, r, r)
    with torch.no_grad():
        assert (tiny_resnet.eval()(x) - subnet.eval()(x)).abs().max() <= 1e-5
    bn = subnet.stem_conv1.bn
    assert bn is not None and not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))


def test_sort_channels_keeps_trained_subnets_and_sorts_by_importance(tiny_resnet):
    randomize_batchnorm_(tiny_resnet)
    tiny_resnet.eval()
    x = torch.randn(2, 3, 32, 32)
    largest = tiny_resnet.max_sample()
    tiny_resnet.activate(largest)
    with torch.no_grad():
        before = tiny_resnet(x)
        tiny_resnet.sort_channels()
        after = tiny_resnet(x)
    assert (before - after).abs().max() <= 1e-5
    block = tiny_resnet.elastic_blocks()[0]
    importance = block.conv3.conv.weight.abs().sum(dim=(0, 2, 3))
    assert torch.all(importance[:-1] >= importance[1:])
    narrow = {**largest, **{label: 0.25 for label in largest if label.endswith(".expand")}}
    tiny_resnet.activate(narrow)
    with torch.no_grad():
        narrow_before = tiny_resnet(x)
        tiny_resnet.sort_channels(trained_expand_ratios=(0.25, 0.5))
        narrow_after = tiny_resnet(x)
    assert (narrow_before - narrow_after).abs().max() <= 1e-5
    with pytest.raises(InvalidInputError, match="not in this block's ratios"):
        tiny_resnet.sort_channels(trained_expand_ratios=(0.3,))


def test_space_kwargs_save_and_load(tiny_resnet, tmp_path):
    assert OFAResNetSpace(**tiny_resnet.space_kwargs()).arch_space == tiny_resnet.arch_space
    randomize_batchnorm_(tiny_resnet)
    path = tiny_resnet.save(tmp_path / "supernet.pt")
    loaded = load_supernet(path)
    assert type(loaded) is OFAResNetSpace and loaded.space_kwargs() == tiny_resnet.space_kwargs()
    for key, value in tiny_resnet.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    with pytest.raises(InvalidInputError, match="holds a OFAResNetSpace supernet, not OFAMobileNetV3Space"):
        OFAMobileNetV3Space.load(path)


# ---------------------------------------------------------------------------- the reference
def test_small_space_subnets_equal_the_reference():
    ofa_net = _randomized_ofa_net(3, OFAResNets, **SMALL_OFA)
    ours = OFAResNetSpace.from_ofa_state_dict(ofa_net.state_dict(), **SMALL_SPACE).eval()
    _check_subnets(ofa_net, ours, _samples(ours, 4, seed=2), seed=2)


@pytest.mark.slow
def test_released_space_subnets_equal_the_reference():
    ofa_net = _randomized_ofa_net(0, OFAResNets, **RELEASED_OFA)
    ours = OFAResNetSpace.from_ofa_state_dict(ofa_net.state_dict(), resolutions=(128, 160)).eval()
    _check_subnets(ofa_net, ours, _samples(ours, 1, seed=1), seed=1)


def test_settings_round_trip():
    ours = OFAResNetSpace(**SMALL_SPACE)
    for sample in _samples(ours, 10, seed=3):
        assert ours.ofa_sample(ours.ofa_settings(sample)) == sample


def test_reference_sampled_settings_round_trip():
    ofa_net = OFAResNets(**SMALL_OFA)
    ours = OFAResNetSpace(**SMALL_SPACE)
    for _ in range(20):
        settings = ofa_net.sample_active_subnet()
        sample = ours.ofa_sample({**settings, "r": 64})
        assert ours.ofa_settings(sample) == {**settings, "r": 64}
    assert ours.ofa_sample(dict(d=1, e=0.35, w=1, r=96)) == ours.max_sample()


def test_reference_channel_sorting_is_ours():
    """``re_organize_middle_weights`` and ``sort_channels`` sort alike: the same order in the first sort;
    in the second (smaller ratios kept as prefixes) the same channel set in every prefix, hence the
    same subnets. (The order within a prefix can differ where two importances are closer than float32
    resolves after the reference's -1e5 offsets: ours is the exact order.)"""
    ofa_net = _randomized_ofa_net(4, OFAResNets, **SMALL_OFA)
    ours = OFAResNetSpace.from_ofa_state_dict(ofa_net.state_dict(), **SMALL_SPACE).eval()
    ofa_net.re_organize_middle_weights(expand_ratio_stage=0)
    ours.sort_channels()
    expected = OFAResNetSpace.from_ofa_state_dict(ofa_net.state_dict(), **SMALL_SPACE).eval()
    for key, value in ours.state_dict().items():
        assert torch.equal(value, expected.state_dict()[key]), key
    ofa_net.re_organize_middle_weights(expand_ratio_stage=1)
    ours.sort_channels(trained_expand_ratios=(0.2, 0.35))
    expected = OFAResNetSpace.from_ofa_state_dict(ofa_net.state_dict(), **SMALL_SPACE).eval()
    x = torch.randn(2, 3, 64, 64)
    for sample in _samples(ours, 4, seed=5):
        ours.activate(sample)
        expected.activate(sample)
        with torch.no_grad():
            assert _relative_error(ours(x), expected(x)) <= 1e-5, ours.arch_space.format(sample)


def test_bad_checkpoints_and_settings_are_refused():
    ours = OFAResNetSpace(**SMALL_SPACE)
    with pytest.raises(InvalidInputError, match=r"OFA-MobileNetV3 .* layout; OFAResNetSpace expects OFA-ResNet50"):
        OFAResNetSpace.from_ofa_state_dict(OFAMobileNetV3(n_classes=10).state_dict(), **SMALL_SPACE)
    released = OFAResNets(**{**SMALL_OFA, "depth_list": [0, 1, 2]}).state_dict()
    with pytest.raises(InvalidInputError, match="unexpected .* pass the checkpoint's depths"):
        OFAResNetSpace.from_ofa_state_dict(released, **SMALL_SPACE)
    with pytest.raises(InvalidInputError, match=r"'w' holds indices .* 0\.\.1; got 2"):
        ours.ofa_sample(dict(d=0, e=0.2, w=2, r=64))
    with pytest.raises(InvalidInputError, match=r"'d' value 2 is not allowed; allowed: \[0, 1\]"):
        ours.ofa_sample(dict(d=2, e=0.2, w=0, r=64))
    with pytest.raises(InvalidInputError, match=r"setting 'e' needs 14 values"):
        ours.ofa_sample(dict(d=0, e=[0.2] * 3, w=0, r=64))
    with pytest.raises(InvalidInputError, match="unknown OFA setting"):
        ours.ofa_sample(dict(d=0, e=0.2, w=0, r=64, ks=3))


# ------------------------------------------------------------------------------------ training
def test_resnet_phases_shrink_depth_then_expand_then_width():
    from ofa_nni.training import plan_step, progressive_shrinking, unlocked_choices

    arch = OFAResNetSpace(**TINY_RESNET_KWARGS).arch_space
    phases = progressive_shrinking(arch, epochs_factor=0.001)
    assert [p.name for p in phases] == ["full", "depth1", "depth2", "expand1", "expand2", "width1", "width2"]
    unlocked = [unlocked_choices(arch, phase) for phase in phases]
    assert unlocked[0] == {label: arch.choices(label)[-1:] for label in arch.labels} | {"resolution": (28, 32)}
    assert unlocked[1]["stage2.depth"] == (1, 2) and unlocked[1]["stem.depth"] == (2, 3)
    assert unlocked[1]["stage1.block1.expand"] == (0.5,) and unlocked[3]["stage1.block1.expand"] == (0.25, 0.5)
    assert unlocked[4]["stage1.width"] == (1,) and unlocked[5]["stem.width"] == (0.5, 1)
    assert unlocked[-1] == {label: arch.choices(label) for label in arch.labels}
    assert [p.keep_expand_ratios for p in phases] == [None, None, None, (0.5,), (0.25, 0.5), None, None]
    assert "width_mults" not in progressive_shrinking(OFAMobileNetV3Space().arch_space)[0].to_dict()
    rng = np.random.default_rng(0)
    for phase in phases:
        for sample in plan_step(arch, phase, rng).samples:
            assert arch.validate(sample) == sample


def test_progressive_shrinking_trains_the_resnet_space(tmp_path):
    from nni.nas.experiment import NasExperiment
    from test_training_strategies import _evaluator, _Recorder

    from strategies import ProgressiveShrinking

    torch.manual_seed(0)
    space = OFAResNetSpace(**{**TINY_RESNET_KWARGS, "num_classes": 4})
    recorder = _Recorder(space)
    strategy = ProgressiveShrinking(epochs_factor=0.001, validation_random_subnets=1, calibration_batches=1,
                                    checkpoint_dir=tmp_path / "ckpt")
    experiment = NasExperiment(space, _evaluator([recorder.callback]), strategy)
    experiment.config.experiment_working_directory = str(tmp_path / "nni")
    before = {k: v.clone() for k, v in space.state_dict().items()}
    experiment.run()
    assert [p.name for p in strategy.phases] == ["full", "depth1", "depth2", "expand1", "expand2", "width1", "width2"]
    # Middle channels re-ordered at the start of each expand phase, keeping the trained ratios.
    assert recorder.sorts == [(3, (0.5,)), (4, (0.25, 0.5))]
    assert all(activations == phase.subnets_per_step for (epoch, _, _, activations), phase in
               zip(recorder.rows, [strategy.phases[row[0]] for row in recorder.rows], strict=True))
    changed = [k for k, v in space.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("stages.1.") for k in changed) and any(k.startswith("stem.") for k in changed)
    final = load_supernet(tmp_path / "ckpt" / "last.pt")
    assert type(final) is OFAResNetSpace and final.arch_space == space.arch_space


# ------------------------------------------------------------------------------- latency table
def test_latency_table_sums_the_ops_of_each_subnet(tiny_resnet, tmp_path):
    from ofa_nni.latency import LatencyTable, build_latency_table
    from ofa_nni.latency.specs import resnet_op_specs

    arch = tiny_resnet.arch_space
    table = build_latency_table(arch, resolutions=(28,), warmup=0, repeats=1, rounds=1, num_threads=1,
                                show_progress=False)
    table.save(tmp_path / "lut.json")
    loaded = LatencyTable.load(tmp_path / "lut.json", arch_space=arch)
    rows = arch.random_indices(40, 0)
    predicted = loaded(rows)
    for row, value in zip(rows, predicted, strict=True):
        # The ops of this subnet, found one by one as its layers are (not by the table's gather).
        sample = arch.from_indices(row)
        blocks, stem, head = resnet_op_specs(arch, 28)
        w = {label: arch.width_mults.index(sample[label]) for label in arch.labels if label.endswith("width")}
        ops = [stem[(w["stem.mid_width"], w["stem.width"], arch.stem_depths.index(sample["stem.depth"]))],
               head[(w[arch.width_label(arch.num_stages - 1)],)]]
        previous = w["stem.width"]
        for block, (s, b) in enumerate(arch.blocks):
            if b < sample[arch.depth_label(s)]:
                expand = arch.expand_ratios.index(sample[arch.expand_label(s, b)])
                ops.append(blocks[(block, previous, w[arch.width_label(s)], expand)])
            previous = w[arch.width_label(s)]
        expected = sum(loaded.entries[op.key]["min_ms"] for op in ops)
        if sample["resolution"] == 28:
            assert value == pytest.approx(expected)
        else:  # 32 is interpolated by image area from the one measured resolution
            assert value == pytest.approx(expected * 32**2 / 28**2)
    assert loaded(arch.max_sample()) > loaded(arch.min_sample())


def test_info_describes_the_resnet_space(capsys):
    from ofa_nni.app.cli import main

    assert main(["info", "--space", "ofa-resnet50"]) == 0
    printed = capsys.readouterr().out
    space = OFAResNetSpace()
    # 2 stem depths x 3^6 widths x (3^2 + 3^3 + 3^4)^3 x (3^4 + 3^5 + 3^6) expand settings
    assert "4 stages of [4, 4, 6, 4] bottlenecks (18 in all), 30 labels" in printed
    assert f"subnets: {2 * 3**6 * 117**3 * 1053:.3g} x 25 resolutions" in printed
    assert f"{space.params(space.max_sample()) / 1e6:6.2f} M params" in printed
