"""Search spaces by name, as timm registers model families.

A space registers under a short name (``ofa-mbv3``; ``ofa-proxyless`` and ``ofa-resnet50`` as they
arrive). The name is what the CLI's ``--space`` takes, what a training config's ``space.name`` says
and what a supernet file records, so a file always rebuilds the class that wrote it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from ofa_nni.errors import InvalidInputError

__all__ = ["register_space", "space_class", "space_names", "space_name_for_layout", "DEFAULT_SPACE"]

DEFAULT_SPACE = "ofa-mbv3"

_SPACES: dict[str, type[Any]] = {}
_LAYOUT_SPACES = {"mbv3": "ofa-mbv3", "proxyless": "ofa-proxyless", "resnet": "ofa-resnet50"}
"""The space an arch signature's ``layout`` belongs to (a signature without one is OFA-MobileNetV3's)."""
_Space = TypeVar("_Space", bound=type)


def register_space(name: str) -> Callable[[_Space], _Space]:
    """Class decorator: register a space under ``name`` (also stored as ``cls.space_name``)."""

    def decorate(cls: _Space) -> _Space:
        if name in _SPACES and _SPACES[name] is not cls:
            raise RuntimeError(f"two search spaces registered as {name!r}: {_SPACES[name].__name__} and {cls.__name__}")
        _SPACES[name] = cls
        cls.space_name = name  # type: ignore[attr-defined]
        return cls

    return decorate


def space_names() -> list[str]:
    """The registered names, sorted."""
    return sorted(_SPACES)


def space_class(name: str) -> type[Any]:
    """The space class registered as ``name``."""
    try:
        return _SPACES[name]
    except KeyError:
        raise InvalidInputError(f"unknown search space {name!r}; known: {', '.join(space_names())}") from None


def space_name_for_layout(layout: str | None) -> str:
    """The registered name of the space whose arch signature has ``layout`` (None: the default)."""
    return _LAYOUT_SPACES.get(layout or "mbv3", DEFAULT_SPACE)
