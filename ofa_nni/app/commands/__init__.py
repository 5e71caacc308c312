"""Subcommands of the ``ofa-nni`` command line (one module each, see :mod:`ofa_nni.app.cli`), and the
argument types they share."""

from __future__ import annotations

import argparse

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
