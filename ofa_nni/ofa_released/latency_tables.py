"""mit-han-lab's released latency lookup tables, read as ofa-nni latency costs.

The tables are YAML maps from an op's shape to its measured latency (``mean`` ms, ``std``,
``count``), keyed as ``ofa``'s ``LatencyEstimator.query`` spells them, e.g.
``expanded_conv-input:40x40x32-output:40x40x32-expand:128-kernel:5-stride:1-idskip:1-se:0-hs:0``.

* **Note10** (``ofa/note10/{160,176,192,208,224}_lookup_table.yaml``, one file per input resolution):
  OFA-MobileNetV3 ops, ``expand`` being the block's middle width, with ``se``/``hs`` flags, plus
  ``Conv`` (stem), ``Conv_1`` (final expand), ``AvgPool2D``, ``Conv_2`` (feature mix) and ``Logits``.
  :func:`load_ofa_latency_table` turns a folder of them (or one file) into :class:`OFALatencyTable`,
  an :class:`~ofa_nni.efficiency.EfficiencyModel` of the space restricted to the resolutions the
  tables cover: a subnet's latency is the sum of its ops, as ``ofa.tutorial.LatencyEstimator``'s
  ``predict_network_latency_given_spec`` computes it, as one batched gather.
* **ProxylessNAS mobile** (``proxylessnas/mobile_trim.yaml``, Google Pixel 1, 224 only):
  ProxylessNAS ops, ``expand`` being the expand *ratio*, no ``se``/``hs``; ``Conv_1`` is the feature
  mix and ``Logits`` everything after it. It covers OFA-ProxylessNAS at width 1.0, kernels
  {3, 5, 7}, expand ratios {3, 6}, 1000 classes (:func:`proxyless_mobile_space`; not the released
  w1.3 supernet). :func:`load_ofa_latency_table` reads it for such a space (``layout="proxyless"``)
  into the same :class:`OFALatencyTable`, summing as
  ``ofa.nas.efficiency_predictor.ProxylessNASLatencyTable.predict_network_latency_given_config``;
  :class:`ProxylessNASLatencyLUT` prices the reference's own net configs (``get_active_net_config()``).

Nothing here imports ``ofa``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ofa_nni._deprecation import renamed_keywords
from ofa_nni._utils import make_divisible
from ofa_nni.arch import ArchSpace
from ofa_nni.costs import sum_active_blocks
from ofa_nni.efficiency import EfficiencyModel, as_index_array
from ofa_nni.errors import InvalidInputError, MissingInputError

__all__ = [
    "OFALatencyTable",
    "ProxylessNASLatencyLUT",
    "load_latency_table_file",
    "load_ofa_latency_table",
    "proxyless_mobile_space",
]

_MBV3_LAYOUT = "an OFA-MobileNetV3 lookup table (Note10 style: expanded_conv keys with se and hs flags)"
_PROXYLESS_LAYOUT = "a ProxylessNAS lookup table (mobile_trim style: expanded_conv keys with an expand ratio, no se/hs)"
_STEM_KEY = re.compile(r"^Conv-input:(\d+)x(\d+)x3-output:(\d+)x(\d+)x(\d+)$")
_YAML_SUFFIXES = (".yaml", ".yml")


def _conv_out(size: int, stride: int) -> int:
    return (size - 1) // stride + 1


def _shape(*dims: int) -> str:
    return "x".join(str(d) for d in dims)


def _op_key(kind: str, size_in: int, c_in: int, size_out: int, c_out: int, **details: int) -> str:
    """``LatencyEstimator.query``'s key: ``kind-input:HxWxC-output:HxWxC[-name:value...]``."""
    key = f"{kind}-input:{_shape(size_in, size_in, c_in)}-output:{_shape(size_out, size_out, c_out)}"
    return key + "".join(f"-{name}:{value}" for name, value in details.items())


# ------------------------------------------------------------------------------------ reading
def _read_yaml_table(path: Path) -> dict[str, float]:
    """``{key: mean ms}`` of one released table (checked: a map of ``{mean: number, ...}`` entries)."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise InvalidInputError(f"{path}: not a latency lookup table (not YAML: {type(error).__name__})") from None
    if not isinstance(data, Mapping) or not data:
        raise InvalidInputError(f"{path}: expected a latency lookup table (a map from op keys to "
                                f"{{mean, std, count}}); found a {type(data).__name__}")
    means = {}
    for key, entry in data.items():
        mean = entry.get("mean") if isinstance(entry, Mapping) else None
        if not isinstance(key, str) or isinstance(mean, bool) or not isinstance(mean, (int, float)):
            raise InvalidInputError(f"{path}: entry {key!r} has no numeric 'mean' (a lookup table maps op keys to "
                                    "{mean, std, count})")
        if not (math.isfinite(mean) and mean >= 0):
            raise InvalidInputError(f"{path}: entry {key!r} has mean {mean}; a latency must be a finite number >= 0")
        means[key] = float(mean)
    return means


def _layout_of(means: Mapping[str, float]) -> str:
    blocks = [key for key in means if key.startswith("expanded_conv-")]
    if blocks and all("-se:" in key and "-hs:" in key for key in blocks):
        return "mbv3"
    if blocks and not any("-se:" in key for key in blocks):
        return "proxyless"
    return "unknown"


def _describe(means: Mapping[str, float]) -> str:
    layout = _layout_of(means)
    if layout == "mbv3":
        return _MBV3_LAYOUT
    if layout == "proxyless":
        return _PROXYLESS_LAYOUT
    shown = ", ".join(list(means)[:3])
    return f"a map of {len(means)} entries whose keys are neither (e.g. {shown})"


def _input_resolution(path: Path, means: Mapping[str, float]) -> int:
    stems = [match for key in means if (match := _STEM_KEY.match(key))]
    if len(stems) != 1 or stems[0].group(1) != stems[0].group(2):
        raise InvalidInputError(f"{path}: expected one stem entry 'Conv-input:RxRx3-output:...' (it gives the table's "
                                f"input resolution); found {len(stems)}")
    return int(stems[0].group(1))


def _table_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in _YAML_SUFFIXES)
        if not files:
            raise InvalidInputError(f"{path}: no .yaml lookup tables in this folder (expected e.g. mit-han-lab's "
                                    "note10/160_lookup_table.yaml ... 224_lookup_table.yaml)")
        return files
    if not path.exists():
        raise MissingInputError(f"latency table {str(path)!r} does not exist")
    return [path]


# ------------------------------------------------------------------------------------ op keys
_Keys = tuple[list[str], dict[tuple[int, int, int], str], list[str]]
"""The keys of a space's ops at one resolution: those before the elastic blocks (stem, first block),
one per (block, kernel index, expand index), and those after them (the head), in network order."""


def _block_keys(arch_space: ArchSpace, size: int, details: Any) -> tuple[dict[tuple[int, int, int], str], int]:
    """One ``expanded_conv`` key per (block, kernel index, expand index) of ``arch_space`` whose blocks
    start at feature size ``size``, and the feature size after them; ``details(stage, c_in, kernel,
    expand, stride, idskip)`` gives the key's fields after ``input``/``output``."""
    blocks: dict[tuple[int, int, int], str] = {}
    for index, (s, b) in enumerate(arch_space.blocks):
        stride = arch_space.stage_strides[s] if b == 0 else 1
        c_in, c_out = arch_space.block_in_channels(s, b), arch_space.stage_widths[s]
        out_size = _conv_out(size, stride)
        idskip = int(stride == 1 and c_in == c_out)
        for k_idx, kernel in enumerate(arch_space.kernel_sizes):
            for e_idx, expand in enumerate(arch_space.expand_ratios):
                blocks[(index, k_idx, e_idx)] = _op_key("expanded_conv", size, c_in, out_size, c_out,
                                                        **details(s, c_in, kernel, expand, stride, idskip))
        size = out_size
    return blocks, size


def _mbv3_keys(arch_space: ArchSpace, resolution: int) -> _Keys:
    """The keys of an OFA-MobileNetV3 space (Note10 style), spelled as the reference's
    ``predict_network_latency_given_spec`` (and ``predict_network_latency``) spells them."""
    size = _conv_out(resolution, 2)
    stem, first = arch_space.stem_width, arch_space.first_block_width
    head = [
        _op_key("Conv", resolution, 3, size, stem),
        _op_key("expanded_conv", size, stem, size, first, expand=stem, kernel=3, stride=1,
                idskip=int(stem == first), se=0, hs=0),
    ]

    def details(s: int, c_in: int, kernel: int, expand: float, stride: int, idskip: int) -> dict[str, int]:
        return dict(expand=arch_space.mid_channels(c_in, expand), kernel=kernel, stride=stride, idskip=idskip,
                    se=int(arch_space.stage_se[s]), hs=int(arch_space.stage_activations[s] == "hswish"))

    blocks, size = _block_keys(arch_space, size, details)
    last, final, mix = arch_space.stage_widths[-1], arch_space.final_expand_width, arch_space.feature_mix_width
    tail = [
        _op_key("Conv_1", size, last, size, final),
        _op_key("AvgPool2D", size, final, 1, final),
        _op_key("Conv_2", 1, final, 1, mix),
        f"Logits-input:{_shape(1, 1, mix)}-output:{arch_space.num_classes}",
    ]
    return head, blocks, tail


def _proxyless_keys(arch_space: ArchSpace, resolution: int) -> _Keys:
    """The keys of an OFA-ProxylessNAS space (mobile_trim style), spelled as the reference's
    ``ProxylessNASLatencyTable.predict_network_latency_given_config`` spells them: ``expand`` is the
    ratio as ``%d`` writes it, the first block (expand 1, kernel 3) never has a shortcut, ``Conv_1``
    is the feature mix and ``Logits`` everything after it."""
    size = _conv_out(resolution, 2)
    stem, first = arch_space.stem_width, arch_space.first_block_width
    head = [
        _op_key("Conv", resolution, 3, size, stem),
        _op_key("expanded_conv", size, stem, size, first, expand=1, kernel=3, stride=1, idskip=0),
    ]

    def details(s: int, c_in: int, kernel: int, expand: float, stride: int, idskip: int) -> dict[str, int]:
        return dict(expand=int(expand), kernel=kernel, stride=stride, idskip=idskip)

    blocks, size = _block_keys(arch_space, size, details)
    last, mix = arch_space.stage_widths[-1], arch_space.feature_mix_width
    tail = [
        _op_key("Conv_1", size, last, size, mix),
        f"Logits-input:{_shape(size, size, mix)}-output:{arch_space.num_classes}",
    ]
    return head, blocks, tail


_KEYS_OF_LAYOUT = {"mbv3": _mbv3_keys, "proxyless": _proxyless_keys}
"""The op keys of a space, by its :attr:`~ofa_nni.arch.ArchSpace.layout` (the table's layout too)."""


class OFALatencyTable(EfficiencyModel):
    """Latency (ms) of subnets from mit-han-lab's lookup tables (Note10's per resolution for an
    OFA-MobileNetV3 space, ProxylessNAS's mobile table for an OFA-ProxylessNAS one).

    :attr:`space` has exactly the resolutions the tables cover (of the space they were read for);
    :attr:`dropped_resolutions` lists the space's resolutions without a table.
    """

    name = "latency"
    unit = "ms"
    statistic = "mean"
    """The tables store the mean of their measurements (and std, count): the mean is what OFA sums."""

    @renamed_keywords(space="arch_space")
    def __init__(self, *, arch_space: ArchSpace, block_ms: np.ndarray, fixed_ms: np.ndarray, sources: Mapping[int, str],
                 dropped_resolutions: Sequence[int] = (), device: str = "") -> None:
        super().__init__(arch_space)
        self.block_ms, self.fixed_ms = block_ms, fixed_ms
        self.sources = dict(sources)
        self.dropped_resolutions = tuple(dropped_resolutions)
        self.name_of_device = _DEVICES.get(device, device or "unknown")
        self.metadata = {
            "backend": "released lookup table (mit-han-lab)",
            "device": {"type": device or "unknown", "name": self.name_of_device, "num_threads": None},
            "batch_size": 1,
            "files": {str(r): source for r, source in self.sources.items()},
        }

    def evaluate(self, indices: np.ndarray) -> np.ndarray:
        return sum_active_blocks(self.arch_space, indices, self.block_ms, self.fixed_ms)

    def raw_sum(self, population: Any) -> np.ndarray:
        """The sum of the table entries, ``(n,)`` ms (the same as calling it: nothing is corrected)."""
        return self.evaluate(as_index_array(self.arch_space, population))

    def coverage_note(self, wanted: Sequence[int] | None = None) -> str:
        """One line saying which resolutions the tables cover, and which of ``wanted`` they drop."""
        dropped = [r for r in (wanted if wanted is not None else self.dropped_resolutions)
                   if r not in self.arch_space.resolutions]
        note = f"latency tables cover resolutions {list(self.arch_space.resolutions)}"
        if dropped:
            note += f": the search is restricted to them ({len(dropped)} of the space's resolutions have no table: " \
                    f"{dropped})"
        return note

    def summary(self) -> str:
        device = self.name_of_device
        return (f"released latency tables ({device}): {len(self.sources)} file(s), mean ms per op; "
                + self.coverage_note())


_DEVICES = {"note10": "Samsung Galaxy Note10", "proxylessnas": "Google Pixel 1"}  # mit-han-lab's folder names
_LAYOUT_TEXT = {"mbv3": _MBV3_LAYOUT, "proxyless": _PROXYLESS_LAYOUT}


def _guess_device(files: Sequence[Path]) -> str:
    return files[0].parent.name if files else ""


def proxyless_mobile_space(**overrides: Any) -> ArchSpace:
    """The OFA-ProxylessNAS space ProxylessNAS's mobile table (``mobile_trim.yaml``) covers: width 1.0,
    kernels {3, 5, 7}, expand ratios {3, 6}, depths {2, 3, 4}, 224 pixels, 1000 classes."""
    from ofa_nni.arch import proxyless_arch_space

    settings: dict[str, Any] = {"width_mult": 1.0, "expand_ratios": (3, 6), "resolutions": (224,), **overrides}
    return proxyless_arch_space(**settings)


def _default_space(layout: str) -> ArchSpace:
    """The network the tables of ``layout`` measured (Note10's for a table of neither layout: it is
    refused as not Note10's)."""
    from ofa_nni.ofa_released.predictors import tutorial_space

    return proxyless_mobile_space() if layout == "proxyless" else tutorial_space()


@renamed_keywords(space="arch_space")
def load_ofa_latency_table(path: str | os.PathLike[str], *, arch_space: ArchSpace | None = None) -> OFALatencyTable:
    """Read mit-han-lab's lookup tables: the per-resolution MobileNetV3 ones (a folder of them, or one
    file) or ProxylessNAS's mobile table, for a space of the same layout.

    Args:
        path: A folder of ``<r>_lookup_table.yaml`` files (e.g. ``ofa/note10``) or one such file, or
            ``proxylessnas/mobile_trim.yaml``. Each file's resolution is read from its stem entry
            (``Conv-input:RxRx3-...``).
        arch_space: The space to price; its :attr:`~ofa_nni.arch.ArchSpace.layout` says which tables
            it reads. Default: the network the tables measured, for Note10 tables
            :func:`~ofa_nni.ofa_released.predictors.tutorial_space` (OFA-MobileNetV3 w1.2 at 160-224
            step 16), for ProxylessNAS's :func:`proxyless_mobile_space` (OFA-ProxylessNAS w1.0, expand
            ratios {3, 6}, 224). The returned table's space keeps only the resolutions that have a table.

    Raises:
        InvalidInputError: naming the file, the expected and the found layout: a table of another
            layout, one of another space (the first op key the space needs and the table lacks, with
            what the table covers), or no table for any of the space's resolutions.
    """
    path = Path(path)
    if arch_space is not None and not isinstance(arch_space, ArchSpace):  # their op shapes are MobileNet blocks'
        raise InvalidInputError(
            f"{path}: mit-han-lab's released latency tables describe OFA-MobileNetV3 and OFA-ProxylessNAS "
            f"subnets, not this OFA-ResNet50 space ({type(arch_space).__name__}): measure one with "
            "'ofa-nni lut build'")
    files = _table_files(path)
    tables: dict[int, tuple[Path, dict[str, float]]] = {}
    for file in files:
        means = _read_yaml_table(file)
        found = _layout_of(means)
        if arch_space is None:  # the network the first table measured
            arch_space = _default_space(found)
        if found != arch_space.layout:
            raise InvalidInputError(f"{file}: expected {_LAYOUT_TEXT[arch_space.layout]}; found {_describe(means)}")
        resolution = _input_resolution(file, means)
        if resolution in tables:
            raise InvalidInputError(f"{path}: two tables for resolution {resolution}: {tables[resolution][0].name} and "
                                    f"{file.name}")
        tables[resolution] = (file, means)
    assert arch_space is not None  # _table_files returns at least one file
    covered = tuple(r for r in arch_space.resolutions if r in tables)
    if not covered:
        raise InvalidInputError(f"{path}: the tables cover resolutions {sorted(tables)}, none of the space's "
                                f"{list(arch_space.resolutions)}")
    table_space = dataclasses.replace(arch_space, resolutions=covered)
    shape = (arch_space.num_blocks, len(arch_space.kernel_sizes), len(arch_space.expand_ratios), len(covered))
    block_ms, fixed_ms = np.zeros(shape), np.zeros(len(covered))
    for r_idx, resolution in enumerate(covered):
        file, means = tables[resolution]
        head, blocks, tail = _KEYS_OF_LAYOUT[arch_space.layout](arch_space, resolution)
        missing = next((key for key in (*head, *blocks.values(), *tail) if key not in means), None)
        if missing is not None:  # the first op in network order
            raise InvalidInputError(_missing_key_message(file, missing, means, arch_space))
        fixed_ms[r_idx] = sum(means[key] for key in (*head, *tail))
        for (block, k_idx, e_idx), key in blocks.items():
            block_ms[block, k_idx, e_idx, r_idx] = means[key]
    return OFALatencyTable(arch_space=table_space, block_ms=block_ms, fixed_ms=fixed_ms,
                           sources={r: str(tables[r][0]) for r in covered},
                           dropped_resolutions=[r for r in arch_space.resolutions if r not in covered],
                           device=_guess_device(files))


def _missing_key_message(file: Path, key: str, means: Mapping[str, float], arch_space: ArchSpace) -> str:
    if arch_space.layout == "proxyless":
        return (f"{file}: this OFA-ProxylessNAS space (stem width {arch_space.stem_width}, width_mult "
                f"{arch_space.width_mult}, kernels {list(arch_space.kernel_sizes)}, expand ratios "
                f"{list(arch_space.expand_ratios)}, {arch_space.num_classes} classes) needs entry {key!r}, which the "
                f"table lacks; the table covers {_proxyless_coverage(means, arch_space)}")
    stem = next((m for k in means if (m := _STEM_KEY.match(k))), None)
    found = f"stem width {stem.group(5)}" if stem else "no stem entry"
    classes = [k.rsplit(":", 1)[1] for k in means if k.startswith("Logits-")]
    return (f"{file}: this space (stem width {arch_space.stem_width}, width_mult {arch_space.width_mult}, "
            f"{arch_space.num_classes} classes) needs entry {key!r}, which the table lacks; the table has {found}"
            + (f", {classes[0]} classes" if classes else "")
            + " (the Note10 tables describe OFA-MobileNetV3 w1.2, 1000 classes: tutorial_space())")


_PROXYLESS_BLOCK_KEY = re.compile(r"^expanded_conv-input:\d+x\d+x(\d+)-output:\d+x\d+x(\d+)-expand:(\d+)-kernel:(\d+)-")


def _proxyless_coverage(means: Mapping[str, float], arch_space: ArchSpace) -> str:
    """What a ProxylessNAS table prices, read from its keys: widths, kernels and expand ratios of the
    elastic blocks (the first block, which reads the stem, left out), resolutions, classes."""
    stems = [m for key in means if (m := _STEM_KEY.match(key))]
    stem_widths = sorted({int(m.group(5)) for m in stems})
    blocks = [m for key in means if (m := _PROXYLESS_BLOCK_KEY.match(key)) and int(m.group(1)) not in stem_widths]
    kernels = sorted({int(m.group(4)) for m in blocks})
    expands = sorted({int(m.group(3)) for m in blocks})
    widths = set(stem_widths) | {int(m.group(c)) for m in blocks for c in (1, 2)}
    # The width multiplier whose stem and stage widths are the table's (as this space's base widths scale).
    multipliers = [m / 20 for m in range(1, 61)
                   if {make_divisible(w * m / 20) for w in arch_space.base_widths[:-1]} == widths]
    width = f"width {multipliers[0]} " if multipliers else ""
    stem = f"stem width {stem_widths[0]}" if len(stem_widths) == 1 else f"stem widths {stem_widths}"
    classes = sorted({key.rsplit(":", 1)[1] for key in means if key.startswith("Logits-")}, key=int)
    return (f"OFA-ProxylessNAS {width}({stem}), kernels {kernels}, expand ratios {expands}, resolutions "
            f"{sorted(int(m.group(1)) for m in stems)}, {', '.join(classes)} classes")


# -------------------------------------------------------------------------- ProxylessNAS mobile
class ProxylessNASLatencyLUT:
    """ProxylessNAS's mobile latency table (``mobile_trim.yaml``) on ProxylessNAS net configs.

    :meth:`predict_net_config` prices what ``OFAProxylessNASNets.get_active_net_config()`` (or a
    ``ProxylessNASNets`` config) describes at an image size, op by op as the reference's
    ``ProxylessNASLatencyTable.predict_network_latency_given_config``.
    """

    def __init__(self, means: Mapping[str, float], path: str = "") -> None:
        self.means, self.path = dict(means), path
        self.resolutions = tuple(sorted({int(m.group(1)) for key in self.means if (m := _STEM_KEY.match(key))}))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ProxylessNASLatencyLUT:
        path = Path(path)
        if not path.is_file():
            raise MissingInputError(f"latency table {str(path)!r} does not exist")
        means = _read_yaml_table(path)
        if _layout_of(means) != "proxyless":
            raise InvalidInputError(f"{path}: expected {_PROXYLESS_LAYOUT}; found {_describe(means)}")
        return cls(means, str(path))

    def _look_up(self, key: str, where: str) -> float:
        if key not in self.means:
            raise InvalidInputError(f"{self.path or 'ProxylessNAS table'}: no entry {key!r} ({where}); the table "
                                    f"covers resolutions {list(self.resolutions)} of ProxylessNAS mobile (w1.0)")
        return self.means[key]

    def predict_net_config(self, net_config: Mapping[str, Any], image_size: int = 224) -> float:
        """Milliseconds of the network ``net_config`` describes at ``image_size``."""
        if not isinstance(net_config, Mapping) or net_config.get("name") != "ProxylessNASNets":
            found = net_config.get("name") if isinstance(net_config, Mapping) else type(net_config).__name__
            raise InvalidInputError(f"{self.path or 'ProxylessNAS table'}: expects a ProxylessNASNets net config; "
                                    f"found {found!r}")
        try:
            size = _conv_out(image_size, 2)
            total = self._look_up(_op_key("Conv", image_size, 3, size, net_config["first_conv"]["out_channels"]),
                                  "first_conv")
            for index, block in enumerate(net_config["blocks"]):
                conv = block["mobile_inverted_conv"] if "mobile_inverted_conv" in block else block["conv"]
                if conv is None:  # a zero layer
                    continue
                out_size = _conv_out(size, conv["stride"])
                key = _op_key("expanded_conv", size, conv["in_channels"], out_size, conv["out_channels"],
                              expand=int(conv["expand_ratio"]), kernel=conv["kernel_size"], stride=conv["stride"],
                              idskip=int(block["shortcut"] is not None))
                total += self._look_up(key, f"blocks[{index}]")
                size = out_size
            mix = net_config["feature_mix_layer"]
            total += self._look_up(_op_key("Conv_1", size, mix["in_channels"], size, mix["out_channels"]),
                                   "feature_mix_layer")
            classifier = net_config["classifier"]
            logits = f"Logits-input:{_shape(size, size, classifier['in_features'])}-output:{classifier['out_features']}"
            return total + self._look_up(logits, "classifier")
        except (KeyError, TypeError) as error:
            raise InvalidInputError(f"damaged ProxylessNASNets net config (missing or bad {error})") from None


# ----------------------------------------------------------------------------------- dispatch
def is_released_table_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``--lut PATH`` names released YAML tables (a folder, or a .yaml/.yml file) rather than an
    ofa-nni JSON table."""
    path = Path(path)
    return path.is_dir() or path.suffix in _YAML_SUFFIXES


@renamed_keywords(space="arch_space")
def load_latency_table_file(path: str | os.PathLike[str], arch_space: ArchSpace) -> Any:
    """The latency cost ``--lut PATH`` names for ``arch_space``: released tables (a folder or a YAML file;
    the returned table's space may cover fewer resolutions) or an ofa-nni JSON table."""
    if is_released_table_path(path):
        return load_ofa_latency_table(path, arch_space=arch_space)
    from ofa_nni.latency import LatencyTable

    return LatencyTable.load(path, arch_space=arch_space)
