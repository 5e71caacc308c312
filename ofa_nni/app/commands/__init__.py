"""Subcommands of the ``ofa-nni`` command line (one module each, see :mod:`ofa_nni.app.cli`), and the
argument types they share."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Iterator, Sequence
from typing import Any, overload

__all__ = ["DeferredChoices", "MAX_SEED", "seed", "load_supernet_data"]

MAX_SEED = 2**32 - 1
"""The largest seed: what every generator the commands seed accepts (numpy's legacy and
scikit-learn's ``random_state`` stop at 2**32 - 1; torch's at 2**64 - 1)."""


def seed(text: str) -> int:
    """argparse type of ``--seed``: an integer in [0, :data:`MAX_SEED`] (2**70 used to end in torch's
    "Overflow when unpacking long long" traceback)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"{value} is out of range; allowed: 0 to {MAX_SEED} (2**32 - 1)")
    return value


class DeferredChoices(Sequence[str]):
    """argparse ``choices`` read from ``module.name`` when first needed (parsing that command's
    arguments, printing its help), not when the parser is built: ``ofa-nni --help`` builds every
    command's parser, and the modules that define data kinds or predictor kinds import torch.
    Give the argument a ``metavar`` (argparse lists choices in the usage line otherwise) and write
    ``%(choices)s`` in its help."""

    def __init__(self, module: str, name: str) -> None:
        self._module, self._name = module, name

    def _values(self) -> Sequence[str]:
        values: Sequence[str] = getattr(importlib.import_module(self._module), self._name)
        return values

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...

    def __getitem__(self, index: Any) -> Any:
        return self._values()[index]

    def __len__(self) -> int:
        return len(self._values())

    def __iter__(self) -> Iterator[str]:
        return iter(self._values())

    def __contains__(self, value: object) -> bool:
        return value in self._values()


def load_supernet_data(args: argparse.Namespace, arch_space: Any) -> Any:
    """The ``--data`` / ``--data-root`` / ``--calibration-images`` data set at the largest resolution of
    ``space`` (an :class:`~ofa_nni.arch.ArchSpace`), refused if its classes are not the supernet's."""
    from ofa_nni.data import load_data
    from ofa_nni.errors import InvalidInputError

    # The library names its configuration's field (data.root); here the user typed options.
    if args.data == "digits" and args.data_root is not None:
        raise InvalidInputError(f"--data-root {args.data_root} is not used by --data digits (it ships with "
                                "scikit-learn); remove it")
    if args.data != "digits" and args.data_root is None:
        raise InvalidInputError(f"--data {args.data} needs --data-root: the local "
                                f"{'.npz file' if args.data == 'npz' else 'directory'} holding the data set")
    data = load_data(args.data, root=args.data_root, resolution=max(arch_space.resolutions),
                     calibration_images=args.calibration_images)
    if data.num_classes != arch_space.num_classes:
        raise InvalidInputError(f"the supernet has {arch_space.num_classes} classes but --data {args.data} has "
                                f"{data.num_classes}")
    return data
