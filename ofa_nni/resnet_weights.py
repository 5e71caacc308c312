"""Interoperability with mit-han-lab's ``OFAResNets``: its state dicts and its ``set_active_subnet``
settings, for :class:`search_spaces.OFAResNetSpace`.

The layouts correspond one to one: ``input_stem.0`` / ``.1.conv`` / ``.2`` are our ``stem.conv1`` /
``conv2`` / ``conv3``; ``blocks.i`` are the bottlenecks of our stages in order (``base + max(depths)``
per stage), their ``downsample.conv`` / ``.bn`` our ``downsample.1.conv`` / ``.bn`` (index 0 is the
average pool); ``classifier.linear`` is ``classifier``. The reference's settings are ``d`` (the input
stem, then extra blocks per stage), ``e`` (a ratio per block slot), ``w`` (indices into the width
multipliers: the stem's first two convs, its output, then each stage); each may be one value for all.
Nothing here imports the ``ofa`` package.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from ofa_nni.arch import Sample
from ofa_nni.errors import InvalidInputError
from ofa_nni.ofa_weights import _LAYOUTS, _canonical_ofa_key, _ofa_layout, match_to_target, read_ofa_tensors
from ofa_nni.resnet_arch import ResNetArchSpace

__all__ = ["convert_ofa_resnet_state_dict", "resnet_sample_from_ofa_settings", "resnet_ofa_settings"]

_STEM = {"input_stem.0.": "stem.conv1.", "input_stem.1.conv.": "stem.conv2.", "input_stem.2.": "stem.conv3."}
_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")


def _our_key(name: str, arch: ResNetArchSpace) -> str | None:
    for theirs, ours in _STEM.items():
        if name.startswith(theirs):
            return ours + name[len(theirs):]
    if name.startswith("classifier.linear."):
        return "classifier." + name[len("classifier.linear."):]
    match = _BLOCK.match(name)
    if match is None or int(match.group(1)) >= arch.num_blocks:
        return None
    stage, block = arch.blocks[int(match.group(1))]
    rest = match.group(2)
    if rest.startswith("downsample."):
        rest = "downsample.1." + rest[len("downsample."):]
    return f"stages.{stage}.blocks.{block}.{rest}"


def convert_ofa_resnet_state_dict(state_dict: Mapping[str, Any], target_state_dict: Mapping[str, Any],
                                  arch: ResNetArchSpace) -> dict[str, torch.Tensor]:
    """Map an ``OFAResNets`` state dict (or a released checkpoint, current or static naming, with or
    without a ``module.`` prefix) onto the keys of ``target_state_dict`` (an ``OFAResNetSpace``'s).

    Raises:
        InvalidInputError: for a checkpoint of a MobileNet-family supernet (naming its layout and the
            space that loads it), or listing the missing, unexpected and mismatched keys.
    """
    canonical, original_key = read_ofa_tensors(state_dict, _canonical_ofa_key)
    layout = _ofa_layout(canonical)
    if layout is not None and layout != "resnet":
        raise InvalidInputError(
            f"OFA state dict has the {_LAYOUTS[layout][0]} layout; OFAResNetSpace expects {_LAYOUTS['resnet'][0]}: "
            f"load it with {_LAYOUTS[layout][1]}.from_ofa_state_dict")
    blocks = len({key.split(".")[1] for key in canonical if key.startswith("blocks.")})

    def hint() -> str:
        return (f"The checkpoint has {blocks} bottlenecks, this space {arch.num_blocks}: pass the checkpoint's "
                "depths/base_depths, expand_ratios, width_mults, base_widths and num_classes (the released "
                "ofa_resnet50: depths (0, 1, 2), expand_ratios (0.2, 0.25, 0.35), width_mults (0.65, 0.8, 1.0))")

    return match_to_target(canonical, original_key, target_state_dict, lambda name: _our_key(name, arch), hint)


def _setting(settings: Mapping[str, Any], key: str, length: int) -> list[Any]:
    """The reference's ``val2list``: one value for all, or exactly ``length`` values."""
    if key not in settings:
        raise InvalidInputError(f"OFA settings need {key!r} (set_active_subnet(d=..., e=..., w=...) plus 'r')")
    value = settings[key]
    values = list(value) if isinstance(value, (list, tuple)) else [value] * length
    if len(values) != length:
        raise InvalidInputError(f"OFA setting {key!r} needs {length} values (or one for all), got {len(values)}")
    return values


def resnet_sample_from_ofa_settings(settings: Mapping[str, Any], arch: ResNetArchSpace) -> Sample:
    """Our sample for ``set_active_subnet(d=..., e=..., w=...)``'s arguments plus ``"r"``."""
    if not isinstance(settings, Mapping):
        raise InvalidInputError(f"OFA settings must be a dict with d, e, w and r, got {type(settings).__name__}")
    unknown = sorted(set(settings) - {"d", "e", "w", "r"})
    if unknown:
        raise InvalidInputError(f"unknown OFA setting(s) {unknown}; OFAResNets takes d, e, w (and 'r' here)")
    depths = _setting(settings, "d", arch.num_stages + 1)
    expands = _setting(settings, "e", arch.num_blocks)
    widths = _setting(settings, "w", arch.num_stages + 2)
    if "r" not in settings:
        raise InvalidInputError("OFA settings need 'r' (the resolution)")
    n_widths = len(arch.width_mults)
    bad = [w for w in widths if isinstance(w, bool) or not isinstance(w, int) or not 0 <= w < n_widths]
    if bad:
        raise InvalidInputError(f"OFA setting 'w' holds indices into the width multipliers "
                                f"{list(arch.width_mults)}: 0..{n_widths - 1}; got {bad[0]!r}")
    bad = [d for d in depths if d not in arch.depths]
    if bad:
        raise InvalidInputError(f"OFA setting 'd' value {bad[0]!r} is not allowed; allowed: {list(arch.depths)}")
    # The reference runs the stem's residual conv only at the largest depth.
    sample: Sample = {arch.STEM_DEPTH_LABEL: 3 if depths[0] == max(arch.depths) else 2,
                      arch.STEM_MID_WIDTH_LABEL: arch.width_mults[widths[0]],
                      arch.STEM_WIDTH_LABEL: arch.width_mults[widths[1]], arch.RESOLUTION_LABEL: settings["r"]}
    for s in range(arch.num_stages):
        sample[arch.depth_label(s)] = arch.base_depths[s] + depths[s + 1]
        sample[arch.width_label(s)] = arch.width_mults[widths[s + 2]]
    for (s, b), expand in zip(arch.blocks, expands, strict=True):
        sample[arch.expand_label(s, b)] = expand
    return arch.validate(sample)


def resnet_ofa_settings(sample: Mapping[str, Any] | str, arch: ResNetArchSpace) -> dict[str, Any]:
    """The reference's ``dict(d=[...], e=[...], w=[...], r=...)`` of ``sample`` (a dict or an arch string)."""
    sample = arch.parse(sample) if isinstance(sample, str) else arch.validate(sample)
    widths = [sample[arch.STEM_MID_WIDTH_LABEL], sample[arch.STEM_WIDTH_LABEL]]
    widths += [sample[arch.width_label(s)] for s in range(arch.num_stages)]
    stem = max(arch.depths) if sample[arch.STEM_DEPTH_LABEL] == 3 else min(arch.depths)
    return {
        "d": [stem] + [sample[arch.depth_label(s)] - arch.base_depths[s] for s in range(arch.num_stages)],
        "e": [sample[arch.expand_label(s, b)] for s, b in arch.blocks],
        "w": [arch.width_mults.index(w) for w in widths],
        "r": sample[arch.RESOLUTION_LABEL],
    }
