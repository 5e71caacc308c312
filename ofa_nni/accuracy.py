"""Accuracy predictors of subnets, and the data set they learn from.

OFA (Cai et al., ICLR 2020, Sec. 3.4) searches with an accuracy predictor instead of evaluating
candidates: subnets are sampled from the trained supernet, BN-recalibrated, evaluated on held-out
images, and an MLP learns accuracy from the architecture's one-hot encoding (the paper: 16K subnets,
RMSE 0.21% on ImageNet).

* :func:`collect_accuracy_dataset` evaluates a deterministic, resolution-stratified list of subnets
  (smallest and largest first) and appends one JSON line per subnet to a file, fsynced, so a killed
  run resumes where it stopped and a finished file is reused (or extended to more subnets: the list
  for N subnets is a prefix of the list for more).
* :class:`MLPAccuracyPredictor` is OFA's predictor: 3 hidden layers of 400 with ReLU, a linear
  output without bias plus a constant base (the training mean), trained with Adam (lr 1e-3,
  weight decay 1e-4). :class:`MLPEnsemblePredictor` averages several seeds;
  :class:`RidgeAccuracyPredictor` is ridge regression on the same features (alpha by
  leave-one-out). :func:`build_accuracy_predictor` trains one (or picks the best, ``kind="auto"``)
  and reports RMSE, Kendall tau and Spearman rho on held-out subnets.
* Predictions stay in [0, 1] by construction: every kind regresses the *logit* of the accuracy
  and returns its sigmoid (:func:`accuracy_to_logit`). OFA's reference regresses accuracy
  directly; on a saturated data set (digits: many subnets at 97-100%) that extrapolates past 100%
  for subnets beyond the data, and a search then chases the extrapolation. No value is clipped
  after prediction; only training targets at exactly 0 or 1 are moved :data:`LOGIT_MARGIN` inside
  (a logit of 0 or 1 is infinite).
* Predictors are callables on ``(n, L)`` index arrays (``ArchSpace.to_indices`` order) returning
  ``(n,)`` predicted accuracies (fractions in [0, 1]), batched. They are saved as ``.npz`` (arrays
  plus JSON metadata: format version, kind, space signature, encoding, metrics) and loaded without
  pickle; a predictor for another space is refused, naming what differs. Every size a file
  declares (array shapes, ensemble members) is checked against what the file holds before
  anything is allocated.

Data-set file (JSON lines, ``format_version`` 1): the first line is the header
``{format, format_version, space, seed, num_subnets, archs: [...], data, calibration, created}``
(the full list of subnets to evaluate, stored before any is evaluated); every other line is a record
``{arch, indices, accuracy, loss, num_images, seconds}``.
"""

from __future__ import annotations

import abc
import hashlib
import io
import json
import os
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ofa_nni._artifacts import atomic_write, library_versions, require_same_space
from ofa_nni._deprecation import RenamedAttribute, renamed_keywords
from ofa_nni._npz import check_npz_sizes
from ofa_nni._predictor_verdict import FEW_HELD_OUT_SUBNETS, predictor_verdict_lines
from ofa_nni.arch import ArchSpace, Sample, arch_space_from_signature
from ofa_nni.efficiency import as_index_array
from ofa_nni.errors import InvalidInputError, MissingInputError
from ofa_nni.ridge import fit_ridge
from ofa_nni.runtime import recalibrate_batchnorm

__all__ = [
    "AccuracyDataset",
    "AccuracyPredictor",
    "MLPAccuracyPredictor",
    "MLPEnsemblePredictor",
    "OutdatedPredictorError",
    "RidgeAccuracyPredictor",
    "PREDICTOR_KINDS",
    "accuracy_to_logit",
    "build_accuracy_predictor",
    "logit_to_accuracy",
    "collect_accuracy_dataset",
    "evaluate_subnet",
    "plan_subnets",
    "predictor_metrics",
    "predictor_verdict_lines",
    "FEW_HELD_OUT_SUBNETS",
]

DATASET_FORMAT = "ofa-nni-accuracy-dataset"
DATASET_FORMAT_VERSION = 1
PREDICTOR_FORMAT = "ofa-nni-accuracy-predictor"
PREDICTOR_FORMAT_VERSION = 2
"""2: predictions are the sigmoid of a regressed logit (bounded). Version 1 (ofa-nni 0.1) regressed
accuracy itself and could predict above 100%; such files are refused with the command that
rebuilds them from their data set (the data set format did not change)."""
LOGIT_MARGIN = 1e-3
"""Training accuracies are moved at least this far inside (0, 1) before taking their logit (0.1
points: below one image of a 1,000-image evaluation, so only exact 0 and 1 move in practice)."""
ENCODING = "ofa-onehot"
"""Feature encoding of the predictors: :meth:`ArchSpace.to_features` (one-hot resolution, kernel and
expand per block, zeros for inactive blocks)."""


class OutdatedPredictorError(InvalidInputError):
    """A predictor file of an earlier format (unbounded predictions): rebuild it from its data set."""


# --------------------------------------------------------------------------- which subnets
@renamed_keywords(space="arch_space")
def plan_subnets(arch_space: ArchSpace, num_subnets: int, seed: int = 0) -> np.ndarray:
    """The subnets a data set of ``num_subnets`` evaluates, as an ``(n, L)`` index array.

    The smallest and the largest subnet come first; then resolutions are stratified (every run of
    ``len(resolutions)`` subnets uses each resolution once, in a seeded random order) and the other
    labels are uniform. Subnets that differ only in inactive blocks count once. The list for ``n``
    is a prefix of the list for any larger ``n`` with the same seed, so a data set can be extended.
    """
    if int(num_subnets) != num_subnets or num_subnets < 1:
        raise InvalidInputError(f"num_subnets must be a positive integer, got {num_subnets!r}")
    rng = np.random.default_rng(seed)
    index_of = {label: i for i, label in enumerate(arch_space.labels)}
    rows = [arch_space.to_indices(arch_space.min_sample()), arch_space.to_indices(arch_space.max_sample())]
    seen: set[bytes] = set()
    plan: list[np.ndarray] = []

    def add(row: np.ndarray) -> None:
        key = arch_space.to_features(row[None]).tobytes()
        if key not in seen:
            seen.add(key)
            plan.append(row)

    for row in rows:
        add(row)
    resolution_column = index_of[ArchSpace.RESOLUTION_LABEL]
    n_res = len(arch_space.resolutions)
    attempts = 0
    while len(plan) < num_subnets:
        block = rng.integers(0, arch_space.cardinalities, size=(n_res, len(arch_space.labels)))
        block[:, resolution_column] = rng.permutation(n_res)
        for row in block:
            add(row)
        attempts += n_res
        if attempts > 50 * num_subnets + 1000:
            raise InvalidInputError(f"the space has fewer than {num_subnets} distinct subnets; ask for fewer")
    return np.stack(plan[:num_subnets]).astype(np.int64)


# --------------------------------------------------------------------------- evaluation
def _batch_images_labels(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(batch, (list, tuple)) and len(batch) >= 2:
        return batch[0], batch[1]
    if isinstance(batch, Mapping) and "image" in batch and "label" in batch:
        return batch["image"], batch["label"]
    raise InvalidInputError(
        f"evaluation batches must be (images, labels) or {{'image', 'label'}}, got {type(batch).__name__}"
    )


@torch.no_grad()
def evaluate_subnet(model: nn.Module, batches: Iterable[Any]) -> dict[str, float]:
    """Top-1 accuracy (fraction) and mean cross-entropy of ``model`` over ``(images, labels)`` batches."""
    model.eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    correct, loss_sum, count = 0, 0.0, 0
    for batch in batches:
        images, labels = _batch_images_labels(batch)
        images, labels = images.to(device), labels.to(device)
        logits = model(images)
        loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
        correct += int((logits.argmax(dim=1) == labels).sum())
        count += int(labels.numel())
    if count == 0:
        raise InvalidInputError("evaluate_subnet got no evaluation batches: pass a non-empty held-out data loader")
    return {"accuracy": correct / count, "loss": loss_sum / count, "num_images": count}


# --------------------------------------------------------------------------- the data set
class AccuracyDataset:
    """Evaluated subnets: ``indices`` (n, L) int64, ``accuracies`` (n,) fractions, and the file header."""

    space = RenamedAttribute("arch_space")  # the old name, for one release

    @renamed_keywords(space="arch_space")
    def __init__(self, *, arch_space: ArchSpace, indices: np.ndarray, accuracies: np.ndarray,
                 header: Mapping[str, Any] | None = None) -> None:
        indices = as_index_array(arch_space, np.asarray(indices))
        accuracies = np.asarray(accuracies, dtype=np.float64)
        if accuracies.shape != (len(indices),):
            raise InvalidInputError(f"need one accuracy per subnet: {len(indices)} subnets, accuracies "
                                    f"{accuracies.shape}")
        _check_fractions(accuracies, "accuracies")
        self.arch_space, self.indices, self.accuracies = arch_space, indices, accuracies
        self.header = dict(header or {})

    def __len__(self) -> int:
        return len(self.indices)

    def take(self, rows: Sequence[int] | np.ndarray | slice) -> AccuracyDataset:
        """The subset at ``rows`` (same header)."""
        return AccuracyDataset(arch_space=self.arch_space, indices=self.indices[rows], accuracies=self.accuracies[rows],
                               header=self.header)

    @classmethod
    @renamed_keywords(space="arch_space")
    def load(cls, path: str | os.PathLike[str], *, arch_space: ArchSpace | None = None,
             complete: bool = False) -> AccuracyDataset:
        """Read the evaluated subnets of a data-set file (in plan order); ``complete=True`` refuses a
        file whose plan is not fully evaluated yet."""
        header, records, _ = _read_dataset_file(Path(path))
        stored_space = arch_space_from_signature(header["space"])
        if arch_space is not None:
            require_same_space(header["space"], arch_space, artefact=f"accuracy data set {path}")
        by_arch = {record["arch"]: record for record in records}
        for record in records:
            accuracy = record.get("accuracy")
            if isinstance(accuracy, bool) or not isinstance(accuracy, (int, float)) or not 0.0 <= accuracy <= 1.0:
                raise InvalidInputError(f"{path}: subnet {record.get('arch')!r} has accuracy {accuracy!r}; "
                                        "accuracies are fractions in [0, 1]")
        done = [arch for arch in header["archs"] if arch in by_arch]
        if complete and len(done) < len(header["archs"]):
            raise InvalidInputError(f"{path}: only {len(done)} of {len(header['archs'])} subnets evaluated; "
                             "resume the collection first")
        indices = np.array([by_arch[arch]["indices"] for arch in done], dtype=np.int64).reshape(
            len(done), len(stored_space.labels))
        accuracies = np.array([by_arch[arch]["accuracy"] for arch in done], dtype=np.float64)
        return cls(arch_space=stored_space, indices=indices, accuracies=accuracies, header=header)


def _read_dataset_file(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]], int]:
    """Header, complete records, and the byte length of the complete part (a line cut by a kill is
    dropped)."""
    if not path.is_file():
        raise MissingInputError(f"accuracy data set {str(path)!r} does not exist")
    data = path.read_bytes()
    lines = data.split(b"\n")
    try:
        header = json.loads(lines[0])
    except json.JSONDecodeError:
        raise InvalidInputError(f"{path} is not an ofa-nni accuracy data set (bad header line)") from None
    if not isinstance(header, dict) or header.get("format") != DATASET_FORMAT:
        raise InvalidInputError(f"{path} is not an ofa-nni accuracy data set")
    if header.get("format_version") != DATASET_FORMAT_VERSION:
        raise InvalidInputError(f"{path}: data-set format_version {header.get('format_version')!r} is not supported "
                         f"(this version reads {DATASET_FORMAT_VERSION})")
    records = []
    valid_length = len(lines[0]) + 1
    for line in lines[1:-1]:  # the part after the last newline is incomplete by construction
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
        valid_length += len(line) + 1
    return header, records, valid_length


def _write_dataset_file(path: Path, header: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> None:
    text = "".join(json.dumps(item, separators=(",", ":")) + "\n" for item in [header, *records])
    atomic_write(path, lambda file: file.write(text.encode()))


def collect_accuracy_dataset(
    supernet: Any,
    *,
    path: str | os.PathLike[str],
    num_subnets: int,
    calibration_batches: Iterable[Any],
    eval_batches: Iterable[Any],
    num_calibration_batches: int | None = None,
    seed: int = 0,
    data_description: str = "",
    data_fingerprint: str = "",
    show_progress: bool = True,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> AccuracyDataset:
    """Evaluate ``num_subnets`` subnets of a trained supernet and store them in ``path``.

    Each subnet (:func:`plan_subnets`) is frozen, its BN statistics are recalibrated on
    ``calibration_batches`` (OFA: ~2,000 training images), and it is evaluated on ``eval_batches``
    (held-out images). Results are appended to ``path`` one JSON line at a time (fsynced): a run
    that is killed resumes with the subnets not yet done; a file with more subnets than asked is
    reused as is; a file with fewer is extended (same seed).

    Args:
        supernet: The trained space, e.g. ``OFAMobileNetV3Space`` (needs ``arch_space`` and
            ``freeze(sample)``).
        calibration_batches, eval_batches: Re-iterable batches (e.g. DataLoaders) of
            ``(images, labels)``.
        data_description: Names the data (e.g. ``"digits held-out split"``); a resumed run must
            use the same.
        data_fingerprint: What the images are (:attr:`ofa_nni.data.ImageData.fingerprint`); a
            resumed run must evaluate the same images, and the same supernet weights (the file
            records a digest of them), or it is refused: its accuracies would be of other subnets.
        on_record: Called with each new record after it is stored (e.g. for logging).

    Raises:
        ValueError: if ``path`` belongs to another space, seed or data description.
    """
    arch_space: ArchSpace = supernet.arch_space
    path = Path(path)
    plan = plan_subnets(arch_space, num_subnets, seed)
    archs = [arch_space.format(arch_space.from_indices(row)) for row in plan]
    records: list[dict[str, Any]] = []
    calibration = {"num_batches": num_calibration_batches}
    weights = _weights_digest(supernet)
    if path.exists():
        header, records, valid_length = _read_dataset_file(path)
        require_same_space(header["space"], arch_space, artefact=f"accuracy data set {path}")
        # Files written before these were recorded have neither, and are taken on trust.
        if header.get("supernet_weights", weights) != weights:
            raise InvalidInputError(f"{path} holds accuracies of another supernet's subnets (weights digest "
                                    f"{header['supernet_weights']}, this supernet's {weights}); use another file "
                                    "or the supernet it was collected with")
        if data_fingerprint and header.get("data_fingerprint", data_fingerprint) != data_fingerprint:
            raise InvalidInputError(f"{path} was collected on other images than this run's (data fingerprint "
                                    f"{header['data_fingerprint']}, this data's {data_fingerprint}: the data file "
                                    "or folder was replaced or changed); use another file or the data it was "
                                    "collected on")
        for name, wanted in (("seed", seed), ("data", data_description), ("calibration", calibration)):
            if header.get(name) != wanted:
                raise InvalidInputError(f"{path} was collected with {name}={header.get(name)!r}, this run asks for "
                                 f"{wanted!r}; use another file or the same setting")
        stored = header["archs"]
        if stored != archs[: len(stored)] and archs != stored[: len(archs)]:
            raise InvalidInputError(f"{path}: its subnet list does not match seed {seed} (file edited?)")
        if len(archs) > len(stored):
            header["archs"], header["num_subnets"] = archs, len(archs)
            _write_dataset_file(path, header, records)  # extend the plan; records kept
        elif valid_length != path.stat().st_size:
            with open(path, "r+b") as file:  # drop a record cut by a kill
                file.truncate(valid_length)
    else:
        header = {
            "format": DATASET_FORMAT, "format_version": DATASET_FORMAT_VERSION, "space": arch_space.signature(),
            "seed": seed,
            "num_subnets": len(archs), "archs": archs, "data": data_description, "calibration": calibration,
            "supernet_weights": weights, "data_fingerprint": data_fingerprint,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "libraries": library_versions("torch", "numpy", "ofa_nni"),
        }
        _write_dataset_file(path, header, [])
    done = {record["arch"] for record in records}
    todo = [(arch, row) for arch, row in zip(archs, plan, strict=True) if arch not in done]

    from tqdm.auto import tqdm

    with open(path, "ab") as file, tqdm(total=len(archs), initial=len(archs) - len(todo), unit="subnet",
                                         desc="accuracy data set", disable=not show_progress,
                                         dynamic_ncols=True) as bar:
        for arch, row in todo:
            started = time.perf_counter()
            sample: Sample = arch_space.from_indices(row)
            subnet = supernet.freeze(sample)
            recalibrate_batchnorm(subnet, calibration_batches, num_calibration_batches)
            result = evaluate_subnet(subnet, eval_batches)
            record = {"arch": arch, "indices": row.tolist(), "accuracy": result["accuracy"], "loss": result["loss"],
                      "num_images": result["num_images"], "seconds": round(time.perf_counter() - started, 3)}
            file.write((json.dumps(record, separators=(",", ":")) + "\n").encode())
            file.flush()
            os.fsync(file.fileno())
            bar.update(1)
            bar.set_postfix(acc=f"{result['accuracy']:.4f}")
            if on_record is not None:
                on_record(record)
    dataset = AccuracyDataset.load(path, arch_space=arch_space)
    n = min(num_subnets, len(dataset))
    return dataset.take(slice(0, n))


def _weights_digest(supernet: Any) -> str:
    """16 hex digits of a SHA-256 of the supernet's weights and buffers (names, shapes, values)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(supernet.state_dict().items()):
        if isinstance(tensor, torch.Tensor):
            array = tensor.detach().cpu().contiguous()
            digest.update(f"{name}\0{array.dtype}\0{tuple(array.shape)}\0".encode())
            digest.update(array.reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()[:16]


# --------------------------------------------------------------------------- metrics
def predictor_metrics(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    """RMSE and MAE (in accuracy percentage points), Kendall tau and Spearman rho."""
    from scipy import stats

    predicted, actual = np.asarray(predicted, dtype=np.float64), np.asarray(actual, dtype=np.float64)
    error = predicted - actual
    constant = np.ptp(actual) == 0 or np.ptp(predicted) == 0
    return {
        "rmse_percent": float(np.sqrt(np.mean(error**2)) * 100.0),
        "mae_percent": float(np.mean(np.abs(error)) * 100.0),
        "kendall": float("nan") if constant else float(stats.kendalltau(predicted, actual).statistic),
        "spearman": float("nan") if constant else float(stats.spearmanr(predicted, actual).statistic),
        "num_subnets": int(len(actual)),
    }


# --------------------------------------------------------------------------- predictors
def _check_fractions(values: np.ndarray, what: str) -> None:
    if not (np.isfinite(values) & (values >= 0.0) & (values <= 1.0)).all():
        bad = values[~(np.isfinite(values) & (values >= 0.0) & (values <= 1.0))]
        raise InvalidInputError(f"{what} must be fractions in [0, 1] (accuracy 0.95, not 95), got {bad[:3].tolist()}")


def accuracy_to_logit(accuracies: np.ndarray) -> np.ndarray:
    """``log(a / (1 - a))`` of accuracies in [0, 1], with 0 and 1 moved :data:`LOGIT_MARGIN` inside."""
    clipped = np.clip(np.asarray(accuracies, dtype=np.float64), LOGIT_MARGIN, 1.0 - LOGIT_MARGIN)
    return np.log(clipped) - np.log1p(-clipped)


def logit_to_accuracy(logits: np.ndarray) -> np.ndarray:
    """The sigmoid: any finite or infinite logit maps into [0, 1] (no overflow warning)."""
    from scipy.special import expit

    return np.asarray(expit(np.asarray(logits, dtype=np.float64)), dtype=np.float64)


class AccuracyPredictor(abc.ABC):
    """Predicts the accuracy (a fraction) of subnets of :attr:`arch_space` from their one-hot encoding.

    Call it on an ``(n, L)`` index array (or sample dicts) to get an ``(n,)`` float64 array.
    :attr:`metrics` holds the held-out figures measured when it was built.
    """

    kind: ClassVar[str] = ""

    space = RenamedAttribute("arch_space")  # the old name, for one release

    @renamed_keywords(space="arch_space")
    def __init__(self, arch_space: ArchSpace) -> None:
        self.arch_space = arch_space
        self.metrics: dict[str, Any] = {}
        self.info: dict[str, Any] = {}

    # ---------------------------------------------------------------- to implement
    @abc.abstractmethod
    def fit_logits(self, features: np.ndarray, logits: np.ndarray) -> None:
        """Train on ``(n, feature_dim)`` features and the ``(n,)`` logits of their accuracies."""

    @abc.abstractmethod
    def predict_logits(self, features: np.ndarray) -> np.ndarray:
        """Predicted accuracy logits of ``(n, feature_dim)`` features."""

    @abc.abstractmethod
    def arrays(self) -> dict[str, np.ndarray]:
        """The learned numbers, by name (what :meth:`save` stores)."""

    @abc.abstractmethod
    def load_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Restore :meth:`arrays`."""

    def settings(self) -> dict[str, Any]:
        """Constructor arguments (JSON-able), stored with the predictor."""
        return {}

    @classmethod
    def check_stored(cls, settings: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        """Refuse stored settings the stored arrays cannot back (before anything is built from them);
        a kind whose settings size nothing has nothing to check."""
        return None

    # ---------------------------------------------------------------- use
    def fit(self, features: np.ndarray, accuracies: np.ndarray) -> None:
        """Train on ``(n, feature_dim)`` features and ``(n,)`` accuracies (fractions in [0, 1])."""
        accuracies = np.asarray(accuracies, dtype=np.float64)
        _check_fractions(accuracies, "training accuracies")
        if len(accuracies) < 2:
            raise InvalidInputError(
                f"an accuracy predictor needs at least 2 subnets to learn from, got {len(accuracies)}")
        self.fit_logits(features, accuracy_to_logit(accuracies))

    def predict_features(self, features: np.ndarray) -> np.ndarray:
        """Predicted accuracies of ``(n, feature_dim)`` features: in [0, 1] whatever the weights."""
        return logit_to_accuracy(self.predict_logits(features))

    def __call__(self, population: Any) -> Any:
        indices = as_index_array(self.arch_space, population)
        values = self.predict_features(self.arch_space.to_features(indices)).astype(np.float64)
        return float(values[0]) if isinstance(population, Mapping) else values

    def evaluate(self, dataset: AccuracyDataset) -> dict[str, float]:
        """:func:`predictor_metrics` of this predictor on ``dataset``."""
        return predictor_metrics(self(dataset.indices), dataset.accuracies)

    # ---------------------------------------------------------------- file
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write an ``.npz``: the arrays plus a JSON ``metadata`` string (no pickled objects)."""
        metadata = {
            "format": PREDICTOR_FORMAT, "format_version": PREDICTOR_FORMAT_VERSION, "kind": self.kind,
            "settings": self.settings(), "space": self.arch_space.signature(),
            "encoding": {"name": ENCODING, "feature_dim": self.arch_space.feature_dim},
            "metrics": self.metrics, "info": self.info,
        }
        arrays = {f"array.{name}": value for name, value in self.arrays().items()}
        buffer = io.BytesIO()
        np.savez(buffer, metadata=np.array(json.dumps(metadata)), **arrays)  # type: ignore[arg-type]
        atomic_write(path, lambda file: file.write(buffer.getvalue()))

    @staticmethod
    @renamed_keywords(space="arch_space")
    def load(path: str | os.PathLike[str], *, arch_space: ArchSpace | None = None) -> AccuracyPredictor:
        """Read a predictor saved by :meth:`save`; with ``arch_space``, refuse one built for another space
        (ValueError naming the differing fields)."""
        path = Path(path)
        if not path.is_file():
            raise MissingInputError(
                f"predictor {str(path)!r} does not exist (build one with 'ofa-nni predictor build')")
        with open(path, "rb") as file:
            is_zip = file.read(4) == b"PK\x03\x04"  # what np.savez writes; anything else is refused unread
        if not is_zip:
            raise InvalidInputError(f"{path} is not an ofa-nni accuracy predictor (not an .npz archive; build one with "
                             "'ofa-nni predictor build')")
        try:
            check_npz_sizes(path, allow_compressed=False)  # before numpy allocates a declared shape
            with np.load(path, allow_pickle=False) as archive:
                metadata = json.loads(str(archive["metadata"]))
                arrays = {name[len("array."):]: archive[name] for name in archive.files if name.startswith("array.")}
        except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile) as error:
            raise InvalidInputError(f"{path} is not an ofa-nni accuracy predictor or is damaged "
                             f"({type(error).__name__}: {error})") from None
        if not isinstance(metadata, dict):
            raise InvalidInputError(f"{path} is not an ofa-nni accuracy predictor (its metadata is not a JSON object)")
        if metadata.get("format") != PREDICTOR_FORMAT:
            raise InvalidInputError(f"{path} is not an ofa-nni accuracy predictor (format {metadata.get('format')!r})")
        version = metadata.get("format_version")
        if version == 1:
            raise OutdatedPredictorError(
                f"{path}: predictor format_version 1 (ofa-nni 0.1) regressed accuracy directly and could predict "
                f"above 100%; this version reads {PREDICTOR_FORMAT_VERSION} (bounded); rebuild it with "
                "'ofa-nni predictor build --dataset DATASET.subnets.jsonl --out PREDICTOR.npz' from the data set "
                "it was built on")
        if version != PREDICTOR_FORMAT_VERSION:
            raise InvalidInputError(f"{path}: predictor format_version {version!r} is not supported "
                                    f"(this version reads {PREDICTOR_FORMAT_VERSION})")
        encoding = metadata.get("encoding")
        if not isinstance(encoding, dict) or encoding.get("name") != ENCODING:
            raise InvalidInputError(f"{path}: unknown feature encoding {encoding!r}; expected {ENCODING!r}")
        if not isinstance(metadata.get("space"), dict):
            raise InvalidInputError(f"{path}: damaged accuracy predictor (no space signature in its metadata)")
        if arch_space is not None:
            require_same_space(metadata["space"], arch_space, artefact=f"accuracy predictor {path}")
        kinds = {cls.kind: cls for cls in PREDICTOR_CLASSES}
        kind = metadata.get("kind")
        if not isinstance(kind, str) or kind not in kinds:
            raise InvalidInputError(f"{path}: unknown predictor kind {kind!r}; known: {sorted(kinds)}")
        settings = metadata.get("settings", {})
        if not isinstance(settings, dict):
            raise InvalidInputError(f"{path}: damaged accuracy predictor (settings {settings!r} is not a JSON object)")
        non_finite = sorted(name for name, value in arrays.items()
                            if value.dtype.kind not in "biuf" or not np.isfinite(value).all())
        if non_finite:
            raise InvalidInputError(f"{path}: damaged accuracy predictor (arrays {non_finite[:5]} are not "
                                    "finite numbers)")
        try:
            kinds[kind].check_stored(settings, arrays)
            predictor = kinds[kind](arch_space=arch_space_from_signature(metadata["space"]), **settings)
            predictor.load_arrays(arrays)
            # One prediction checks that the arrays fit the space's features (shapes) and are finite.
            if not np.isfinite(predictor(predictor.arch_space.random_indices(1, 0))).all():
                raise InvalidInputError("it predicts a non-finite accuracy")
        except (KeyError, TypeError, ValueError) as error:
            raise InvalidInputError(f"{path}: damaged accuracy predictor ({type(error).__name__}: {error})") from None
        predictor.metrics, predictor.info = metadata.get("metrics", {}), metadata.get("info", {})
        return predictor


class MLPAccuracyPredictor(AccuracyPredictor):
    """OFA's accuracy predictor: MLP ``feature_dim -> 400 -> 400 -> 400 -> 1`` (ReLU), the output
    layer without bias, plus a constant base (the mean of the training logits); the prediction is
    the sigmoid of that sum (OFA's reference has no sigmoid: see the module docstring).

    Trained with Adam (lr 1e-3, weight decay 1e-4, the reference's recipe) on mean squared error
    (of logits) for ``steps`` mini-batch steps with a cosine learning-rate decay; deterministic for
    a seed. Prediction is plain numpy.

    ``output="accuracy"`` holds a released predictor of mit-han-lab
    (:mod:`ofa_nni.ofa_released`): its weights regress the accuracy itself, so the prediction is
    the sum as the reference computes it (equal to the reference's), kept in [0, 1] by clipping,
    the only bound a fixed foreign model allows (its ImageNet predictions lie far inside it). Our
    own predictors are never trained this way.
    """

    kind = "mlp"
    OUTPUTS = ("logit", "accuracy")

    @renamed_keywords(space="arch_space")
    def __init__(self, *, arch_space: ArchSpace, hidden_size: int = 400, num_layers: int = 3, steps: int = 1000,
                 batch_size: int = 128, learning_rate: float = 1e-3, weight_decay: float = 1e-4,
                 seed: int = 0, output: str = "logit") -> None:
        super().__init__(arch_space)
        if output not in self.OUTPUTS:
            raise InvalidInputError(f"MLP predictor output {output!r} is not known; allowed: {list(self.OUTPUTS)}")
        self.output = output
        self.hidden_size, self.num_layers, self.steps, self.batch_size = hidden_size, num_layers, steps, batch_size
        self.learning_rate, self.weight_decay, self.seed = learning_rate, weight_decay, seed
        self.weights: list[np.ndarray] = []
        self.biases: list[np.ndarray] = []
        self.base_logit = 0.0

    def settings(self) -> dict[str, Any]:
        return {"hidden_size": self.hidden_size, "num_layers": self.num_layers, "steps": self.steps,
                "batch_size": self.batch_size, "learning_rate": self.learning_rate,
                "weight_decay": self.weight_decay, "seed": self.seed,
                **({"output": self.output} if self.output != "logit" else {})}

    def predict_features(self, features: np.ndarray) -> np.ndarray:
        if self.output == "accuracy":
            return np.clip(self.predict_logits(features), 0.0, 1.0)  # the released sum, see the class docstring
        return super().predict_features(features)

    @classmethod
    def check_stored(cls, settings: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        layers = settings.get("num_layers", 3)
        if isinstance(layers, bool) or not isinstance(layers, int) or not 1 <= layers <= len(arrays):
            raise InvalidInputError(f"num_layers {layers!r} does not match the {len(arrays)} arrays stored")

    def fit_logits(self, features: np.ndarray, logits: np.ndarray) -> None:
        self.base_logit = float(np.mean(logits))
        # Learn the standardised residual; the output layer's weights are rescaled afterwards, so the
        # stored model is exactly OFA's (linear output without bias + base), before the sigmoid.
        scale = float(np.std(logits)) or 1.0
        x = torch.as_tensor(features, dtype=torch.float32)
        y = torch.as_tensor((logits - self.base_logit) / scale, dtype=torch.float32)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            sizes = [x.shape[1]] + [self.hidden_size] * self.num_layers
            layers: list[nn.Module] = []
            for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
                layers += [nn.Linear(n_in, n_out), nn.ReLU()]
            layers.append(nn.Linear(sizes[-1], 1, bias=False))
            model = nn.Sequential(*layers)
            optimizer = torch.optim.Adam(model.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
            schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.steps)
            generator = torch.Generator().manual_seed(self.seed)
            batch = min(self.batch_size, len(y))
            for _ in range(self.steps):
                rows = torch.randint(len(y), (batch,), generator=generator)
                loss = F.mse_loss(model(x[rows]).squeeze(1), y[rows])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
        linears = [m for m in model if isinstance(m, nn.Linear)]
        self.weights = [m.weight.detach().numpy().T.copy() for m in linears]
        self.weights[-1] *= scale
        self.biases = [m.bias.detach().numpy().copy() for m in linears[:-1] if m.bias is not None]

    def predict_logits(self, features: np.ndarray) -> np.ndarray:
        if not self.weights:
            raise InvalidInputError("this predictor is not trained yet: call fit() or build_accuracy_predictor()")
        h = np.asarray(features, dtype=np.float32)
        for weight, bias in zip(self.weights[:-1], self.biases, strict=True):
            # In place on the product: the same numbers as ``maximum(h @ weight + bias, 0)`` without
            # two more (n, hidden) arrays per layer (a search scores thousands of rows per call).
            h = h @ weight
            if h.dtype == np.result_type(h, bias):
                h += bias
            else:  # e.g. float64 biases of a float32 layer: the sum is float64, as before
                h = h + bias
            np.maximum(h, 0.0, out=h)
        return (h @ self.weights[-1])[:, 0].astype(np.float64) + self.base_logit

    def arrays(self) -> dict[str, np.ndarray]:
        arrays = {f"weight{i}": w for i, w in enumerate(self.weights)}
        arrays.update({f"bias{i}": b for i, b in enumerate(self.biases)})
        arrays["base_logit"] = np.array(self.base_logit)
        return arrays

    def load_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.weights = [arrays[f"weight{i}"] for i in range(self.num_layers + 1)]
        self.biases = [arrays[f"bias{i}"] for i in range(self.num_layers)]
        self.base_logit = float(arrays["base_logit"])


class MLPEnsemblePredictor(AccuracyPredictor):
    """The mean of ``num_models`` OFA MLPs trained with different seeds (seed, seed+1, ...): less
    variance than one MLP when the data set is small."""

    kind = "mlp-ensemble"

    @renamed_keywords(space="arch_space")
    def __init__(self, *, arch_space: ArchSpace, num_models: int = 5, steps: int = 1000, seed: int = 0) -> None:
        super().__init__(arch_space)
        if num_models < 1:
            raise InvalidInputError(f"num_models must be >= 1, got {num_models}")
        self.num_models, self.steps, self.seed = num_models, steps, seed
        self.members = [MLPAccuracyPredictor(arch_space=arch_space, steps=steps, seed=seed + i)
                        for i in range(num_models)]

    def settings(self) -> dict[str, Any]:
        return {"num_models": self.num_models, "steps": self.steps, "seed": self.seed}

    @classmethod
    def check_stored(cls, settings: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        # A file declaring 10^9 members would otherwise build 10^9 MLP objects before failing.
        stored = len({name.split(".", 1)[0] for name in arrays})
        declared = settings.get("num_models", 5)
        if isinstance(declared, bool) or not isinstance(declared, int) or declared != stored:
            raise InvalidInputError(f"num_models {declared!r} does not match the {stored} models stored")

    def fit_logits(self, features: np.ndarray, logits: np.ndarray) -> None:
        for member in self.members:
            member.fit_logits(features, logits)

    def predict_logits(self, features: np.ndarray) -> np.ndarray:
        return np.mean([member.predict_logits(features) for member in self.members], axis=0)

    def arrays(self) -> dict[str, np.ndarray]:
        return {f"m{i}.{name}": value for i, member in enumerate(self.members)
                for name, value in member.arrays().items()}

    def load_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        for i, member in enumerate(self.members):
            prefix = f"m{i}."
            member.load_arrays({name[len(prefix):]: value for name, value in arrays.items() if name.startswith(prefix)})


class RidgeAccuracyPredictor(AccuracyPredictor):
    """Ridge regression of the accuracy logit on the one-hot features (an additive model of the
    logit: each block setting adds a fixed amount); the penalty is chosen by efficient leave-one-out
    among ``alphas``."""

    kind = "ridge"

    @renamed_keywords(space="arch_space")
    def __init__(self, *, arch_space: ArchSpace,
                 alphas: Sequence[float] = tuple(10.0 ** np.arange(-3, 3.5, 0.5))) -> None:
        super().__init__(arch_space)
        self.alphas = tuple(float(a) for a in alphas)
        self.coef = np.zeros(arch_space.feature_dim)
        self.intercept = 0.0
        self.alpha = float("nan")

    def settings(self) -> dict[str, Any]:
        return {"alphas": list(self.alphas)}

    def fit_logits(self, features: np.ndarray, logits: np.ndarray) -> None:
        model = fit_ridge(features, logits, self.alphas)
        self.coef, self.intercept, self.alpha = model.coef, float(model.intercept), model.alpha

    def predict_logits(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features, dtype=np.float64) @ self.coef + self.intercept

    def arrays(self) -> dict[str, np.ndarray]:
        return {"coef": self.coef, "intercept": np.array(self.intercept), "alpha": np.array(self.alpha)}

    def load_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.coef, self.intercept, self.alpha = arrays["coef"], float(arrays["intercept"]), float(arrays["alpha"])


PREDICTOR_CLASSES: tuple[type[AccuracyPredictor], ...] = (MLPAccuracyPredictor, MLPEnsemblePredictor,
                                                          RidgeAccuracyPredictor)
PREDICTOR_KINDS: tuple[str, ...] = tuple(cls.kind for cls in PREDICTOR_CLASSES) + ("auto",)
"""``kind`` values of :func:`build_accuracy_predictor`."""


def _split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if not 0.0 < test_fraction < 1.0:
        raise InvalidInputError(f"test_fraction must be in (0, 1), got {test_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(n * test_fraction)))
    if n - n_test < 2:
        raise InvalidInputError(f"{n} subnets are too few to hold out {test_fraction:.0%} and still train on 2; "
                                "collect more")
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def _new_predictor(kind: str, arch_space: ArchSpace, seed: int, steps: int) -> AccuracyPredictor:
    if kind == MLPAccuracyPredictor.kind:
        return MLPAccuracyPredictor(arch_space=arch_space, steps=steps, seed=seed)
    if kind == MLPEnsemblePredictor.kind:
        return MLPEnsemblePredictor(arch_space=arch_space, steps=steps, seed=seed)
    if kind == RidgeAccuracyPredictor.kind:
        return RidgeAccuracyPredictor(arch_space=arch_space)
    raise InvalidInputError(f"unknown predictor kind {kind!r}; allowed: {', '.join(PREDICTOR_KINDS)}")


def build_accuracy_predictor(
    dataset: AccuracyDataset,
    *,
    kind: str = "mlp",
    test_fraction: float = 0.2,
    seed: int = 0,
    steps: int = 1000,
) -> AccuracyPredictor:
    """Train a predictor on ``dataset`` minus a held-out split, and measure it on that split.

    ``kind`` is one of :data:`PREDICTOR_KINDS`; ``"auto"`` trains every kind on 80% of the
    training split, keeps the one with the best Kendall tau on the other 20% (ranking is what the
    search uses), and retrains it on the whole training split — the held-out split is never used
    to choose. ``predictor.metrics`` holds the held-out RMSE/MAE (percentage points), Kendall tau
    and Spearman rho; ``predictor.info`` the split and, for ``"auto"``, every kind's validation
    figures.
    """
    if kind not in PREDICTOR_KINDS:
        raise InvalidInputError(f"unknown predictor kind {kind!r}; allowed: {', '.join(PREDICTOR_KINDS)}")
    train_rows, test_rows = _split(len(dataset), test_fraction, seed)
    features = dataset.arch_space.to_features(dataset.indices)
    accuracies = dataset.accuracies
    info: dict[str, Any] = {"num_train": int(len(train_rows)), "num_test": int(len(test_rows)),
                            "test_fraction": test_fraction, "split_seed": seed}
    started = time.perf_counter()
    if kind == "auto":
        fit_rows, val_rows = _split(len(train_rows), 0.2, seed + 1)
        fit_rows, val_rows = train_rows[fit_rows], train_rows[val_rows]
        selection = {}
        for candidate in PREDICTOR_KINDS[:-1]:
            model = _new_predictor(candidate, dataset.arch_space, seed, steps)
            model.fit(features[fit_rows], accuracies[fit_rows])
            selection[candidate] = predictor_metrics(model.predict_features(features[val_rows]), accuracies[val_rows])
        kind = max(selection, key=lambda k: (np.nan_to_num(selection[k]["kendall"], nan=-1.0),
                                             -selection[k]["rmse_percent"]))
        info["selection"] = {"criterion": "validation Kendall tau (inner 20% of the training split)",
                             "chosen": kind, "validation": selection}
    predictor = _new_predictor(kind, dataset.arch_space, seed, steps)
    predictor.fit(features[train_rows], accuracies[train_rows])
    info["train_seconds"] = round(time.perf_counter() - started, 2)
    predictor.metrics = predictor_metrics(predictor.predict_features(features[test_rows]), accuracies[test_rows])
    predictor.info = info
    return predictor

