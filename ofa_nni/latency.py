"""Latency lookup tables measured on the user's own device, and their validation.

OFA (Cai et al., ICLR 2020, Sec. 3.4) specialises with a per-layer latency lookup table: the
latency of a subnet is the sum of its stem, its active blocks and its head, each looked up by its
shape. The reference published one device's table (Note10); this module builds one on *your*
device and backend:

* **Entries** are keyed by shape, as OFA's tables are: op kind, in/out/middle channels, kernel,
  stride, squeeze-excite width, activation and input size (e.g.
  ``mbconv_in24_out40_mid96_k5_s2_relu_se24_h56``). Block positions that share a shape share an
  entry, so the default space needs ~2 shapes x 9 settings per stage and resolution, not 20 x 9.
* **Measurement**: eager PyTorch (CPU, or CUDA with synchronisation) or ONNX Runtime (each op
  exported with ``torch.onnx``). Every entry is timed in several *rounds*; each visit runs
  warm-up calls, then timed repeats. The table predicts with the *minimum* of an entry's timings
  by default (the median is stored too: ``statistic="median"``): as with ``timeit``, timings above
  the minimum come from interference (other processes, a descheduled thread), not from the op, and
  the minimum is what reproduces between runs. Measured here on 2 cores with other jobs running,
  the sum of minima ranked 30 end-to-end subnets at Spearman 0.98 where the sum of medians reached
  0.95 (torch) and 0.81 (ONNX Runtime). Rounds visit the entries in a fresh random order, so a
  burst of load from another process spreads over many entries instead of biasing a few. Batch
  size and thread count are parameters; for batch-1 latency on a small CPU, 1 thread is both
  faster and far steadier than 2 (intra-op barriers wait for a descheduled thread).
* **Resolutions**: a subset may be measured; the others are interpolated linearly in r² (latency
  ≈ overhead + cost x pixels) between the two nearest measured resolutions, and the file says
  which are which.
* **Resumable**: progress (all raw timings so far) is saved atomically to ``<out>.partial.json``
  every few seconds; a build restarted with the same settings continues where it stopped.
* **Validation**: :func:`validate_latency_table` freezes K random subnets, measures them end to end
  with the same backend, and stores Spearman's rho and the MAPE of the predicted sums, plus those
  of a linear correction ``a x sum + b`` fitted on a separate set of calibration subnets (the sum
  of isolated ops misses cross-op fusion and per-call overheads).

File format (JSON, ``format_version`` 1)::

    format: "ofa-nni-latency-table"; format_version: 1; created (UTC ISO time)
    space: ArchSpace.signature() of the space measured
    backend: "torch" | "onnxruntime"; device: {type, name, num_threads}
    libraries: {python, torch, onnxruntime, numpy, ofa_nni}
    batch_size; settings: {warmup, repeats, rounds, statistic: "median" | "min", clock: "wall" | "cpu",
                           unit: "ms", seed}
    resolutions: {measured: [...], interpolated: [...], interpolation: "..."}
    entries: {key: {ms (median), min_ms, iqr_ms, samples}}     measured shapes only
    load: {loadavg_start, loadavg_end}, build_seconds
    validation: {...} | null; correction: {kind, scale, offset_ms, applied} | null
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ofa_nni._artifacts import atomic_write_json, cpu_description, library_versions, require_same_space
from ofa_nni.arch import ArchSpace, Sample
from ofa_nni.costs import sum_active_blocks
from ofa_nni.efficiency import EfficiencyModel, as_index_array
from ofa_nni.errors import InvalidInputError, MissingInputError
from ofa_nni.layers import ConvBNAct, MBConvBlock, init_weights_

__all__ = [
    "BACKENDS",
    "CLOCKS",
    "DEVICES",
    "FORMAT_VERSION",
    "LatencyTable",
    "OpSpec",
    "STATISTICS",
    "build_latency_table",
    "measure_end_to_end",
    "op_specs",
    "validate_latency_table",
]

FORMAT = "ofa-nni-latency-table"
FORMAT_VERSION = 1
BACKENDS = ("torch", "onnxruntime")
STATISTICS = ("median", "min")
CLOCKS = ("wall", "cpu")
DEVICES = ("cpu", "cuda")
SPEARMAN_TARGET = 0.95
MAPE_TARGET_PERCENT = 10.0
_INTERPOLATION = "linear in resolution^2 between the two nearest measured resolutions (extrapolated beyond)"


def _conv_out(size: int, stride: int) -> int:
    return (size - 1) // stride + 1


# ----------------------------------------------------------------------------- op shapes
@dataclasses.dataclass(frozen=True)
class OpSpec:
    """The shape of one measured op: ``kind`` is ``stem``, ``mbconv`` or ``head``.

    For ``head``, ``mid_channels`` is the final-expand width (0: ProxylessNAS's head, feature mix
    with BN before the pool) and ``out_channels`` the number of classes (the feature-mix width is
    ``feature_mix_channels``). ``residual`` False: a block without shortcut (ProxylessNAS's first).
    """

    kind: str
    input_size: int
    in_channels: int
    out_channels: int
    mid_channels: int = 0
    kernel_size: int = 1
    stride: int = 1
    activation: str = ""
    se_channels: int = 0
    has_expand_conv: bool = True
    feature_mix_channels: int = 0
    residual: bool = True

    @property
    def key(self) -> str:
        if self.kind == "stem":
            shape = f"in{self.in_channels}_out{self.out_channels}_k{self.kernel_size}_s{self.stride}_{self.activation}"
        elif self.kind == "mbconv":
            shape = (
                f"in{self.in_channels}_out{self.out_channels}_mid{self.mid_channels}_k{self.kernel_size}"
                f"_s{self.stride}_{self.activation}_se{self.se_channels}" + ("" if self.has_expand_conv else "_noexp")
                + ("" if self.residual else "_noskip")
            )
        else:
            shape = (
                f"in{self.in_channels}_exp{self.mid_channels}_mix{self.feature_mix_channels}"
                f"_cls{self.out_channels}"
            )
        return f"{self.kind}_{shape}_h{self.input_size}"

    @property
    def module_key(self) -> str:
        """The key without the input size (ops of one module share weights and, in ONNX, a session)."""
        return self.key.rsplit("_h", 1)[0]

    def input_shape(self, batch_size: int) -> tuple[int, int, int, int]:
        return (batch_size, self.in_channels, self.input_size, self.input_size)

    def build(self) -> nn.Module:
        """A randomly initialised module of this shape, the same layers a frozen subnet uses."""
        module: nn.Module
        if self.kind == "stem":
            module = ConvBNAct(self.in_channels, self.out_channels, self.kernel_size, stride=self.stride,
                               activation=self.activation)
        elif self.kind == "mbconv":
            module = MBConvBlock(
                self.in_channels,
                self.out_channels,
                mid_channels=self.mid_channels,
                kernel_size=self.kernel_size,
                stride=self.stride,
                activation=self.activation,
                se_channels=self.se_channels or None,
                has_expand_conv=self.has_expand_conv,
                allow_residual=self.residual,
            )
        elif self.kind == "head":
            module = _Head(self.in_channels, self.mid_channels, self.feature_mix_channels, self.out_channels)
        else:
            raise InvalidInputError(f"unknown op kind {self.kind!r}; allowed: 'stem', 'mbconv', 'head'")
        init_weights_(module)
        return module.eval()


class _Head(nn.Module):
    """The tail of :class:`~ofa_nni.layers.MobileNetV3Subnet`: final expand, pool, feature mix,
    classifier (dropout is the identity at inference); without a final expand (``expand_channels``
    0), ProxylessNAS's: feature mix with BN and relu6, pool, classifier."""

    def __init__(self, in_channels: int, expand_channels: int, mix_channels: int, num_classes: int) -> None:
        super().__init__()
        self.final_expand: ConvBNAct | None
        if expand_channels:
            self.final_expand = ConvBNAct(in_channels, expand_channels, 1, activation="hswish")
            self.feature_mix = ConvBNAct(expand_channels, mix_channels, 1, activation="hswish", use_bn=False)
        else:
            self.final_expand = None
            self.feature_mix = ConvBNAct(in_channels, mix_channels, 1, activation="relu6")
        self.classifier = nn.Linear(mix_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.final_expand is not None:
            x = self.feature_mix(self.final_expand(x).mean((2, 3), keepdim=True))
        else:
            x = self.feature_mix(x).mean((2, 3), keepdim=True)
        return self.classifier(torch.flatten(x, 1))


def op_specs(space: ArchSpace, resolution: int) -> tuple[list[OpSpec], dict[tuple[int, int, int], OpSpec]]:
    """The ops of every subnet at ``resolution``: the fixed ones (stem, first block, head) and one
    per (block index, kernel index, expand index) of the elastic blocks."""
    has_expand_conv = max(space.expand_ratios) != 1
    size = _conv_out(resolution, 2)
    stem = OpSpec("stem", resolution, 3, space.stem_width, kernel_size=3, stride=2,
                  activation=space.stem_activation)
    first = OpSpec(
        "mbconv", size, space.stem_width, space.first_block_width, mid_channels=space.stem_width,
        kernel_size=3, stride=1, activation=space.first_block_activation, has_expand_conv=False,
        residual=space.layout == "mbv3",
    )
    blocks: dict[tuple[int, int, int], OpSpec] = {}
    for block, (s, b) in enumerate(space.blocks):
        stride = space.stage_strides[s] if b == 0 else 1
        c_in = space.block_in_channels(s, b)
        for k_idx, kernel in enumerate(space.kernel_sizes):
            for e_idx, expand in enumerate(space.expand_ratios):
                mid = space.mid_channels(c_in, expand) if has_expand_conv else c_in
                blocks[(block, k_idx, e_idx)] = OpSpec(
                    "mbconv", size, c_in, space.stage_widths[s], mid_channels=mid, kernel_size=kernel,
                    stride=stride, activation=space.stage_activations[s],
                    se_channels=space.se_channels(mid) if space.stage_se[s] else 0,
                    has_expand_conv=has_expand_conv,
                )
        size = _conv_out(size, stride)
    head = OpSpec(
        "head", size, space.stage_widths[-1], space.num_classes, mid_channels=space.final_expand_width,
        feature_mix_channels=space.feature_mix_width,
    )
    return [stem, first, head], blocks


# ----------------------------------------------------------------------------- runners
def _check_backend(backend: str, device: str) -> None:
    if backend not in BACKENDS:
        raise InvalidInputError(f"unknown backend {backend!r}; allowed: {', '.join(BACKENDS)}")
    if device not in DEVICES:
        raise InvalidInputError(f"unknown device {device!r}; allowed: {', '.join(DEVICES)}")
    if backend == "onnxruntime":
        try:
            import onnx  # noqa: F401  (torch.onnx.export needs it)
            import onnxruntime  # noqa: F401
        except ImportError as error:
            raise InvalidInputError(f"backend 'onnxruntime' needs {error.name}, a dependency of ofa-nni that is missing from "
                             f"this environment: pip install {error.name}") from None
    if device == "cuda":
        if not torch.cuda.is_available():
            raise InvalidInputError("device 'cuda' requested but torch sees no CUDA GPU here; use --device cpu")
        if backend == "onnxruntime":
            import onnxruntime

            if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
                raise InvalidInputError(
                    "device 'cuda' with backend 'onnxruntime' needs onnxruntime-gpu (CUDAExecutionProvider); "
                    f"available providers: {onnxruntime.get_available_providers()}"
                )


def _onnx_bytes(module: nn.Module, example: torch.Tensor, *, dynamic_size: bool) -> bytes:
    buffer = io.BytesIO()
    dynamic_axes = {"input": {2: "height", 3: "width"}} if dynamic_size else None
    with warnings.catch_warnings():
        # The TorchScript exporter (dynamo=False) needs no onnxscript; torch warns that it is legacy.
        warnings.simplefilter("ignore")
        # The TorchScript exporter writes to a file object too.
        torch.onnx.export(
            module.cpu().eval(), (example.cpu(),), buffer, dynamo=False, input_names=["input"],  # type: ignore[arg-type]
            output_names=["output"], dynamic_axes=dynamic_axes, opset_version=17,
        )
    return buffer.getvalue()


class _Runner:
    """Runs one module on one fixed input with a backend; ``__call__`` returns after the work is done."""

    def __init__(self, module: nn.Module, shape: Sequence[int], *, backend: str, device: str, num_threads: int,
                 session: Any = None) -> None:
        self.backend, self.device = backend, device
        generator = torch.Generator().manual_seed(0)
        example = torch.randn(*shape, generator=generator)
        if backend == "torch":
            self.module = module.to(device).eval()
            self.input = example.to(device)
        else:
            self.session = session or _ort_session(module, example, device=device, num_threads=num_threads,
                                                   dynamic_size=False)
            self.feed = {"input": example.numpy()}

    def __call__(self) -> None:
        if self.backend == "torch":
            with torch.inference_mode():
                self.module(self.input)
            if self.device == "cuda":
                torch.cuda.synchronize()
        else:
            self.session.run(None, self.feed)


def _ort_session(module: nn.Module, example: torch.Tensor, *, device: str, num_threads: int, dynamic_size: bool) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    providers = ["CUDAExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
    return onnxruntime.InferenceSession(_onnx_bytes(module, example, dynamic_size=dynamic_size), options,
                                        providers=providers)


def _clock_check(clock: str, num_threads: int, device: str) -> Callable[[], float]:
    if clock not in CLOCKS:
        raise InvalidInputError(f"unknown clock {clock!r}; allowed: {', '.join(CLOCKS)}")
    if clock == "cpu" and (num_threads != 1 or device != "cpu"):
        raise InvalidInputError("clock 'cpu' (the calling thread's CPU time) needs num_threads=1 and device 'cpu'; "
                         f"got {num_threads} thread(s) on {device!r}")
    return time.thread_time if clock == "cpu" else time.perf_counter


def _time_runs(run: Callable[[], None], *, warmup: int, repeats: int,
               clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """Milliseconds of ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = clock()
        run()
        times.append((clock() - start) * 1e3)
    return times


@contextlib.contextmanager
def _torch_threads(num_threads: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _progress(total: int, initial: int, description: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=description, unit="op", disable=not enabled, dynamic_ncols=True)


def _device_description(device: str, num_threads: int) -> dict[str, Any]:
    name = torch.cuda.get_device_name() if device == "cuda" else cpu_description()
    return {"type": device, "name": name, "num_threads": num_threads}


def _settings_differences(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    return [f"{key}: {stored.get(key)!r} -> {wanted.get(key)!r}"
            for key in wanted if stored.get(key) != wanted.get(key)]


# ------------------------------------------------------------------------------- the table
class LatencyTable(EfficiencyModel):
    """A measured latency lookup table; calling it predicts milliseconds for a population.

    Prediction is one gather over a ``(blocks, kernels, expands, resolutions)`` table plus a
    per-resolution term for stem, first block and head (:func:`~ofa_nni.costs.sum_active_blocks`),
    then the fitted correction if validation found that it helps (``correction["applied"]``).
    Build with :func:`build_latency_table`, read with :meth:`load`.
    """

    name = "latency"
    unit = "ms"

    def __init__(self, *, space: ArchSpace, entries: Mapping[str, Mapping[str, Any]],
                 measured_resolutions: Sequence[int], metadata: Mapping[str, Any] | None = None,
                 validation: Mapping[str, Any] | None = None, correction: Mapping[str, Any] | None = None) -> None:
        super().__init__(space)
        unknown = sorted(set(measured_resolutions) - set(space.resolutions))
        if unknown or not measured_resolutions:
            raise InvalidInputError(
                f"measured resolutions {list(measured_resolutions)} must be a non-empty subset of the space's "
                f"{list(space.resolutions)}" + (f" (not in the space: {unknown})" if unknown else "")
            )
        self.entries = {key: dict(value) for key, value in entries.items()}
        self.measured_resolutions = tuple(sorted(int(r) for r in measured_resolutions))
        self.metadata = dict(metadata or {})
        self.validation = dict(validation) if validation else None
        self.correction = dict(correction) if correction else None
        self.block_ms, self.fixed_ms = self._tables()

    @property
    def statistic(self) -> str:
        """``"min"`` (the default) or ``"median"``: which per-entry timing the table sums."""
        return str(self.metadata.get("settings", {}).get("statistic", "min"))

    def with_statistic(self, statistic: str) -> LatencyTable:
        """The same measurements predicting with another statistic (no validation or correction yet)."""
        if statistic not in STATISTICS:
            raise InvalidInputError(f"unknown statistic {statistic!r}; allowed: {', '.join(STATISTICS)}")
        metadata = {**self.metadata, "settings": {**self.metadata.get("settings", {}), "statistic": statistic}}
        return LatencyTable(space=self.space, entries=self.entries, measured_resolutions=self.measured_resolutions,
                            metadata=metadata)

    @property
    def interpolated_resolutions(self) -> tuple[int, ...]:
        return tuple(r for r in self.space.resolutions if r not in self.measured_resolutions)

    def _tables(self) -> tuple[np.ndarray, np.ndarray]:
        space = self.space
        shape = (space.num_blocks, len(space.kernel_sizes), len(space.expand_ratios))
        block_ms = np.zeros((*shape, len(space.resolutions)), dtype=np.float64)
        fixed_ms = np.zeros(len(space.resolutions), dtype=np.float64)
        measured_idx = [space.resolutions.index(r) for r in self.measured_resolutions]
        for r_idx in measured_idx:
            fixed, blocks = op_specs(space, space.resolutions[r_idx])
            fixed_ms[r_idx] = sum(self._entry_ms(spec) for spec in fixed)
            for (block, k_idx, e_idx), spec in blocks.items():
                block_ms[block, k_idx, e_idx, r_idx] = self._entry_ms(spec)
        areas = np.asarray(space.resolutions, dtype=np.float64) ** 2
        known = areas[measured_idx]
        for r_idx, area in enumerate(areas):
            if r_idx in measured_idx:
                continue
            if len(known) == 1:
                weights = {measured_idx[0]: area / known[0]}
            else:
                lo = int(np.clip(np.searchsorted(known, area) - 1, 0, len(known) - 2))
                w = (area - known[lo]) / (known[lo + 1] - known[lo])
                weights = {measured_idx[lo]: 1.0 - w, measured_idx[lo + 1]: w}
            for source, weight in weights.items():
                block_ms[..., r_idx] += weight * block_ms[..., source]
                fixed_ms[r_idx] += weight * fixed_ms[source]
        return np.maximum(block_ms, 0.0), np.maximum(fixed_ms, 0.0)

    def _entry_ms(self, spec: OpSpec) -> float:
        entry = self.entries.get(spec.key)
        if entry is None:
            raise InvalidInputError(f"latency table has no entry {spec.key!r} (incomplete or for another space)")
        value = float(entry["min_ms"] if self.statistic == "min" else entry["ms"])
        if not (math.isfinite(value) and value >= 0):
            raise InvalidInputError(f"latency table entry {spec.key!r} is {value} ms; a time must be a finite number >= 0")
        return value

    # ------------------------------------------------------------------ predict
    def raw_sum(self, population: Any) -> np.ndarray:
        """The plain sum of the table's entries (no correction), ``(n,)`` milliseconds."""
        indices = as_index_array(self.space, population)
        return sum_active_blocks(self.space, indices, self.block_ms, self.fixed_ms)

    def evaluate(self, indices: np.ndarray) -> np.ndarray:
        total = sum_active_blocks(self.space, indices, self.block_ms, self.fixed_ms)
        if self.correction and self.correction.get("applied"):
            total = self.correction["scale"] * total + self.correction["offset_ms"]
        return total

    # --------------------------------------------------------------------- file
    def to_dict(self) -> dict[str, Any]:
        data = dict(self.metadata)
        data.update(
            format=FORMAT,
            format_version=FORMAT_VERSION,
            space=self.space.signature(),
            resolutions={
                "measured": list(self.measured_resolutions),
                "interpolated": list(self.interpolated_resolutions),
                "interpolation": _INTERPOLATION if self.interpolated_resolutions else None,
            },
            entries=self.entries,
            validation=self.validation,
            correction=self.correction,
        )
        return data

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the table as JSON (atomically)."""
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, space: ArchSpace | None = None) -> LatencyTable:
        """Read a table; with ``space``, refuse a table measured for another space (ValueError naming
        the differing fields)."""
        path = Path(path)
        if not path.is_file():
            raise MissingInputError(f"latency table {str(path)!r} does not exist (build one with 'ofa-nni lut build')")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as error:
            raise InvalidInputError(f"{path} is not a latency table (not JSON text: byte {error.start} is not UTF-8)"
                             ) from None
        except json.JSONDecodeError as error:
            raise InvalidInputError(f"{path} is not a latency table (invalid JSON: {error})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise InvalidInputError(f"{path} is not an ofa-nni latency table (format {data.get('format')!r})"
                             if isinstance(data, dict) else f"{path} is not an ofa-nni latency table")
        if data.get("format_version") != FORMAT_VERSION:
            raise InvalidInputError(f"{path}: latency table format_version {data.get('format_version')!r} is not "
                             f"supported (this version reads {FORMAT_VERSION})")
        if not isinstance(data.get("space"), dict):
            raise InvalidInputError(f"{path}: damaged latency table (no space signature)")
        if space is not None:
            require_same_space(data["space"], space, artefact=f"latency table {path}")
        metadata = {key: value for key, value in data.items()
                    if key not in ("format", "format_version", "space", "resolutions", "entries", "validation",
                                   "correction")}
        try:
            return cls(space=ArchSpace.from_signature(data["space"]), entries=data["entries"],
                       measured_resolutions=data["resolutions"]["measured"], metadata=metadata,
                       validation=data.get("validation"), correction=data.get("correction"))
        except (KeyError, TypeError, AttributeError, ValueError) as error:
            raise InvalidInputError(f"{path}: damaged latency table ({type(error).__name__}: {error})") from None

    def summary(self) -> str:
        """A few readable lines: device, backend, coverage and validation figures."""
        meta = self.metadata
        device = meta.get("device", {})
        lines = [
            f"latency table: backend {meta.get('backend')} on {device.get('type')} ({device.get('name')}), "
            f"{device.get('num_threads')} thread(s), batch size {meta.get('batch_size')}, {self.statistic} of "
            f"{meta.get('settings', {}).get('clock', 'wall')}-clock timings",
            f"  {len(self.entries)} measured entries; resolutions measured {list(self.measured_resolutions)}"
            + (f", {len(self.interpolated_resolutions)} interpolated" if self.interpolated_resolutions else ""),
        ]
        if meta.get("build_seconds") is not None:
            lines.append(f"  built in {meta['build_seconds']:.1f} s")
        if self.validation:
            lines.extend("  " + line for line in _validation_lines(self.validation, self.correction))
        return "\n".join(lines)


def _validation_lines(validation: Mapping[str, Any], correction: Mapping[str, Any] | None) -> list[str]:
    raw, corrected = validation["raw"], validation.get("corrected")
    lines = [
        f"validation on {validation['num_subnets']} random subnets (end to end, same backend):",
        f"  {'':10s} {'Spearman':>9s} {'Kendall':>8s} {'MAPE %':>8s}",
        f"  {'sum':10s} {raw['spearman']:9.4f} {raw['kendall']:8.4f} {raw['mape_percent']:8.2f}",
    ]
    if corrected and correction:
        lines.append(f"  {'corrected':10s} {corrected['spearman']:9.4f} {corrected['kendall']:8.4f} "
                     f"{corrected['mape_percent']:8.2f}   (a={correction['scale']:.4f}, "
                     f"b={correction['offset_ms']:.4f} ms, fitted on {validation['calibration_subnets']} "
                     f"other subnets; {'applied' if correction.get('applied') else 'not applied'})")
    lines.append(f"  targets: Spearman >= {SPEARMAN_TARGET}, MAPE <= {MAPE_TARGET_PERCENT}%: "
                 + ("met" if validation.get("meets_targets") else "NOT met"))
    return lines


# ----------------------------------------------------------------------------- building
def build_latency_table(
    space: ArchSpace,
    *,
    backend: str = "torch",
    device: str = "cpu",
    batch_size: int = 1,
    resolutions: Sequence[int] | None = None,
    warmup: int = 3,
    repeats: int = 30,
    rounds: int = 3,
    num_threads: int | None = None,
    statistic: str = "min",
    clock: str = "wall",
    seed: int = 0,
    progress_path: str | os.PathLike[str] | None = None,
    checkpoint_seconds: float = 5.0,
    show_progress: bool = True,
) -> LatencyTable:
    """Measure a latency table of ``space`` on this machine (see the module docstring).

    Args:
        backend: ``"torch"`` (eager) or ``"onnxruntime"``.
        device: ``"cpu"`` or ``"cuda"``.
        batch_size: Images per call.
        resolutions: Resolutions to measure (default: all); the others are interpolated.
        warmup, repeats, rounds: Per visit, ``warmup`` untimed and ``repeats`` timed calls; every entry
            is visited ``rounds`` times (in a fresh random order each round) and its values are the
            minimum and the median of its ``repeats x rounds`` timings. (Default 30: on 2 idle cores,
            two OFA-MobileNetV3 torch tables validated at Spearman 0.98, MAPE 4.9% / 2.8%; with 10,
            0.99 / 7.2% and 0.96 / 10.3%: the minimum of more timings is a steadier estimate.)
        num_threads: CPU threads for the backend (default: torch's current setting).
        clock: ``"wall"`` (elapsed time, the default) or ``"cpu"``: CPU time of the calling thread,
            which preemption by other processes does not inflate (single-threaded CPU only; it
            approximates the latency on an idle core of a machine shared with busy processes).
        statistic: What the table predicts with: ``"min"`` (default) or ``"median"`` of each entry's
            timings (both are stored; :meth:`LatencyTable.with_statistic` switches).
        progress_path: Where to keep resumable progress (e.g. ``<out>.partial.json``); a build with
            the same settings continues from it. Deleted by the caller once the table is saved.
    """
    _check_backend(backend, device)
    if statistic not in STATISTICS:
        raise InvalidInputError(f"unknown statistic {statistic!r}; allowed: {', '.join(STATISTICS)}")
    for name, value, minimum in (("batch_size", batch_size, 1), ("warmup", warmup, 0), ("repeats", repeats, 1),
                                 ("rounds", rounds, 1)):
        if int(value) != value or value < minimum:
            raise InvalidInputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    measured = tuple(sorted(set(space.resolutions if resolutions is None else (int(r) for r in resolutions))))
    unknown = [r for r in measured if r not in space.resolutions]
    if unknown or not measured:
        raise InvalidInputError(
            f"resolutions {unknown or list(measured)} not in the space; allowed: {list(space.resolutions)}")
    num_threads = int(num_threads or torch.get_num_threads())
    timer = _clock_check(clock, num_threads, device)

    specs: dict[str, OpSpec] = {}
    for resolution in measured:
        fixed, blocks = op_specs(space, resolution)
        for spec in [*fixed, *blocks.values()]:
            specs.setdefault(spec.key, spec)
    settings = {
        "space": space.signature(), "backend": backend, "device": device, "batch_size": batch_size,
        "measured_resolutions": list(measured), "warmup": warmup, "repeats": repeats, "rounds": rounds,
        "num_threads": num_threads, "seed": seed, "clock": clock,
    }
    timings: dict[str, list[float]] = {key: [] for key in specs}
    if progress_path is not None and Path(progress_path).is_file():
        saved = json.loads(Path(progress_path).read_text())
        differences = _settings_differences(saved.get("settings", {}), settings)
        if differences:
            raise InvalidInputError(
                f"{progress_path} holds progress of a build with other settings ({'; '.join(differences)}); "
                "delete it or choose another output file"
            )
        for key, values in saved.get("timings", {}).items():
            if key in timings:
                timings[key] = [float(v) for v in values]

    def save_progress() -> None:
        if progress_path is not None:
            atomic_write_json(progress_path, {"format": FORMAT + "-progress", "settings": settings, "timings": timings})

    rng = np.random.default_rng(seed)
    orders = [rng.permutation(sorted(specs)) for _ in range(rounds)]
    done_visits = sum(min(len(values) // repeats, rounds) for values in timings.values())
    load_start = os.getloadavg()
    started = time.perf_counter()
    modules: dict[str, nn.Module] = {}
    sessions: dict[str, Any] = {}
    runners: dict[str, _Runner] = {}

    def runner_for(spec: OpSpec) -> _Runner:
        if spec.key not in runners:
            if spec.module_key not in modules:
                modules[spec.module_key] = spec.build()
            module = modules[spec.module_key]
            session = None
            if backend == "onnxruntime":
                if spec.module_key not in sessions:
                    example = torch.zeros(spec.input_shape(batch_size))
                    sessions[spec.module_key] = _ort_session(module, example, device=device,
                                                             num_threads=num_threads, dynamic_size=True)
                session = sessions[spec.module_key]
            runners[spec.key] = _Runner(module, spec.input_shape(batch_size), backend=backend, device=device,
                                        num_threads=num_threads, session=session)
        return runners[spec.key]

    bar = _progress(len(specs) * rounds, done_visits, f"lut {backend}/{device}", show_progress)
    last_save = time.monotonic()
    with _torch_threads(num_threads), bar:
        for round_index, order in enumerate(orders):
            for key in order:
                if len(timings[key]) >= (round_index + 1) * repeats:
                    continue
                timings[key].extend(_time_runs(runner_for(specs[key]), warmup=warmup, repeats=repeats, clock=timer))
                bar.update(1)
                if time.monotonic() - last_save > checkpoint_seconds:
                    save_progress()
                    last_save = time.monotonic()
    save_progress()

    entries = {}
    for key in sorted(specs):
        values = np.asarray(timings[key])
        q25, q50, q75 = np.percentile(values, [25, 50, 75])
        entries[key] = {"ms": round(float(q50), 6), "min_ms": round(float(values.min()), 6),
                        "iqr_ms": round(float(q75 - q25), 6), "samples": int(values.size)}
    metadata = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "backend": backend,
        "device": _device_description(device, num_threads),
        "libraries": library_versions("torch", "onnxruntime", "numpy", "ofa_nni"),
        "batch_size": batch_size,
        "settings": {"warmup": warmup, "repeats": repeats, "rounds": rounds, "statistic": statistic, "clock": clock,
                     "unit": "ms", "seed": seed},
        "load": {"loadavg_start": list(load_start), "loadavg_end": list(os.getloadavg())},
        "build_seconds": round(time.perf_counter() - started, 2),
    }
    return LatencyTable(space=space, entries=entries, measured_resolutions=measured, metadata=metadata)


# ----------------------------------------------------------------------------- validation
def measure_end_to_end(
    models: Sequence[tuple[nn.Module, int]],
    *,
    backend: str,
    device: str = "cpu",
    batch_size: int = 1,
    warmup: int = 3,
    repeats: int = 30,
    rounds: int = 3,
    num_threads: int | None = None,
    group_size: int = 8,
    clock: str = "wall",
    seed: int = 0,
    show_progress: bool = False,
) -> dict[str, np.ndarray]:
    """Milliseconds of whole models, each a ``(module, resolution)`` pair run on a
    ``(batch_size, 3, resolution, resolution)`` input: ``{"median": (n,), "min": (n,)}``.

    Models are measured in groups of ``group_size`` (bounded memory), each group in ``rounds``
    rounds in random order, the same interleaving the table's entries get.
    """
    _check_backend(backend, device)
    num_threads = int(num_threads or torch.get_num_threads())
    timer = _clock_check(clock, num_threads, device)
    rng = np.random.default_rng(seed)
    result = {name: np.zeros(len(models)) for name in STATISTICS}
    bar = _progress(len(models) * rounds, 0, f"end-to-end {backend}/{device}", show_progress)
    with _torch_threads(num_threads), bar:
        for start in range(0, len(models), group_size):
            group = range(start, min(start + group_size, len(models)))
            runners = {
                i: _Runner(models[i][0], (batch_size, 3, models[i][1], models[i][1]), backend=backend, device=device,
                           num_threads=num_threads)
                for i in group
            }
            timings: dict[int, list[float]] = {i: [] for i in group}
            for _ in range(rounds):
                for i in rng.permutation(list(group)):
                    timings[int(i)].extend(_time_runs(runners[int(i)], warmup=warmup, repeats=repeats, clock=timer))
                    bar.update(1)
            for i in group:
                result["median"][i] = float(np.median(timings[i]))
                result["min"][i] = float(np.min(timings[i]))
    return result


def _rank_metrics(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    from scipy import stats

    return {
        "spearman": float(stats.spearmanr(predicted, measured).statistic),
        "kendall": float(stats.kendalltau(predicted, measured).statistic),
        "mape_percent": float(np.mean(np.abs(predicted - measured) / measured) * 100.0),
    }


def validate_latency_table(
    table: LatencyTable,
    freeze: Callable[[Sample], nn.Module] | None = None,
    *,
    num_subnets: int = 30,
    calibration_subnets: int = 30,
    seed: int = 0,
    warmup: int | None = None,
    repeats: int | None = None,
    rounds: int | None = None,
    reuse: Mapping[str, Any] | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Compare the table with end-to-end measurements of frozen subnets, on the table's backend,
    device, batch size and thread count; store the result (and a fitted correction) in the table.

    ``num_subnets`` random subnets are the validation set; ``calibration_subnets`` other random
    subnets fit the correction ``measured ≈ a x sum + b`` (Theil-Sen line), which is *applied* by
    the table only if it lowers the validation MAPE. Both raw and corrected Spearman, Kendall and
    MAPE are stored in ``table.validation`` and returned. Measured and predicted times use the
    table's :attr:`~LatencyTable.statistic`.

    Args:
        freeze: Turns a sample into a static model, e.g. ``OFAMobileNetV3Space(...).freeze``.
        reuse: The ``validation`` of another table of the same measurements (e.g.
            ``table.with_statistic("min")``): its end-to-end timings are reused, nothing is measured.
    """
    if num_subnets < 3 or calibration_subnets < 2:
        raise InvalidInputError(
            f"need num_subnets >= 3 and calibration_subnets >= 2, got {num_subnets}, {calibration_subnets}")
    meta = table.metadata
    settings = meta.get("settings", {})
    space = table.space
    started = time.perf_counter()
    load_start = os.getloadavg()
    if reuse is not None:
        subnets = [dict(subnet) for subnet in reuse["subnets"]]
        num_subnets, calibration_subnets, seed = reuse["num_subnets"], reuse["calibration_subnets"], reuse["seed"]
        samples = [space.parse(subnet["arch"]) for subnet in subnets]
        indices = np.stack([space.to_indices(sample) for sample in samples])
        measurements = {name: np.array([subnet[f"measured_{name}_ms"] for subnet in subnets]) for name in STATISTICS}
    else:
        if freeze is None:
            raise InvalidInputError("validate_latency_table needs freeze (e.g. supernet.freeze) unless it reuses measurements")
        indices = space.random_indices(num_subnets + calibration_subnets, seed)
        samples = [space.from_indices(row) for row in indices]
        models = [(freeze(sample).eval(), int(sample[ArchSpace.RESOLUTION_LABEL])) for sample in samples]
        measurements = measure_end_to_end(
            models,
            backend=meta["backend"], device=meta["device"]["type"], batch_size=meta["batch_size"],
            warmup=warmup if warmup is not None else settings.get("warmup", 3),
            repeats=repeats if repeats is not None else settings.get("repeats", 10),
            rounds=rounds if rounds is not None else settings.get("rounds", 3),
            num_threads=meta["device"]["num_threads"], clock=settings.get("clock", "wall"), seed=seed,
            show_progress=show_progress,
        )
    measured = measurements[table.statistic]
    predicted = table.raw_sum(indices)
    calibration, held_out = slice(num_subnets, None), slice(0, num_subnets)
    from scipy import stats

    # Theil-Sen: the median of pairwise slopes, robust to the few timings a busy machine spoils.
    fit = stats.theilslopes(measured[calibration], predicted[calibration])
    scale, offset = float(fit.slope), float(fit.intercept)
    corrected = scale * predicted + offset
    raw_metrics = _rank_metrics(predicted[held_out], measured[held_out])
    corrected_metrics = _rank_metrics(corrected[held_out], measured[held_out])
    # A correction that predicts a non-positive time for the cheapest subnet is a bad fit (a busy
    # machine's outliers), not a faster network: keep the plain sum then.
    cheapest = float(table.raw_sum(space.to_indices(space.min_sample())[None])[0])
    sane = scale > 0 and scale * cheapest + offset > 0
    applied = sane and corrected_metrics["mape_percent"] < raw_metrics["mape_percent"]
    best = corrected_metrics if applied else raw_metrics
    validation = {
        "num_subnets": num_subnets,
        "calibration_subnets": calibration_subnets,
        "seed": seed,
        "statistic": table.statistic,
        "raw": raw_metrics,
        "corrected": corrected_metrics,
        "targets": {"spearman": SPEARMAN_TARGET, "mape_percent": MAPE_TARGET_PERCENT},
        "meets_targets": bool(best["spearman"] >= SPEARMAN_TARGET and best["mape_percent"] <= MAPE_TARGET_PERCENT),
        "seconds": round(time.perf_counter() - started, 2) if reuse is None else reuse.get("seconds"),
        "load": {"loadavg_start": list(load_start), "loadavg_end": list(os.getloadavg())}
        if reuse is None else reuse.get("load"),
        "subnets": [
            {"arch": space.format(sample), "role": "validation" if i < num_subnets else "calibration",
             "predicted_ms": round(float(predicted[i]), 6), "measured_ms": round(float(measured[i]), 6),
             **{f"measured_{name}_ms": round(float(values[i]), 6) for name, values in measurements.items()}}
            for i, sample in enumerate(samples)
        ],
    }
    table.validation = validation
    table.correction = {"kind": "linear", "scale": float(scale), "offset_ms": float(offset), "applied": bool(applied)}
    return validation
