"""The ``ofa-nni`` command line: one entry point, a subcommand per step.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds a parser
whose ``func`` default takes the parsed ``argparse.Namespace`` and returns an exit code. Errors a
user can fix (bad config, missing data, infeasible budget) are raised as :class:`UserError` or
``ValueError``/``FileNotFoundError`` and printed as one clear line (exit code 2), without a
traceback; anything else is a bug and keeps its traceback (exit code 1).

Exit codes: 0 success, 1 internal error, 2 invalid input, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["main", "UserError", "COMMAND_MODULES"]

COMMAND_MODULES: tuple[str, ...] = (
    "ofa_nni.commands.demo",
    "ofa_nni.commands.info",
    "ofa_nni.commands.predictor",
    "ofa_nni.commands.lut",
    "ofa_nni.commands.train",
    "ofa_nni.commands.nni",
)
"""Modules that each add one subcommand (in ``--help`` order)."""


class UserError(Exception):
    """An error in the user's input: printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ofa-nni",
        description=(
            "Once-for-All for NNI and Optuna: train one elastic supernet once, then specialize it "
            "in seconds for many deployment targets (latency, MACs, params budgets)."
        ),
    )
    parser.add_argument("--version", action="version", version=_version())
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def _version() -> str:
    from ofa_nni import __version__

    return f"ofa-nni {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("ofa-nni: interrupted", file=sys.stderr)
        return 130
    except (UserError, ValueError, FileNotFoundError, NotADirectoryError) as error:
        print(f"ofa-nni {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
