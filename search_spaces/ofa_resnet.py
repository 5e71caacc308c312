"""OFA-ResNet50 (Cai et al., ICLR 2020; mit-han-lab's ``OFAResNets``) as an NNI one-shot search space.

Labels, arch strings and features are :class:`~ofa_nni.resnet_arch.ResNetArchSpace`'s; the runtime
shared with the MobileNet spaces (activation, samples, costs, supernet file, NNI hooks) is
:class:`~search_spaces.elastic_mobile.OFASupernet`'s.

Layout (defaults = the released ``ofa_resnet50``: depth {0, 1, 2}, expand {0.2, 0.25, 0.35}, width
{0.65, 0.8, 1.0})::

    input -> resize to resolution -> stem: conv 3x3/2 (32), residual conv 3x3 (elastic: skipped),
          conv 3x3 (64), max pool 3x3/2 -> 4 stages of bottlenecks (256, 512, 1024, 2048; 2+d, 2+d,
          4+d, 2+d blocks; strides 1, 2, 2, 2; ResNet-D shortcut: avg pool + 1x1 conv)
          -> global pool -> classifier
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import nni
import torch
from torch import nn

from ofa_nni.arch import DEFAULT_RESOLUTIONS, Sample
from ofa_nni.costs import ResNetCostModel
from ofa_nni.resnet_arch import ResNetArchSpace
from ofa_nni.resnet_layers import ElasticBottleneck, ElasticConvBNAct, ElasticLinear, ResNetSubnet, stem_forward
from search_spaces.elastic_mobile import InputResolution, OFASupernet, _ChoiceModule
from search_spaces.registry import register_space

__all__ = ["OFAResNetSpace", "ResNetStem", "ResNetStage"]


class ResNetStem(_ChoiceModule):
    """The input stem with its elastic depth (the residual conv) and the widths of its convs."""

    def __init__(self, arch: ResNetArchSpace) -> None:
        super().__init__()
        self.mid_widths, self.widths, self.width_mults = arch.stem_mid_widths(), arch.stem_widths(), arch.width_mults
        self.conv1 = ElasticConvBNAct(3, max(self.mid_widths), 3, stride=2)
        self.conv2 = ElasticConvBNAct(max(self.mid_widths), max(self.mid_widths), 3)
        self.conv3 = ElasticConvBNAct(max(self.mid_widths), max(self.widths), 3)
        self.add_mutable(nni.choice(arch.STEM_DEPTH_LABEL, list(arch.stem_depths)))
        self.add_mutable(nni.choice(arch.STEM_MID_WIDTH_LABEL, list(arch.width_mults)))
        self.add_mutable(nni.choice(arch.STEM_WIDTH_LABEL, list(arch.width_mults)))
        self.depth, self.mid_width, self.width = max(arch.stem_depths), arch.width_mults[-1], arch.width_mults[-1]

    def activate(self, sample: Mapping[str, Any]) -> None:
        self.depth = int(sample[ResNetArchSpace.STEM_DEPTH_LABEL])
        self.mid_width = sample[ResNetArchSpace.STEM_MID_WIDTH_LABEL]
        self.width = sample[ResNetArchSpace.STEM_WIDTH_LABEL]
        mid = self.mid_widths[self.width_mults.index(self.mid_width)]
        self.conv1.out_channels = self.conv2.out_channels = mid
        self.conv3.out_channels = self.widths[self.width_mults.index(self.width)]

    def active_sample(self) -> Sample:
        return {ResNetArchSpace.STEM_DEPTH_LABEL: self.depth, ResNetArchSpace.STEM_MID_WIDTH_LABEL: self.mid_width,
                ResNetArchSpace.STEM_WIDTH_LABEL: self.width}

    @property
    def residual(self) -> bool:
        return self.depth == 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return stem_forward(x, self.conv1, self.conv2 if self.residual else None, self.conv3)

    def to_static(self) -> list[Any]:
        mid = self.conv1.out_channels
        return [self.conv1.to_static(3), self.conv2.to_static(mid) if self.residual else None,
                self.conv3.to_static(mid)]


class ResNetStage(_ChoiceModule):
    """A stage of elastic bottlenecks: elastic depth (the first ``depth`` run), width and ratios."""

    def __init__(self, blocks: Sequence[ElasticBottleneck], *, stage: int, arch: ResNetArchSpace) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.depth_label, self.width_label = arch.depth_label(stage), arch.width_label(stage)
        self.expand_labels = [arch.expand_label(stage, b) for b in range(len(blocks))]
        self.widths, self.width_mults = arch.stage_widths(stage), arch.width_mults
        self.add_mutable(nni.choice(self.depth_label, list(arch.stage_depths(stage))))
        self.add_mutable(nni.choice(self.width_label, list(arch.width_mults)))
        for label in self.expand_labels:
            self.add_mutable(nni.choice(label, list(arch.expand_ratios)))
        self.depth, self.width = len(blocks), arch.width_mults[-1]

    def bottlenecks(self) -> list[ElasticBottleneck]:
        return [block for block in self.blocks if isinstance(block, ElasticBottleneck)]

    def activate(self, sample: Mapping[str, Any]) -> None:
        self.depth = int(sample[self.depth_label])
        self.width = sample[self.width_label]
        channels = self.widths[self.width_mults.index(self.width)]
        for block, label in zip(self.bottlenecks(), self.expand_labels, strict=True):
            block.out_channels, block.expand_ratio = channels, sample[label]

    def active_sample(self) -> Sample:
        sample: Sample = {self.depth_label: self.depth, self.width_label: self.width}
        sample.update({label: block.expand_ratio
                       for block, label in zip(self.bottlenecks(), self.expand_labels, strict=True)})
        return sample

    def active_blocks(self) -> list[ElasticBottleneck]:
        return self.bottlenecks()[: self.depth]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks[: self.depth]:
            x = block(x)
        return x


@register_space("ofa-resnet50")
class OFAResNetSpace(OFASupernet):
    """The OFA-ResNet50 elastic supernet as an NNI ``ModelSpace`` (keyword-only arguments).

    Args:
        depths, expand_ratios, width_mults, resolutions, base_depths, base_widths, stage_strides,
            num_classes: the space (see :class:`~ofa_nni.resnet_arch.ResNetArchSpace`; defaults are
            the released supernet's).
        dropout: Dropout before the classifier (OFA trains ResNet50 with 0.1).
        bn_momentum, bn_eps: BatchNorm settings (the reference's: 0.1, 1e-5).

    Example:
        >>> space = OFAResNetSpace(num_classes=10)
        >>> space.activate(space.ofa_sample(dict(d=2, e=0.35, w=2, r=224)))   # the largest subnet
        >>> subnet = space.freeze(space.random_sample(0))
    """

    arch_space: ResNetArchSpace
    cost_model: ResNetCostModel

    def __init__(
        self,
        *,
        depths: Sequence[int] = (0, 1, 2),
        expand_ratios: Sequence[float] = (0.2, 0.25, 0.35),
        width_mults: Sequence[float] = (0.65, 0.8, 1.0),
        resolutions: Sequence[int] = DEFAULT_RESOLUTIONS,
        base_depths: Sequence[int] = (2, 2, 4, 2),
        base_widths: Sequence[int] = (64, 256, 512, 1024, 2048),
        stage_strides: Sequence[int] = (1, 2, 2, 2),
        num_classes: int = 1000,
        dropout: float = 0.1,
        bn_momentum: float = 0.1,
        bn_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self._check_settings(dropout=dropout, bn_momentum=bn_momentum, bn_eps=bn_eps)
        arch = ResNetArchSpace(
            depths=tuple(depths), expand_ratios=tuple(expand_ratios), width_mults=tuple(width_mults),
            resolutions=tuple(resolutions), base_depths=tuple(base_depths), base_widths=tuple(base_widths),
            stage_strides=tuple(stage_strides), num_classes=num_classes,
        )
        self.arch_space, self.cost_model, self.dropout_rate = arch, ResNetCostModel(arch), dropout
        self.bn_settings = (float(bn_momentum), float(bn_eps))
        self.input_resolution = InputResolution(arch.resolutions)
        self.stem = ResNetStem(arch)
        stages, in_widths = [], arch.stem_widths()
        for s in range(arch.num_stages):
            blocks = [
                ElasticBottleneck(in_widths if b == 0 else arch.stage_widths(s), arch.stage_widths(s),
                                  arch.expand_ratios, arch.stage_strides[s] if b == 0 else 1)
                for b in range(arch.stage_num_blocks(s))
            ]
            stages.append(ResNetStage(blocks, stage=s, arch=arch))
            in_widths = arch.stage_widths(s)
        self.stages = nn.ModuleList(stages)
        self.dropout = nn.Dropout(dropout)
        self.classifier = ElasticLinear(max(in_widths), arch.num_classes)
        self._initialize(bn_momentum, bn_eps)

    @classmethod
    def kwargs_from_arch_signature(cls, signature: Mapping[str, Any]) -> dict[str, Any]:
        """This class's arguments for a :meth:`ResNetArchSpace.signature` (all but the layout)."""
        return {key: value for key, value in signature.items() if key != "layout"}

    def space_kwargs(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this space (JSON-able; what supernet files record)."""
        momentum, eps = self.bn_settings
        return {**self.kwargs_from_arch_signature(self.arch_space.signature()), "dropout": self.dropout_rate,
                "bn_momentum": momentum, "bn_eps": eps}

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(self.input_resolution(x))
        for stage in self.stages:
            x = stage(x)
        return self.classifier(self.dropout(x.mean((2, 3))))

    # ------------------------------------------------------------- the runtime
    def resnet_stages(self) -> list[ResNetStage]:
        return [stage for stage in self.stages if isinstance(stage, ResNetStage)]

    def _choice_modules(self) -> list[_ChoiceModule]:
        return [self.input_resolution, self.stem, *self.resnet_stages()]

    def elastic_blocks(self) -> list[ElasticBottleneck]:
        """Every bottleneck of the supernet, active or not, in order."""
        return [block for stage in self.resnet_stages() for block in stage.bottlenecks()]

    def freeze(self, sample: Mapping[str, Any] | str) -> ResNetSubnet:  # type: ignore[override]
        """A static :class:`~ofa_nni.resnet_layers.ResNetSubnet` equal to the supernet with ``sample``
        active (channel and BN slices copied, inactive blocks and a skipped stem conv dropped). The
        supernet's active sample is left as it was."""
        previous = self.active_sample()
        sample = self.activate(sample)
        try:
            stem = self.stem.to_static()
            blocks, channels = [], self.stem.conv3.out_channels
            for stage in self.resnet_stages():
                for block in stage.active_blocks():
                    blocks.append(block.to_static(channels))
                    channels = block.out_channels
            classifier = self.classifier.to_static(channels)
            subnet = ResNetSubnet(resolution=sample[self.arch_space.RESOLUTION_LABEL], stem=stem, blocks=blocks,
                                  classifier=classifier, dropout=self.dropout_rate,
                                  arch=self.arch_space.format(sample))
        finally:
            self.activate(previous)
        return subnet.train(self.training)

    def sort_channels(self, trained_expand_ratios: Sequence[float] | None = None) -> None:
        """Sort every bottleneck's middle channels by importance (the reference's
        ``re_organize_middle_weights``, its step before the expand phase), keeping the channel sets
        of ``trained_expand_ratios`` (default: the largest ratio)."""
        for block in self.elastic_blocks():
            block.sort_channels(trained_expand_ratios)

    # ------------------------------------------------------- mit-han-lab's OFA
    @classmethod
    def from_ofa_state_dict(cls, state_dict: Mapping[str, Any], **space_kwargs: Any) -> OFAResNetSpace:
        """Build a space holding the weights of the reference's ``OFAResNets`` (a released checkpoint,
        with or without its ``state_dict`` wrapper, or the network's ``state_dict()``).

        ``space_kwargs`` describe the checkpoint's space (defaults: the released one). A checkpoint of
        another layout, or keys and shapes that do not match, raise an InvalidInputError naming them.
        """
        from ofa_nni.resnet_weights import convert_ofa_resnet_state_dict

        space = cls(**space_kwargs)
        space.load_state_dict(convert_ofa_resnet_state_dict(state_dict, space.state_dict(), space.arch_space))
        return space

    def ofa_sample(self, settings: Mapping[str, Any]) -> Sample:
        """Our sample for the reference's ``set_active_subnet(d=..., e=..., w=...)`` keyword arguments
        plus ``"r"`` (the resolution); :meth:`ofa_settings` is the reverse."""
        from ofa_nni.resnet_weights import resnet_sample_from_ofa_settings

        return resnet_sample_from_ofa_settings(settings, self.arch_space)

    def ofa_settings(self, sample: Mapping[str, Any] | str) -> dict[str, Any]:
        """The reference's ``dict(d=[...], e=[...], w=[...], r=...)`` for ``sample`` (a dict or an arch
        string): ``net.set_active_subnet(**settings)`` activates the same subnet there (it ignores
        ``r``: feed it inputs of that resolution)."""
        from ofa_nni.resnet_weights import resnet_ofa_settings

        return resnet_ofa_settings(sample, self.arch_space)
