#!/usr/bin/env python3
"""Time an ofa-nni latency bundle on this device with ONNX Runtime alone, and write results.json.

This file is copied into every bundle (``ofa-nni lut bundle --out DIR``) as ``DIR/run_latency.py``:
it needs only Python 3.9+, numpy and onnxruntime -- no PyTorch, no ofa-nni -- so that a table can
be measured on the device people deploy on. Copy DIR there and run::

    python3 run_latency.py                      # CPU, 1 thread: writes DIR/results.json
    python3 run_latency.py --threads 4 --providers CPUExecutionProvider

then bring ``results.json`` back and turn it into a latency table with
``ofa-nni lut import DIR/results.json --out lut.json``.

``--providers`` takes ONNX Runtime execution providers by name, comma-separated, in order of
preference (e.g. ``CUDAExecutionProvider``, ``CoreMLExecutionProvider``, ``NnapiExecutionProvider``,
``OpenVINOExecutionProvider``); ONNX Runtime falls back to the CPU for ops a provider does not
take, and results.json records the providers each session actually used. Only the CPU provider
has been tested by ofa-nni (no other device was available where it was written).

The protocol is the one ``ofa-nni lut build`` uses: every op is visited ``--rounds`` times (in a
fresh random order each round, or each op's rounds back to back with ``--order block``), each visit
``--warmup`` untimed and ``--repeats`` timed calls; the table keeps the minimum and the median of
each op's timings. The end-to-end subnets are timed the same way, for the table's validation.

``--normalise reference`` also times the bundle's reference op (a mid-sized block of the space,
named in the manifest) at least every ``interval_s`` seconds between the visits, and keeps every
visit's raw timings and time in results.json: ``ofa-nni lut import`` then divides each visit by how
much slower than its quiet speed the reference ran at that moment (ofa_nni.latency.reference has
the arithmetic and the reasons; this file only measures, so that it needs no ofa-nni).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime

BUNDLE_FORMAT = "ofa-nni-latency-bundle"
RESULTS_FORMAT = "ofa-nni-latency-results"
FORMAT_VERSION = 1


def make_session(model: str | bytes, providers: list[str], threads: int) -> onnxruntime.InferenceSession:
    """An ONNX Runtime session of a model (a path or its bytes) as every ofa-nni latency measurement
    opens one: ``threads`` intra-op threads, sequential execution, all graph optimisations."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(model, options, providers=providers)


def _time(session: onnxruntime.InferenceSession, feed: dict, warmup: int, repeats: int, clock) -> list[float]:
    for _ in range(warmup):
        session.run(None, feed)
    times = []
    for _ in range(repeats):
        start = clock()
        session.run(None, feed)
        times.append((clock() - start) * 1e3)
    return times


class _ReferenceVisits:
    """The reference op timed when due (the rule of ofa_nni.latency.reference.ReferenceLog, which
    this standalone file cannot import): its visits' times and medians."""

    def __init__(self, session: onnxruntime.InferenceSession, feed: dict, interval_s: float, time_visit) -> None:
        self.session, self.feed, self.interval_s, self.time_visit = session, feed, interval_s, time_visit
        self.at: list[float] = []
        self.ms: list[float] = []
        self.last_start = float("-inf")

    def time_if_due(self, force: bool = False) -> None:
        now = time.time()
        if force or now - self.last_start >= self.interval_s:
            self.last_start = now
            timings = self.time_visit(self.session, self.feed)
            self.at.append((now + time.time()) / 2)
            self.ms.append(float(np.median(timings)))

    def record(self) -> dict:
        return {"at": self.at, "ms": self.ms}


def _visits(count: int, rounds: int, order: str, rng: np.random.Generator) -> list[tuple[int, int]]:
    if order == "block":
        return [(int(i), visit) for i in rng.permutation(count) for visit in range(rounds)]
    return [(int(i), visit) for visit in range(rounds) for i in rng.permutation(count)]


def _summary(values: list[float]) -> dict:
    array = np.asarray(values)
    q25, q50, q75 = np.percentile(array, [25, 50, 75])
    return {"ms": round(float(q50), 6), "min_ms": round(float(array.min()), 6), "iqr_ms": round(float(q75 - q25), 6),
            "samples": int(array.size)}


def _halves(timings: list[float], repeats: int) -> dict:
    """The minimum and the median of a subnet's even and of its odd visits apart (with two visits or
    more): how well the timings repeat themselves (ofa_nni.latency.validation.repeatability)."""
    visits = np.asarray(timings, dtype=float).reshape(-1, repeats)
    if len(visits) < 2:
        return {}
    halves = (visits[0::2].reshape(-1), visits[1::2].reshape(-1))
    return {"measured_min_halves_ms": [round(float(half.min()), 6) for half in halves],
            "measured_median_halves_ms": [round(float(np.median(half)), 6) for half in halves]}


def _progress(done: int, total: int, what: str, quiet: bool) -> None:
    if not quiet and (done == total or done % 50 == 0):
        print(f"\r{what}: {done}/{total}", end="\n" if done == total else "", file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=Path(__file__).resolve().parent,
                        help="bundle directory (default: this file's)")
    parser.add_argument("--out", type=Path, default=None, help="results file (default: BUNDLE/results.json)")
    parser.add_argument("--providers", default="CPUExecutionProvider",
                        help="ONNX Runtime execution providers, comma-separated (default CPUExecutionProvider)")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    parser.add_argument("--warmup", type=int, default=3)
    # The defaults of ofa_nni.latency.protocol (DEFAULT_REPEATS, DEFAULT_ROUNDS), written out: this file
    # runs where ofa-nni is not installed.
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clock", choices=("auto", "wall", "cpu"), default="auto",
                        help="auto (default: cpu with --threads 1 on the CPU provider, else wall), wall, or cpu: "
                             "the thread's CPU time, which other processes taking the core do not inflate")
    parser.add_argument("--order", choices=("interleaved", "block"), default="interleaved")
    parser.add_argument("--normalise", choices=("none", "reference"), default="none",
                        help="reference: time the bundle's reference op between the visits and keep every visit's "
                             "timings, so that 'ofa-nni lut import' scales out slow phases of the device (see the "
                             "module docstring)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    manifest_path = args.bundle / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        parser.error(f"{manifest_path}: not a readable bundle manifest ({error})")
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        parser.error(f"{manifest_path} is not an ofa-nni latency bundle manifest")
    for name in ("threads", "repeats", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    providers = [p.strip() for p in args.providers.split(",") if p.strip()]
    unknown = [p for p in providers if p not in onnxruntime.get_available_providers()]
    if unknown or not providers:
        parser.error(f"--providers {unknown or args.providers!r} not available in this onnxruntime; available: "
                     f"{', '.join(onnxruntime.get_available_providers())}")
    if args.clock == "auto":
        args.clock = "cpu" if args.threads == 1 and providers[0] == "CPUExecutionProvider" else "wall"
    if args.clock == "cpu" and (args.threads != 1 or providers[0] != "CPUExecutionProvider"):
        parser.error("--clock cpu needs --threads 1 and the CPU provider")
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    reference = manifest.get("reference") if args.normalise == "reference" else None
    if args.normalise == "reference" and not (isinstance(reference, dict) and isinstance(reference.get("op"), str)):
        parser.error("--normalise reference: this bundle names no reference op (written by an older ofa-nni); "
                     "write it again with 'ofa-nni lut bundle'")
    rng = np.random.default_rng(args.seed)
    loadavg_start = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    started = time.perf_counter()

    entries = manifest["entries"]
    sessions: dict[str, onnxruntime.InferenceSession] = {}
    used_providers: set[str] = set()
    feeds = []
    for entry in entries:
        if entry["model"] not in sessions:
            sessions[entry["model"]] = make_session(str(args.bundle / entry["model"]), providers, args.threads)
            used_providers.update(sessions[entry["model"]].get_providers())
        feeds.append({"input": rng.standard_normal(entry["input_shape"]).astype(np.float32)})
    timings: list[list[float]] = [[] for _ in entries]
    visit_at: list[list[float]] = [[] for _ in entries]

    def time_visit(session: onnxruntime.InferenceSession, feed: dict) -> list[float]:
        return _time(session, feed, args.warmup, args.repeats, clock)

    def reference_visits() -> _ReferenceVisits | None:
        if reference is None:
            return None
        index = [entry["key"] for entry in entries].index(reference["op"])
        return _ReferenceVisits(sessions[entries[index]["model"]], feeds[index], float(reference["interval_s"]),
                                time_visit)

    op_references = reference_visits()
    visits = _visits(len(entries), args.rounds, args.order, rng)
    for done, (index, _) in enumerate(visits, 1):
        if op_references is not None:
            op_references.time_if_due()
        visit_started = time.time()
        timings[index] += time_visit(sessions[entries[index]["model"]], feeds[index])
        visit_at[index].append((visit_started + time.time()) / 2)
        _progress(done, len(visits), "ops", args.quiet)
    if op_references is not None:
        op_references.time_if_due(force=True)  # the last visits get a reference after them
    build_seconds = time.perf_counter() - started

    subnets = manifest["subnets"]
    measured: list[dict] = []
    subnet_references = reference_visits()  # its own baseline, as ofa-nni's end-to-end measurements
    group = 8  # sessions alive at a time: bounded memory on a small device
    # Groups drawn at random, as ofa-nni's own end-to-end runs: the manifest lists the validation
    # subnets before the calibration ones, and a slow phase of the device must not fall on one role.
    shuffled = [int(i) for i in rng.permutation(len(subnets))]
    for start in range(0, len(subnets), group):
        members = shuffled[start:start + group]
        group_sessions = {i: make_session(str(args.bundle / subnets[i]["model"]), providers, args.threads)
                          for i in members}
        for session in group_sessions.values():
            used_providers.update(session.get_providers())
        group_feeds = {i: {"input": rng.standard_normal(subnets[i]["input_shape"]).astype(np.float32)}
                       for i in members}
        values: dict[int, list[float]] = {i: [] for i in members}
        subnet_at: dict[int, list[float]] = {i: [] for i in members}
        for position, _ in _visits(len(members), args.rounds, args.order, rng):
            i = members[position]
            if subnet_references is not None:
                subnet_references.time_if_due()
            visit_started = time.time()
            values[i] += time_visit(group_sessions[i], group_feeds[i])
            subnet_at[i].append((visit_started + time.time()) / 2)
        for i in members:
            measured.append({"arch": subnets[i]["arch"], "role": subnets[i]["role"],
                             "measured_min_ms": round(float(np.min(values[i])), 6),
                             "measured_median_ms": round(float(np.median(values[i])), 6),
                             **_halves(values[i], args.repeats)})
            if subnet_references is not None:  # raw, for the import to normalise
                measured[-1].update(timings=values[i], visit_at=subnet_at[i])
        _progress(len(measured), len(subnets), "subnets", args.quiet)
    if subnet_references is not None:
        subnet_references.time_if_due(force=True)

    results = {
        "format": RESULTS_FORMAT,
        "format_version": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "manifest": manifest,
        "device": {"name": platform.processor() or platform.machine(), "platform": platform.platform(),
                   "cpu_count": os.cpu_count(), "providers_requested": providers,
                   "providers_used": sorted(used_providers), "num_threads": args.threads},
        "libraries": {"python": platform.python_version(), "numpy": np.__version__,
                      "onnxruntime": onnxruntime.__version__},
        "settings": {"warmup": args.warmup, "repeats": args.repeats, "rounds": args.rounds, "clock": args.clock,
                     "order": args.order, "normalise": args.normalise, "seed": args.seed, "unit": "ms"},
        "entries": {entry["key"]: _summary(timings[i]) for i, entry in enumerate(entries)},
        "subnets": measured,
        "load": {"loadavg_start": loadavg_start,
                 "loadavg_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None},
        "build_seconds": round(build_seconds, 2),
        "seconds": round(time.perf_counter() - started, 2),
    }
    if op_references is not None and subnet_references is not None:
        # Raw timings and times of every visit: the import normalises them (and the entries' summaries
        # above are of the raw timings).
        results["reference"] = {"op": manifest["reference"]["op"], "ops": op_references.record(),
                                "subnets": subnet_references.record()}
        results["visits"] = {entry["key"]: {"timings": timings[i], "at": visit_at[i]}
                             for i, entry in enumerate(entries)}
    out = args.out or args.bundle / "results.json"
    temporary = out.with_name(f".{out.name}.tmp")
    temporary.write_text(json.dumps(results, indent=1) + "\n")
    os.replace(temporary, out)  # a killed run leaves no half-written results
    if not args.quiet:
        print(f"wrote {out} ({len(entries)} ops, {len(measured)} subnets, {results['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
