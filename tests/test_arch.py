"""ArchSpace: labels, validation, arch strings (property-based round trip), encodings."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ofa_nni.arch import DEFAULT_RESOLUTIONS, ArchSpace

SPACE = ArchSpace()


def samples(space: ArchSpace) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries({label: st.sampled_from(space.choices(label)) for label in space.labels})


def test_default_space_matches_the_paper():
    assert SPACE.num_stages == 5 and SPACE.max_depth == 4 and SPACE.num_blocks == 20
    assert SPACE.kernel_sizes == (3, 5, 7) and SPACE.expand_ratios == (3, 4, 6) and SPACE.depths == (2, 3, 4)
    assert DEFAULT_RESOLUTIONS == tuple(range(128, 225, 4)) and len(DEFAULT_RESOLUTIONS) == 25
    assert SPACE.stage_widths == (24, 40, 80, 112, 160)
    assert (SPACE.final_expand_width, SPACE.feature_mix_width) == (960, 1280)
    # 20 kernels + 20 expand ratios + 5 depths + resolution (DyNAS-T's 45 categoricals + resolution).
    assert len(SPACE.labels) == 46
    assert SPACE.labels[0] == "stage1.block1.kernel" and SPACE.labels[20] == "stage1.block1.expand"
    assert SPACE.labels[40] == "stage1.depth" and SPACE.labels[-1] == "resolution"
    # OFA's predictor encoding: 25 resolutions + 20 x 3 kernels + 20 x 3 expand ratios.
    assert SPACE.feature_dim == 145


def test_width_mult_rounds_to_multiples_of_eight():
    wide = ArchSpace(width_mult=1.2)
    assert wide.stage_widths == (32, 48, 96, 136, 192)
    assert all(w % 8 == 0 for w in wide.widths)


@settings(max_examples=300, deadline=None)
@given(samples(SPACE))
def test_arch_string_round_trip(sample):
    text = SPACE.format(sample)
    assert SPACE.parse(text) == sample
    assert SPACE.format(SPACE.parse(text)) == text


CUSTOM = ArchSpace(
    expand_ratios=(2.5, 4),
    kernel_sizes=(3, 5),
    depths=(1, 3),
    resolutions=(32, 48),
    base_widths=(8, 8, 16, 24, 32, 64),
    stage_strides=(2, 2),
    stage_activations=("relu", "hswish"),
    stage_se=(False, True),
)
"""A space unlike the default: non-integer expand ratios, two stages of one or three blocks."""


@settings(max_examples=100, deadline=None)
@given(samples(CUSTOM))
def test_arch_string_round_trip_custom_space(sample):
    space = CUSTOM
    assert space.parse(space.format(sample)) == sample


def test_arch_string_shows_depth_and_resolution():
    sample = SPACE.min_sample()
    sample["stage2.depth"] = 4
    text = SPACE.format(sample)
    groups = text.split("_")
    assert groups[0] == "r128"
    assert groups[1] == "k3e3-k3e3|k3e3-k3e3"
    assert groups[2] == "k3e3-k3e3-k3e3-k3e3"


@settings(max_examples=100, deadline=None)
@given(samples(SPACE))
def test_index_encoding_round_trip(sample):
    indices = SPACE.to_indices(sample)
    assert indices.shape == (46,)
    assert SPACE.from_indices(indices) == sample


@settings(max_examples=100, deadline=None)
@given(samples(SPACE))
def test_features_are_ofa_one_hot(sample):
    features = SPACE.to_features(sample)
    assert features.shape == (145,)
    assert features[:25].sum() == 1 and features[SPACE.resolutions.index(sample["resolution"])] == 1
    active = [(s, b) for s in range(5) for b in range(4) if b < sample[SPACE.depth_label(s)]]
    kernels, expands = features[25:85].reshape(20, 3), features[85:].reshape(20, 3)
    for s in range(5):
        for b in range(4):
            block = s * 4 + b
            if (s, b) in active:
                assert kernels[block].sum() == 1 and expands[block].sum() == 1
                assert kernels[block, SPACE.kernel_sizes.index(sample[SPACE.kernel_label(s, b)])] == 1
                assert expands[block, SPACE.expand_ratios.index(sample[SPACE.expand_label(s, b)])] == 1
            else:
                assert kernels[block].sum() == 0 and expands[block].sum() == 0


def test_features_batched_equals_one_by_one():
    indices = SPACE.random_indices(64, 3)
    batched = SPACE.to_features(indices)
    one_by_one = np.stack([SPACE.to_features(SPACE.from_indices(row)) for row in indices])
    np.testing.assert_array_equal(batched, one_by_one)


def test_inactive_blocks_do_not_change_features():
    a = SPACE.min_sample()
    b = dict(a, **{"stage1.block4.kernel": 7, "stage1.block4.expand": 6})  # stage1 depth is 2
    np.testing.assert_array_equal(SPACE.to_features(a), SPACE.to_features(b))


def test_random_samples_are_uniform_and_seeded():
    indices = SPACE.random_indices(30000, 0)
    np.testing.assert_array_equal(indices, SPACE.random_indices(30000, 0))
    for column, n in zip(indices.T, SPACE.cardinalities, strict=True):
        counts = np.bincount(column, minlength=n)
        assert counts.min() > 0.9 * len(column) / n  # every choice ~ equally likely
    assert SPACE.random_sample(1) == SPACE.random_sample(1)


def test_min_and_max_samples():
    smallest, largest = SPACE.min_sample(), SPACE.max_sample()
    assert smallest["resolution"] == 128 and largest["resolution"] == 224
    assert all(smallest[SPACE.depth_label(s)] == 2 for s in range(5))
    assert all(largest[SPACE.kernel_label(s, b)] == 7 for s in range(5) for b in range(4))


# --------------------------------------------------------------- invalid input
def test_unknown_label_is_named():
    sample = dict(SPACE.max_sample(), **{"stage9.depth": 2})
    with pytest.raises(ValueError, match=r"unknown label.*stage9\.depth"):
        SPACE.validate(sample)


def test_missing_label_is_named():
    sample = SPACE.max_sample()
    del sample["stage3.block2.expand"]
    with pytest.raises(ValueError, match=r"missing 1 label.*stage3\.block2\.expand"):
        SPACE.validate(sample)


def test_value_outside_choices_names_label_and_allowed_values():
    sample = dict(SPACE.max_sample(), **{"stage2.block1.kernel": 9})
    with pytest.raises(ValueError, match=r"stage2\.block1\.kernel: 9 is not allowed; allowed values: \[3, 5, 7\]"):
        SPACE.validate(sample)
    with pytest.raises(ValueError, match=r"resolution: 130 is not allowed"):
        SPACE.validate(dict(SPACE.max_sample(), resolution=130))


@pytest.mark.parametrize("value", ["3", None, True, [3], 3.5])
def test_wrong_type_names_label(value):
    sample = dict(SPACE.max_sample(), **{"stage1.block1.kernel": value})
    with pytest.raises(ValueError, match=r"stage1\.block1\.kernel"):
        SPACE.validate(sample)


def test_numpy_and_float_values_are_normalised():
    sample = dict(SPACE.max_sample(), **{"stage1.block1.kernel": np.int64(5), "stage1.block1.expand": 4.0})
    validated = SPACE.validate(sample)
    assert validated["stage1.block1.kernel"] == 5 and type(validated["stage1.block1.kernel"]) is int
    assert type(validated["stage1.block1.expand"]) is int


def test_not_a_dict():
    with pytest.raises(ValueError, match="must be a dict"):
        SPACE.validate([1, 2, 3])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "expected 6 '_'-separated groups"),
        ("r160", "expected 6"),
        ("x160_" + "_".join(["k3e3-k3e3-k3e3-k3e3"] * 5), "first group must be 'r<resolution>'"),
        ("r160_" + "_".join(["k3e3-k3e3-k3e3"] * 5), "stage 1 must list 4 blocks"),
        ("r160_k3e3|k3e3|k3e3-k3e3_" + "_".join(["k3e3-k3e3-k3e3-k3e3"] * 4), "more than one '|'"),
        (
            "r160_k3x3-k3e3-k3e3-k3e3_" + "_".join(["k3e3-k3e3-k3e3-k3e3"] * 4),
            "'k3x3' is not 'k<kernel>e<expand>'",
        ),
        ("r160_k3e3-k3e3-k3e3-k3e3|_" + "_".join(["k3e3-k3e3-k3e3-k3e3"] * 4), "no blocks after it"),
        ("r160_k9e3-k3e3-k3e3-k3e3_" + "_".join(["k3e3-k3e3-k3e3-k3e3"] * 4), r"stage1\.block1\.kernel: 9"),
        (
            "r160_k3e3|k3e3-k3e3-k3e3_" + "_".join(["k3e3-k3e3-k3e3-k3e3"] * 4),
            r"stage1\.depth: 1 is not allowed",
        ),
        ("r161_" + "_".join(["k3e3-k3e3-k3e3-k3e3"] * 5), "resolution: 161 is not allowed"),
    ],
)
def test_unparsable_arch_strings(text, message):
    with pytest.raises(ValueError, match=message):
        SPACE.parse(text)


def test_parse_rejects_non_strings():
    with pytest.raises(ValueError, match="must be a str"):
        SPACE.parse(123)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(kernel_sizes=(3, 4)), "must be odd"),
        (dict(kernel_sizes=()), "must not be empty"),
        (dict(depths=(2, 2)), "duplicates"),
        (dict(stage_strides=(2, 2)), "base_widths needs 6 values"),
        (dict(stage_activations=("relu",) * 4 + ("gelu",)), "unknown activation 'gelu'"),
        (dict(width_mult=0), "width_mult must be positive"),
        (dict(num_classes=0), "num_classes must be a positive integer"),
        (dict(resolutions=("a",)), "resolutions must hold numbers"),
    ],
)
def test_invalid_space_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ArchSpace(**kwargs)


def test_signature_round_trip():
    space = ArchSpace(width_mult=1.2, num_classes=10)
    assert ArchSpace.from_signature(space.signature()) == space
    assert space.signature() != ArchSpace().signature()
