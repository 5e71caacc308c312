"""OFA-MobileNetV3 (Cai et al., ICLR 2020) as an NNI one-shot search space.

The space *is* the weight-sharing supernet: its mutables are ``nni.choice`` s labelled as in
:mod:`ofa_nni.arch` (``stage{s}.block{b}.kernel``, ``stage{s}.block{b}.expand``, ``stage{s}.depth``,
``resolution``) and every one of them lives in a supernet module (:class:`ElasticStage`,
:class:`InputResolution`) that NNI's one-shot strategies resample. ``freeze(sample)`` returns a
static :class:`~ofa_nni.layers.MobileNetV3Subnet` with the supernet's weights (transformed
kernels baked in, BN slices copied). The runtime is :class:`~search_spaces.elastic_mobile.OFAMobileSpace`'s.

Layout (defaults = the paper's space, 7,678,880 parameters at 1000 classes)::

    input -> resize to resolution -> stem 3x3/2 (16, h-swish) -> first MBConv (k3 e1, 16)
          -> 5 elastic stages (24, 40, 80, 112, 160; up to 4 blocks; k{3,5,7}; e{3,4,6})
          -> 1x1 conv 960 (BN, h-swish) -> global pool -> 1x1 conv 1280 (h-swish) -> classifier
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ofa_nni.arch import DEFAULT_RESOLUTIONS, ArchSpace
from search_spaces.elastic_mobile import ElasticStage, InputResolution, OFAMobileSpace
from search_spaces.registry import register_space

__all__ = ["OFAMobileNetV3Space", "ElasticStage", "InputResolution"]


@register_space("ofa-mbv3")
class OFAMobileNetV3Space(OFAMobileSpace):
    """The OFA-MobileNetV3 elastic supernet as an NNI ``ModelSpace`` (keyword-only arguments).

    Args:
        kernel_sizes, expand_ratios, depths, resolutions, base_widths, width_mult, num_classes:
            the space (see :class:`ofa_nni.arch.ArchSpace`; defaults are the paper's).
        stage_strides, stage_activations, stage_se: per elastic stage (defaults: MobileNetV3-Large).
        dropout: Dropout before the classifier (OFA: 0.1).
        bn_momentum, bn_eps: BatchNorm settings (OFA: 0.1, 1e-5).

    Example:
        >>> space = OFAMobileNetV3Space(num_classes=10)
        >>> sample = space.random_sample(0)
        >>> space.activate(sample); logits = space(images)   # the supernet with the sample active
        >>> subnet = space.freeze(sample)                    # static nn.Module, same outputs
    """

    def __init__(
        self,
        *,
        kernel_sizes: Sequence[int] = (3, 5, 7),
        expand_ratios: Sequence[float] = (3, 4, 6),
        depths: Sequence[int] = (2, 3, 4),
        resolutions: Sequence[int] = DEFAULT_RESOLUTIONS,
        base_widths: Sequence[int] = (16, 16, 24, 40, 80, 112, 160, 960, 1280),
        stage_strides: Sequence[int] = (2, 2, 2, 1, 2),
        stage_activations: Sequence[str] = ("relu", "relu", "hswish", "hswish", "hswish"),
        stage_se: Sequence[bool] = (False, True, False, True, True),
        width_mult: float = 1.0,
        num_classes: int = 1000,
        dropout: float = 0.1,
        bn_momentum: float = 0.1,
        bn_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        arch = ArchSpace(
            kernel_sizes=tuple(kernel_sizes),
            expand_ratios=tuple(expand_ratios),
            depths=tuple(depths),
            resolutions=tuple(resolutions),
            base_widths=tuple(base_widths),
            stage_strides=tuple(stage_strides),
            stage_activations=tuple(stage_activations),
            stage_se=tuple(stage_se),  # ArchSpace checks each is a bool: bool('no') would be True
            width_mult=width_mult,
            num_classes=num_classes,
        )
        self._build(arch, dropout=dropout, bn_momentum=bn_momentum, bn_eps=bn_eps)

    def space_kwargs(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this space (JSON-able; what supernet files record)."""
        return {**self.arch_space.signature(), "dropout": self.dropout_rate}
