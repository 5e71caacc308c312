"""Export frozen subnets to TorchScript and ONNX, each checked numerically against PyTorch.

Exported models take images at the subnet's own resolution (``subnet.resolution``), with a
dynamic batch dimension in ONNX. Files are written atomically: a file that exists is complete. Each
is serialized in memory and then written by Python: torch's own file writers abort the process
(SIGABRT) on a full disk, where a Python write raises a clear ``OutputError``.
"""

from __future__ import annotations

import dataclasses
import io
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ofa_nni._artifacts import atomic_write_bytes
from ofa_nni.errors import InvalidInputError
from ofa_nni.layers import MobileNetV3Subnet
from ofa_nni.resnet_layers import ResNetSubnet

__all__ = ["ExportedModel", "ExportMismatchError", "export_subnet", "EXPORT_FORMATS"]

EXPORT_FORMATS = ("torchscript", "onnx")


class ExportMismatchError(InvalidInputError):
    """An exported model's outputs differ from the PyTorch subnet's by more than the tolerance."""


@dataclasses.dataclass(frozen=True)
class ExportedModel:
    """One exported file and how closely it reproduces the PyTorch subnet."""

    format: str
    path: Path
    max_abs_diff: float


def _export_torchscript(subnet: MobileNetV3Subnet | ResNetSubnet, example: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings():
        # The resize branch is traced away: exported models expect their own resolution.
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(subnet, example)
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer)
    atomic_write_bytes(path, buffer.getbuffer())


def _export_onnx(subnet: MobileNetV3Subnet | ResNetSubnet, example: torch.Tensor, path: Path, opset: int) -> None:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            subnet,
            (example,),
            buffer,  # type: ignore[arg-type]  # the TorchScript-based exporter writes to a file object too
            dynamo=False,  # the TorchScript-based exporter needs no extra package (onnxscript)
            input_names=["images"],
            output_names=["logits"],
            dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=opset,
        )
    atomic_write_bytes(path, buffer.getbuffer())


def _run_torchscript(path: Path, images: torch.Tensor) -> np.ndarray:
    model = torch.jit.load(str(path))
    with torch.no_grad():
        return model(images).numpy()


def _run_onnx(path: Path, images: torch.Tensor) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"images": images.numpy()})[0]


def export_subnet(
    subnet: MobileNetV3Subnet | ResNetSubnet,
    directory: str | os.PathLike[str],
    *,
    name: str = "subnet",
    formats: Sequence[str] = EXPORT_FORMATS,
    check_images: torch.Tensor | None = None,
    atol: float = 1e-4,
    opset: int = 17,
) -> list[ExportedModel]:
    """Export ``subnet`` (from ``space.freeze``) to ``directory/<name>.pt`` and/or ``<name>.onnx``.

    Each file is loaded back (TorchScript with ``torch.jit.load``, ONNX with ONNX Runtime) and run on
    ``check_images`` (default: a seeded random batch of 3 at the subnet's resolution, a batch size
    other than the traced one, which also checks the dynamic batch axis); the largest absolute
    difference to the PyTorch outputs is returned, and above ``atol`` the export is refused
    (:class:`ExportMismatchError`, the file removed).
    """
    unknown = [f for f in formats if f not in EXPORT_FORMATS]
    if unknown or not formats:
        raise InvalidInputError(f"unknown export format(s) {unknown or list(formats)}; allowed: {list(EXPORT_FORMATS)}")
    if not isinstance(subnet, (MobileNetV3Subnet, ResNetSubnet)):
        raise InvalidInputError(f"export_subnet needs a frozen subnet (space.freeze(sample)), got "
                                f"{type(subnet).__name__}")
    subnet = subnet.eval().cpu()
    resolution = subnet.resolution
    example = torch.zeros(1, 3, resolution, resolution)
    if check_images is None:
        generator = torch.Generator().manual_seed(0)
        check_images = torch.randn(3, 3, resolution, resolution, generator=generator)
    elif tuple(check_images.shape[1:]) != (3, resolution, resolution):
        raise InvalidInputError(
            f"check_images must have shape (n, 3, {resolution}, {resolution}) for this subnet, "
            f"got {tuple(check_images.shape)}"
        )
    check_images = check_images.detach().float().cpu()
    with torch.no_grad():
        expected = subnet(check_images).numpy()
    directory = Path(directory)
    results = []
    for fmt in formats:
        if fmt == "torchscript":
            path = directory / f"{name}.pt"
            _export_torchscript(subnet, example, path)
            actual = _run_torchscript(path, check_images)
        else:
            path = directory / f"{name}.onnx"
            _export_onnx(subnet, example, path, opset)
            actual = _run_onnx(path, check_images)
        diff = float(np.abs(actual - expected).max())
        if not diff <= atol:
            path.unlink(missing_ok=True)
            raise ExportMismatchError(
                f"{fmt} export of {subnet.arch or 'the subnet'} differs from PyTorch by {diff:.3g} > atol {atol:g}"
            )
        results.append(ExportedModel(format=fmt, path=path, max_abs_diff=diff))
    return results
