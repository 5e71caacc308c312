"""The NNI 3.0 compat patches: each one still needed (unpatched behaviour fails) and working."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ofa_nni._nni_compat as compat


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-W", "default", "-c", code], capture_output=True, text=True, timeout=120)


def test_import_warnings_are_still_emitted_by_nni_and_filtered_by_us():
    needed = _python("import nni.nas.nn.pytorch")
    assert needed.returncode == 0, needed.stderr
    assert "is found to be not a nn.Module" in needed.stderr  # NNI 3.0 still warns on today's torch
    patched = _python("import ofa_nni; import nni.nas.nn.pytorch; import search_spaces")
    assert patched.returncode == 0, patched.stderr
    assert "is found to be not a nn.Module" not in patched.stderr


@pytest.fixture(scope="module")
def nni_mobilenet_supernet():
    from nni.nas.hub.pytorch import MobileNetV3Space
    from nni.nas.strategy import RandomOneShot

    torch.manual_seed(0)
    space = MobileNetV3Space(num_labels=10)
    return RandomOneShot().mutate_model(space)


def test_mixed_operation_freeze_patch_is_needed_and_works(nni_mobilenet_supernet):
    from nni.nas.oneshot.pytorch.supermodule.operation import MixedConv2d

    space = nni_mobilenet_supernet
    sample = {label: mutable.default() for label, mutable in space.simplify().items()}
    conv = next(m for m in space.modules() if isinstance(m, MixedConv2d) and m.bias is None)
    with pytest.raises(RuntimeError, match='Unexpected key.*"bias"'):
        compat.original_mixed_operation_freeze(conv, sample)  # NNI 3.0's own freeze still fails
    frozen = conv.freeze(sample)  # patched
    out_channels, in_channels = frozen.weight.shape[:2]
    kernel = frozen.weight.shape[-1]
    start = (conv.weight.shape[-1] - kernel) // 2
    assert frozen.bias is None
    assert torch.equal(
        frozen.weight,
        conv.weight[:out_channels, :in_channels, start : start + kernel, start : start + kernel],
    )


def test_whole_nni_space_freezes_with_the_patch(nni_mobilenet_supernet):
    space = nni_mobilenet_supernet
    sample = {label: mutable.default() for label, mutable in space.simplify().items()}
    model = space.freeze(sample).eval()
    assert model(torch.randn(1, 3, 224, 224)).shape == (1, 10)


def test_setuptools_pin_is_needed_and_works():
    import nni

    nnictl_source = Path(nni.__file__).parent / "tools" / "nnictl" / "nnictl.py"
    assert "import pkg_resources" in nnictl_source.read_text()  # why setuptools<81 is pinned
    result = subprocess.run(
        [sys.executable, "-m", "nni.tools.nnictl.nnictl", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "create" in result.stdout


def test_apply_is_idempotent():
    from nni.nas.oneshot.pytorch.supermodule.operation import MixedOperation

    compat.apply()
    compat.apply()
    assert MixedOperation.freeze is compat._mixed_operation_freeze
    assert compat.original_mixed_operation_freeze is not compat._mixed_operation_freeze


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _canonicalize_sequential_config() -> list[str]:
    from nni.nas.experiment.config import NasExperimentConfig

    logger = logging.getLogger(compat.NAS_CONFIG_LOGGER)
    handler = _Collect()
    logger.addHandler(handler)
    try:
        # NasExperiment canonicalises its config again and again; from the second time on, NNI
        # sees the training service it set itself.
        NasExperimentConfig("sequential", "raw").canonical_copy().canonical_copy()
    finally:
        logger.removeHandler(handler)
    return handler.messages


def test_training_service_warning_is_still_emitted_and_filtered():
    logger = logging.getLogger(compat.NAS_CONFIG_LOGGER)
    logger.removeFilter(compat.TRAINING_SERVICE_FILTER)
    try:
        assert compat.TRAINING_SERVICE_WARNING in _canonicalize_sequential_config()
    finally:
        logger.addFilter(compat.TRAINING_SERVICE_FILTER)
    assert compat.TRAINING_SERVICE_WARNING not in _canonicalize_sequential_config()


def test_strategy_import_order_workaround_is_needed_and_works():
    oneshot_first = (
        "import warnings; warnings.simplefilter('ignore')\n"
        "import nni.nas.oneshot.pytorch.strategy\n"
        "from nni.nas.strategy import RandomOneShot\n"
        "print(type(RandomOneShot()).__name__)\n"
    )
    needed = _python(oneshot_first)
    assert needed.stdout.strip() == "ImportFailedStrategy", needed.stderr  # NNI's silent import cycle
    works = _python("import ofa_nni\n" + oneshot_first)
    assert works.stdout.strip() == "RandomOneShot", works.stderr
