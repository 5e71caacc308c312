"""Helpers for artefacts on disk (predictors, latency tables, data sets): atomic writes, locks on
run directories and output files, the space signature check, and a description of the machine and
libraries that produced them."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import platform
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from ofa_nni.arch import ArchSpace, family_name
from ofa_nni.errors import InvalidInputError, OutputError, OutputInUseError

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "exclusive_lock",
    "existing_file_mode",
    "output_error",
    "require_same_space",
    "temporary_file_for",
    "library_versions",
    "cpu_description",
]


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it is to set it
    os.umask(mask)
    return mask


def output_error(path: str | os.PathLike[str], error: OSError) -> OutputError:
    """``error`` (raised while writing ``path``) as the one-line :class:`OutputError`, errno kept."""
    reason = error.strerror or str(error)
    hint = {errno.ENOSPC: "free some space or write elsewhere", errno.EDQUOT: "free some space or write elsewhere",
            errno.EROFS: "write elsewhere", errno.EACCES: "write elsewhere or change the permissions",
            errno.EPERM: "write elsewhere or change the permissions",
            errno.EISDIR: "give a file path", errno.ENOTDIR: "a folder on the way is a file"}.get(error.errno or 0)
    wrapped = OutputError(f"cannot write {str(path)!r}: {reason}" + (f" ({hint})" if hint else ""))
    wrapped.errno = error.errno
    return wrapped


def existing_file_mode(path: str | os.PathLike[str]) -> int | None:
    """The permission bits of the regular file at ``path``, or None where nothing is there.

    Anything else at ``path`` is refused (:class:`OutputError`), never replaced: a directory, a FIFO,
    a device (``/dev/null``; as root ``/dev/full``) or a socket would silently become a regular file.
    A symbolic link is refused too (a documented choice): replacing it would cut the link, and writing
    through it would replace a file somewhere else than the path the user gave; name the real file."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise output_error(path, error) from None
    if stat.S_ISLNK(info.st_mode):
        raise OutputError(f"{str(path)!r} is a symbolic link; ofa-nni writes only regular files, never through or over "
                          f"a link (give the path of the file it points to, {os.path.realpath(path)!r}, or another)")
    if stat.S_ISDIR(info.st_mode):
        raise OutputError(f"{str(path)!r} is a directory; give a file path")
    if not stat.S_ISREG(info.st_mode):
        raise OutputError(f"{str(path)!r} is not a regular file (a FIFO, device or socket); ofa-nni writes only "
                          "regular files and never replaces anything else")
    return stat.S_IMODE(info.st_mode)


def temporary_file_for(path: str | os.PathLike[str], mode: int | None = None) -> tuple[int, str]:
    """An open temporary file next to ``path`` (same folder, so ``os.replace`` is atomic) with
    ``mode``, by default the permissions a plain ``open()`` would give the final file (``mkstemp``
    makes it owner-only, and a results folder shared by a team must stay readable). Returns
    ``(fd, name)``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(handle, 0o666 & ~_umask() if mode is None else mode)
    return handle, name


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object]) -> None:
    """Write a file so that a kill leaves either the old file or the new one, never half of one:
    ``write`` fills a temporary file in the same folder, which then replaces ``path``.

    A file being replaced keeps its permissions. Only a regular file is ever replaced (see
    :func:`existing_file_mode`). A path that cannot be written (read-only or full file system, no
    permission, a file where a folder should be) raises :class:`OutputError` naming it, and no
    temporary file is left behind."""
    mode = existing_file_mode(path)
    temp_name: str | None = None
    try:
        handle, temp_name = temporary_file_for(path, mode)
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_name, path)
    except OutputError:
        raise
    except OSError as error:
        _remove_quietly(temp_name)
        raise output_error(path, error) from None
    except BaseException:
        _remove_quietly(temp_name)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes | memoryview) -> None:
    """:func:`atomic_write` of bytes already in memory (what a serializer that writes from C++
    should produce first: a full disk under its own writer aborts the process, as torch.jit.save's does)."""
    atomic_write(path, lambda file: file.write(data))


def _remove_quietly(name: str | None) -> None:
    if name is not None:
        with contextlib.suppress(OSError):
            os.unlink(name)


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike[str], what: str) -> Iterator[None]:
    """Hold an OS file lock on ``path`` (a run directory or an output file) for the block, so a second
    process that wants it is refused at once with :class:`OutputInUseError` naming the holder's PID.

    The lock is ``flock`` on ``.<name>.lock`` beside ``path`` (the folder is created if needed), which
    holds the holder's PID and is removed on release; the kernel drops the lock of a process that dies,
    so a crash never leaves ``path`` locked. ``what`` names the thing in the message ("run directory")."""
    import fcntl

    path = Path(path)
    lock_path = path.parent / f".{path.name}.lock"
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise output_error(path, error) from None
    while True:
        try:
            handle = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
        except OSError as error:
            raise output_error(lock_path, error) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(handle, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(handle)
            raise OutputInUseError(f"{what} {str(path)!r} is in use by another ofa-nni process (PID {holder}; lock "
                                   f"file {str(lock_path)!r}): wait for it to end, or stop it") from None
        # The previous holder removes the lock file on release: if it did so between our open and our
        # flock, we hold a lock on a file nobody else will open. Take the one now at the path instead.
        try:
            current = os.stat(lock_path).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(handle).st_ino:
            break
        os.close(handle)
    try:
        with contextlib.suppress(OSError):  # on a full disk the PID is not recorded; the lock holds all the same
            os.ftruncate(handle, 0)
            os.pwrite(handle, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock_path)  # while still holding it: a waiter then sees another file (the check above)
        os.close(handle)


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> None:
    text = json.dumps(data, indent=1, sort_keys=False) + "\n"
    atomic_write(path, lambda file: file.write(text.encode()))


def require_same_space(stored: Mapping[str, Any], space: ArchSpace, *, artefact: str,
                       allow_fewer_resolutions: bool = False) -> None:
    """Raise a ValueError naming every field where ``stored`` (a space signature read from an
    artefact) differs from ``space``'s. With ``allow_fewer_resolutions``, a space that differs only
    in having some of ``space``'s resolutions passes: its subnets are subnets of ``space`` (a search
    of the released tutorial predictor's resolutions 160-224 on a supernet of 128-224)."""
    expected = space.signature()
    differences = [
        f"{key}: file has {stored.get(key)!r}, space has {expected.get(key)!r}"
        for key in sorted(set(expected) | set(stored))
        if stored.get(key) != expected.get(key)
        and not (allow_fewer_resolutions and key == "resolutions" and isinstance(stored.get(key), list)
                 and set(stored[key]) <= set(expected.get(key) or ()))
    ]
    if not differences:
        return
    found, wanted = family_name(stored), family_name(expected)
    if found != wanted:  # another family altogether: its name says it, the field-by-field list does not
        raise InvalidInputError(f"{artefact} was built for another search space: an {found} space, not this "
                                f"{wanted} one")
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
