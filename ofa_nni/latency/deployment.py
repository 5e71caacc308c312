"""Deployed subnets set against their latency targets, measured with the table's own protocol.

A subnet the search chose under a budget of ``t`` ms can still run slower than ``t`` once deployed:
the table's prediction has an error (its validation MAPE), and the machine may be busier (or
quieter) than when the table was built. :func:`check_deployments` measures the subnets end to end
with the table's protocol (backend, threads, clock, order, warm-up/repeats/rounds, statistic; a
table normalised by a reference op: normalised the same way, to the check's own quiet speed, so a
machine that is slower for the whole check still shows), compares each with its target, and
re-times a few of the table's own entries: if those now take noticeably longer (or shorter) than
the table says, the machine's load has changed since the table was built, and the advice is to
rebuild or re-validate the table rather than to distrust the search.
:func:`deployment_lines` words the verdict for the terminal and ``report.md``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ofa_nni.errors import InvalidInputError
from ofa_nni.latency.specs import specs_by_key
from ofa_nni.latency.table import LatencyTable

__all__ = ["LOAD_CHANGE_RATIO", "check_deployments", "deployment_lines", "retime_entries"]

LOAD_CHANGE_RATIO = 1.15
"""Re-timed table entries off their stored values by more than this factor (either way, median over
the entries) mean the machine's load changed since the table was built. On an unchanged machine
the minimum of 90 timings reproduces within a few percent."""


def retime_entries(table: LatencyTable, *, count: int = 12, seed: int = 0, show_progress: bool = False
                   ) -> dict[str, Any]:
    """Time ``count`` random entries of ``table`` again, now, with its protocol: ``ratio`` is the
    median over them of (now / stored), and ``load_changed`` says whether it is off by more than
    :data:`LOAD_CHANGE_RATIO`."""
    from ofa_nni.latency.build import time_entries

    if count < 1:
        raise InvalidInputError(f"count must be >= 1, got {count}")
    protocol = table.protocol
    specs = specs_by_key(table.arch_space, table.measured_resolutions)
    keys = sorted(key for key in specs if key in table.entries)
    chosen = sorted(np.random.default_rng(seed).choice(keys, size=min(count, len(keys)), replace=False).tolist())
    started = time.perf_counter()
    timings = time_entries(
        {key: specs[key] for key in chosen}, {}, backend=protocol["backend"], device=protocol["device"],
        batch_size=protocol["batch_size"], warmup=protocol["warmup"], repeats=protocol["repeats"],
        rounds=protocol["rounds"], num_threads=protocol["num_threads"], clock=protocol["clock"],
        order=protocol["order"], seed=seed, reference=table.reference_op, show_progress=show_progress,
    )
    field, reduce = ("min_ms", np.min) if table.statistic == "min" else ("ms", np.median)
    ratios = [float(reduce(timings[key])) / max(float(table.entries[key][field]), 1e-9) for key in chosen]
    ratio = float(np.median(ratios))
    return {
        "entries": len(chosen),
        "ratio": round(ratio, 4),
        "load_changed": bool(ratio > LOAD_CHANGE_RATIO or ratio < 1 / LOAD_CHANGE_RATIO),
        "threshold": LOAD_CHANGE_RATIO,
        "seconds": round(time.perf_counter() - started, 2),
        "loadavg_now": [round(v, 2) for v in os.getloadavg()],
        "loadavg_when_built": (table.metadata.get("load") or {}).get("loadavg_start"),
    }


def check_deployments(
    table: LatencyTable,
    models: Sequence[tuple[Any, int]],
    *,
    names: Sequence[str],
    targets_ms: Sequence[float | None],
    predicted_ms: Sequence[float | None] | None = None,
    seed: int = 0,
    retime: int = 12,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Measure each ``(module, resolution)`` end to end with ``table``'s protocol and set it against
    its target (``None``: no target, measured only). Returns the JSON-ready record: the protocol,
    one row per subnet (measured min/median, the statistic the table predicts with, target, over
    target and by how much), the re-timing of ``retime`` table entries, and ``verdict`` / ``cause``
    / ``advice`` when a subnet is over its target."""
    from ofa_nni.latency.validation import measure_end_to_end

    if not len(names) == len(targets_ms) == len(models):
        raise InvalidInputError(f"{len(models)} models, {len(names)} names and {len(targets_ms)} targets differ")
    protocol = table.protocol
    timings = measure_end_to_end(
        models, backend=protocol["backend"], device=protocol["device"], batch_size=protocol["batch_size"],
        warmup=protocol["warmup"], repeats=protocol["repeats"], rounds=protocol["rounds"],
        num_threads=protocol["num_threads"], clock=protocol["clock"], order=protocol["order"],
        reference=table.reference_op, seed=seed, show_progress=show_progress,
    )
    rows = []
    for index, (name, target) in enumerate(zip(names, targets_ms, strict=True)):
        measured = float(timings[table.statistic][index])
        row: dict[str, Any] = {
            "name": name, "target_ms": target, "measured_ms": measured,
            "measured_min_ms": float(timings["min"][index]), "measured_median_ms": float(timings["median"][index]),
            "predicted_ms": None if predicted_ms is None else predicted_ms[index],
            "over_target": False, "over_by_ms": None, "over_by_percent": None,
        }
        if target is not None:
            row["over_target"] = bool(measured > target)
            row["over_by_ms"] = round(measured - target, 6)
            row["over_by_percent"] = round(100.0 * (measured - target) / target, 2)
        rows.append(row)
    load = retime_entries(table, count=retime, seed=seed) if retime else None
    over = [row for row in rows if row["over_target"]]
    record: dict[str, Any] = {"protocol": protocol, "subnets": rows, "table_entries_retimed": load,
                              "over_target": len(over), "verdict": "all within target", "cause": None,
                              "advice": None}
    if over:
        record["verdict"] = f"{len(over)} of {sum(r['target_ms'] is not None for r in rows)} over target"
        record["cause"], record["advice"] = _cause_and_advice(table, load)
    elif load is not None and load["load_changed"]:
        record["cause"], record["advice"] = _cause_and_advice(table, load)
    return record


def _cause_and_advice(table: LatencyTable, load: Mapping[str, Any] | None) -> tuple[str, str]:
    if load is not None and load["load_changed"]:
        now, built = load["loadavg_now"][0], (load.get("loadavg_when_built") or [None])[0]
        slower = "slower" if load["ratio"] > 1 else "faster"
        return (f"the machine's load changed since the latency table was built: {load['entries']} of its entries, "
                f"re-timed now, run {load['ratio']:.2f}x their stored times ({slower}; load average now {now:.1f}"
                + (f", when built {built:.1f}" if isinstance(built, (int, float)) else "") + ")",
                "rebuild the table on the machine as it is now ('ofa-nni lut build'), or re-check it "
                "('ofa-nni lut validate'), then search again; or measure when the machine is as it was")
    validation = table.validation or {}
    applied = (table.correction or {}).get("applied")
    mape = ((validation.get("corrected") if applied else validation.get("raw")) or {}).get("mape_percent")
    error = f"its validation MAPE is {mape:.1f}%" if isinstance(mape, (int, float)) else "it was never validated"
    return (f"the latency table's prediction error (the machine's load is as when it was built; {error})",
            "re-validate the table ('ofa-nni lut validate', more --repeats/--rounds), or search with a margin "
            "below the target")


def deployment_lines(record: Mapping[str, Any]) -> list[str]:
    """The verdict in words (terminal, report.md): one line per subnet over target, then cause and advice."""
    protocol = record["protocol"]
    lines = [f"deployment check ({protocol['backend']}/{protocol['device']}, {protocol['num_threads']} thread(s), "
             f"{protocol['statistic']} of {protocol['rounds']} x {protocol['repeats']} "
             f"{protocol['clock']}-clock timings"
             + (" normalised by a reference op" if protocol.get("normalise") == "reference" else "")
             + f", as the latency table): {record['verdict']}"]
    for row in record["subnets"]:
        if row["over_target"]:
            lines.append(f"  OVER TARGET: {row['name']} measured {row['measured_ms']:.3f} ms against a target of "
                         f"{row['target_ms']:.3f} ms: {row['over_by_ms']:.3f} ms ({row['over_by_percent']:.1f}%) over")
    load = record.get("table_entries_retimed")
    if load is not None:
        lines.append(f"  table entries re-timed now: {load['ratio']:.2f}x their stored times "
                     + ("(load changed)" if load["load_changed"] else "(load as when built)"))
    if record.get("cause"):
        lines.append(f"  likely cause: {record['cause']}")
        lines.append(f"  what to do: {record['advice']}")
    return lines
