"""Latency lookup-table quality and build time, torch eager vs ONNX Runtime, in one run.

For each backend: build the table of the paper's OFA-MobileNetV3 space (1000 classes, batch 1) on
this CPU, measuring every ``--measure-every``-th resolution and interpolating the rest; then
validate it on K random subnets frozen with ``OFAMobileNetV3Space.freeze`` and measured end to end
with the same backend (Spearman, Kendall, MAPE of the plain sum, and of the linear correction
fitted on K other subnets). Validation subnets have random resolutions, most of them interpolated
ones, so the figures include the interpolation error. Targets (the issue): Spearman >= 0.95 and
MAPE <= 10% on 2 CPU cores.

    .venv/bin/python benchmarks/bench_latency_table.py --threads 2 \\
        --markdown benchmarks/results/latency_table.md
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from ofa_nni.latency import build_latency_table, validate_latency_table
from search_spaces import OFAMobileNetV3Space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", nargs="+", default=["torch", "onnxruntime"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--measure-every", type=int, default=4, help="measure every N-th resolution (and 224)")
    parser.add_argument("--validate", type=int, default=30)
    parser.add_argument("--calibration-subnets", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: the thread's CPU time (needs --threads 1), for a machine shared with busy processes")
    parser.add_argument("--out-dir", type=Path, default=Path("runs/bench-latency"))
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args()
    supernet = OFAMobileNetV3Space()  # weights do not matter for latency
    space = supernet.arch_space
    measured = sorted(set(space.resolutions[:: args.measure_every]) | {space.resolutions[-1]})
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    say("# Latency lookup tables: quality and build time (OFA-MobileNetV3, 1000 classes)")
    say()
    say(f"CPU: {os.cpu_count()} logical CPUs shared with other processes; {args.threads} thread(s) per backend; "
        f"batch size {args.batch_size}; {args.clock}-clock timings; warm-up {args.warmup}, repeats {args.repeats}, "
        f"rounds {args.rounds} "
        f"(median, and minimum, of {args.repeats * args.rounds} timings per entry and per validation subnet).")
    say(f"Measured resolutions {measured}; the other {len(space.resolutions) - len(measured)} are interpolated "
        f"(linear in r^2). Validation: {args.validate} random subnets; correction a*sum+b fitted (Theil-Sen) on "
        f"{args.calibration_subnets} other random subnets.")
    say()
    rows = []
    for backend in args.backends:
        load_start = os.getloadavg()[0]
        started = time.perf_counter()
        table = build_latency_table(space, backend=backend, batch_size=args.batch_size, resolutions=measured,
                                    warmup=args.warmup, repeats=args.repeats, rounds=args.rounds,
                                    num_threads=args.threads, clock=args.clock)
        build_seconds = time.perf_counter() - started
        started = time.perf_counter()
        validation = validate_latency_table(table, supernet.freeze, num_subnets=args.validate,
                                            calibration_subnets=args.calibration_subnets)
        validate_seconds = time.perf_counter() - started
        args.out_dir.mkdir(parents=True, exist_ok=True)
        table.save(args.out_dir / f"lut_{backend}_cpu_t{args.threads}_{args.clock}.json")
        print(table.summary(), flush=True)
        load_end = os.getloadavg()[0]
        # The same timings, summed and compared with the other statistic (no new measurement).
        other = table.with_statistic("median" if table.statistic == "min" else "min")
        validate_latency_table(other, reuse=validation)
        other.save(args.out_dir / f"lut_{backend}_cpu_t{args.threads}_{args.clock}_{other.statistic}.json")
        for variant in (table, other):
            assert variant.validation is not None
            measured_ms = [s["measured_ms"] for s in variant.validation["subnets"] if s["role"] == "validation"]
            rows.append((f"{backend} ({variant.statistic})", len(table.entries), build_seconds, validate_seconds,
                         variant.validation, variant.correction, min(measured_ms), max(measured_ms), load_start,
                         load_end))

    say("| backend (statistic) | entries | build s | validation s | subnets ms | sum: Spearman | sum: MAPE % "
        "| corrected: Spearman | corrected: MAPE % | correction a, b | load avg (start/end) |")
    say("|---|---:|---:|---:|---|---:|---:|---:|---:|---|---|")
    for backend, entries, build_s, validate_s, validation, correction, low, high, load_a, load_b in rows:
        raw, corrected = validation["raw"], validation["corrected"]
        say(f"| {backend} | {entries} | {build_s:.0f} | {validate_s:.0f} | {low:.1f}-{high:.1f} "
            f"| {raw['spearman']:.3f} | {raw['mape_percent']:.1f} | {corrected['spearman']:.3f} "
            f"| {corrected['mape_percent']:.1f} | {correction['scale']:.3f}, {correction['offset_ms']:.2f} ms "
            f"| {load_a:.1f} / {load_b:.1f} |")
    say()
    for backend, *_, validation, correction, _low, _high, _a, _b in rows:
        best = validation["corrected"] if correction["applied"] else validation["raw"]
        say(f"- {backend}: {'corrected' if correction['applied'] else 'plain sum'} used by the table; targets "
            f"(Spearman >= 0.95, MAPE <= 10%) {'met' if validation['meets_targets'] else 'NOT met'} "
            f"(Spearman {best['spearman']:.3f}, MAPE {best['mape_percent']:.1f} %).")
    say(f"- torch {torch.__version__}; tables in `{args.out_dir}`.")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
