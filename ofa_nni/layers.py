"""Static (plain PyTorch) layers of OFA-MobileNetV3 subnets: what ``freeze`` returns and exports.

Only ``torch.nn`` layers are used, so a frozen subnet can be saved, scripted, traced and exported
to ONNX without this package's supernet code.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ofa_nni.errors import InvalidInputError

__all__ = [
    "make_activation",
    "resize_to_resolution",
    "init_weights_",
    "ConvBNAct",
    "SqueezeExcite",
    "MBConvBlock",
    "MobileNetV3Subnet",
]


def make_activation(name: str) -> nn.Module:
    """``"relu"``, ``"relu6"`` (ProxylessNAS) or ``"hswish"`` (h-swish: x * relu6(x + 3) / 6,
    MobileNetV3)."""
    if name == "relu":
        return nn.ReLU()
    if name == "relu6":
        return nn.ReLU6()
    if name == "hswish":
        return nn.Hardswish()
    raise InvalidInputError(f"unknown activation {name!r}; allowed: 'relu', 'relu6', 'hswish'")


def resize_to_resolution(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """Resize a batch of images to ``resolution`` (bilinear; antialiased when shrinking).

    A no-op when the batch already has that size, which is how data pipelines that produce the
    active resolution themselves (and OFA's equivalence tests) see it.
    """
    height, width = x.shape[-2], x.shape[-1]
    if height == resolution and width == resolution:
        return x
    shrink = bool(height > resolution or width > resolution)
    return F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=shrink)


def init_weights_(module: nn.Module) -> None:
    """OFA's initialisation ('he_fout'): conv weights N(0, sqrt(2 / (k*k*out))), BN 1/0, linear
    U(-1/sqrt(in), 1/sqrt(in)), biases 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            if m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(m.weight.shape[1])
            nn.init.uniform_(m.weight, -bound, bound)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class ConvBNAct(nn.Module):
    """Conv2d (no bias) + optional BatchNorm2d + optional activation."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        activation: str | None = "hswish",
        use_bn: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels) if use_bn else None
        self.act = make_activation(activation) if activation else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.act is not None:
            x = self.act(x)
        return x


class SqueezeExcite(nn.Module):
    """Squeeze-and-excite of MobileNetV3: mean pool, 1x1 reduce + ReLU, 1x1 expand + h-sigmoid."""

    def __init__(self, channels: int, reduced_channels: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced_channels, 1, bias=True)
        self.expand = nn.Conv2d(reduced_channels, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean((2, 3), keepdim=True)
        scale = F.hardsigmoid(self.expand(F.relu(self.reduce(scale))))
        return x * scale


class MBConvBlock(nn.Module):
    """Inverted-residual block (MobileNetV2/V3): 1x1 expand, kxk depthwise, optional SE, 1x1 project.

    The attribute names match :class:`ofa_nni.elastic.ElasticMBConv`, so freezing copies weights by
    name.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        mid_channels: int,
        kernel_size: int,
        stride: int,
        activation: str,
        se_channels: int | None = None,
        has_expand_conv: bool = True,
        allow_residual: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.mid_channels, self.kernel_size, self.stride = mid_channels, kernel_size, stride
        if has_expand_conv:
            self.expand_conv: nn.Conv2d | None = nn.Conv2d(in_channels, mid_channels, 1, bias=False)
            self.expand_bn: nn.BatchNorm2d | None = nn.BatchNorm2d(mid_channels)
        else:
            if mid_channels != in_channels:
                raise InvalidInputError("a block without expand conv needs mid_channels == in_channels")
            self.expand_conv, self.expand_bn = None, None
        self.depthwise_conv = nn.Conv2d(
            mid_channels, mid_channels, kernel_size, stride, kernel_size // 2, groups=mid_channels, bias=False
        )
        self.depthwise_bn = nn.BatchNorm2d(mid_channels)
        self.se = SqueezeExcite(mid_channels, se_channels) if se_channels else None
        self.project_conv = nn.Conv2d(mid_channels, out_channels, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(out_channels)
        self.act = make_activation(activation)
        # ProxylessNAS's first block has no shortcut even where the shapes would allow one.
        self.residual = allow_residual and stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if self.expand_conv is not None and self.expand_bn is not None:
            out = self.act(self.expand_bn(self.expand_conv(out)))
        out = self.act(self.depthwise_bn(self.depthwise_conv(out)))
        if self.se is not None:
            out = self.se(out)
        out = self.project_bn(self.project_conv(out))
        return out + x if self.residual else out


class MobileNetV3Subnet(nn.Module):
    """A static OFA-MobileNetV3 or OFA-ProxylessNAS subnet (what the spaces' ``freeze`` returns).

    MobileNetV3 head: final expand, pool, feature mix. ProxylessNAS head (``final_expand=None``):
    feature mix, then pool. Inputs of another size are resized to :attr:`resolution` first, so the
    subnet computes the same function as the supernet with its sample active.
    """

    def __init__(
        self,
        *,
        resolution: int,
        stem: ConvBNAct,
        first_block: MBConvBlock,
        blocks: list[MBConvBlock],
        final_expand: ConvBNAct | None,
        feature_mix: ConvBNAct,
        classifier: nn.Linear,
        dropout: float = 0.0,
        arch: str = "",
    ) -> None:
        super().__init__()
        self.resolution = int(resolution)
        self.arch = arch
        self.stem = stem
        self.first_block = first_block
        self.blocks = nn.Sequential(*blocks)
        self.final_expand = final_expand
        self.feature_mix = feature_mix
        self.dropout = nn.Dropout(dropout)
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = resize_to_resolution(x, self.resolution)
        x = self.first_block(self.stem(x))
        x = self.blocks(x)
        # The supernet's head is the same code (written out: TorchScript cannot pass modules around).
        if self.final_expand is not None:  # MobileNetV3: final expand, pool, feature mix
            x = self.feature_mix(self.final_expand(x).mean((2, 3), keepdim=True))
        else:  # ProxylessNAS: feature mix, pool
            x = self.feature_mix(x).mean((2, 3), keepdim=True)
        return self.classifier(self.dropout(torch.flatten(x, 1)))

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, arch={self.arch!r}"
