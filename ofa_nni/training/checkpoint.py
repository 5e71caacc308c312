"""Supernet training checkpoints: atomic writes, safe loads, clear errors.

A checkpoint is a plain dict of tensors and primitive containers, so it loads with
``torch.load(..., weights_only=True)`` (no unpickling of arbitrary objects)::

    format, version             "ofa-nni-training", 1
    space                       ArchSpace.signature() of the supernet
    schedule                    [Phase.to_dict(), ...]
    seed                        the run's seed
    epochs_completed            global epochs done (the next one to run is this index)
    steps_completed             optimizer steps done
    phase_index, phase_name     phase of the last completed epoch
    supernet                    state dict of the supernet
    teacher                     state dict of the frozen full network (None before distillation)
    optimizer                   optimizer state dict
    rng                         {"torch": ByteTensor}
    history                     [{epoch, phase, train_loss, val accuracies, seconds}, ...]
    config                      the run's configuration (plain data) or None

Files are written to a temporary file in the same directory, flushed to disk and renamed over the
target (``os.replace``), so a kill at any moment leaves either the old or the new file.
"""

from __future__ import annotations

import io
import pickle
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ofa_nni._artifacts import atomic_write_bytes
from ofa_nni.errors import InvalidInputError, MissingInputError

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "check_compatible",
    "atomic_torch_save",
    "load_torch_file",
    "non_finite_weights",
    "TrainingDivergedError",
]

CHECKPOINT_FORMAT = "ofa-nni-training"
CHECKPOINT_VERSION = 1
_REQUIRED_KEYS = ("space", "schedule", "seed", "epochs_completed", "steps_completed", "supernet", "optimizer",
                  "history")


class CheckpointError(InvalidInputError):
    """A checkpoint that is corrupt, not ours, or made for another space or schedule."""


class TrainingDivergedError(InvalidInputError):
    """A training run whose loss or weights stopped being finite numbers (a learning rate too high)."""


def non_finite_weights(tensors: Mapping[str, Any]) -> tuple[int, int, list[str]]:
    """``(non-finite values, values, names of the tensors holding them)`` over the floating-point
    tensors of ``tensors`` (a state dict): a supernet that holds NaN or inf predicts nothing."""
    bad, total, names = 0, 0, []
    for name, tensor in tensors.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point():
            cpu = tensor.detach().cpu()
            values = (cpu if cpu.dtype in (torch.float32, torch.float64) else cpu.float()).numpy()
            total += values.size
            # One float64 sum per tensor (NaN and inf carry through it): torch.isfinite over every
            # value took 4 s for a 6.4 M-weight supernet on 2 busy cores, numpy's sum 0.04 s.
            if not np.isfinite(values.sum(dtype=np.float64)):
                bad += int(np.count_nonzero(~np.isfinite(values)))
                names.append(name)
    return bad, total, names


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to ``path`` atomically (temporary file in the same directory + rename).

    The file is serialized in memory first: torch's own writer, meeting a full disk, can abort the
    process (a ``c10::Error``, SIGABRT) where a Python write raises a clear ``OutputError``."""
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getbuffer())
    return path


def save_checkpoint(path: str | Path, state: Mapping[str, Any]) -> Path:
    """Write a training checkpoint (``state`` holds the keys listed in the module docstring)."""
    missing = [key for key in _REQUIRED_KEYS if key not in state]
    if missing:
        raise InvalidInputError(f"checkpoint state lacks {missing}")
    return atomic_torch_save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **state}, path)


def load_torch_file(path: Path, *, map_location: str | torch.device = "cpu", what: str = "checkpoint") -> Any:
    """``torch.load(path, weights_only=True)`` with one clear :class:`CheckpointError` for a file that
    is not a torch file, is truncated, or holds Python objects beyond tensors and plain containers
    (refused, never unpickled: loading them could run code the file brings)."""
    try:
        with warnings.catch_warnings():
            # torch warns about a plain pickle's protocol before refusing it; the refusal says it all.
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        if "GLOBAL" in str(error):  # weights_only met a class or function reference
            raise CheckpointError(
                f"{what} {str(path)!r} is corrupt or not a torch file of ofa-nni: it holds Python objects other "
                "than tensors and plain containers, refused unread (weights_only=True: unpickling them could run "
                "code from the file)"
            ) from None
        raise CheckpointError(f"{what} {str(path)!r} is corrupt or not a torch file (it does not unpickle as "
                              "tensors and plain containers)") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as error:
        first_line = str(error).splitlines()[0] if str(error) else "the file ends early"
        raise CheckpointError(
            f"{what} {str(path)!r} is corrupt or not a torch file ({type(error).__name__}: {first_line})"
        ) from None


def load_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a training checkpoint with ``weights_only=True``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: the file is truncated/corrupt, not an ofa-nni training checkpoint, or of
            an unknown version.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"checkpoint {str(path)!r} does not exist")
    try:
        data = load_torch_file(path, map_location=map_location)
    except CheckpointError as error:
        raise CheckpointError(f"{error}; delete it to start over, or resume from another checkpoint of the run "
                              "directory") from None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{str(path)!r} is not an ofa-nni training checkpoint (no format {CHECKPOINT_FORMAT!r})")
    if data.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{str(path)!r} has checkpoint version {data.get('version')!r}; this ofa-nni reads version "
            f"{CHECKPOINT_VERSION}"
        )
    missing = [key for key in _REQUIRED_KEYS if key not in data]
    if missing:
        raise CheckpointError(f"checkpoint {str(path)!r} lacks {missing}")
    return data


def _differences(name: str, stored: Any, current: Any) -> list[str]:
    if isinstance(stored, Mapping) and isinstance(current, Mapping):
        keys = sorted(set(stored) | set(current), key=str)
        return [d for key in keys for d in _differences(f"{name}.{key}", stored.get(key), current.get(key))]
    if isinstance(stored, (list, tuple)) and isinstance(current, (list, tuple)) and len(stored) == len(current):
        pairs = enumerate(zip(stored, current, strict=True))
        return [d for i, (a, b) in pairs for d in _differences(f"{name}[{i}]", a, b)]
    return [] if stored == current else [f"{name}: checkpoint has {stored!r}, this run has {current!r}"]


def check_compatible(checkpoint: Mapping[str, Any], *, space: Mapping[str, Any], schedule: Sequence[Mapping[str, Any]],
                     seed: int, path: str | Path = "checkpoint") -> None:
    """Refuse to resume from a checkpoint of another space, schedule or seed (a resumed run must
    follow the very schedule it started with).

    Raises:
        CheckpointError: listing the first differences.
    """
    differences = (
        _differences("space", checkpoint["space"], dict(space))
        + _differences("schedule", list(checkpoint["schedule"]), [dict(phase) for phase in schedule])
        + _differences("seed", checkpoint["seed"], seed)
    )
    if differences:
        shown = "; ".join(differences[:4]) + (f"; ... ({len(differences)} differences)" if len(differences) > 4 else "")
        raise CheckpointError(
            f"cannot resume from {str(path)!r}: it belongs to another run ({shown}). Resume with the "
            "configuration that started it, or use a new run directory"
        )
