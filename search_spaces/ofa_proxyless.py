"""OFA-ProxylessNAS (Cai et al., ICLR 2020; mit-han-lab's ``OFAProxylessNASNets``) as an NNI one-shot
search space.

Labels, arch strings, features, freezing and costs are those of :class:`OFAMobileNetV3Space` (the
runtime is :class:`~search_spaces.elastic_mobile.OFAMobileSpace`'s); the network differs:
MobileNetV2-style blocks (relu6, no squeeze-and-excite), one more stage of a single elastic block
(its depth label ``stage6.depth`` has the one value 1) and the feature mix before the pool.

Layout (defaults = the released ``ofa_proxyless_d234_e346_k357_w1.3``)::

    input -> resize to resolution -> stem 3x3/2 (40, relu6) -> first MBConv (k3 e1, 24, no shortcut)
          -> 5 elastic stages (32, 56, 104, 128, 248; up to 4 blocks; k{3,5,7}; e{3,4,6})
          -> 1 block (416, k{3,5,7}, e{3,4,6}) -> 1x1 conv 1664 (BN, relu6) -> global pool -> classifier
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from ofa_nni.arch import proxyless_arch_space
from search_spaces.elastic_mobile import OFAMobileSpace
from search_spaces.registry import register_space

__all__ = ["OFAProxylessNASSpace"]

# The defaults' one home is the arch description (the released supernet's); the module reads them.
_ARCH_DEFAULTS: dict[str, Any] = {
    name: parameter.default for name, parameter in inspect.signature(proxyless_arch_space).parameters.items()
}
_ARCH_ARGUMENTS = tuple(_ARCH_DEFAULTS)


@register_space("ofa-proxyless")
class OFAProxylessNASSpace(OFAMobileSpace):
    """The OFA-ProxylessNAS elastic supernet as an NNI ``ModelSpace`` (keyword-only arguments).

    Args:
        kernel_sizes, expand_ratios, depths, resolutions, width_mult, num_classes: the space (see
            :class:`ofa_nni.arch.ArchSpace`; defaults are the released supernet's, width 1.3).
        base_widths: Widths before ``width_mult``: stem, first block, one per stage, feature mix
            (ProxylessNAS's 32, 16, 24, 40, 80, 96, 192, 320, 1280).
        stage_strides: Stride of each stage's first block; the last stage is the single-block one
            (ProxylessNAS: 2, 2, 2, 1, 2, 1).
        dropout: Dropout before the classifier (OFA trains with 0.1).
        bn_momentum, bn_eps: BatchNorm settings (the reference's: 0.1, 1e-3).

    Example:
        >>> space = OFAProxylessNASSpace(num_classes=10)
        >>> space.activate(space.ofa_sample(dict(ks=7, e=6, d=4, r=224)))   # the largest subnet
        >>> subnet = space.freeze(space.random_sample(0))
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
        width_mult: float = _ARCH_DEFAULTS["width_mult"],
        num_classes: int = _ARCH_DEFAULTS["num_classes"],
        dropout: float = 0.1,
        bn_momentum: float = 0.1,
        bn_eps: float = 1e-3,
    ) -> None:
        super().__init__()
        arch = proxyless_arch_space(
            kernel_sizes=kernel_sizes, expand_ratios=expand_ratios, depths=depths, resolutions=resolutions,
            base_widths=base_widths, stage_strides=stage_strides, width_mult=width_mult, num_classes=num_classes,
        )
        self.bn_settings = (float(bn_momentum), float(bn_eps))
        self._build(arch, dropout=dropout, bn_momentum=bn_momentum, bn_eps=bn_eps)

    @classmethod
    def kwargs_from_arch_signature(cls, signature: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments among a signature's fields (the others follow from the layout)."""
        return {key: value for key, value in signature.items() if key in _ARCH_ARGUMENTS}

    def space_kwargs(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this space (JSON-able; what supernet files record)."""
        signature = self.arch_space.signature()
        momentum, eps = self.bn_settings
        return {**self.kwargs_from_arch_signature(signature), "dropout": self.dropout_rate,
                "bn_momentum": momentum, "bn_eps": eps}
