"""benchmarks/ps_vs_random_oneshot.py: a RandomOneShot training stopped by SIGTERM is an error.

Lightning catches SIGTERM and ends the fit early; the benchmark once evaluated and saved such a
half-trained supernet as if it were finished (issue 14's Animal-MNIST runs)."""

from __future__ import annotations

import importlib.util
import signal
from pathlib import Path

import pytest
from pytorch_lightning.callbacks import Callback


def _benchmark():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "ps_vs_random_oneshot.py"
    spec = importlib.util.spec_from_file_location("ps_vs_random_oneshot", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _SigtermAtBatch(Callback):
    """Sends this process a real SIGTERM after a given training batch (Lightning's handler is set then)."""

    def __init__(self, batch: int) -> None:
        self.batch = batch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx == self.batch:
            signal.raise_signal(signal.SIGTERM)


@pytest.fixture(scope="module")
def digits_run():
    import torch

    from ofa_nni.app.runner import build_space
    from ofa_nni.data import load_data
    from ofa_nni.training import demo_config

    torch.set_num_threads(1)
    config = demo_config()
    resolution = max(build_space(config, num_classes=2).arch_space.resolutions)
    data = load_data("digits", resolution=resolution, calibration_images=config.data.calibration_images)
    steps_per_epoch = len(data.train) // config.data.batch_size
    return _benchmark(), config, data, steps_per_epoch


def test_random_oneshot_stopped_by_sigterm_raises_instead_of_returning_a_half_trained_supernet(digits_run):
    benchmark, config, data, steps_per_epoch = digits_run
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(benchmark.TrainingInterrupted, match=r"RandomOneShot \(seed 0\)"):
        benchmark._train_random_oneshot(config, data, steps_per_epoch, seed=0, callbacks=[_SigtermAtBatch(1)])
    assert signal.getsignal(signal.SIGTERM) == previous  # Lightning put the handler back


def test_random_oneshot_that_runs_to_the_end_returns_its_planned_steps(digits_run):
    """The completeness check counts steps as Lightning does (one per batch), so a full run passes."""
    benchmark, config, data, steps_per_epoch = digits_run
    _, _, steps = benchmark._train_random_oneshot(config, data, steps_per_epoch, seed=0)
    assert steps == steps_per_epoch
