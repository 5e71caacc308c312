"""``ofa-nni demo``: settings validation, the cost summary, and the whole run end to end (slow)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from ofa_nni.app.carbon import CostMeter
from ofa_nni.app.demo import DemoSettings, _cost_summary


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_targets=0), "num_targets must be between 1 and 20"),
        (dict(accuracy_subnets=5), "accuracy_subnets must be at least 20"),
        (dict(latency_validation_subnets=2), "latency_validation_subnets must be at least 5"),
        (dict(scratch_epochs=0), "scratch_epochs must be >= 1"),
        (dict(train_epochs_factor=0), "train_epochs_factor must be positive"),
        (dict(space="ofa-nasnet"), r"space must be one of \['ofa-mbv3', 'ofa-proxyless'.*got 'ofa-nasnet'"),
    ],
)
def test_invalid_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DemoSettings(**kwargs)


def test_cost_summary_amortises_training_over_targets():
    meter = CostMeter(use_codecarbon=False)
    durations = {
        "train once (progressive shrinking)": 0.4,
        "measure: accuracy data set + predictor": 0.1,
        "measure: latency table": 0.1,
        "specialize (search)": 0.02,
        "deploy (freeze, export, measure)": 0.04,
        "baseline: one network trained from scratch": 0.2,
    }
    for name, seconds in durations.items():
        with meter.phase(name):
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                pass
    summary = _cost_summary(meter, num_targets=3, scratch_epochs=5)
    rows = {row["targets"]: row for row in summary["amortization"]}
    assert sorted(rows) == [1, 3, 10, 40]
    phase = {p.name: p.energy_kwh * 1e3 for p in meter.phases}
    fixed = phase["train once (progressive shrinking)"] + phase["measure: accuracy data set + predictor"] + phase[
        "measure: latency table"]
    per_target = (phase["specialize (search)"] + phase["deploy (freeze, export, measure)"]) / 3
    for n, row in rows.items():
        assert row["ofa_wh"] == pytest.approx(fixed + n * per_target)
        assert row["separate_wh"] == pytest.approx(n * phase["baseline: one network trained from scratch"])
    assert rows[40]["ratio"] > rows[1]["ratio"]  # training once pays off with more targets
    scratch = phase["baseline: one network trained from scratch"]
    break_even = summary["break_even_targets"]
    assert fixed + break_even * per_target <= break_even * scratch  # OFA costs no more from here on
    assert break_even == 1 or fixed + (break_even - 1) * per_target > (break_even - 1) * scratch
    assert "5 epochs" in summary["note"] and summary["method"].startswith("estimate")


def _quick_demo(run_dir, *, timeout, options=()):
    """``ofa-nni demo --quick [options]`` into ``run_dir``: the finished process and its wall time."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "ofa_nni.cli", "demo", "--quick", "--no-progress", *options, "--run-dir", str(run_dir)],
        capture_output=True, text=True, timeout=timeout,
    )
    return result, time.perf_counter() - started


@pytest.mark.slow
@pytest.mark.demo
def test_quick_demo_end_to_end(tmp_path):
    run_dir = tmp_path / "run"
    result, first_seconds = _quick_demo(run_dir, timeout=1500)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "report:" in result.stdout and str(run_dir) in result.stdout
    report = json.loads((run_dir / "results.json").read_text())
    assert len(report["targets"]) == 3
    budgets = [t["budget_ms"] for t in report["targets"]]
    assert budgets == sorted(budgets)
    for target in report["targets"]:
        assert target["latency_predicted_ms"] <= target["budget_ms"] + 1e-9
        assert 0.0 <= target["accuracy_measured"] <= 1.0
        for export in target["exports"].values():
            assert export["max_abs_diff"] <= 1e-4
    exports = sorted(p.name for p in (run_dir / "exports").iterdir())
    assert exports == ["target1.onnx", "target1.pt", "target2.onnx", "target2.pt", "target3.onnx", "target3.pt"]
    assert (run_dir / "pareto.png").stat().st_size > 10_000
    markdown = (run_dir / "report.md").read_text()
    assert "## Cost: train once vs train per target" in markdown
    assert report["targets"][0]["arch"].replace("|", "\\|") in markdown  # '|' escaped inside table cells
    assert [row["targets"] for row in report["costs"]["amortization"]] == [1, 3, 10, 40]
    # 'ofa-nni report RUN_DIR' re-renders the same report with the same renderer.
    rerendered = subprocess.run(
        [sys.executable, "-m", "ofa_nni.cli", "report", str(run_dir), "--out", str(tmp_path / "again" / "report.md")],
        capture_output=True, text=True, timeout=300,
    )
    assert rerendered.returncode == 0, rerendered.stderr[-3000:]
    assert (tmp_path / "again" / "report.md").read_text() == markdown
    assert (tmp_path / "again" / "pareto.png").stat().st_size > 10_000
    # Re-running reuses the finished training, predictor and latency table, and reports the cost each
    # reused step had when it was measured (the run directory's ledger), so the comparison stays true.
    again, rerun_seconds = _quick_demo(run_dir, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    rerun = json.loads((run_dir / "results.json").read_text())
    first, second = report["costs"]["train_once"], rerun["costs"]["train_once"]
    assert second["wall_s"] == first["wall_s"] and second["energy_kwh"] == first["energy_kwh"]
    assert "reused" in second["note"] and first["note"] == ""
    assert rerun_seconds < first_seconds / 2, (rerun_seconds, first_seconds)


@pytest.mark.slow  # not in CI's slow set (8 min here): the README's main job runs there on digits
def test_quick_demo_on_a_users_npz(tmp_path):
    """``ofa-nni demo --data PATH.npz`` runs the whole flow on the file (here digits saved as floats
    without a test split: the seeded 20% is held out); no accuracy shown anywhere exceeds 100%; a
    predictor file of the earlier (unbounded) format is rebuilt on a re-run."""
    import re

    from sklearn.datasets import load_digits

    digits = load_digits()
    path = tmp_path / "digits.npz"
    np.savez(path, x_train=digits.images / 16.0, y_train=digits.target)
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "ofa_nni.cli", "demo", "--quick", "--no-progress", "--data", str(path),
               "--run-dir", str(run_dir)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"progressive shrinking on {path}" in result.stdout
    report = json.loads((run_dir / "results.json").read_text())
    assert all(0.0 <= t["accuracy_predicted"] <= 1.0 for t in report["targets"])
    assert all(0.0 <= a <= 1.0 for a in report["pareto_front"]["accuracy_predicted"])
    shown = [float(v) for text in (result.stdout, (run_dir / "report.md").read_text())
             for v in re.findall(r"(\d+(?:\.\d+)?)%", text)]
    assert shown and max(shown) <= 100.0
    # A predictor written by ofa-nni 0.1 (format 1) in the run directory is rebuilt, not used.
    predictor = run_dir / "accuracy_predictor.npz"
    with np.load(predictor) as archive:
        arrays = {name: archive[name] for name in archive.files}
    metadata = json.loads(str(arrays["metadata"]))
    metadata["format_version"] = 1
    np.savez(predictor, **{**arrays, "metadata": np.array(json.dumps(metadata))})
    again = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "earlier format (unbounded predictions): rebuilding it" in again.stdout
    with np.load(predictor) as archive:
        assert json.loads(str(archive["metadata"]))["format_version"] == 2


def test_a_run_directory_of_another_space_is_refused(tmp_path):
    """``ofa-nni demo --space ofa-proxyless`` on a run directory trained for ofa-mbv3 says so (exit 2)
    before any step, instead of reusing the other space's supernet."""
    from conftest import TINY_SPACE_KWARGS

    from ofa_nni.app.cli import main
    from search_spaces import OFAMobileNetV3Space

    run_dir = tmp_path / "run"
    (run_dir / "train").mkdir(parents=True)
    OFAMobileNetV3Space(**{**TINY_SPACE_KWARGS, "num_classes": 10}).save(run_dir / "train" / "supernet.pt")
    before = sorted(p.name for p in run_dir.rglob("*"))
    assert main(["demo", "--quick", "--no-progress", "--space", "ofa-proxyless", "--run-dir", str(run_dir)]) == 2
    assert sorted(p.name for p in run_dir.rglob("*")) == before


@pytest.mark.slow  # not in CI's slow set: the README's main job (ofa-mbv3) runs there
def test_small_demo_on_proxylessnas(tmp_path):
    """The whole flow on OFA-ProxylessNAS's CPU preset (the Python API; fewer subnets and
    generations than --quick): trained, measured, searched, exported, reported."""
    from ofa_nni.app.demo import run_demo
    from search_spaces import OFAProxylessNASSpace, load_supernet

    settings = DemoSettings(space="ofa-proxyless", num_targets=2, accuracy_subnets=20, latency_validation_subnets=5,
                            search_generations=5, population_size=20, train_epochs_factor=1 / 64, scratch_epochs=1,
                            show_progress=False)
    result = run_demo(tmp_path / "run", settings, say=lambda message: None)
    supernet = load_supernet(tmp_path / "run" / "train" / "supernet.pt")
    assert isinstance(supernet, OFAProxylessNASSpace)
    assert len(result.targets) == 2
    for target in result.targets:
        assert supernet.arch_space.parse(target["arch"])  # an arch of the ProxylessNAS space
        assert target["latency_predicted_ms"] <= target["budget_ms"] + 1e-9
        assert 0.0 <= target["accuracy_measured"] <= 1.0
        assert all(export["max_abs_diff"] <= 1e-4 for export in target["exports"].values())
    assert result.report_path.is_file() and result.plot_path.is_file()


@pytest.mark.slow  # not in CI's slow set: the pipeline tests cover ResNet's integrations (4 min at load 2 here)
def test_quick_demo_on_resnet50(tmp_path):
    """``ofa-nni demo --quick --space ofa-resnet50`` end to end on the command line: the ResNet CPU
    preset trained (depth, expand, width phases), measured, searched, exported and reported."""
    from search_spaces import OFAResNetSpace, load_supernet

    run_dir = tmp_path / "run"
    result, _ = _quick_demo(run_dir, timeout=2400, options=["--space", "ofa-resnet50"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "report:" in result.stdout and "(ofa-resnet50)" in result.stdout
    supernet = load_supernet(run_dir / "train" / "supernet.pt")
    assert isinstance(supernet, OFAResNetSpace)
    report = json.loads((run_dir / "results.json").read_text())
    assert len(report["targets"]) == 3
    for target in report["targets"]:
        assert supernet.arch_space.format(supernet.arch_space.parse(target["arch"])) == target["arch"]
        assert target["latency_predicted_ms"] <= target["budget_ms"] + 1e-9
        assert 0.0 <= target["accuracy_measured"] <= 1.0
        assert sorted(target["exports"]) == ["onnx", "torchscript"]
        for export in target["exports"].values():
            assert export["max_abs_diff"] <= 1e-4
    exports = sorted(p.name for p in (run_dir / "exports").iterdir())
    assert exports == ["target1.onnx", "target1.pt", "target2.onnx", "target2.pt", "target3.onnx", "target3.pt"]
    assert (run_dir / "pareto.png").stat().st_size > 10_000
    assert "## Cost: train once vs train per target" in (run_dir / "report.md").read_text()


def test_a_run_directory_trained_on_other_data_is_refused(tmp_path, capsys):
    """``ofa-nni demo --data NEW.npz`` on a run directory trained on other data reused the other
    data's supernet, and then failed at step 2 naming the accuracy file. It is refused at once (exit 2),
    naming both data sets, and so is the same path holding other images; nothing in the directory changes."""
    from conftest import TINY_SPACE_KWARGS

    from ofa_nni.app.cli import main
    from search_spaces import OFAMobileNetV3Space

    run_dir = tmp_path / "run"
    (run_dir / "train").mkdir(parents=True)
    OFAMobileNetV3Space(**{**TINY_SPACE_KWARGS, "num_classes": 3}).save(run_dir / "train" / "supernet.pt")
    images = np.random.default_rng(0).integers(0, 256, (60, 8, 8), dtype=np.uint8)
    first, second = tmp_path / "first.npz", tmp_path / "second.npz"
    np.savez(first, x_train=images, y_train=np.arange(60) % 3)
    np.savez(second, x_train=images[::-1].copy(), y_train=np.arange(60) % 3)
    # A run directory of before data.json: its training configuration names the data.
    (run_dir / "train" / "config.yaml").write_text(f"data: {{kind: npz, root: {first}}}\n")
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    demo = ["demo", "--quick", "--no-progress", "--run-dir", str(run_dir)]
    capsys.readouterr()
    assert main([*demo, "--data", str(second)]) == 2
    assert f"was trained on {first}, not {second}" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before

    (run_dir / "data.json").write_text(json.dumps({"data": str(first), "fingerprint": "0123456789abcdef"}))
    assert main([*demo, "--data", str(first)]) == 2
    assert "was trained on other images under" in capsys.readouterr().err
    assert main([*demo]) == 2
    assert f"was trained on {first}, not digits" in capsys.readouterr().err
