"""The OFA-ResNet50 arch description: labels, choices, samples, index rows, arch strings, features
(against the reference's ``ResNetArchEncoder``), the search engine on it, and bad values."""

from __future__ import annotations

import numpy as np
import pytest

from ofa_nni.arch import ArchSpace, arch_space_for, arch_space_from_signature, space_arguments
from ofa_nni.errors import InvalidInputError
from ofa_nni.resnet_arch import ResNetArchSpace

TINY = dict(depths=(0, 1), expand_ratios=(0.25, 0.5), width_mults=(0.5, 1.0), resolutions=(28, 32),
            base_depths=(1, 1), base_widths=(16, 32, 64), stage_strides=(1, 2), num_classes=10)


def test_default_space_is_the_released_resnet50():
    arch = ResNetArchSpace()
    assert arch.num_blocks == 18 and [arch.stage_num_blocks(s) for s in range(4)] == [4, 4, 6, 4]
    assert arch.stem_widths() == (40, 48, 64) and arch.stem_mid_widths() == (24, 24, 32)
    assert arch.stage_widths(3) == (1328, 1640, 2048)
    assert arch.choices("stage3.depth") == (4, 5, 6) and arch.choices("stem.depth") == (2, 3)
    assert arch.choices("stage2.block4.expand") == (0.2, 0.25, 0.35)
    assert arch.choices("stage1.width") == (0.65, 0.8, 1)
    assert len(arch.labels) == 18 + 5 + 6 + 1 and arch.labels[-1] == "resolution"
    # the reference encoder's 82 inputs at its 8 resolutions; ours at the 25 of the space
    assert arch.feature_dim == 25 + 2 + 6 * 3 + 18 * 3
    assert arch_space_for("ofa-resnet50") == arch
    assert "base_depths" in space_arguments("ofa-resnet50")


def test_arch_strings_round_trip():
    arch = ResNetArchSpace()
    rng = np.random.default_rng(0)
    for sample in [arch.min_sample(), arch.max_sample()] + [arch.random_sample(rng) for _ in range(50)]:
        assert arch.parse(arch.format(sample)) == sample
    assert arch.format(arch.min_sample()) == (
        "r128_d2w0.65w0.65_w0.65:e0.2-e0.2|e0.2-e0.2_w0.65:e0.2-e0.2|e0.2-e0.2_"
        "w0.65:e0.2-e0.2-e0.2-e0.2|e0.2-e0.2_w0.65:e0.2-e0.2|e0.2-e0.2")
    assert arch.format(arch.max_sample()).startswith("r224_d3w1w1_w1:e0.35-e0.35-e0.35-e0.35_")


def test_index_rows_canonical_rows_and_masks():
    arch = ResNetArchSpace(**TINY)
    rows = arch.random_indices(200, 0)
    assert np.array_equal(arch.check_indices(rows), rows)
    for row in rows[:20]:
        assert np.array_equal(arch.to_indices(arch.from_indices(row)), row)
    canonical = arch.canonical_indices(rows)
    # canonical rows differ only in genes outside the mask; the features see only the mask
    assert np.array_equal(arch.to_features(canonical), arch.to_features(rows))
    inactive = ~arch.active_gene_mask(rows)
    assert np.all(canonical[inactive] == 0) and inactive[:, arch.num_blocks:].sum() == 0
    smallest = arch.to_indices(arch.min_sample())[None]
    assert arch.active_block_mask(smallest).tolist() == [[True, False, True, False]]
    assert arch.mutation_units.tolist() == list(range(len(arch.labels)))


def test_features_equal_the_reference_resnet_encoder():
    encoder_module = pytest.importorskip("ofa.nas.accuracy_predictor.arch_encoder")
    arch = ResNetArchSpace(resolutions=(128, 160, 224))
    encoder = encoder_module.ResNetArchEncoder(image_size_list=[128, 160, 224])
    assert encoder.n_dim == arch.feature_dim
    rng = np.random.default_rng(1)
    for _ in range(100):
        sample = arch.random_sample(rng)
        reference = encoder.arch2feature(arch_settings(arch, sample))
        assert np.array_equal(arch.to_features(sample), reference.astype(np.float32))


def arch_settings(arch: ResNetArchSpace, sample) -> dict:
    """The reference's arch dict (``d`` extra blocks with the stem first, ``e`` per block slot,
    ``w`` width indices, ``image_size``) of ``sample``."""
    stem = max(arch.depths) if sample["stem.depth"] == 3 else min(arch.depths)
    widths = [sample["stem.mid_width"], sample["stem.width"]] + [sample[arch.width_label(s)] for s in range(4)]
    return {
        "d": [stem] + [sample[arch.depth_label(s)] - arch.base_depths[s] for s in range(4)],
        "e": [sample[arch.expand_label(s, b)] for s, b in arch.blocks],
        "w": [arch.width_mults.index(w) for w in widths],
        "image_size": sample["resolution"],
    }


def test_signature_round_trip_and_other_spaces_unchanged():
    arch = ResNetArchSpace(**TINY)
    signature = arch.signature()
    assert signature["layout"] == "resnet"
    assert arch_space_from_signature(signature) == arch
    assert arch_space_from_signature(ArchSpace().signature()) == ArchSpace()
    assert "layout" not in ArchSpace().signature()


def test_search_engine_runs_on_the_resnet_space():
    from ofa_nni.search import EvolutionSearch

    arch = ResNetArchSpace(**TINY)
    weights = np.random.default_rng(0).random(arch.feature_dim)

    def accuracy(rows):
        return arch.to_features(rows) @ weights

    def size(rows):
        return arch.to_features(rows)[:, -arch.num_blocks * 2:].sum(axis=1)

    search = EvolutionSearch(arch_space=arch, costs={"size": size}, targets={"size": 3.0},
                             population_size=20, generations=5, seed=0)
    result = search.run(accuracy)[0]
    assert size(result.indices[None])[0] <= 3.0
    assert arch.parse(result.arch) == result.sample


@pytest.mark.parametrize(("change", "message"), [
    ({"stage1.width": 0.7}, r"stage1\.width: 0\.7 is not allowed; allowed values: \[0\.5, 1\]"),
    ({"stage2.depth": 3}, r"stage2\.depth: 3 is not allowed; allowed values: \[1, 2\]"),
    ({"stem.depth": 1}, r"stem\.depth: 1 is not allowed; allowed values: \[2, 3\]"),
    ({"stage1.block1.expand": "x"}, r"stage1\.block1\.expand: expected a number"),
    ({"stage1.block1.kernel": 3}, r"unknown label.*'stem\.width'"),
])
def test_bad_values_name_label_and_allowed_values(change, message):
    arch = ResNetArchSpace(**TINY)
    with pytest.raises(InvalidInputError, match=message):
        arch.validate({**arch.max_sample(), **change})


@pytest.mark.parametrize(("text", "message"), [
    ("r32_d3w1w1_w1:e0.5-e0.5", "expected 4 '_'-separated groups"),
    ("r32_d3w1_w1:e0.5-e0.5_w1:e0.5-e0.5", "stem group must be"),
    ("r32_d3w1w1_w1:e0.5-e0.5-e0.5_w1:e0.5-e0.5", "stage 1 must list 2 blocks"),
    ("r32_d3w1w1_e0.5-e0.5_w1:e0.5-e0.5", "stage 1 must be 'w<width>:e<expand>-...'"),
    ("r32_d3w1w1_w1:e0.5-k3_w1:e0.5-e0.5", "'k3' is not 'e<expand>'"),
    ("r30_d3w1w1_w1:e0.5-e0.5_w1:e0.5-e0.5", r"resolution: 30 is not allowed; allowed values: \[28, 32\]"),
])
def test_bad_arch_strings(text, message):
    with pytest.raises(InvalidInputError, match=message):
        ResNetArchSpace(**TINY).parse(text)


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(base_widths=(64, 256)), "base_widths needs 5 values"),
    (dict(depths=(-1, 0)), "depths must hold whole numbers >= 0"),
    (dict(width_mults=(0.5, 0.5)), "width_mults has duplicates"),
    (dict(stage_strides=(1, 2, 3, 2)), "stage_strides must be 1 or 2"),
    (dict(expand_ratios=()), "expand_ratios must not be empty"),
])
def test_bad_space_arguments(kwargs, message):
    with pytest.raises(InvalidInputError, match=message):
        ResNetArchSpace(**kwargs)
