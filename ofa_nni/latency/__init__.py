"""Latency lookup tables measured on the user's own device, and their validation.

OFA (Cai et al., ICLR 2020, Sec. 3.4) specialises with a per-layer latency lookup table: the
latency of a subnet is the sum of its stem, its active blocks and its head, each looked up by its
shape. The reference published one device's table (Note10); this package builds one on *your*
device and backend:

* **Entries** are keyed by shape, as OFA's tables are: op kind, in/out/middle channels, kernel,
  stride, squeeze-excite width, activation and input size (e.g.
  ``mbconv_in24_out40_mid96_k5_s2_relu_se24_h56``). Block positions that share a shape share an
  entry, so the default space needs ~2 shapes x 9 settings per stage and resolution, not 20 x 9
  (:mod:`~ofa_nni.latency.specs`).
* **Measurement** (:mod:`~ofa_nni.latency.runners`): eager PyTorch (CPU, or CUDA with
  synchronisation) or ONNX Runtime (each op exported with ``torch.onnx``). Every entry is timed in
  several *rounds*; each visit runs warm-up calls, then timed repeats. The table predicts with the
  *minimum* of an entry's timings by default (the median is stored too: ``statistic="median"``):
  as with ``timeit``, timings above the minimum come from interference (other processes, a
  descheduled thread), not from the op, and the minimum is what reproduces between runs. Measured
  here on 2 cores with other jobs running, the sum of minima ranked 30 end-to-end subnets at
  Spearman 0.98 where the sum of medians reached 0.95 (torch) and 0.81 (ONNX Runtime). Rounds
  visit the entries in a fresh random order (``order="interleaved"``), so a burst of load from
  another process spreads over many entries instead of biasing a few. Batch size and thread count
  are parameters; for batch-1 latency on a small CPU, 1 thread is both faster and far steadier
  than 2 (intra-op barriers wait for a descheduled thread). Timings are read from the calling
  thread's CPU time where one CPU thread runs (``clock="auto"``, the default; the wall clock
  otherwise): ``benchmarks/bench_latency_table.py --stress`` compared the protocols under competing
  load, and only the CPU clock kept Spearman >= 0.95 and MAPE <= 10% with one and two CPU-bound
  competitors on 2 cores (benchmarks/results/latency_table.md, with the limits: the CPU clock
  leaves out time spent waiting for a core, not slowdowns while running, such as memory-bandwidth
  contention; a table so measured predicts the latency on a core of one's own).
  ``normalise="reference"`` (:mod:`~ofa_nni.latency.reference`) goes for what the CPU clock
  leaves: a mid-sized block of the space is timed between the entries at least every 0.1 s, and
  each visit's timings are divided by how much slower than its quiet speed it ran at that moment,
  so slow phases during a build (memory-bandwidth contention, a frequency drop) scale out.
  Its limits: load that changes faster than the reference visits (a few ms) is not tracked, a
  slowdown that hits the entries and the reference unequally (a neighbour evicting a big op's
  working set, not a small one's) is divided out only in part, and a load that lasts the whole
  build is not divided out at all (there is no quieter phase to scale to).
  Every timing runs on a *steady heap* (:func:`~ofa_nni.latency.runners.keep_heap_steady`): glibc's
  malloc keeps freed memory for reuse, so a network's activations do not come from freshly
  zeroed pages on some calls and not others (up to 2,146 page faults per call of an
  OFA-MobileNetV3 subnet with glibc's defaults, none kept steady); the table records it
  (``settings.heap``).
* **Resolutions**: a subset may be measured; the others are interpolated linearly in r² (latency
  ≈ overhead + cost x pixels) between the two nearest measured resolutions, and the file says
  which are which (:mod:`~ofa_nni.latency.table`, which also defines the file format).
* **Resumable** (:mod:`~ofa_nni.latency.build`): progress (all raw timings so far) is saved
  atomically to ``<out>.partial.json`` every few seconds; a build restarted with the same settings
  continues where it stopped.
* **Validation** (:mod:`~ofa_nni.latency.validation`): K random subnets frozen and measured end to
  end with the table's protocol; Spearman's rho and the MAPE of the predicted sums, plus those of
  a linear correction ``a x sum + b`` fitted on a separate set of calibration subnets (the sum of
  isolated ops misses cross-op fusion and per-call overheads). Every round visits all the subnets
  (torch; ONNX Runtime sessions a random group of 8 at a time), so that a slow phase of the machine
  falls on all of them alike, not on the ones measured during it.
* **Deployments** (:mod:`~ofa_nni.latency.deployment`): measured subnets set against their
  targets, with a re-timing of a few table entries that tells a changed machine load from a table
  error.
* **Tables measured without PyTorch** (:mod:`~ofa_nni.latency.bundle`): every op shape as an ONNX
  file plus a single-file runner needing only numpy and onnxruntime; its results import as a table.

Reading a table, predicting and the names of the settings load numpy only; measuring loads torch
(the names below that measure are imported on first use).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ofa_nni.latency.protocol import (
    BACKENDS,
    CLOCKS,
    DEFAULT_REPEATS,
    DEFAULT_ROUNDS,
    DEFAULT_WARMUP,
    DEVICES,
    FORMAT_VERSION,
    NORMALISATIONS,
    ORDERS,
    STATISTICS,
)
from ofa_nni.latency.specs import OpSpec, op_specs
from ofa_nni.latency.table import LatencyTable

if TYPE_CHECKING:
    from ofa_nni.latency.build import build_latency_table
    from ofa_nni.latency.deployment import check_deployments, retime_entries
    from ofa_nni.latency.validation import measure_end_to_end, validate_latency_table

__all__ = [
    "BACKENDS",
    "CLOCKS",
    "DEFAULT_REPEATS",
    "DEFAULT_ROUNDS",
    "DEFAULT_WARMUP",
    "DEVICES",
    "FORMAT_VERSION",
    "LatencyTable",
    "NORMALISATIONS",
    "ORDERS",
    "OpSpec",
    "STATISTICS",
    "build_latency_table",
    "check_deployments",
    "measure_end_to_end",
    "op_specs",
    "retime_entries",
    "validate_latency_table",
]

# Names whose modules import torch: loaded when first used, so reading a table stays light.
_LAZY = {
    "build_latency_table": "ofa_nni.latency.build",
    "measure_end_to_end": "ofa_nni.latency.validation",
    "validate_latency_table": "ofa_nni.latency.validation",
    "check_deployments": "ofa_nni.latency.deployment",
    "retime_entries": "ofa_nni.latency.deployment",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ofa_nni.latency' has no attribute {name!r}")
