"""What a latency table measures: the op shapes of a space. No torch here: building an op's
module imports :mod:`ofa_nni.latency.runners` when asked."""

from __future__ import annotations

import dataclasses
from typing import Any

from ofa_nni._deprecation import renamed_keywords
from ofa_nni.arch import ArchSpace
from ofa_nni.resnet_arch import ResNetArchSpace

__all__ = ["OpSpec", "op_specs", "resnet_op_specs", "specs_by_key"]


def _conv_out(size: int, stride: int) -> int:
    return (size - 1) // stride + 1


@dataclasses.dataclass(frozen=True)
class OpSpec:
    """The shape of one measured op: ``kind`` is ``stem``, ``mbconv`` or ``head`` (MobileNet family), or
    ``resnet_stem``, ``bottleneck`` or ``pool_head`` (OFA-ResNet: the stem with its max pool, the
    stem's residual conv run iff ``residual``; a bottleneck, ``residual`` False for the ResNet-D
    downsampling shortcut; global pool and classifier).

    For ``head``, ``mid_channels`` is the final-expand width (0: ProxylessNAS's head, feature mix
    with BN before the pool) and ``out_channels`` the number of classes (the feature-mix width is
    ``feature_mix_channels``). ``residual`` False: a block without shortcut (ProxylessNAS's first).
    """

    kind: str
    input_size: int
    in_channels: int
    out_channels: int
    mid_channels: int = 0
    kernel_size: int = 1
    stride: int = 1
    activation: str = ""
    se_channels: int = 0
    has_expand_conv: bool = True
    feature_mix_channels: int = 0
    residual: bool = True

    @property
    def key(self) -> str:
        if self.kind == "stem":
            shape = f"in{self.in_channels}_out{self.out_channels}_k{self.kernel_size}_s{self.stride}_{self.activation}"
        elif self.kind == "mbconv":
            shape = (
                f"in{self.in_channels}_out{self.out_channels}_mid{self.mid_channels}_k{self.kernel_size}"
                f"_s{self.stride}_{self.activation}_se{self.se_channels}" + ("" if self.has_expand_conv else "_noexp")
                + ("" if self.residual else "_noskip")
            )
        elif self.kind == "head":
            shape = (
                f"in{self.in_channels}_exp{self.mid_channels}_mix{self.feature_mix_channels}"
                f"_cls{self.out_channels}"
            )
        elif self.kind == "resnet_stem":
            shape = f"in{self.in_channels}_mid{self.mid_channels}_out{self.out_channels}" + (
                "" if self.residual else "_skip")
        elif self.kind == "bottleneck":
            shape = f"in{self.in_channels}_out{self.out_channels}_mid{self.mid_channels}_s{self.stride}" + (
                "" if self.residual else "_down")
        else:  # pool_head
            shape = f"in{self.in_channels}_cls{self.out_channels}"
        return f"{self.kind}_{shape}_h{self.input_size}"

    @property
    def module_key(self) -> str:
        """The key without the input size (ops of one module share weights and, in ONNX, a session)."""
        return self.key.rsplit("_h", 1)[0]

    def input_shape(self, batch_size: int) -> tuple[int, int, int, int]:
        return (batch_size, self.in_channels, self.input_size, self.input_size)

    def build(self) -> Any:
        """A randomly initialised ``torch.nn.Module`` of this shape, the same layers a frozen subnet uses."""
        from ofa_nni.latency.runners import build_op_module

        return build_op_module(self)


@renamed_keywords(space="arch_space")
def op_specs(arch_space: ArchSpace, resolution: int) -> tuple[list[OpSpec], dict[tuple[int, int, int], OpSpec]]:
    """The ops of every subnet at ``resolution``: the fixed ones (stem, first block, head) and one
    per (block index, kernel index, expand index) of the elastic blocks."""
    has_expand_conv = max(arch_space.expand_ratios) != 1
    size = _conv_out(resolution, 2)
    stem = OpSpec("stem", resolution, 3, arch_space.stem_width, kernel_size=3, stride=2,
                  activation=arch_space.stem_activation)
    first = OpSpec(
        "mbconv", size, arch_space.stem_width, arch_space.first_block_width, mid_channels=arch_space.stem_width,
        kernel_size=3, stride=1, activation=arch_space.first_block_activation, has_expand_conv=False,
        residual=arch_space.layout == "mbv3",
    )
    blocks: dict[tuple[int, int, int], OpSpec] = {}
    for block, (s, b) in enumerate(arch_space.blocks):
        stride = arch_space.stage_strides[s] if b == 0 else 1
        c_in = arch_space.block_in_channels(s, b)
        for k_idx, kernel in enumerate(arch_space.kernel_sizes):
            for e_idx, expand in enumerate(arch_space.expand_ratios):
                mid = arch_space.mid_channels(c_in, expand) if has_expand_conv else c_in
                blocks[(block, k_idx, e_idx)] = OpSpec(
                    "mbconv", size, c_in, arch_space.stage_widths[s], mid_channels=mid, kernel_size=kernel,
                    stride=stride, activation=arch_space.stage_activations[s],
                    se_channels=arch_space.se_channels(mid) if arch_space.stage_se[s] else 0,
                    has_expand_conv=has_expand_conv,
                )
        size = _conv_out(size, stride)
    head = OpSpec(
        "head", size, arch_space.stage_widths[-1], arch_space.num_classes, mid_channels=arch_space.final_expand_width,
        feature_mix_channels=arch_space.feature_mix_width,
    )
    return [stem, first, head], blocks


def resnet_op_specs(arch_space: ResNetArchSpace, resolution: int) -> tuple[
        dict[tuple[int, ...], OpSpec], dict[tuple[int, ...], OpSpec], dict[tuple[int, ...], OpSpec]]:
    """The ops of every OFA-ResNet subnet at ``resolution``, by their index in the cost tables of
    :func:`~ofa_nni.costs.sum_resnet`, in its order: each bottleneck per (block, in width, out width,
    expand) -- a stage's later blocks only with equal widths, the only ones a subnet has --, the stem per
    (mid width, width, depth) and the head per last-stage width."""
    mids, stems = arch_space.stem_mid_widths(), arch_space.stem_widths()
    size = _conv_out(resolution, 2)
    stem: dict[tuple[int, ...], OpSpec] = {
        (m, w, d): OpSpec("resnet_stem", resolution, 3, stems[w], mid_channels=mids[m], residual=depth == 3)
        for m in range(len(mids)) for w in range(len(stems)) for d, depth in enumerate(arch_space.stem_depths)
    }
    size = _conv_out(size, 2)  # the stem's max pool
    blocks: dict[tuple[int, ...], OpSpec] = {}
    for block, (s, b) in enumerate(arch_space.blocks):
        stride = arch_space.stage_strides[s] if b == 0 else 1
        outs = arch_space.stage_widths(s)
        ins = (arch_space.stage_widths(s - 1) if s else stems) if b == 0 else outs
        identity = stride == 1 and ins == outs
        for (i, c_in), (o, c_out), (e, expand) in ((x, y, z) for x in enumerate(ins) for y in enumerate(outs)
                                                   for z in enumerate(arch_space.expand_ratios)):
            if b and i != o:
                continue
            blocks[(block, i, o, e)] = OpSpec("bottleneck", size, c_in, c_out,
                                              mid_channels=arch_space.mid_channels(c_out, expand), kernel_size=3,
                                              stride=stride, residual=identity)
        size = _conv_out(size, stride)
    head: dict[tuple[int, ...], OpSpec] = {(w,): OpSpec("pool_head", size, width, arch_space.num_classes)
            for w, width in enumerate(arch_space.stage_widths(arch_space.num_stages - 1))}
    return blocks, stem, head


@renamed_keywords(space="arch_space")
def specs_by_key(arch_space: Any, resolutions: Any) -> dict[str, OpSpec]:
    """Every distinct op shape of ``arch_space`` at ``resolutions``, by key (positions sharing a shape share it)."""
    specs: dict[str, OpSpec] = {}
    for resolution in resolutions:
        if isinstance(arch_space, ResNetArchSpace):
            found = [spec for table in resnet_op_specs(arch_space, resolution) for spec in table.values()]
        else:
            fixed, blocks = op_specs(arch_space, resolution)
            found = [*fixed, *blocks.values()]
        for spec in found:
            specs.setdefault(spec.key, spec)
    return specs
