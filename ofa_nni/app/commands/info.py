"""``ofa-nni info``: describe a search space (labels, choices, size, smallest/largest subnet)."""

from __future__ import annotations

import argparse
import math
from typing import Any

from ofa_nni.arch import SPACE_ARCHS, arch_space_for
from ofa_nni.costs import cost_model_for
from ofa_nni.resnet_arch import ResNetArchSpace

_TITLES = {"ofa-mbv3": "OFA-MobileNetV3", "ofa-proxyless": "OFA-ProxylessNAS", "ofa-resnet50": "OFA-ResNet50"}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "info",
        help="describe a released OFA space (default OFA-MobileNetV3)",
        description="Print the search space: labels, choices, number of subnets, smallest and largest subnet.",
    )
    parser.add_argument("--num-classes", type=int, default=1000, help="classifier outputs (default 1000)")
    parser.add_argument("--space", choices=sorted(SPACE_ARCHS), default="ofa-mbv3",
                        help="the search space (default ofa-mbv3)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    space: Any = arch_space_for(args.space, num_classes=args.num_classes)
    costs = cost_model_for(space)
    title = _TITLES.get(args.space, args.space)
    if isinstance(space, ResNetArchSpace):
        n_e, stages = len(space.expand_ratios), range(space.num_stages)
        subnets = len(space.stem_depths) * len(space.width_mults) ** (space.num_stages + 2) * math.prod(
            sum(n_e**d for d in space.stage_depths(s)) for s in stages)
        print(f"{title}: {space.num_stages} stages of {[space.stage_num_blocks(s) for s in stages]} bottlenecks "
              f"({space.num_blocks} in all), {len(space.labels)} labels")
        print(f"  expand {list(space.expand_ratios)}  depth +{list(space.depths)}  width {list(space.width_mults)}")
    else:
        blocks = len(space.kernel_sizes) * len(space.expand_ratios)
        subnets = math.prod(sum(blocks**d for d in space.stage_depths(s)) for s in range(space.num_stages))
        print(f"{title}: {space.num_stages} stages x up to {space.max_depth} blocks "
              f"({space.num_blocks} in all), {len(space.labels)} labels")
        print(f"  kernel {list(space.kernel_sizes)}  expand {list(space.expand_ratios)}  depth {list(space.depths)}")
    print(f"  resolution {space.resolutions[0]}..{space.resolutions[-1]} ({len(space.resolutions)} sizes)")
    print(f"  subnets: {subnets:.3g} x {len(space.resolutions)} resolutions (10^{math.log10(subnets):.1f})")
    for name, sample in (("smallest", space.min_sample()), ("largest", space.max_sample())):
        print(f"  {name:8s} {costs.macs(sample) / 1e6:8.1f} MMACs {costs.params(sample) / 1e6:6.2f} M params")
        print(f"           {space.format(sample)}")
    return 0
