"""The names of a latency table's file format and of its measuring protocol's settings, and the
quality targets of its validation. Plain constants: ``ofa-nni --help`` reads them without torch."""

from __future__ import annotations

__all__ = [
    "BACKENDS",
    "CLOCKS",
    "CLOCK_CHOICES",
    "DEVICES",
    "FORMAT",
    "FORMAT_VERSION",
    "MAPE_TARGET_PERCENT",
    "NORMALISATIONS",
    "ORDERS",
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
SPEARMAN_TARGET = 0.95
MAPE_TARGET_PERCENT = 10.0
