"""The latency table: prediction from its entries (with interpolation between measured
resolutions) and its file (JSON, ``format_version`` 1, written atomically). numpy only: reading a
table, predicting and searching need no torch.

File format::

    format: "ofa-nni-latency-table"; format_version: 1; created (UTC ISO time)
    space: ArchSpace.signature() of the space measured
    backend: "torch" | "onnxruntime"; device: {type, name, num_threads}
    libraries: {python, torch, onnxruntime, numpy, ofa_nni}
    batch_size; settings: {warmup, repeats, rounds, statistic: "median" | "min", clock: "wall" | "cpu",
                           order: "interleaved" | "block" (absent: interleaved),
                           normalise: "none" | "reference" (absent: none), unit: "ms", seed}
    reference: {op (an entry's key), baseline_ms, visits, interval_s, factor_min, factor_max}
               (only with normalise "reference": the op timed between the entries, its quiet
               timing and how far the slowdowns that were divided out ranged)
    resolutions: {measured: [...], interpolated: [...], interpolation: "..."}
    entries: {key: {ms (median), min_ms, iqr_ms, samples}}     measured shapes only
    load: {loadavg_start, loadavg_end}, build_seconds
    validation: {...} | null; correction: {kind, scale, offset_ms, applied} | null
    source: {...} (only tables imported from a bundle's results: 'ofa-nni lut import')

Everything read from a file is checked when the table is constructed (a time must be a finite
number >= 0, not a string or a boolean; the statistic and clock are known names; resolutions are
distinct; a correction has all its keys and predicts a positive time for the smallest subnet), so
a tampered file fails at load with its path and field, not later in a search.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ofa_nni._artifacts import atomic_write_json, require_same_space
from ofa_nni._deprecation import renamed_keywords
from ofa_nni.arch import ArchSpace, arch_space_from_signature
from ofa_nni.costs import sum_active_blocks, sum_resnet
from ofa_nni.efficiency import EfficiencyModel, as_index_array
from ofa_nni.errors import InvalidInputError, MissingInputError
from ofa_nni.latency.protocol import (
    CLOCKS,
    DEFAULT_REPEATS,
    DEFAULT_ROUNDS,
    DEFAULT_WARMUP,
    FORMAT,
    FORMAT_VERSION,
    MAPE_TARGET_PERCENT,
    NORMALISATIONS,
    ORDERS,
    SPEARMAN_TARGET,
    STATISTICS,
)
from ofa_nni.latency.specs import OpSpec, op_specs, resnet_op_specs, specs_by_key
from ofa_nni.resnet_arch import ResNetArchSpace

__all__ = ["LatencyTable", "entry_summary", "read_document", "validation_verdict_lines"]

_INTERPOLATION = "linear in resolution^2 between the two nearest measured resolutions (extrapolated beyond)"
_CORRECTION_KEYS = ("kind", "scale", "offset_ms", "applied")


def _is_number(value: Any) -> bool:
    """A JSON number: ``True`` and ``"1.5"`` are not (``float()`` would take both)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def entry_summary(values: Sequence[float]) -> dict[str, Any]:
    """A table entry of an op's timings (ms): median, minimum, interquartile range, count."""
    array = np.asarray(values, dtype=np.float64)
    q25, q50, q75 = np.percentile(array, [25, 50, 75])
    return {"ms": round(float(q50), 6), "min_ms": round(float(array.min()), 6), "iqr_ms": round(float(q75 - q25), 6),
            "samples": int(array.size)}


def _check_time(value: Any, where: str) -> float:
    if not _is_number(value) or not (math.isfinite(value) and value >= 0):
        raise InvalidInputError(f"{where} is {value!r} ({type(value).__name__}); a time must be a finite number >= 0")
    return float(value)


class LatencyTable(EfficiencyModel):
    """A measured latency lookup table; calling it predicts milliseconds for a population.

    Prediction is one gather over a ``(blocks, kernels, expands, resolutions)`` table plus a
    per-resolution term for stem, first block and head (:func:`~ofa_nni.costs.sum_active_blocks`),
    then the fitted correction if validation found that it helps (``correction["applied"]``).
    Build with :func:`build_latency_table`, read with :meth:`load`.
    """

    name = "latency"
    unit = "ms"

    @renamed_keywords(space="arch_space")
    def __init__(self, *, arch_space: ArchSpace, entries: Mapping[str, Mapping[str, Any]],
                 measured_resolutions: Sequence[int], metadata: Mapping[str, Any] | None = None,
                 validation: Mapping[str, Any] | None = None, correction: Mapping[str, Any] | None = None) -> None:
        super().__init__(arch_space)
        resolutions = list(measured_resolutions)
        if not all(isinstance(r, int) and not isinstance(r, bool) for r in resolutions):
            raise InvalidInputError(f"resolutions.measured {resolutions} must be integers")
        unknown = sorted(set(resolutions) - set(arch_space.resolutions))
        repeated = sorted({r for r in resolutions if resolutions.count(r) > 1})
        if unknown or repeated or not resolutions:
            raise InvalidInputError(
                f"resolutions.measured {resolutions} must be a non-empty set of distinct resolutions of the space's "
                f"{list(arch_space.resolutions)}" + (f" (not in the space: {unknown})" if unknown else "")
                + (f" (repeated: {repeated})" if repeated else "")
            )
        if not isinstance(entries, Mapping):
            raise InvalidInputError(f"entries must be an object {{key: {{ms, min_ms, ...}}}}, "
                                    f"got {type(entries).__name__}")
        for key, entry in entries.items():
            if not isinstance(entry, Mapping):
                raise InvalidInputError(f"entries.{key} must be an object with ms and min_ms, got {entry!r}")
            for field in ("ms", "min_ms"):
                _check_time(entry.get(field), f"entries.{key}.{field}")
        self.entries = {key: dict(value) for key, value in entries.items()}
        self.measured_resolutions = tuple(sorted(resolutions))
        self.metadata = dict(metadata or {})
        settings = self.metadata.get("settings", {})
        if not isinstance(settings, Mapping):
            raise InvalidInputError(f"settings must be an object, got {settings!r}")
        for field, allowed, default in (("statistic", STATISTICS, "min"), ("clock", CLOCKS, "wall"),
                                        ("order", ORDERS, "interleaved"), ("normalise", NORMALISATIONS, "none")):
            if settings.get(field, default) not in allowed:
                raise InvalidInputError(f"settings.{field} is {settings.get(field)!r}; allowed: {', '.join(allowed)}")
        if settings.get("normalise", "none") == "reference":
            self._check_reference(self.metadata.get("reference"))
        if validation is not None and not isinstance(validation, Mapping):
            raise InvalidInputError(f"validation must be an object or null, got {validation!r}")
        self.validation = dict(validation) if validation else None
        self.resnet_ms = self._resnet_tables() if isinstance(arch_space, ResNetArchSpace) else None
        if self.resnet_ms is None:
            self.block_ms, self.fixed_ms = self._tables()
        self.correction = self._checked_correction(correction)

    def _check_reference(self, reference: Any) -> None:
        """The reference op of a normalised table: an entry of it (validation and deployment checks
        time it again), with a positive baseline."""
        if not isinstance(reference, Mapping) or not isinstance(reference.get("op"), str):
            raise InvalidInputError(f"settings.normalise is 'reference', so reference must be an object with op (an "
                                    f"entry's key) and baseline_ms, got {reference!r}")
        if reference["op"] not in self.entries:
            raise InvalidInputError(f"reference.op {reference['op']!r} is not an entry of the table")
        baseline: Any = reference.get("baseline_ms")
        if not _is_number(baseline) or not (math.isfinite(baseline) and baseline > 0):
            raise InvalidInputError(f"reference.baseline_ms is {baseline!r}; a time must be a finite number > 0")

    def _checked_correction(self, correction: Any) -> dict[str, Any] | None:
        """A correction of the file: all keys, a positive slope, a positive time for the smallest subnet."""
        if correction is None:
            return None
        if not isinstance(correction, Mapping):
            raise InvalidInputError(f"correction must be an object with {', '.join(_CORRECTION_KEYS)} or null, "
                                    f"got {correction!r}")
        missing = [key for key in _CORRECTION_KEYS if key not in correction]
        if missing:
            raise InvalidInputError(f"correction lacks {', '.join(missing)} (needs {', '.join(_CORRECTION_KEYS)})")
        if correction["kind"] != "linear":
            raise InvalidInputError(f"correction.kind is {correction['kind']!r}; allowed: 'linear'")
        if not isinstance(correction["applied"], bool):
            raise InvalidInputError(f"correction.applied must be true or false, got {correction['applied']!r}")
        for field in ("scale", "offset_ms"):
            if not _is_number(correction[field]) or not math.isfinite(correction[field]):
                raise InvalidInputError(f"correction.{field} must be a finite number, got {correction[field]!r}")
        if not correction["applied"]:
            return dict(correction)  # kept for the record (validation found the plain sum better)
        if correction["scale"] <= 0:
            raise InvalidInputError(f"correction.scale is {correction['scale']}; an applied correction needs "
                                    "scale > 0 (a bigger subnet cannot be faster)")
        cheapest = float(self.raw_sum(self.arch_space.to_indices(self.arch_space.min_sample())[None])[0])
        if correction["scale"] * cheapest + correction["offset_ms"] <= 0:
            raise InvalidInputError(
                f"correction (scale {correction['scale']}, offset_ms {correction['offset_ms']}) predicts "
                f"{correction['scale'] * cheapest + correction['offset_ms']:.4g} ms for the smallest subnet; "
                "a latency must be > 0")
        return dict(correction)

    @property
    def protocol(self) -> dict[str, Any]:
        """How the entries were timed: what a measurement comparable with the table must use
        (backend, device, threads, batch size, warm-up/repeats/rounds, clock, order, normalisation and
        its reference op's key, statistic)."""
        meta = self.metadata
        settings = meta.get("settings", {})
        device = meta.get("device", {})
        return {"backend": meta.get("backend", "torch"), "device": device.get("type", "cpu"),
                "num_threads": device.get("num_threads", 1), "batch_size": meta.get("batch_size", 1),
                "warmup": settings.get("warmup", DEFAULT_WARMUP), "repeats": settings.get("repeats", DEFAULT_REPEATS),
                "rounds": settings.get("rounds", DEFAULT_ROUNDS), "clock": settings.get("clock", "wall"),
                "order": settings.get("order", "interleaved"), "normalise": settings.get("normalise", "none"),
                "reference_op": (meta.get("reference") or {}).get("op") if settings.get("normalise") == "reference"
                else None,
                "statistic": self.statistic}

    @property
    def reference_op(self) -> OpSpec | None:
        """The op a ``normalise="reference"`` table was normalised with (``None`` without normalisation):
        what a measurement comparable with the table times between its visits."""
        key = self.protocol["reference_op"]
        return None if key is None else specs_by_key(self.arch_space, self.measured_resolutions)[key]

    @property
    def statistic(self) -> str:
        """``"min"`` (the default) or ``"median"``: which per-entry timing the table sums."""
        return str(self.metadata.get("settings", {}).get("statistic", "min"))

    def with_statistic(self, statistic: str) -> LatencyTable:
        """The same measurements predicting with another statistic (no validation or correction yet)."""
        if statistic not in STATISTICS:
            raise InvalidInputError(f"unknown statistic {statistic!r}; allowed: {', '.join(STATISTICS)}")
        metadata = {**self.metadata, "settings": {**self.metadata.get("settings", {}), "statistic": statistic}}
        return LatencyTable(arch_space=self.arch_space, entries=self.entries,
                            measured_resolutions=self.measured_resolutions, metadata=metadata)

    @property
    def interpolated_resolutions(self) -> tuple[int, ...]:
        return tuple(r for r in self.arch_space.resolutions if r not in self.measured_resolutions)

    def _resnet_tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The tables of :func:`~ofa_nni.costs.sum_resnet` for an OFA-ResNet space (an op a subnet never
        has stays 0), unmeasured resolutions interpolated as in :meth:`_tables`."""
        arch_space: Any = self.arch_space
        n_w, n_r = len(arch_space.width_mults), len(arch_space.resolutions)
        tables = (np.zeros((arch_space.num_blocks, n_w, n_w, len(arch_space.expand_ratios), n_r)),
                  np.zeros((n_w, n_w, len(arch_space.stem_depths), n_r)), np.zeros((n_w, n_r)))
        for r_idx in [arch_space.resolutions.index(r) for r in self.measured_resolutions]:
            for table, specs in zip(tables, resnet_op_specs(arch_space, arch_space.resolutions[r_idx]), strict=True):
                for position, spec in specs.items():
                    table[position + (r_idx,)] = self._entry_ms(spec)
        for table in tables:
            self._interpolate(table)
        return tables

    def _interpolate(self, table: np.ndarray) -> None:
        """Fill the unmeasured resolutions (the last axis) of ``table`` in place, linearly in the
        image area between the nearest measured ones (proportionally to the area beyond them)."""
        arch_space = self.arch_space
        measured_idx = [arch_space.resolutions.index(r) for r in self.measured_resolutions]
        areas = np.asarray(arch_space.resolutions, dtype=np.float64) ** 2
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
                table[..., r_idx] += weight * table[..., source]
        np.maximum(table, 0.0, out=table)

    def _tables(self) -> tuple[np.ndarray, np.ndarray]:
        arch_space = self.arch_space
        shape = (arch_space.num_blocks, len(arch_space.kernel_sizes), len(arch_space.expand_ratios))
        block_ms = np.zeros((*shape, len(arch_space.resolutions)), dtype=np.float64)
        fixed_ms = np.zeros(len(arch_space.resolutions), dtype=np.float64)
        measured_idx = [arch_space.resolutions.index(r) for r in self.measured_resolutions]
        for r_idx in measured_idx:
            fixed, blocks = op_specs(arch_space, arch_space.resolutions[r_idx])
            fixed_ms[r_idx] = sum(self._entry_ms(spec) for spec in fixed)
            for (block, k_idx, e_idx), spec in blocks.items():
                block_ms[block, k_idx, e_idx, r_idx] = self._entry_ms(spec)
        self._interpolate(block_ms)
        self._interpolate(fixed_ms)
        return block_ms, fixed_ms

    def _entry_ms(self, spec: OpSpec) -> float:
        entry = self.entries.get(spec.key)
        if entry is None:
            raise InvalidInputError(f"latency table has no entry {spec.key!r} (incomplete or for another space)")
        return float(entry["min_ms"] if self.statistic == "min" else entry["ms"])

    # ------------------------------------------------------------------ predict
    def raw_sum(self, population: Any) -> np.ndarray:
        """The plain sum of the table's entries (no correction), ``(n,)`` milliseconds."""
        return self._sum(as_index_array(self.arch_space, population))

    def _sum(self, indices: np.ndarray) -> np.ndarray:
        if self.resnet_ms is not None:
            return sum_resnet(self.arch_space, indices, self.resnet_ms)
        return sum_active_blocks(self.arch_space, indices, self.block_ms, self.fixed_ms)

    def evaluate(self, indices: np.ndarray) -> np.ndarray:
        total = self._sum(indices)
        if self.correction and self.correction.get("applied"):
            total = self.correction["scale"] * total + self.correction["offset_ms"]
        return total

    # --------------------------------------------------------------------- file
    def to_dict(self) -> dict[str, Any]:
        data = dict(self.metadata)
        data.update(
            format=FORMAT,
            format_version=FORMAT_VERSION,
            space=self.arch_space.signature(),
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
    @renamed_keywords(space="arch_space")
    def load(cls, path: str | os.PathLike[str], *, arch_space: ArchSpace | None = None) -> LatencyTable:
        """Read a table; with ``arch_space``, refuse a table measured for another space (ValueError naming
        the differing fields)."""
        path = Path(path)
        data = read_document(path, what="latency table", format=FORMAT, version=FORMAT_VERSION,
                             missing="build one with 'ofa-nni lut build'")
        if not isinstance(data.get("space"), dict):
            raise InvalidInputError(f"{path}: damaged latency table (no space signature)")
        if arch_space is not None:
            require_same_space(data["space"], arch_space, artefact=f"latency table {path}")
        metadata = {key: value for key, value in data.items()
                    if key not in ("format", "format_version", "space", "resolutions", "entries", "validation",
                                   "correction")}
        try:
            return cls(arch_space=arch_space_from_signature(data["space"]), entries=data["entries"],
                       measured_resolutions=data["resolutions"]["measured"], metadata=metadata,
                       validation=data.get("validation"), correction=data.get("correction"))
        except InvalidInputError as error:
            raise InvalidInputError(f"{path}: {error}") from None
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
        if self.protocol["normalise"] == "reference":
            reference = meta["reference"]
            lines.append(f"  timings normalised by the reference op {reference['op']} (baseline "
                         f"{reference['baseline_ms']:.4f} ms; slowdowns divided out: "
                         f"{reference.get('factor_min', 1):.2f}x-{reference.get('factor_max', 1):.2f}x)")
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
    return lines + ["  " + line for line in validation_verdict_lines(validation)]


def validation_verdict_lines(validation: Mapping[str, Any]) -> list[str]:
    """A validation's verdict in words (``lut build``, ``lut validate``, the demo): the targets met or
    not, how well the end-to-end timings repeated, and what to do when the targets are missed."""
    lines = [f"targets: Spearman >= {SPEARMAN_TARGET}, MAPE <= {MAPE_TARGET_PERCENT}%: "
             + ("met" if validation.get("meets_targets") else "NOT met")]
    repeats_at = validation.get("repeatability")
    # A measurement that repeats at R correlates with the truth at about sqrt(R) (the attenuation
    # formula): what a perfect table would be seen at under this load.
    ceiling = None if repeats_at is None else math.sqrt(max(repeats_at, 0.0))
    if ceiling is not None:
        lines.append(f"the end-to-end timings repeat at Spearman {repeats_at:.4f} (even vs odd visits of the same "
                     f"subnets): a perfect table would validate at about {ceiling:.3f} under this load")
    steps = validation.get("steps") or []
    if len(steps) > 1:  # visited again while the timings repeated below the target
        lines.append("visits per subnet and how well the timings repeated: " + " -> ".join(
            f"{step['rounds']}: {step['repeatability']}" for step in steps))
    if not validation.get("meets_targets"):
        if ceiling is not None and ceiling < SPEARMAN_TARGET:
            lines.append(f"what to do: the load here lets the timings repeat only at Spearman {repeats_at:.2f}, so "
                         "no table can be shown to meet the target now: re-check with 'ofa-nni lut validate' when "
                         "the machine is quieter, or with more visits per subnet ('--rounds N' to start with, "
                         "'--max-rounds N' to go on to"
                         + (f"; {validation['rounds']} now" if validation.get("rounds") else "")
                         + "; k times the visits take the repeatability R to about kR/(1+(k-1)R))")
        elif repeats_at is not None:
            lines.append("what to do: rebuild the table when the machine is quieter (the timings repeat, the table "
                         "disagrees with them), then re-check it with 'ofa-nni lut validate'")
        else:
            lines.append("what to do: rebuild the table when the machine is quieter, or re-check it as it is now "
                         "with 'ofa-nni lut validate'")
    return lines


def read_document(path: Path, *, what: str, format: str, version: int, missing: str) -> dict[str, Any]:
    """The JSON object of an ofa-nni file of ``format`` and ``version`` (latency tables, bundle
    results); anything else is a one-line error naming the file and what it is instead."""
    if not path.is_file():
        raise MissingInputError(f"{what} {str(path)!r} does not exist ({missing})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise InvalidInputError(f"{path} is not a {what} (not JSON text: byte {error.start} is not UTF-8)") from None
    except json.JSONDecodeError as error:
        raise InvalidInputError(f"{path} is not a {what} (invalid JSON: {error})") from None
    if not isinstance(data, dict) or data.get("format") != format:
        raise InvalidInputError(f"{path} is not an ofa-nni {what} (format {data.get('format')!r})"
                                if isinstance(data, dict) else f"{path} is not an ofa-nni {what}")
    if data.get("format_version") != version:
        raise InvalidInputError(f"{path}: {what} format_version {data.get('format_version')!r} is not "
                                f"supported (this version reads {version})")
    return data
