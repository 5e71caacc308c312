"""The JSON documents of the pipeline, each a class that owns its format: ``save`` writes it
(atomically, with its ``kind`` and ``format_version``), ``load`` reads it back and checks every key
its readers use, so a damaged or hand-edited file is one :class:`~ofa_nni.errors.InvalidInputError`
naming the file and the key (``search.json: targets[0].score: expected a number, got 'high'``)
instead of a ``KeyError`` deep inside a report.

* :class:`SearchDocument` (kind ``ofa-nni/search``, ``ofa-nni search --out search.json``): the space
  signature, the predictor and latency table used, every target's budgets and the subnet found for it
  (arch string, sample, predicted accuracy, every cost), and the Pareto front when asked for.
* :class:`ExportsDocument` (kind ``ofa-nni/exports``, ``ofa-nni export``'s ``exports.json``): every
  exported subnet, its files and their largest absolute difference to PyTorch, its held-out accuracy
  (BN recalibrated) and its measured latency.
* :class:`DemoResults` (kind ``ofa-nni/demo``, ``results.json`` of an ``ofa-nni demo`` run directory).

A document is a read-only mapping of its fields (``document["targets"]``), which is what the
renderers in :mod:`ofa_nni.app.report` take. Format version 1 is the only one so far; a demo
``results.json`` written before the demo wrote a ``kind`` is recognised by its keys.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from ofa_nni._artifacts import atomic_write
from ofa_nni.errors import InvalidInputError, MissingInputError

__all__ = ["FORMAT_VERSION", "ResultDocument", "SearchDocument", "ExportsDocument", "DemoResults", "read_document"]

FORMAT_VERSION = 1
"""``format_version`` of the documents this version writes and reads."""

_Document = TypeVar("_Document", bound="ResultDocument")


# ------------------------------------------------------------------------------ schema
class _Maybe:
    """A key that may be absent (its value, when there, must match ``spec``)."""

    def __init__(self, spec: Any) -> None:
        self.spec = spec


_NUMBER = "number"  # an int or a float (NaN allowed: a metric that could not be computed), not a bool
_ANY = "any"
_OBJECT = "object"  # any JSON object
_OTHER_KEYS = "*"  # in an object spec: the spec of every key not named


def _describe(spec: Any) -> str:
    if spec == _NUMBER:
        return "a number"
    if spec in (_OBJECT,) or isinstance(spec, dict):
        return "an object"
    if isinstance(spec, list):
        return "a list"
    if isinstance(spec, tuple):
        return " or ".join(_describe(s) for s in spec)
    if spec is None:
        return "null"
    return {str: "a string", int: "an integer", bool: "true/false"}.get(spec, str(spec))


def _matches(value: Any, spec: Any) -> bool:
    if spec == _ANY:
        return True
    if spec == _NUMBER:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if spec == _OBJECT or isinstance(spec, dict):
        return isinstance(value, dict)
    if isinstance(spec, list):
        return isinstance(value, list)
    if isinstance(spec, tuple):
        return any(_matches(value, s) for s in spec)
    if spec is None:
        return value is None
    if spec is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, spec)


def _check(value: Any, spec: Any, where: str, fail: Any) -> None:
    """Check ``value`` against ``spec`` (recursively); ``fail(where, message)`` raises."""
    if isinstance(spec, tuple):
        for option in spec:
            if _matches(value, option):
                _check(value, option, where, fail)
                return
    if not _matches(value, spec):
        fail(where, f"expected {_describe(spec)}, got {_shown(value)}")
    if isinstance(spec, list) and spec:
        for index, item in enumerate(value):
            _check(item, spec[0], f"{where}[{index}]", fail)
    elif isinstance(spec, dict):
        for key, item_spec in spec.items():
            if key == _OTHER_KEYS:
                continue
            if key not in value:
                if not isinstance(item_spec, _Maybe):
                    fail(f"{where}.{key}".lstrip("."), "missing")
                continue
            _check(value[key], item_spec.spec if isinstance(item_spec, _Maybe) else item_spec,
                   f"{where}.{key}".lstrip("."), fail)
        if _OTHER_KEYS in spec:
            for key, item in value.items():
                if key not in spec:
                    _check(item, spec[_OTHER_KEYS], f"{where}.{key}".lstrip("."), fail)


def _shown(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, float) or math.isfinite(value) else str(value)
    return text if len(text) <= 40 else f"{type(value).__name__} {text[:37]}..."


_COSTS = {"macs": _NUMBER, "params": _NUMBER, _OTHER_KEYS: _NUMBER}
_OPTIONAL_NUMBER = (_NUMBER, None)


# ---------------------------------------------------------------------------- documents
class ResultDocument(Mapping[str, Any]):
    """A pipeline document: its fields (without ``kind`` and ``format_version``), read-only."""

    kind: ClassVar[str]
    written_by: ClassVar[str]
    schema: ClassVar[dict[str, Any]]

    def __init__(self, fields: Mapping[str, Any]) -> None:
        self._fields = {key: value for key, value in fields.items() if key not in ("kind", "format_version")}

    def __getitem__(self, key: str) -> Any:
        return self._fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object as written: ``kind``, ``format_version``, then the fields."""
        return {"kind": self.kind, "format_version": FORMAT_VERSION, **self._fields}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the document to ``path`` atomically (the file is checked as ``load`` would first)."""
        self.validate(str(path))
        text = json.dumps(self.to_dict(), indent=1, default=_json_default) + "\n"
        atomic_write(path, lambda file: file.write(text.encode("utf-8")))
        return Path(path)

    def validate(self, name: str) -> None:
        """Raise :class:`InvalidInputError` naming ``name`` and the first key that does not fit."""

        def fail(where: str, message: str) -> None:
            raise InvalidInputError(f"{name}: {where}: {message} (a {self.kind!r} document, written by "
                                    f"'{self.written_by}'; the file is damaged or was edited)")

        _check(self._fields, self.schema, "", fail)

    @classmethod
    def load(cls: type[_Document], path: str | os.PathLike[str]) -> _Document:
        """Read and check a document of this class's kind."""
        document = read_document(path, (cls,))
        assert isinstance(document, cls)
        return document

    @classmethod
    def _recognise(cls, data: Mapping[str, Any]) -> bool:
        return data.get("kind") == cls.kind


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


class SearchDocument(ResultDocument):
    """``ofa-nni search --out``: what the search found, for ``export --search`` and ``report``."""

    kind = "ofa-nni/search"
    written_by = "ofa-nni search"
    schema: ClassVar[dict[str, Any]] = {
        "date": _Maybe(str),
        "space": _OBJECT,
        "predictor": {"path": str, "kind": str, "metrics": _Maybe((_OBJECT, None))},
        "latency_table": ({"path": str, "description": str, "statistic": str}, None),
        "costs": {_OTHER_KEYS: str},
        "settings": {"population_size": int, "generations": int, "seed": int, "evaluations": int,
                     "seconds": _Maybe(_NUMBER)},
        "targets": [{"name": str, "budgets": {_OTHER_KEYS: _NUMBER}, "arch": str, "sample": _OBJECT,
                     "score": _NUMBER, "costs": _COSTS}],
        "pareto": ({"cost": str, "archs": [str], "scores": [_NUMBER], "costs": {_OTHER_KEYS: [_NUMBER]},
                    "evaluations": int}, None),
    }

    @classmethod
    def create(cls, **fields: Any) -> SearchDocument:
        return cls({"date": _now(), **fields})


class ExportsDocument(ResultDocument):
    """``ofa-nni export``'s ``exports.json``: the exported subnets, their files and measurements."""

    kind = "ofa-nni/exports"
    written_by = "ofa-nni export"
    schema: ClassVar[dict[str, Any]] = {
        "date": _Maybe(str),
        "space": _OBJECT,
        "supernet": str,
        "search": (str, None),
        "data": (str, None),
        "calibration_images": int,
        "latency": {"description": (str, None), _OTHER_KEYS: _ANY},
        "atol": _NUMBER,
        "subnets": [{
            "name": str, "arch": str, "sample": _OBJECT,
            "target": _Maybe((str, None)), "predicted_accuracy": _Maybe(_OPTIONAL_NUMBER),
            "accuracy": _OPTIONAL_NUMBER,
            "files": {_OTHER_KEYS: {"path": str, "max_abs_diff": _NUMBER}},
            "macs": int, "params": int,
            "latency_ms": _OPTIONAL_NUMBER, "latency_min_ms": _Maybe(_OPTIONAL_NUMBER),
            "latency_median_ms": _Maybe(_OPTIONAL_NUMBER),
        }],
    }

    @classmethod
    def create(cls, **fields: Any) -> ExportsDocument:
        return cls({"date": _now(), **fields})


class DemoResults(ResultDocument):
    """``results.json`` of an ``ofa-nni demo`` run directory (``ofa-nni report RUN_DIR`` re-renders it)."""

    kind = "ofa-nni/demo"
    written_by = "ofa-nni demo"
    schema: ClassVar[dict[str, Any]] = {
        "run_dir": str,
        "date": str,
        "machine": str,
        "seconds": _Maybe(_NUMBER),
        "targets": [{"budget_ms": _NUMBER, "arch": str, "accuracy_predicted": _NUMBER,
                     "accuracy_measured": _OPTIONAL_NUMBER, "latency_predicted_ms": _NUMBER,
                     "latency_measured_ms": _OPTIONAL_NUMBER, "macs": _NUMBER, "params": _NUMBER}],
        "predictor": {"kind": str, "num_subnets": int, "rmse_percent": _NUMBER, "kendall": _NUMBER,
                      "spearman": _NUMBER},
        "latency_validation": {"backend": str, "num_subnets": int, "spearman": _NUMBER, "mape_percent": _NUMBER,
                               "corrected": bool},
        "pareto_front": {"archs": [str], "accuracy_predicted": [_NUMBER], "latency_ms": [_NUMBER]},
        "costs": {"phases": [{"name": str, "wall_s": _NUMBER, "cpu_s": _NUMBER, "energy_kwh": _NUMBER,
                              "emissions_kg": _NUMBER}],
                  "amortization": [{"targets": int, "ofa_wh": _NUMBER, "ofa_per_target_wh": _NUMBER,
                                    "separate_wh": _NUMBER, "ratio": _NUMBER}],
                  "note": str, "method": str},
    }
    _LEGACY_KEYS = ("run_dir", "targets", "predictor", "latency_validation", "pareto_front", "costs")

    @classmethod
    def _recognise(cls, data: Mapping[str, Any]) -> bool:
        # Runs made before the demo wrote a ``kind`` are recognised by their keys.
        return super()._recognise(data) or ("kind" not in data and all(key in data for key in cls._LEGACY_KEYS))


def read_document(path: str | os.PathLike[str], classes: Sequence[type[ResultDocument]]) -> ResultDocument:
    """Read the document at ``path``, which must be of one of ``classes``, and check it.

    Raises:
        MissingInputError: nothing at ``path``.
        InvalidInputError: not JSON, another kind, an unknown format version, or a key missing or of
            the wrong type (named).
    """
    path = Path(path)
    expected = " or ".join(f"{cls.kind!r} (written by '{cls.written_by}')" for cls in classes)
    if not path.is_file():
        raise MissingInputError(f"{str(path)!r} does not exist (expected a JSON file of kind {expected})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidInputError(f"{path} is not JSON ({error}); expected a file of kind {expected}") from None
    except OSError as error:
        raise InvalidInputError(f"cannot read {path}: {error.strerror or error}") from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"{path} holds a JSON {type(data).__name__}; expected an object of kind {expected}")
    cls = next((cls for cls in classes if cls._recognise(data)), None)
    if cls is None:
        raise InvalidInputError(f"{path} has kind {data.get('kind')!r}; expected {expected}")
    version = data.get("format_version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise InvalidInputError(f"{path}: format_version {version!r} is not supported (this version reads "
                                f"{FORMAT_VERSION})")
    document = cls(data)
    document.validate(str(path))
    return document
