"""Elastic operations of OFA (Cai et al., ICLR 2020, Sec. 3.3): one set of weights, many subnets.

* elastic kernel: the centre of the largest depthwise kernel, passed through a learned per-layer
  transformation (7x7 -> 5x5 with a 25x25 matrix, 5x5 -> 3x3 with a 9x9 one, shared by all
  channels, identity-initialised), applied progressively (7 -> 5 -> 3);
* elastic width: the first k channels of convolutions, batch norms (affine and running statistics)
  and squeeze-and-excite; channels are sorted by importance before the width phase so that the
  first k are the most important;
* elastic depth (the first d blocks of a stage) lives in the search space's stage module.

Every op is a subclass of its static ``torch.nn`` counterpart, so parameter names, initialisation
and BN utilities are the usual ones, and takes the active setting as a forward argument. Slices
are views of the full weights; the transformed kernel is computed once per forward.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ofa_nni._utils import centre_crop_range, make_divisible
from ofa_nni.errors import InvalidInputError
from ofa_nni.layers import MBConvBlock, SqueezeExcite, make_activation

__all__ = [
    "ElasticDepthwiseConv2d",
    "ElasticPointwiseConv2d",
    "ElasticBatchNorm2d",
    "ElasticSqueezeExcite",
    "ElasticMBConv",
]


class ElasticDepthwiseConv2d(nn.Conv2d):
    """Depthwise conv whose kernel size and channel count are chosen per forward.

    A kernel smaller than the largest is the centre crop of the next larger (transformed) kernel
    times a learned ``transform_<big>to<small>`` matrix of size small^2 x small^2, starting from the
    largest kernel; the matrices start as identity, i.e. plain centre cropping.
    """

    def __init__(self, max_channels: int, kernel_sizes: Sequence[int], stride: int) -> None:
        sizes = tuple(sorted(set(kernel_sizes)))
        super().__init__(max_channels, max_channels, sizes[-1], stride, sizes[-1] // 2, groups=max_channels, bias=False)
        self.kernel_sizes = sizes
        for big, small in zip(sizes[:0:-1], sizes[-2::-1], strict=True):
            self.register_parameter(f"transform_{big}to{small}", nn.Parameter(torch.eye(small * small)))

    def transform_matrix(self, big: int, small: int) -> torch.Tensor:
        matrix = getattr(self, f"transform_{big}to{small}")
        assert isinstance(matrix, torch.Tensor)
        return matrix

    def active_kernel(self, kernel_size: int, channels: int) -> torch.Tensor:
        """The ``(channels, 1, k, k)`` kernel of the active setting (transformed as in OFA)."""
        weight = self.weight if channels == self.out_channels else self.weight[:channels]
        sizes = self.kernel_sizes
        for big, small in zip(sizes[:0:-1], sizes[-2::-1], strict=True):
            if big <= kernel_size:
                break
            start, end = centre_crop_range(big, small)
            flat = weight[:, :, start:end, start:end].reshape(channels, small * small)
            weight = F.linear(flat, self.transform_matrix(big, small)).view(channels, 1, small, small)
        return weight

    def forward(self, x: torch.Tensor, kernel_size: int | None = None) -> torch.Tensor:  # type: ignore[override]
        kernel_size = self.kernel_sizes[-1] if kernel_size is None else kernel_size
        channels = x.shape[1]
        kernel = self.active_kernel(kernel_size, channels)
        return F.conv2d(x, kernel, None, self.stride, kernel_size // 2, 1, channels)


class ElasticPointwiseConv2d(nn.Conv2d):
    """1x1 conv (no bias) using the first ``in`` input and first ``out`` output channels."""

    def __init__(self, max_in_channels: int, max_out_channels: int) -> None:
        super().__init__(max_in_channels, max_out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor, out_channels: int | None = None) -> torch.Tensor:  # type: ignore[override]
        out_channels = self.out_channels if out_channels is None else out_channels
        in_channels = x.shape[1]
        weight = self.weight
        if out_channels != self.out_channels or in_channels != self.in_channels:
            weight = weight[:out_channels, :in_channels]
        return F.conv2d(x, weight)


class ElasticBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d over the first C channels of its input (affine and running statistics sliced).

    In training mode the running statistics of the active slice are updated in place, as OFA does.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        if channels == self.num_features:
            return super().forward(x)
        factor = 0.0
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        running_mean = self.running_mean[:channels] if self.running_mean is not None else None
        running_var = self.running_var[:channels] if self.running_var is not None else None
        weight = self.weight[:channels] if self.weight is not None else None
        bias = self.bias[:channels] if self.bias is not None else None
        use_batch_stats = self.training or running_mean is None
        return F.batch_norm(x, running_mean, running_var, weight, bias, use_batch_stats, factor, self.eps)


class ElasticSqueezeExcite(SqueezeExcite):
    """Squeeze-and-excite over the first C channels, reduce width make_divisible(C // 4, 8)."""

    def __init__(self, max_channels: int) -> None:
        super().__init__(max_channels, make_divisible(max_channels // 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        if channels == self.reduce.in_channels:
            return super().forward(x)
        reduced = make_divisible(channels // 4)
        bias_r = self.reduce.bias[:reduced] if self.reduce.bias is not None else None
        bias_e = self.expand.bias[:channels] if self.expand.bias is not None else None
        scale = x.mean((2, 3), keepdim=True)
        scale = F.relu(F.conv2d(scale, self.reduce.weight[:reduced, :channels], bias_r))
        scale = F.hardsigmoid(F.conv2d(scale, self.expand.weight[:channels, :reduced], bias_e))
        return x * scale


def _copy_batchnorm(source: nn.BatchNorm2d, target: nn.BatchNorm2d) -> None:
    """Copy the first ``target.num_features`` channels of every BN tensor (affine and statistics)."""
    channels = target.num_features
    state = {name: tensor[:channels] if tensor.dim() else tensor for name, tensor in source.state_dict().items()}
    target.load_state_dict(state)
    target.eps, target.momentum = source.eps, source.momentum


def _order_within_prefixes(importance: torch.Tensor, prefixes: set[int]) -> torch.Tensor:
    """Channel order, most important first, that never moves a channel across a prefix boundary:
    the first ``p`` channels stay the same set for every ``p`` in ``prefixes``."""
    channels = importance.shape[0]
    boundaries = torch.tensor(sorted(prefixes | {channels}), device=importance.device)
    group = torch.bucketize(torch.arange(channels, device=importance.device), boundaries, right=True)
    by_importance = torch.argsort(-importance, stable=True)
    return by_importance[torch.argsort(group[by_importance], stable=True)]


def _permute_batchnorm_(bn: nn.BatchNorm2d, order: torch.Tensor) -> None:
    for tensor in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
        if tensor is not None:
            tensor.data.copy_(tensor.data[order])


class ElasticMBConv(nn.Module):
    """OFA's dynamic MBConv block with elastic kernel size and expand ratio.

    The active setting is :attr:`kernel_size` and :attr:`expand_ratio` (set by the search space when
    a sample is activated). The middle width is ``make_divisible(round(in_channels * e), 8)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_sizes: Sequence[int],
        expand_ratios: Sequence[float],
        stride: int,
        activation: str,
        use_se: bool,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.kernel_sizes = tuple(sorted(kernel_sizes))
        self.expand_ratios = tuple(sorted(expand_ratios))
        self.activation = activation
        max_mid = self.mid_channels_for(self.expand_ratios[-1])
        if self.expand_ratios[-1] != 1:
            self.expand_conv: ElasticPointwiseConv2d | None = ElasticPointwiseConv2d(in_channels, max_mid)
            self.expand_bn: ElasticBatchNorm2d | None = ElasticBatchNorm2d(max_mid)
        else:
            self.expand_conv, self.expand_bn = None, None
        self.depthwise_conv = ElasticDepthwiseConv2d(max_mid, self.kernel_sizes, stride)
        self.depthwise_bn = ElasticBatchNorm2d(max_mid)
        self.se = ElasticSqueezeExcite(max_mid) if use_se else None
        self.project_conv = ElasticPointwiseConv2d(max_mid, out_channels)
        self.project_bn = ElasticBatchNorm2d(out_channels)
        # ReLU/ReLU6 in place (as OFA does): it always follows a BN, whose backward needs its input, not
        # its output, so no copy is needed, and one activation-sized allocation per ReLU is saved.
        # (In-place h-swish would gain nothing: its backward needs its input, which autograd keeps.)
        self.act = (
            nn.ReLU(inplace=True) if activation == "relu"
            else nn.ReLU6(inplace=True) if activation == "relu6"
            else make_activation(activation)
        )
        self.residual = stride == 1 and in_channels == out_channels
        # The active setting: the largest subnet until a sample is activated.
        self.kernel_size: int = self.kernel_sizes[-1]
        self.expand_ratio: float = self.expand_ratios[-1]

    def mid_channels_for(self, expand_ratio: float) -> int:
        return make_divisible(round(self.in_channels * expand_ratio))

    @property
    def mid_channels(self) -> int:
        """Middle width of the active setting."""
        return self.mid_channels_for(self.expand_ratio) if self.expand_conv is not None else self.in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if self.expand_conv is not None and self.expand_bn is not None:
            out = self.act(self.expand_bn(self.expand_conv(out, self.mid_channels)))
        out = self.act(self.depthwise_bn(self.depthwise_conv(out, self.kernel_size)))
        if self.se is not None:
            out = self.se(out)
        out = self.project_bn(self.project_conv(out))
        return out + x if self.residual else out

    @torch.no_grad()
    def to_static(self) -> MBConvBlock:
        """A plain :class:`MBConvBlock` computing this block's active setting (kernel transformed,
        channels sliced, BN statistics copied)."""
        mid = self.mid_channels
        se_channels = make_divisible(mid // 4) if self.se is not None else None
        block = MBConvBlock(
            self.in_channels,
            self.out_channels,
            mid_channels=mid,
            kernel_size=self.kernel_size,
            stride=self.stride,
            activation=self.activation,
            se_channels=se_channels,
            has_expand_conv=self.expand_conv is not None,
        )
        block.to(device=self.project_conv.weight.device, dtype=self.project_conv.weight.dtype)
        if self.expand_conv is not None and block.expand_conv is not None:
            assert self.expand_bn is not None and block.expand_bn is not None
            block.expand_conv.weight.copy_(self.expand_conv.weight[:mid])
            _copy_batchnorm(self.expand_bn, block.expand_bn)
        block.depthwise_conv.weight.copy_(self.depthwise_conv.active_kernel(self.kernel_size, mid))
        _copy_batchnorm(self.depthwise_bn, block.depthwise_bn)
        if self.se is not None and block.se is not None and se_channels is not None:
            se = self.se.state_dict()
            block.se.load_state_dict(
                {
                    "reduce.weight": se["reduce.weight"][:se_channels, :mid],
                    "reduce.bias": se["reduce.bias"][:se_channels],
                    "expand.weight": se["expand.weight"][:mid, :se_channels],
                    "expand.bias": se["expand.bias"][:mid],
                }
            )
        block.project_conv.weight.copy_(self.project_conv.weight[:, :mid])
        _copy_batchnorm(self.project_bn, block.project_bn)
        block.train(self.training)
        return block

    @torch.no_grad()
    def sort_channels(self, trained_expand_ratios: Sequence[float] | None = None) -> None:
        """Re-order middle channels by importance (L1 norm of the projection weights), OFA's step
        before the elastic-width phase.

        The channel sets of subnets already trained are kept: for every ratio in
        ``trained_expand_ratios`` (default: the largest only), the first ``mid(e)`` channels stay
        the same set, only their order changes. Hence no trained subnet's function changes; SE
        channels are permuted with them, and the SE reduce channels are sorted by the L1 norm of the
        SE expand weights.
        """
        if self.expand_conv is None:
            return  # no middle width to choose
        trained = sorted(set(trained_expand_ratios or [self.expand_ratios[-1]]))
        unknown = [e for e in trained if e not in self.expand_ratios]
        if unknown:
            raise InvalidInputError(f"trained_expand_ratios {unknown} not in this block's ratios {self.expand_ratios}")
        importance = self.project_conv.weight.abs().sum(dim=(0, 2, 3))
        order = _order_within_prefixes(importance, {self.mid_channels_for(e) for e in trained})
        self.project_conv.weight.data.copy_(self.project_conv.weight.data[:, order])
        self.depthwise_conv.weight.data.copy_(self.depthwise_conv.weight.data[order])
        _permute_batchnorm_(self.depthwise_bn, order)
        assert self.expand_bn is not None
        self.expand_conv.weight.data.copy_(self.expand_conv.weight.data[order])
        _permute_batchnorm_(self.expand_bn, order)
        if self.se is not None:
            se = self.se
            se.expand.weight.data.copy_(se.expand.weight.data[order])
            if se.expand.bias is not None:
                se.expand.bias.data.copy_(se.expand.bias.data[order])
            se.reduce.weight.data.copy_(se.reduce.weight.data[:, order])
            # SE reduce channels are sorted too, keeping the reduce widths of trained ratios as
            # prefixes (OFA sorts them freely, which changes trained subnets in the second width step).
            se_importance = se.expand.weight.abs().sum(dim=(0, 2, 3))
            se_order = _order_within_prefixes(
                se_importance, {make_divisible(self.mid_channels_for(e) // 4) for e in trained}
            )
            se.reduce.weight.data.copy_(se.reduce.weight.data[se_order])
            if se.reduce.bias is not None:
                se.reduce.bias.data.copy_(se.reduce.bias.data[se_order])
            se.expand.weight.data.copy_(se.expand.weight.data[:, se_order])
