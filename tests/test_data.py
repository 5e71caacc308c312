"""Data: the offline digits default (fixed split), users' .npz files and torchvision roots, and clear
errors for missing/malformed files and directories."""

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
    numpy_arrays,
    stratified_split,
    torchvision_arrays,
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
    with pytest.raises(ValueError, match=r"'imagenet' is not supported; allowed: \['digits', 'npz', 'imagefolder', "
                                         r"'mnist', 'fashionmnist', 'cifar10', 'cifar100', 'svhn'\]"):
        load_data("imagenet", resolution=32)
    with pytest.raises(ValueError, match="data.root is required for 'npz': the local .npz file"):
        load_data("npz", resolution=32)
    with pytest.raises(ValueError, match="data.root is required for 'imagefolder'"):
        load_data("imagefolder", resolution=32)
    with pytest.raises(ValueError, match="data.root is not used by the digits"):
        load_data("digits", root="/tmp", resolution=32)
    assert load_data("digits", resolution=16, calibration_images=10).name == "digits"


# ------------------------------------------------------------------------------ .npz and torchvision
def _images(rng: np.random.Generator, labels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """uint8 images whose mean brightness encodes the class (so a split can be checked per class)."""
    base = (labels * 20 + 30).astype(np.float64).reshape(-1, *([1] * len(shape)))
    return np.clip(base + rng.normal(0, 5, (len(labels), *shape)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("layout", ["grey NHW", "grey NHWC", "rgb NHWC float", "rgb NCHW"])
def test_npz_any_layout_and_size_becomes_3_channels_at_the_resolution(tmp_path, layout):
    rng = np.random.default_rng(0)
    y_train, y_test = np.repeat(np.arange(4), 10), np.arange(4).repeat(3)
    shape = {"grey NHW": (20, 12), "grey NHWC": (20, 12, 1), "rgb NHWC float": (20, 12, 3),
             "rgb NCHW": (3, 20, 12)}[layout]
    x_train, x_test = _images(rng, y_train, shape), _images(rng, y_test, shape)
    if "float" in layout:
        x_train, x_test = x_train / 255.0, x_test / 255.0
    np.savez_compressed(tmp_path / "d.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    data = load_data("npz", root=tmp_path / "d.npz", resolution=16, calibration_images=8)
    assert (data.name, data.num_classes, data.resolution) == ("npz", 4, 16)
    assert len(data.train) == 40 and len(data.val) == 12 and len(data.calibration) == 8
    image, label = data.val[0]
    assert image.shape == (3, 16, 16) and image.dtype == torch.float32 and label == 0
    stacked = torch.stack([data.calibration[i][0] for i in range(8)])
    assert abs(float(stacked.mean())) < 0.5  # normalised with the training split's statistics
    # Brightness still orders the classes after resizing and normalising (the pixels are the file's).
    means = [float(data.val[i][0].mean()) for i in range(0, 12, 3)]
    assert means == sorted(means)
    train_image, _ = data.train[0]
    assert train_image.shape == (3, 16, 16)


def test_the_first_calibration_batches_of_a_class_sorted_file_hold_every_class(tmp_path):
    """Training's per-epoch validation recalibrates BN on the first ``calibration_batches`` batches
    of the calibration subset. It used to keep the file's order: on a class-sorted .npz (Animal-MNIST
    as benchmarks/data.py writes it) the first 4 batches of 64 held 2 of the 10 classes."""
    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(10), 60)  # sorted by class
    np.savez(tmp_path / "d.npz", x_train=_images(rng, labels, (8, 8)), y_train=labels)
    data = load_data("npz", root=tmp_path / "d.npz", resolution=8, calibration_images=400)
    first_batches = {int(data.calibration[i][1]) for i in range(64)}
    assert first_batches == set(range(10))
    again = load_data("npz", root=tmp_path / "d.npz", resolution=8, calibration_images=400)
    assert [int(again.calibration[i][1]) for i in range(64)] == [int(data.calibration[i][1]) for i in range(64)]


def test_npz_without_a_test_split_holds_out_a_seeded_stratified_fifth(tmp_path):
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), 20)
    np.savez(tmp_path / "d.npz", x_train=_images(rng, labels, (8, 8)), y_train=labels)
    a = numpy_arrays(tmp_path / "d.npz", resolution=8, calibration_images=5, split_seed=3)
    b = numpy_arrays(tmp_path / "d.npz", resolution=8, calibration_images=5, split_seed=3)
    c = numpy_arrays(tmp_path / "d.npz", resolution=8, calibration_images=5, split_seed=4)
    assert len(a.train) == 48 and len(a.val) == 12
    assert [int(a.val[i][1]) for i in range(12)].count(2) == 4  # 20% of each class
    assert torch.equal(torch.stack([a.val[i][0] for i in range(12)]), torch.stack([b.val[i][0] for i in range(12)]))
    assert not torch.equal(torch.stack([a.val[i][0] for i in range(12)]),
                           torch.stack([c.val[i][0] for i in range(12)]))
    train, held = stratified_split(labels, 0.2, 3)
    assert len(np.intersect1d(train, held)) == 0 and len(train) + len(held) == 60


def test_npz_errors_name_the_file_the_key_and_the_layout(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(2), 5)
    good = {"x_train": _images(rng, labels, (8, 8)), "y_train": labels}
    cases = {
        "missing key": ({"x_train": good["x_train"]}, r"lacks \['y_train'\]"),
        "half a test split": ({**good, "x_test": good["x_train"]}, r"lacks \['y_test'\]"),
        "wrong image shape": ({**good, "x_train": np.zeros((10, 8), np.uint8)}, r"x_train has shape \(10, 8\)"),
        "labels per image": ({**good, "y_train": labels[:4]}, r"y_train has shape \(4,\), expected \(10,\)"),
        "negative labels": ({**good, "y_train": labels - 1}, r"y_train must hold integers 0..K-1"),
        "float labels": ({**good, "y_train": labels * 1.0}, r"y_train must hold integers 0..K-1, got dtype float64"),
        "floats beyond 1": ({**good, "x_train": good["x_train"] * 1.0}, r"holds floats outside \[0, 1\]"),
        "a class without images": ({**good, "y_train": labels * 2}, r"classes \[1\] have no training image"),
        "one class": ({**good, "y_train": labels * 0}, r"only one class"),
    }
    for name, (arrays, message) in cases.items():
        path = tmp_path / f"{name}.npz"
        np.savez(path, **arrays)
        with pytest.raises(ValueError, match=message) as error:
            numpy_arrays(path, resolution=8, calibration_images=4)
        assert str(path) in str(error.value) and "expected an .npz" in str(error.value), name
    (tmp_path / "text.npz").write_text("x_train,y_train\n")
    with pytest.raises(ValueError, match="is not an .npz archive"):
        numpy_arrays(tmp_path / "text.npz")
    with pytest.raises(FileNotFoundError, match="does not exist; expected an .npz"):
        numpy_arrays(tmp_path / "nowhere.npz")


def _write_idx(path, array: np.ndarray) -> None:
    """The IDX format MNIST ships in (big-endian magic: 0x0000 0x08 = uint8, then the dimensions)."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize("kind, folder", [("mnist", "MNIST"), ("fashionmnist", "FashionMNIST")])
def test_mnist_kinds_read_a_local_root_and_name_the_missing_files(tmp_path, kind, folder):
    with pytest.raises(FileNotFoundError, match=rf"{kind} directory .* does not exist; expected "
                                                rf"ROOT/{folder}/raw/train-images-idx3-ubyte, .*from https?://"):
        torchvision_arrays(kind, tmp_path / "nowhere")
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    y_train, y_test = np.repeat(np.arange(10), 3), np.arange(10)
    _write_idx(raw / "train-images-idx3-ubyte", _images(rng, y_train, (28, 28)))
    _write_idx(raw / "train-labels-idx1-ubyte", y_train)
    _write_idx(raw / "t10k-images-idx3-ubyte", _images(rng, y_test, (28, 28)))
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"lacks \['FashionMNIST/raw/t10k-labels-idx1-ubyte'\].*gunzip it"
                       .replace("FashionMNIST", folder)):
        torchvision_arrays(kind, tmp_path)
    _write_idx(raw / "t10k-labels-idx1-ubyte", y_test)
    data = load_data(kind, root=tmp_path, resolution=32, calibration_images=10)
    assert (data.name, data.num_classes, len(data.train), len(data.val)) == (kind, 10, 30, 10)
    assert data.val[3][0].shape == (3, 32, 32) and data.val[3][1] == 3


def test_svhn_reads_a_local_root(tmp_path):
    from scipy.io import savemat

    with pytest.raises(FileNotFoundError, match=r"lacks \['train_32x32.mat', 'test_32x32.mat'\]; expected "
                                                r"ROOT/train_32x32.mat, .*ufldl.stanford.edu"):
        torchvision_arrays("svhn", tmp_path)
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 2)
    images = _images(rng, labels, (32, 32, 3)).transpose(1, 2, 3, 0)  # SVHN's .mat: H x W x C x N
    # SVHN labels digit 0 as 10; torchvision maps it back to 0. md5 checks would refuse these
    # home-made files, so the check is the missing-file message above plus this format read.
    savemat(tmp_path / "train_32x32.mat", {"X": images, "y": np.where(labels == 0, 10, labels)[:, None]})
    savemat(tmp_path / "test_32x32.mat", {"X": images, "y": np.where(labels == 0, 10, labels)[:, None]})
    with pytest.raises(ValueError, match=r"svhn files in .* are corrupt"):
        torchvision_arrays("svhn", tmp_path)


def _benchmark_data_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "data.py"
    spec = importlib.util.spec_from_file_location("benchmark_data", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_data_reads_numpy_arrays_from_pickles_and_nothing_else():
    """benchmarks/data.py's unpickler (for the two pinned wheels' gzip pickles) rebuilds arrays and
    refuses any other global, so such a file cannot run code."""
    import gzip
    import pickle

    module = _benchmark_data_module()
    arrays = ((np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2])), np.zeros((2, 2), np.uint8))
    for protocol in (2, 4):
        loaded = module._load_arrays(gzip.compress(pickle.dumps(arrays, protocol=protocol)))
        np.testing.assert_array_equal(loaded[0][0], arrays[0][0])
        np.testing.assert_array_equal(loaded[1], arrays[1])
    with pytest.raises(pickle.UnpicklingError, match="refused global posix.system"):
        module._load_arrays(gzip.compress(pickle.dumps(__import__("os").system)))


def test_benchmark_data_writes_stratified_train_subsets_of_mnist_and_animal_mnist(tmp_path, monkeypatch, capsys):
    """``--mnist-train-subset`` and ``--animal-train-subset`` take a seeded stratified subset of the
    training split through one code path; the test (and MNIST's validation) split stay as they are."""
    module = _benchmark_data_module()
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), [40, 60, 50, 50, 50, 50, 50, 50, 50, 60])  # 510, class-sorted
    full = {"x_train": _images(rng, labels, (28, 28)), "y_train": labels,
            "x_test": _images(rng, labels[:30], (28, 28)), "y_test": labels[:30]}
    np.savez(tmp_path / "animal-mnist.npz", **full)
    np.savez(tmp_path / "mnist.npz", **full, x_val=full["x_test"][:7], y_val=full["y_test"][:7])
    # prepare() reuses the files present, so main() downloads nothing here.
    monkeypatch.setattr("sys.argv", ["data.py", "--cache", str(tmp_path), "--mnist-train-subset", "102",
                                     "--animal-train-subset", "102"])
    module.main()
    assert "mnist subset" in capsys.readouterr().out
    for name in ("mnist", "animal-mnist"):
        with np.load(tmp_path / f"{name}-102.npz") as subset:
            assert np.bincount(subset["y_train"]).tolist() == [8, 12, 10, 10, 10, 10, 10, 10, 10, 12]
            np.testing.assert_array_equal(subset["x_test"], full["x_test"])
            # every image of the subset is one of the training split's, in the file's order
            rows = [np.flatnonzero((full["x_train"] == image).all(axis=(1, 2)))[0] for image in subset["x_train"]]
            assert rows == sorted(rows) and np.array_equal(full["y_train"][rows], subset["y_train"])
            assert ("x_val" in subset.files) == (name == "mnist")
    with np.load(tmp_path / "mnist-102.npz") as mnist, np.load(tmp_path / "animal-mnist-102.npz") as animal:
        np.testing.assert_array_equal(mnist["x_train"], animal["x_train"])  # same seed, same rows
        assert mnist["y_val"].tolist() == full["y_test"][:7].tolist()
    with pytest.raises(SystemExit, match=r"--mnist-train-subset: 510 is not between 1 and 509"):
        module.train_subset(tmp_path / "mnist.npz", 510, "--mnist-train-subset")


def test_a_nan_and_a_path_of_the_wrong_kind_are_named(tmp_path):
    """A NaN pixel was reported as 'floats outside [0, 1] (min 5e-06, max 0.99997)'; a directory given
    as the .npz file (or a file as an image folder) as 'does not exist'."""
    from ofa_nni.errors import InvalidInputError

    images = np.random.default_rng(0).random((60, 16, 16))
    images[3, 2, 2] = np.nan
    path = tmp_path / "nan.npz"
    np.savez(path, x_train=images, y_train=np.arange(60) % 3)
    with pytest.raises(InvalidInputError,
                       match=r"x_train holds NaN \(1 value\(s\), the first at index \(3, 0, 2, 2\)\)"):
        load_data("npz", root=path, resolution=32)
    with pytest.raises(InvalidInputError, match=r"is a directory, not an \.npz file"):
        load_data("npz", root=tmp_path, resolution=32)
    with pytest.raises(InvalidInputError, match=r"image folder .* is a file, not a directory"):
        load_data("imagefolder", root=path, resolution=32)
    with pytest.raises(InvalidInputError, match=r"mnist directory .* is a file, not a directory"):
        load_data("mnist", root=path, resolution=32)


def test_an_mnist_root_one_folder_too_deep_is_pointed_up(tmp_path):
    """A --data-root naming ROOT/MNIST got only 'lacks [...]' (image folders and CIFAR said 'pass its parent')."""
    from ofa_nni.errors import MissingInputError

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (raw / name).write_bytes(b"")
    with pytest.raises(MissingInputError, match=f"is itself the MNIST folder: pass its parent '{tmp_path}'"):
        load_data("mnist", root=tmp_path / "MNIST", resolution=32)
