"""The supernet file (``supernet.pt``): a trained space's weights and the arguments that rebuild it.

The format belongs to the spaces: every registered space gives ``space_name`` and ``space_kwargs()``,
and this module writes them beside the state dict; loading rebuilds the registered class with those
arguments and checks the weights fit. Files are read with ``weights_only=True`` (no pickle code runs).

Versions: 1 (written before spaces had names) is read as OFA-MobileNetV3; 2 records ``space_name``.
A training checkpoint (``checkpoints/*.pt``) loads too: it holds the same space description.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ofa_nni._deprecation import renamed_keywords
from ofa_nni.errors import MissingInputError
from ofa_nni.training.checkpoint import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    atomic_torch_save,
    load_checkpoint,
    load_torch_file,
    non_finite_weights,
)
from search_spaces.registry import DEFAULT_SPACE, space_class, space_name_for_layout

__all__ = ["SUPERNET_FORMAT", "SUPERNET_VERSION", "save_supernet", "load_supernet"]

SUPERNET_FORMAT = "ofa-nni-supernet"
SUPERNET_VERSION = 2


@renamed_keywords(space="supernet")
def save_supernet(supernet: Any, path: str | Path, *, history: Sequence[Mapping[str, Any]] = ()) -> Path:
    """Write ``supernet`` (weights and construction arguments) to ``path`` atomically."""
    return atomic_torch_save({
        "format": SUPERNET_FORMAT,
        "version": SUPERNET_VERSION,
        "space_name": supernet.space_name,
        "space": supernet.space_kwargs(),
        "state_dict": supernet.state_dict(),
        "history": [dict(record) for record in history],
    }, path)


def load_supernet(path: str | Path, *, map_location: str | torch.device = "cpu") -> Any:
    """The trained space in ``path`` (a supernet file or a training checkpoint), in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"supernet file {str(path)!r} does not exist")
    data = load_torch_file(path, map_location=map_location, what="supernet file")
    from_checkpoint = isinstance(data, dict) and data.get("format") == CHECKPOINT_FORMAT
    if from_checkpoint:
        data = load_checkpoint(path, map_location=map_location)
        space_kwargs, state_dict = dict(data["space"]), data["supernet"]
        config = data.get("config") or {}
        space_config = config.get("space") or {}
        # A run without a configuration (an NNI strategy driven from Python) names no space: the
        # signature's layout tells the MobileNet-family spaces and ResNet apart.
        name = space_config.get("name") or space_name_for_layout(space_kwargs.get("layout"))
        if space_config.get("dropout") is not None:
            space_kwargs["dropout"] = space_config["dropout"]
    elif isinstance(data, dict) and data.get("format") == SUPERNET_FORMAT:
        version = data.get("version")
        if version not in (1, SUPERNET_VERSION):
            raise CheckpointError(f"supernet file {str(path)!r} has version {version!r}; this ofa-nni reads "
                                  f"versions 1 and {SUPERNET_VERSION} (upgrade ofa-nni to read it)")
        if not isinstance(data.get("space"), dict) or not isinstance(data.get("state_dict"), dict):
            raise CheckpointError(f"supernet file {str(path)!r} is damaged: it lacks its space or its weights")
        space_kwargs, state_dict = dict(data["space"]), data["state_dict"]
        name = data.get("space_name", DEFAULT_SPACE) if version == SUPERNET_VERSION else DEFAULT_SPACE
    else:
        raise CheckpointError(f"{str(path)!r} is neither an ofa-nni supernet nor a training checkpoint")
    if not isinstance(name, str):
        raise CheckpointError(f"supernet file {str(path)!r}: space_name must be a string, got {name!r}")
    try:
        cls = space_class(name)
    except ValueError as error:
        raise CheckpointError(f"supernet file {str(path)!r}: {error}") from None
    kwargs: dict[str, Any] = {key: tuple(v) if isinstance(v, list) else v for key, v in space_kwargs.items()}
    if from_checkpoint:  # a checkpoint records the arch signature, not the class's arguments
        kwargs = cls.kwargs_from_arch_signature(kwargs)
    bad, total, names = non_finite_weights(state_dict) if isinstance(state_dict, dict) else (0, 0, [])
    if bad:
        raise CheckpointError(
            f"supernet file {str(path)!r} holds {bad:,} non-finite weights (NaN or inf) of {total:,}, in {names[0]!r}"
            f"{f' and {len(names) - 1} more tensors' if len(names) > 1 else ''}: the training run that wrote it "
            "diverged; train again with a lower learning rate"
        )
    # Sizes come from the file: the space is built on the meta device (no memory), the stored weights
    # must have its shapes and are then assigned to it. A small file declaring 10^9 classes is refused
    # by the shape check instead of allocating 256 GB.
    try:
        with torch.device("meta"):
            supernet = cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{str(path)!r}: its space description is invalid ({error})") from None
    _load_weights(supernet, state_dict, path)
    unset = [name for name, tensor in [*supernet.named_parameters(), *supernet.named_buffers()] if tensor.is_meta]
    if unset:
        raise CheckpointError(f"{str(path)!r}: its weights lack {unset[:3]} ({len(unset)} tensors); the file was "
                              "edited or assembled from another run")
    return supernet.eval()


def _load_weights(supernet: Any, state_dict: Any, path: Path) -> None:
    try:
        supernet.load_state_dict(state_dict, assign=True)
    except (RuntimeError, TypeError, AttributeError) as error:  # weights of another space, or not a state dict
        details = [line.strip() for line in str(error).splitlines()[1:] if line.strip()]
        shown = "; ".join(details[:2]) + (f"; ... ({len(details)} problems)" if len(details) > 2 else "")
        raise CheckpointError(
            f"{str(path)!r}: its weights do not fit the space it describes ({shown or error}); the file was "
            "edited or assembled from another run"
        ) from None
