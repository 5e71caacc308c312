"""The pipeline's documents (search.json, exports.json, a demo's results.json): classes that save and
load their format, with a version, and name the file and key of anything damaged."""

from __future__ import annotations

import json
import math
import re

import pytest

from ofa_nni.app.documents import DemoResults, ExportsDocument, SearchDocument, read_document
from ofa_nni.arch import ArchSpace
from ofa_nni.errors import InvalidInputError

SPACE = ArchSpace(kernel_sizes=(3, 5), expand_ratios=(2, 3), depths=(1, 2), resolutions=(32, 40),
                  base_widths=(8, 8, 16, 24, 32, 48, 64), stage_strides=(2, 2, 2),
                  stage_activations=("relu", "hswish", "hswish"), stage_se=(False, True, True), num_classes=4)


def _search() -> SearchDocument:
    sample = SPACE.max_sample()
    return SearchDocument.create(
        space=SPACE.signature(), predictor={"path": "p.npz", "kind": "mlp", "metrics": {"kendall": 0.8}},
        latency_table={"path": "lut.json", "description": "torch on cpu", "statistic": "min"},
        costs={"macs": "MACs", "latency_ms": "ms"},
        settings={"population_size": 100, "generations": 500, "seed": 0, "evaluations": 50_100, "seconds": 1.5},
        targets=[{"name": "latency_ms<=2", "budgets": {"latency_ms": 2.0}, "arch": SPACE.format(sample),
                  "sample": sample, "score": 0.9, "costs": {"macs": 1e6, "params": 1e4, "latency_ms": 1.9}}],
        pareto={"cost": "latency_ms", "archs": [SPACE.format(sample)], "scores": [0.9],
                "costs": {"latency_ms": [1.9], "macs": [1e6]}, "evaluations": 1000})


def test_a_document_saves_and_loads_with_its_kind_and_version(tmp_path):
    path = _search().save(tmp_path / "search.json")
    written = json.loads(path.read_text())
    assert written["kind"] == "ofa-nni/search" and written["format_version"] == 1
    loaded = SearchDocument.load(path)
    assert dict(loaded) == dict(_search()) | {"date": loaded["date"]}
    assert loaded["targets"][0]["sample"] == SPACE.max_sample()
    with pytest.raises(InvalidInputError, match=r"has kind 'ofa-nni/search'; expected 'ofa-nni/exports' \(written "
                                                r"by 'ofa-nni export'\)"):
        ExportsDocument.load(path)
    path.write_text(json.dumps({**written, "format_version": 2}))
    with pytest.raises(InvalidInputError, match=r"format_version 2 is not supported \(this version reads 1\)"):
        SearchDocument.load(path)


def test_save_refuses_a_document_it_could_not_load(tmp_path):
    document = SearchDocument({**_search(), "targets": [{"name": "x"}]})
    with pytest.raises(InvalidInputError, match=r"search\.json: targets\[0\]\.budgets: missing"):
        document.save(tmp_path / "search.json")
    assert not (tmp_path / "search.json").exists()


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("pareto"), r"pareto: missing"),
    (lambda d: d["targets"][0].update(score="high"), r"targets\[0\]\.score: expected a number, got \"high\""),
    (lambda d: d["targets"][0]["costs"].pop("params"), r"targets\[0\]\.costs\.params: missing"),
    (lambda d: d["targets"][0]["budgets"].update(macs=True), r"targets\[0\]\.budgets\.macs: expected a number, "
                                                            r"got true"),
    (lambda d: d.update(latency_table=3), r"latency_table: expected an object or null, got 3"),
    (lambda d: d["pareto"]["scores"].append(None), r"pareto\.scores\[1\]: expected a number, got null"),
])
def test_a_damaged_document_names_the_file_and_the_key(tmp_path, change, message):
    data = _search().to_dict()
    change(data)
    path = tmp_path / "search.json"
    path.write_text(json.dumps(data))
    where = re.escape(str(path))
    with pytest.raises(InvalidInputError, match=rf"{where}: {message} \(a 'ofa-nni/search' document, written by "
                                                r"'ofa-nni search'; the file is damaged"):
        read_document(path, (SearchDocument, DemoResults))


def test_a_demo_results_file_without_a_kind_is_still_read(tmp_path):
    results = {"run_dir": str(tmp_path), "date": "2026-01-01 00:00:00", "machine": "x",
               "targets": [{"budget_ms": 1.0, "arch": "a", "accuracy_predicted": 0.9, "accuracy_measured": 0.8,
                            "latency_predicted_ms": 1.0, "latency_measured_ms": 1.1, "macs": 1, "params": 2}],
               "predictor": {"kind": "mlp", "num_subnets": 10, "rmse_percent": 1.0, "kendall": 0.5,
                             "spearman": math.nan},
               "latency_validation": {"backend": "torch", "num_subnets": 5, "spearman": 0.9, "mape_percent": 3.0,
                                      "corrected": False},
               "pareto_front": {"archs": ["a"], "accuracy_predicted": [0.9], "latency_ms": [1.0]},
               "costs": {"phases": [], "amortization": [], "note": "", "method": ""}}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    document = read_document(path, (SearchDocument, DemoResults))
    assert isinstance(document, DemoResults) and document["targets"][0]["arch"] == "a"
    assert DemoResults(results).save(tmp_path / "again.json").is_file()
    assert json.loads((tmp_path / "again.json").read_text())["kind"] == "ofa-nni/demo"
