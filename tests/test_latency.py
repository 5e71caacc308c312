"""Latency lookup tables: op shapes match frozen subnets, table arithmetic, file format, resume,
validation, CLI. Timings here are real but tiny (few repeats); their *quality* is measured in
benchmarks/bench_latency_table.py, not asserted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_SPACE_KWARGS

from ofa_nni.app.cli import main
from ofa_nni.arch import ArchSpace
from ofa_nni.efficiency import MacsModel, ParamsModel
from ofa_nni.latency import (
    LatencyTable,
    build_latency_table,
    measure_end_to_end,
    op_specs,
    validate_latency_table,
)

FAST = dict(warmup=1, repeats=2, rounds=1, num_threads=1, show_progress=False)


def _ops_of(space: ArchSpace, sample: dict) -> list:
    fixed, blocks = op_specs(space, sample["resolution"])
    ops = [fixed[0], fixed[1]]
    for s in range(space.num_stages):
        for b in range(sample[space.depth_label(s)]):
            k = space.kernel_sizes.index(sample[space.kernel_label(s, b)])
            e = space.expand_ratios.index(sample[space.expand_label(s, b)])
            ops.append(blocks[(s * space.max_depth + b, k, e)])
    return ops + [fixed[2]]


@pytest.mark.parametrize("seed", range(4))
def test_op_modules_chain_into_the_frozen_subnet(tiny_space, seed):
    """The ops of a sample, chained, have the frozen subnet's parameters and its output shape."""
    space = tiny_space.arch_space
    sample = space.random_sample(seed)
    ops = _ops_of(space, sample)
    modules = [spec.build() for spec in ops]
    frozen = tiny_space.freeze(sample)
    assert sum(p.numel() for m in modules for p in m.parameters()) == sum(p.numel() for p in frozen.parameters())
    x = torch.randn(2, 3, sample["resolution"], sample["resolution"])
    for spec, module in zip(ops, modules, strict=True):
        assert x.shape == spec.input_shape(2), spec.key
        x = module(x)
    assert x.shape == frozen(torch.randn(2, 3, sample["resolution"], sample["resolution"])).shape


def test_entries_are_deduplicated_by_shape():
    space = ArchSpace()
    fixed, blocks = op_specs(space, 224)
    keys = {spec.key for spec in blocks.values()}
    # Per stage: the first block and the (identical) others; 9 kernel/expand settings each.
    assert len(keys) == space.num_stages * 2 * 9
    assert blocks[(1, 0, 0)].key == blocks[(2, 0, 0)].key  # stage 1 blocks 2 and 3 share a shape
    assert blocks[(0, 0, 0)].key != blocks[(1, 0, 0)].key  # the first block strides and widens


def _synthetic_table(space: ArchSpace, measured: tuple[int, ...], ms_of) -> LatencyTable:
    entries = {}
    for resolution in measured:
        fixed, blocks = op_specs(space, resolution)
        for spec in [*fixed, *blocks.values()]:
            value = ms_of(spec)
            entries[spec.key] = {"ms": value, "min_ms": value, "iqr_ms": 0.0, "samples": 1}
    return LatencyTable(arch_space=space, entries=entries, measured_resolutions=measured)


def test_prediction_is_the_sum_of_the_entries_and_vectorized():
    space = ArchSpace(**{k: v for k, v in TINY_SPACE_KWARGS.items()})
    rng = np.random.default_rng(0)
    values: dict[str, float] = {}
    table = _synthetic_table(space, space.resolutions, lambda spec: values.setdefault(spec.key, rng.uniform(0.1, 2)))
    population = space.random_indices(64, 1)
    predicted = table(population)
    assert predicted.shape == (64,) and predicted.dtype == np.float64
    for row, value in zip(population, predicted, strict=True):
        expected = sum(values[spec.key] for spec in _ops_of(space, space.from_indices(row)))
        assert value == pytest.approx(expected, rel=1e-12)
    assert table(space.from_indices(population[0])) == pytest.approx(predicted[0])
    with pytest.raises(ValueError, match="resolution"):
        bad = population.copy()
        bad[0, -1] = 7
        table(bad)


def test_unmeasured_resolutions_are_interpolated_in_resolution_squared():
    space = ArchSpace(resolutions=(128, 160, 192, 224), num_classes=10)
    # A stem that costs 1 ms + 1e-4 ms per input pixel; everything else free.
    table = _synthetic_table(space, (128, 224), lambda spec: 1.0 + 1e-4 * spec.input_size**2 if spec.kind == "stem"
                             else 0.0)
    assert table.interpolated_resolutions == (160, 192)
    assert table.to_dict()["resolutions"]["interpolated"] == [160, 192]
    for r_idx, resolution in enumerate(space.resolutions):
        assert table.fixed_ms[r_idx] == pytest.approx(1.0 + 1e-4 * resolution**2)
    constant = _synthetic_table(space, (128, 224), lambda spec: 0.5)
    assert np.allclose(constant.block_ms, 0.5)


def test_table_file_round_trip_and_refusals(tmp_path):
    space = ArchSpace(**TINY_SPACE_KWARGS)
    table = build_latency_table(space, backend="torch", resolutions=(32,), **FAST)
    path = tmp_path / "lut.json"
    table.save(path)
    data = json.loads(path.read_text())
    assert data["format_version"] == 1 and data["backend"] == "torch" and data["batch_size"] == 1
    assert data["resolutions"] == {"measured": [32], "interpolated": [40], "interpolation": data["resolutions"][
        "interpolation"]} and "resolution^2" in data["resolutions"]["interpolation"]
    assert {"torch", "numpy", "python"} <= set(data["libraries"]) and data["device"]["num_threads"] == 1
    loaded = LatencyTable.load(path, arch_space=space)
    population = space.random_indices(10, 0)
    np.testing.assert_allclose(loaded(population), table(population))
    other = ArchSpace(**{**TINY_SPACE_KWARGS, "num_classes": 7})
    with pytest.raises(ValueError, match="num_classes: file has 4, space has 7"):
        LatencyTable.load(path, arch_space=other)
    data["format_version"] = 99
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="format_version 99"):
        LatencyTable.load(path)
    with pytest.raises(FileNotFoundError, match="lut build"):
        LatencyTable.load(tmp_path / "missing.json")


def test_bad_settings_are_refused():
    space = ArchSpace(**TINY_SPACE_KWARGS)
    with pytest.raises(ValueError, match="unknown backend 'tflite'"):
        build_latency_table(space, backend="tflite")
    with pytest.raises(ValueError, match=r"resolutions \[33\] not in the space"):
        build_latency_table(space, resolutions=(33,))
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        build_latency_table(space, batch_size=0)
    with pytest.raises(ValueError, match="clock 'cpu'.*needs num_threads=1"):
        build_latency_table(space, clock="cpu", num_threads=2)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            build_latency_table(space, device="cuda")


def test_progress_file_resumes_and_refuses_other_settings(tmp_path):
    space = ArchSpace(**TINY_SPACE_KWARGS)
    progress = tmp_path / "lut.json.partial.json"
    first = build_latency_table(space, progress_path=progress, **FAST)
    saved = json.loads(progress.read_text())
    assert set(saved["timings"]) == set(first.entries) and all(len(v) == 2 for v in saved["timings"].values())
    # Resuming a finished build measures nothing more: the same medians come back.
    again = build_latency_table(space, progress_path=progress, **FAST)
    assert again.entries == first.entries
    with pytest.raises(ValueError, match="batch_size: 1 -> 2"):
        build_latency_table(space, progress_path=progress, **{**FAST, "batch_size": 2})  # type: ignore[arg-type]


@pytest.mark.parametrize(("backend", "clock"), [("torch", "wall"), ("onnxruntime", "wall"), ("torch", "cpu"),
                                               ("onnxruntime", "cpu")])
def test_validation_measures_frozen_subnets_with_the_same_backend(tiny_space, backend, clock):
    space = tiny_space.arch_space
    table = build_latency_table(space, backend=backend, clock=clock, **FAST)
    assert table.metadata["settings"]["clock"] == clock
    validation = validate_latency_table(table, tiny_space.freeze, num_subnets=4, calibration_subnets=3,
                                        show_progress=False)
    assert validation["num_subnets"] == 4 and len(validation["subnets"]) == 7
    for key in ("spearman", "kendall", "mape_percent"):
        assert np.isfinite(validation["raw"][key]) and np.isfinite(validation["corrected"][key])
    measured = np.array([s["measured_ms"] for s in validation["subnets"]])
    predicted = np.array([s["predicted_ms"] for s in validation["subnets"]])
    assert (measured > 0).all() and (predicted > 0).all()
    mape = np.mean(np.abs(predicted[:4] - measured[:4]) / measured[:4]) * 100
    assert validation["raw"]["mape_percent"] == pytest.approx(mape, rel=1e-4)
    correction = table.correction
    assert correction is not None and correction["kind"] == "linear"
    corrected = correction["scale"] * predicted + correction["offset_ms"]
    expected = corrected if correction["applied"] else predicted
    population = np.stack([space.to_indices(space.parse(s["arch"])) for s in validation["subnets"]])
    np.testing.assert_allclose(table(population), expected, rtol=1e-5)
    assert "validation on 4 random subnets" in table.summary()
    # The same measurements judge the table that sums minimum timings; nothing is measured again.
    fastest = table.with_statistic("min")
    assert fastest.statistic == "min" and fastest.validation is None
    again = validate_latency_table(fastest, reuse=validation, show_progress=False)
    assert [s["measured_ms"] for s in again["subnets"]] == [s["measured_min_ms"] for s in validation["subnets"]]
    assert all(f.key not in table.entries or table.entries[f.key]["min_ms"] <= table.entries[f.key]["ms"]
               for f in op_specs(space, 40)[0])
    assert (fastest.raw_sum(population) <= table.raw_sum(population) + 1e-9).all()


def test_end_to_end_runs_onnx_and_torch_on_the_same_model(tiny_space):
    model = tiny_space.freeze(tiny_space.max_sample()).eval()
    for backend in ("torch", "onnxruntime"):
        ms = measure_end_to_end([(model, 40)], backend=backend, warmup=1, repeats=3, rounds=1, num_threads=1)
        assert ms["median"].shape == (1,) and 0 < ms["min"][0] <= ms["median"][0]


def test_efficiency_models_share_the_interface():
    space = ArchSpace(**TINY_SPACE_KWARGS)
    population = space.random_indices(8, 0)
    macs, params = MacsModel(space), ParamsModel(space)
    assert macs(population).dtype == np.float64 and macs(population).shape == (8,)
    assert macs(space.max_sample()) == float(macs.cost_model.macs(space.max_sample()))
    assert params(population)[0] == params(space.from_indices(population[0]))
    with pytest.raises(ValueError, match=r"shape \(n, 16\)"):
        macs(population[:, :5])


def test_cli_builds_validates_and_shows_a_table(tmp_path, capsys):
    out = tmp_path / "lut.json"
    code = main(["lut", "build", "--preset", "cpu", "--num-classes", "10", "--backend", "onnxruntime",
                 "--resolutions", "24", "32", "--warmup", "1", "--repeats", "2", "--rounds", "1", "--threads", "1",
                 "--validate", "4", "--calibration-subnets", "3", "--quiet", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "interpolated" in printed and "Spearman" in printed and "MAPE" in printed
    assert not out.with_name("lut.json.partial.json").exists()
    table = LatencyTable.load(out)
    assert table.metadata["backend"] == "onnxruntime" and table.interpolated_resolutions == (28,)
    assert main(["lut", "show", str(out)]) == 0
    assert "backend onnxruntime" in capsys.readouterr().out


def test_cli_errors_are_one_line(tmp_path, capsys):
    code = main(["lut", "build", "--preset", "cpu", "--resolutions", "25", "--out", str(tmp_path / "x.json")])
    assert code == 2 and "--resolutions [25] not in the space" in capsys.readouterr().err
    if not torch.cuda.is_available():
        code = main(["lut", "build", "--preset", "cpu", "--device", "cuda", "--out", str(tmp_path / "x.json")])
        assert code == 2 and "no CUDA GPU" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.kill  # CI's slow set (scripts/test.sh) runs it
def test_cli_build_killed_and_rerun_resumes(tmp_path):
    """kill -9 in the middle of a build; the same command continues from the progress file."""
    out = tmp_path / "lut.json"
    partial = tmp_path / "lut.json.partial.json"
    # Progress is saved every 5 s: the build must outlast that (~15 s on an idle 2-core machine; the
    # same table with 20 repeats is built in about 1 s, before any progress file is written).
    command = [sys.executable, "-m", "ofa_nni.cli", "lut", "build", "--preset", "cpu", "--num-classes", "10",
               "--warmup", "1", "--repeats", "300", "--rounds", "2", "--threads", "1", "--validate", "0",
               "--quiet", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    done_before_kill = 0
    while time.monotonic() < deadline and process.poll() is None:
        if partial.exists():
            timings = json.loads(partial.read_text())["timings"]
            done_before_kill = sum(len(v) for v in timings.values())
            if done_before_kill:
                break
        time.sleep(0.2)
    assert process.poll() is None, "the build finished before it could be killed; make it longer"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert done_before_kill > 0 and not out.exists()
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming from" in rerun.stdout
    table = LatencyTable.load(out)
    assert all(entry["samples"] == 600 for entry in table.entries.values())


def test_help_and_reading_a_table_load_no_torch(tmp_path):
    """``ofa-nni --help`` and reading/predicting with a table import numpy, not torch (issue 12)."""
    path = tmp_path / "lut.json"
    build_latency_table(ArchSpace(**TINY_SPACE_KWARGS), resolutions=(32,), **FAST).save(path)
    code = (
        "import contextlib, io, sys\n"
        "from ofa_nni.app.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['--help'])\n"
        "from ofa_nni.latency import LatencyTable\n"
        f"table = LatencyTable.load({str(path)!r})\n"
        "table(table.arch_space.max_sample())\n"
        "print(sorted(m for m in ('torch', 'scipy', 'onnxruntime', 'nni') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_block_order_times_each_entry_in_a_row_and_resumes(tmp_path):
    """order='block': every entry gets rounds x repeats timings, recorded in the file; a progress
    file of an interleaved build is refused (another protocol), one of a block build resumed."""
    space = ArchSpace(**TINY_SPACE_KWARGS)
    progress = tmp_path / "lut.json.partial.json"
    table = build_latency_table(space, resolutions=(32,), order="block", progress_path=progress,
                                **{**FAST, "rounds": 2})
    assert table.metadata["settings"]["order"] == "block" and table.protocol["order"] == "block"
    assert all(entry["samples"] == 4 for entry in table.entries.values())
    saved = json.loads(progress.read_text())
    first = next(iter(saved["timings"]))
    saved["timings"][first] = saved["timings"][first][:2]  # as if killed after its first visit
    progress.write_text(json.dumps(saved))
    resumed = build_latency_table(space, resolutions=(32,), order="block", progress_path=progress,
                                  **{**FAST, "rounds": 2})
    assert resumed.entries[first]["samples"] == 4
    with pytest.raises(ValueError, match="holds progress of a build with other settings"):
        build_latency_table(space, resolutions=(32,), order="interleaved", progress_path=progress,
                            **{**FAST, "rounds": 2})


def test_deployment_check_names_subnets_over_target_and_a_load_change(tiny_space):
    from ofa_nni.latency import check_deployments, retime_entries
    from ofa_nni.latency.deployment import deployment_lines

    space = tiny_space.arch_space
    table = build_latency_table(space, **FAST)
    samples = [space.min_sample(), space.max_sample()]
    models = [(tiny_space.freeze(s), s["resolution"]) for s in samples]
    check = check_deployments(table, models, names=["small", "large"], targets_ms=[1e6, 1e-6],
                              predicted_ms=[float(table(s)) for s in samples], retime=4)
    small, large = check["subnets"]
    assert not small["over_target"] and large["over_target"]
    assert large["over_by_ms"] == pytest.approx(large["measured_ms"] - 1e-6, abs=1e-6)
    assert check["over_target"] == 1 and check["verdict"] == "1 of 2 over target"
    assert check["protocol"] == table.protocol and check["cause"] and check["advice"]
    lines = deployment_lines(check)
    assert any(line.strip().startswith(f"OVER TARGET: large measured {large['measured_ms']:.3f} ms against a "
                                       "target of 0.000 ms") for line in lines)
    assert not any("small" in line for line in lines)
    # A table whose entries are 4x too fast for the machine as it is now: the re-timing says the load changed.
    stale = LatencyTable(arch_space=space, measured_resolutions=table.measured_resolutions, metadata=table.metadata,
                         entries={key: {**entry, "ms": entry["ms"] / 4, "min_ms": entry["min_ms"] / 4}
                                  for key, entry in table.entries.items()})
    load = retime_entries(stale, count=6)
    assert load["entries"] == 6 and load["ratio"] > 2 and load["load_changed"]
    check = check_deployments(stale, models[:1], names=["large"], targets_ms=[1e-6], retime=6)
    assert "load changed since the latency table was built" in check["cause"]
    assert "ofa-nni lut build" in check["advice"]


def test_lut_validate_rechecks_a_table_in_place(tmp_path, capsys):
    path = tmp_path / "lut.json"
    space = ArchSpace(**{**TINY_SPACE_KWARGS, "resolutions": (32,)})
    build_latency_table(space, **FAST).save(path)
    assert main(["lut", "validate", str(path), "--validate", "3", "--calibration-subnets", "2", "--quiet"]) == 0
    printed = capsys.readouterr().out
    table = LatencyTable.load(path)
    assert table.validation is not None and table.validation["num_subnets"] == 3
    assert table.validation["entries_retimed"]["entries"] > 0 and table.validation["previous"] is None
    assert "validation on 3 random subnets" in printed and "entries re-timed now" in printed
    assert not (tmp_path / ".lut.json.lock").exists()
    assert table.validation["rounds"] == table.protocol["rounds"] == 1
    # More visits than the table's, under load (the summary shows how well the timings then repeat).
    assert main(["lut", "validate", str(path), "--validate", "3", "--calibration-subnets", "2", "--rounds", "2",
                 "--max-rounds", "2", "--quiet"]) == 0
    again = LatencyTable.load(path)
    assert again.validation is not None and again.validation["rounds"] == 2 and again.protocol["rounds"] == 1
    assert again.validation["repeatability"] is not None and "timings repeat at Spearman" in capsys.readouterr().out
    # Visits added while the timings repeat below the target, up to --max-rounds (at most 3 here).
    assert main(["lut", "validate", str(path), "--validate", "3", "--calibration-subnets", "2", "--rounds", "2",
                 "--max-rounds", "3", "--quiet"]) == 0
    stepped = LatencyTable.load(path).validation
    assert stepped is not None and stepped["steps"][0]["rounds"] == 2 and stepped["rounds"] in (2, 3)
    assert [step["rounds"] for step in stepped["steps"]] == ([2] if stepped["rounds"] == 2 else [2, 3])
    capsys.readouterr()
    before = path.read_bytes()
    for option in ("--rounds", "--max-rounds"):
        assert main(["lut", "validate", str(path), option, "0", "--quiet"]) == 2
        assert f"{option} must be >= 1, got 0" in capsys.readouterr().err and path.read_bytes() == before


@pytest.mark.parametrize("repeatability", [None, 0.8, 0.99])
def test_a_table_that_misses_its_targets_says_what_to_do(repeatability):
    """Whether the machine or the table is at fault: timings that repeat themselves (even vs odd
    visits) at R under the present load would show even a perfect table at only about sqrt(R)."""
    table = build_latency_table(ArchSpace(**TINY_SPACE_KWARGS), resolutions=(32,), **FAST)
    metrics = {"spearman": 0.9, "kendall": 0.8, "mape_percent": 5.0}
    table.validation = {"num_subnets": 30, "calibration_subnets": 30, "raw": metrics, "corrected": metrics,
                        "meets_targets": False, "repeatability": repeatability, "rounds": 3}
    missed = table.summary()
    assert "NOT met" in missed and "'ofa-nni lut validate'" in missed
    assert ("repeat only at Spearman 0.80, so no table can be shown" in missed) == (repeatability == 0.8)
    assert ("more visits per subnet ('--rounds N' to start with, '--max-rounds N' to go on to; 3 now;" in missed) \
        == (repeatability == 0.8)
    assert ("what to do: rebuild the table when the machine is quieter" in missed) == (repeatability != 0.8)
    assert ("a perfect table would validate at about 0.995" in missed) == (repeatability == 0.99)
    assert ("the end-to-end timings repeat at Spearman" in missed) == (repeatability is not None)
    table.validation = {**table.validation, "meets_targets": True}
    assert "what to do" not in table.summary()


@pytest.mark.parametrize("slope, applied", [(0.02, False), (1.2, True), (6.0, False)])
def test_a_correction_far_flatter_or_steeper_than_the_sums_is_not_applied(slope, applied):
    """A line fitted on 3 calibration subnets once had slope 0.021 and was applied, since it lowered
    the held-out MAPE: every subnet then predicted at about one time, and the search found nothing
    under a budget the plain sums allowed. Slopes outside CORRECTION_SCALE_RANGE are recorded, not
    applied; a plausible one still is."""
    space = ArchSpace(**TINY_SPACE_KWARGS)
    table = _synthetic_table(space, (32, 40), lambda spec: 0.1)
    samples = [space.from_indices(row) for row in space.random_indices(10, 0)]
    sums = table.raw_sum(np.stack([space.to_indices(s) for s in samples]))
    mean = float(sums.mean())
    # Every subnet measured on the line, so that the line always lowers the held-out MAPE (to 0).
    measured = slope * sums + max(0.0, 1.0 - slope) * mean
    subnets = [{"arch": space.format(sample), "role": "validation" if i < 6 else "calibration",
                **{f"measured_{name}_ms": float(value) for name in ("min", "median")}}
               for i, (sample, value) in enumerate(zip(samples, measured, strict=True))]
    validation = validate_latency_table(table, reuse={"subnets": subnets, "num_subnets": 6,
                                                      "calibration_subnets": 4, "seed": 0})
    assert table.correction["scale"] == pytest.approx(slope, rel=1e-6)
    assert table.correction["applied"] is applied
    assert validation["corrected"]["mape_percent"] < validation["raw"]["mape_percent"]  # the slope alone decides
    if not applied:
        np.testing.assert_allclose(table(np.stack([space.to_indices(s) for s in samples])), sums)
