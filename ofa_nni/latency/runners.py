"""Running and timing ops and whole models: eager PyTorch (CPU, or CUDA with synchronisation) or
ONNX Runtime (each module exported with ``torch.onnx``), and the clocks the timings are read from."""

from __future__ import annotations

import contextlib
import io
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from ofa_nni._artifacts import cpu_description
from ofa_nni.errors import InvalidInputError
from ofa_nni.latency.protocol import BACKENDS, CLOCK_CHOICES, CLOCKS, DEVICES
from ofa_nni.layers import ConvBNAct, MBConvBlock, init_weights_
from ofa_nni.resnet_layers import Bottleneck, stem_forward

__all__ = [
    "Runner",
    "build_op_module",
    "check_backend",
    "keep_heap_steady",
    "device_description",
    "measuring",
    "onnx_bytes",
    "ort_session",
    "progress_bar",
    "resolve_clock",
    "time_runs",
    "timer_for",
]


class _Head(nn.Module):
    """The tail of :class:`~ofa_nni.layers.MobileNetV3Subnet`: final expand, pool, feature mix,
    classifier (dropout is the identity at inference); without a final expand (``expand_channels``
    0), ProxylessNAS's: feature mix with BN and relu6, pool, classifier."""

    def __init__(self, in_channels: int, expand_channels: int, mix_channels: int, num_classes: int) -> None:
        super().__init__()
        self.final_expand: ConvBNAct | None
        if expand_channels:
            self.final_expand = ConvBNAct(in_channels, expand_channels, 1, activation="hswish")
            self.feature_mix = ConvBNAct(expand_channels, mix_channels, 1, activation="hswish", use_bn=False)
        else:
            self.final_expand = None
            self.feature_mix = ConvBNAct(in_channels, mix_channels, 1, activation="relu6")
        self.classifier = nn.Linear(mix_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.final_expand is not None:
            x = self.feature_mix(self.final_expand(x).mean((2, 3), keepdim=True))
        else:
            x = self.feature_mix(x).mean((2, 3), keepdim=True)
        return self.classifier(torch.flatten(x, 1))


class _ResNetStem(nn.Module):
    """The input stem of :class:`~ofa_nni.resnet_layers.ResNetSubnet` (with its max pool)."""

    def __init__(self, mid_channels: int, out_channels: int, residual: bool) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(3, mid_channels, 3, stride=2, activation="relu")
        self.conv2 = ConvBNAct(mid_channels, mid_channels, 3, activation="relu") if residual else None
        self.conv3 = ConvBNAct(mid_channels, out_channels, 3, activation="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return stem_forward(x, self.conv1, self.conv2, self.conv3)


class _PoolHead(nn.Module):
    """The tail of :class:`~ofa_nni.resnet_layers.ResNetSubnet`: global pool, classifier."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.classifier = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(x.mean((2, 3)))


def build_op_module(spec: Any) -> nn.Module:
    """A randomly initialised module of an :class:`~ofa_nni.latency.specs.OpSpec`'s shape."""
    module: nn.Module
    if spec.kind == "stem":
        module = ConvBNAct(spec.in_channels, spec.out_channels, spec.kernel_size, stride=spec.stride,
                           activation=spec.activation)
    elif spec.kind == "mbconv":
        module = MBConvBlock(
            spec.in_channels,
            spec.out_channels,
            mid_channels=spec.mid_channels,
            kernel_size=spec.kernel_size,
            stride=spec.stride,
            activation=spec.activation,
            se_channels=spec.se_channels or None,
            has_expand_conv=spec.has_expand_conv,
            allow_residual=spec.residual,
        )
    elif spec.kind == "head":
        module = _Head(spec.in_channels, spec.mid_channels, spec.feature_mix_channels, spec.out_channels)
    elif spec.kind == "resnet_stem":
        module = _ResNetStem(spec.mid_channels, spec.out_channels, spec.residual)
    elif spec.kind == "bottleneck":
        module = Bottleneck(spec.in_channels, spec.mid_channels, spec.out_channels, spec.stride,
                            identity_shortcut=spec.residual)
    elif spec.kind == "pool_head":
        module = _PoolHead(spec.in_channels, spec.out_channels)
    else:
        raise InvalidInputError(f"unknown op kind {spec.kind!r}; allowed: 'stem', 'mbconv', 'head', 'resnet_stem', "
                                "'bottleneck', 'pool_head'")
    init_weights_(module)
    return module.eval()


def check_backend(backend: str, device: str) -> None:
    if backend not in BACKENDS:
        raise InvalidInputError(f"unknown backend {backend!r}; allowed: {', '.join(BACKENDS)}")
    if device not in DEVICES:
        raise InvalidInputError(f"unknown device {device!r}; allowed: {', '.join(DEVICES)}")
    if backend == "onnxruntime":
        try:
            import onnx  # noqa: F401  (torch.onnx.export needs it)
            import onnxruntime  # noqa: F401
        except ImportError as error:
            raise InvalidInputError(f"backend 'onnxruntime' needs {error.name}, a dependency of ofa-nni that is "
                                    f"missing from this environment: pip install {error.name}") from None
    if device == "cuda":
        if not torch.cuda.is_available():
            raise InvalidInputError("device 'cuda' requested but torch sees no CUDA GPU here; use --device cpu")
        if backend == "onnxruntime":
            import onnxruntime

            if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
                raise InvalidInputError(
                    "device 'cuda' with backend 'onnxruntime' needs onnxruntime-gpu (CUDAExecutionProvider); "
                    f"available providers: {onnxruntime.get_available_providers()}"
                )


def onnx_bytes(module: nn.Module, example: torch.Tensor, *, dynamic_size: bool) -> bytes:
    buffer = io.BytesIO()
    dynamic_axes = {"input": {2: "height", 3: "width"}} if dynamic_size else None
    with warnings.catch_warnings():
        # The TorchScript exporter (dynamo=False) needs no onnxscript; torch warns that it is legacy.
        warnings.simplefilter("ignore")
        # The TorchScript exporter writes to a file object too.
        torch.onnx.export(
            module.cpu().eval(), (example.cpu(),), buffer, dynamo=False, input_names=["input"],  # type: ignore[arg-type]
            output_names=["output"], dynamic_axes=dynamic_axes, opset_version=17,
        )
    return buffer.getvalue()


class Runner:
    """Runs one module on one fixed input with a backend; ``__call__`` returns after the work is done."""

    def __init__(self, module: nn.Module, shape: Sequence[int], *, backend: str, device: str, num_threads: int,
                 session: Any = None) -> None:
        self.backend, self.device = backend, device
        generator = torch.Generator().manual_seed(0)
        example = torch.randn(*shape, generator=generator)
        if backend == "torch":
            self.module = module.to(device).eval()
            self.input = example.to(device)
        else:
            self.session = session or ort_session(module, example, device=device, num_threads=num_threads,
                                                   dynamic_size=False)
            self.feed = {"input": example.numpy()}

    def __call__(self) -> None:
        if self.backend == "torch":
            with torch.inference_mode():
                self.module(self.input)
            if self.device == "cuda":
                torch.cuda.synchronize()
        else:
            self.session.run(None, self.feed)


def ort_session(module: nn.Module, example: torch.Tensor, *, device: str, num_threads: int, dynamic_size: bool) -> Any:
    # The bundle's standalone runner owns the session options: tables timed here and on a device
    # through 'ofa-nni lut bundle' then run the same ONNX Runtime configuration.
    from ofa_nni.latency.onnx_runner import make_session

    providers = ["CUDAExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
    return make_session(onnx_bytes(module, example, dynamic_size=dynamic_size), providers, num_threads)


def resolve_clock(clock: str, num_threads: int, device: str) -> str:
    """``auto`` -> ``cpu`` for one CPU thread (the thread's CPU time: what preemption by other
    processes does not inflate), ``wall`` otherwise (CPU time of one thread says nothing about
    several threads or a GPU); ``wall`` and ``cpu`` as given."""
    if clock not in CLOCK_CHOICES:
        raise InvalidInputError(f"unknown clock {clock!r}; allowed: {', '.join(CLOCK_CHOICES)}")
    if clock == "auto":
        return "cpu" if num_threads == 1 and device == "cpu" else "wall"
    return clock


def timer_for(clock: str, num_threads: int, device: str) -> Callable[[], float]:
    if clock not in CLOCKS:
        raise InvalidInputError(f"unknown clock {clock!r}; allowed: {', '.join(CLOCKS)}")
    if clock == "cpu" and (num_threads != 1 or device != "cpu"):
        raise InvalidInputError("clock 'cpu' (the calling thread's CPU time) needs num_threads=1 and device 'cpu'; "
                         f"got {num_threads} thread(s) on {device!r}")
    return time.thread_time if clock == "cpu" else time.perf_counter


def time_runs(run: Callable[[], None], *, warmup: int, repeats: int,
               clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """Milliseconds of ``repeats`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = clock()
        run()
        times.append((clock() - start) * 1e3)
    return times


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_STEADY_MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's own ceiling for its adaptive threshold (64-bit)
_STEADY_TRIM_THRESHOLD = 2**31 - 1


def keep_heap_steady() -> str:
    """Make glibc's malloc keep freed memory for reuse instead of handing it back to the system, so
    that a network's activations reuse pages already mapped: ``"steady"`` if done, ``"system"`` where
    the C library has no glibc ``mallopt`` (macOS, musl: nothing changed).

    Why: with glibc's defaults, buffers of a few MB come from fresh ``mmap`` or a re-grown heap on
    some calls and not on others, depending on what ran before. Timing OFA-MobileNetV3 subnets with
    torch eager on one thread, 0 to 2,146 page faults per call (every new page zeroed: memory traffic
    that a memory-heavy neighbour slows further) moved a subnet's minimum by up to 15% with the order
    of the runs. PyTorch's CPU tuning guide recommends jemalloc or tcmalloc for the same reason; this
    is the setting of the C library already loaded. It lasts for the process (glibc has no way back
    to its adaptive thresholds): memory freed later stays with the process, up to 32 MiB buffers.
    Deployments that want the table's latency run the same way: ``GLIBC_TUNABLES=
    glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=2147483647``, or jemalloc.
    """
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):
        return "system"
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # musl's mallopt exists and does nothing: it returns 0, glibc returns 1 on success.
    done = mallopt(_M_MMAP_THRESHOLD, _STEADY_MMAP_THRESHOLD) == 1
    return "steady" if done and mallopt(_M_TRIM_THRESHOLD, _STEADY_TRIM_THRESHOLD) == 1 else "system"


@contextlib.contextmanager
def measuring(num_threads: int) -> Iterator[None]:
    """What every timing here runs under: ``num_threads`` torch threads (restored afterwards) and
    a steady heap (:func:`keep_heap_steady`; a table records its result)."""
    keep_heap_steady()
    previous = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def progress_bar(total: int, initial: int, description: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=description, unit="op", disable=not enabled, dynamic_ncols=True)


def device_description(device: str, num_threads: int) -> dict[str, Any]:
    name = torch.cuda.get_device_name() if device == "cuda" else cpu_description()
    return {"type": device, "name": name, "num_threads": num_threads}
