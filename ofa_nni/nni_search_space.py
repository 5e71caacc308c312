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

import json
from collections.abc import Mapping
from typing import Any

from ofa_nni._deprecation import renamed_keywords
from ofa_nni.arch import ArchSpace, arch_space_for, space_arguments
from ofa_nni.errors import InvalidInputError

__all__ = [
    "nni_search_space",
    "dumps_nni_search_space",
    "check_nni_search_space",
    "arch_space_from_spec",
]

_REGENERATE_HINT = "regenerate the search space file with 'ofa-nni nni search-space'"


@renamed_keywords(space="arch_space")
def nni_search_space(arch_space: ArchSpace) -> dict[str, dict[str, Any]]:
    """NNI's search space of ``arch_space``: ``{label: {"_type": "choice", "_value": [choices...]}}``."""
    return {label: {"_type": "choice", "_value": list(arch_space.choices(label))}
            for label in arch_space.labels}


@renamed_keywords(space="arch_space")
def dumps_nni_search_space(arch_space: ArchSpace) -> str:
    """The search space as the JSON text written to ``search_space.json`` (stable formatting, so a
    checked-in file can be compared with a freshly generated one byte for byte)."""
    entries = nni_search_space(arch_space).items()
    lines = [f"  {json.dumps(label)}: {json.dumps(entry)}" for label, entry in entries]
    return "{\n" + ",\n".join(lines) + "\n}\n"


@renamed_keywords(space="arch_space")
def check_nni_search_space(arch_space: ArchSpace, search_space: Any) -> None:
    """Raise ``ValueError`` naming the first label where ``search_space`` (NNI's JSON, parsed)
    differs from ``arch_space``: a missing or unknown label, a type other than ``choice``, or other values.

    The order of a label's values does not matter (NNI's ``choice`` is unordered); the set does.
    """
    if not isinstance(search_space, Mapping):
        raise InvalidInputError(
            f"the NNI search space must be a JSON object {{label: {{'_type': 'choice', '_value': [...]}}}}, "
            f"got {type(search_space).__name__}; {_REGENERATE_HINT}"
        )
    for label in arch_space.labels:
        allowed = list(arch_space.choices(label))
        if label not in search_space:
            raise InvalidInputError(f"the NNI search space lacks label {label!r} (choices {allowed}); "
                                    f"{_REGENERATE_HINT}")
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
    labels = set(arch_space.labels)
    unknown = [label for label in search_space if label not in labels]
    if unknown:
        raise InvalidInputError(
            f"the NNI search space has label {unknown[0]!r}, which the space does not have "
            f"({arch_space.num_stages} stages of up to {arch_space.max_depth} blocks); {_REGENERATE_HINT}"
        )


def _same_choices(values: list[Any], allowed: list[Any]) -> bool:
    if len(values) != len(allowed):
        return False
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return len(numbers) == len(values) and sorted(numbers) == sorted(allowed)


def arch_space_from_spec(spec: Mapping[str, Any]) -> ArchSpace:
    """An :class:`ArchSpace` from ``{"name": "ofa-mbv3", "preset": "cpu", "num_classes": 10, <argument>: ...}``.

    ``name`` (default ``"ofa-mbv3"``) is the search space's registered name, as a training
    configuration's ``space.name``; ``preset`` (default: the space's released form,
    ``"ofa-mobilenetv3"`` / ``"ofa-proxylessnas"``) names one of that space's presets
    (:data:`ofa_nni.training.config.PRESETS_BY_SPACE`, the same a training configuration's
    ``space.preset`` uses); any other key overrides one argument of the space.

    Raises:
        ValueError: an unknown name, preset or key (the message lists the allowed ones), or invalid values.
    """
    from ofa_nni.training.config import PRESETS_BY_SPACE

    if not isinstance(spec, Mapping):
        raise InvalidInputError("a space description must be a mapping such as "
                                f"{{'preset': 'cpu', 'num_classes': 10}}, "
                         f"got {spec!r}")
    name = spec.get("name", "ofa-mbv3")
    if not isinstance(name, str) or name not in PRESETS_BY_SPACE:
        raise InvalidInputError(f"space name {name!r} is not known; allowed: {list(PRESETS_BY_SPACE)}")
    presets = PRESETS_BY_SPACE[name]
    preset = spec.get("preset", next(iter(presets)))
    if not isinstance(preset, str) or preset not in presets:
        raise InvalidInputError(f"space preset {preset!r} is not known; allowed for {name}: {list(presets)}")
    allowed = ["name", "preset", *space_arguments(name)]
    unknown = [key for key in spec if key not in allowed]
    if unknown:
        raise InvalidInputError(f"space description: unknown key {unknown[0]!r}; allowed: {allowed}")
    kwargs: dict[str, Any] = dict(presets[preset])
    kwargs.update({key: tuple(value) if isinstance(value, list) else value
                   for key, value in spec.items() if key not in ("name", "preset")})
    return arch_space_for(name, **kwargs)
