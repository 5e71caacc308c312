"""The names of a latency table's file format and of its measuring protocol's settings, and the
quality targets of its validation. Plain constants: ``ofa-nni --help`` reads them without torch."""

from __future__ import annotations

__all__ = [
    "BACKENDS",
    "CLOCKS",
    "CLOCK_CHOICES",
    "DEFAULT_MAX_VALIDATION_ROUNDS",
    "DEFAULT_REPEATS",
    "DEFAULT_ROUNDS",
    "DEFAULT_WARMUP",
    "DEVICES",
    "FORMAT",
    "FORMAT_VERSION",
    "CORRECTION_SCALE_RANGE",
    "MAPE_TARGET_PERCENT",
    "NORMALISATIONS",
    "ORDERS",
    "REPEATABILITY_TARGET",
    "SPEARMAN_TARGET",
    "STATISTICS",
]

FORMAT = "ofa-nni-latency-table"
FORMAT_VERSION = 1
BACKENDS = ("torch", "onnxruntime")
STATISTICS = ("median", "min")
CLOCKS = ("wall", "cpu")
"""What a table's timings were read from: elapsed time, or the calling thread's CPU time."""
CLOCK_CHOICES = ("auto", *CLOCKS)
"""What a build may ask for: ``auto`` (the default) is ``cpu`` for one CPU thread, ``wall`` otherwise.
Under competing CPU load the thread's CPU time kept tables at Spearman >= 0.97 and MAPE <= 7.2%
where the wall clock's MAPE reached 12.8% (one competitor) and 24.6% (two) on 2 cores
(benchmarks/results/latency_table.md): preemption by other processes does not count."""
DEVICES = ("cpu", "cuda")
ORDERS = ("interleaved", "block")
"""``interleaved``: every round visits all entries in a fresh random order (a burst of load spreads
over many entries); ``block``: each entry gets all its rounds back to back."""
NORMALISATIONS = ("none", "reference")
"""``none``: timings as the clock read them; ``reference``: each visit's timings divided by how much
slower than its quiet speed a fixed reference op of the space ran at that moment
(:mod:`ofa_nni.latency.reference`), so a slow phase of the machine during the build (memory-bandwidth
contention, a frequency drop: what the CPU clock does not hide) scales out. A table without the
setting (written before it existed) reads as ``none``."""
DEFAULT_WARMUP = 3
"""Untimed calls at the start of every visit of an entry (caches, allocator, lazy initialisation)."""
DEFAULT_REPEATS = 30
"""Timed calls per visit (on 2 idle cores, 30 validated OFA-MobileNetV3 torch tables at MAPE 4.9% /
2.8% where 10 gave 7.2% / 10.3%: the minimum of more timings is a steadier estimate)."""
DEFAULT_ROUNDS = 3
"""Visits per entry (and per end-to-end subnet), each in a fresh random order. The same 90 timings in 9
visits of 10 were measured under the benchmark's seven loads (benchmarks/results/latency_table.md):
no better overall (OFA-MobileNetV3 torch: 0 misses where 3 x 30 had 2; with ONNX Runtime 2 misses where
3 x 30 had none; the demo space side by side: both met every load) and 20-60% slower to build and
validate, so the default stays. A table records the values it was built with; one written without
them (by hand) is re-timed with these."""
SPEARMAN_TARGET = 0.95
MAPE_TARGET_PERCENT = 10.0
CORRECTION_SCALE_RANGE = (0.25, 4.0)
"""Slopes of the validation's fitted line ``measured ~ a x sum + b`` that it may apply. The lines fitted
here: 1.03 (the demo's table, idle machine) and 1.20 (OFA-MobileNetV3, torch, two memory-bandwidth
neighbours; benchmarks/results/latency_table.md, run V). A line far
outside says the sums and the measured subnets disagree (a=0.021 from 3 calibration subnets of tiny,
overhead-bound subnets once), and applying it would predict nearly one time for every subnet."""
REPEATABILITY_TARGET = 0.95
"""How well a validation's own end-to-end timings must repeat (even vs odd visits, stepped up) before
it stops adding visits when it may (``max_rounds``): a measurement that repeats at R shows a perfect
table at about sqrt(R), and sqrt(0.95) = 0.975 leaves room above the Spearman target."""
DEFAULT_MAX_VALIDATION_ROUNDS = 9
"""Visits per subnet a validation may go on to while its own timings repeat below
:data:`REPEATABILITY_TARGET` (it starts with the table's visits and adds as many at a time). On an idle
machine it never adds any; under two started-and-stopped competitors the same torch OFA-MobileNetV3 table
validated at Spearman 0.954 with 3 visits (its timings repeating at 0.92) and 0.972 with 9 (0.97), the
validation taking 3.4x as long (benchmarks/results/latency_table.md)."""
