"""Shared fixtures: small spaces that build and run in milliseconds on a CPU."""

from __future__ import annotations

import os
import sys

import pytest
import torch

from ofa_nni import _nni_compat

_nni_compat.apply()  # the NNI 3.0 workarounds, as the NNI-facing packages apply them

# Tests share two cores with each other's processes; one thread each keeps timings sane.
torch.set_num_threads(int(os.environ.get("OFA_NNI_TEST_THREADS", "1")))


class _CurrentStdout:
    """NNI binds its log handler to the ``sys.stdout`` of import time, which pytest's capture
    closes after a test ("I/O operation on closed file" noise); write to the current one instead."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


def _rebind_nni_stdout_handler() -> None:
    from nni.runtime import log

    handler = log._handlers.get("_stdout_")
    if handler is not None:
        handler.setStream(_CurrentStdout())  # type: ignore[attr-defined]


_rebind_nni_stdout_handler()

TINY_SPACE_KWARGS = dict(
    kernel_sizes=(3, 5),
    expand_ratios=(2, 3),
    depths=(1, 2),
    resolutions=(32, 40),
    base_widths=(8, 8, 16, 24, 32, 48, 64),
    stage_strides=(2, 2, 2),
    stage_activations=("relu", "hswish", "hswish"),
    stage_se=(False, True, True),
    num_classes=4,
)
"""A 3-stage space with every feature of the default one (SE, h-swish, kernel transforms)."""

SMALL_SPACE_KWARGS = dict(
    resolutions=(64, 72, 80, 96),
    base_widths=(16, 16, 24, 32, 48, 64, 80, 128, 256),
    num_classes=10,
)
"""The default 5-stage layout (k{3,5,7}, e{3,4,6}, d{2,3,4}) with narrower widths."""


@pytest.fixture(scope="session")
def postgres_url():
    """SQLAlchemy URL of a database on a throwaway PostgreSQL server on 127.0.0.1 (tests/postgres_server.py);
    skips where no server can be had."""
    from postgres_server import postgres_server

    with postgres_server() as url:
        yield url


@pytest.fixture
def tiny_space():
    from search_spaces import OFAMobileNetV3Space

    torch.manual_seed(0)
    return OFAMobileNetV3Space(**TINY_SPACE_KWARGS)


@pytest.fixture
def small_space():
    from search_spaces import OFAMobileNetV3Space

    torch.manual_seed(0)
    return OFAMobileNetV3Space(**SMALL_SPACE_KWARGS)


def randomize_batchnorm_(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial BN statistics and affine parameters, so slicing mistakes show in the outputs."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(n, generator=generator) * 0.1)


def randomize_transforms_(model: torch.nn.Module, seed: int = 0) -> None:
    """Kernel transformation matrices away from identity (identity would hide a wrong chain)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if ".transform_" in name:
                param.add_(torch.randn(param.shape, generator=generator) * 0.1)

TINY_PROXYLESS_KWARGS = dict(
    kernel_sizes=(3, 5),
    expand_ratios=(2, 3),
    depths=(1, 2),
    resolutions=(32, 40),
    base_widths=(8, 8, 16, 24, 32, 48, 64),
    stage_strides=(2, 2, 2, 1),
    width_mult=1.0,
    num_classes=4,
)
"""A ProxylessNAS space with every feature of the released one (3 elastic stages, the single-block
last stage, relu6, kernel transforms, feature mix before the pool), small enough for a CPU."""


@pytest.fixture
def tiny_proxyless():
    from search_spaces import OFAProxylessNASSpace

    torch.manual_seed(0)
    return OFAProxylessNASSpace(**TINY_PROXYLESS_KWARGS)


TINY_RESNET_KWARGS = dict(depths=(0, 1), expand_ratios=(0.25, 0.5), width_mults=(0.5, 1.0), resolutions=(28, 32),
                          base_depths=(1, 1), base_widths=(16, 32, 64), stage_strides=(1, 2), num_classes=10)
"""A CPU-sized OFA-ResNet space: two stages of 1 + {0, 1} bottlenecks, two choices per dimension."""


@pytest.fixture
def tiny_resnet():
    from search_spaces import OFAResNetSpace

    torch.manual_seed(0)
    return OFAResNetSpace(**TINY_RESNET_KWARGS)


@pytest.fixture
def small_filesystem(tmp_path):
    """A folder on its own 256 KiB tmpfs, to fill up or to remount read-only (``mount``: needs root,
    skipped elsewhere). Yields ``(folder, remount)``; ``remount("ro")`` makes it read-only."""
    import subprocess

    folder = tmp_path / "small-fs"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.decode().strip()}")

    def remount(options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=True)

    try:
        yield folder, remount
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill_filesystem(folder) -> None:
    """Fill the file system of ``folder`` up to the last block (a file named ``.filler``)."""
    filler = open(os.path.join(folder, ".filler"), "wb", buffering=0)  # noqa: SIM115
    try:
        while True:
            filler.write(b"\0" * 4096)
    except OSError:
        pass
    finally:
        filler.close()


def special_output_paths(folder):
    """Output paths an atomic writer must refuse, each with the words its error gives: a symlink to
    a file that must keep its content (``folder/elsewhere.json``, holding ``keep``), a FIFO, a
    character device and a directory. Shared by the writer's test and the CLI's bad-input case."""
    from pathlib import Path

    elsewhere = folder / "elsewhere.json"
    elsewhere.write_text("keep")
    link = folder / "link.json"
    link.symlink_to(elsewhere)
    fifo = folder / "fifo.json"
    os.mkfifo(fifo)
    directory = folder / "folder.json"
    directory.mkdir()
    return {link: "is a symbolic link", fifo: "is not a regular file (a FIFO, device or socket)",
            Path("/dev/null"): "is not a regular file", directory: "is a directory"}
