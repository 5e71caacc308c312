"""Data: the offline digits default (fixed split) and clear errors for missing/malformed directories."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ofa_nni.data import (
    DIGITS_HELD_OUT_FRACTION,
    cifar,
    digits,
    digits_split,
    digits_split_digest,
    image_folder,
    load_data,
)


def test_digits_split_is_fixed_disjoint_complete_and_stratified():
    from sklearn.datasets import load_digits

    labels = load_digits().target
    train, held = digits_split()
    again_train, again_held = digits_split()
    np.testing.assert_array_equal(train, again_train)
    np.testing.assert_array_equal(held, again_held)
    assert not set(train.tolist()) & set(held.tolist())
    assert sorted(train.tolist() + held.tolist()) == list(range(len(labels)))
    for digit in range(10):
        members = int((labels == digit).sum())
        assert int((labels[held] == digit).sum()) == round(members * DIGITS_HELD_OUT_FRACTION)
    # The held-out images are pinned: a change of split (numpy stream, scikit-learn data) shows here.
    assert digits_split_digest() == "530b3ec93bdadffc"
    assert len(held) == 359


def test_digits_images_labels_and_augmentation():
    data = digits(resolution=24, calibration_images=100)
    assert data.num_classes == 10 and data.resolution == 24
    image, label = data.val[0]
    assert image.shape == (3, 24, 24) and 0 <= label < 10
    assert torch.equal(data.val[0][0], data.val[0][0])  # held-out: deterministic
    torch.manual_seed(0)
    first = data.train[0][0]
    torch.manual_seed(1)
    second = data.train[0][0]
    assert first.shape == (3, 24, 24) and not torch.equal(first, second)  # training: augmented
    assert len(data.calibration) == 100
    stacked = torch.stack([data.calibration[i][0] for i in range(len(data.calibration))])
    assert abs(float(stacked.mean())) < 0.2 and 0.7 < float(stacked.std()) < 1.3  # normalised
    with pytest.raises(ValueError, match="resolution must be an int >= 8"):
        digits(resolution=4)


def _write_images(directory, count=2, size=12):
    from PIL import Image

    directory.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        pixels = (np.random.default_rng(index).random((size, size, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(directory / f"{index}.png")


def test_image_folder_reads_a_valid_layout(tmp_path):
    for split in ("train", "val"):
        for name in ("cat", "dog"):
            _write_images(tmp_path / split / name)
    data = image_folder(tmp_path, resolution=16, calibration_images=3)
    assert data.num_classes == 2 and len(data.train) == 4 and len(data.val) == 4 and len(data.calibration) == 3
    assert data.train[0][0].shape == (3, 16, 16) and data.val[3][0].shape == (3, 16, 16)


def test_image_folder_errors_say_what_layout_is_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; expected ROOT/train/<class>"):
        image_folder(tmp_path / "nowhere")
    _write_images(tmp_path / "train" / "cat")
    with pytest.raises(FileNotFoundError, match="val.* is missing; expected ROOT/train/<class>"):
        image_folder(tmp_path)
    (tmp_path / "val").mkdir()
    with pytest.raises(ValueError, match="has no class folders"):
        image_folder(tmp_path)
    _write_images(tmp_path / "val" / "dog")
    with pytest.raises(ValueError, match=r"differ \(only in train: \['cat'\], only in val: \['dog'\]\)"):
        image_folder(tmp_path)
    (tmp_path / "val" / "cat").mkdir()
    with pytest.raises(ValueError, match="expected ROOT/train"):
        image_folder(tmp_path)  # 'cat' in val holds no image


def test_cifar_errors_say_what_layout_is_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; expected ROOT/cifar-10-batches-py/"):
        cifar(tmp_path / "nowhere")
    (tmp_path / "cifar-10-batches-py").mkdir()
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match=r"lacks \['data_batch_2'.*expected ROOT/cifar-10-batches-py/"):
        cifar(tmp_path)
    with pytest.raises(FileNotFoundError, match="cifar-100-python"):
        cifar(tmp_path, num_classes=100)
    with pytest.raises(ValueError, match="10 or 100 classes"):
        cifar(tmp_path, num_classes=20)


def test_cifar_corrupt_files_are_refused(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"]:
        (folder / name).write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="corrupt"):
        cifar(tmp_path)


def test_load_data_arguments():
    with pytest.raises(ValueError, match=r"'mnist' is not supported; allowed: \['digits', 'imagefolder'"):
        load_data("mnist", resolution=32)
    with pytest.raises(ValueError, match="data.root is required for 'imagefolder'"):
        load_data("imagefolder", resolution=32)
    with pytest.raises(ValueError, match="data.root is not used by the digits"):
        load_data("digits", root="/tmp", resolution=32)
    assert load_data("digits", resolution=16, calibration_images=10).name == "digits"
