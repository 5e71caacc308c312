"""How timings are taken: a steady heap (no page faults from the allocator between calls) and
end-to-end runs that visit every model in every round (issue 17: tables under memory contention)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import TINY_SPACE_KWARGS
from torch import nn

from ofa_nni.arch import ArchSpace
from ofa_nni.latency import build_latency_table, measure_end_to_end
from ofa_nni.latency.runners import keep_heap_steady

GLIBC = sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")

# Page faults per call of an OFA-MobileNetV3 subnet after warm-up, in a fresh process. With glibc's
# default (adaptive) thresholds this subnet's activations come from freshly mapped pages on every
# call (2,146 faults per call when measured); kept steady, none (0.0; 6 in a parallel test run).
_FAULTS_PER_CALL = textwrap.dedent("""
    import resource, sys, torch
    torch.set_num_threads(1)
    from ofa_nni.latency.runners import keep_heap_steady
    if sys.argv[1] == "steady":
        assert keep_heap_steady() == "steady"
    from search_spaces import OFAMobileNetV3Space
    space = OFAMobileNetV3Space()
    arch = space.arch_space
    sample = arch.from_indices(arch.random_indices(1, 1)[0])
    model = space.freeze(sample).eval()
    size = int(sample[arch.RESOLUTION_LABEL])
    x = torch.randn(1, 3, size, size)
    with torch.inference_mode():
        for _ in range(5):
            model(x)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(20):
            model(x)
    print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
""")


def _faults_per_call(mode: str) -> float:
    result = subprocess.run([sys.executable, "-c", _FAULTS_PER_CALL, mode], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
                                              "GLIBC_TUNABLES": ""})
    assert result.returncode == 0, result.stderr
    return float(result.stdout.strip())


@pytest.mark.skipif(not GLIBC, reason="the steady heap is glibc's mallopt")
def test_a_steady_heap_stops_page_faults_between_calls():
    default, steady = _faults_per_call("default"), _faults_per_call("steady")
    # The control: this subnet does fault on every call with glibc's defaults, so the check can fail.
    assert default > 500, default
    assert steady < 50, steady  # 0 alone, a few per call in a busy test run


@pytest.mark.skipif(not GLIBC, reason="the steady heap is glibc's mallopt")
def test_tables_record_the_heap_they_were_measured_with():
    assert keep_heap_steady() == "steady"
    table = build_latency_table(ArchSpace(**TINY_SPACE_KWARGS), resolutions=(32,), warmup=0, repeats=1, rounds=1,
                                num_threads=1, show_progress=False)
    assert table.metadata["settings"]["heap"] == "steady"


class _Recorder(nn.Module):
    """A model that notes its index in a shared list each time it runs."""

    def __init__(self, index: int, calls: list[int]) -> None:
        super().__init__()
        self.index, self.calls = index, calls

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(self.index)
        return x


def _visits(calls: list[int], calls_per_visit: int) -> list[int]:
    """The model of each visit (warm-up and timed calls of one model in a row)."""
    assert all(len(set(calls[i:i + calls_per_visit])) == 1 for i in range(0, len(calls), calls_per_visit))
    return calls[::calls_per_visit]


def test_torch_end_to_end_visits_every_model_in_every_round():
    """A slow phase of the machine must fall on all models alike: with torch every round visits all
    of them (not a group after another), in a fresh order."""
    calls: list[int] = []
    models = [(_Recorder(i, calls), 8) for i in range(20)]
    measure_end_to_end(models, backend="torch", warmup=1, repeats=2, rounds=3, num_threads=1)
    visits = _visits(calls, 3)
    assert len(visits) == 60
    rounds = [visits[0:20], visits[20:40], visits[40:60]]
    assert all(sorted(one) == list(range(20)) for one in rounds)
    assert rounds[0] != rounds[1] != rounds[2]


def test_groups_of_models_are_drawn_at_random():
    """With a group size (ONNX Runtime's default is 8), a group is not a run of consecutive models:
    callers pass validation subnets first and calibration ones after."""
    calls: list[int] = []
    models = [(_Recorder(i, calls), 8) for i in range(16)]
    measure_end_to_end(models, backend="torch", warmup=0, repeats=1, rounds=2, num_threads=1, group_size=8)
    visits = _visits(calls, 1)
    first_group, second_group = set(visits[:16]), set(visits[16:])
    assert len(first_group) == len(second_group) == 8 and first_group | second_group == set(range(16))
    assert first_group != set(range(8))
