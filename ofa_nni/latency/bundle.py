"""Latency tables measured where PyTorch is not: a bundle of ONNX files and a one-file runner.

``write_bundle`` writes, into a directory, every distinct op shape of a space as an ONNX model
(one file per module, with a dynamic input size shared by its resolutions), a few end-to-end ONNX
subnets (validation and calibration, as :func:`~ofa_nni.latency.validation.validate_latency_table`
uses), ``manifest.json``, and ``run_latency.py`` (a copy of :mod:`ofa_nni.latency.onnx_runner`, which
needs only Python, numpy and onnxruntime). Run it on the device; its ``results.json`` comes back
to :func:`import_results`, which makes a :class:`~ofa_nni.latency.table.LatencyTable` (backend
``onnxruntime``) with the validation of the end-to-end subnets in it. The manifest names the
space's reference op (:mod:`~ofa_nni.latency.reference`); with ``--normalise reference`` the runner
times it between the visits and keeps the raw timings, and the import normalises them as
``ofa-nni lut build --normalise reference`` does.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ofa_nni._artifacts import atomic_write, atomic_write_json, library_versions, require_same_space
from ofa_nni._deprecation import renamed_keywords
from ofa_nni.arch import ArchSpace, Sample, arch_space_from_signature
from ofa_nni.errors import InvalidInputError
from ofa_nni.latency.reference import REFERENCE_INTERVAL_S, ReferenceLog, reference_spec
from ofa_nni.latency.specs import specs_by_key
from ofa_nni.latency.table import LatencyTable, entry_summary, read_document

__all__ = ["BUNDLE_FORMAT", "RESULTS_FORMAT", "RUNNER_NAME", "import_results", "write_bundle"]

BUNDLE_FORMAT = "ofa-nni-latency-bundle"
RESULTS_FORMAT = "ofa-nni-latency-results"
FORMAT_VERSION = 1
RUNNER_NAME = "run_latency.py"


@renamed_keywords(space="arch_space")
def write_bundle(
    arch_space: ArchSpace,
    out_dir: str | Path,
    freeze: Callable[[Sample], Any],
    *,
    resolutions: Sequence[int] | None = None,
    batch_size: int = 1,
    validation_subnets: int = 20,
    calibration_subnets: int = 20,
    seed: int = 0,
) -> dict[str, Any]:
    """Write the bundle of ``arch_space`` into ``out_dir`` (see the module docstring); returns its manifest.

    ``freeze`` turns a sample into a static model (e.g. ``OFAMobileNetV3Space(...).freeze``; weights do
    not matter for latency). Files are written next to their final names and renamed into place,
    the manifest last, so an interrupted bundle has no manifest and cannot be run by mistake."""
    import torch

    from ofa_nni.latency.runners import onnx_bytes

    if validation_subnets < 3 or calibration_subnets < 2:
        raise InvalidInputError(f"need validation_subnets >= 3 and calibration_subnets >= 2, got "
                                f"{validation_subnets}, {calibration_subnets}")
    measured = tuple(sorted(set(arch_space.resolutions if resolutions is None else resolutions)))
    unknown = [r for r in measured if r not in arch_space.resolutions]
    if unknown or not measured:
        raise InvalidInputError(f"resolutions {unknown or list(measured)} not in the space; "
                                f"allowed: {list(arch_space.resolutions)}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"--out {str(out)!r} exists and is not a directory")
    (out / "ops").mkdir(parents=True, exist_ok=True)
    (out / "subnets").mkdir(exist_ok=True)
    (out / "manifest.json").unlink(missing_ok=True)  # the old manifest must not describe new files
    entries, written = [], set()
    specs = specs_by_key(arch_space, measured)
    for key, spec in sorted(specs.items()):
        model = f"ops/{spec.module_key}.onnx"
        if model not in written:
            data = onnx_bytes(spec.build(), torch.zeros(spec.input_shape(batch_size)), dynamic_size=True)
            _write_bytes(out / model, data)
            written.add(model)
        entries.append({"key": key, "model": model, "input_shape": list(spec.input_shape(batch_size))})
    indices = arch_space.random_indices(validation_subnets + calibration_subnets, seed)
    subnets = []
    for i, row in enumerate(indices):
        sample = arch_space.from_indices(row)
        resolution = int(sample[ArchSpace.RESOLUTION_LABEL])
        shape = [batch_size, 3, resolution, resolution]
        model = f"subnets/subnet{i:03d}.onnx"
        data = onnx_bytes(freeze(sample).eval(), torch.zeros(shape), dynamic_size=False)
        _write_bytes(out / model, data)
        role = "validation" if i < validation_subnets else "calibration"
        subnets.append({"arch": arch_space.format(sample), "role": role, "model": model, "input_shape": shape})
    shutil.copyfile(Path(__file__).with_name("onnx_runner.py"), out / RUNNER_NAME)
    manifest = {
        "format": BUNDLE_FORMAT, "format_version": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "space": arch_space.signature(), "batch_size": batch_size, "measured_resolutions": list(measured),
        "validation_subnets": validation_subnets, "calibration_subnets": calibration_subnets, "seed": seed,
        "libraries": library_versions("torch", "onnx", "ofa_nni"),
        "entries": entries, "subnets": subnets,
        "reference": {"op": reference_spec(specs).key, "interval_s": REFERENCE_INTERVAL_S},
    }
    atomic_write_json(out / "manifest.json", manifest)
    return manifest


def _write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda file: file.write(data))


def _normalised(data: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """The entries and subnets of results timed with ``--normalise reference``, each visit divided by
    the reference's slowdown then (ops and subnets each to their own run's baseline, as ``ofa-nni lut
    build`` and its validation do), and the two runs' reference summaries."""
    repeats, reference, visits = data["settings"]["repeats"], data["reference"], data["visits"]
    ops = ReferenceLog(at=reference["ops"]["at"], ms=reference["ops"]["ms"],
                       visit_at={key: visit["at"] for key, visit in visits.items()})
    entries = {key: entry_summary(values)
               for key, values in ops.normalise({k: v["timings"] for k, v in visits.items()}, repeats).items()}
    runs = ReferenceLog(at=reference["subnets"]["at"], ms=reference["subnets"]["ms"],
                        visit_at={str(i): subnet["visit_at"] for i, subnet in enumerate(data["subnets"])})
    from ofa_nni.latency.validation import halves_summary

    normalised = runs.normalise({str(i): subnet["timings"] for i, subnet in enumerate(data["subnets"])}, repeats)
    subnets = []
    for i, subnet in enumerate(data["subnets"]):
        values = normalised[str(i)]
        subnets.append({"arch": subnet["arch"], "role": subnet["role"], "measured_min_ms": round(min(values), 6),
                        "measured_median_ms": round(float(np.median(values)), 6)})
        if len(values) >= 2 * repeats:  # two visits or more: the halves say how well the timings repeat
            subnets[-1].update({f"measured_{name}_halves_ms": [round(v, 6) for v in pair]
                                for name, pair in halves_summary(values, repeats).items()})
    return entries, subnets, {"ops": ops.summary(reference["op"]), "subnets": runs.summary(reference["op"])}


def _read_results(path: Path) -> dict[str, Any]:
    data = read_document(path, what="latency results file", format=RESULTS_FORMAT, version=FORMAT_VERSION,
                         missing=f"run the bundle's {RUNNER_NAME} first")
    for field, kind in (("manifest", dict), ("entries", dict), ("subnets", list), ("settings", dict),
                        ("device", dict)):
        if not isinstance(data.get(field), kind):
            raise InvalidInputError(f"{path}: {field} must be {'an object' if kind is dict else 'a list'}")
    return data


@renamed_keywords(space="arch_space")
def import_results(path: str | Path, *, arch_space: ArchSpace | None = None) -> LatencyTable:
    """The latency table of a bundle's ``results.json``, validated on the bundle's end-to-end subnets
    (Spearman, MAPE and the fitted correction, as ``ofa-nni lut build`` stores them)."""
    from ofa_nni.latency.validation import validate_latency_table

    path = Path(path)
    data = _read_results(path)
    manifest = data["manifest"]
    try:
        table_space = arch_space_from_signature(manifest["space"])
        if arch_space is not None:
            require_same_space(manifest["space"], arch_space, artefact=f"latency results {path}")
        device, settings = data["device"], data["settings"]
        first_provider = (device.get("providers_used") or device.get("providers_requested") or ["?"])[0]
        metadata = {
            "created": data.get("created"),
            "backend": "onnxruntime",
            "device": {"type": "cpu" if first_provider == "CPUExecutionProvider" else first_provider,
                       "name": device.get("name"), "num_threads": device["num_threads"]},
            "libraries": data.get("libraries"),
            "batch_size": manifest["batch_size"],
            "settings": {**settings, "statistic": "min"},
            "load": data.get("load"),
            "build_seconds": data.get("build_seconds"),
            "source": {"results": str(path), "runner": RUNNER_NAME, "device": device,
                       "bundle_libraries": manifest.get("libraries")},
        }
        entries, subnets, reference = data["entries"], data["subnets"], None
        if settings.get("normalise", "none") == "reference":
            entries, subnets, reference = _normalised(data)
            metadata["reference"] = reference["ops"]
        table = LatencyTable(arch_space=table_space, entries=entries,
                             measured_resolutions=manifest["measured_resolutions"], metadata=metadata)
        reuse = {
            "subnets": sorted(subnets, key=lambda s: s["role"] != "validation"),  # validation first
            "num_subnets": sum(s["role"] == "validation" for s in subnets),
            "calibration_subnets": sum(s["role"] == "calibration" for s in subnets),
            "seed": manifest.get("seed"), "seconds": data.get("seconds"), "load": data.get("load"),
            "reference": None if reference is None else reference["subnets"],
        }
        for subnet in reuse["subnets"]:
            for field in ("measured_min_ms", "measured_median_ms"):
                if not isinstance(subnet.get(field), (int, float)) or not np.isfinite(subnet[field]):
                    raise InvalidInputError(f"subnets[{subnet.get('arch')}].{field} must be a finite number")
        validate_latency_table(table, reuse=reuse)
    except InvalidInputError as error:
        raise InvalidInputError(f"{path}: {error}") from None
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        raise InvalidInputError(f"{path}: damaged results file ({type(error).__name__}: {error})") from None
    return table
