"""Latency lookup-table quality and build time per measuring protocol, under competing load.

For each stress level (``--stress KIND:N``, repeatable; default none) competing processes run for
the whole level while, for each protocol, the table of the space is built on this CPU (every
``--measure-every``-th resolution measured, the rest interpolated), then validated on K random
subnets frozen with ``OFAMobileNetV3Space.freeze`` and measured end to end with the same protocol
(Spearman, Kendall, MAPE of the plain sum and of the linear correction fitted on K other
subnets; the table applies the correction only where it helps). Each protocol's timings give both
statistics (min and median) without measuring twice. ``repeat``: how well the validation's own
timings rank alike with themselves (even vs odd visits of the same subnets), which bounds the
Spearman any table can be shown to reach under that load.

Stress kinds (N processes each):
  cpu      a pure-Python busy loop (one core each)
  memory   large array copies and matmuls, 2 threads each (memory bandwidth and caches)
  mixed    processes started and stopped as a test suite or a training run does: each a fresh
           interpreter importing numpy and working 0.5-3 s, N alive at a time, gaps of 0-1 s

Protocols (``--protocols``, comma-separated clock/order[/normalise]): wall/interleaved,
cpu/interleaved (the thread's CPU time: preemption does not count; the library's default),
wall/block (each entry's rounds back to back); a third part ``reference`` adds the reference-op
normalisation (``cpu/interleaved/reference``: a mid-sized block timed between the entries, each
visit divided by its slowdown then; validation normalises the same way). Targets (issue 17):
Spearman >= 0.95 and MAPE <= 10% at N = 1 and 2. ``--visits 3x30,9x10`` compares how many visits
of how many timed calls each (the table's and the validation's) under the same load, side by side;
``--validate-rounds 3,9`` validates each table so many times, with that many visits per subnet (the
same subnets; by default once, as the library does: the table's visits, more while the timings repeat
poorly): whether a miss is the table's or the validation's noise.

    .venv/bin/python benchmarks/bench_latency_table.py --threads 1 --stress none:0 --stress cpu:1 \\
        --stress cpu:2 --markdown benchmarks/results/latency_table_stress.md
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ofa_nni.latency import (
    CLOCKS,
    DEFAULT_REPEATS,
    DEFAULT_ROUNDS,
    DEFAULT_WARMUP,
    NORMALISATIONS,
    ORDERS,
    build_latency_table,
    validate_latency_table,
)
from ofa_nni.nni_search_space import arch_space_from_spec
from search_spaces import OFAMobileNetV3Space

# Each competitor stops once the benchmark is gone (its parent changes), also after a kill -9 of
# the benchmark, which leaves no chance to stop them.
_CPU_HOG = (
    "import os\n"
    "parent = os.getppid()\n"
    "while os.getppid() == parent:\n"
    "    for _ in range(100_000):\n"
    "        pass\n"
)
_MEMORY_HOG = (
    "import os, threading, numpy as np\n"
    "parent = os.getppid()\n"
    "def work():\n"
    "    a = np.ones(16_000_000); b = np.empty_like(a); m = np.ones((512, 512))\n"
    "    while os.getppid() == parent:\n"
    "        np.copyto(b, a); np.copyto(a, b); m @ m\n"
    "threads = [threading.Thread(target=work, daemon=True) for _ in range(2)]\n"
    "[t.start() for t in threads]; [t.join() for t in threads]\n"
)
_BURST = (
    "import sys, time, numpy as np\n"
    "end = time.perf_counter() + float(sys.argv[1]); a = np.ones((256, 256))\n"
    "while time.perf_counter() < end:\n"
    "    a = np.tanh(a @ a.T / 256)\n"
)


@contextlib.contextmanager
def stress(kind: str, count: int) -> Iterator[None]:
    """Competing load of ``kind`` with ``count`` processes, for the duration of the block."""
    env = {**os.environ, "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    processes: list[subprocess.Popen[bytes]] = []
    stop = threading.Event()
    driver = None
    if kind in ("cpu", "memory"):
        code = _CPU_HOG if kind == "cpu" else _MEMORY_HOG
        processes = [subprocess.Popen([sys.executable, "-c", code], env=env) for _ in range(count)]
    elif kind == "mixed" and count:
        rng = random.Random(0)

        def drive() -> None:
            alive: list[subprocess.Popen[bytes]] = []
            while not stop.is_set():
                alive = [p for p in alive if p.poll() is None]
                while len(alive) < count:
                    alive.append(subprocess.Popen([sys.executable, "-c", _BURST, f"{rng.uniform(0.5, 3.0):.2f}"],
                                                  env=env))
                stop.wait(rng.uniform(0.0, 1.0))
            for p in alive:
                p.kill()
                p.wait()

        driver = threading.Thread(target=drive, daemon=True)
        driver.start()
    elif kind not in ("none", "cpu", "memory", "mixed"):
        raise SystemExit(f"unknown stress kind {kind!r}; allowed: none, cpu, memory, mixed")
    try:
        time.sleep(1.0 if count else 0.0)  # let the load start
        yield
    finally:
        stop.set()
        if driver is not None:
            driver.join()
        for p in processes:
            p.kill()
            p.wait()


def _protocol(text: str) -> tuple[str, str, str]:
    """``clock/order`` or ``clock/order/normalise`` -> (clock, order, normalise)."""
    parts = text.strip().split("/")
    if len(parts) == 2:
        parts.append("none")
    if len(parts) != 3 or parts[0] not in CLOCKS or parts[1] not in ORDERS or parts[2] not in NORMALISATIONS:
        raise SystemExit(f"--protocols: {text!r} is not clock/order[/normalise] with clock in {', '.join(CLOCKS)}, "
                         f"order in {', '.join(ORDERS)}, normalise in {', '.join(NORMALISATIONS)}")
    return parts[0], parts[1], parts[2]


def _positive(text: str, option: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise SystemExit(f"{option}: {text!r} is not a positive integer")
    return int(text)


def _visits(text: str) -> tuple[int, int]:
    """``ROUNDSxREPEATS`` -> (rounds, repeats)."""
    parts = text.strip().lower().split("x")
    if len(parts) != 2 or not all(part.isdigit() and int(part) >= 1 for part in parts):
        raise SystemExit(f"--visits: {text!r} is not ROUNDSxREPEATS with positive integers (e.g. 9x10)")
    return int(parts[0]), int(parts[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="ofa-mobilenetv3",
                        help="space preset (ofa-mobilenetv3: the paper's, 1000 classes; cpu: the demo's)")
    parser.add_argument("--num-classes", type=int, default=None)
    parser.add_argument("--backend", default="torch", choices=["torch", "onnxruntime"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--measure-every", type=int, default=4, help="measure every N-th resolution (and the largest)")
    parser.add_argument("--validate", type=int, default=30)
    parser.add_argument("--calibration-subnets", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=DEFAULT_WARMUP)
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS)
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--visits", default=None, metavar="LIST",
                        help="comma-separated ROUNDSxREPEATS to compare side by side under each load (e.g. 3x30,9x10; "
                             "default: --rounds x --repeats); their order alternates from one load to the next")
    parser.add_argument("--validate-rounds", default=None, metavar="LIST",
                        help="comma-separated visits per subnet of the validations of each table, each fixed "
                             "(e.g. 3,9; default: one validation by the library's rule: the table's visits, more "
                             "while the timings repeat poorly); the same subnets each time, their order alternating "
                             "per load")
    parser.add_argument("--stress", action="append", default=None, metavar="KIND:N",
                        help="competing load: none:0, cpu:N, memory:N, mixed:N (repeatable; default none:0)")
    parser.add_argument("--protocols", default="wall/interleaved,cpu/interleaved,wall/block",
                        help="comma-separated clock/order[/normalise], e.g. cpu/interleaved,cpu/interleaved/reference")
    parser.add_argument("--out-dir", type=Path, default=Path("runs/bench-latency"))
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args()
    spec: dict[str, Any] = {"preset": args.preset}
    if args.num_classes is not None:
        spec["num_classes"] = args.num_classes
    signature = arch_space_from_spec(spec).signature()
    supernet = OFAMobileNetV3Space(**{k: tuple(v) if isinstance(v, list) else v for k, v in signature.items()})
    space = supernet.arch_space
    measured = sorted(set(space.resolutions[:: args.measure_every]) | {space.resolutions[-1]})
    protocols = [_protocol(text) for text in args.protocols.split(",")]
    visit_plans = [_visits(text) for text in args.visits.split(",")] if args.visits else [(args.rounds, args.repeats)]
    validate_rounds = [_positive(text, "--validate-rounds") for text in args.validate_rounds.split(",")] \
        if args.validate_rounds else [None]
    levels = [(text.split(":")[0], int(text.split(":")[1])) for text in (args.stress or ["none:0"])]
    lines: list[str] = []
    notes: list[str] = []  # the reference op's slowdowns, said after the table (a row holds the same columns)

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    say(f"# Latency tables under competing load ({args.preset}, {space.num_classes} classes, {args.backend})")
    say()
    say(f"CPU: {os.cpu_count()} logical CPUs, shared with whatever else runs (load averages below); "
        f"{args.threads} thread(s); batch {args.batch_size}; warm-up {args.warmup} per visit; visits x timings per "
        f"visit {', '.join(f'{r} x {n}' for r, n in visit_plans)}. Measured resolutions {measured} (the other "
        f"{len(space.resolutions) - len(measured)} interpolated). Validation: {args.validate} random subnets, "
        f"correction fitted on {args.calibration_subnets} others. Started {time.strftime('%Y-%m-%d %H:%M:%S')}.")
    say()
    say("| stress | protocol (clock/order[/normalise]/statistic) | visits x timings | validation visits | build s "
        "| validation s | subnets ms | Spearman | MAPE % | used | targets | repeat | load avg start / end |")
    say("|---|---|---|---:|---:|---:|---|---:|---:|---|---|---:|---|")
    for level, (kind, count) in enumerate(levels):
        # Alternating which plan goes first: a load that eases or grows within a level favours neither.
        plans = visit_plans if level % 2 == 0 else visit_plans[::-1]
        with stress(kind, count):
            for (clock, order, normalise), (rounds, repeats) in itertools.product(protocols, plans):
                load_start = os.getloadavg()[0]
                started = time.perf_counter()
                table = build_latency_table(space, backend=args.backend, batch_size=args.batch_size,
                                            resolutions=measured, warmup=args.warmup, repeats=repeats,
                                            rounds=rounds, num_threads=args.threads, clock=clock, order=order,
                                            normalise=normalise, show_progress=False)
                build_s = time.perf_counter() - started
                named = f"{clock}/{order}" + ("" if normalise == "none" else f"/{normalise}")
                args.out_dir.mkdir(parents=True, exist_ok=True)
                for validation_rounds in (validate_rounds if level % 2 == 0 else validate_rounds[::-1]):
                    started = time.perf_counter()
                    # A listed number of visits is that many, fixed; by default the library's own rule
                    # (the table's visits, more while the timings repeat poorly).
                    fixed = {} if validation_rounds is None else {"rounds": validation_rounds,
                                                                  "max_rounds": validation_rounds}
                    validation = validate_latency_table(table, supernet.freeze, num_subnets=args.validate,
                                                        calibration_subnets=args.calibration_subnets,
                                                        show_progress=False, **fixed)
                    validate_s = time.perf_counter() - started
                    load_end = os.getloadavg()[0]
                    other = table.with_statistic("median")
                    validate_latency_table(other, reuse=validation)
                    visits = validation["rounds"]
                    table.save(args.out_dir / f"lut_{kind}{count}_{named.replace('/', '_')}_{rounds}x{repeats}"
                                              f"{'' if validation_rounds is None else f'_v{visits}'}.json")
                    for variant in (table, other):
                        assert variant.validation is not None and variant.correction is not None
                        v, applied = variant.validation, variant.correction["applied"]
                        best = v["corrected"] if applied else v["raw"]
                        held = [s["measured_ms"] for s in v["subnets"] if s["role"] == "validation"]
                        say(f"| {kind}:{count} | {named}/{variant.statistic} | {rounds} x {repeats} | {visits} "
                            f"| {build_s:.0f} | {validate_s:.0f} "
                            f"| {min(held):.2f}-{max(held):.2f} | {best['spearman']:.3f} | {best['mape_percent']:.1f} "
                            f"| {'corrected' if applied else 'sum'} | {'met' if v['meets_targets'] else 'NOT met'} "
                            f"| {v['repeatability'] if v.get('repeatability') is not None else '-'} "
                            f"| {load_start:.1f} / {load_end:.1f} |")
                    load_start = load_end
                if normalise == "reference":
                    built, checked = table.metadata["reference"], validation["reference"]
                    notes.append(f"- {kind}:{count} {named} {rounds} x {repeats}: reference op `{built['op']}`, "
                                 f"baseline "
                                 f"{built['baseline_ms']:.4f} ms over {built['visits']} visits in the build, slowdowns "
                                 f"divided out {built['factor_min']:.2f}x-{built['factor_max']:.2f}x; validation's "
                                 f"baseline {checked['baseline_ms']:.4f} ms, {checked['factor_min']:.2f}x-"
                                 f"{checked['factor_max']:.2f}x")
    if notes:
        say()
        say("Reference-op normalisation (factor: the reference's timing at a visit over its quiet timing):")
        for note in notes:
            say(note)
    say()
    say(f"torch {torch.__version__}; tables in `{args.out_dir}`; finished {time.strftime('%Y-%m-%d %H:%M:%S')}.")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
