"""Training data for the supernet: local image folders, CIFAR-10/100, and an offline default (digits).

Nothing is downloaded: every data set is read from a local directory, and a missing or malformed
directory raises an error that says which layout is expected. The default, :func:`digits`, is
real data shipped inside scikit-learn (1,797 8x8 grey-scale handwritten digits, 10 classes),
upscaled to the space's largest resolution, with a fixed held-out split.

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
from collections.abc import Callable
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
    "digits_split_digest",
    "image_folder",
    "cifar",
    "load_data",
    "calibration_loader",
    "DIGITS_HELD_OUT_FRACTION",
]

DATA_KINDS = ("digits", "imagefolder", "cifar10", "cifar100")
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
        name: ``digits``, ``imagefolder``, ``cifar10`` or ``cifar100``.
        train: Augmented training images at ``resolution`` (``(image, label)`` items).
        val: Held-out images at ``resolution``, deterministic transform.
        calibration: Training images with the deterministic transform, for BN recalibration
            (OFA recalibrates on a subset of the training set, never on held-out data).
        num_classes: Number of classes.
        resolution: Side of the square images every item has (the space's largest resolution).
    """

    name: str
    train: Dataset
    val: Dataset
    calibration: Dataset
    num_classes: int
    resolution: int


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

    labels = load_digits().target
    rng = np.random.default_rng(_DIGITS_SPLIT_SEED)
    held_out: list[int] = []
    for digit in range(10):
        members = np.flatnonzero(labels == digit)
        count = int(round(len(members) * DIGITS_HELD_OUT_FRACTION))
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
        train = ImageFolder(str(root / "train"), transform=train_transform)
        val = ImageFolder(str(root / "val"), transform=eval_transform)
        plain_train = ImageFolder(str(root / "train"), transform=eval_transform)
    except FileNotFoundError as error:  # a class folder without a readable image
        raise InvalidInputError(f"image folder {str(root)!r}: {error}; {_IMAGE_FOLDER_LAYOUT}") from None
    return ImageData(
        name="imagefolder",
        train=train,
        val=val,
        calibration=_fixed_subset(plain_train, calibration_images),
        num_classes=len(splits["train"]),
        resolution=resolution,
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
    if num_classes not in (10, 100):
        raise InvalidInputError(f"CIFAR has 10 or 100 classes, got num_classes={num_classes}")
    kind = f"cifar{num_classes}"
    root = Path(root).expanduser()
    folder, files = (("cifar-10-batches-py", [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"])
                     if num_classes == 10 else ("cifar-100-python", ["train", "test", "meta"]))
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
    )


# -------------------------------------------------------------------------------- shared
def _check_resolution(resolution: int) -> None:
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 8:
        raise InvalidInputError(f"resolution must be an int >= 8, got {resolution!r}")


def _fixed_subset(dataset: Dataset, size: int) -> Dataset:
    """The first ``size`` items of a fixed permutation of ``dataset`` (the same on every run)."""
    length = len(dataset)  # type: ignore[arg-type]
    if size <= 0:
        raise InvalidInputError(f"calibration_images must be positive, got {size}")
    order = np.random.default_rng(_DIGITS_SPLIT_SEED).permutation(length)[: min(size, length)]
    return Subset(dataset, np.sort(order).tolist())


def load_data(kind: str, *, root: str | Path | None = None, resolution: int,
              calibration_images: int | None = None) -> ImageData:
    """Load the data set ``kind`` (one of :data:`DATA_KINDS`) at ``resolution``.

    ``root`` is required for every kind but ``digits``. ``calibration_images`` defaults to 500 for
    digits and OFA's 2,000 otherwise.
    """
    if kind not in DATA_KINDS:
        raise InvalidInputError(f"data kind {kind!r} is not supported; allowed: {list(DATA_KINDS)}")
    if kind == "digits":
        if root is not None:
            raise InvalidInputError("data.root is not used by the digits data set (it ships with scikit-learn); remove it")
        return digits(resolution=resolution, calibration_images=calibration_images or 500)
    if root is None:
        raise InvalidInputError(f"data.root is required for {kind!r}: the local directory holding the data set")
    if kind == "imagefolder":
        return image_folder(root, resolution=resolution, calibration_images=calibration_images or 2000)
    return cifar(root, num_classes=10 if kind == "cifar10" else 100, resolution=resolution,
                 calibration_images=calibration_images or 2000)


def calibration_loader(data: ImageData, *, batch_size: int, num_workers: int = 0) -> DataLoader:
    """The BN-recalibration batches: the fixed calibration subset in a fixed order."""
    return DataLoader(data.calibration, batch_size=batch_size, shuffle=False, num_workers=num_workers)

