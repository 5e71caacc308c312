"""Training-step time of one OFA-MobileNetV3 subnet, side by side in one run.

What is timed: one forward + backward pass (cross-entropy on random labels; gradients reset to
None before each step; no optimizer step, which does the same per-parameter work everywhere), in
train mode (batch-statistics BN, dropout), batch 32, resolution 160, the default space with 1000
classes. Variants, all with the same subnet active:

(a) ours: ``OFAMobileNetV3Space`` (the elastic supernet) with the sample activated;
(b) ours frozen: ``space.freeze(sample)``, the static subnet (the floor for (a));
(c) ``ofa``: mit-han-lab's dynamic ``OFAMobileNetV3`` with ``set_active_subnet(**arch_to_ofa(sample))``;
(d) NNI: ``nni.nas.hub.pytorch.MobileNetV3Space`` configured as OFA's space (widths 16..1280,
    strides, activations, SE in the same stages, expand {3,4,6}, kernel {3,5,7}, depth 2..4 per
    stage), mutated into a supernet by ``RandomOneShot().mutate_model``, the same subnet activated
    with every supernet module's ``resample(memo=sample)`` (NNI's stem kernel and first block
    kernel, which OFA fixes, set to 3). NNI's space has no kernel transformation matrices and
    rounds SE widths its own way: a comparable network, not the same function.

Subnets: ``random`` is ``space.random_sample(seed)`` at the benchmark's resolution (mixed kernels,
expand ratios and depths, so every elastic mechanism is exercised: sliced channels, transformed
kernels, skipped blocks); ``max`` is the largest subnet (no slicing; what OFA's first phase trains).
The forward FLOPs torch counts for each variant are printed next to the times: equal FLOPs show
that the four run the same subnet (ours and ``ofa`` also count the tiny kernel transformations).

Variants run interleaved (the order rotates every repeat) so that machine load hits them all
alike. Reported: the median of the repeats and the ratios of medians (the targets: a/b <= 1.15,
a/c <= 1.0); as checks against load on a shared machine, the median of the per-repeat ratios and
the ratio of the fastest repeats, and the load average. Run::

    .venv/bin/python benchmarks/bench_training_step.py --threads 2 --repeats 21 \\
        --markdown benchmarks/results/training_step.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from typing import Any

import numpy as np
import torch
from torch import nn

import ofa_nni
from ofa_nni import arch_to_ofa
from search_spaces import OFAMobileNetV3Space


def build_ofa_reference(sample: dict[str, Any]) -> nn.Module:
    from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3

    net = OFAMobileNetV3(ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4])
    net.set_active_subnet(**arch_to_ofa(sample))
    return net


def nni_sample(sample: dict[str, Any], space: OFAMobileNetV3Space) -> dict[str, Any]:
    """Our sample in the labels of NNI's MobileNetV3Space (stage s block b -> ``s{s}_i{b-1}``)."""
    arch = space.arch_space
    result: dict[str, Any] = {"stem_ks": 3, "s0_i0_ks": 3}
    for s in range(arch.num_stages):
        result[f"s{s + 1}_depth"] = sample[arch.depth_label(s)]
        for b in range(arch.max_depth):
            result[f"s{s + 1}_i{b}_ks"] = sample[arch.kernel_label(s, b)]
            result[f"s{s + 1}_i{b}_exp"] = float(sample[arch.expand_label(s, b)])
    return result


def build_nni_supernet(sample: dict[str, Any]) -> nn.Module:
    from nni.nas.hub.pytorch import MobileNetV3Space
    from nni.nas.oneshot.pytorch.supermodule.base import BaseSuperNetModule
    from nni.nas.strategy import RandomOneShot

    model_space = MobileNetV3Space(
        num_labels=1000,
        base_widths=(16, 16, 24, 40, 80, 112, 160, 960, 1280),
        width_multipliers=1.0,
        expand_ratios=(3.0, 4.0, 6.0),
        squeeze_excite=("none", "none", "force", "none", "force", "force"),
        depth_range=(2, 4),
        stride=(2, 1, 2, 2, 2, 1, 2, 1, 1),
        activation=("hswish", "relu", "relu", "relu", "hswish", "hswish", "hswish", "hswish", "hswish"),
        dropout_rate=0.1,
        bn_eps=1e-5,
    )
    supernet = RandomOneShot().mutate_model(model_space)
    for module in supernet.modules():
        if isinstance(module, BaseSuperNetModule):
            module.resample(memo=sample)
    return supernet


def forward_gflops(model: nn.Module, images: torch.Tensor) -> float:
    """FLOPs (2 x MACs) of one forward of ``images``, counted by torch: shows the subnets match."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(images)
    return counter.get_total_flops() / 1e9


def time_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Seconds for one forward + backward."""
    for param in model.parameters():
        param.grad = None
    start = time.perf_counter()
    loss = nn.functional.cross_entropy(model(images), labels)
    loss.backward()
    return time.perf_counter() - start


def measure(variants: dict[str, nn.Module], images: torch.Tensor, labels: torch.Tensor, *, warmup: int,
            repeats: int) -> dict[str, list[float]]:
    names = list(variants)
    for _ in range(warmup):
        for name in names:
            time_step(variants[name], images, labels)
    times: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(time_step(variants[name], images, labels))
    return times


def paired_ratios(times: dict[str, list[float]]) -> dict[str, float]:
    """Median over repeats of (a's time / the other variant's time in the same repeat), keyed by the
    other variant's letter. Pairing within a repeat cancels load that drifts between repeats."""
    names = list(times)
    first = times[names[0]]
    return {
        name[0]: statistics.median(t_a / t_other for t_a, t_other in zip(first, times[name], strict=True))
        for name in names[1:]
    }


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            models = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
        if models:
            cpu = f"{models[0]} ({len(models)} logical CPUs visible)"
    except OSError:
        pass
    return f"{platform.system()} {platform.release()}, {cpu}"


def write_atomically(path: str, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".md")
    with os.fdopen(handle, "w") as file:
        file.write(text)
    os.replace(temporary, path)


def report_header(threads: int, argv: list[str]) -> list[str]:
    command = " ".join([os.path.relpath(sys.executable), os.path.relpath(__file__), *argv])
    return [
        "# Training step: our supernet vs frozen subnet vs ofa vs NNI",
        "",
        f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- machine: {machine_description()}, torch threads {threads}",
        f"- torch: {torch.__version__}",
        f"- command: `{command}`",
        "",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--resolution", type=int, default=160)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random subnet")
    parser.add_argument("--subnets", default="random,max", help="comma-separated: random, max, min")
    parser.add_argument("--markdown", default=None, help="also write the results to this markdown file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    space = OFAMobileNetV3Space()
    if args.resolution not in space.arch_space.resolutions:
        parser.error(f"--resolution must be one of {space.arch_space.resolutions}")
    candidates = {
        "random": space.random_sample(np.random.default_rng(args.seed)),
        "max": space.max_sample(),
        "min": space.min_sample(),
    }
    unknown = [name for name in args.subnets.split(",") if name not in candidates]
    if unknown:
        parser.error(f"--subnets: unknown {unknown}; allowed: {list(candidates)}")
    images = torch.randn(args.batch_size, 3, args.resolution, args.resolution)
    labels = torch.randint(0, 1000, (args.batch_size,))

    lines = [
        f"torch {torch.__version__}, ofa-nni {ofa_nni.__version__}, {torch.get_num_threads()} threads, "
        f"batch {args.batch_size}, resolution {args.resolution}, warm-up {args.warmup}, "
        f"{args.repeats} interleaved repeats, median; step = forward + backward (no optimizer step)",
        "",
    ]
    print("\n".join(lines), flush=True)
    for subnet_name in args.subnets.split(","):
        sample = {**candidates[subnet_name], "resolution": args.resolution}
        space.activate(sample)
        variants = {
            "a ours supernet": space.train(),
            "b ours frozen": space.freeze(sample).train(),
            "c ofa dynamic": build_ofa_reference(sample).train(),
            "d nni RandomOneShot": build_nni_supernet(nni_sample(sample, space)).train(),
        }
        load_before = os.getloadavg()[0]
        times = measure(variants, images, labels, warmup=args.warmup, repeats=args.repeats)
        fastest = [min(values) for values in times.values()]
        median = {name: statistics.median(values) * 1000 for name, values in times.items()}
        a, b, c, d = (median[name] for name in variants)
        paired = paired_ratios(times)
        block = [
            f"subnet {subnet_name}: {space.arch_space.format(sample)} "
            f"({space.macs(sample) / 1e6:.0f} MMACs, {space.params(sample) / 1e6:.2f} M params)",
            "",
            "| variant | median ms | min ms | max ms | forward GFLOPs |",
            "|---|---|---|---|---|",
        ]
        for name, values in times.items():
            block.append(
                f"| {name} | {median[name]:.1f} | {min(values) * 1000:.1f} | {max(values) * 1000:.1f} "
                f"| {forward_gflops(variants[name], images):.3f} |"
            )
        block += [
            "",
            f"ratios of medians: a/b = {a / b:.3f} (target <= 1.15), a/c = {a / c:.3f} (target <= 1.0), "
            f"a/d = {a / d:.3f}",
            f"medians of per-repeat ratios (each repeat runs the variants back to back): "
            f"a/b = {paired['b']:.3f}, a/c = {paired['c']:.3f}, a/d = {paired['d']:.3f}",
            f"ratios of minimums (the least disturbed repeat): a/b = {fastest[0] / fastest[1]:.3f}, "
            f"a/c = {fastest[0] / fastest[2]:.3f}, a/d = {fastest[0] / fastest[3]:.3f}",
            f"load average (1 min) before / after: {load_before:.1f} / {os.getloadavg()[0]:.1f}",
            "",
        ]
        print("\n".join(block), flush=True)
        lines += block
        if args.markdown:  # after every subnet, so that a long run interrupted later keeps its results
            header = report_header(args.threads, sys.argv[1:] if argv is None else argv)
            write_atomically(args.markdown, "\n".join(header + lines) + "\n")


if __name__ == "__main__":
    main()
