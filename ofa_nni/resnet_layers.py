"""OFA-ResNet50's layers: the static bottleneck and subnet that ``OFAResNetSpace.freeze`` returns, and
the elastic ops of its supernet (elastic width of every convolution, elastic bottleneck ratio).

Same conventions as :mod:`ofa_nni.elastic`: the first ``k`` channels of a weight are the active
ones, batch norms slice their affine parameters and running statistics, and middle channels are
sorted by importance before the width phase (the reference's ``re_organize_middle_weights``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ofa_nni._utils import make_divisible
from ofa_nni.elastic import ElasticBatchNorm2d, _copy_batchnorm, _order_within_prefixes, _permute_batchnorm_
from ofa_nni.errors import InvalidInputError
from ofa_nni.layers import ConvBNAct, resize_to_resolution

__all__ = ["Bottleneck", "ResNetSubnet", "ElasticConvBNAct", "ElasticBottleneck", "ElasticLinear", "stem_forward"]


def _downsample(stride: int, conv_bn: nn.Module) -> nn.Sequential:
    """ResNet-D's shortcut: average pool (ceil mode, a no-op at stride 1), then 1x1 conv + BN."""
    return nn.Sequential(nn.AvgPool2d(stride, stride, ceil_mode=True), conv_bn)


class Bottleneck(nn.Module):
    """A static ResNet-D bottleneck: 1x1, 3x3 (stride), 1x1 (no activation), plus the shortcut
    (identity, or average pool + 1x1 conv + BN), then ReLU."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, stride: int,
                 identity_shortcut: bool) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(in_channels, mid_channels, 1, activation="relu")
        self.conv2 = ConvBNAct(mid_channels, mid_channels, 3, stride=stride, activation="relu")
        self.conv3 = ConvBNAct(mid_channels, out_channels, 1, activation=None)
        self.downsample = None if identity_shortcut else _downsample(
            stride, ConvBNAct(in_channels, out_channels, 1, activation=None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(self.conv3(self.conv2(self.conv1(x))) + shortcut)


def stem_forward(x: torch.Tensor, conv1: nn.Module | None, conv2: nn.Module | None, conv3: nn.Module | None) -> (
        torch.Tensor):
    """The input stem: conv 3x3/2, the residual conv 3x3 (unless skipped), conv 3x3, max pool 3x3/2."""
    assert conv1 is not None and conv3 is not None  # only the residual conv can be skipped
    x = conv1(x)
    if conv2 is not None:
        x = conv2(x) + x
    return F.max_pool2d(conv3(x), 3, 2, 1)


class ResNetSubnet(nn.Module):
    """A static OFA-ResNet subnet: input stem, bottlenecks, global pool, dropout, classifier. Inputs of
    another size are resized to :attr:`resolution` first, as the supernet does."""

    def __init__(self, *, resolution: int, stem: Sequence[ConvBNAct | None], blocks: Sequence[Bottleneck],
                 classifier: nn.Linear, dropout: float = 0.0, arch: str = "") -> None:
        super().__init__()
        self.resolution = int(resolution)
        self.arch = arch
        self.stem_conv1, self.stem_conv2, self.stem_conv3 = stem
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(dropout)
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = resize_to_resolution(x, self.resolution)
        x = self.blocks(stem_forward(x, self.stem_conv1, self.stem_conv2, self.stem_conv3))
        return self.classifier(self.dropout(x.mean((2, 3))))

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, arch={self.arch!r}"


class ElasticConvBNAct(nn.Module):
    """Conv (kxk, no bias) + BN + optional ReLU using the first ``in`` input channels (those of the
    input) and the first :attr:`out_channels` output channels."""

    def __init__(self, max_in: int, max_out: int, kernel_size: int, *, stride: int = 1, relu: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(max_in, max_out, kernel_size, stride, kernel_size // 2, bias=False)
        self.bn = ElasticBatchNorm2d(max_out)
        self.relu = relu
        self.out_channels = max_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.conv.weight[: self.out_channels, : x.shape[1]]
        x = self.bn(F.conv2d(x, weight, None, self.conv.stride, self.conv.padding))
        return F.relu(x) if self.relu else x

    def to_static(self, in_channels: int) -> ConvBNAct:
        """A :class:`~ofa_nni.layers.ConvBNAct` of the active width with these weights."""
        kernel = self.conv.kernel_size[0]
        static = ConvBNAct(in_channels, self.out_channels, kernel, stride=self.conv.stride[0],
                           activation="relu" if self.relu else None)
        static.conv.weight.data.copy_(self.conv.weight.data[: self.out_channels, :in_channels])
        assert static.bn is not None
        _copy_batchnorm(self.bn, static.bn)
        return static


class ElasticLinear(nn.Linear):
    """The classifier over the first ``in`` features (those of the input)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight[:, : x.shape[1]], self.bias)

    def to_static(self, in_features: int) -> nn.Linear:
        static = nn.Linear(in_features, self.out_features)
        static.weight.data.copy_(self.weight.data[:, :in_features])
        static.bias.data.copy_(self.bias.data)
        return static


class ElasticBottleneck(nn.Module):
    """OFA's dynamic ResNet bottleneck: elastic output width (:attr:`out_channels`, one of
    ``out_widths``) and bottleneck ratio (:attr:`expand_ratio`); the middle width is
    ``make_divisible(round(out_channels * expand_ratio), 8)``.

    The shortcut is the identity when the block keeps stride 1 and its input widths are its output
    widths (every block but a stage's first), as in the reference.
    """

    def __init__(self, in_widths: Sequence[int], out_widths: Sequence[int], expand_ratios: Sequence[float],
                 stride: int) -> None:
        super().__init__()
        self.out_widths, self.expand_ratios = tuple(out_widths), tuple(expand_ratios)
        max_in, max_out = max(in_widths), max(out_widths)
        max_mid = self.mid_channels_for(max_out, max(expand_ratios))
        self.conv1 = ElasticConvBNAct(max_in, max_mid, 1)
        self.conv2 = ElasticConvBNAct(max_mid, max_mid, 3, stride=stride)
        self.conv3 = ElasticConvBNAct(max_mid, max_out, 1, relu=False)
        self.identity_shortcut = stride == 1 and tuple(in_widths) == self.out_widths
        self.downsample = None if self.identity_shortcut else _downsample(
            stride, ElasticConvBNAct(max_in, max_out, 1, relu=False))
        self.stride = stride
        self.out_channels, self.expand_ratio = max_out, max(expand_ratios)

    @staticmethod
    def mid_channels_for(out_channels: int, expand_ratio: float) -> int:
        return make_divisible(round(out_channels * expand_ratio))

    @property
    def mid_channels(self) -> int:
        return self.mid_channels_for(self.out_channels, self.expand_ratio)

    def _shortcut_conv(self) -> ElasticConvBNAct | None:
        if self.downsample is None:
            return None
        conv = self.downsample[1]
        assert isinstance(conv, ElasticConvBNAct)
        return conv

    def _set_widths(self) -> None:
        self.conv1.out_channels = self.conv2.out_channels = self.mid_channels
        self.conv3.out_channels = self.out_channels
        shortcut = self._shortcut_conv()
        if shortcut is not None:
            shortcut.out_channels = self.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._set_widths()
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(self.conv3(self.conv2(self.conv1(x))) + shortcut)

    def to_static(self, in_channels: int) -> Bottleneck:
        """The static :class:`Bottleneck` of the active setting for ``in_channels`` inputs."""
        self._set_widths()
        block = Bottleneck(in_channels, self.mid_channels, self.out_channels, self.stride,
                           identity_shortcut=self.downsample is None)
        block.conv1 = self.conv1.to_static(in_channels)
        block.conv2 = self.conv2.to_static(self.mid_channels)
        block.conv3 = self.conv3.to_static(self.mid_channels)
        shortcut = self._shortcut_conv()
        if shortcut is not None:
            assert block.downsample is not None
            block.downsample[1] = shortcut.to_static(in_channels)
        return block.train(self.training)

    @torch.no_grad()
    def sort_channels(self, trained_expand_ratios: Sequence[float] | None = None) -> None:
        """Re-order the middle channels by importance, the reference's ``re_organize_middle_weights``:
        conv2's outputs by the L1 norm of conv3's weights, then conv1's outputs by conv2's. The channel
        sets of subnets already trained stay: for every ratio in ``trained_expand_ratios`` (default:
        the largest) the first ``mid`` channels at the full width stay the same set (the reference
        keeps them as blocks by a large offset; a stable sort within the prefixes is the same)."""
        trained = sorted(set(trained_expand_ratios or [self.expand_ratios[-1]]))
        unknown = [e for e in trained if e not in self.expand_ratios]
        if unknown:
            raise InvalidInputError(
                f"trained_expand_ratios {unknown} not in this block's ratios {list(self.expand_ratios)}")
        prefixes = {self.mid_channels_for(max(self.out_widths), e) for e in trained}
        for producer, consumer in ((self.conv2, self.conv3), (self.conv1, self.conv2)):
            importance = consumer.conv.weight.abs().sum(dim=(0, 2, 3))
            order = _order_within_prefixes(importance, prefixes)
            consumer.conv.weight.data.copy_(consumer.conv.weight.data[:, order])
            producer.conv.weight.data.copy_(producer.conv.weight.data[order])
            _permute_batchnorm_(producer.bn, order)
