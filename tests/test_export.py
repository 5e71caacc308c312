"""Export of frozen subnets to TorchScript and ONNX, checked numerically."""

from __future__ import annotations

import onnx
import pytest
import torch
from conftest import randomize_batchnorm_

from ofa_nni.export import ExportMismatchError, export_subnet


@pytest.fixture
def subnet(tiny_space):
    randomize_batchnorm_(tiny_space)
    return tiny_space.freeze(tiny_space.random_sample(4))


def test_exports_match_pytorch(subnet, tmp_path):
    results = export_subnet(subnet, tmp_path, name="net")
    assert [r.format for r in results] == ["torchscript", "onnx"]
    for result in results:
        assert result.path.exists() and result.max_abs_diff <= 1e-4
    onnx.checker.check_model(str(tmp_path / "net.onnx"))
    graph_input = onnx.load(str(tmp_path / "net.onnx")).graph.input[0]
    dims = [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim]
    assert dims == ["batch", 3, subnet.resolution, subnet.resolution]
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no half-written files


def test_exported_torchscript_runs_other_batch_sizes(subnet, tmp_path):
    (result,) = export_subnet(subnet, tmp_path, formats=["torchscript"])
    model = torch.jit.load(str(result.path))
    images = torch.randn(5, 3, subnet.resolution, subnet.resolution)
    assert torch.allclose(model(images), subnet.eval()(images), atol=1e-5)


def test_mismatch_is_refused_and_the_file_removed(subnet, tmp_path):
    # ONNX Runtime's kernels round differently from PyTorch's (~1e-7): a zero tolerance refuses it.
    with pytest.raises(ExportMismatchError, match=r"onnx export of r\d+_.* differs from PyTorch by .* > atol 0"):
        export_subnet(subnet, tmp_path, formats=["onnx"], atol=0.0)
    assert not (tmp_path / "subnet.onnx").exists()


def test_bad_arguments(subnet, tmp_path, tiny_space):
    with pytest.raises(ValueError, match=r"unknown export format.*'tflite'.*allowed: \['torchscript', 'onnx'\]"):
        export_subnet(subnet, tmp_path, formats=["tflite"])
    with pytest.raises(ValueError, match="needs a frozen subnet"):
        export_subnet(tiny_space, tmp_path)
    with pytest.raises(ValueError, match="check_images must have shape"):
        export_subnet(subnet, tmp_path, check_images=torch.randn(2, 3, 8, 8))
