"""Old names kept for one release after a rename, each use warning with a DeprecationWarning.

The words of ``docs/architecture.md``: ``arch_space`` is an :class:`ofa_nni.arch.ArchSpace` (the
description of a space's choices), ``supernet`` the NNI module; both used to be called ``space``.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["renamed_keywords", "RenamedAttribute"]

_Function = TypeVar("_Function", bound=Callable[..., Any])


def renamed_keywords(**renames: str) -> Callable[[_Function], _Function]:
    """Accept each old keyword (``old="new"``) in place of its new name, with a DeprecationWarning;
    giving both is a TypeError, as for any keyword given twice."""

    def decorate(function: _Function) -> _Function:
        @functools.wraps(function)
        def accepting_old_names(*args: Any, **kwargs: Any) -> Any:
            for old, new in renames.items():
                if old not in kwargs:
                    continue
                name = function.__qualname__.removesuffix(".__init__")
                if new in kwargs:
                    raise TypeError(f"{name}() got both {old}= and {new}=; pass {new}= only")
                warnings.warn(f"{name}(): the keyword {old}= is deprecated and will be removed in the next "
                              f"release; pass {new}=", DeprecationWarning, stacklevel=2)
                kwargs[new] = kwargs.pop(old)
            return function(*args, **kwargs)

        return accepting_old_names  # type: ignore[return-value]

    return decorate


class RenamedAttribute:
    """A read-only class attribute under the old name of ``new``, warning on each read."""

    def __init__(self, new: str) -> None:
        self.new = new
        self.old = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.old = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        warnings.warn(f"{type(instance).__name__}.{self.old} is deprecated and will be removed in the next "
                      f"release; use .{self.new}", DeprecationWarning, stacklevel=2)
        return getattr(instance, self.new)
