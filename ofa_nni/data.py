"""Training data for the supernet: NumPy files, local image folders, torchvision's MNIST,
FashionMNIST, CIFAR-10/100 and SVHN, and an offline default (digits).

Nothing is downloaded: every data set is read from a local file or directory, and a missing or
malformed one raises an error that says which files are expected and where to get them. The
default, :func:`digits`, is real data shipped inside scikit-learn (1,797 8x8 grey-scale
handwritten digits, 10 classes), upscaled to the space's largest resolution, with a fixed
held-out split.

Any image size and channel count: grey-scale images are repeated to 3 channels, and every image
is resized (bilinear, antialiased) to the space's largest resolution; smaller resolutions are made
from that per training step (below). The layout of ``.npz`` files is :func:`numpy_arrays`'s
docstring (also ``docs/data.md``).

Elastic resolution (OFA, Sec. 3.2): every loader yields images at the space's *largest*
resolution; the training step draws one resolution per step from the space's choices and resizes
the batch once (bilinear, antialiased), and every subnet of that step (and the teacher) sees the
same resized batch. OFA's loader instead crops each batch directly at a size drawn per batch; both
give one random resolution per step, ours keeps the data pipeline independent of the schedule.

Augmentation follows OFA's ImageNet pipeline (random resized crop, horizontal flip, colour
jitter of brightness 32/255 and saturation 0.5); digits get a milder crop and no flip (a mirrored
digit is another symbol).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from ofa_nni.errors import InvalidInputError, MissingInputError

__all__ = [
    "ImageData",
    "DATA_KINDS",
    "digits",
    "digits_split",
    "stratified_split",
    "digits_split_digest",
    "image_folder",
    "cifar",
    "numpy_arrays",
    "torchvision_arrays",
    "load_data",
    "calibration_loader",
    "check_batch_size",
    "DIGITS_HELD_OUT_FRACTION",
]

DATA_KINDS = ("digits", "npz", "imagefolder", "mnist", "fashionmnist", "cifar10", "cifar100", "svhn")
"""Data set kinds :func:`load_data` understands."""

DIGITS_HELD_OUT_FRACTION = 0.2
"""Fraction of every digit class held out (fixed split, seed :data:`_DIGITS_SPLIT_SEED`)."""

_DIGITS_SPLIT_SEED = 20200426  # the OFA paper's ICLR camera-ready date; any fixed value works
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_IMAGE_FOLDER_LAYOUT = (
    "expected ROOT/train/<class>/<image> and ROOT/val/<class>/<image> "
    "(the same class folders in both; jpg, png, ... as torchvision's ImageFolder reads)"
)
_CIFAR_LAYOUT = {
    "cifar10": "expected ROOT/cifar-10-batches-py/ with data_batch_1..data_batch_5, test_batch and "
    "batches.meta (the python version from https://www.cs.toronto.edu/~kriz/cifar.html, unpacked)",
    "cifar100": "expected ROOT/cifar-100-python/ with train, test and meta (the python version from "
    "https://www.cs.toronto.edu/~kriz/cifar.html, unpacked)",
}


@dataclasses.dataclass(frozen=True)
class ImageData:
    """A classification data set ready for supernet training.

    Attributes:
        name: One of :data:`DATA_KINDS`.
        train: Augmented training images at ``resolution`` (``(image, label)`` items).
        val: Held-out images at ``resolution``, deterministic transform.
        calibration: Training images with the deterministic transform, for BN recalibration
            (OFA recalibrates on a subset of the training set, never on held-out data).
        num_classes: Number of classes.
        resolution: Side of the square images every item has (the space's largest resolution).
        fingerprint: What the images are (16 hex digits of a SHA-256): of the pixels and labels for
            the array kinds, of the held-out indices for digits, of every file's path, size and
            modification time for the kinds read from files one by one. Results kept for reuse
            (an accuracy data set) record it, so that data replaced under the same path is noticed.
    """

    name: str
    train: Dataset
    val: Dataset
    calibration: Dataset
    num_classes: int
    resolution: int
    fingerprint: str = ""


def _digest(parts: Iterable[bytes | memoryview]) -> str:
    """16 hex digits of a SHA-256 of ``parts`` (an array's ``.data`` is hashed in place, not copied)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(memoryview(part).nbytes.to_bytes(8, "little"))  # so that no two part lists hash alike
        digest.update(part)
    return digest.hexdigest()[:16]


def _files_fingerprint(root: Path, paths: Iterable[str]) -> str:
    """Of every file's path (relative to ``root``), size and modification time: reading every image
    again would cost as much as an epoch."""
    def stamp(path: str) -> bytes:
        status = os.stat(path)
        return f"{os.path.relpath(path, root)}\0{status.st_size}\0{status.st_mtime_ns}".encode()
    return _digest(stamp(path) for path in sorted(paths))


# ------------------------------------------------------------------------------ digits
class _TensorImages(Dataset):
    """Images held in memory as one ``(N, 3, R, R)`` tensor, with an optional per-item transform."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Callable | None = None) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])


def digits_split() -> tuple[np.ndarray, np.ndarray]:
    """The fixed split of scikit-learn's digits: ``(train_indices, held_out_indices)``, sorted.

    Stratified: :data:`DIGITS_HELD_OUT_FRACTION` of every class is held out, chosen by a
    ``numpy.random.default_rng`` with a fixed seed (PCG64, whose stream numpy keeps stable).
    """
    from sklearn.datasets import load_digits

    return stratified_split(load_digits().target, DIGITS_HELD_OUT_FRACTION, _DIGITS_SPLIT_SEED)


def stratified_split(labels: np.ndarray, held_out_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train_indices, held_out_indices)``, sorted: ``held_out_fraction`` of every class (rounded),
    chosen by ``numpy.random.default_rng(seed)`` class by class in label order."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    held_out: list[int] = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = int(round(len(members) * held_out_fraction))
        held_out.extend(rng.permutation(members)[:count].tolist())
    held = np.sort(np.asarray(held_out, dtype=np.int64))
    train = np.setdiff1d(np.arange(len(labels), dtype=np.int64), held)
    return train, held


def digits_split_digest() -> str:
    """SHA-256 (first 16 hex digits) of the held-out indices: reported with results so that two
    machines can check they evaluated on the same images."""
    _, held = digits_split()
    return hashlib.sha256(held.astype("<i8").tobytes()).hexdigest()[:16]


def digits(*, resolution: int = 32, calibration_images: int = 500) -> ImageData:
    """scikit-learn's digits (real handwritten digits, offline), upscaled to ``resolution``.

    8x8 grey levels 0..16 are scaled to [0, 1], repeated to 3 channels, resized to
    ``resolution`` (bilinear) and normalised with the training split's mean and standard
    deviation. Training augmentation: random resized crop (scale 0.6-1, aspect 3/4-4/3), no flip.

    Args:
        resolution: Side of the images (the space's largest resolution).
        calibration_images: Size of the fixed training subset used for BN recalibration.
    """
    from sklearn.datasets import load_digits
    from torchvision.transforms import v2

    _check_resolution(resolution)
    bunch = load_digits()
    pixels = torch.as_tensor(bunch.images, dtype=torch.float32).div_(16.0).unsqueeze(1)  # (N, 1, 8, 8)
    images = torch.nn.functional.interpolate(pixels, size=(resolution, resolution), mode="bilinear",
                                             align_corners=False).repeat(1, 3, 1, 1)
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    train_idx, held_idx = (torch.as_tensor(i) for i in digits_split())
    mean, std = images[train_idx].mean(), images[train_idx].std()
    images = (images - mean) / std
    augment = v2.RandomResizedCrop(resolution, scale=(0.6, 1.0), ratio=(3 / 4, 4 / 3), antialias=True)
    train_images, train_labels = images[train_idx].contiguous(), labels[train_idx].contiguous()
    calibration = _fixed_subset(_TensorImages(train_images, train_labels), calibration_images)
    return ImageData(
        name="digits",
        train=_TensorImages(train_images, train_labels, augment),
        val=_TensorImages(images[held_idx].contiguous(), labels[held_idx].contiguous()),
        calibration=calibration,
        num_classes=10,
        resolution=resolution,
        fingerprint=digits_split_digest(),
    )


# ------------------------------------------------------------------------ image folder
def _pil_transforms(resolution: int, crop_scale: tuple[float, float]) -> tuple[Callable, Callable]:
    from torchvision import transforms

    normalize = transforms.Normalize(_IMAGENET_MEAN, _IMAGENET_STD)
    train = transforms.Compose([
        transforms.RandomResizedCrop(resolution, scale=crop_scale),
        transforms.RandomHorizontalFlip(),
        transforms.ColorJitter(brightness=32.0 / 255.0, saturation=0.5),
        transforms.ToTensor(),
        normalize,
    ])
    evaluation = transforms.Compose([
        transforms.Resize(int(math.ceil(resolution / 0.875))),  # OFA / timm: crop 87.5 % of the centre
        transforms.CenterCrop(resolution),
        transforms.ToTensor(),
        normalize,
    ])
    return train, evaluation


def _misplaced_hint(root: Path) -> str:
    """Why an image folder root lacks ``train/``: a split or class folder given instead of ROOT."""
    if root.name in ("train", "val") and (root.parent / "train").is_dir() and (root.parent / "val").is_dir():
        return f"; {str(root)!r} is itself a split folder: pass its parent {str(root.parent)!r}"
    folders = _class_folders(root)
    if folders:
        return f"; {str(root)!r} holds {folders[:3]} but no train/ and val/: put the class folders under both"
    return ""


def _class_folders(directory: Path) -> list[str]:
    return sorted(entry.name for entry in directory.iterdir() if entry.is_dir() and not entry.name.startswith("."))


def _read_image(path: str) -> object:
    """torchvision's PIL loader, with one clear error naming a file PIL cannot decode (a corrupt
    or truncated image, or another file with an image extension) instead of PIL's traceback."""
    from PIL import Image, UnidentifiedImageError

    try:
        with open(path, "rb") as file:
            return Image.open(file).convert("RGB")
    except UnidentifiedImageError:
        reason = "PIL does not recognise its format"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        reason = f"{type(error).__name__}: {error}"
    raise InvalidInputError(f"image folder file {path!r} is not a readable image ({reason}); remove or replace it")


def image_folder(root: str | Path, *, resolution: int = 224, calibration_images: int = 2000) -> ImageData:
    """An ImageNet-style directory: ``root/train/<class>/*`` and ``root/val/<class>/*``.

    Raises:
        FileNotFoundError: ``root``, ``train`` or ``val`` is missing (the message shows the layout).
        ValueError: no class folders, class folders differ between ``train`` and ``val``, or a class
            folder holds no image torchvision can read.
    """
    from torchvision.datasets import ImageFolder

    _check_resolution(resolution)
    root = Path(root).expanduser()
    if root.exists() and not root.is_dir():
        raise InvalidInputError(f"image folder {str(root)!r} is a file, not a directory; {_IMAGE_FOLDER_LAYOUT}")
    if not root.is_dir():
        raise MissingInputError(f"image folder {str(root)!r} does not exist; {_IMAGE_FOLDER_LAYOUT}")
    splits = {}
    for split in ("train", "val"):
        directory = root / split
        if not directory.is_dir():
            raise MissingInputError(f"{str(directory)!r} is missing; {_IMAGE_FOLDER_LAYOUT}{_misplaced_hint(root)}")
        classes = _class_folders(directory)
        if not classes:
            raise InvalidInputError(f"{str(directory)!r} has no class folders; {_IMAGE_FOLDER_LAYOUT}")
        splits[split] = classes
    if splits["train"] != splits["val"]:
        only_train = sorted(set(splits["train"]) - set(splits["val"]))
        only_val = sorted(set(splits["val"]) - set(splits["train"]))
        raise InvalidInputError(
            f"class folders of {str(root / 'train')!r} and {str(root / 'val')!r} differ "
            f"(only in train: {only_train[:5]}, only in val: {only_val[:5]}); {_IMAGE_FOLDER_LAYOUT}"
        )
    train_transform, eval_transform = _pil_transforms(resolution, (0.08, 1.0))
    try:
        train = ImageFolder(str(root / "train"), transform=train_transform, loader=_read_image)
        val = ImageFolder(str(root / "val"), transform=eval_transform, loader=_read_image)
        plain_train = ImageFolder(str(root / "train"), transform=eval_transform, loader=_read_image)
    except FileNotFoundError as error:  # a class folder without a readable image
        raise InvalidInputError(f"image folder {str(root)!r}: {error}; {_IMAGE_FOLDER_LAYOUT}") from None
    return ImageData(
        name="imagefolder",
        train=train,
        val=val,
        calibration=_fixed_subset(plain_train, calibration_images),
        num_classes=len(splits["train"]),
        resolution=resolution,
        fingerprint=_files_fingerprint(root, [path for split in (train, val) for path, _ in split.samples]),
    )


# ------------------------------------------------------------------------------- cifar
def cifar(root: str | Path, *, num_classes: int = 10, resolution: int = 32,
          calibration_images: int = 2000) -> ImageData:
    """CIFAR-10 or CIFAR-100 (python version) from ``root``, never downloaded.

    Images are upscaled to ``resolution`` by the random resized crop (scale 0.25-1) in training
    and by a resize at evaluation.

    Raises:
        FileNotFoundError: the directory or one of its batch files is missing (the message shows
            the expected layout).
        ValueError: ``num_classes`` is not 10 or 100, or a batch file is corrupt.
    """
    from torchvision import datasets, transforms

    _check_resolution(resolution)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes not in (10, 100):
        raise InvalidInputError(f"CIFAR has 10 or 100 classes (an int), got num_classes={num_classes!r}")
    kind = f"cifar{num_classes}"
    root = Path(root).expanduser()
    folder, files = (("cifar-10-batches-py", [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"])
                     if num_classes == 10 else ("cifar-100-python", ["train", "test", "meta"]))
    if root.exists() and not root.is_dir():
        raise InvalidInputError(f"CIFAR directory {str(root)!r} is a file, not a directory; {_CIFAR_LAYOUT[kind]}")
    if not root.is_dir():
        raise MissingInputError(f"CIFAR directory {str(root)!r} does not exist; {_CIFAR_LAYOUT[kind]}")
    missing = [name for name in files if not (root / folder / name).is_file()]
    if missing:
        hint = (f"; {str(root)!r} is itself that folder: pass its parent {str(root.parent)!r}"
                if all((root / name).is_file() for name in files) else "")
        raise MissingInputError(f"{str(root / folder)!r} lacks {missing}; {_CIFAR_LAYOUT[kind]}{hint}")
    dataset_class = datasets.CIFAR10 if num_classes == 10 else datasets.CIFAR100
    train_transform, _ = _pil_transforms(resolution, (0.25, 1.0))
    normalize = transforms.Normalize(_IMAGENET_MEAN, _IMAGENET_STD)
    eval_transform = transforms.Compose([transforms.Resize(resolution), transforms.ToTensor(), normalize])
    try:
        train = dataset_class(str(root), train=True, transform=train_transform, download=False)
        val = dataset_class(str(root), train=False, transform=eval_transform, download=False)
        plain_train = dataset_class(str(root), train=True, transform=eval_transform, download=False)
    except RuntimeError as error:  # torchvision's md5 check failed
        raise InvalidInputError(
            f"CIFAR files in {str(root / folder)!r} are corrupt ({error}); {_CIFAR_LAYOUT[kind]}"
        ) from None
    return ImageData(
        name=kind,
        train=train,
        val=val,
        calibration=_fixed_subset(plain_train, calibration_images),
        num_classes=num_classes,
        resolution=resolution,
        fingerprint=_files_fingerprint(root, [str(root / folder / name) for name in files]),
    )


# ----------------------------------------------------------------- arrays (.npz, torchvision)
NPZ_LAYOUT = (
    "expected an .npz (numpy.savez or savez_compressed) with x_train: N images (N x H x W grey-scale, or "
    "N x H x W x C / N x C x H x W with C = 1 or 3; uint8 0-255, or floats in [0, 1]) and y_train: N integer "
    "labels 0..K-1; optionally x_test and y_test (otherwise a seeded 20% of every class is held out)"
)
ARRAY_HELD_OUT_FRACTION = 0.2
"""Fraction of every class held out of an ``.npz`` without ``x_test``/``y_test``."""

_TORCHVISION_KINDS = ("mnist", "fashionmnist", "svhn")
_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
              "t10k-labels-idx1-ubyte")


def _torchvision_layout(kind: str) -> tuple[list[str], str]:
    """The files torchvision reads for ``kind`` (relative to ROOT) and where to get them."""
    from torchvision import datasets

    if kind == "svhn":
        files = [datasets.SVHN.split_list[split][1] for split in ("train", "test")]
        urls = " and ".join(datasets.SVHN.split_list[split][0] for split in ("train", "test"))
        return files, f"download {urls} into ROOT"
    folder, mirror = ("MNIST", datasets.MNIST.mirrors[0]) if kind == "mnist" else (
        "FashionMNIST", datasets.FashionMNIST.mirrors[0])
    files = [f"{folder}/raw/{name}" for name in _IDX_FILES]
    return files, f"download {', '.join(name + '.gz' for name in _IDX_FILES)} from {mirror} and gunzip them there"


class _NormalisedFloat:
    """uint8 ``(C, H, W)`` -> normalised float ``(3, H, W)`` (grey-scale repeated), then ``augment``.
    A class, not a closure, so DataLoader workers can pickle it."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, augment: Callable | None = None) -> None:
        self.mean, self.std, self.augment = mean, std, augment

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        image = image.float().div_(255.0)
        if image.shape[0] == 1:
            image = image.expand(3, -1, -1)
        image = (image - self.mean) / self.std
        return self.augment(image) if self.augment is not None else image


def _as_nchw_uint8(images: np.ndarray, what: str) -> np.ndarray:
    """Images as ``(N, C, H, W)`` uint8, C = 1 or 3, from any layout :data:`NPZ_LAYOUT` allows."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4 and images.shape[1] not in (1, 3) and images.shape[3] in (1, 3):
        images = images.transpose(0, 3, 1, 2)
    elif not (images.ndim == 4 and images.shape[1] in (1, 3)):
        raise InvalidInputError(f"{what} has shape {images.shape}; {NPZ_LAYOUT}")
    if min(images.shape) == 0:
        raise InvalidInputError(f"{what} is empty (shape {images.shape}); {NPZ_LAYOUT}")
    if images.dtype == np.uint8:
        return np.ascontiguousarray(images)
    if images.dtype.kind == "f":
        nan = np.isnan(images)
        if nan.any():
            where = tuple(int(i) for i in np.argwhere(nan)[0])
            raise InvalidInputError(f"{what} holds NaN ({int(nan.sum())} value(s), the first at index {where}); "
                                    f"{NPZ_LAYOUT}")
        if not (np.isfinite(images).all() and images.min() >= 0.0 and images.max() <= 1.0):
            raise InvalidInputError(f"{what} holds floats outside [0, 1] (min {np.nanmin(images):g}, max "
                                    f"{np.nanmax(images):g}); {NPZ_LAYOUT}")
        return np.ascontiguousarray(np.round(images * 255.0).astype(np.uint8))
    if images.dtype.kind in "iu" and images.min() >= 0 and images.max() <= 255:
        return np.ascontiguousarray(images.astype(np.uint8))
    raise InvalidInputError(f"{what} has dtype {images.dtype} (values {images.min()}..{images.max()}); {NPZ_LAYOUT}")


def _as_labels(labels: np.ndarray, count: int, what: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:  # SVHN-style column vectors
        labels = labels[:, 0]
    if labels.shape != (count,):
        raise InvalidInputError(f"{what} has shape {labels.shape}, expected ({count},): one label per image; "
                                f"{NPZ_LAYOUT}")
    if labels.dtype.kind not in "iu" or (count and labels.min() < 0):
        raise InvalidInputError(f"{what} must hold integers 0..K-1, got dtype {labels.dtype}"
                                + (f" with minimum {labels.min()}" if labels.dtype.kind in "iu" else "")
                                + f"; {NPZ_LAYOUT}")
    return labels.astype(np.int64)


def _resized(images: np.ndarray, resolution: int) -> torch.Tensor:
    """``(N, C, H, W)`` uint8 resized to ``resolution`` (bilinear, antialiased), still uint8: a data
    set is held at the training size once (MNIST: 60,000 x 32 x 32 bytes), not per item."""
    if images.shape[2:] == (resolution, resolution):
        return torch.from_numpy(images)
    out = torch.empty((images.shape[0], images.shape[1], resolution, resolution), dtype=torch.uint8)
    for start in range(0, len(images), 2048):
        chunk = torch.from_numpy(images[start:start + 2048]).float()
        chunk = torch.nn.functional.interpolate(chunk, size=(resolution, resolution), mode="bilinear",
                                                align_corners=False, antialias=True)
        out[start:start + 2048] = chunk.round_().clamp_(0, 255).to(torch.uint8)
    return out


def _array_data(name: str, source: str, train: tuple[np.ndarray, np.ndarray],
                test: tuple[np.ndarray, np.ndarray] | None, *, resolution: int, calibration_images: int,
                split_seed: int) -> ImageData:
    """ImageData from in-memory arrays (the ``.npz`` and torchvision kinds share this)."""
    from torchvision.transforms import v2

    _check_resolution(resolution)
    x_train = _as_nchw_uint8(train[0], f"{source}: x_train")
    y_train = _as_labels(train[1], len(x_train), f"{source}: y_train")
    if test is None:
        train_rows, test_rows = stratified_split(y_train, ARRAY_HELD_OUT_FRACTION, split_seed)
        if len(test_rows) == 0 or len(train_rows) == 0:
            raise InvalidInputError(f"{source}: {len(y_train)} images are too few to hold out "
                                    f"{ARRAY_HELD_OUT_FRACTION:.0%} of every class; add x_test and y_test")
        x_test, y_test = x_train[test_rows], y_train[test_rows]
        x_train, y_train = x_train[train_rows], y_train[train_rows]
    else:
        x_test = _as_nchw_uint8(test[0], f"{source}: x_test")
        y_test = _as_labels(test[1], len(x_test), f"{source}: y_test")
        if x_test.shape[1:] != x_train.shape[1:]:
            raise InvalidInputError(f"{source}: x_test images are {x_test.shape[1:]} (C, H, W), x_train's "
                                    f"{x_train.shape[1:]}; both splits need one image size")
    fingerprint = _digest(part for array in (x_train, y_train, x_test, y_test)
                          for part in (str(array.shape).encode(), np.ascontiguousarray(array).data))
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    absent = sorted(set(range(num_classes)) - set(np.unique(y_train).tolist()))
    if num_classes < 2 or absent:
        raise InvalidInputError(f"{source}: labels must cover classes 0..K-1 (K >= 2) in y_train; "
                                + (f"classes {absent[:10]} have no training image" if absent else
                                   "only one class") + f"; {NPZ_LAYOUT}")
    train_images, test_images = _resized(x_train, resolution), _resized(x_test, resolution)
    channel_axes = (0, 2, 3)
    mean = train_images.float().mean(dim=channel_axes).view(-1, 1, 1)
    std = train_images.float().std(dim=channel_axes).view(-1, 1, 1).clamp_min(1.0)
    mean, std = mean.div(255.0), std.div(255.0)
    # Digits-like augmentation (crop, no flip: a mirrored digit or letter is another symbol).
    augment = v2.RandomResizedCrop(resolution, scale=(0.6, 1.0), ratio=(3 / 4, 4 / 3), antialias=True)
    labels_train, labels_test = torch.from_numpy(y_train), torch.from_numpy(y_test)
    plain = _NormalisedFloat(mean, std)
    return ImageData(
        name=name,
        train=_TensorImages(train_images, labels_train, _NormalisedFloat(mean, std, augment)),
        val=_TensorImages(test_images, labels_test, plain),
        calibration=_fixed_subset(_TensorImages(train_images, labels_train, plain), calibration_images),
        num_classes=num_classes,
        resolution=resolution,
        fingerprint=fingerprint,
    )


def numpy_arrays(path: str | Path, *, resolution: int = 32, calibration_images: int = 2000,
                 split_seed: int = 0) -> ImageData:
    """Images and labels from an ``.npz`` file (the layout is :data:`NPZ_LAYOUT`; Keras' ``mnist.npz``
    has it).

    Keys: ``x_train`` and ``y_train``, and optionally ``x_test`` and ``y_test`` (the held-out
    split). Without them, :data:`ARRAY_HELD_OUT_FRACTION` of every class is held out, chosen with
    ``split_seed``. Grey-scale is repeated to 3 channels; every image is resized to ``resolution``;
    pixels are normalised with the training split's per-channel mean and standard deviation.
    Duplicate images are not removed: a file with the same image in both splits overstates
    held-out accuracy (``benchmarks/data.py`` deduplicates Animal-MNIST before splitting).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not an ``.npz``, a key missing, or arrays of the wrong shape, type or range.
    """
    from ofa_nni._npz import check_npz_sizes

    path = Path(path).expanduser()
    if path.is_dir():
        raise InvalidInputError(f"NumPy data file {str(path)!r} is a directory, not an .npz file; {NPZ_LAYOUT}")
    if not path.is_file():
        raise MissingInputError(f"NumPy data file {str(path)!r} does not exist; {NPZ_LAYOUT}")
    with open(path, "rb") as file:
        if file.read(4) != b"PK\x03\x04":
            raise InvalidInputError(f"{path} is not an .npz archive; {NPZ_LAYOUT}")
    try:
        check_npz_sizes(path, allow_compressed=True)
        with np.load(path, allow_pickle=False) as archive:
            keys = set(archive.files)
            arrays = {key: archive[key] for key in ("x_train", "y_train", "x_test", "y_test") if key in keys}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise InvalidInputError(f"{path} is not a readable .npz ({type(error).__name__}: {error}); "
                                f"{NPZ_LAYOUT}") from None
    missing = [key for key in ("x_train", "y_train") if key not in arrays]
    if missing or (("x_test" in arrays) != ("y_test" in arrays)):
        missing = missing or [key for key in ("x_test", "y_test") if key not in arrays]
        raise InvalidInputError(f"{path} lacks {missing} (it has {sorted(keys)[:8]}); {NPZ_LAYOUT}")
    test = (arrays["x_test"], arrays["y_test"]) if "x_test" in arrays else None
    return _array_data("npz", str(path), (arrays["x_train"], arrays["y_train"]), test, resolution=resolution,
                       calibration_images=calibration_images, split_seed=split_seed)


def torchvision_arrays(kind: str, root: str | Path, *, resolution: int = 32,
                       calibration_images: int = 2000) -> ImageData:
    """MNIST, FashionMNIST or SVHN (``kind`` ``mnist``, ``fashionmnist``, ``svhn``) from a local
    ``root`` as torchvision lays them out, never downloaded (its train and test splits).

    Raises:
        FileNotFoundError: a file is missing (the message lists the expected files and where to
            get them).
        ValueError: a file is corrupt.
    """
    from torchvision import datasets

    root = Path(root).expanduser()
    files, where = _torchvision_layout(kind)
    layout = f"expected {', '.join('ROOT/' + name for name in files)} ({where})"
    if root.exists() and not root.is_dir():
        raise InvalidInputError(f"{kind} directory {str(root)!r} is a file, not a directory; {layout}")
    if not root.is_dir():
        raise MissingInputError(f"{kind} directory {str(root)!r} does not exist; {layout}")
    missing = [name for name in files if not (root / name).is_file()]
    if missing:
        gz = [name for name in missing if (root / f"{name}.gz").is_file()]
        hint = f"; {gz[0]}.gz is there: gunzip it" if gz else ""
        # ROOT/MNIST given for ROOT: the files are there one folder up from where they are looked for
        inner = [name.split("/", 1)[1] for name in files if "/" in name]
        if not gz and inner and all((root / name).is_file() or (root / f"{name}.gz").is_file() for name in inner):
            hint = (f"; {str(root)!r} is itself the {files[0].split('/')[0]} folder: pass its parent "
                    f"{str(root.parent)!r}")
        raise MissingInputError(f"{str(root)!r} lacks {missing}; {layout}{hint}")
    try:
        if kind == "svhn":
            splits = [datasets.SVHN(str(root), split=split, download=False) for split in ("train", "test")]
            pairs = [(split.data, np.asarray(split.labels)) for split in splits]
        else:
            dataset_class = datasets.MNIST if kind == "mnist" else datasets.FashionMNIST
            splits = [dataset_class(str(root), train=train, download=False) for train in (True, False)]
            pairs = [(split.data.numpy(), split.targets.numpy()) for split in splits]
    except (RuntimeError, OSError, ValueError, AssertionError) as error:  # md5 or format check failed
        raise InvalidInputError(f"{kind} files in {str(root)!r} are corrupt ({type(error).__name__}: {error}); "
                                f"{layout}") from None
    return _array_data(kind, f"{kind} at {root}", pairs[0], pairs[1], resolution=resolution,
                       calibration_images=calibration_images, split_seed=0)


# -------------------------------------------------------------------------------- shared
def _check_resolution(resolution: int) -> None:
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 8:
        raise InvalidInputError(f"resolution must be an int >= 8, got {resolution!r}")


def _fixed_subset(dataset: Dataset, size: int) -> Dataset:
    """The first ``size`` items of a fixed permutation of ``dataset`` (the same on every run), in
    that permuted order: training's validation recalibrates on the first few batches only, and a
    file sorted by class would otherwise give them a few classes."""
    length = len(dataset)  # type: ignore[arg-type]
    if size <= 0:
        raise InvalidInputError(f"calibration_images must be positive, got {size}")
    order = np.random.default_rng(_DIGITS_SPLIT_SEED).permutation(length)[: min(size, length)]
    return Subset(dataset, order.tolist())


def load_data(kind: str, *, root: str | Path | None = None, resolution: int,
              calibration_images: int | None = None, split_seed: int = 0) -> ImageData:
    """Load the data set ``kind`` (one of :data:`DATA_KINDS`) at ``resolution``.

    ``root`` is required for every kind but ``digits``: the ``.npz`` file for ``npz``, the local
    directory otherwise. ``calibration_images`` defaults to 500 for digits and OFA's 2,000
    otherwise. ``split_seed`` chooses the held-out images of an ``.npz`` without a test split.
    """
    if kind not in DATA_KINDS:
        raise InvalidInputError(f"data kind {kind!r} is not supported; allowed: {list(DATA_KINDS)}")
    if kind == "digits":
        if root is not None:
            raise InvalidInputError("data.root is not used by the digits data set (it ships with scikit-learn); "
                                    "remove it")
        return digits(resolution=resolution, calibration_images=calibration_images or 500)
    if root is None:
        raise InvalidInputError(f"data.root is required for {kind!r}: the local "
                                f"{'.npz file' if kind == 'npz' else 'directory'} holding the data set")
    if kind == "imagefolder":
        return image_folder(root, resolution=resolution, calibration_images=calibration_images or 2000)
    if kind == "npz":
        return numpy_arrays(root, resolution=resolution, calibration_images=calibration_images or 2000,
                            split_seed=split_seed)
    if kind in _TORCHVISION_KINDS:
        return torchvision_arrays(kind, root, resolution=resolution, calibration_images=calibration_images or 2000)
    return cifar(root, num_classes=10 if kind == "cifar10" else 100, resolution=resolution,
                 calibration_images=calibration_images or 2000)


def check_batch_size(data: ImageData, batch_size: int) -> None:
    """Refuse a training batch larger than the training split (a step drops an incomplete last
    batch, so such a run would train on nothing)."""
    count = len(data.train)  # type: ignore[arg-type]
    if batch_size > count:
        raise InvalidInputError(f"data.batch_size {batch_size} is larger than the {count} training images of "
                                f"{data.name}; allowed: 1..{count}")


def calibration_loader(data: ImageData, *, batch_size: int, num_workers: int = 0) -> DataLoader:
    """The BN-recalibration batches: the fixed calibration subset in a fixed order."""
    return DataLoader(data.calibration, batch_size=batch_size, shuffle=False, num_workers=num_workers)

