"""The ``ofa-nni`` command line: one entry point, a subcommand per step.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds a parser
whose ``func`` default takes the parsed ``argparse.Namespace`` and returns an exit code. Errors a
user can fix (bad config, missing data, infeasible budget) are raised as
:class:`~ofa_nni.errors.InvalidInputError` and printed as one clear line (exit code 2), without a
traceback; anything else is a bug and keeps its traceback (exit code 1).

Exit codes: 0 success, 1 internal error, 2 invalid input (also an output that cannot be written:
read-only or full file system, a directory or special file in its place, a run directory or output
file in use by another process), 130 interrupted (SIGINT, Ctrl-C), 143 terminated (SIGTERM), 141
output pipe closed (as shells report SIGPIPE). Files are written atomically, so an interrupted
command leaves the earlier ones as they were, and a training run resumes from its last checkpoint.
"""

from __future__ import annotations

import os

# OpenMP threads that spin while they wait hold a core that the thread they wait for needs: on a
# machine whose cores are busy with other work, 2-thread torch trained our accuracy predictor in
# 120-257 s instead of 7-12 s on 1 thread, and in 3.2 s with passive waiting (measured here, load
# 5-7 on 2 cores). libgomp reads this when torch loads it, so it is set here, where the command line
# starts and before anything imports torch; a value the user set is kept. (The core library sets
# nothing: importing it has no side effects.)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import importlib  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from types import FrameType  # noqa: E402
from typing import Any  # noqa: E402

from ofa_nni.errors import InvalidInputError  # noqa: E402

__all__ = ["main", "COMMAND_MODULES"]

COMMAND_MODULES: tuple[str, ...] = (
    "ofa_nni.app.commands.demo",
    "ofa_nni.app.commands.info",
    "ofa_nni.app.commands.train",
    "ofa_nni.app.commands.predictor",
    "ofa_nni.app.commands.lut",
    "ofa_nni.app.commands.search",
    "ofa_nni.app.commands.export",
    "ofa_nni.app.commands.report",
    "ofa_nni.app.commands.nni",
)
"""Modules that each add one subcommand (in ``--help`` order: the demo, then the pipeline's steps)."""


class _HelpFormatter(argparse.HelpFormatter):
    """argparse measures subcommand names at their parent's indentation, two columns short of where
    it prints them, so the longest name's help starts on the next line; measure them where they stand."""

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        if isinstance(action, argparse._SubParsersAction) and action.help is not argparse.SUPPRESS:
            longest = max((len(name) for name in action.choices), default=0)
            self._action_max_length = max(self._action_max_length, longest + self._current_indent + 2)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ofa-nni",
        formatter_class=_HelpFormatter,
        description=(
            "Once-for-All for NNI and Optuna: train one elastic supernet once, then specialize it "
            "in seconds for many deployment targets (latency, MACs, params budgets)."
        ),
        epilog=(
            "The steps in order: train -> predictor build -> lut build -> search -> export -> report ('ofa-nni "
            "demo' runs them all on the offline digits data). 'ofa-nni COMMAND --help' describes each one. Exit "
            "codes: 0 success, 1 internal error, 2 invalid input or unwritable output, 130 interrupted (SIGINT), "
            "143 terminated (SIGTERM)."
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


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []
"""The stop signals this process received (the exit code is 128 + the first)."""


def _stop(signum: int, frame: FrameType | None) -> None:
    """SIGINT and SIGTERM both stop the command as Ctrl-C does: a ``KeyboardInterrupt``, which every
    writer meets with its temporary file removed and the earlier file kept, and which the training
    loop (Lightning) turns into a clean shutdown. Lightning then calls ``sys.exit(1)``, and on
    SIGTERM alone it would have ended the run with exit code 0: the code comes from here instead."""
    _received.append(signum)
    raise KeyboardInterrupt


def _interrupted(command: str | None) -> int:
    signum = _received[0] if _received else int(signal.SIGINT)
    print(f"ofa-nni{' ' + command if command else ''}: {signal.Signals(signum).name}: interrupted; files written "
          "before are complete (a training run continues with --resume)", file=sys.stderr)
    return 128 + signum


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():  # signal handlers can only be set there
        _received.clear()
        previous = {signum: signal.signal(signum, _stop) for signum in _STOP_SIGNALS}
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return _interrupted(args.command)
    except SystemExit:
        if _received:  # a library that exits on an interrupt (Lightning: sys.exit(1))
            return _interrupted(args.command)
        raise
    except BrokenPipeError:
        # The reader of our output went away (``ofa-nni search ... | head``): no traceback, and no
        # second error when Python flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except InvalidInputError as error:
        print(f"ofa-nni {args.command}: error: {error}", file=sys.stderr)
        return 2
    finally:
        for signum, handler in previous.items():  # main() called from Python: leave the caller's handlers
            if handler is not None:  # None: set outside Python, cannot be set back
                signal.signal(signum, handler)


if __name__ == "__main__":
    sys.exit(main())
