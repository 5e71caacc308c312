"""Analytic MACs and parameter counts of OFA-MobileNetV3 and OFA-ProxylessNAS subnets, from the sample alone.

Costs are per-block lookup tables (block, kernel, expand, resolution) built once per space; a
population of integer-encoded samples is costed with one gather and a masked sum, no forward pass
and no Python loop per candidate. The counts equal a measured count on the frozen model
(``torch.utils.flop_counter.FlopCounterMode`` FLOPs / 2, and ``sum(p.numel())``): convolutions and
the classifier count, batch norm, activations, pooling and the SE multiply do not (as in OFA's
``count_net_flops`` and the paper's MACs figures).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any, overload

import numpy as np

from ofa_nni._deprecation import RenamedAttribute, renamed_keywords
from ofa_nni.arch import ArchSpace
from ofa_nni.errors import InvalidInputError
from ofa_nni.resnet_arch import ResNetArchSpace

__all__ = ["AnalyticCostModel", "ResNetCostModel", "sum_active_blocks", "sum_resnet", "cost_model_for"]


def _conv_out(size: int, stride: int) -> int:
    # Odd kernel k with padding k // 2: floor((size - 1) / stride) + 1 for every k.
    return (size - 1) // stride + 1


def sum_active_blocks(
    arch_space: ArchSpace, indices: np.ndarray, block_table: np.ndarray, fixed_by_resolution: np.ndarray
) -> np.ndarray:
    """``fixed[r] + sum over active blocks of block_table[block, kernel, expand, r]`` per row.

    ``block_table`` has shape ``(num_blocks, len(kernels), len(expands), len(resolutions))`` and
    ``fixed_by_resolution`` shape ``(len(resolutions),)``; one gather for the whole population.
    Every per-block cost model (MACs, params, latency tables) sums this way.
    """
    n_blocks = arch_space.num_blocks
    _, n_k, n_e, n_r = block_table.shape
    # One flat gather with a single int32 index array: several times faster than four broadcast
    # int64 index arrays on (n, num_blocks) column slices.
    small = indices.astype(np.int32)
    resolution = small[:, -1:]
    flat_index = (small[:, :n_blocks] * n_e + small[:, n_blocks : 2 * n_blocks]) * n_r + (
        resolution + np.arange(n_blocks, dtype=np.int32) * (n_k * n_e * n_r)
    )
    per_block = np.take(np.ravel(block_table), flat_index)
    active = arch_space.active_block_mask(small).astype(per_block.dtype)
    return np.take(fixed_by_resolution, resolution[:, 0]) + np.einsum("ij,ij->i", per_block, active)


class AnalyticCostModel:
    """MACs and parameters of subnets of ``arch_space``.

    Example:
        >>> costs = AnalyticCostModel(ArchSpace())
        >>> costs.macs(ArchSpace().max_sample())  # one sample -> int
        >>> costs.macs(indices)                   # (n, labels) int array -> (n,) int64 array
    """

    space = RenamedAttribute("arch_space")  # the old name, for one release

    @renamed_keywords(space="arch_space")
    def __init__(self, arch_space: ArchSpace) -> None:
        self.arch_space = arch_space
        self._n_labels = len(arch_space.labels)  # cached: the search calls macs() thousands of times
        n_r = len(arch_space.resolutions)
        n_k, n_e = len(arch_space.kernel_sizes), len(arch_space.expand_ratios)
        self.block_macs = np.zeros((arch_space.num_blocks, n_k, n_e, n_r), dtype=np.int64)
        self.block_params = np.zeros((arch_space.num_blocks, n_k, n_e), dtype=np.int64)
        self.fixed_macs = np.zeros(n_r, dtype=np.int64)
        has_expand_conv = max(arch_space.expand_ratios) != 1

        for r_idx, resolution in enumerate(arch_space.resolutions):
            size = _conv_out(resolution, 2)
            stem, first = arch_space.stem_width, arch_space.first_block_width
            macs = size * size * 3 * stem * 9  # stem conv 3x3 stride 2
            macs += size * size * stem * 9 + size * size * stem * first  # first block: dw 3x3 + project
            for block, (s, b) in enumerate(arch_space.blocks):
                stride = arch_space.stage_strides[s] if b == 0 else 1
                out_size = _conv_out(size, stride)
                c_in, c_out = arch_space.block_in_channels(s, b), arch_space.stage_widths[s]
                for e_idx, expand in enumerate(arch_space.expand_ratios):
                    mid = arch_space.mid_channels(c_in, expand)
                    for k_idx, kernel in enumerate(arch_space.kernel_sizes):
                        block_macs = out_size * out_size * mid * (kernel * kernel + c_out)
                        if has_expand_conv:
                            block_macs += size * size * c_in * mid
                        if arch_space.stage_se[s]:
                            block_macs += 2 * mid * arch_space.se_channels(mid)
                        self.block_macs[block, k_idx, e_idx, r_idx] = block_macs
                size = out_size
            if arch_space.layout == "mbv3":  # final expand at full size, feature mix after the pool
                macs += size * size * arch_space.stage_widths[-1] * arch_space.final_expand_width
                macs += arch_space.final_expand_width * arch_space.feature_mix_width
            else:  # feature mix before the pool
                macs += size * size * arch_space.stage_widths[-1] * arch_space.feature_mix_width
            macs += arch_space.feature_mix_width * arch_space.num_classes
            self.fixed_macs[r_idx] = macs

        stem, first = arch_space.stem_width, arch_space.first_block_width
        self.fixed_params = (
            3 * stem * 9
            + 2 * stem  # stem conv + BN
            + stem * 9
            + 2 * stem
            + stem * first
            + 2 * first  # first block
            + arch_space.feature_mix_width * arch_space.num_classes
            + arch_space.num_classes
        )
        if arch_space.layout == "mbv3":
            self.fixed_params += (
                arch_space.stage_widths[-1] * arch_space.final_expand_width
                + 2 * arch_space.final_expand_width
                + arch_space.final_expand_width * arch_space.feature_mix_width  # feature mix: no bias, no BN
            )
        else:
            self.fixed_params += (arch_space.stage_widths[-1] * arch_space.feature_mix_width
                                  + 2 * arch_space.feature_mix_width)
        for block, (s, b) in enumerate(arch_space.blocks):
            c_in, c_out = arch_space.block_in_channels(s, b), arch_space.stage_widths[s]
            for e_idx, expand in enumerate(arch_space.expand_ratios):
                mid = arch_space.mid_channels(c_in, expand)
                for k_idx, kernel in enumerate(arch_space.kernel_sizes):
                    params = mid * kernel * kernel + 2 * mid + mid * c_out + 2 * c_out
                    if has_expand_conv:
                        params += c_in * mid + 2 * mid
                    if arch_space.stage_se[s]:
                        se = arch_space.se_channels(mid)
                        params += 2 * mid * se + se + mid
                    self.block_params[block, k_idx, e_idx] = params

    def _as_indices(self, samples: Any) -> tuple[np.ndarray, bool]:
        if isinstance(samples, Mapping):
            return self.arch_space.to_indices(samples)[None], True
        if isinstance(samples, np.ndarray):
            if samples.ndim != 2 or samples.shape[1] != self._n_labels:
                raise InvalidInputError(f"expected an index array of shape (n, {len(self.arch_space.labels)}), got "
                                        f"{samples.shape}")
            return samples.astype(np.int64, copy=False), False
        return np.stack([self.arch_space.to_indices(s) for s in samples]), False

    @overload
    def macs(self, samples: Mapping[str, Any]) -> int: ...
    @overload
    def macs(self, samples: np.ndarray | Sequence[Mapping[str, Any]]) -> np.ndarray: ...

    def macs(self, samples: Any) -> Any:
        """Multiply-accumulates of one sample (``int``) or of a population (``(n,)`` array)."""
        indices, single = self._as_indices(samples)
        total = sum_active_blocks(self.arch_space, indices, self.block_macs, self.fixed_macs)
        return int(total[0]) if single else total

    @overload
    def params(self, samples: Mapping[str, Any]) -> int: ...
    @overload
    def params(self, samples: np.ndarray | Sequence[Mapping[str, Any]]) -> np.ndarray: ...

    def params(self, samples: Any) -> Any:
        """Parameters of the frozen subnet of one sample (``int``) or of a population (array)."""
        indices, single = self._as_indices(samples)
        n_resolutions = len(self.arch_space.resolutions)
        # Parameters do not depend on the resolution: broadcast (a view, no copy) along that axis.
        table = np.broadcast_to(self.block_params[..., None], (*self.block_params.shape, n_resolutions))
        fixed = np.full(n_resolutions, self.fixed_params, dtype=np.int64)
        total = sum_active_blocks(self.arch_space, indices, table, fixed)
        return int(total[0]) if single else total


class ResNetCostModel:
    """MACs and parameters of OFA-ResNet subnets (:class:`~ofa_nni.resnet_arch.ResNetArchSpace`),
    counted as :class:`AnalyticCostModel` counts (convolutions and the classifier; the shortcut's
    average pool, BN, ReLU and pooling do not count).

    Tables built once: per block ``(in width, out width, expand, resolution)``, the stem's ``(mid width,
    width, depth, resolution)`` and the classifier's per last-stage width; a population costs one
    gather per table and a masked sum over active blocks.
    """

    def __init__(self, arch_space: ResNetArchSpace) -> None:
        self.arch_space = arch_space
        n_w, n_e, n_r = len(arch_space.width_mults), len(arch_space.expand_ratios), len(arch_space.resolutions)
        n_blocks, n_stages = arch_space.num_blocks, arch_space.num_stages
        self._tables: dict[str, tuple[np.ndarray, ...]] = {}
        for kind in ("macs", "params"):
            blocks = np.zeros((n_blocks, n_w, n_w, n_e, n_r), dtype=np.int64)
            stem = np.zeros((n_w, n_w, len(arch_space.stem_depths), n_r), dtype=np.int64)
            head = np.zeros((n_w,), dtype=np.int64)
            self._tables[kind] = (blocks, stem, head)
        stem_widths, mid_widths = arch_space.stem_widths(), arch_space.stem_mid_widths()
        for r_idx, resolution in enumerate(arch_space.resolutions):
            size = _conv_out(resolution, 2)
            for (m_idx, mid), (w_idx, out), (d_idx, depth) in itertools.product(
                    enumerate(mid_widths), enumerate(stem_widths), enumerate(arch_space.stem_depths)):
                residual = depth == 3  # the stem's residual conv runs
                self._tables["macs"][1][m_idx, w_idx, d_idx, r_idx] = size * size * 9 * mid * (3 + residual * mid + out)
                self._tables["params"][1][m_idx, w_idx, d_idx, r_idx] = (
                    9 * mid * (3 + residual * mid + out) + 2 * mid * (1 + residual) + 2 * out)
            size = _conv_out(size, 2)  # max pool 3x3/2
            block = 0
            for s in range(n_stages):
                in_widths = arch_space.stage_widths(s - 1) if s else stem_widths
                for b in range(arch_space.stage_num_blocks(s)):
                    stride = arch_space.stage_strides[s] if b == 0 else 1
                    out_size = _conv_out(size, stride)
                    shortcut = b == 0 and not (stride == 1 and in_widths == arch_space.stage_widths(s))
                    for (i_idx, c_in), (o_idx, c_out), (e_idx, expand) in itertools.product(
                            enumerate(in_widths if b == 0 else arch_space.stage_widths(s)),
                            enumerate(arch_space.stage_widths(s)), enumerate(arch_space.expand_ratios)):
                        mid = arch_space.mid_channels(c_out, expand)
                        macs = size * size * c_in * mid + out_size * out_size * mid * (9 * mid + c_out)
                        params = c_in * mid + 9 * mid * mid + mid * c_out + 4 * mid + 2 * c_out
                        if shortcut:
                            macs += out_size * out_size * c_in * c_out
                            params += c_in * c_out + 2 * c_out
                        self._tables["macs"][0][block, i_idx, o_idx, e_idx, r_idx] = macs
                        self._tables["params"][0][block, i_idx, o_idx, e_idx, r_idx] = params
                    size = out_size
                    block += 1
        last = np.asarray(arch_space.stage_widths(n_stages - 1), dtype=np.int64)
        self._tables["macs"][2][:] = last * arch_space.num_classes
        self._tables["params"][2][:] = last * arch_space.num_classes + arch_space.num_classes
        # Per block, the index-row columns of its input width and output width.

    def _total(self, kind: str, indices: np.ndarray) -> np.ndarray:
        blocks, stem, head = self._tables[kind]
        n_r = len(self.arch_space.resolutions)
        return sum_resnet(self.arch_space, indices, (blocks, stem, np.broadcast_to(head[:, None], (len(head), n_r))))

    def _rows(self, samples: Any) -> tuple[np.ndarray, bool]:
        if isinstance(samples, Mapping):
            return self.arch_space.to_indices(samples)[None], True
        if isinstance(samples, np.ndarray):
            return self.arch_space.check_indices(samples), False
        return np.stack([self.arch_space.to_indices(s) for s in samples]), False

    def macs(self, samples: Any) -> Any:
        """Multiply-accumulates of one sample (``int``) or of a population (``(n,)`` array)."""
        indices, single = self._rows(samples)
        total = self._total("macs", indices)
        return int(total[0]) if single else total

    def params(self, samples: Any) -> Any:
        """Parameters of the frozen subnet of one sample (``int``) or of a population (array)."""
        indices, single = self._rows(samples)
        total = self._total("params", indices)
        return int(total[0]) if single else total


def _resnet_width_columns(arch_space: ResNetArchSpace) -> tuple[np.ndarray, np.ndarray]:
    """Per block, the index-row columns of its input and output width (columns: stem mid width, stem
    width, then one per stage; a stage's first block reads the width before it, the stem's for the
    first stage)."""
    widths = arch_space.width_columns.start
    return (np.array([widths + 1 + s if b == 0 else widths + 2 + s for s, b in arch_space.blocks]),
            np.array([widths + 2 + s for s, _ in arch_space.blocks]))


def sum_resnet(arch_space: ResNetArchSpace, indices: np.ndarray,
               tables: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Per index row of an OFA-ResNet space: the stem's entry ``stem[mid width, width, depth, r]``, the
    head's ``head[last stage width, r]`` and the sum over active blocks of ``blocks[block, in width, out
    width, expand, r]``. Every per-op cost model of a ResNet space (MACs, params, latency) sums this way."""
    blocks, stem, head = tables
    n_blocks, widths = arch_space.num_blocks, arch_space.width_columns.start
    in_column, out_column = _resnet_width_columns(arch_space)
    r = indices[:, -1]
    per_block = blocks[np.arange(n_blocks)[None, :], indices[:, in_column], indices[:, out_column],
                       indices[:, :n_blocks], r[:, None]]
    total = stem[indices[:, widths], indices[:, widths + 1], indices[:, n_blocks], r]
    return total + head[indices[:, arch_space.width_columns.stop - 1], r] + (
        per_block * arch_space.active_block_mask(indices)).sum(axis=1)


def cost_model_for(arch_space: Any) -> AnalyticCostModel | ResNetCostModel:
    """The analytic cost model of an arch description (MobileNet family or ResNet)."""
    if isinstance(arch_space, ResNetArchSpace):
        return ResNetCostModel(arch_space)
    return AnalyticCostModel(arch_space)
