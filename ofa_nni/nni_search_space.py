"""NNI's HPO search-space JSON for an OFA space: generated from :class:`~ofa_nni.arch.ArchSpace`, checked.

``nnictl create --config`` needs the search space as JSON (``searchSpaceFile``). Writing it by hand
would let it drift from the space the supernet was trained on, so it is always *generated*: one
``choice`` per label, in :attr:`ArchSpace.labels` order, with the label's choices as values::

    {"stage1.block1.kernel": {"_type": "choice", "_value": [3, 5, 7]}, ..., "resolution": {...}}

:func:`check_nni_search_space` is the inverse check the tuner runs when NNI hands it the search
space: it names the first label whose entry differs from the space.

:func:`arch_space_from_spec` builds the space from a small description that fits in a YAML file
(``classArgs`` of the NNI tuner, the ``ofa-nni nni search-space`` options): a preset of
:data:`ofa_nni.training.config.SPACE_PRESETS` plus overrides and ``num_classes``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from ofa_nni.arch import ArchSpace
from ofa_nni.errors import InvalidInputError

__all__ = [
    "nni_search_space",
    "dumps_nni_search_space",
    "check_nni_search_space",
    "arch_space_from_spec",
]

_REGENERATE_HINT = "regenerate the search space file with 'ofa-nni nni search-space'"


def nni_search_space(space: ArchSpace) -> dict[str, dict[str, Any]]:
    """NNI's search space of ``space``: ``{label: {"_type": "choice", "_value": [choices...]}}``."""
    return {label: {"_type": "choice", "_value": list(space.choices(label))} for label in space.labels}


def dumps_nni_search_space(space: ArchSpace) -> str:
    """The search space as the JSON text written to ``search_space.json`` (stable formatting, so a
    checked-in file can be compared with a freshly generated one byte for byte)."""
    lines = [f"  {json.dumps(label)}: {json.dumps(entry)}" for label, entry in nni_search_space(space).items()]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def check_nni_search_space(space: ArchSpace, search_space: Any) -> None:
    """Raise ``ValueError`` naming the first label where ``search_space`` (NNI's JSON, parsed)
    differs from ``space``: a missing or unknown label, a type other than ``choice``, or other values.

    The order of a label's values does not matter (NNI's ``choice`` is unordered); the set does.
    """
    if not isinstance(search_space, Mapping):
        raise InvalidInputError(
            f"the NNI search space must be a JSON object {{label: {{'_type': 'choice', '_value': [...]}}}}, "
            f"got {type(search_space).__name__}; {_REGENERATE_HINT}"
        )
    for label in space.labels:
        allowed = list(space.choices(label))
        if label not in search_space:
            raise InvalidInputError(f"the NNI search space lacks label {label!r} (choices {allowed}); {_REGENERATE_HINT}")
        entry = search_space[label]
        if not isinstance(entry, Mapping) or entry.get("_type") != "choice":
            kind = entry.get("_type") if isinstance(entry, Mapping) else type(entry).__name__
            raise InvalidInputError(
                f"the NNI search space entry of {label!r} must be {{'_type': 'choice', '_value': {allowed}}}, "
                f"got type {kind!r}; {_REGENERATE_HINT}"
            )
        values = entry.get("_value")
        if not isinstance(values, list) or not _same_choices(values, allowed):
            raise InvalidInputError(
                f"the NNI search space gives {label!r} the values {values!r}, but the space's choices are "
                f"{allowed}; {_REGENERATE_HINT}"
            )
    labels = set(space.labels)
    unknown = [label for label in search_space if label not in labels]
    if unknown:
        raise InvalidInputError(
            f"the NNI search space has label {unknown[0]!r}, which the space does not have "
            f"({space.num_stages} stages of up to {space.max_depth} blocks); {_REGENERATE_HINT}"
        )


def _same_choices(values: list[Any], allowed: list[Any]) -> bool:
    if len(values) != len(allowed):
        return False
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return len(numbers) == len(values) and sorted(numbers) == sorted(allowed)


def arch_space_from_spec(spec: Mapping[str, Any]) -> ArchSpace:
    """An :class:`ArchSpace` from ``{"preset": "cpu", "num_classes": 10, <ArchSpace field>: ...}``.

    ``preset`` (default ``"ofa-mobilenetv3"``, the paper's space) names an entry of
    :data:`ofa_nni.training.config.SPACE_PRESETS`, the same presets a training configuration's
    ``space.preset`` uses; any other key overrides one :class:`ArchSpace` field.

    Raises:
        ValueError: an unknown preset or key (the message lists the allowed ones), or invalid values.
    """
    from ofa_nni.training.config import SPACE_PRESETS

    if not isinstance(spec, Mapping):
        raise InvalidInputError(f"a space description must be a mapping such as {{'preset': 'cpu', 'num_classes': 10}}, "
                         f"got {spec!r}")
    fields = [field.name for field in dataclasses.fields(ArchSpace)]
    preset = spec.get("preset", "ofa-mobilenetv3")
    if not isinstance(preset, str) or preset not in SPACE_PRESETS:
        raise InvalidInputError(f"space preset {preset!r} is not known; allowed: {list(SPACE_PRESETS)}")
    unknown = [key for key in spec if key != "preset" and key not in fields]
    if unknown:
        raise InvalidInputError(f"space description: unknown key {unknown[0]!r}; allowed: {['preset', *fields]}")
    kwargs: dict[str, Any] = dict(SPACE_PRESETS[preset])
    kwargs.update({key: tuple(value) if isinstance(value, list) else value
                   for key, value in spec.items() if key != "preset"})
    return ArchSpace(**kwargs)
