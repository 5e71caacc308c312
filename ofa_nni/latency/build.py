"""Building a latency table: every distinct op shape of a space timed on this machine, in rounds,
resumable from a progress file, the output locked for the whole build."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ofa_nni._artifacts import atomic_write_json, library_versions
from ofa_nni._deprecation import renamed_keywords
from ofa_nni.arch import ArchSpace
from ofa_nni.errors import InvalidInputError
from ofa_nni.latency.protocol import (
    DEFAULT_REPEATS,
    DEFAULT_ROUNDS,
    DEFAULT_WARMUP,
    FORMAT,
    NORMALISATIONS,
    ORDERS,
    STATISTICS,
)
from ofa_nni.latency.reference import ReferenceLog, reference_spec
from ofa_nni.latency.runners import (
    Runner,
    check_backend,
    device_description,
    keep_heap_steady,
    measuring,
    ort_session,
    progress_bar,
    resolve_clock,
    time_runs,
    timer_for,
)
from ofa_nni.latency.specs import OpSpec, specs_by_key
from ofa_nni.latency.table import LatencyTable, entry_summary

__all__ = ["build_latency_table", "time_entries"]


def _settings_differences(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    return [f"{key}: {stored.get(key)!r} -> {wanted.get(key)!r}"
            for key in wanted if stored.get(key) != wanted.get(key)]


def _saved_progress(progress_path: Path, settings: Mapping[str, Any], keys: Any
                    ) -> tuple[dict[str, list[float]], Any]:
    """The timings of an interrupted build with the same settings, and its reference log (``None``
    without normalisation; a damaged or foreign file is an error naming it and the field, not a
    traceback)."""
    try:
        saved = json.loads(progress_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidInputError(f"{progress_path} is not a latency-table progress file ({error}); delete it") from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT + "-progress":
        raise InvalidInputError(f"{progress_path} is not a latency-table progress file (expected an object with "
                                f"format {FORMAT + '-progress'!r}, got {type(saved).__name__}); delete it")
    stored, timings = saved.get("settings"), saved.get("timings")
    if not isinstance(stored, dict) or not isinstance(timings, dict):
        raise InvalidInputError(f"{progress_path}: settings and timings must be objects; delete the file")
    # Progress files written before 'order' and 'normalise' existed stay resumable.
    stored = {"order": "interleaved", "normalise": "none", **stored}
    differences = _settings_differences(stored, settings)
    if differences:
        raise InvalidInputError(
            f"{progress_path} holds progress of a build with other settings ({'; '.join(differences)}); "
            "delete it or choose another output file"
        )
    resumed: dict[str, list[float]] = {}
    for key, values in timings.items():
        if key in keys:
            if not isinstance(values, list) or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in values):
                raise InvalidInputError(f"{progress_path}: timings.{key} must be a list of times >= 0; delete the file")
            resumed[key] = [float(v) for v in values]
    return resumed, saved.get("reference")


@renamed_keywords(space="arch_space")
def build_latency_table(
    arch_space: ArchSpace,
    *,
    backend: str = "torch",
    device: str = "cpu",
    batch_size: int = 1,
    resolutions: Sequence[int] | None = None,
    warmup: int = DEFAULT_WARMUP,
    repeats: int = DEFAULT_REPEATS,
    rounds: int = DEFAULT_ROUNDS,
    num_threads: int | None = None,
    statistic: str = "min",
    clock: str = "auto",
    order: str = "interleaved",
    normalise: str = "none",
    seed: int = 0,
    progress_path: str | os.PathLike[str] | None = None,
    checkpoint_seconds: float = 5.0,
    show_progress: bool = True,
) -> LatencyTable:
    """Measure a latency table of ``arch_space`` on this machine (see the module docstring).

    Args:
        backend: ``"torch"`` (eager) or ``"onnxruntime"``.
        device: ``"cpu"`` or ``"cuda"``.
        batch_size: Images per call.
        resolutions: Resolutions to measure (default: all); the others are interpolated.
        warmup, repeats, rounds: Per visit, ``warmup`` untimed and ``repeats`` timed calls; every entry
            is visited ``rounds`` times (in a fresh random order each round) and its values are the
            minimum and the median of its ``repeats x rounds`` timings (defaults: 3, 30 and 3, the
            measurements behind them in :mod:`ofa_nni.latency.protocol`).
        num_threads: CPU threads for the backend (default: torch's current setting).
        clock: ``"auto"`` (default: ``"cpu"`` for one CPU thread, else ``"wall"``), ``"wall"`` (elapsed
            time) or ``"cpu"``: CPU time of the calling thread, which preemption by other processes
            does not inflate (single-threaded CPU only). It measures what the network costs while it
            runs, i.e. the latency on a core of its own; slowdowns while it runs (memory bandwidth
            and caches shared with busy neighbours, a lower clock frequency) still count, waiting for
            a core does not. The table records the clock it used.
        order: ``"interleaved"`` (default: each round visits every entry, in a fresh random order, so a
            burst of load from another process spreads over many entries) or ``"block"`` (each entry's
            rounds back to back).
        normalise: ``"none"`` (default) or ``"reference"``: a mid-sized block of the space is timed at
            least every 0.1 s between the entries' visits, and each visit's timings are divided by
            how much slower than its quiet speed it ran at that moment (:mod:`~ofa_nni.latency.reference`),
            so a slow phase of the machine (memory-bandwidth contention, a frequency drop) scales out.
            The table records the reference op; validation and deployment checks time it too.
        statistic: What the table predicts with: ``"min"`` (default) or ``"median"`` of each entry's
            timings (both are stored; :meth:`LatencyTable.with_statistic` switches).
        progress_path: Where to keep resumable progress (e.g. ``<out>.partial.json``); a build with
            the same settings continues from it. Deleted by the caller once the table is saved.
    """
    check_backend(backend, device)
    if statistic not in STATISTICS:
        raise InvalidInputError(f"unknown statistic {statistic!r}; allowed: {', '.join(STATISTICS)}")
    for name, value, minimum in (("batch_size", batch_size, 1), ("warmup", warmup, 0), ("repeats", repeats, 1),
                                 ("rounds", rounds, 1)):
        if int(value) != value or value < minimum:
            raise InvalidInputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    measured = tuple(sorted(set(arch_space.resolutions if resolutions is None else (int(r) for r in resolutions))))
    unknown = [r for r in measured if r not in arch_space.resolutions]
    if unknown or not measured:
        raise InvalidInputError(
            f"resolutions {unknown or list(measured)} not in the space; allowed: {list(arch_space.resolutions)}")
    num_threads = int(num_threads or torch.get_num_threads())
    clock = resolve_clock(clock, num_threads, device)
    timer_for(clock, num_threads, device)  # refuses a clock that does not fit before anything is measured
    if order not in ORDERS:
        raise InvalidInputError(f"unknown order {order!r}; allowed: {', '.join(ORDERS)}")
    if normalise not in NORMALISATIONS:
        raise InvalidInputError(f"unknown normalise {normalise!r}; allowed: {', '.join(NORMALISATIONS)}")
    specs = specs_by_key(arch_space, measured)
    reference = reference_spec(specs) if normalise == "reference" else None
    settings = {
        "space": arch_space.signature(), "backend": backend, "device": device, "batch_size": batch_size,
        "measured_resolutions": list(measured), "warmup": warmup, "repeats": repeats, "rounds": rounds,
        "num_threads": num_threads, "seed": seed, "clock": clock,
        "order": order, "normalise": normalise,
    }
    timings: dict[str, list[float]] = {key: [] for key in specs}
    saved_reference = None
    if progress_path is not None and Path(progress_path).is_file():
        resumed, saved_reference = _saved_progress(Path(progress_path), settings, specs)
        timings.update(resumed)
    log = None
    if reference is not None:
        log = (ReferenceLog() if saved_reference is None and not any(timings.values())
               else ReferenceLog.from_dict(saved_reference, timings, repeats, str(progress_path)))

    def save_progress() -> None:
        if progress_path is not None:
            progress = {"format": FORMAT + "-progress", "settings": settings, "timings": timings}
            if log is not None:
                progress["reference"] = log.to_dict()
            atomic_write_json(progress_path, progress)

    heap = keep_heap_steady()  # what time_entries measures under (idempotent), recorded in the table
    load_start = os.getloadavg()
    started = time.perf_counter()
    last_save = time.monotonic()

    def after_visit() -> None:
        nonlocal last_save
        if time.monotonic() - last_save > checkpoint_seconds:
            save_progress()
            last_save = time.monotonic()

    used = time_entries(specs, timings, backend=backend, device=device, batch_size=batch_size, warmup=warmup,
                        repeats=repeats, rounds=rounds, num_threads=num_threads, clock=clock, order=order,
                        seed=seed, reference=reference, log=log, after_visit=after_visit,
                        show_progress=show_progress)
    save_progress()

    entries = {key: entry_summary(used[key]) for key in sorted(specs)}
    metadata = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "backend": backend,
        "device": device_description(device, num_threads),
        "libraries": library_versions("torch", "onnxruntime", "numpy", "ofa_nni"),
        "batch_size": batch_size,
        "settings": {"warmup": warmup, "repeats": repeats, "rounds": rounds, "statistic": statistic, "clock": clock,
                     "order": order, "normalise": normalise, "unit": "ms", "seed": seed, "heap": heap},
        "load": {"loadavg_start": list(load_start), "loadavg_end": list(os.getloadavg())},
        "build_seconds": round(time.perf_counter() - started, 2),
    }
    if reference is not None and log is not None:
        metadata["reference"] = log.summary(reference.key)
    return LatencyTable(arch_space=arch_space, entries=entries, measured_resolutions=measured, metadata=metadata)



def time_entries(
    specs: Mapping[str, OpSpec],
    timings: dict[str, list[float]],
    *,
    backend: str,
    device: str,
    batch_size: int,
    warmup: int,
    repeats: int,
    rounds: int,
    num_threads: int,
    clock: str,
    order: str,
    seed: int,
    reference: OpSpec | None = None,
    log: ReferenceLog | None = None,
    after_visit: Callable[[], None] | None = None,
    show_progress: bool = False,
) -> dict[str, list[float]]:
    """Time every op of ``specs`` with one protocol, appending milliseconds to ``timings[key]``;
    visits an earlier (interrupted) run already made are skipped. Ops of one module share its
    weights and, with ONNX Runtime, one session with a dynamic input size.

    With a ``reference`` op, it is timed between the visits and every visit's time is kept in
    ``log`` (a fresh one if ``None``; a build passes the one it keeps in its progress file):
    ``timings`` keeps the raw milliseconds, the returned timings are normalised
    (:mod:`~ofa_nni.latency.reference`). Without, the returned timings are ``timings``."""
    timer = timer_for(clock, num_threads, device)
    if reference is not None and log is None:
        log = ReferenceLog()
    visits = _visit_order(sorted(specs), rounds, order, np.random.default_rng(seed))
    done_visits = sum(min(len(timings.get(key, [])) // repeats, rounds) for key in specs)
    modules: dict[str, nn.Module] = {}
    sessions: dict[str, Any] = {}
    runners: dict[str, Runner] = {}

    def runner_for(spec: OpSpec) -> Runner:
        if spec.key not in runners:
            if spec.module_key not in modules:
                modules[spec.module_key] = spec.build()
            module = modules[spec.module_key]
            session = None
            if backend == "onnxruntime":
                if spec.module_key not in sessions:
                    example = torch.zeros(spec.input_shape(batch_size))
                    sessions[spec.module_key] = ort_session(module, example, device=device,
                                                            num_threads=num_threads, dynamic_size=True)
                session = sessions[spec.module_key]
            runners[spec.key] = Runner(module, spec.input_shape(batch_size), backend=backend, device=device,
                                       num_threads=num_threads, session=session)
        return runners[spec.key]

    def time_reference() -> list[float]:
        assert reference is not None
        return time_runs(runner_for(reference), warmup=warmup, repeats=repeats, clock=timer)

    measured_now = False
    bar = progress_bar(len(specs) * rounds, done_visits, f"lut {backend}/{device}", show_progress)
    with measuring(num_threads), bar:
        for key, visit in visits:
            values = timings.setdefault(key, [])
            if len(values) >= (visit + 1) * repeats:
                continue
            runner = runner_for(specs[key])

            def run(runner: Runner = runner) -> list[float]:
                return time_runs(runner, warmup=warmup, repeats=repeats, clock=timer)

            values.extend(run() if log is None else log.visit(key, run, time_reference))
            measured_now = True
            bar.update(1)
            if after_visit is not None:
                after_visit()
        if log is not None and measured_now:
            log.time_reference_if_due(time_reference, force=True)  # the last visits get a reference after them
    return timings if log is None else log.normalise({key: timings.get(key, []) for key in specs}, repeats)


def _visit_order(keys: Sequence[str], rounds: int, order: str, rng: np.random.Generator) -> list[tuple[str, int]]:
    """``(key, visit number)`` in the order the timings are taken."""
    if order == "block":
        return [(str(key), visit) for key in rng.permutation(keys) for visit in range(rounds)]
    return [(str(key), visit) for visit in range(rounds) for key in rng.permutation(keys)]
