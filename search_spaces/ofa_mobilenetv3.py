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

import dataclasses
from collections.abc import Sequence
from typing import Any

from ofa_nni.arch import ArchSpace
from search_spaces.elastic_mobile import ElasticStage, InputResolution, OFAMobileSpace
from search_spaces.registry import register_space

__all__ = ["OFAMobileNetV3Space", "ElasticStage", "InputResolution"]

# The defaults' one home is the arch description (the paper's space); the module reads them.
_ARCH_DEFAULTS: dict[str, Any] = {field.name: field.default for field in dataclasses.fields(ArchSpace)}


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
        kernel_sizes: Sequence[int] = _ARCH_DEFAULTS["kernel_sizes"],
        expand_ratios: Sequence[float] = _ARCH_DEFAULTS["expand_ratios"],
        depths: Sequence[int] = _ARCH_DEFAULTS["depths"],
        resolutions: Sequence[int] = _ARCH_DEFAULTS["resolutions"],
        base_widths: Sequence[int] = _ARCH_DEFAULTS["base_widths"],
        stage_strides: Sequence[int] = _ARCH_DEFAULTS["stage_strides"],
        stage_activations: Sequence[str] = _ARCH_DEFAULTS["stage_activations"],
        stage_se: Sequence[bool] = _ARCH_DEFAULTS["stage_se"],
        width_mult: float = _ARCH_DEFAULTS["width_mult"],
        num_classes: int = _ARCH_DEFAULTS["num_classes"],
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
