"""``ofa-nni report``: a markdown report (and a Pareto plot) of a search, its exports, or a demo run.

* ``ofa-nni report search.json [exports.json] [--out report.md]``: the targets table (budgets, arch,
  predicted next to measured accuracy and latency, MACs, params), the Pareto front table and
  ``<report>_pareto.png`` when the search has a front.
* ``ofa-nni report runs/demo-...`` (or its ``results.json``): the demo's own report and
  ``pareto.png``, re-rendered.

The rendering is :mod:`ofa_nni.app.report`'s (the demo uses the same functions).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ofa_nni.errors import InvalidInputError, MissingInputError

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="markdown report and Pareto plot of a search (+ its exports) or of a demo run",
        description=(
            "Write a markdown report: from 'ofa-nni search --out' results, optionally with the measurements of "
            "'ofa-nni export' (exports.json) next to the predictions, plus a Pareto plot when the search has a "
            "front; or, from a demo run directory (or its results.json), the demo's report and plot again."
        ),
        epilog="examples: ofa-nni report search.json exports/exports.json --out report.md | "
               "ofa-nni report runs/demo-20250101-120000",
    )
    parser.add_argument("results", type=Path,
                        help="search.json (kind ofa-nni/search), or a demo run directory or its results.json")
    parser.add_argument("exports", type=Path, nargs="?", default=None,
                        help="exports.json of 'ofa-nni export' (same space; only with a search)")
    parser.add_argument("--out", type=Path, default=None, metavar="FILE",
                        help="the report (default: report.md next to the search file / in the demo run directory)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ofa_nni.app.documents import DemoResults, SearchDocument, read_document
    from ofa_nni.app.report import write_demo_report, write_search_report

    results = args.results
    if results.is_dir():
        if not (results / "results.json").is_file():
            raise MissingInputError(f"{str(results)!r} is a directory without results.json; expected a demo run "
                                    "directory (ofa-nni demo --run-dir), a demo results.json, or a search.json")
        results = results / "results.json"
    data = read_document(results, (SearchDocument, DemoResults))
    plot: Path | None
    if isinstance(data, DemoResults):
        if args.exports is not None:
            raise InvalidInputError("an exports file goes with a search.json; a demo run's measurements are in its "
                             "results.json already")
        report, plot = write_demo_report(data, results.parent, args.out)
    else:
        report, plot = write_search_report(results, args.exports, args.out)
    print(f"wrote {report}" + ("" if plot is None else f" and {plot}"))
    return 0
