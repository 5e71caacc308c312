"""The one renderer of the ``ofa-nni`` pipeline's reports.

The documents it renders (search.json, exports.json, a demo's results.json) are the classes of
:mod:`ofa_nni.app.documents`, which own their format. This module renders them: markdown reports
whose targets tables all come from :func:`targets_table`, Pareto plots
(:func:`ofa_nni.plots.pareto_plot`), and plain-text tables for the terminal (:func:`text_table`).
``ofa-nni report`` and the demo call it; so can a script.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ofa_nni._artifacts import atomic_write
from ofa_nni._predictor_verdict import predictor_verdict_lines
from ofa_nni.latency.deployment import deployment_lines
from ofa_nni.latency.table import validation_verdict_lines
from ofa_nni.plots import ParetoPanel, pareto_plot

__all__ = [
    "COST_UNITS",
    "TargetRow",
    "format_cost",
    "markdown_table",
    "targets_table",
    "text_table",
    "demo_report_markdown",
    "demo_pareto_plot",
    "search_report_markdown",
    "write_demo_report",
    "write_search_report",
]

COST_UNITS = {"macs": "MACs", "params": "parameters", "latency_ms": "ms"}
"""The costs a search can constrain, with their units."""
_COST_LABELS = {"macs": "MACs", "params": "params", "latency_ms": "latency (ms)"}

_COST_FORMATS: dict[str, Callable[[float], str]] = {
    "macs": lambda value: f"{value / 1e6:.2f} M",
    "params": lambda value: f"{value / 1e3:.1f} K",
    "latency_ms": lambda value: f"{value:.3f}",
}
_MISSING = "–"


# ------------------------------------------------------------------------------ files
def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda file: file.write(text.encode("utf-8")))


# ----------------------------------------------------------------------------- tables
def format_cost(name: str, value: float | None) -> str:
    """A cost as the tables show it: MACs in millions, parameters in thousands, latency in ms."""
    if value is None:
        return _MISSING
    return _COST_FORMATS.get(name, lambda v: f"{v:.6g}")(float(value))


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """The lines of a markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, right: Sequence[int] = ()) -> str:
    """A plain-text table for the terminal; the columns in ``right`` (numbers) are right-aligned."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = [str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths,
                                                                                                     strict=True))]
        return "  ".join(padded).rstrip()

    rule = "-" * len(line(["-" * w for w in widths]))
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


@dataclasses.dataclass(frozen=True)
class TargetRow:
    """One row of a targets table: the budget, the subnet and what is known of it (``None``: not known)."""

    target: str
    arch: str
    accuracy_predicted: float | None
    accuracy_measured: float | None
    latency_predicted_ms: float | None
    latency_measured_ms: float | None
    macs: float
    params: float


def _code(text: str) -> str:
    """``text`` as inline code in a table cell: ``|`` (depth marks of arch strings) escaped, or GitHub's
    markdown would split the cell there."""
    return "`" + text.replace("|", "\\|") + "`"


def _pair(predicted: float | None, measured: float | None, show: Callable[[float], str]) -> str:
    return " / ".join(_MISSING if value is None else show(value) for value in (predicted, measured))


def targets_table(rows: Sequence[TargetRow], *, target_header: str = "target") -> list[str]:
    """The markdown table of specialized subnets every report shows (predicted next to measured)."""
    header = (target_header, "arch", "accuracy predicted / measured", "latency predicted / measured (ms)", "MACs",
              "params")
    return markdown_table(header, [
        (row.target, _code(row.arch), _pair(row.accuracy_predicted, row.accuracy_measured, lambda v: f"{100 * v:.1f}%"),
         _pair(row.latency_predicted_ms, row.latency_measured_ms, lambda v: f"{v:.3f}"),
         format_cost("macs", row.macs), format_cost("params", row.params))
        for row in rows
    ])


# ------------------------------------------------------------------------------- plot
# ------------------------------------------------------------------------------- demo
def demo_report_markdown(result: Mapping[str, Any]) -> str:
    """The demo's ``report.md`` from its ``results.json``."""
    lines = ["# ofa-nni demo report", ""]
    lines += [f"Run directory: `{result['run_dir']}`  ", f"Date: {result['date']}  ",
              f"Machine: {result['machine']}", ""]
    lines += ["## Specialized subnets", ""]
    lines += targets_table([
        TargetRow(target=f"{t['budget_ms']:.3f} ms", arch=t["arch"], accuracy_predicted=t["accuracy_predicted"],
                  accuracy_measured=t["accuracy_measured"], latency_predicted_ms=t["latency_predicted_ms"],
                  latency_measured_ms=t["latency_measured_ms"], macs=t["macs"], params=t["params"])
        for t in result["targets"]
    ], target_header="target (latency ≤)")
    if result.get("deployment_check"):
        lines += [""] + [line.strip() + "  " for line in deployment_lines(result["deployment_check"])]
    lines += ["", "Every subnet was exported to TorchScript and ONNX and checked against PyTorch "
              "(largest absolute output difference in `results.json`).", "",
              "![Pareto front](pareto.png)", "", "## Predictors", ""]
    m = result["predictor"]
    lines.append(f"Accuracy predictor ({m['kind']}, {m['num_subnets']} subnets, held-out split): "
                 f"RMSE {m['rmse_percent']:.2f} points, Kendall τ {m['kendall']:.3f}, Spearman {m['spearman']:.3f}.")
    lines += [f"**{line}**  " for line in predictor_verdict_lines(m)]
    v = result["latency_validation"]
    lines.append(f"Latency table ({v['backend']}, batch 1, {v['num_subnets']} held-out subnets measured end to end): "
                 f"Spearman {v['spearman']:.3f}, MAPE {v['mape_percent']:.1f}%"
                 + (" (with the fitted linear correction)." if v["corrected"] else "."))
    if v.get("details") and not v["details"].get("meets_targets"):
        lines += [""] + [line + "  " for line in validation_verdict_lines(v["details"])]
    c = result["costs"]
    lines += ["", "## Cost: train once vs train per target", ""]
    lines += markdown_table(("phase", "wall (s)", "CPU (s)", "energy (Wh)", "CO2e (g)"), [
        (phase["name"] + (" \\*" if phase.get("note") else ""), f"{phase['wall_s']:.1f}", f"{phase['cpu_s']:.1f}",
         f"{phase['energy_kwh'] * 1e3:.3f}",
         f"{phase['emissions_kg'] * 1e3:.3f}")
        for phase in c["phases"]
    ])
    notes = sorted({phase["note"] for phase in c["phases"] if phase.get("note")})
    lines += [""] + [f"\\* {note}." for note in notes] + ([""] if notes else [])
    lines += markdown_table(("N targets", "OFA: train once + specialize N (Wh)", "per target (Wh)",
                             "N networks trained separately (Wh)", "ratio"), [
        (f"{row['targets']}", f"{row['ofa_wh']:.3f}", f"{row['ofa_per_target_wh']:.3f}", f"{row['separate_wh']:.3f}",
         f"{row['ratio']:.2f}x")
        for row in c["amortization"]
    ])
    lines += ["", c["note"], "", f"Energy method: {c['method']}", ""]
    return "\n".join(lines)


def demo_pareto_plot(path: str | os.PathLike[str], result: Mapping[str, Any], sampled: tuple[Any, Any] | None) -> None:
    """The demo's ``pareto.png``: its front, budgets and chosen subnets (measured), over ``sampled``
    (the latency-table prediction and measured accuracy of the predictor's data set)."""
    front = result["pareto_front"]
    targets = result["targets"]
    panel = ParetoPanel(
        xlabel="latency on this machine (ms, batch 1)", ylabel="held-out top-1 accuracy (%)", y_scale=100.0,
        front=(front["latency_ms"], front["accuracy_predicted"]), front_label="Pareto front (predicted)",
        points=sampled, points_label="sampled subnets (measured)",
        chosen=[("chosen subnets (measured)", [t["latency_measured_ms"] for t in targets],
                 [t["accuracy_measured"] for t in targets])],
        budgets=[t["budget_ms"] for t in targets],
    )
    pareto_plot(path, panel, title="ofa-nni demo: specialized subnets vs the accuracy/latency trade-off")


def write_demo_report(result: Mapping[str, Any], run_dir: str | os.PathLike[str],
                      out: str | os.PathLike[str] | None = None) -> tuple[Path, Path]:
    """Re-render a demo run's report (``out``, default ``run_dir/report.md``) and ``pareto.png`` next to
    it; the grey dots of the predictor's data set are drawn when the run directory still holds the data
    set and the latency table. Returns the report's and the plot's paths."""
    from ofa_nni.accuracy import AccuracyDataset
    from ofa_nni.latency import LatencyTable

    run_path = Path(run_dir)
    report_path = Path(out) if out is not None else run_path / "report.md"
    plot_path = report_path.with_name("pareto.png")
    sampled = None
    dataset_path, table_path = run_path / "accuracy_dataset.jsonl", run_path / "latency_table.json"
    if dataset_path.is_file() and table_path.is_file():
        table = LatencyTable.load(table_path)
        dataset = AccuracyDataset.load(dataset_path, arch_space=table.arch_space)
        sampled = (table(dataset.indices), dataset.accuracies)
    demo_pareto_plot(plot_path, result, sampled)
    _write_text(report_path, demo_report_markdown(result))
    return report_path, plot_path


# ----------------------------------------------------------------------------- search
def _budget_text(budgets: Mapping[str, float]) -> str:
    return ", ".join(f"{name} ≤ {format_cost(name, value)}" for name, value in budgets.items())


def _measured(search: Mapping[str, Any], exports: Mapping[str, Any] | None) -> list[Mapping[str, Any] | None]:
    """Each target's entry of ``exports``: the one exported for it (``export --search``), else one of the
    same subnet (``export --arch``), else None."""
    entries = [] if exports is None else exports["subnets"]
    by_target = {entry["target"]: entry for entry in entries if entry.get("target") is not None}
    by_arch = {entry["arch"]: entry for entry in entries}
    return [by_target.get(t["name"]) or by_arch.get(t["arch"]) for t in search["targets"]]


def _measured_latency(entry: Mapping[str, Any], search: Mapping[str, Any]) -> float | None:
    """The measurement to set against the latency table's prediction: the same statistic (min or median
    of the timed calls) as the table's entries where the exports file has it."""
    statistic = (search.get("latency_table") or {}).get("statistic")
    value = entry.get(f"latency_{statistic}_ms", entry.get("latency_ms"))
    return None if value is None else float(value)


def search_report_markdown(search: Mapping[str, Any], exports: Mapping[str, Any] | None = None, *,
                           search_path: str = "search.json", exports_path: str | None = None,
                           plot_name: str | None = None) -> str:
    """The report of an ``ofa-nni/search`` file, with the measurements of an ``ofa-nni/exports``
    file of the same space next to the predictions where it exported the same subnets."""
    measured = _measured(search, exports)
    settings = search["settings"]
    front = search.get("pareto")
    queries = [f"{len(search['targets'])} target(s) in one search, {settings['evaluations']} predictor queries"
               ] if search["targets"] else []
    queries += [f"Pareto front {front['evaluations']} queries"] if front else []
    lines = ["# ofa-nni search report", "",
             f"Search: `{search_path}` ({search.get('date', '?')}): {'; '.join(queries)} (population "
             f"{settings['population_size']}, {settings['generations']} generations, seed {settings['seed']})  "]
    predictor = search["predictor"]
    figures = predictor.get("metrics") or {}
    quality = (f"; held-out RMSE {figures['rmse_percent']:.2f} points, Kendall τ {figures['kendall']:.3f}"
               if {"rmse_percent", "kendall"} <= set(figures) else "")
    lines.append(f"Accuracy predictor: `{predictor['path']}` ({predictor['kind']}{quality})  ")
    if {"num_subnets", "kendall"} <= set(figures):
        lines += [f"**{line}**  " for line in predictor_verdict_lines(figures)]
    table = search.get("latency_table")
    lines.append(f"Latency table: `{table['path']}` ({table['description']})" if table else
                 "Latency table: none (latency not searched)")
    if exports is not None:
        data = exports.get("data") or "not evaluated"
        lines[-1] += "  "
        lines.append(f"Measured: `{exports_path or 'exports.json'}` (accuracy on {data}; latency "
                     f"{(exports.get('latency') or {}).get('description') or 'not measured'})")
    lines += ["", "## Specialized subnets", ""]
    if not search["targets"]:
        lines += ["No targets were searched (`ofa-nni search --pareto` only).", ""]
    rows = []
    for target, entry in zip(search["targets"], measured, strict=True):
        found = entry or {}
        rows.append(TargetRow(
            target=_budget_text(target["budgets"]), arch=target["arch"], accuracy_predicted=target["score"],
            accuracy_measured=found.get("accuracy"), latency_predicted_ms=target["costs"].get("latency_ms"),
            latency_measured_ms=_measured_latency(found, search), macs=target["costs"]["macs"],
            params=target["costs"]["params"]))
    searched = {target["arch"] for target in search["targets"]}
    for entry in (exports or {}).get("subnets", []):
        if entry["arch"] not in searched:  # exported by --arch: measured only
            rows.append(TargetRow(target=f"(`{entry['name']}`, no target)", arch=entry["arch"],
                                  accuracy_predicted=None, accuracy_measured=entry.get("accuracy"),
                                  latency_predicted_ms=None, latency_measured_ms=entry.get("latency_ms"),
                                  macs=entry["macs"], params=entry["params"]))
    if rows:
        lines += targets_table(rows, target_header="target (budgets)")
    check = ((exports or {}).get("latency") or {}).get("check")
    if check:
        lines += [""] + [line.strip() + "  " for line in deployment_lines(check)]
    lines += ["", "Predicted: the accuracy predictor and the latency table; measured: `ofa-nni export` (the "
              "subnet frozen, BN recalibrated, held-out accuracy, end-to-end latency at batch 1). "
              "MACs and params are exact counts.", ""]
    if front:
        cost = front["cost"]
        lines += [f"## Pareto front: predicted accuracy vs {_COST_LABELS.get(cost, cost)}", "",
                  f"{len(front['archs'])} non-dominated subnets among {front['evaluations']} scored.", ""]
        if plot_name:
            lines += [f"![Pareto front]({plot_name})", ""]
        names = list(front["costs"])
        lines += markdown_table(("#", "arch", "predicted accuracy", *(_COST_LABELS.get(n, n) for n in names)),
                                [(str(i + 1), _code(arch), f"{100 * score:.1f}%",
                                  *(format_cost(n, front["costs"][n][i]) for n in names))
                                 for i, (arch, score) in enumerate(zip(front["archs"], front["scores"], strict=True))])
        lines.append("")
    return "\n".join(lines)


def search_pareto_plot(path: str | os.PathLike[str], search: Mapping[str, Any],
                       exports: Mapping[str, Any] | None = None) -> None:
    """The search's Pareto front with its targets' subnets: predicted (stars) and, for the subnets
    in ``exports``, measured (diamonds; measured latency when the front's cost is latency)."""
    front = search["pareto"]
    cost = front["cost"]
    targets = search["targets"]
    chosen = [("chosen subnets (predicted)", [t["costs"][cost] for t in targets], [t["score"] for t in targets])]
    points = [(entry, t) for entry, t in zip(_measured(search, exports), targets, strict=True) if entry is not None]
    points = [(entry, t) for entry, t in points if entry.get("accuracy") is not None
              and (cost != "latency_ms" or _measured_latency(entry, search) is not None)]
    if points:
        chosen.append(("chosen subnets (measured)",
                       [_measured_latency(entry, search) if cost == "latency_ms" else t["costs"][cost]
                        for entry, t in points],
                       [entry["accuracy"] for entry, _ in points]))
    label = _COST_LABELS.get(cost, cost)
    panel = ParetoPanel(
        xlabel=label + (" on the latency table's device, batch 1" if cost == "latency_ms" else ""),
        ylabel="top-1 accuracy (%)", y_scale=100.0, front=(front["costs"][cost], front["scores"]),
        front_label="Pareto front (predicted)", chosen=chosen,
        budgets=[t["budgets"][cost] for t in targets if cost in t["budgets"]],
    )
    pareto_plot(path, panel, title=f"ofa-nni search: accuracy vs {label}")


def write_search_report(search_path: str | os.PathLike[str], exports_path: str | os.PathLike[str] | None = None,
                        out: str | os.PathLike[str] | None = None) -> tuple[Path, Path | None]:
    """Read a search file (and an exports file of the same space), write the markdown report (``out``,
    default ``report.md`` next to the search file) and, when the search has a Pareto front, the plot
    ``<report stem>_pareto.png`` next to the report. Returns both paths (the plot's or None)."""
    from ofa_nni._artifacts import require_same_space
    from ofa_nni.app.documents import ExportsDocument, SearchDocument
    from ofa_nni.arch import arch_space_from_signature

    search = SearchDocument.load(search_path)
    exports = None
    if exports_path is not None:
        exports = ExportsDocument.load(exports_path)
        require_same_space(exports["space"], arch_space_from_signature(search["space"]),
                           artefact=f"exports file {exports_path} (against the search {search_path})")
    report_path = Path(out) if out is not None else Path(search_path).with_name("report.md")
    plot_path = None
    if search.get("pareto"):
        plot_path = report_path.with_name(f"{report_path.stem}_pareto.png")
        search_pareto_plot(plot_path, search, exports)
    text = search_report_markdown(search, exports, search_path=str(search_path),
                                  exports_path=None if exports_path is None else str(exports_path),
                                  plot_name=None if plot_path is None else plot_path.name)
    _write_text(report_path, text)
    return report_path, plot_path
