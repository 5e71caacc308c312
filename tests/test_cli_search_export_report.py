"""``ofa-nni search``, ``export`` and ``report`` on a small CPU space: outputs, files, bad inputs.

One module-scoped set of artefacts, made as a user makes them: a randomly initialised supernet saved
as ``ofa-nni train`` saves it, an accuracy predictor built by ``ofa-nni predictor build`` from a few
subnets evaluated on digits, and a latency table measured by ``ofa-nni lut build`` with few repeats.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_SPACE_KWARGS

from ofa_nni.accuracy import AccuracyPredictor, evaluate_subnet
from ofa_nni.app.cli import COMMAND_MODULES, build_parser, main
from ofa_nni.app.report import demo_report_markdown
from ofa_nni.efficiency import MacsModel, ParamsModel
from ofa_nni.latency import LatencyTable
from ofa_nni.search import minimum_costs, pareto_mask

REPO = Path(__file__).resolve().parents[1]
FAST = ["--population", "24", "--generations", "12", "--quiet"]


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory):
    from search_spaces import OFAMobileNetV3Space

    root = tmp_path_factory.mktemp("pipeline")
    torch.manual_seed(0)
    space = OFAMobileNetV3Space(**{**TINY_SPACE_KWARGS, "resolutions": (24, 32), "num_classes": 10})
    space.save(root / "supernet.pt")
    assert main(["predictor", "build", "--supernet", str(root / "supernet.pt"), "--num-subnets", "10",
                 "--calibration-images", "100", "--kind", "ridge", "--quiet",
                 "--out", str(root / "predictor.npz")]) == 0
    assert main(["lut", "build", "--supernet", str(root / "supernet.pt"), "--warmup", "1", "--repeats", "2",
                 "--rounds", "1", "--threads", "1", "--statistic", "min", "--validate", "0", "--quiet",
                 "--out", str(root / "lut.json")]) == 0
    return root


def _budgets(root: Path) -> dict[str, float]:
    """Feasible budgets: a third of the way from each cost's smallest achievable value to the largest subnet's."""
    table = LatencyTable.load(root / "lut.json")
    arch = table.arch_space
    costs = {"latency_ms": table, "macs": MacsModel(arch), "params": ParamsModel(arch)}
    smallest = minimum_costs(arch, costs)
    return {name: smallest[name][0] + (fn(arch.max_sample()) - smallest[name][0]) / 3 for name, fn in costs.items()}


def _search(root: Path, out: Path, *extra: str) -> dict:
    budgets = _budgets(root)
    code = main(["search", "--predictor", str(root / "predictor.npz"), "--lut", str(root / "lut.json"),
                 "--target", f"latency_ms<={budgets['latency_ms']:.4f}",
                 "--target", f"latency_ms<={2 * budgets['latency_ms']:.4f}, macs<={budgets['macs'] / 1e3:.1f}K",
                 "--target", f"params<={budgets['params'] / 1e3:.2f}K", "--pareto", *FAST, *extra, "--out", str(out)])
    assert code == 0
    return json.loads(out.read_text())


def _errors(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0]


# ------------------------------------------------------------------------------- search
def test_search_finds_a_subnet_per_target_and_the_front(artefacts, tmp_path, capsys):
    document = _search(artefacts, tmp_path / "search.json")
    printed = capsys.readouterr().out
    predictor = AccuracyPredictor.load(artefacts / "predictor.npz")
    table = LatencyTable.load(artefacts / "lut.json")
    arch = predictor.arch_space
    costs = {"macs": MacsModel(arch), "params": ParamsModel(arch), "latency_ms": table}

    assert document["kind"] == "ofa-nni/search" and document["format_version"] == 1
    assert document["space"] == arch.signature()
    assert document["predictor"]["path"] == str(artefacts / "predictor.npz")
    assert document["latency_table"]["path"] == str(artefacts / "lut.json")
    assert document["latency_table"]["statistic"] == table.statistic
    assert document["costs"] == {"macs": "MACs", "params": "parameters", "latency_ms": "ms"}
    assert [t["name"] for t in document["targets"]] == [
        t for t in printed.split() if t.startswith(("latency_ms<=", "params<="))]
    budgets = [t["budgets"] for t in document["targets"]]
    assert [sorted(b) for b in budgets] == [["latency_ms"], ["latency_ms", "macs"], ["params"]]
    for target in document["targets"]:
        sample = arch.parse(target["arch"])
        assert sample == arch.validate(target["sample"]) and target["arch"] in printed
        assert target["score"] == pytest.approx(predictor(sample))
        for name, fn in costs.items():
            assert target["costs"][name] == pytest.approx(fn(sample))
        assert all(target["costs"][name] <= budget for name, budget in target["budgets"].items())
    # The front: non-dominated in (predicted accuracy, latency), every cost reported.
    front = document["pareto"]
    assert front["cost"] == "latency_ms" and len(front["archs"]) >= 2
    assert set(front["costs"]) == {"macs", "params", "latency_ms"}
    objectives = np.column_stack([-np.asarray(front["scores"]), front["costs"]["latency_ms"]])
    assert pareto_mask(objectives).all()
    samples = [arch.parse(a) for a in front["archs"]]
    assert np.allclose(front["scores"], predictor(samples)) and np.allclose(front["costs"]["macs"],
                                                                            costs["macs"](samples))
    assert "Pareto front, predicted accuracy vs latency_ms" in printed

    # Deterministic for a seed.
    again = _search(artefacts, tmp_path / "again.json")
    for key in ("targets", "pareto"):
        assert again[key] == document[key]


def test_search_pareto_only(artefacts, tmp_path, capsys):
    out = tmp_path / "front.json"
    code = main(["search", "--predictor", str(artefacts / "predictor.npz"), "--pareto", "--pareto-cost", "macs",
                 *FAST, "--out", str(out)])
    assert code == 0
    document = json.loads(out.read_text())
    assert document["targets"] == [] and document["latency_table"] is None
    assert document["pareto"]["cost"] == "macs" and set(document["pareto"]["costs"]) == {"macs", "params"}
    assert "predicted accuracy vs macs" in capsys.readouterr().out


@pytest.mark.parametrize("target, message", [
    ("flops<=3M", "unknown cost 'flops'; allowed: macs, params (and latency_ms with --lut)"),
    ("latency_ms<=3.5", "latency_ms needs --lut"),
    ("macs<=forty", "cannot read 'macs<=forty'; expected NAME<=NUMBER"),
    ("macs<=40 megas", "unknown suffix 'megas' in 'macs<=40 megas'; allowed: K, M, G"),
    ("macs<=40m", "unknown suffix 'm'"),
    ("macs<40M", "cannot read 'macs<40M'"),
    ("macs<=1M,macs<=2M", "macs is given twice"),
])
def test_search_refuses_bad_targets(artefacts, tmp_path, capsys, target, message):
    out = tmp_path / "search.json"
    code = main(["search", "--predictor", str(artefacts / "predictor.npz"), "--target", target, *FAST,
                 "--out", str(out)])
    assert code == 2
    error = _errors(capsys)
    assert error.startswith(f"ofa-nni search: error: --target {target!r}: ") and message in error, error
    assert list(tmp_path.iterdir()) == []


def test_search_names_the_infeasible_target_and_the_smallest_value(artefacts, tmp_path, capsys):
    predictor = AccuracyPredictor.load(artefacts / "predictor.npz")
    smallest = int(minimum_costs(predictor.arch_space, {"macs": MacsModel(predictor.arch_space)})["macs"][0])
    out = tmp_path / "search.json"
    code = main(["search", "--predictor", str(artefacts / "predictor.npz"), "--target", "macs<=10M",
                 "--target", "params<=1M,macs<=1K", *FAST, "--out", str(out)])
    assert code == 2
    error = _errors(capsys)
    assert "--target 'params<=1M,macs<=1K': budget 1000 for 'macs' is infeasible" in error
    assert f"the smallest achievable macs is {smallest} (subnet r24_" in error
    assert not out.exists()


def test_search_refuses_another_spaces_latency_table(artefacts, tmp_path, capsys):
    from ofa_nni.arch import ArchSpace
    from ofa_nni.latency import build_latency_table

    other = ArchSpace(**{**TINY_SPACE_KWARGS, "resolutions": (24, 32), "num_classes": 4})
    build_latency_table(other, backend="torch", warmup=0, repeats=1, rounds=1, num_threads=1,
                        show_progress=False).save(tmp_path / "other.json")
    code = main(["search", "--predictor", str(artefacts / "predictor.npz"), "--lut", str(tmp_path / "other.json"),
                 "--target", "macs<=10M", *FAST])
    assert code == 2
    assert "was built for another search space (num_classes: file has 4, space has 10)" in _errors(capsys)


def test_search_errors_from_the_installed_entry_point_have_no_traceback(artefacts, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "ofa_nni.cli", "search", "--predictor", str(artefacts / "predictor.npz"),
         "--target", "macs<=lots", "--out", str(tmp_path / "s.json")],
        capture_output=True, text=True, timeout=300, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 2
    assert result.stderr.strip() == ("ofa-nni search: error: --target 'macs<=lots': cannot read 'macs<=lots'; "
                                     "expected NAME<=NUMBER with an optional K, M or G suffix, several joined by "
                                     "commas, e.g. 'latency_ms<=3.5,macs<=40M'")
    assert not (tmp_path / "s.json").exists()


def test_a_closed_output_pipe_ends_quietly(artefacts, monkeypatch, capsys):
    """``ofa-nni search ... | head``: when the reader goes away, exit 141 (as shells report SIGPIPE), no traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    with open(write_end, "w", buffering=1) as closed_pipe:  # line-buffered: the first line hits the pipe
        monkeypatch.setattr(sys, "stdout", closed_pipe)
        code = main(["search", "--predictor", str(artefacts / "predictor.npz"), "--target", "macs<=10M", *FAST])
    assert code == 141
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------------------- export
@pytest.fixture(scope="module")
def searched(artefacts):
    out = artefacts / "search.json"
    _search(artefacts, out)
    return out


def _export(artefacts, out_dir, *extra):
    return main(["export", "--supernet", str(artefacts / "supernet.pt"), "--out-dir", str(out_dir),
                 "--calibration-images", "100", "--latency-repeats", "2", "--latency-rounds", "1", "--threads", "1",
                 "--quiet", *extra])


@pytest.mark.filterwarnings("ignore:.*torch.jit.load.*:FutureWarning")
def test_export_checks_both_formats_and_measures(artefacts, searched, tmp_path, capsys):
    from ofa_nni.data import calibration_loader, load_data
    from ofa_nni.runtime import recalibrate_batchnorm
    from search_spaces import load_supernet

    extra_arch = "r32_k5e3-k5e3_k5e3-k5e3_k5e3-k5e3"
    out_dir = tmp_path / "exports"
    assert _export(artefacts, out_dir, "--search", str(searched), "--arch", extra_arch) == 0
    printed = capsys.readouterr().out
    document = json.loads((out_dir / "exports.json").read_text())
    search = json.loads(searched.read_text())
    assert document["kind"] == "ofa-nni/exports" and document["space"] == search["space"]
    assert document["search"] == str(searched) and document["data"].startswith("digits, held-out split")
    assert document["latency"]["num_threads"] == 1 and "1 thread(s), batch 1" in document["latency"]["description"]
    names = [entry["name"] for entry in document["subnets"]]
    assert names == ["target1", "target2", "target3", "subnet1"]
    assert [e["arch"] for e in document["subnets"]] == [t["arch"] for t in search["targets"]] + [extra_arch]
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(
        ["exports.json"] + [f"{n}.{suffix}" for n in names for suffix in ("pt", "onnx")])

    supernet = load_supernet(artefacts / "supernet.pt")
    data = load_data("digits", resolution=32, calibration_images=100)
    calibration = list(calibration_loader(data, batch_size=100))
    for entry in document["subnets"]:
        assert set(entry["files"]) == {"torchscript", "onnx"}
        assert all(f["max_abs_diff"] <= 1e-4 for f in entry["files"].values())
        assert 0 < entry["latency_ms"] == entry["latency_min_ms"] <= entry["latency_median_ms"]  # --statistic min
        assert entry["name"] in printed and entry["arch"] in printed
        # The file is the frozen subnet with its batch norms recalibrated (not the supernet's statistics).
        sample = supernet.arch_space.parse(entry["arch"])
        subnet = supernet.freeze(sample)
        recalibrate_batchnorm(subnet, calibration)
        assert entry["accuracy"] == pytest.approx(evaluate_subnet(subnet, torch.utils.data.DataLoader(
            data.val, batch_size=100))["accuracy"])
        assert entry["macs"] == supernet.macs(sample) and entry["params"] == supernet.params(sample)
        images = torch.randn(2, 3, subnet.resolution, subnet.resolution)
        scripted = torch.jit.load(str(out_dir / entry["files"]["torchscript"]["path"]))
        with torch.no_grad():
            assert torch.allclose(scripted(images), subnet.eval()(images), atol=1e-5)
    assert [e.get("predicted_accuracy") for e in document["subnets"][:3]] == [t["score"] for t in search["targets"]]


def test_export_measures_with_the_tables_protocol_and_flags_subnets_over_target(artefacts, searched, tmp_path,
                                                                                 capsys):
    """Issue 17: the search's latency budgets set against the deployed subnets, measured as the table was."""
    tight = json.loads(searched.read_text())
    for target in tight["targets"]:
        if "latency_ms" in target["budgets"]:
            target["budgets"]["latency_ms"] = 1e-6  # no subnet runs that fast: every one is over
    (tmp_path / "tight.json").write_text(json.dumps(tight))
    out_dir = tmp_path / "exports"
    assert _export(artefacts, out_dir, "--search", str(tmp_path / "tight.json"), "--no-evaluate") == 0
    captured = capsys.readouterr()
    printed = captured.out
    # _export's --latency-repeats/--latency-rounds/--threads do not apply with a table, and it says so.
    assert ("note: --latency-repeats 2, --latency-rounds 1, --threads 1 not used: the subnets are measured with the "
            "latency table's protocol") in captured.err
    document = json.loads((out_dir / "exports.json").read_text())
    check = document["latency"]["check"]
    table = LatencyTable.load(artefacts / "lut.json")
    assert check["protocol"] == table.protocol and document["latency"]["clock"] == table.protocol["clock"]
    latency_targets = [t["budgets"].get("latency_ms") for t in tight["targets"]]
    assert [row["target_ms"] for row in check["subnets"]] == latency_targets
    for row, entry in zip(check["subnets"], document["subnets"], strict=True):
        assert row["over_target"] == (row["target_ms"] is not None) == entry["latency_over_target"]
        if row["over_target"]:
            assert row["over_by_ms"] == pytest.approx(row["measured_ms"] - 1e-6, abs=1e-6)
            assert f"OVER TARGET: {row['name']} measured {row['measured_ms']:.3f} ms" in printed
    over = sum(t is not None for t in latency_targets)
    assert check["verdict"] == f"{over} of {over} over target" and "likely cause:" in printed
    report = tmp_path / "report.md"
    assert main(["report", str(tmp_path / "tight.json"), str(out_dir / "exports.json"), "--out", str(report)]) == 0
    assert "OVER TARGET: target1 measured" in report.read_text()


def test_export_without_evaluation_or_latency(artefacts, tmp_path):
    out_dir = tmp_path / "exports"
    assert _export(artefacts, out_dir, "--arch", "r24_k3e2|k3e2_k3e2|k3e2_k3e2|k3e2", "--formats", "onnx",
                   "--no-evaluate", "--no-latency") == 0
    document = json.loads((out_dir / "exports.json").read_text())
    (entry,) = document["subnets"]
    assert entry["accuracy"] is None and entry["latency_ms"] is None and document["data"] is None
    assert sorted(p.name for p in out_dir.iterdir()) == ["exports.json", "subnet1.onnx"]


def test_a_re_export_removes_only_the_earlier_exports_files_inside_its_folder(artefacts, tmp_path):
    """A re-export replaces the files the earlier exports.json listed; a listed path outside the folder
    (an edited exports.json: '..', absolute, a symlink) is never removed."""
    out_dir = tmp_path / "exports"
    arch = "r24_k3e2|k3e2_k3e2|k3e2_k3e2|k3e2"
    assert _export(artefacts, out_dir, "--arch", arch, "--formats", "onnx,torchscript", "--no-evaluate",
                   "--no-latency") == 0
    victims = [tmp_path / "victim.txt", tmp_path / "absolute.txt", tmp_path / "linked.txt"]
    for victim in victims:
        victim.write_text("keep")
    (out_dir / "link.txt").symlink_to(victims[2])
    document = json.loads((out_dir / "exports.json").read_text())
    document["subnets"][0]["files"].update({
        "a": {"path": "../victim.txt", "max_abs_diff": 0.0}, "b": {"path": str(victims[1]), "max_abs_diff": 0.0},
        "c": {"path": "link.txt", "max_abs_diff": 0.0}})
    (out_dir / "exports.json").write_text(json.dumps(document))
    assert _export(artefacts, out_dir, "--arch", arch, "--formats", "onnx", "--no-evaluate", "--no-latency") == 0
    assert all(victim.read_text() == "keep" for victim in victims) and (out_dir / "link.txt").is_symlink()
    assert sorted(p.name for p in out_dir.iterdir()) == ["exports.json", "link.txt", "subnet1.onnx"]  # .pt gone


@pytest.mark.parametrize("args, message", [
    (["--arch", "r32_k5e3"], "--arch: arch string 'r32_k5e3': expected 4 '_'-separated groups"),
    (["--arch", "r28_k5e3-k5e3_k5e3-k5e3_k5e3-k5e3"], "resolution"),
    (["--formats", "tflite", "--arch", "r32_k5e3-k5e3_k5e3-k5e3_k5e3-k5e3"], "unknown format(s) ['tflite']"),
    ([], "nothing to export: give --search search.json and/or --arch ARCH"),
])
def test_export_refuses_bad_input(artefacts, tmp_path, capsys, args, message):
    out_dir = tmp_path / "exports"
    assert _export(artefacts, out_dir, *args) == 2
    assert message in _errors(capsys)
    assert not out_dir.exists()


def test_export_refuses_a_search_of_another_space(artefacts, searched, tmp_path, capsys):
    search = json.loads(searched.read_text())
    search["space"]["kernel_sizes"] = [3, 5, 7]
    other = tmp_path / "other.json"
    other.write_text(json.dumps(search))
    assert _export(artefacts, tmp_path / "exports", "--search", str(other)) == 2
    assert "search results" in (error := _errors(capsys)) and "another search space (kernel_sizes" in error


def test_export_mismatch_is_an_error_and_leaves_no_file(artefacts, searched, tmp_path, capsys):
    """ONNX Runtime's outputs differ from PyTorch's in the last bits: with --atol 0 the ONNX check fails
    after the TorchScript file was written; nothing of the run stays (not even the folder it made)."""
    out_dir = tmp_path / "exports"
    assert _export(artefacts, out_dir, "--search", str(searched), "--atol", "0", "--no-latency") == 2
    assert "onnx export of r24_" in (error := _errors(capsys)) and "differs from PyTorch" in error
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------- report
def test_report_from_search_and_exports(artefacts, searched, tmp_path, capsys):
    out_dir = tmp_path / "exports"
    assert _export(artefacts, out_dir, "--search", str(searched), "--arch", "r32_k5e3-k5e3_k5e3-k5e3_k5e3-k5e3",
                   "--statistic", "median") == 0
    exports = json.loads((out_dir / "exports.json").read_text())
    search = json.loads(searched.read_text())
    statistic = search["latency_table"]["statistic"]  # the report sets like against like
    assert exports["latency"]["statistic"] == "median" and statistic == "min"
    report = tmp_path / "report" / "report.md"
    assert main(["report", str(searched), str(out_dir / "exports.json"), "--out", str(report)]) == 0
    assert f"wrote {report} and {report.with_name('report_pareto.png')}" in capsys.readouterr().out
    text = report.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    target_rows = [r for r in rows if "≤" in r]
    for target, entry, row in zip(search["targets"], exports["subnets"][:3], target_rows, strict=True):
        assert target["arch"].replace("|", "\\|") in row
        assert f"{100 * target['score']:.1f}% / {100 * entry['accuracy']:.1f}%" in row
        assert f"{target['costs']['latency_ms']:.3f} / {entry[f'latency_{statistic}_ms']:.3f}" in row
    assert any("(`subnet1`, no target)" in r and "– / " in r for r in rows)
    assert "## Pareto front: predicted accuracy vs latency (ms)" in text
    assert "![Pareto front](report_pareto.png)" in text
    front_rows = [line for line in rows if line[2].isdigit()]
    assert len(front_rows) == len(search["pareto"]["archs"])
    png = report.with_name("report_pareto.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    # Without exports: predictions only, next to the search file by default.
    assert main(["report", str(searched)]) == 0
    alone = searched.with_name("report.md").read_text()
    assert "Measured:" not in alone and all(f"{100 * t['score']:.1f}% / –" in alone for t in search["targets"])


def _demo_results(run_dir: Path) -> dict:
    return {
        "kind": "ofa-nni/demo", "run_dir": str(run_dir), "date": "2025-01-01 12:00:00", "machine": "test machine",
        "seconds": 1.0,
        "targets": [{"budget_ms": b, "arch": a, "accuracy_predicted": 0.5 + b / 10, "accuracy_measured": 0.48 + b / 10,
                     "latency_predicted_ms": b * 0.9, "latency_measured_ms": b * 0.95, "macs": 150_000 + b * 1e4,
                     "params": 14_000 + b * 1e3, "exports": {}}
                    for b, a in ((1.7, "r24_k3e2|k3e2_k3e2|k3e2_k3e2|k3e2"),
                                 (2.2, "r24_k3e2|k3e2_k3e2-k3e2_k3e2|k3e2"))],
        "predictor": {"kind": "ridge", "num_subnets": 10, "rmse_percent": 2.5, "kendall": 0.8, "spearman": 0.9},
        "latency_validation": {"backend": "torch/cpu", "num_subnets": 8, "spearman": 0.95, "mape_percent": 7.0,
                               "corrected": False, "details": {}},
        "pareto_front": {"archs": ["a", "b"], "accuracy_predicted": [0.6, 0.7], "latency_ms": [1.6, 2.1]},
        "costs": {"phases": [{"name": "train once (progressive shrinking)", "wall_s": 10.0, "cpu_s": 15.0,
                              "energy_kwh": 2e-4, "emissions_kg": 1e-4}],
                  "amortization": [{"targets": 1, "ofa_wh": 0.3, "ofa_per_target_wh": 0.3, "separate_wh": 0.1,
                                    "ratio": 0.33}],
                  "note": "Measured here.", "method": "estimate from CPU load"},
    }


@pytest.mark.parametrize("with_kind", [True, False])
def test_report_rerenders_a_demo_run(artefacts, tmp_path, capsys, with_kind):
    run_dir = tmp_path / "demo-run"
    run_dir.mkdir()
    results = _demo_results(run_dir)
    if not with_kind:  # runs made before results.json had a kind
        del results["kind"]
    (run_dir / "results.json").write_text(json.dumps(results))
    # The grey dots of the plot come from the run's data set and latency table.
    shutil.copy(artefacts / "predictor.subnets.jsonl", run_dir / "accuracy_dataset.jsonl")
    shutil.copy(artefacts / "lut.json", run_dir / "latency_table.json")
    assert main(["report", str(run_dir)]) == 0
    assert f"wrote {run_dir / 'report.md'} and {run_dir / 'pareto.png'}" in capsys.readouterr().out
    text = (run_dir / "report.md").read_text()
    assert text == demo_report_markdown(results)
    assert ("| 1.700 ms | `r24_k3e2\\|k3e2_k3e2\\|k3e2_k3e2\\|k3e2` | 67.0% / 65.0% | 1.530 / 1.615 | 0.17 M | 15.7 K |"
            in text)
    assert (run_dir / "pareto.png").read_bytes().startswith(b"\x89PNG")
    assert main(["report", str(run_dir / "results.json"), "--out", str(tmp_path / "again.md")]) == 0
    assert (tmp_path / "again.md").read_text() == text


def test_report_of_a_demo_run_says_when_its_latency_table_missed_the_targets(artefacts, tmp_path):
    """The demo's own lines said only 'Spearman 0.690, MAPE 2.9%' for a table that missed the Spearman
    target; report.md (and the demo's terminal) now say NOT met and what to do, as 'lut build' does."""
    run_dir = tmp_path / "demo-run"
    run_dir.mkdir()
    results = _demo_results(run_dir)
    results["latency_validation"].update(spearman=0.69, mape_percent=2.9, details={
        "meets_targets": False, "repeatability": 0.98, "rounds": 3,
        "raw": {"spearman": 0.69, "kendall": 0.5, "mape_percent": 2.9}})
    (run_dir / "results.json").write_text(json.dumps(results))
    assert main(["report", str(run_dir / "results.json"), "--out", str(tmp_path / "report.md")]) == 0
    text = (tmp_path / "report.md").read_text()
    assert "Spearman 0.690, MAPE 2.9%" in text
    assert "targets: Spearman >= 0.95, MAPE <= 10.0%: NOT met" in text
    assert "what to do: rebuild the table when the machine is quieter (the timings repeat" in text


def test_report_refuses_unknown_and_missing_inputs(artefacts, searched, tmp_path, capsys):
    unknown = tmp_path / "thing.json"
    unknown.write_text(json.dumps({"kind": "ofa-nni/something"}))
    assert main(["report", str(unknown)]) == 2
    assert (f"{unknown} has kind 'ofa-nni/something'; expected 'ofa-nni/search' (written by 'ofa-nni search') or "
            "'ofa-nni/demo' (written by 'ofa-nni demo')") in _errors(capsys)
    assert main(["report", str(tmp_path / "missing.json")]) == 2
    assert "does not exist (expected a JSON file of kind 'ofa-nni/search'" in _errors(capsys)
    assert main(["report", str(tmp_path)]) == 2
    assert "a directory without results.json" in _errors(capsys)
    not_json = tmp_path / "notes.json"
    not_json.write_text("{oops")
    assert main(["report", str(not_json)]) == 2
    assert "is not JSON" in _errors(capsys)
    assert main(["report", str(searched), str(searched)]) == 2
    assert "has kind 'ofa-nni/search'; expected 'ofa-nni/exports' (written by 'ofa-nni export')" in _errors(capsys)
    other_space = json.loads(searched.read_text())["space"] | {"num_classes": 4}
    exports = tmp_path / "exports.json"
    exports.write_text(json.dumps({"kind": "ofa-nni/exports", "format_version": 1, "space": other_space,
                                   "supernet": "supernet.pt", "search": None, "data": None, "calibration_images": 1,
                                   "latency": {"description": None}, "atol": 1e-4, "subnets": []}))
    assert main(["report", str(searched), str(exports)]) == 2
    assert f"exports file {exports} (against the search {searched}) was built for another search space" in _errors(
        capsys)
    assert not (tmp_path / "report.md").exists()


def test_help_lists_the_steps_in_pipeline_order(capsys):
    names = [module.rsplit(".", 1)[1] for module in COMMAND_MODULES]
    assert names == ["demo", "info", "train", "predictor", "lut", "search", "export", "report", "nni"]
    text = build_parser().format_help()
    positions = [text.index(f"\n    {name} ") for name in names]
    assert positions == sorted(positions)
    for name in names:  # each help starts on its name's line (no wrapped names)
        assert f"\n    {name}\n" not in text
    for name in ("search", "export", "report"):
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        assert "example" in capsys.readouterr().out


def test_report_of_a_demo_run_says_when_its_predictor_ranks_backwards(artefacts, tmp_path):
    """report.md showed 'Kendall τ -0.643' for the predictor the demo searched with, and no word more."""
    run_dir = tmp_path / "demo-run"
    run_dir.mkdir()
    results = _demo_results(run_dir)
    results["predictor"].update(kendall=-0.643, spearman=-0.81)
    (run_dir / "results.json").write_text(json.dumps(results))
    assert main(["report", str(run_dir / "results.json"), "--out", str(tmp_path / "report.md")]) == 0
    assert "ranks held-out subnets no better than chance (Kendall tau -0.643)" in (tmp_path / "report.md").read_text()
