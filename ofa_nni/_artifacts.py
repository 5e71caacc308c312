"""Helpers for artefacts on disk (predictors, latency tables, data sets): atomic writes, the space
signature check, and a description of the machine and libraries that produced them."""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from ofa_nni.arch import ArchSpace
from ofa_nni.errors import InvalidInputError

__all__ = [
    "atomic_write",
    "atomic_write_json",
    "require_same_space",
    "temporary_file_for",
    "library_versions",
    "cpu_description",
]


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it is to set it
    os.umask(mask)
    return mask


def temporary_file_for(path: str | os.PathLike[str]) -> tuple[int, str]:
    """An open temporary file next to ``path`` (same folder, so ``os.replace`` is atomic) with the
    permissions a plain ``open()`` would give the final file (``mkstemp`` makes it owner-only, and a
    results folder shared by a team must stay readable). Returns ``(fd, name)``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(handle, 0o666 & ~_umask())
    return handle, name


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object]) -> None:
    """Write a file so that a kill leaves either the old file or the new one, never half of one:
    ``write`` fills a temporary file in the same folder, which then replaces ``path``."""
    handle, temp_name = temporary_file_for(path)
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_name, path)
    except BaseException:
        if os.path.exists(temp_name):
            os.unlink(temp_name)
        raise


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> None:
    text = json.dumps(data, indent=1, sort_keys=False) + "\n"
    atomic_write(path, lambda file: file.write(text.encode()))


def require_same_space(stored: Mapping[str, Any], space: ArchSpace, *, artefact: str) -> None:
    """Raise a ValueError naming every field where ``stored`` (a space signature read from an
    artefact) differs from ``space``'s."""
    expected = space.signature()
    differences = [
        f"{key}: file has {stored.get(key)!r}, space has {expected.get(key)!r}"
        for key in sorted(set(expected) | set(stored))
        if stored.get(key) != expected.get(key)
    ]
    if differences:
        raise InvalidInputError(f"{artefact} was built for another search space ({'; '.join(differences)})")


def library_versions(*names: str) -> dict[str, str]:
    """Versions of python and of the named packages that are importable (others are left out)."""
    versions = {"python": platform.python_version()}
    for name in names:
        module = sys.modules.get(name)
        if module is None:
            try:
                module = __import__(name)
            except ImportError:
                continue
        versions[name] = str(getattr(module, "__version__", "unknown"))
    return versions


def cpu_description() -> str:
    """The CPU model (from /proc/cpuinfo where there is one) and the logical CPU count."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            for line in file:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model} ({os.cpu_count()} logical CPUs, {platform.system()} {platform.machine()})"
