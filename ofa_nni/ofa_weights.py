"""Interoperability with mit-han-lab's Once-for-All code (Cai et al., ICLR 2020): released weights
and architecture lists.

* :func:`convert_ofa_state_dict` maps the state dict of ``ofa``'s ``OFAMobileNetV3`` (the released
  checkpoints such as ``ofa_mbv3_d234_e346_k357_w1.0``, with or without their ``{"state_dict": ...}``
  wrapper, in the current or the legacy ``mobile_inverted_conv`` naming, with or without a
  DataParallel ``module.`` prefix) onto the keys of :class:`search_spaces.OFAMobileNetV3Space`.
* :func:`arch_from_ofa` / :func:`arch_to_ofa` translate between OFA's ``ks``/``e``/``d``/``r``
  lists (what ``OFAMobileNetV3.set_active_subnet`` and OFA's evolution finder use) and our samples.

The layouts correspond one to one: OFA's ``blocks.0`` is our ``first_block``, ``blocks.1 ..`` are the
elastic blocks of our stages in order (``max(depths)`` per stage), ``first_conv`` is ``stem``,
``final_expand_layer`` / ``feature_mix_layer`` / ``classifier.linear`` are ``final_expand`` /
``feature_mix`` / ``classifier``, and the kernel transformation matrices ``7to5_matrix`` /
``5to3_matrix`` are ``transform_7to5`` / ``transform_5to3`` (same orientation: both apply
``F.linear(flat_kernel, matrix)``). Nothing here imports the ``ofa`` package.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ofa_nni.arch import ArchSpace, Sample
from ofa_nni.errors import InvalidInputError

__all__ = ["convert_ofa_state_dict", "arch_from_ofa", "arch_to_ofa", "sample_from_ofa_settings", "read_ofa_tensors",
           "match_to_target"]

# OFA's sub-layer names inside an MBConv block -> our prefixes (``<prefix>_conv``, ``<prefix>_bn``).
_BLOCK_PARTS = {"inverted_bottleneck": "expand", "depth_conv": "depthwise", "point_linear": "project"}
_HEAD_LAYERS = {
    "first_conv": "stem", "final_expand_layer": "final_expand", "feature_mix_layer": "feature_mix"
}
_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.conv\.(inverted_bottleneck|depth_conv|point_linear)\.(.+)$")
_STAGE_BLOCK_KEY = re.compile(r"^stages\.(\d+)\.blocks\.(\d+)\.")
_MATRIX = re.compile(r"^conv\.(\d+)to(\d+)_matrix$")
_SHOWN = 8  # keys listed per category in an error message


def _unwrap(state_dict: Mapping[str, Any]) -> Mapping[str, Any]:
    """The tensors of a state dict, or of a released checkpoint ``{"state_dict": {...}, ...}``."""
    if not isinstance(state_dict, Mapping):
        raise InvalidInputError(
            f"expected an OFA state dict (a dict of tensors) or a checkpoint dict with a 'state_dict' "
            f"entry, got {type(state_dict).__name__}"
        )
    inner = state_dict.get("state_dict")
    if isinstance(inner, Mapping):
        return inner
    return state_dict


def _canonical_ofa_key(key: str) -> str:
    """One spelling for every naming OFA's ``OFAMobileNetV3.load_state_dict`` accepts.

    Current keys nest the dynamic ops (``depth_conv.conv.conv.weight``, ``bn.bn.weight``,
    ``linear.linear.weight``); the released checkpoints call the block ``mobile_inverted_conv``; a
    model saved from ``nn.DataParallel`` prefixes ``module.``. The canonical form is the flat one.
    """
    if key.startswith("module."):
        key = key[len("module.") :]
    key = key.replace(".mobile_inverted_conv.", ".conv.")
    key = key.replace(".bn.bn.", ".bn.").replace(".linear.linear.", ".linear.")
    return re.sub(r"\.conv\.conv\.weight$", ".conv.weight", key)


def _our_block_key(rest: str, part: str) -> str | None:
    """Our name (inside a block) of OFA's ``<part>.<rest>`` parameter, or None if it has none."""
    prefix = _BLOCK_PARTS[part]
    if rest == "conv.weight":
        return f"{prefix}_conv.weight"
    if rest.startswith("bn."):
        return f"{prefix}_bn.{rest[len('bn.'):]}"
    matrix = _MATRIX.match(rest)
    if matrix is not None and part == "depth_conv":
        return f"depthwise_conv.transform_{matrix.group(1)}to{matrix.group(2)}"
    for layer in ("reduce", "expand"):
        if rest.startswith(f"se.fc.{layer}.") and part == "depth_conv":
            return f"se.{layer}.{rest[len(f'se.fc.{layer}.'):]}"
    return None


def _our_key(canonical: str, block_slots: Sequence[tuple[int, int]]) -> str | None:
    """Our state-dict key for a canonical OFA key (None: no counterpart in this space)."""
    head, _, rest = canonical.partition(".")
    if head in _HEAD_LAYERS:
        return f"{_HEAD_LAYERS[head]}.{rest}"
    if head == "classifier":
        return f"classifier.{rest[len('linear.'):]}" if rest.startswith("linear.") else None
    match = _BLOCK_KEY.match(canonical)
    if match is None:
        return None
    index, part, rest = int(match.group(1)), match.group(2), match.group(3)
    inner = _our_block_key(rest, part)
    if inner is None:
        return None
    if index == 0:
        return f"first_block.{inner}"
    if index - 1 >= len(block_slots):
        return None
    stage, block = block_slots[index - 1]
    return f"stages.{stage}.blocks.{block}.{inner}"


def _block_slots(target_state_dict: Mapping[str, Any]) -> list[tuple[int, int]]:
    """(stage, block) of every elastic block of the target space, in OFA's ``blocks`` order."""
    slots = set()
    for key in target_state_dict:
        match = _STAGE_BLOCK_KEY.match(key)
        if match is not None:
            slots.add((int(match.group(1)), int(match.group(2))))
    return sorted(slots)


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(value.shape)


def _listed(keys: Sequence[str]) -> str:
    shown = ", ".join(keys[:_SHOWN])
    return shown + (f", ... ({len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else "")


def _kernel_sizes(keys: Iterable[str], pattern: str) -> list[int]:
    """The elastic kernel sizes named by the transformation matrices among ``keys``."""
    sizes: set[int] = set()
    for key in keys:
        match = re.search(pattern, key)
        if match is not None:
            sizes.update(int(size) for size in match.groups())
    return sorted(sizes)


# The reference's supernet layouts, told apart by a layer only one of them has.
_LAYOUTS = {
    "mbv3": ("OFA-MobileNetV3 (OFAMobileNetV3: final_expand_layer)", "OFAMobileNetV3Space"),
    "proxyless": ("OFA-ProxylessNAS (OFAProxylessNASNets: feature_mix_layer with BN, no final_expand_layer)",
                  "OFAProxylessNASSpace"),
    "resnet": ("OFA-ResNet50 (OFAResNets: input_stem)", "OFAResNetSpace"),
}


def _ofa_layout(canonical_keys: Iterable[str]) -> str | None:
    """Which reference supernet a (canonical) OFA state dict comes from, or None if unknown."""
    keys = list(canonical_keys)
    if any(key.startswith("input_stem.") for key in keys):
        return "resnet"
    if any(key.startswith("final_expand_layer.") for key in keys):
        return "mbv3"
    if any(key.startswith("feature_mix_layer.bn.") for key in keys):
        return "proxyless"
    return None


def _settings_hint(canonical: Mapping[str, Any], target: Mapping[str, Any], num_elastic: int, space_name: str) -> str:
    """What the checkpoint's shapes say about its space, where it differs from the target's."""
    notes = []
    theirs_classifier = canonical.get("classifier.linear.weight")
    if theirs_classifier is not None and "classifier.weight" in target:
        theirs, ours = _shape(theirs_classifier)[0], _shape(target["classifier.weight"])[0]
        if theirs != ours:
            notes.append(f"num_classes={theirs} (this space: {ours})")
    widths = [
        ("first_conv.conv.weight", "stem.conv.weight"),
        ("feature_mix_layer.conv.weight", "feature_mix.conv.weight"),
    ]
    for theirs_key, ours_key in widths:
        if theirs_key in canonical and ours_key in target:
            theirs, ours = _shape(canonical[theirs_key])[0], _shape(target[ours_key])[0]
            if theirs != ours:
                notes.append(
                    f"{ours_key.split('.')[0]} width {theirs} "
                    f"(this space: {ours}, ratio {theirs / ours:.2f}): "
                    f"set width_mult (released supernets: MobileNetV3 1.0 and 1.2, ProxylessNAS 1.3)"
                )
    theirs_blocks = {int(m.group(1)) for key in canonical if (m := _BLOCK_KEY.match(key))} - {0}
    if theirs_blocks and len(theirs_blocks) != num_elastic:
        notes.append(
            f"{len(theirs_blocks)} elastic blocks "
            f"(this space: {num_elastic} = stages x max(depths)): set depths"
        )
    first_expand = canonical.get("blocks.1.conv.inverted_bottleneck.conv.weight")
    if first_expand is not None and "stages.0.blocks.0.expand_conv.weight" in target:
        theirs_ratio = _shape(first_expand)[0] / _shape(first_expand)[1]
        ours_shape = _shape(target["stages.0.blocks.0.expand_conv.weight"])
        if _shape(first_expand)[1] == ours_shape[1] and theirs_ratio != ours_shape[0] / ours_shape[1]:
            notes.append(
                f"largest expand ratio {theirs_ratio:g} (this space: {ours_shape[0] / ours_shape[1]:g}): "
                "set expand_ratios"
            )
    theirs_kernels = _kernel_sizes(canonical, r"\.(\d+)to(\d+)_matrix$")
    ours_kernels = _kernel_sizes(target, r"\.transform_(\d+)to(\d+)$")
    if theirs_kernels != ours_kernels:
        notes.append(f"kernel sizes {theirs_kernels or 'of one size'} (this space: "
                     f"{ours_kernels or 'of one size'}): set kernel_sizes")
    advice = (
        "build the space with the checkpoint's settings: "
        f"{space_name}.from_ofa_state_dict(state_dict, num_classes=..., width_mult=..., "
        "kernel_sizes=..., expand_ratios=..., depths=...)"
    )
    if notes:
        return "The OFA state dict looks like " + "; ".join(notes) + ". Hint: " + advice
    return "Hint: " + advice


def convert_ofa_state_dict(
    state_dict: Mapping[str, Any], target_state_dict: Mapping[str, Any], *, space_name: str = "OFAMobileNetV3Space"
) -> dict[str, torch.Tensor]:
    """Map an ``ofa`` ``OFAMobileNetV3`` state dict onto the keys of ``target_state_dict``.

    Args:
        state_dict: ``OFAMobileNetV3().state_dict()``, or a released checkpoint (``{"state_dict":
            ..., ...}``), in the current or the legacy (``mobile_inverted_conv``) naming, optionally
            with a ``module.`` prefix.
        target_state_dict: ``space.state_dict()`` of the :class:`search_spaces.OFAMobileNetV3Space`
            that will receive the weights (only its keys and shapes are read); the same for
            ``ofa``'s ``OFAProxylessNASNets`` and :class:`search_spaces.OFAProxylessNASSpace`.
        space_name: The target's class, named in the error's hint.

    Returns:
        A state dict with exactly the target's keys, ready for ``space.load_state_dict``. BatchNorm
        ``num_batches_tracked`` counters absent from old checkpoints keep the target's value.

    Raises:
        ValueError: listing the missing keys (ours), the unexpected keys (theirs), the shapes that
            disagree (ours vs theirs) and, from the checkpoint's shapes, which space settings
            (``num_classes``, ``width_mult``, ``depths``, ``kernel_sizes``) to pass.
    """
    canonical, original_key = read_ofa_tensors(state_dict, _canonical_ofa_key)

    theirs_layout = _ofa_layout(canonical)
    ours_layout = "mbv3" if "final_expand.conv.weight" in target_state_dict else "proxyless"
    if theirs_layout is not None and theirs_layout != ours_layout:
        raise InvalidInputError(
            f"OFA state dict has the {_LAYOUTS[theirs_layout][0]} layout; {space_name} expects "
            f"{_LAYOUTS[ours_layout][0]}: load it with {_LAYOUTS[theirs_layout][1]}.from_ofa_state_dict"
        )
    slots = _block_slots(target_state_dict)
    return match_to_target(canonical, original_key, target_state_dict, lambda name: _our_key(name, slots),
                           lambda: _settings_hint(canonical, target_state_dict, len(slots), space_name))


def read_ofa_tensors(state_dict: Mapping[str, Any], canonical_key: Callable[[str], str]) -> tuple[
        dict[str, Any], dict[str, str]]:
    """The tensors of an OFA state dict or checkpoint by their canonical key, and each one's original key.

    Raises:
        InvalidInputError: for an entry that is not a tensor, or two keys that name the same tensor.
    """
    canonical: dict[str, Any] = {}
    original_key: dict[str, str] = {}
    for key, value in _unwrap(state_dict).items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise InvalidInputError(
                f"OFA state dict entry {key!r} is a {type(value).__name__}, expected a tensor "
                "(pass the model's state_dict() or a checkpoint with a 'state_dict' entry)"
            )
        name = canonical_key(key)
        if name in canonical:
            raise InvalidInputError(f"OFA state dict keys {original_key[name]!r} and {key!r} name the same tensor")
        canonical[name], original_key[name] = value, key
    return canonical, original_key


def match_to_target(canonical: Mapping[str, Any], original_key: Mapping[str, str],
                    target_state_dict: Mapping[str, Any], our_key: Callable[[str], str | None],
                    hint: Callable[[], str]) -> dict[str, torch.Tensor]:
    """Place OFA's tensors (by canonical key) at our keys (``our_key``), checking that every key and
    shape matches; ``hint()`` says which settings to pass when they do not.

    Raises:
        InvalidInputError: listing the missing keys (ours), the unexpected keys (theirs) and the shapes
            that disagree (ours vs theirs), then the hint.
    """
    converted: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    mismatched: dict[str, str] = {}  # our key -> "ours (shape) vs theirs (shape)"
    for name, value in canonical.items():
        ours = our_key(name)
        if ours is None or ours not in target_state_dict:
            unexpected.append(original_key[name])
        elif _shape(value) != _shape(target_state_dict[ours]):
            ours_shape = _shape(target_state_dict[ours])
            mismatched[ours] = f"{ours} {ours_shape} vs {original_key[name]} {_shape(value)}"
        else:
            converted[ours] = value
    missing = []
    for key, value in target_state_dict.items():
        if key in converted or key in mismatched:
            continue
        if key.endswith("num_batches_tracked"):
            converted[key] = value  # old checkpoints predate the counter
        else:
            missing.append(key)
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing (ours, no OFA key maps to them): {len(missing)}: {_listed(missing)}")
        if unexpected:
            parts.append(f"unexpected (OFA keys with no place in this space): {len(unexpected)}: "
                         f"{_listed(unexpected)}")
        if mismatched:
            shapes = _listed(list(mismatched.values()))
            parts.append(f"shapes disagree (ours vs theirs): {len(mismatched)}: {shapes}")
        raise InvalidInputError("OFA state dict does not match this space; " + "; ".join(parts) + ". " + hint())
    return converted


# ------------------------------------------------------------------------------ architectures
def _as_arch_space(space: Any) -> ArchSpace:
    """An :class:`ArchSpace` from None (the default space), an ArchSpace, or a search space."""
    if space is None:
        return ArchSpace()
    if isinstance(space, ArchSpace):
        return space
    arch = getattr(space, "arch_space", None)
    if isinstance(arch, ArchSpace):
        return arch
    raise InvalidInputError(
        "space must be None (the default space), an ArchSpace or an OFAMobileNetV3Space, "
        f"got {type(space).__name__}"
    )


def _as_list(name: str, values: Any, length: int, what: str) -> list[Any]:
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, (Sequence, np.ndarray)):
        raise InvalidInputError(f"{name} must be a list of {length} {what}, got {values!r}")
    result = list(values.tolist() if isinstance(values, np.ndarray) else values)
    if len(result) != length:
        raise InvalidInputError(f"{name} must be a list of {length} {what}, got {len(result)} values: {result}")
    return result


def arch_from_ofa(ks: Sequence[int], e: Sequence[float], d: Sequence[int], r: int | Sequence[int], *,
                  space: Any = None) -> Sample:
    """Our sample for OFA's ``set_active_subnet(ks, e, d)`` lists and resolution ``r``.

    Args:
        ks: One kernel size per elastic block, in OFA's ``blocks[1:]`` order (20 by default).
        e: One expand ratio per elastic block.
        d: One depth per stage (5 by default).
        r: The input resolution (an int, or OFA's tutorial form ``[r]``).
        space: The space (None: the default OFA-MobileNetV3 space; an :class:`ArchSpace`; or an
            ``OFAMobileNetV3Space``).

    Raises:
        ValueError: for a wrong length, naming the list and the expected length, or a value that is
            not a choice, naming the OFA position, our label and the allowed values.
    """
    arch = _as_arch_space(space)
    blocks = arch.blocks
    per_block = f"(one per elastic block: {arch.num_stages} stages x {arch.max_depth})"
    if arch.fixed_depths:
        per_stage = ", ".join(str(arch.stage_num_blocks(s)) for s in range(arch.num_stages))
        per_block = f"(one per elastic block: {arch.num_stages} stages of {per_stage})"
    ks = _as_list("ks", ks, arch.num_blocks, f"kernel sizes {per_block}")
    e = _as_list("e", e, arch.num_blocks, f"expand ratios {per_block}")
    d = _as_list("d", d, arch.num_stages, "depths (one per stage)")
    if isinstance(r, (Sequence, np.ndarray)) and not isinstance(r, str):
        r = _as_list("r", r, 1, "resolution (OFA's [r] form)")[0]
    entries: list[tuple[str, str, Any]] = []
    for i, (s, b) in enumerate(blocks):
        entries.append((f"ks[{i}]", arch.kernel_label(s, b), ks[i]))
    for i, (s, b) in enumerate(blocks):
        entries.append((f"e[{i}]", arch.expand_label(s, b), e[i]))
    for s in range(arch.num_stages):
        # A fixed-depth stage runs its blocks whatever depth OFA passes (its set_active_subnet takes
        # min(blocks, d), and set_max_net passes max(depths) to every stage).
        fixed = bool(arch.fixed_depths) and arch.fixed_depths[s] is not None and d[s] in arch.depths
        entries.append((f"d[{s}]", arch.depth_label(s), arch.stage_num_blocks(s) if fixed else d[s]))
    entries.append(("r", ArchSpace.RESOLUTION_LABEL, r))
    sample: Sample = {}
    for position, label, value in entries:
        allowed = arch.choices(label)
        if isinstance(value, bool) or value not in allowed:
            raise InvalidInputError(
                f"{position} = {value!r} ({label}) is not allowed; allowed values: {list(allowed)}"
            )
        sample[label] = value
    return arch.validate(sample)


def arch_to_ofa(sample: Mapping[str, Any] | str, *, space: Any = None) -> dict[str, Any]:
    """OFA's ``dict(ks=[...], e=[...], d=[...], r=int)`` for our sample (a dict or an arch string).

    ``OFAMobileNetV3.set_active_subnet(**arch_to_ofa(sample))`` activates the same subnet in
    ``ofa`` (it ignores ``r``; feed it inputs of that resolution).
    """
    arch = _as_arch_space(space)
    sample = arch.parse(sample) if isinstance(sample, str) else arch.validate(sample)
    blocks = arch.blocks
    return {
        "ks": [sample[arch.kernel_label(s, b)] for s, b in blocks],
        "e": [sample[arch.expand_label(s, b)] for s, b in blocks],
        "d": [sample[arch.depth_label(s)] for s in range(arch.num_stages)],
        "r": sample[ArchSpace.RESOLUTION_LABEL],
    }


_SETTING_KEYS = ("ks", "e", "d", "r")


def sample_from_ofa_settings(settings: Mapping[str, Any], *, space: Any = None) -> Sample:
    """Our sample for the keyword arguments of the reference's ``set_active_subnet(ks=..., e=...,
    d=...)`` plus ``"r"`` (the resolution), e.g. what its ``sample_active_subnet()`` returns with
    ``r`` added.

    As in the reference, a single number stands for every block (``ks``, ``e``) or stage (``d``);
    ``d`` may leave out the fixed-depth stages (OFA-ProxylessNAS's last, one-block stage).

    Raises:
        InvalidInputError: for a missing or unknown key, naming the keys allowed, and everything
            :func:`arch_from_ofa` refuses.
    """
    arch = _as_arch_space(space)
    if not isinstance(settings, Mapping):
        raise InvalidInputError(f"OFA settings must be a dict with keys {list(_SETTING_KEYS)}, got {settings!r}")
    unknown = [key for key in settings if key not in _SETTING_KEYS]
    missing = [key for key in _SETTING_KEYS if key not in settings]
    if unknown or missing:
        raise InvalidInputError(
            f"OFA settings need exactly the keys {list(_SETTING_KEYS)} (set_active_subnet's ks, e, d and the "
            f"resolution r); unknown: {unknown}, missing: {missing}"
        )

    def broadcast(values: Any, length: int) -> Any:
        is_number = isinstance(values, (int, float, np.integer, np.floating)) and not isinstance(values, bool)
        return [values] * length if is_number else values

    elastic = [s for s in range(arch.num_stages) if not arch.fixed_depths or arch.fixed_depths[s] is None]
    depths = broadcast(settings["d"], arch.num_stages)
    if (
        isinstance(depths, (Sequence, np.ndarray)) and not isinstance(depths, str)
        and len(depths) == len(elastic) < arch.num_stages
    ):
        given = dict(zip(elastic, list(depths), strict=True))
        depths = [given.get(s, arch.stage_num_blocks(s)) for s in range(arch.num_stages)]
    return arch_from_ofa(
        broadcast(settings["ks"], arch.num_blocks), broadcast(settings["e"], arch.num_blocks), depths,
        settings["r"], space=arch,
    )
