"""What OFA's MobileNet-family spaces share: the elastic stage and resolution modules, and the base
class of :class:`~search_spaces.OFAMobileNetV3Space` and :class:`~search_spaces.OFAProxylessNASSpace`.

A space *is* its weight-sharing supernet: its mutables are ``nni.choice`` s labelled as in
:mod:`ofa_nni.arch` and every one of them lives in a supernet module (:class:`ElasticStage`,
:class:`InputResolution`) that NNI's one-shot strategies resample. A subclass builds its network
with :meth:`OFAMobileSpace._build` from an :class:`~ofa_nni.arch.ArchSpace` (whose ``layout`` says
which head) and says how it is rebuilt (:meth:`OFAMobileSpace.space_kwargs`).
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import nni
import torch
from nni.nas.nn.pytorch import ModelSpace
from nni.nas.oneshot.pytorch.supermodule.base import BaseSuperNetModule
from torch import nn

from ofa_nni.arch import ArchSpace, Sample
from ofa_nni.costs import AnalyticCostModel
from ofa_nni.elastic import ElasticMBConv
from ofa_nni.errors import InvalidInputError
from ofa_nni.layers import ConvBNAct, MBConvBlock, MobileNetV3Subnet, init_weights_, resize_to_resolution

__all__ = ["OFASupernet", "OFAMobileSpace", "ElasticStage", "InputResolution"]

_Space = TypeVar("_Space", bound="OFASupernet")


class _ChoiceModule(BaseSuperNetModule):
    """A supernet module owning some ``nni.choice`` s: resample/export fill in its labels."""

    def _labels(self) -> list[tuple[str, list[Any]]]:
        return [(m.label, list(m.values)) for m in self.mutables]  # type: ignore[attr-defined]

    def resample(self, memo: dict[str, Any]) -> dict[str, Any]:
        sampled = {label: memo[label] if label in memo else random.choice(values) for label, values in self._labels()}
        self.activate(sampled)
        return {label: value for label, value in sampled.items() if label not in memo}

    def export(self, memo: dict[str, Any]) -> dict[str, Any]:
        active = self.active_sample()
        return {label: value for label, value in active.items() if label not in memo}

    def activate(self, sample: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def active_sample(self) -> Sample:
        raise NotImplementedError


class InputResolution(_ChoiceModule):
    """Resizes the input batch to the active resolution (a no-op when it already has that size)."""

    def __init__(self, resolutions: Sequence[int], label: str = ArchSpace.RESOLUTION_LABEL) -> None:
        super().__init__()
        self.label = label
        self.add_mutable(nni.choice(label, list(resolutions)))
        self.resolution = max(resolutions)

    def activate(self, sample: Mapping[str, Any]) -> None:
        self.resolution = int(sample[self.label])

    def active_sample(self) -> Sample:
        return {self.label: self.resolution}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return resize_to_resolution(x, self.resolution)


class ElasticStage(_ChoiceModule):
    """A stage of elastic MBConv blocks with elastic depth: the first ``depth`` blocks run."""

    def __init__(self, blocks: Sequence[ElasticMBConv], *, stage: int, arch: ArchSpace) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.depth_label = arch.depth_label(stage)
        self.kernel_labels = [arch.kernel_label(stage, b) for b in range(len(blocks))]
        self.expand_labels = [arch.expand_label(stage, b) for b in range(len(blocks))]
        # A fixed-depth stage (ProxylessNAS's last) has a depth label with its one value.
        self.add_mutable(nni.choice(self.depth_label, list(arch.stage_depths(stage))))
        for kernel_label, expand_label in zip(self.kernel_labels, self.expand_labels, strict=True):
            self.add_mutable(nni.choice(kernel_label, list(arch.kernel_sizes)))
            self.add_mutable(nni.choice(expand_label, list(arch.expand_ratios)))
        self.depth = len(blocks)

    def activate(self, sample: Mapping[str, Any]) -> None:
        self.depth = int(sample[self.depth_label])
        for block, kernel_label, expand_label in zip(self.blocks, self.kernel_labels, self.expand_labels, strict=True):
            assert isinstance(block, ElasticMBConv)
            block.kernel_size = int(sample[kernel_label])
            block.expand_ratio = sample[expand_label]

    def active_sample(self) -> Sample:
        sample: Sample = {self.depth_label: self.depth}
        for block, kernel_label, expand_label in zip(self.blocks, self.kernel_labels, self.expand_labels, strict=True):
            assert isinstance(block, ElasticMBConv)
            sample[kernel_label] = block.kernel_size
            sample[expand_label] = block.expand_ratio
        return sample

    def active_blocks(self) -> list[ElasticMBConv]:
        return [block for block in self.blocks[: self.depth] if isinstance(block, ElasticMBConv)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks[: self.depth]:
            x = block(x)
        return x


def _keep_supernet_modules(module: nn.Module, name: str, memo: dict[str, Any], mutate_kwargs: dict[str, Any]) -> Any:
    """NNI mutation hook: our choice modules are already supernet modules; keep them as they are
    (and stop NNI's ``no_default_hook`` from calling their mutables dangling)."""
    return isinstance(module, _ChoiceModule)


class OFASupernet(ModelSpace):
    """What every OFA space's supernet shares (MobileNet family and ResNet): activation of samples,
    samples, analytic costs, the supernet file and NNI's hooks. A subclass builds its modules, sets
    :attr:`arch_space`, :attr:`cost_model` and :attr:`dropout_rate`, and lists its choice modules."""

    space_name: str  # set by register_space
    arch_space: Any  # an ofa_nni.arch.ChoiceSpace
    cost_model: Any  # MACs and params of index rows and samples
    dropout_rate: float

    def _choice_modules(self) -> list[_ChoiceModule]:
        raise NotImplementedError

    @staticmethod
    def _check_settings(*, dropout: float, bn_momentum: float, bn_eps: float) -> None:
        if not 0.0 <= dropout < 1.0:
            raise InvalidInputError(f"dropout must be in [0, 1), got {dropout}")
        if not 0.0 <= bn_momentum <= 1.0:  # the weight of a new batch in BatchNorm's running statistics
            raise InvalidInputError(f"bn_momentum must be in [0, 1], got {bn_momentum}")
        if not (0.0 < bn_eps < 1.0):  # added to the variance: <= 0 divides by zero, >= 1 swamps it
            raise InvalidInputError(f"bn_eps must be in (0, 1), got {bn_eps}")

    def _initialize(self, bn_momentum: float, bn_eps: float) -> None:
        """OFA's weight initialisation and the BN settings on every batch norm."""
        init_weights_(self)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum, module.eps = bn_momentum, bn_eps

    def space_kwargs(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this space (JSON-able; what supernet files record)."""
        raise NotImplementedError

    @classmethod
    def kwargs_from_arch_signature(cls, signature: Mapping[str, Any]) -> dict[str, Any]:
        """This class's keyword arguments for an :meth:`ArchSpace.signature` of one of its spaces (what
        training checkpoints record); MobileNetV3's arguments are the signature's fields."""
        return dict(signature)

    def save(self, path: str | Path, *, history: Sequence[Mapping[str, Any]] = ()) -> Path:
        """Write the supernet file (weights and arguments; :mod:`search_spaces.supernet_file`)."""
        from search_spaces.supernet_file import save_supernet

        return save_supernet(self, path, history=history)

    @classmethod
    def load(cls: type[_Space], path: str | Path, *, map_location: str | torch.device = "cpu") -> _Space:
        """The space saved in ``path`` (a supernet file or a training checkpoint), in eval mode."""
        from search_spaces.supernet_file import load_supernet

        space = load_supernet(path, map_location=map_location)
        if not isinstance(space, cls):
            raise InvalidInputError(f"{str(path)!r} holds a {type(space).__name__} supernet, not {cls.__name__}")
        return space

    # ------------------------------------------------------------- the runtime
    def activate(self, sample: Mapping[str, Any] | str) -> Sample:
        """Make ``sample`` (a dict or an arch string) the active subnet; returns it validated."""
        checked: Sample = self.arch_space.parse(sample) if isinstance(sample, str) else self.arch_space.validate(sample)
        for module in self._choice_modules():
            module.activate(checked)
        return checked

    def active_sample(self) -> Sample:
        """The sample that is active now."""
        sample: Sample = {}
        for module in self._choice_modules():
            sample.update(module.active_sample())
        return {label: sample[label] for label in self.arch_space.labels}

    def random_sample(self, rng: Any = None) -> Sample:
        """A uniformly random sample (``rng``: a seed or ``numpy.random.Generator``)."""
        return self.arch_space.random_sample(rng)

    def min_sample(self) -> Sample:
        return self.arch_space.min_sample()

    def max_sample(self) -> Sample:
        return self.arch_space.max_sample()

    def macs(self, sample: Mapping[str, Any]) -> int:
        """Multiply-accumulates of ``sample``'s subnet, computed analytically (no forward pass)."""
        return self.cost_model.macs(self.arch_space.validate(sample))

    def params(self, sample: Mapping[str, Any]) -> int:
        """Parameters of ``sample``'s frozen subnet, computed analytically."""
        return self.cost_model.params(self.arch_space.validate(sample))

    # -------------------------------------------------------------- NNI hooks
    def extra_oneshot_hooks(self, strategy: Any) -> list[Callable[..., Any]]:
        """Called by NNI's one-shot strategies: keep our supernet modules as they are."""
        return [_keep_supernet_modules]


class OFAMobileSpace(OFASupernet):
    """Base of the OFA MobileNet-family spaces (MobileNetV3, ProxylessNAS): the runtime shared by both.

    Subclasses call :meth:`_build` in ``__init__`` and define :meth:`space_kwargs`.
    """

    space_name: str  # set by register_space
    arch_space: ArchSpace
    cost_model: AnalyticCostModel
    dropout_rate: float
    final_expand: ConvBNAct | None

    def _build(self, arch: ArchSpace, *, dropout: float, bn_momentum: float, bn_eps: float) -> None:
        """Build the supernet of ``arch`` (modules in OFA's order: stem, first block, stages, head)."""
        self._check_settings(dropout=dropout, bn_momentum=bn_momentum, bn_eps=bn_eps)
        self.arch_space = arch
        self.cost_model = AnalyticCostModel(arch)
        self.dropout_rate = dropout

        self.input_resolution = InputResolution(arch.resolutions)
        self.stem = ConvBNAct(3, arch.stem_width, 3, stride=2, activation=arch.stem_activation)
        self.first_block = MBConvBlock(
            arch.stem_width,
            arch.first_block_width,
            mid_channels=arch.stem_width,
            kernel_size=3,
            stride=1,
            activation=arch.first_block_activation,
            has_expand_conv=False,
            allow_residual=arch.layout == "mbv3",
        )
        stages = []
        for s in range(arch.num_stages):
            blocks = [
                ElasticMBConv(
                    arch.block_in_channels(s, b),
                    arch.stage_widths[s],
                    kernel_sizes=arch.kernel_sizes,
                    expand_ratios=arch.expand_ratios,
                    stride=arch.stage_strides[s] if b == 0 else 1,
                    activation=arch.stage_activations[s],
                    use_se=arch.stage_se[s],
                )
                for b in range(arch.stage_num_blocks(s))
            ]
            stages.append(ElasticStage(blocks, stage=s, arch=arch))
        self.stages = nn.ModuleList(stages)
        if arch.final_expand_width:  # MobileNetV3: final expand, pool, feature mix without BN
            self.final_expand = ConvBNAct(
                arch.stage_widths[-1], arch.final_expand_width, 1, activation=arch.head_activation
            )
            self.feature_mix = ConvBNAct(
                arch.final_expand_width, arch.feature_mix_width, 1, activation=arch.head_activation, use_bn=False
            )
        else:  # ProxylessNAS: feature mix with BN, then pool
            self.final_expand = None
            self.feature_mix = ConvBNAct(arch.stage_widths[-1], arch.feature_mix_width, 1,
                                         activation=arch.head_activation)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(arch.feature_mix_width, arch.num_classes)
        self._initialize(bn_momentum, bn_eps)

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_resolution(x)
        x = self.first_block(self.stem(x))
        for stage in self.stages:
            x = stage(x)
        if self.final_expand is not None:  # as MobileNetV3Subnet.forward
            x = self.feature_mix(self.final_expand(x).mean((2, 3), keepdim=True))
        else:
            x = self.feature_mix(x).mean((2, 3), keepdim=True)
        return self.classifier(self.dropout(torch.flatten(x, 1)))

    # ------------------------------------------------------------- the runtime
    def elastic_stages(self) -> list[ElasticStage]:
        return [stage for stage in self.stages if isinstance(stage, ElasticStage)]

    def _choice_modules(self) -> list[_ChoiceModule]:
        return [self.input_resolution, *self.elastic_stages()]

    def elastic_blocks(self) -> list[ElasticMBConv]:
        """Every elastic block of the supernet, active or not, in order."""
        return [block for stage in self.elastic_stages() for block in stage.blocks if isinstance(block, ElasticMBConv)]

    def freeze(self, sample: Mapping[str, Any] | str) -> MobileNetV3Subnet:  # type: ignore[override]
        """A static :class:`~ofa_nni.layers.MobileNetV3Subnet` equal to the supernet with ``sample``
        active: transformed kernels baked in, channel and BN slices copied, inactive blocks dropped.
        The supernet's active sample is left as it was."""
        previous = self.active_sample()
        sample = self.activate(sample)
        try:
            blocks = [block.to_static() for stage in self.elastic_stages() for block in stage.active_blocks()]
            subnet = MobileNetV3Subnet(
                resolution=sample[ArchSpace.RESOLUTION_LABEL],
                stem=copy.deepcopy(self.stem),
                first_block=copy.deepcopy(self.first_block),
                blocks=blocks,
                final_expand=copy.deepcopy(self.final_expand),
                feature_mix=copy.deepcopy(self.feature_mix),
                classifier=copy.deepcopy(self.classifier),
                dropout=self.dropout_rate,
                arch=self.arch_space.format(sample),
            )
        finally:
            self.activate(previous)
        return subnet.train(self.training)

    def sort_channels(self, trained_expand_ratios: Sequence[float] | None = None) -> None:
        """Sort every block's middle channels by importance (OFA's step before the width phase),
        keeping the channel sets of ``trained_expand_ratios`` (default: the largest ratio)."""
        for block in self.elastic_blocks():
            block.sort_channels(trained_expand_ratios)

    # ------------------------------------------------------- mit-han-lab's OFA
    @classmethod
    def from_ofa_state_dict(cls: type[_Space], state_dict: Mapping[str, Any], **space_kwargs: Any) -> _Space:
        """Build a space holding the weights of the reference's supernet (PyPI ``ofa``: a released
        checkpoint, with or without its ``state_dict`` wrapper, or the network's ``state_dict()``).

        ``space_kwargs`` describe the checkpoint's space (defaults: the released one). Keys or
        shapes that do not match raise an InvalidInputError that lists them and the settings to pass.
        """
        from ofa_nni.ofa_weights import convert_ofa_state_dict

        space = cls(**space_kwargs)
        space.load_state_dict(convert_ofa_state_dict(state_dict, space.state_dict(), space_name=cls.__name__))
        return space

    def ofa_sample(self, settings: Mapping[str, Any]) -> Sample:
        """Our sample for the reference's ``set_active_subnet(ks=..., e=..., d=...)`` keyword
        arguments plus ``"r"`` (the resolution); :meth:`ofa_settings` is the reverse."""
        from ofa_nni.ofa_weights import sample_from_ofa_settings

        return sample_from_ofa_settings(settings, space=self.arch_space)

    def ofa_settings(self, sample: Mapping[str, Any] | str) -> dict[str, Any]:
        """The reference's ``dict(ks=[...], e=[...], d=[...], r=...)`` for ``sample`` (a dict or an
        arch string): ``net.set_active_subnet(**settings)`` activates the same subnet there (it
        ignores ``r``: feed it inputs of that resolution)."""
        from ofa_nni.ofa_weights import arch_to_ofa

        return arch_to_ofa(sample, space=self.arch_space)
