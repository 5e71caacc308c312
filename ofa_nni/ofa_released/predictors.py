"""mit-han-lab's released accuracy predictors, read as ofa-nni predictors.

* ``acc_predictor.pth`` (the OFA tutorial's; ``ofa.tutorial.AccuracyPredictor``): the state dict of
  ``Sequential(Linear(128, 400), ReLU, Linear(400, 400), ReLU, Linear(400, 400), ReLU,
  Linear(400, 1))`` on the 128-d encoding ``spec2feats(ks, e, d, r)``: one-hot kernel per block
  (20 x 3), one-hot expand ratio per block (20 x 3), zeros for inactive blocks, then a one-hot
  resolution over 112, 128, ..., 224 (8 slots; the predictor was trained on 160-224). That is our
  :meth:`~ofa_nni.arch.ArchSpace.to_features` encoding with the columns in another order, so the
  file becomes an :class:`~ofa_nni.accuracy.MLPAccuracyPredictor` exactly: the first layer's
  columns are permuted (the untrained resolution slots dropped) and the output bias is the base
  accuracy. The result is a predictor like any other (callable on index arrays, savable as .npz).
* ``ofa_resnet50_acc_predictor.pth`` (``ofa.nas.accuracy_predictor.AccuracyPredictor`` with a
  ``ResNetArchEncoder``; keys ``layers.*`` and ``base_acc``): 82 inputs -- resolution one-hot over
  128, 144, 160, 176, 192, 224, 240, 256, input-stem depth, width index of the stem and each stage,
  expand ratio per block: :meth:`~ofa_nni.resnet_arch.ResNetArchSpace.to_features`'s layout, so
  the file becomes an :class:`~ofa_nni.accuracy.MLPAccuracyPredictor` of an OFA-ResNet50 space
  (the resolution columns selected, ``base_acc`` as the base) that scores
  :class:`search_spaces.OFAResNetSpace` subnets.

Nothing here imports ``ofa``.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ofa_nni._deprecation import RenamedAttribute, renamed_keywords
from ofa_nni.accuracy import AccuracyPredictor, MLPAccuracyPredictor
from ofa_nni.arch import ArchSpace
from ofa_nni.efficiency import as_index_array
from ofa_nni.errors import InvalidInputError, MissingInputError
from ofa_nni.resnet_arch import ResNetArchSpace

__all__ = [
    "RESNET50_RESOLUTIONS",
    "TUTORIAL_RESOLUTIONS",
    "ResolutionSubsetPredictor",
    "load_ofa_accuracy_predictor",
    "load_predictor_file",
    "restrict_predictor",
    "tutorial_space",
    "resnet50_space",
]

TUTORIAL_RESOLUTIONS: tuple[int, ...] = (160, 176, 192, 208, 224)
"""The resolutions the tutorial's MobileNetV3 predictor was trained on (and its EvolutionFinder searches)."""
_TUTORIAL_SLOTS = tuple(range(112, 225, 16))  # spec2feats' 8 resolution slots: (r - 112) // 16
_TUTORIAL_KERNELS = (3, 5, 7)
_TUTORIAL_EXPANDS = (3, 4, 6)
_TUTORIAL_BLOCKS, _TUTORIAL_STAGES, _TUTORIAL_DEPTH = 20, 5, 4
_TUTORIAL_INPUTS = 2 * _TUTORIAL_BLOCKS * 3 + len(_TUTORIAL_SLOTS)  # 128
_TUTORIAL_LAYOUT = (
    "the OFA tutorial's MobileNetV3 predictor (keys 0.*, 2.*, 4.*, 6.* of a Sequential MLP with "
    f"{_TUTORIAL_INPUTS} inputs)"
)

RESNET50_RESOLUTIONS: tuple[int, ...] = (128, 144, 160, 176, 192, 224, 240, 256)
"""The ``image_size_list`` mit-han-lab's OFA-ResNet50 predictor was built with (82 = 8 + 74 inputs)."""
_RESNET50_DEPTHS = (0, 1, 2)
_RESNET50_EXPANDS = (0.2, 0.25, 0.35)
_RESNET50_WIDTH_MULTS = (0.65, 0.8, 1.0)
_RESNET50_BASE_DEPTHS = (2, 2, 4, 2)
_RESNET50_LAYOUT = "OFA's ResNet50 predictor (keys layers.*, base_acc; ResNetArchEncoder with 82 inputs)"


def tutorial_space(**overrides: Any) -> ArchSpace:
    """The space of the OFA tutorial: OFA-MobileNetV3 at width 1.2 (``ofa_mbv3_d234_e346_k357_w1.2``,
    the network the released predictor and the Note10 tables describe), resolutions 160-224 step 16."""
    settings: dict[str, Any] = {"width_mult": 1.2, "resolutions": TUTORIAL_RESOLUTIONS, **overrides}
    return ArchSpace(**settings)


# ------------------------------------------------------------------------------ reading files
def _is_torch_file(path: Path) -> bool:
    """A file ``torch.save`` wrote: a zip holding ``*/data.pkl``, or a legacy pickle stream."""
    with open(path, "rb") as file:
        head = file.read(4)
    if head == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as archive:
                return any(name.endswith("data.pkl") for name in archive.namelist())
        except zipfile.BadZipFile:
            return False
    return head[:1] == b"\x80"  # pickle protocol 2+ (torch's legacy format starts with one)


def _read_state_dict(path: Path) -> dict[str, Any]:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile) as error:
        raise InvalidInputError(
            f"{path}: not a PyTorch state dict of an OFA accuracy predictor ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''})"
        ) from None
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]  # how ofa.nas's AccuracyPredictor also accepts a checkpoint
    if not isinstance(state, Mapping) or not all(isinstance(key, str) for key in state):
        raise InvalidInputError(f"{path}: expected an OFA accuracy predictor's state dict; found a "
                                f"{type(state).__name__}")
    return {key: value.detach().cpu().numpy() for key, value in state.items() if isinstance(value, torch.Tensor)}


def _mlp_layers(arrays: Mapping[str, np.ndarray], weight_keys: Sequence[str],
                bias_keys: Sequence[str | None]) -> tuple[list[np.ndarray], list[np.ndarray]] | None:
    """The ``(in, out)`` weights and the biases of a chain of linear layers, or None where the keys or
    shapes do not form one."""
    weights, biases = [], []
    width = None
    for weight_key, bias_key in zip(weight_keys, bias_keys, strict=True):
        weight = arrays.get(weight_key)
        if weight is None or weight.ndim != 2 or (width is not None and weight.shape[1] != width):
            return None
        width = weight.shape[0]
        weights.append(weight.T.astype(np.float32))
        if bias_key is not None:
            bias = arrays.get(bias_key)
            if bias is None or bias.shape != (width,):
                return None
            biases.append(bias.astype(np.float32))
    return weights, biases


def _tutorial_layers(arrays: Mapping[str, np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]] | None:
    names = ("0", "2", "4", "6")
    if set(arrays) != {f"{n}.{kind}" for n in names for kind in ("weight", "bias")}:
        return None
    layers = _mlp_layers(arrays, [f"{n}.weight" for n in names], [f"{n}.bias" for n in names])
    if layers is None or layers[0][0].shape[0] != _TUTORIAL_INPUTS or layers[0][-1].shape[1] != 1:
        return None
    return layers


def _nas_layers(arrays: Mapping[str, np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray], float] | None:
    """ofa.nas's AccuracyPredictor: ``layers.{i}.0`` (Linear + ReLU) ..., ``layers.{n}`` (no bias), ``base_acc``."""
    hidden = 0
    while f"layers.{hidden}.0.weight" in arrays:
        hidden += 1
    expected = {f"layers.{i}.0.{kind}" for i in range(hidden) for kind in ("weight", "bias")}
    expected |= {f"layers.{hidden}.weight", "base_acc"}
    if hidden == 0 or set(arrays) != expected or arrays["base_acc"].shape != (1,):
        return None
    layers = _mlp_layers(arrays, [f"layers.{i}.0.weight" for i in range(hidden)] + [f"layers.{hidden}.weight"],
                         [f"layers.{i}.0.bias" for i in range(hidden)] + [None])
    if layers is None or layers[0][-1].shape[1] != 1:
        return None
    return layers[0], layers[1], float(arrays["base_acc"][0])


def _found_layout(arrays: Mapping[str, np.ndarray]) -> str:
    """What a state dict looks like, for an error message."""
    if _tutorial_layers(arrays) is not None:
        return _TUTORIAL_LAYOUT
    nas = _nas_layers(arrays)
    if nas is not None:
        inputs = nas[0][0].shape[0]
        if inputs == 82:
            return _RESNET50_LAYOUT
        return f"an ofa.nas AccuracyPredictor with {inputs} inputs (neither {_TUTORIAL_INPUTS} nor 82)"
    shapes = ", ".join(f"{key} {tuple(value.shape)}" for key, value in list(arrays.items())[:6])
    more = f", ... ({len(arrays) - 6} more)" if len(arrays) > 6 else ""
    return f"a state dict with {len(arrays)} tensors: {shapes}{more}" if arrays else "a state dict without tensors"


# ------------------------------------------------------------------------ MobileNetV3 (tutorial)
def _check_tutorial_space(arch_space: ArchSpace, path: Path) -> None:
    if not isinstance(arch_space, ArchSpace):
        raise InvalidInputError(f"{path}: found {_TUTORIAL_LAYOUT}; this {type(arch_space).__name__} space expects "
                                f"{_RESNET50_LAYOUT} (the MobileNetV3 predictor scores OFA-MobileNetV3 subnets)")
    found = []
    if (arch_space.num_stages, arch_space.max_depth) != (_TUTORIAL_STAGES, _TUTORIAL_DEPTH):
        found.append(f"{arch_space.num_stages} stages x {arch_space.max_depth} blocks")
    if not set(arch_space.kernel_sizes) <= set(_TUTORIAL_KERNELS):
        found.append(f"kernel sizes {list(arch_space.kernel_sizes)}")
    if not set(arch_space.expand_ratios) <= set(_TUTORIAL_EXPANDS):
        found.append(f"expand ratios {list(arch_space.expand_ratios)}")
    if not set(arch_space.resolutions) <= set(TUTORIAL_RESOLUTIONS):
        found.append(f"resolutions {list(arch_space.resolutions)}")
    if found:
        raise InvalidInputError(
            f"{path}: {_TUTORIAL_LAYOUT} expects an OFA-MobileNetV3 space of {_TUTORIAL_STAGES} stages x "
            f"{_TUTORIAL_DEPTH} blocks, kernel sizes within {list(_TUTORIAL_KERNELS)}, expand ratios within "
            f"{list(_TUTORIAL_EXPANDS)}, resolutions within {list(TUTORIAL_RESOLUTIONS)}; found a space with "
            + "; ".join(found)
        )


def _tutorial_columns(arch_space: ArchSpace) -> np.ndarray:
    """For each column of ``arch_space.to_features``, the column of ``spec2feats`` holding the same bit."""
    n_blocks = arch_space.num_blocks
    columns = [120 + _TUTORIAL_SLOTS.index(r) for r in arch_space.resolutions]
    columns += [3 * block + _TUTORIAL_KERNELS.index(k) for block in range(n_blocks) for k in arch_space.kernel_sizes]
    columns += [60 + 3 * block + _TUTORIAL_EXPANDS.index(e)
                for block in range(n_blocks) for e in arch_space.expand_ratios]
    return np.asarray(columns, dtype=np.int64)


def _tutorial_predictor(path: Path, layers: tuple[list[np.ndarray], list[np.ndarray]],
                        arch_space: ArchSpace | None) -> MLPAccuracyPredictor:
    arch_space = tutorial_space() if arch_space is None else arch_space
    _check_tutorial_space(arch_space, path)
    weights, biases = layers
    # The output layer's bias is a constant added to every prediction: OFA's base accuracy.
    return _released_mlp(arch_space, weights, biases[:-1], float(biases[-1][0]), _tutorial_columns(arch_space), {
        "source": f"mit-han-lab's released OFA-MobileNetV3 accuracy predictor {path.name}",
        "path": str(path),
        "trained_on": "ImageNet top-1 of OFA-MobileNetV3 w1.2 subnets, resolutions 160-224 step 16",
    })


def _released_mlp(arch_space: Any, weights: Sequence[np.ndarray], hidden_biases: Sequence[np.ndarray], base: float,
                  columns: np.ndarray, info: dict[str, Any]) -> MLPAccuracyPredictor:
    """A released MLP as our predictor of ``arch_space``: the first layer's rows reordered to ``columns``
    (the released encoding's column of each of our features), ``base`` the constant output term."""
    predictor = MLPAccuracyPredictor(arch_space=arch_space, hidden_size=weights[0].shape[1],
                                     num_layers=len(weights) - 1, output="accuracy")
    # The released weights hold subnormal floats (e.g. 154,761 in the ResNet50 predictor's second layer),
    # which make a CPU's matrix products ~100x slower; below float32's smallest normal number they add
    # nothing a prediction can show, so they are zeroed.
    tiny = np.finfo(np.float32).tiny
    weights = [np.where(np.abs(weight) < tiny, np.float32(0), weight).astype(np.float32) for weight in weights]
    arrays = {f"weight{i}": weight for i, weight in enumerate(weights)}
    arrays["weight0"] = weights[0][columns]
    arrays.update({f"bias{i}": bias for i, bias in enumerate(hidden_biases)})
    arrays["base_logit"] = np.array(base)  # with output="accuracy": the reference's base accuracy
    predictor.load_arrays(arrays)
    predictor.info = info
    return predictor


# ------------------------------------------------------------------------------------ ResNet50
def resnet50_space(**overrides: Any) -> ResNetArchSpace:
    """The space of mit-han-lab's OFA-ResNet50 predictor: the released ``ofa_resnet50`` at the
    resolutions the predictor encodes (:data:`RESNET50_RESOLUTIONS`)."""
    settings: dict[str, Any] = {"resolutions": RESNET50_RESOLUTIONS, **overrides}
    return ResNetArchSpace(**settings)


def _check_resnet50_space(arch_space: Any, path: Path) -> None:
    if not isinstance(arch_space, ResNetArchSpace):
        raise InvalidInputError(f"{path}: found {_RESNET50_LAYOUT}; this {type(arch_space).__name__} space expects "
                                f"{_TUTORIAL_LAYOUT} (the ResNet50 predictor scores OFAResNetSpace subnets)")
    found = [f"{name} {list(getattr(arch_space, name))}" for name, allowed in (
        ("depths", _RESNET50_DEPTHS), ("expand_ratios", _RESNET50_EXPANDS), ("width_mults", _RESNET50_WIDTH_MULTS),
        ("base_depths", _RESNET50_BASE_DEPTHS)) if tuple(getattr(arch_space, name)) != allowed]
    if not set(arch_space.resolutions) <= set(RESNET50_RESOLUTIONS):
        found.append(f"resolutions {list(arch_space.resolutions)}")
    if found:
        raise InvalidInputError(
            f"{path}: {_RESNET50_LAYOUT} expects the released OFA-ResNet50 space (depths {list(_RESNET50_DEPTHS)}, "
            f"expand_ratios {list(_RESNET50_EXPANDS)}, width_mults {list(_RESNET50_WIDTH_MULTS)}, base_depths "
            f"{list(_RESNET50_BASE_DEPTHS)}, resolutions within {list(RESNET50_RESOLUTIONS)}); found a space with "
            + "; ".join(found))


def _resnet50_predictor(path: Path, layers: tuple[list[np.ndarray], list[np.ndarray], float],
                        arch_space: Any) -> MLPAccuracyPredictor:
    """The released predictor as an MLP on ``arch_space``'s features: :meth:`ResNetArchSpace.to_features` is
    ``ResNetArchEncoder.arch2feature``'s layout, so only the resolution columns are selected."""
    arch_space = resnet50_space() if arch_space is None else arch_space
    _check_resnet50_space(arch_space, path)
    weights, biases, base = layers
    n_slots = len(RESNET50_RESOLUTIONS)
    columns = [RESNET50_RESOLUTIONS.index(r) for r in arch_space.resolutions]
    columns += list(range(n_slots, weights[0].shape[0]))
    return _released_mlp(arch_space, weights, biases, base, np.asarray(columns, dtype=np.int64), {
        "source": f"mit-han-lab's released OFA-ResNet50 accuracy predictor {path.name}",
        "path": str(path),
        "trained_on": "ImageNet top-1 of OFA-ResNet50 subnets",
    })


# --------------------------------------------------------------------------------- public API
@renamed_keywords(space="arch_space")
def load_ofa_accuracy_predictor(path: str | os.PathLike[str], *, arch_space: Any = None) -> MLPAccuracyPredictor:
    """Read a predictor mit-han-lab released.

    Returns an :class:`~ofa_nni.accuracy.MLPAccuracyPredictor` of ``arch_space``: for the tutorial's
    ``acc_predictor.pth`` an OFA-MobileNetV3 space (default :func:`tutorial_space`), for
    ``ofa_resnet50_acc_predictor.pth`` an OFA-ResNet50 one (default :func:`resnet50_space`).

    Raises:
        InvalidInputError: naming the file, the layouts it accepts and the one it found, for any other
            file, or a space the MobileNetV3 predictor's encoding cannot describe.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"accuracy predictor {str(path)!r} does not exist")
    arrays = _read_state_dict(path)
    tutorial = _tutorial_layers(arrays)
    if tutorial is not None:
        return _tutorial_predictor(path, tutorial, arch_space)
    nas = _nas_layers(arrays)
    if nas is not None and nas[0][0].shape[0] == 82:
        return _resnet50_predictor(path, nas, arch_space)
    raise InvalidInputError(f"{path}: expected {_TUTORIAL_LAYOUT} or {_RESNET50_LAYOUT}; found {_found_layout(arrays)}")


def load_predictor_file(path: str | os.PathLike[str]) -> AccuracyPredictor:
    """An accuracy predictor for the search, from an ofa-nni ``.npz`` or a released OFA ``.pth``
    (recognised by content, not name)."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(
            f"predictor {str(path)!r} does not exist (build one with 'ofa-nni predictor build', or pass "
            "mit-han-lab's acc_predictor.pth)")
    if not _is_torch_file(path):
        return AccuracyPredictor.load(path)
    return load_ofa_accuracy_predictor(path)


# -------------------------------------------------------------------- a subset of resolutions
class ResolutionSubsetPredictor:
    """A predictor of ``arch_space`` read through one of a space that differs only in having more
    resolutions (e.g. when a latency table covers only some of them): index rows are mapped onto the
    wider space's resolution indices, and the wider predictor scores them."""

    space = RenamedAttribute("arch_space")  # the old name, for one release

    def __init__(self, predictor: Any, arch_space: ArchSpace) -> None:
        wider: ArchSpace = predictor.arch_space
        others = {k: v for k, v in arch_space.signature().items() if k != "resolutions"}
        if others != {k: v for k, v in wider.signature().items() if k != "resolutions"} or not set(
                arch_space.resolutions) <= set(wider.resolutions):
            raise InvalidInputError(
                f"a predictor of resolutions {list(wider.resolutions)} cannot score a space that differs in more "
                f"than having fewer resolutions ({list(arch_space.resolutions)})")
        self.inner, self.arch_space = predictor, arch_space
        self.kind = getattr(predictor, "kind", "")
        self.metrics = getattr(predictor, "metrics", {})
        self.info = {**getattr(predictor, "info", {}), "resolutions_of_the_predictor": list(wider.resolutions)}
        self._to_wider = np.array([wider.resolutions.index(r) for r in arch_space.resolutions], dtype=np.int64)

    def __call__(self, population: Any) -> Any:
        indices = as_index_array(self.arch_space, population).copy()
        indices[:, -1] = self._to_wider[indices[:, -1]]
        values = np.asarray(self.inner(indices), dtype=np.float64)
        return float(values[0]) if isinstance(population, Mapping) else values


def restrict_predictor(predictor: Any, arch_space: ArchSpace) -> Any:
    """``predictor`` on ``arch_space``, a subset of its space's resolutions (itself when they are equal)."""
    if predictor.arch_space == arch_space:
        return predictor
    return ResolutionSubsetPredictor(predictor, arch_space)
