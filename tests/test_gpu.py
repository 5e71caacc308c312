"""GPU paths, run wherever CUDA is present (skipped on CPU-only machines, with the reason shown):
latency tables on CUDA with both backends, validated end to end, and progressive shrinking on the
GPU with mixed precision. The CPU suite cannot reach these branches; on a GPU machine run
``python -m pytest tests/test_gpu.py -rA``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_SPACE_KWARGS

from ofa_nni.arch import ArchSpace
from ofa_nni.latency import LatencyTable, build_latency_table, validate_latency_table
from search_spaces import OFAMobileNetV3Space

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)"),
]


def check_latency_table(device: str, backend: str, tmp_path: Path) -> None:
    """Build, save, reload and validate a small table on ``device`` (also callable with "cpu")."""
    space = ArchSpace(**TINY_SPACE_KWARGS)
    table = build_latency_table(space, backend=backend, device=device, batch_size=8, warmup=3, repeats=5, rounds=2,
                                show_progress=False)
    assert table.metadata["device"]["type"] == device
    if device == "cuda":
        assert table.metadata["device"]["name"] == torch.cuda.get_device_name()
    rows = space.random_indices(16, np.random.default_rng(0))
    predicted = table.evaluate(rows)
    assert predicted.shape == (16,) and np.isfinite(predicted).all() and (predicted > 0).all()
    path = tmp_path / f"lut-{device}-{backend}.json"
    table.save(path)
    assert np.allclose(LatencyTable.load(path).evaluate(rows), predicted)
    supernet = OFAMobileNetV3Space(**TINY_SPACE_KWARGS)
    report = validate_latency_table(table, supernet.freeze, num_subnets=8, calibration_subnets=8, show_progress=False)
    assert report["num_subnets"] == 8 and np.isfinite(report["raw"]["mape_percent"])


def check_training(accelerator: str, precision: str, tmp_path: Path) -> None:
    """One epoch per progressive-shrinking phase (``short`` recipe) on ``accelerator``."""
    from ofa_nni.app.runner import train
    from search_spaces import load_supernet

    space = {key: list(value) if isinstance(value, tuple) else value for key, value in TINY_SPACE_KWARGS.items()}
    del space["num_classes"]  # the data set's
    config = {
        "seed": 0,
        "space": {"preset": "cpu", **space},
        "data": {"kind": "digits", "batch_size": 32, "calibration_images": 64},
        "strategy": {"name": "progressive_shrinking", "recipe": "short", "epochs_factor": 0.001},
        "validation": {"random_subnets": 1, "calibration_batches": 1},
        "trainer": {"accelerator": accelerator, "devices": 1, "precision": precision, "progress_bar": False,
                    "limit_train_batches": 3, "limit_val_batches": 1},
    }
    result = train(config, run_dir=tmp_path / f"run-{accelerator}")
    assert [phase["name"] for phase in result.phases] == ["full", "kernel", "depth1", "depth2", "expand1", "expand2"]
    assert all(np.isfinite(phase["val_acc_smallest"]) for phase in result.phases)
    supernet = load_supernet(result.supernet_path)
    assert all(p.device.type == "cpu" for p in supernet.parameters())  # the saved supernet loads anywhere


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_latency_table_on_cuda_is_recorded_and_validated(backend, tmp_path):
    import onnxruntime

    if backend == "onnxruntime" and "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime has no CUDAExecutionProvider here (install onnxruntime-gpu)")
    check_latency_table("cuda", backend, tmp_path)


def test_progressive_shrinking_trains_on_the_gpu_with_mixed_precision(tmp_path):
    check_training("gpu", "16-mixed", tmp_path)
