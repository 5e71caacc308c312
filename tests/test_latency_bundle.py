"""Latency tables measured without PyTorch: ``ofa-nni lut bundle`` writes ONNX ops and subnets plus
a one-file runner; the runner times them with numpy and onnxruntime alone; ``ofa-nni lut import``
turns its results into a table. The slow test runs the runner in a fresh virtual environment
holding only numpy and onnxruntime and compares the imported table with one built directly
through ONNX Runtime on this machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv

import numpy as np
import pytest
from conftest import TINY_SPACE_KWARGS
from scipy import stats

from ofa_nni.app.cli import main
from ofa_nni.arch import ArchSpace
from ofa_nni.latency import LatencyTable, build_latency_table
from ofa_nni.latency.bundle import RUNNER_NAME, import_results, write_bundle
from ofa_nni.latency.specs import specs_by_key

pytest.importorskip("onnxruntime")
RUN = ["--warmup", "1", "--repeats", "3", "--rounds", "2", "--quiet"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from search_spaces import OFAMobileNetV3Space

    supernet = OFAMobileNetV3Space(**TINY_SPACE_KWARGS)
    out = tmp_path_factory.mktemp("bundle") / "bundle"
    write_bundle(supernet.arch_space, out, supernet.freeze, validation_subnets=5, calibration_subnets=3)
    return out


def test_bundle_holds_every_op_shape_and_a_runner(bundle):
    manifest = json.loads((bundle / "manifest.json").read_text())
    arch = ArchSpace.from_signature(manifest["space"])
    assert sorted(e["key"] for e in manifest["entries"]) == sorted(specs_by_key(arch, arch.resolutions))
    assert all((bundle / e["model"]).is_file() for e in manifest["entries"])
    assert [s["role"] for s in manifest["subnets"]] == ["validation"] * 5 + ["calibration"] * 3
    assert all((bundle / s["model"]).is_file() for s in manifest["subnets"])
    runner = (bundle / RUNNER_NAME).read_text()
    imports = {line.split()[1] for line in runner.splitlines() if line.startswith(("import ", "from "))}
    assert imports <= {"__future__", "argparse", "json", "os", "platform", "sys", "time", "pathlib", "numpy",
                       "onnxruntime"}, imports


def test_runner_needs_neither_torch_nor_ofa_nni_and_its_results_import(bundle, tmp_path, capsys):
    results = tmp_path / "results.json"
    code = ("import runpy, sys\n"
            f"sys.argv = ['run_latency.py', '--out', {str(results)!r}, *{RUN!r}]\n"
            "try:\n"
            f"    runpy.run_path({str(bundle / RUNNER_NAME)!r}, run_name='__main__')\n"
            "except SystemExit as stop:\n"
            "    assert not stop.code, stop.code\n"
            "print(sorted(m for m in ('torch', 'ofa_nni', 'scipy') if m in sys.modules))\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900,
                         cwd=tmp_path, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "[]"
    data = json.loads(results.read_text())
    assert data["device"]["providers_used"] == ["CPUExecutionProvider"]
    assert main(["lut", "import", str(results), "--out", str(tmp_path / "lut.json")]) == 0
    assert "wrote" in capsys.readouterr().out
    table = LatencyTable.load(tmp_path / "lut.json")
    assert table.metadata["backend"] == "onnxruntime" and table.metadata["source"]["runner"] == RUNNER_NAME
    assert table.validation is not None and table.validation["num_subnets"] == 5
    assert table.validation["calibration_subnets"] == 3
    assert table.protocol["repeats"] == 3 and table.protocol["statistic"] == "min"
    # Two visits per subnet: the runner writes each subnet's halves, the import says how well they repeat.
    assert all(len(subnet["measured_min_halves_ms"]) == 2 for subnet in data["subnets"])
    assert -1.0 <= table.validation["repeatability"] <= 1.0
    assert np.all(table(table.arch_space.random_indices(20, 0)) > 0)
    # Damaged results: one clear error naming the file.
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({**data, "subnets": {"not": "a list"}}))
    with pytest.raises(ValueError, match=f"{broken}: subnets must be a list"):
        import_results(broken)


def _run_runner(bundle, results, cwd):
    code = ("import runpy, sys\n"
            f"sys.argv = ['run_latency.py', '--out', {str(results)!r}, *{RUN!r}]\n"
            f"runpy.run_path({str(bundle / RUNNER_NAME)!r}, run_name='__main__')\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900, cwd=cwd,
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("space", ["ofa-proxyless", "ofa-resnet50"])
def test_bundle_runner_and_import_of_the_other_spaces(space, tmp_path, capsys):
    """The whole bundle round trip for the spaces beyond OFA-MobileNetV3: the import rebuilt the table's
    space as an OFA-MobileNetV3-style space and crashed on OFA-ResNet50's (TypeError: width_mults)."""
    bundle, results = tmp_path / "bundle", tmp_path / "results.json"
    assert main(["lut", "bundle", "--space", space, "--preset", "cpu", "--num-classes", "10", "--measure-every",
                 "100", "--validate", "4", "--calibration-subnets", "3", "--out", str(bundle)]) == 0
    _run_runner(bundle, results, tmp_path)
    assert main(["lut", "import", str(results), "--out", str(tmp_path / "lut.json")]) == 0
    assert "wrote" in capsys.readouterr().out
    table = LatencyTable.load(tmp_path / "lut.json")
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert table.arch_space.signature() == manifest["space"]
    assert table.validation is not None and table.validation["num_subnets"] == 4
    assert np.all(table(table.arch_space.random_indices(20, 0)) > 0)


@pytest.mark.slow
def test_runner_in_a_fresh_venv_agrees_with_a_table_built_through_onnxruntime(bundle, tmp_path):
    """The runner in a virtual environment holding only numpy and onnxruntime (pip, ~1-3 min here:
    hence slow); its imported table ranks subnets as a table built directly with ONNX Runtime
    on this machine does (Spearman >= 0.95 over 200 random subnets)."""
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=True)
    python = environment / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "numpy", "onnxruntime"],
                             capture_output=True, text=True, timeout=900)
    if install.returncode != 0:
        pytest.skip(f"pip cannot install numpy and onnxruntime here: {install.stderr.strip()[-300:]}")
    absent = subprocess.run([str(python), "-c", "import torch"], capture_output=True, text=True)
    assert absent.returncode != 0 and "No module named 'torch'" in absent.stderr
    results = tmp_path / "results.json"
    # Both at their default protocol (the runner writes the library's defaults out: it cannot import them).
    run = subprocess.run([str(python), str(bundle / RUNNER_NAME), "--out", str(results), "--quiet", "--threads", "1"],
                         capture_output=True, text=True, timeout=1800, cwd=tmp_path, env={"PATH": os.environ["PATH"]})
    assert run.returncode == 0, run.stderr
    imported = import_results(results)
    assert imported.protocol == {**imported.protocol, "warmup": 3, "repeats": 30, "rounds": 3}
    direct = build_latency_table(imported.arch_space, backend="onnxruntime", num_threads=1, show_progress=False)
    population = imported.arch_space.random_indices(200, 1)
    rho = stats.spearmanr(imported.raw_sum(population), direct.raw_sum(population)).statistic
    assert rho >= 0.95, rho


def test_bundle_command_takes_the_space_like_build(tmp_path, capsys):
    """``ofa-nni lut bundle --space ...`` used to crash (AttributeError: no ``space`` argument): it
    takes the space as ``lut build`` does, by name and preset (either alone) or from a supernet."""
    from ofa_nni.app.cli import build_parser
    from ofa_nni.app.commands.lut import _supernet
    from search_spaces import OFAMobileNetV3Space

    for command in ("build", "bundle"):  # resolving the space only: a whole bundle of a preset takes minutes
        for args, expected in [
            (["--space", "ofa-proxyless", "--preset", "cpu", "--num-classes", "10"], ("proxyless", 32, 10)),
            (["--space", "ofa-proxyless"], ("proxyless", 224, 1000)),  # the released preset
            (["--preset", "cpu"], ("mbv3", 32, 1000)),  # the default space
        ]:
            parsed = build_parser().parse_args(["lut", command, *args, "--out", str(tmp_path / "x")])
            space = _supernet(parsed).arch_space
            assert (space.layout, max(space.resolutions), space.num_classes) == expected, (command, args)

    supernet = OFAMobileNetV3Space(**TINY_SPACE_KWARGS).save(tmp_path / "supernet.pt")
    assert main(["lut", "bundle", "--supernet", str(supernet), "--resolutions", "32", "--validate", "3",
                 "--calibration-subnets", "2", "--out", str(tmp_path / "tiny")]) == 0
    written = ArchSpace.from_signature(json.loads((tmp_path / "tiny" / "manifest.json").read_text())["space"])
    assert written == OFAMobileNetV3Space(**TINY_SPACE_KWARGS).arch_space
    capsys.readouterr()
    for args, message in [
        ([], "give --supernet FILE, or --space NAME and/or --preset PRESET"),
        (["--supernet", str(supernet), "--preset", "cpu"], "with --supernet the space is the supernet's"),
        (["--space", "ofa-mobilenetv3"], "space name 'ofa-mobilenetv3' is not known; allowed: ['ofa-mbv3'"),
    ]:
        assert main(["lut", "bundle", *args, "--out", str(tmp_path / "refused")]) == 2
        assert message in capsys.readouterr().err
        assert not (tmp_path / "refused").exists()
