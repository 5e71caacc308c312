"""Reference-op normalisation of latency tables (issue 17): the arithmetic, the setting in the table
file and its progress file, the refusals, and real (tiny) builds, validations and deployment checks
with it. Its *quality* under load is measured in benchmarks/bench_latency_table.py, not asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import TINY_SPACE_KWARGS

from ofa_nni.app.cli import main
from ofa_nni.arch import ArchSpace
from ofa_nni.errors import InvalidInputError
from ofa_nni.latency import LatencyTable, build_latency_table, check_deployments, validate_latency_table
from ofa_nni.latency.bundle import RUNNER_NAME, import_results, write_bundle
from ofa_nni.latency.reference import normalise_visits, reference_factors, reference_spec
from ofa_nni.latency.specs import specs_by_key

FAST = dict(warmup=1, repeats=2, rounds=1, num_threads=1, show_progress=False)


def test_a_slow_phase_that_slows_entries_and_reference_alike_scales_out():
    """Seconds 0-10 quiet, 10-20 everything twice as slow, 20-30 quiet again: normalised, the
    entries visited in the slow phase come out at their quiet timings."""
    reference_at = [0.0, 5.0, 10.5, 15.0, 19.5, 25.0, 30.0]
    reference_ms = [1.0, 1.0, 2.0, 2.0, 2.0, 1.0, 1.0]
    quiet = {"a": [3.0, 3.2], "b": [7.0, 7.5]}
    timings = {"a": quiet["a"] + [2 * t for t in quiet["a"]] + quiet["a"],  # 3 visits of 2 repeats
               "b": [2 * t for t in quiet["b"]] + quiet["b"]}
    visit_at = {"a": [2.0, 12.0, 27.0], "b": [17.0, 22.0 + 3.0]}
    factors = reference_factors([2.0, 12.0, 17.0, 27.0], reference_at, reference_ms)
    np.testing.assert_allclose(factors, [1.0, 2.0, 2.0, 1.0])
    normalised = normalise_visits(timings, visit_at, 2, reference_at, reference_ms)
    np.testing.assert_allclose(normalised["a"], quiet["a"] * 3)
    np.testing.assert_allclose(normalised["b"], quiet["b"] * 2)
    # Between two reference visits the estimate is interpolated in time; the baseline is a low
    # quantile of the reference's timings, so a steady machine is left as it is.
    np.testing.assert_allclose(reference_factors([7.75], [5.0, 10.5], [1.0, 2.0]), [1.5 / 1.0])
    np.testing.assert_allclose(normalise_visits({"c": [4.0]}, {"c": [1.0]}, 1, [0.0, 2.0], [3.0, 3.0])["c"], [4.0])


def test_normalisation_arguments_are_checked():
    with pytest.raises(InvalidInputError, match="no reference timings"):
        reference_factors([1.0], [], [])
    with pytest.raises(InvalidInputError, match=r"timings\.a has 3 timings for 2 visits of 2 repeats"):
        normalise_visits({"a": [1.0, 2.0, 3.0]}, {"a": [0.0, 1.0]}, 2, [0.0], [1.0])


def test_the_reference_op_is_a_mid_sized_block_of_the_space():
    space = ArchSpace(**TINY_SPACE_KWARGS)
    specs = specs_by_key(space, (32,))
    spec = reference_spec(specs)
    assert spec.kind == "mbconv" and spec.key in specs
    assert reference_spec(dict(reversed(list(specs.items())))) == spec  # the same whatever the order


def test_reference_setting_round_trips_through_the_table_file_and_old_files_read(tmp_path):
    space = ArchSpace(**TINY_SPACE_KWARGS)
    table = build_latency_table(space, resolutions=(32,), normalise="reference", **FAST)
    settings, reference = table.metadata["settings"], table.metadata["reference"]
    assert settings["normalise"] == "reference" and table.protocol["normalise"] == "reference"
    assert reference["op"] in table.entries and reference["op"] == table.protocol["reference_op"]
    assert reference["baseline_ms"] > 0 and reference["visits"] >= 2
    assert 0 < reference["factor_min"] <= reference["factor_max"]
    assert all(entry["min_ms"] > 0 and entry["samples"] == 2 for entry in table.entries.values())
    path = tmp_path / "lut.json"
    table.save(path)
    loaded = LatencyTable.load(path)
    assert loaded.protocol == table.protocol and loaded.metadata["reference"] == reference
    assert "normalised by the reference op" in loaded.summary()
    # A file written before the setting existed reads as "none".
    data = json.loads(path.read_text())
    del data["settings"]["normalise"], data["reference"]
    path.write_text(json.dumps(data))
    old = LatencyTable.load(path)
    assert old.protocol["normalise"] == "none" and old.protocol["reference_op"] is None
    plain = build_latency_table(space, resolutions=(32,), **FAST)
    assert plain.metadata["settings"]["normalise"] == "none" and "reference" not in plain.metadata


def test_bad_normalise_values_are_refused_in_one_line(tmp_path, capsys):
    space = ArchSpace(**TINY_SPACE_KWARGS)
    with pytest.raises(InvalidInputError, match="unknown normalise 'ref'; allowed: none, reference"):
        build_latency_table(space, normalise="ref")
    table = build_latency_table(space, resolutions=(32,), normalise="reference", **FAST)
    path = tmp_path / "lut.json"
    for change, message in (
            (lambda d: d["settings"].update(normalise="median"), r"settings\.normalise is 'median'; allowed: none, "
                                                                  "reference"),
            (lambda d: d.pop("reference"), "reference must be an object with op"),
            (lambda d: d["reference"].update(op="mbconv_nothing_h32"), "reference.op 'mbconv_nothing_h32' is not an "
                                                                       "entry of the table"),
            (lambda d: d["reference"].update(baseline_ms="1"), r"reference\.baseline_ms is '1'")):
        data = json.loads(json.dumps(table.to_dict()))  # a copy: to_dict shares the table's objects
        change(data)
        path.write_text(json.dumps(data))
        with pytest.raises(InvalidInputError, match=message) as raised:
            LatencyTable.load(path)
        assert "\n" not in str(raised.value)
    with pytest.raises(SystemExit) as exited:  # argparse's own refusal of a value not among the choices
        main(["lut", "build", "--preset", "cpu", "--normalise", "sometimes", "--out", str(tmp_path / "x.json")])
    assert exited.value.code == 2
    assert "argument --normalise: invalid choice: 'sometimes'" in capsys.readouterr().err


def test_reference_progress_resumes_and_old_progress_files_stay_resumable(tmp_path):
    space = ArchSpace(**TINY_SPACE_KWARGS)
    progress = tmp_path / "lut.json.partial.json"
    first = build_latency_table(space, resolutions=(32,), normalise="reference", progress_path=progress,
                                **{**FAST, "rounds": 2})
    saved = json.loads(progress.read_text())
    assert saved["settings"]["normalise"] == "reference"
    log = saved["reference"]
    assert set(log["visit_at"]) == set(first.entries) and all(len(v) == 2 for v in log["visit_at"].values())
    assert len(log["at"]) == len(log["ms"]) >= 2
    again = build_latency_table(space, resolutions=(32,), normalise="reference", progress_path=progress,
                                **{**FAST, "rounds": 2})
    assert again.entries == first.entries  # nothing measured again: the same normalised timings
    key = next(iter(log["visit_at"]))
    saved["reference"]["visit_at"][key] = saved["reference"]["visit_at"][key][:1]
    progress.write_text(json.dumps(saved))
    with pytest.raises(InvalidInputError, match=f"reference.visit_at.{key} has 1 visit time"):
        build_latency_table(space, resolutions=(32,), normalise="reference", progress_path=progress,
                            **{**FAST, "rounds": 2})
    with pytest.raises(InvalidInputError, match="normalise: 'reference' -> 'none'"):
        build_latency_table(space, resolutions=(32,), progress_path=progress, **{**FAST, "rounds": 2})
    # A progress file written before the setting existed is one of a build without normalisation.
    plain = tmp_path / "plain.partial.json"
    build_latency_table(space, resolutions=(32,), progress_path=plain, **FAST)
    old = json.loads(plain.read_text())
    del old["settings"]["normalise"]
    plain.write_text(json.dumps(old))
    assert build_latency_table(space, resolutions=(32,), progress_path=plain, **FAST).entries


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_reference_tables_validate_and_check_deployments_with_their_protocol(tiny_space, backend):
    space = tiny_space.arch_space
    table = build_latency_table(space, backend=backend, normalise="reference", **FAST)
    validation = validate_latency_table(table, tiny_space.freeze, num_subnets=3, calibration_subnets=2,
                                        show_progress=False)
    measured = np.array([s["measured_ms"] for s in validation["subnets"]])
    assert np.isfinite(validation["raw"]["spearman"]) and (measured > 0).all()
    assert validation["reference"]["op"] == table.metadata["reference"]["op"]
    assert validation["reference"]["visits"] >= 2
    sample = space.max_sample()
    check = check_deployments(table, [(tiny_space.freeze(sample), sample["resolution"])], names=["large"],
                              targets_ms=[1e-6], retime=3)
    assert check["protocol"]["normalise"] == "reference" and check["subnets"][0]["over_target"]
    assert check["table_entries_retimed"]["ratio"] > 0


def test_cli_builds_a_reference_normalised_table(tmp_path, capsys):
    out = tmp_path / "lut.json"
    code = main(["lut", "build", "--preset", "cpu", "--num-classes", "10", "--resolutions", "24",
                 "--warmup", "1", "--repeats", "2", "--rounds", "1", "--threads", "1", "--normalise", "reference",
                 "--validate", "3", "--calibration-subnets", "2", "--quiet", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "normalised by the reference op" in printed
    table = LatencyTable.load(out)
    assert table.protocol["normalise"] == "reference" and table.validation is not None
    assert main(["lut", "validate", str(out), "--validate", "3", "--calibration-subnets", "2", "--quiet"]) == 0
    assert LatencyTable.load(out).validation["reference"]["op"] == table.protocol["reference_op"]  # type: ignore[index]


def test_bundle_runner_times_the_reference_and_the_import_normalises(tmp_path):
    """The single-file runner (numpy + onnxruntime only) keeps raw visits with --normalise reference;
    'ofa-nni lut import' normalises them into a table of that protocol; a bundle that names no
    reference op is refused by the runner in one line."""
    pytest.importorskip("onnxruntime")
    from search_spaces import OFAMobileNetV3Space

    supernet = OFAMobileNetV3Space(**{**TINY_SPACE_KWARGS, "resolutions": (32,)})
    bundle = tmp_path / "bundle"
    manifest = write_bundle(supernet.arch_space, bundle, supernet.freeze, validation_subnets=3,
                            calibration_subnets=2)
    assert manifest["reference"]["op"] == reference_spec(specs_by_key(supernet.arch_space, (32,))).key
    results = tmp_path / "results.json"

    def run_runner(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(bundle / RUNNER_NAME), "--out", str(results), "--warmup", "1",
                               "--repeats", "2", "--rounds", "2", "--quiet", *extra], capture_output=True, text=True,
                              timeout=600, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})

    run = run_runner("--normalise", "reference")
    assert run.returncode == 0, run.stderr
    data = json.loads(results.read_text())
    assert data["settings"]["normalise"] == "reference" and data["reference"]["op"] == manifest["reference"]["op"]
    assert all(len(visit["at"]) == 2 and len(visit["timings"]) == 4 for visit in data["visits"].values())
    table = import_results(results)
    assert table.protocol["normalise"] == "reference" and table.protocol["reference_op"] == manifest["reference"]["op"]
    assert table.metadata["reference"]["visits"] >= 2 and table.validation is not None
    assert table.validation["reference"]["op"] == manifest["reference"]["op"]
    assert all(entry["samples"] == 4 and entry["min_ms"] > 0 for entry in table.entries.values())
    # The halves of the normalised visits, for how well the timings repeat.
    assert table.validation["repeatability"] is not None
    assert all(len(subnet["measured_min_halves_ms"]) == 2 for subnet in table.validation["subnets"])
    # Without the option, the results hold no raw visits and import as before.
    assert run_runner().returncode == 0
    plain = json.loads(results.read_text())
    assert "visits" not in plain and import_results(results).protocol["normalise"] == "none"
    # A bundle written before the reference op existed.
    del manifest["reference"]
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    refused = run_runner("--normalise", "reference")
    assert refused.returncode == 2 and "this bundle names no reference op" in refused.stderr
