"""Small shared helpers."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from ofa_nni.errors import InvalidInputError

CHANNEL_DIVISOR = 8

_Settings = TypeVar("_Settings")


def make_divisible(value: float, divisor: int = CHANNEL_DIVISOR) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, never going down by more than 10%.

    The rule of the MobileNet papers (and of OFA's widths), so our layer widths equal the reference's.
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def centre_crop_range(kernel_size: int, sub_kernel_size: int) -> tuple[int, int]:
    """Start and end index of the centred ``sub_kernel_size`` window inside a ``kernel_size`` kernel."""
    start = kernel_size // 2 - sub_kernel_size // 2
    return start, start + sub_kernel_size


def replace_settings(cls: type[_Settings], settings: _Settings | None, overrides: Mapping[str, Any], *,
                     what: str) -> _Settings:
    """``settings`` (default: ``cls()``) with keyword ``overrides`` of its fields, each checked by
    the dataclass's own validation: how an entry point maps its keyword arguments onto one settings
    object. ``what`` names the settings in errors (``"evolution"``, ``"training"``)."""
    base = cls() if settings is None else settings
    if not isinstance(base, cls):
        raise InvalidInputError(f"settings must be a {cls.__name__}, got {type(base).__name__}")
    fields = {field.name for field in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise InvalidInputError(f"unknown {what} setting(s) {unknown}; allowed: {sorted(fields)}")
    return dataclasses.replace(base, **overrides) if overrides else base  # type: ignore[type-var]
