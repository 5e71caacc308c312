"""OFA's specialized-network format: ``net.config`` (+ ``run.config``), read and written.

``OFAMobileNetV3.get_active_net_config()`` describes a subnet as a ``MobileNetV3`` config: the
stem (``first_conv``), the active blocks in order (``blocks``: the first block, then each stage's
active blocks; a stage's first block has no ``shortcut`` unless it keeps size and width), and the
head (``final_expand_layer``, ``feature_mix_layer``, ``classifier``). ``OFAProxylessNASNets``
writes a ``ProxylessNASNets`` config of the same shape: relu6 throughout, no squeeze-and-excite, a
first block without shortcut, a last stage of one block, and a head of ``feature_mix_layer`` (with
BN) and ``classifier``. ``OFAResNets`` writes a ``ResNets`` config: the ``input_stem`` (conv 3x3/2,
the residual conv as a ``ResidualBlock`` unless skipped, conv 3x3), the active
``ResNetBottleneckBlock`` layers (a stage starts where a block has a shortcut conv: stride 2 or a new
width) and the ``classifier``. All three are read and written here, by the space's layout.
mit-han-lab published their specialized subnets as a folder with that ``net.config`` and a
``run.config`` whose ``image_size`` is the input resolution (what ``ofa.model_zoo.ofa_specialized``
reads); older configs call the block's layer ``mobile_inverted_conv`` / ``MBInvertedConvLayer``, and
a static network's ``.config`` writes every field of a layer (both are read).

* :func:`sample_from_ofa_net_config` / :func:`read_ofa_net_config`: such a config (and resolution)
  as a sample of our space, when it is a subnet of it; otherwise an error naming the first field
  that does not fit, with what the space allows there.
* :func:`ofa_net_config` / :func:`write_ofa_net_config`: the config ``get_active_net_config()``
  writes for the same subnet of OFA's supernet (equal as JSON), and the folder with both files.

Inactive blocks do not appear in a config: their kernel and expand genes are set to the first
choice (the search's canonical form). A config holds channel counts, not width multipliers: where
two multipliers give one count (the released ResNet's stem convs: 24 at 0.65 and at 0.8), the
smaller is read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ofa_nni._artifacts import atomic_write_json
from ofa_nni.arch import ArchSpace, Sample, family_name
from ofa_nni.errors import InvalidInputError, MissingInputError
from ofa_nni.ofa_weights import arch_from_ofa
from ofa_nni.resnet_arch import ResNetArchSpace

__all__ = ["ofa_net_config", "read_ofa_net_config", "sample_from_ofa_net_config", "write_ofa_net_config"]

_ACTIVATION = {"relu": "relu", "hswish": "h_swish", "relu6": "relu6"}
_NETWORK = {"mbv3": "MobileNetV3", "proxyless": "ProxylessNASNets", "resnet": "ResNets"}
"""The network class OFA's ``get_active_net_config()`` names, per layout."""
_BLOCK_LAYERS = ("MBConvLayer", "MBInvertedConvLayer")
_ORDER = "weight_bn_act"


def _layout(arch: ArchSpace | ResNetArchSpace) -> str:
    return "resnet" if isinstance(arch, ResNetArchSpace) else arch.layout


def _settings(space: Any) -> tuple[ArchSpace | ResNetArchSpace, float, float, float]:
    """The arch space and (dropout, BN momentum, BN eps) of an arch space (the reference network's
    defaults: BN eps 1e-5 for MobileNetV3 and ResNet, 1e-3 for ProxylessNAS) or a built space."""
    if isinstance(space, (ArchSpace, ResNetArchSpace)):
        return space, 0.1, 0.1, 1e-3 if _layout(space) == "proxyless" else 1e-5
    arch = getattr(space, "arch_space", None)
    if not isinstance(arch, (ArchSpace, ResNetArchSpace)):
        raise InvalidInputError(f"space must be an ArchSpace, a ResNetArchSpace or an OFA space (OFAMobileNetV3Space, "
                                f"OFAProxylessNASSpace, OFAResNetSpace), got {type(space).__name__}")
    momentum, eps = 0.1, 1e-3 if _layout(arch) == "proxyless" else 1e-5
    if hasattr(space, "bn_settings"):  # what the spaces were built with
        momentum, eps = space.bn_settings
    else:
        for module in space.modules() if hasattr(space, "modules") else ():
            if type(module).__name__ == "BatchNorm2d":  # every BN of a space shares the settings
                momentum, eps = module.momentum, module.eps
                break
    return arch, float(getattr(space, "dropout_rate", 0.1)), float(momentum), float(eps)


def _conv(c_in: int, c_out: int, kernel: int, stride: int, *, use_bn: bool, act: str | None,
          dropout: float = 0) -> dict[str, Any]:
    return {"name": "ConvLayer", "kernel_size": kernel, "stride": stride, "dilation": 1, "groups": 1, "bias": False,
            "has_shuffle": False, "use_se": False, "in_channels": c_in, "out_channels": c_out, "use_bn": use_bn,
            "act_func": act, "dropout_rate": dropout, "ops_order": _ORDER}


def _identity(channels: int) -> dict[str, Any]:
    return {"name": "IdentityLayer", "in_channels": channels, "out_channels": channels, "use_bn": False,
            "act_func": None, "dropout_rate": 0, "ops_order": _ORDER}


def ofa_net_config(sample: Mapping[str, Any] | str, *, space: Any = None) -> dict[str, Any]:
    """The ``net.config`` of ``sample``'s subnet, as ``OFAMobileNetV3.get_active_net_config()`` (or
    ``OFAProxylessNASNets``' or ``OFAResNets``', for those spaces) writes it.

    Args:
        sample: A sample or an arch string of ``space``.
        space: An ``OFAMobileNetV3Space``, ``OFAProxylessNASSpace`` or ``OFAResNetSpace`` (its dropout
            and BN settings are written too) or an :class:`ArchSpace` / :class:`ResNetArchSpace` (our
            spaces' defaults: dropout 0.1, BN momentum 0.1, eps 1e-5 or, for ProxylessNAS, 1e-3);
            None: the default space.

    Raises:
        InvalidInputError: for a ResNet subnet OFA's layers would build otherwise (see
            :func:`_resnet_net_config`).
    """
    arch, dropout, momentum, eps = _settings(ArchSpace() if space is None else space)
    sample = arch.parse(sample) if isinstance(sample, str) else arch.validate(sample)
    bn = {"momentum": momentum, "eps": eps, "ws_eps": None}
    if isinstance(arch, ResNetArchSpace):
        return _resnet_net_config(sample, arch, dropout, bn)
    stem, first, mbv3 = arch.stem_width, arch.first_block_width, arch.layout == "mbv3"
    blocks: list[dict[str, Any]] = [{
        "name": "ResidualBlock",
        "conv": {"name": "MBConvLayer", "in_channels": stem, "out_channels": first, "kernel_size": 3, "stride": 1,
                 "expand_ratio": 1, "mid_channels": None, "act_func": _ACTIVATION[arch.first_block_activation],
                 "use_se": False, "groups": None},
        # (ProxylessNAS's first block never has one, even where the stem and it have one width)
        "shortcut": _identity(first) if mbv3 and stem == first else None,
    }]
    for s in range(arch.num_stages):
        for b in range(sample[arch.depth_label(s)]):
            stride = arch.stage_strides[s] if b == 0 else 1
            c_in, c_out = arch.block_in_channels(s, b), arch.stage_widths[s]
            expand = sample[arch.expand_label(s, b)]
            blocks.append({
                "name": "ResidualBlock",
                "conv": {"name": "MBConvLayer", "in_channels": c_in, "out_channels": c_out,
                         "kernel_size": sample[arch.kernel_label(s, b)], "stride": stride, "expand_ratio": expand,
                         "mid_channels": arch.mid_channels(c_in, expand),
                         "act_func": _ACTIVATION[arch.stage_activations[s]], "use_se": bool(arch.stage_se[s])},
                "shortcut": _identity(c_out) if stride == 1 and c_in == c_out else None,
            })
    final, mix, head_act = arch.final_expand_width, arch.feature_mix_width, _ACTIVATION[arch.head_activation]
    if mbv3:
        head = {"final_expand_layer": _conv(arch.stage_widths[-1], final, 1, 1, use_bn=True, act=head_act),
                "feature_mix_layer": _conv(final, mix, 1, 1, use_bn=False, act=head_act)}
    else:  # ProxylessNAS: the feature mix (with BN) comes before the pooling, no final expand
        head = {"feature_mix_layer": _conv(arch.stage_widths[-1], mix, 1, 1, use_bn=True, act=head_act)}
    return {
        "name": _NETWORK[arch.layout],
        "bn": bn,
        "first_conv": _conv(3, stem, 3, 2, use_bn=True, act=_ACTIVATION[arch.stem_activation]),
        "blocks": blocks,
        **head,
        "classifier": {"name": "LinearLayer", "in_features": mix, "out_features": arch.num_classes, "bias": True,
                       "use_bn": False, "act_func": None, "dropout_rate": dropout, "ops_order": _ORDER},
    }


# ------------------------------------------------------------------------------ ResNet, writing
def _resnet_widths(sample: Mapping[str, Any], arch: ResNetArchSpace) -> tuple[int, int, list[int]]:
    """The channels of ``sample``'s stem convs (the first two, the last) and of each stage."""
    index = arch.width_mults.index
    return (arch.stem_mid_widths()[index(sample[arch.STEM_MID_WIDTH_LABEL])],
            arch.stem_widths()[index(sample[arch.STEM_WIDTH_LABEL])],
            [arch.stage_widths(s)[index(sample[arch.width_label(s)])] for s in range(arch.num_stages)])


def _stem_conv(c_in: int, c_out: int, stride: int) -> dict[str, Any]:
    """An input-stem conv as ``DynamicConvLayer.get_active_subnet_config`` writes it."""
    return {"name": "ConvLayer", "in_channels": c_in, "out_channels": c_out, "kernel_size": 3, "stride": stride,
            "dilation": 1, "use_bn": True, "act_func": "relu"}


def _resnet_net_config(sample: Sample, arch: ResNetArchSpace, dropout: float, bn: dict[str, Any]) -> dict[str, Any]:
    """``OFAResNets.get_active_net_config()`` of ``sample``. The reference puts the stem's
    ``IdentityLayer`` module itself in the residual block's ``shortcut`` (a config that neither
    ``json.dump`` nor ``ResNets.build_from_config`` takes); its ``.config`` is written instead.

    Raises:
        InvalidInputError: where a stage's first block keeps stride 1 and its channel count but this
            space's block has a shortcut conv (the previous widths differ at other multipliers): OFA's
            ``ResNetBottleneckBlock`` picks its shortcut by the channels and would build an identity.
    """
    mid, stem, widths = _resnet_widths(sample, arch)
    input_stem = [_stem_conv(3, mid, 2)]
    if sample[arch.STEM_DEPTH_LABEL] == max(arch.stem_depths):  # the residual conv runs
        input_stem.append({"name": "ResidualBlock", "conv": _stem_conv(mid, mid, 1), "shortcut": _identity(mid)})
    input_stem.append(_stem_conv(mid, stem, 1))
    blocks: list[dict[str, Any]] = []
    c_in, previous_widths = stem, arch.stem_widths()
    for s in range(arch.num_stages):
        stride, c_out = arch.stage_strides[s], widths[s]
        if stride == 1 and c_in == c_out and previous_widths != arch.stage_widths(s):
            raise InvalidInputError(
                f"{arch.format(sample)}: not writable as an OFA net.config: stage {s + 1} block 1 keeps stride 1 and "
                f"{c_in} channels: OFA's ResNetBottleneckBlock would have an identity shortcut there, this space's "
                f"block has a shortcut conv (choose another width for stage {s + 1} or the layer before it)")
        for b in range(sample[arch.depth_label(s)]):
            expand = sample[arch.expand_label(s, b)]
            blocks.append({"name": "ResNetBottleneckBlock", "in_channels": c_in, "out_channels": c_out,
                           "kernel_size": 3, "stride": stride if b == 0 else 1, "expand_ratio": expand,
                           "mid_channels": arch.mid_channels(c_out, expand), "act_func": "relu", "groups": 1,
                           "downsample_mode": "avgpool_conv"})
            c_in = c_out
        previous_widths = arch.stage_widths(s)
    return {
        "name": _NETWORK["resnet"],
        "bn": bn,
        "input_stem": input_stem,
        "blocks": blocks,
        "classifier": {"name": "LinearLayer", "in_features": c_in, "out_features": arch.num_classes, "bias": True,
                       "dropout_rate": dropout},
    }


def write_ofa_net_config(folder: str | os.PathLike[str], sample: Mapping[str, Any] | str, *,
                         space: Any = None) -> list[Path]:
    """Write ``folder/net.config`` and ``folder/run.config`` (``{"image_size": r}``), the layout of
    mit-han-lab's specialized networks; returns the two paths."""
    arch = _settings(ArchSpace() if space is None else space)[0]
    config = ofa_net_config(sample, space=space)
    sample = arch.parse(sample) if isinstance(sample, str) else arch.validate(sample)
    folder = Path(folder)
    paths = [folder / "net.config", folder / "run.config"]
    try:
        atomic_write_json(paths[0], config)
        atomic_write_json(paths[1], {"image_size": int(sample[ArchSpace.RESOLUTION_LABEL])})
    except BaseException:  # both files or neither
        for path in paths:
            path.unlink(missing_ok=True)
        raise
    return paths


# -------------------------------------------------------------------------------------- reading
class _Mismatch(Exception):
    """The first field of a config that does not fit the space: (where, found, expected)."""


def _expect(where: str, found: Any, expected: Any) -> None:
    if found != expected:
        raise _Mismatch(f"{where} is {found!r}, this space has {expected!r}")


def _expect_in(where: str, found: Any, allowed: tuple[Any, ...]) -> Any:
    if isinstance(found, bool) or found not in allowed:
        raise _Mismatch(f"{where} is {found!r}, this space allows {list(allowed)}")
    return allowed[allowed.index(found)]


def _field(config: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(config, Mapping) or key not in config:
        raise _Mismatch(f"{where} has no {key!r}")
    return config[key]


def _block_conv(block: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(block, Mapping):
        raise _Mismatch(f"{where} is a {type(block).__name__}, not a block")
    conv = block.get("conv", block.get("mobile_inverted_conv"))
    if not isinstance(conv, Mapping):
        raise _Mismatch(f"{where} has no 'conv' (or 'mobile_inverted_conv') layer")
    _expect_in(f"{where}.conv.name", conv.get("name"), _BLOCK_LAYERS)
    return conv


def _match(config: Mapping[str, Any], arch: ArchSpace, resolution: int) -> Sample:
    _expect("name", _field(config, "name", "the config"), _NETWORK[arch.layout])
    _expect("first_conv.out_channels", _field(_field(config, "first_conv", "the config"), "out_channels",
                                               "first_conv"), arch.stem_width)
    blocks = _field(config, "blocks", "the config")
    if not isinstance(blocks, list) or not blocks:
        raise _Mismatch("blocks is not a non-empty list")
    first = _block_conv(blocks[0], "blocks[0]")
    _expect("blocks[0].conv.out_channels (first block)", first.get("out_channels"), arch.first_block_width)
    resolution = _expect_in("resolution", resolution, arch.resolutions)
    # OFA's set_active_subnet lists (inactive blocks at the first choice), turned into a sample at the end.
    ks, e, d = [arch.kernel_sizes[0]] * arch.num_blocks, [arch.expand_ratios[0]] * arch.num_blocks, []
    block_at = {block: i for i, block in enumerate(arch.blocks)}  # (stage, block) -> position in ks and e
    position = 1
    for s in range(arch.num_stages):
        depth = 0
        while position < len(blocks) and depth < arch.stage_num_blocks(s):
            conv = _block_conv(blocks[position], f"blocks[{position}]")
            if depth > 0 and _field(blocks[position], "shortcut", f"blocks[{position}]") is None:
                break  # a block without a shortcut starts the next stage
            where = f"blocks[{position}] (stage {s + 1} block {depth + 1})"
            stride = arch.stage_strides[s] if depth == 0 else 1
            c_in = arch.block_in_channels(s, depth)
            _expect(f"{where} in_channels", conv.get("in_channels"), c_in)
            _expect(f"{where} out_channels", conv.get("out_channels"), arch.stage_widths[s])
            _expect(f"{where} stride", conv.get("stride"), stride)
            _expect(f"{where} act_func", conv.get("act_func"), _ACTIVATION[arch.stage_activations[s]])
            _expect(f"{where} use_se", bool(conv.get("use_se")), bool(arch.stage_se[s]))
            kernel = _expect_in(f"{where} kernel_size", conv.get("kernel_size"), arch.kernel_sizes)
            expand = _expect_in(f"{where} expand_ratio", conv.get("expand_ratio"), arch.expand_ratios)
            if conv.get("mid_channels") is not None:
                _expect(f"{where} mid_channels", conv.get("mid_channels"), arch.mid_channels(c_in, expand))
            ks[block_at[s, depth]], e[block_at[s, depth]] = kernel, expand
            depth += 1
            position += 1
        fixed = arch.fixed_depths[s] if arch.fixed_depths else None
        if fixed is None:
            d.append(_expect_in(f"stage {s + 1} depth (active blocks)", depth, arch.depths))
        else:
            _expect(f"stage {s + 1} blocks (a stage of fixed depth)", depth, fixed)
            d.append(fixed)
    if position != len(blocks):
        raise _Mismatch(f"blocks[{position}] is beyond the last stage ({len(blocks)} blocks in the config; this "
                        f"space has {arch.num_stages} stages of at most {arch.max_depth})")
    if arch.layout == "mbv3":
        final = _field(config, "final_expand_layer", "the config")
        _expect("final_expand_layer.out_channels", _field(final, "out_channels", "final_expand_layer"),
                arch.final_expand_width)
    mix = _field(config, "feature_mix_layer", "the config")
    _expect("feature_mix_layer.out_channels", _field(mix, "out_channels", "feature_mix_layer"), arch.feature_mix_width)
    classifier = _field(config, "classifier", "the config")
    _expect("classifier.out_features (classes)", _field(classifier, "out_features", "classifier"), arch.num_classes)
    return arch_from_ofa(ks, e, d, resolution, space=arch)


# ------------------------------------------------------------------------------ ResNet, reading
_STATIC_CONV_FIELDS = (("dilation", 1), ("groups", 1), ("bias", False), ("has_shuffle", False), ("use_se", False),
                       ("ops_order", _ORDER))
"""Fields a static ``ConvLayer.config`` writes too, and the value our convs have."""


def _width_choice(where: str, found: Any, widths: tuple[int, ...], arch: ResNetArchSpace) -> float:
    """The smallest width multiplier that gives ``found`` channels."""
    if isinstance(found, bool) or found not in widths:
        raise _Mismatch(f"{where} is {found!r}, this space allows {sorted(set(widths))}")
    return arch.width_mults[widths.index(found)]


def _check_stem_conv(layer: Any, where: str, c_in: int, stride: int) -> Any:
    """Check an input-stem conv; returns its ``out_channels`` (checked by the caller)."""
    _expect(f"{where}.name", _field(layer, "name", where), "ConvLayer")
    _expect(f"{where}.in_channels", layer.get("in_channels"), c_in)
    _expect(f"{where}.kernel_size", layer.get("kernel_size"), 3)
    _expect(f"{where}.stride", layer.get("stride"), stride)
    _expect(f"{where}.use_bn", layer.get("use_bn"), True)
    _expect(f"{where}.act_func", layer.get("act_func"), "relu")
    for key, value in _STATIC_CONV_FIELDS:
        if key in layer:
            _expect(f"{where}.{key}", layer[key], value)
    return layer.get("out_channels")


def _match_resnet_stem(config: Mapping[str, Any], arch: ResNetArchSpace) -> tuple[Sample, Any]:
    """The stem's genes and its output channels."""
    stem = _field(config, "input_stem", "the config")
    if not isinstance(stem, list) or len(stem) not in (2, 3):
        layers = (f"{len(stem)} layer{'' if len(stem) == 1 else 's'}" if isinstance(stem, list)
                  else f"a {type(stem).__name__}")
        raise _Mismatch(f"input_stem is {layers}, this space has 2 or 3 (conv 3x3/2, the residual conv unless "
                        f"skipped, conv 3x3)")
    if len(stem) not in arch.stem_depths:
        raise _Mismatch(f"input_stem depth is {len(stem)}{' (its residual conv skipped)' if len(stem) == 2 else ''}, "
                        f"this space allows {list(arch.stem_depths)}")
    mid = _check_stem_conv(stem[0], "input_stem[0]", 3, 2)
    mid_width = _width_choice("input_stem[0].out_channels (stem mid width)", mid, arch.stem_mid_widths(), arch)
    if len(stem) == 3:
        residual = stem[1]
        _expect("input_stem[1].name (the residual conv)", _field(residual, "name", "input_stem[1]"), "ResidualBlock")
        conv = _field(residual, "conv", "input_stem[1]")
        _expect("input_stem[1].conv.out_channels", _check_stem_conv(conv, "input_stem[1].conv", mid, 1), mid)
        shortcut = residual.get("shortcut")
        shortcut = getattr(shortcut, "config", shortcut)  # get_active_net_config() holds the IdentityLayer itself
        if not isinstance(shortcut, Mapping) or shortcut.get("name") != "IdentityLayer":
            found = shortcut.get("name") if isinstance(shortcut, Mapping) else shortcut
            raise _Mismatch(f"input_stem[1] (the residual conv) has shortcut {found!r}, this space has an "
                            f"'IdentityLayer'")
    where = f"input_stem[{len(stem) - 1}]"
    out = _check_stem_conv(stem[-1], where, mid, 1)
    width = _width_choice(f"{where}.out_channels (stem width)", out, arch.stem_widths(), arch)
    return {arch.STEM_DEPTH_LABEL: len(stem), arch.STEM_MID_WIDTH_LABEL: mid_width, arch.STEM_WIDTH_LABEL: width}, out


def _block_expand(where: str, block: Mapping[str, Any], c_out: int, arch: ResNetArchSpace) -> float:
    """A bottleneck's ratio: by its ``mid_channels`` where written (what OFA's layer builds), else
    its ``expand_ratio``."""
    mid, ratio = block.get("mid_channels"), block.get("expand_ratio")
    if mid is None:
        return _expect_in(f"{where} expand_ratio", ratio, arch.expand_ratios)  # type: ignore[no-any-return]
    allowed = [arch.mid_channels(c_out, e) for e in arch.expand_ratios]
    if isinstance(mid, bool) or mid not in allowed:
        ratios = ", ".join(f"{e:g}" for e in arch.expand_ratios)
        raise _Mismatch(f"{where} mid_channels is {mid!r}, this space allows {list(dict.fromkeys(allowed))} "
                        f"(expand ratios {ratios} of {c_out} channels)")
    if ratio in arch.expand_ratios and arch.mid_channels(c_out, ratio) == mid:
        return arch.expand_ratios[arch.expand_ratios.index(ratio)]  # (two ratios can give one width)
    return arch.expand_ratios[allowed.index(mid)]


def _resnet_stages(blocks: Any) -> list[list[int]]:
    """The positions of the blocks of each stage: as the reference groups them, a stage starts at a
    block with a shortcut conv (stride other than 1, or other output than input channels)."""
    if not isinstance(blocks, list) or not blocks:
        raise _Mismatch("blocks is not a non-empty list")
    stages: list[list[int]] = []
    for i, block in enumerate(blocks):
        if not isinstance(block, Mapping):
            raise _Mismatch(f"blocks[{i}] is a {type(block).__name__}, not a block")
        if not stages or block.get("stride") != 1 or block.get("in_channels") != block.get("out_channels"):
            stages.append([])
        stages[-1].append(i)
    return stages


def _match_resnet(config: Mapping[str, Any], arch: ResNetArchSpace, resolution: int) -> Sample:
    _expect("name", _field(config, "name", "the config"), _NETWORK["resnet"])
    sample, c_in = _match_resnet_stem(config, arch)
    sample[arch.RESOLUTION_LABEL] = _expect_in("resolution", resolution, arch.resolutions)
    blocks = _field(config, "blocks", "the config")
    stages = _resnet_stages(blocks)
    if len(stages) != arch.num_stages:
        raise _Mismatch(f"blocks form {len(stages)} stages (one starts at each block with a shortcut conv: stride 2 "
                        f"or a new width), this space has {arch.num_stages}")
    for s, positions in enumerate(stages):
        sample[arch.depth_label(s)] = _expect_in(f"stage {s + 1} depth (active blocks)", len(positions),
                                                 arch.stage_depths(s))
        c_out: Any = None  # the stage's width, set by its first block
        for b, i in enumerate(positions):
            block, where = blocks[i], f"blocks[{i}] (stage {s + 1} block {b + 1})"
            _expect(f"{where} name", block.get("name"), "ResNetBottleneckBlock")
            _expect(f"{where} in_channels", block.get("in_channels"), c_in)
            if b == 0:
                c_out = block.get("out_channels")
                sample[arch.width_label(s)] = _width_choice(f"{where} out_channels", c_out, arch.stage_widths(s), arch)
            _expect(f"{where} out_channels", block.get("out_channels"), c_out)
            _expect(f"{where} stride", block.get("stride"), arch.stage_strides[s] if b == 0 else 1)
            _expect(f"{where} kernel_size", block.get("kernel_size"), 3)
            _expect(f"{where} act_func", block.get("act_func"), "relu")
            _expect(f"{where} groups", block.get("groups", 1), 1)
            if b == 0:  # (an identity shortcut has no downsample to build)
                _expect(f"{where} downsample_mode", block.get("downsample_mode", "avgpool_conv"), "avgpool_conv")
            sample[arch.expand_label(s, b)] = _block_expand(where, block, c_out, arch)
            c_in = c_out
        for b in range(len(positions), arch.stage_num_blocks(s)):
            sample[arch.expand_label(s, b)] = arch.expand_ratios[0]
    classifier = _field(config, "classifier", "the config")
    _expect("classifier.in_features", _field(classifier, "in_features", "classifier"), c_in)
    _expect("classifier.out_features (classes)", _field(classifier, "out_features", "classifier"), arch.num_classes)
    return arch.validate(sample)


def sample_from_ofa_net_config(config: Mapping[str, Any], *, resolution: int, space: Any = None,
                               source: str = "net.config") -> Sample:
    """Our sample of the subnet a ``net.config`` describes (at ``resolution``).

    Raises:
        InvalidInputError: ``"<source>: not a subnet of this space: <first mismatch>"``: the field
            (e.g. ``blocks[5] (stage 2 block 1) out_channels``), the value found and what the space has.
    """
    arch = _settings(ArchSpace() if space is None else space)[0]
    if not isinstance(config, Mapping):
        raise InvalidInputError(f"{source}: expected an OFA net config (a JSON object); found a "
                                f"{type(config).__name__}")
    try:
        if isinstance(arch, ResNetArchSpace):
            return _match_resnet(config, arch, resolution)
        return _match(config, arch, resolution)
    except _Mismatch as mismatch:
        width = ("/".join(f"{w:g}" for w in arch.width_mults) if isinstance(arch, ResNetArchSpace)
                 else f"{arch.width_mult:g}")
        raise InvalidInputError(f"{source}: not a subnet of this space (expected an {family_name(arch.signature())} "
                                f"config of width {width}, {arch.num_classes} classes): {mismatch}") from None


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise MissingInputError(f"{what} {str(path)!r} does not exist")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidInputError(f"{path}: not a JSON {what} ({type(error).__name__}: {error})") from None


def read_ofa_net_config(path: str | os.PathLike[str], *, space: Any = None, resolution: int | None = None) -> Sample:
    """Read ``net.config`` (or a folder holding it) into a sample. The resolution is ``resolution``, or
    the ``image_size`` of the ``run.config`` beside it (mit-han-lab's layout)."""
    path = Path(path)
    if path.is_dir():
        path = path / "net.config"
    config = _read_json(path, "OFA net config")
    if resolution is None:
        run_config = path.parent / "run.config"
        if not run_config.is_file():
            raise InvalidInputError(f"{path}: a net.config does not record the input resolution; pass resolution= or "
                                    f"put mit-han-lab's run.config (with image_size) beside it")
        image_size = _read_json(run_config, "OFA run config")
        if not isinstance(image_size, Mapping) or "image_size" not in image_size:
            raise InvalidInputError(f"{run_config}: expected an OFA run config with an 'image_size'")
        resolution = image_size["image_size"]
    return sample_from_ofa_net_config(config, resolution=resolution, space=space, source=str(path))  # type: ignore[arg-type]
