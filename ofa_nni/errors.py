"""The one error type for input a user can fix.

Everything a user hands the product (a config, a checkpoint, a predictor or latency-table file, a
search target, a command-line value) is checked where it is read, and a problem is raised as an
:class:`InvalidInputError` naming the culprit (file, key or argument) and what is allowed. The
command line maps exactly this class to exit code 2 and one line on stderr; any other exception is
a bug and keeps its traceback (exit code 1). It subclasses :class:`ValueError` so code written
against the earlier ``ValueError`` contract keeps catching it.
"""

from __future__ import annotations

__all__ = ["InvalidInputError", "MissingInputError", "NotADirectoryInputError", "OutputError", "OutputInUseError"]


class InvalidInputError(ValueError):
    """Input a user can fix: printed by the CLI as one line, exit code 2."""


class MissingInputError(InvalidInputError, FileNotFoundError):
    """A file or folder the user named does not exist (still a ``FileNotFoundError`` for callers)."""


class NotADirectoryInputError(InvalidInputError, NotADirectoryError):
    """A path the user named should be a folder and is not (still a ``NotADirectoryError``)."""


class OutputError(InvalidInputError, OSError):
    """An output path that cannot be written: a directory, a symlink, a FIFO or device, a read-only or
    full file system, no permission (still an ``OSError`` for callers, with the ``errno``)."""


class OutputInUseError(InvalidInputError):
    """Another process holds the lock of a run directory or output file (it names that process)."""
