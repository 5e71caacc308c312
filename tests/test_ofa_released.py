"""mit-han-lab's released artefacts against PyPI ``ofa`` (the reference): predictors, latency tables,
net.config. The files are read from ``../shared/ofa-released`` (not shipped with the project); tests
that need them are skipped, saying so, where that folder is absent.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import TINY_PROXYLESS_KWARGS, TINY_SPACE_KWARGS

from ofa_nni import ArchSpace, arch_to_ofa
from ofa_nni.accuracy import AccuracyPredictor, MLPAccuracyPredictor
from ofa_nni.app.cli import main
from ofa_nni.arch import proxyless_arch_space
from ofa_nni.errors import InvalidInputError
from ofa_nni.ofa_released import (
    RESNET50_RESOLUTIONS,
    TUTORIAL_RESOLUTIONS,
    OFALatencyTable,
    ProxylessNASLatencyLUT,
    load_latency_table_file,
    load_ofa_accuracy_predictor,
    load_ofa_latency_table,
    load_predictor_file,
    ofa_net_config,
    read_ofa_net_config,
    resnet50_space,
    sample_from_ofa_net_config,
    tutorial_space,
    write_ofa_net_config,
)
from ofa_nni.resnet_arch import ResNetArchSpace
from ofa_nni.resnet_weights import resnet_ofa_settings
from ofa_nni.search import canonical_indices

REPO = Path(__file__).resolve().parents[1]
RELEASED = REPO.parent / "shared" / "ofa-released"
MBV3_PREDICTOR = RELEASED / "ofa" / "acc_predictor.pth"
RESNET50_PREDICTOR = RELEASED / "ofa" / "ofa_resnet50_acc_predictor.pth"
NOTE10 = RELEASED / "ofa" / "note10"
PROXYLESS_TABLE = RELEASED / "proxylessnas" / "mobile_trim.yaml"
N_SUBNETS = 1000

needs_released = pytest.mark.skipif(
    not RELEASED.is_dir(),
    reason=f"mit-han-lab's released files are not at {RELEASED} (see the README there: they are not shipped)",
)


def _allow_loaderless_yaml_load(monkeypatch) -> None:
    """The reference's ``yaml.load(fp)`` (PyYAML < 6 style) as a safe load."""
    load = yaml.load
    monkeypatch.setattr(yaml, "load", lambda stream, Loader=yaml.SafeLoader: load(stream, Loader))


@pytest.fixture
def reference_tutorial(monkeypatch):
    """``ofa.tutorial``, importable here: its package imports ``ofa.model_zoo``, which imports
    ``gdown`` (a downloader, unused by the tutorial classes and not installed), and its latency
    table calls ``yaml.load(fp)`` without a Loader, which PyYAML 6 refuses: both are bridged for the
    test only."""
    if "gdown" not in sys.modules:
        monkeypatch.setitem(sys.modules, "gdown", types.ModuleType("gdown"))
    _allow_loaderless_yaml_load(monkeypatch)
    import ofa.tutorial

    return ofa.tutorial


def _ofa_spec(space: ArchSpace, row: np.ndarray) -> dict:
    """The tutorial's arch dict (``ks``, ``e``, ``d``, ``r: [r]``) of one of our index rows."""
    arch = arch_to_ofa(space.from_indices(row), space=space)
    return {"ks": arch["ks"], "e": arch["e"], "d": arch["d"], "r": [arch["r"]]}


# ------------------------------------------------------------------------------------ predictors
@needs_released
def test_tutorial_predictor_equals_the_reference_on_1000_subnets(reference_tutorial, tmp_path):
    ours = load_ofa_accuracy_predictor(MBV3_PREDICTOR)
    assert isinstance(ours, MLPAccuracyPredictor) and ours.arch_space == tutorial_space()
    reference = reference_tutorial.AccuracyPredictor(pretrained=False, device="cpu")
    reference.model.load_state_dict(torch.load(MBV3_PREDICTOR, map_location="cpu", weights_only=True))
    rows = ours.arch_space.random_indices(N_SUBNETS, 0)
    theirs = reference.predict_accuracy([_ofa_spec(ours.arch_space, row) for row in rows]).numpy().reshape(-1)
    predicted = ours(rows)
    assert np.abs(predicted - theirs).max() <= 1e-6
    assert 0.6 < predicted.min() and predicted.max() < 0.85  # ImageNet top-1 fractions
    # It is an ofa-nni predictor like any other: the search's loader reads it, and it saves as .npz.
    np.testing.assert_array_equal(load_predictor_file(MBV3_PREDICTOR)(rows), predicted)
    ours.save(tmp_path / "released.npz")
    np.testing.assert_array_equal(AccuracyPredictor.load(tmp_path / "released.npz")(rows), predicted)
    # A space with a subset of the tutorial's choices reads the same file (columns are matched).
    smaller = tutorial_space(resolutions=(176, 224), kernel_sizes=(3, 7))
    sub = load_ofa_accuracy_predictor(MBV3_PREDICTOR, arch_space=smaller)
    sub_rows = smaller.random_indices(50, 1)
    theirs = reference.predict_accuracy([_ofa_spec(smaller, row) for row in sub_rows]).numpy().reshape(-1)
    assert np.abs(sub(sub_rows) - theirs).max() <= 1e-6
    with pytest.deprecated_call(match=r"load_ofa_accuracy_predictor\(\): the keyword space="):  # one release
        np.testing.assert_array_equal(load_ofa_accuracy_predictor(MBV3_PREDICTOR, space=smaller)(sub_rows),
                                      sub(sub_rows))


def _resnet_arch_dict(space: ResNetArchSpace, row) -> dict:
    """The reference encoder's arch dict of an index row (``ofa_settings`` with ``image_size``)."""
    settings = resnet_ofa_settings(space.from_indices(row), space)
    return {"d": settings["d"], "e": settings["e"], "w": settings["w"], "image_size": settings["r"]}


@needs_released
def test_resnet50_predictor_equals_the_reference_on_1000_subnets(capsys, tmp_path):
    from ofa.nas.accuracy_predictor import AccuracyPredictor as ReferencePredictor
    from ofa.nas.accuracy_predictor import ResNetArchEncoder

    encoder = ResNetArchEncoder(image_size_list=list(RESNET50_RESOLUTIONS))
    reference = ReferencePredictor(encoder, 400, 3, checkpoint_path=str(RESNET50_PREDICTOR), device="cpu")
    assert "Loaded checkpoint" in capsys.readouterr().out  # not a silently random reference
    ours = load_ofa_accuracy_predictor(RESNET50_PREDICTOR)
    assert isinstance(ours, MLPAccuracyPredictor) and ours.arch_space == resnet50_space()
    # no subnormal weights (the file has 154,761; they slow every product ~25x and change nothing)
    tiny = np.finfo(np.float32).tiny
    assert not any(((weight != 0) & (np.abs(weight) < tiny)).any() for weight in ours.weights)
    assert ours.arch_space.feature_dim == encoder.n_dim == 82
    rows = ours.arch_space.random_indices(N_SUBNETS, 0)
    archs = [_resnet_arch_dict(ours.arch_space, row) for row in rows]
    np.testing.assert_array_equal(ours.arch_space.to_features(rows), np.array([encoder.arch2feature(a) for a in archs]))
    with torch.no_grad():
        theirs = reference.predict_acc(archs).numpy()
    assert np.abs(ours(rows) - theirs).max() <= 1e-6
    # on a space of fewer resolutions (the columns of the others dropped), and saved as ours
    smaller = ResNetArchSpace(resolutions=(160, 224))
    sub = load_ofa_accuracy_predictor(RESNET50_PREDICTOR, arch_space=smaller)
    sub_rows = smaller.random_indices(100, 1)
    with torch.no_grad():
        theirs = reference.predict_acc([_resnet_arch_dict(smaller, row) for row in sub_rows]).numpy()
    assert np.abs(sub(sub_rows) - theirs).max() <= 1e-6
    sub.save(tmp_path / "resnet.npz")
    assert np.array_equal(AccuracyPredictor.load(tmp_path / "resnet.npz")(sub_rows), sub(sub_rows))


@needs_released
def test_resnet50_predictor_refuses_other_spaces():
    with pytest.raises(InvalidInputError) as error:
        load_ofa_accuracy_predictor(RESNET50_PREDICTOR, arch_space=ResNetArchSpace())  # 128..224 step 4
    message = str(error.value)
    assert str(RESNET50_PREDICTOR) in message
    assert "resolutions within [128, 144, 160, 176, 192, 224, 240, 256]" in message
    assert "found a space with resolutions [128, 132," in message
    with pytest.raises(InvalidInputError, match=r"found a space with depths \[0, 1\]"):
        load_ofa_accuracy_predictor(RESNET50_PREDICTOR, arch_space=resnet50_space(depths=(0, 1)))
    with pytest.raises(InvalidInputError, match="found OFA.s ResNet50 predictor .*; this ArchSpace space expects"):
        load_ofa_accuracy_predictor(RESNET50_PREDICTOR, arch_space=tutorial_space())
    with pytest.raises(InvalidInputError, match="found the OFA tutorial's MobileNetV3 predictor.*ResNetArchSpace"):
        load_ofa_accuracy_predictor(MBV3_PREDICTOR, arch_space=resnet50_space())


@needs_released
@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_predictors_of_another_space_or_layout_are_refused(tmp_path):
    # The MobileNetV3 predictor cannot describe resolutions it has no input for.
    with pytest.raises(InvalidInputError) as error:
        load_ofa_accuracy_predictor(MBV3_PREDICTOR, arch_space=ArchSpace())
    message = str(error.value)
    assert str(MBV3_PREDICTOR) in message and "resolutions within [160, 176, 192, 208, 224]" in message
    assert "found a space with resolutions [128, 132," in message
    # Any other state dict names both accepted layouts and what it found.
    other = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(3, 4)}, other)
    with pytest.raises(InvalidInputError) as error:
        load_predictor_file(other)
    message = str(error.value)
    assert message.startswith(f"{other}: expected the OFA tutorial's MobileNetV3 predictor")
    assert "or OFA's ResNet50 predictor" in message and "found a state dict with 1 tensors: weight (3, 4)" in message
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x80\x05not a pickle")
    with pytest.raises(InvalidInputError, match="not a PyTorch state dict"):
        load_predictor_file(garbage)


# -------------------------------------------------------------------------------- latency tables
@needs_released
def test_note10_tables_equal_the_reference_on_1000_subnets(reference_tutorial):
    table = load_ofa_latency_table(NOTE10)
    assert isinstance(table, OFALatencyTable) and table.arch_space == tutorial_space()
    estimators = {r: reference_tutorial.latency_table.LatencyEstimator(url=str(NOTE10 / f"{r}_lookup_table.yaml"))
                  for r in TUTORIAL_RESOLUTIONS}
    rows = table.arch_space.random_indices(N_SUBNETS, 0)
    specs = [_ofa_spec(table.arch_space, row) for row in rows]
    theirs = np.array([estimators[spec["r"][0]].predict_network_latency_given_spec(spec) for spec in specs])
    ours = table(rows)
    assert np.abs(ours / theirs - 1).max() <= 1e-9
    assert 5 < ours.min() and ours.max() < 100  # milliseconds on a phone
    # One file alone is a table of its resolution.
    single = load_ofa_latency_table(NOTE10 / "192_lookup_table.yaml")
    assert single.arch_space.resolutions == (192,)


@needs_released
def test_a_table_folder_with_some_resolutions_restricts_the_space(tmp_path):
    folder = tmp_path / "note10"
    folder.mkdir()
    for r in (160, 224):
        shutil.copy(NOTE10 / f"{r}_lookup_table.yaml", folder)
    table = load_ofa_latency_table(folder)
    full = load_ofa_latency_table(NOTE10)
    assert table.arch_space == tutorial_space(resolutions=(160, 224)) and table.dropped_resolutions == (176, 192, 208)
    assert "cover resolutions [160, 224]: the search is restricted to them" in table.coverage_note()
    rows = table.arch_space.random_indices(100, 0)
    wide = rows.copy()
    wide[:, -1] = np.array([0, 4])[rows[:, -1]]
    np.testing.assert_array_equal(table(rows), full(wide))


@needs_released
def test_proxylessnas_table_equals_the_reference_on_1000_net_configs(monkeypatch):
    """:class:`ProxylessNASLatencyLUT` prices the reference's own inputs, net configs of
    ``OFAProxylessNASNets`` at the mobile table's width (1.0) and choices."""
    from ofa.imagenet_classification.elastic_nn.networks import OFAProxylessNASNets
    from ofa.nas.efficiency_predictor import ProxylessNASLatencyTable

    _allow_loaderless_yaml_load(monkeypatch)
    reference = ProxylessNASLatencyTable(url=str(PROXYLESS_TABLE))
    ours = ProxylessNASLatencyLUT.load(PROXYLESS_TABLE)
    assert ours.resolutions == (224,)
    net = OFAProxylessNASNets(width_mult=1.0, ks_list=[3, 5, 7], expand_ratio_list=[3, 6], depth_list=[2, 3, 4])
    random.seed(0)
    ratios = []
    for _ in range(N_SUBNETS):
        net.sample_active_subnet()
        config = json.loads(json.dumps(net.get_active_net_config()))
        theirs = reference.predict_network_latency_given_config(config, 224)
        ratios.append(ours.predict_net_config(config, 224) / theirs)
    assert np.abs(np.array(ratios) - 1).max() <= 1e-9
    with pytest.raises(InvalidInputError, match="no entry 'Conv-input:192x192x3"):
        ours.predict_net_config(config, 192)


MOBILE_TRIM_SPACE = dict(width_mult=1.0, expand_ratios=(3, 6), resolutions=(224,))
"""The OFA-ProxylessNAS space ``mobile_trim.yaml`` covers: width 1.0, kernels {3, 5, 7}, expand
ratios {3, 6}, depths {2, 3, 4}, 224 pixels, 1000 classes."""


def _reference_proxyless_latencies(space, rows, monkeypatch) -> np.ndarray:
    """``ProxylessNASLatencyTable.predict_network_latency_given_config`` of the net configs the
    reference supernet (``OFAProxylessNASNets`` with ``space``'s choices) writes for ``rows``."""
    from ofa.nas.efficiency_predictor import ProxylessNASLatencyTable

    _allow_loaderless_yaml_load(monkeypatch)
    reference = ProxylessNASLatencyTable(url=str(PROXYLESS_TABLE))
    net = _reference_proxyless(width_mult=space.width_mult, n_classes=space.num_classes,
                               ks_list=list(space.kernel_sizes), expand_ratio_list=list(space.expand_ratios),
                               depth_list=list(space.depths))
    latencies = []
    for row in rows:
        arch = arch_to_ofa(space.from_indices(row), space=space)
        net.set_active_subnet(ks=arch["ks"], e=arch["e"], d=arch["d"])
        config = json.loads(json.dumps(net.get_active_net_config()))
        latencies.append(reference.predict_network_latency_given_config(config, arch["r"]))
    return np.array(latencies)


@needs_released
def test_proxylessnas_table_prices_proxyless_subnets_as_the_reference_on_1000_subnets(monkeypatch):
    space = proxyless_arch_space(**MOBILE_TRIM_SPACE)
    table = load_ofa_latency_table(PROXYLESS_TABLE, arch_space=space)
    assert isinstance(table, OFALatencyTable) and table.arch_space == space and table.dropped_resolutions == ()
    rows = np.concatenate([space.random_indices(N_SUBNETS, 0),
                           [space.to_indices(space.min_sample()), space.to_indices(space.max_sample())]])
    theirs = _reference_proxyless_latencies(space, rows, monkeypatch)
    ours = table(rows)
    assert np.abs(ours / theirs - 1).max() <= 1e-9
    assert 20 < ours.min() < ours.max() < 200  # milliseconds on a Pixel 1
    # The same cost through every door: the --lut loader, the default space of a ProxylessNAS table.
    np.testing.assert_array_equal(load_latency_table_file(PROXYLESS_TABLE, space)(rows), ours)
    default = load_ofa_latency_table(PROXYLESS_TABLE)
    assert default.arch_space == space
    np.testing.assert_array_equal(default(rows), ours)
    assert table.metadata["device"]["name"] == "Google Pixel 1"
    # A space with fewer choices the table also covers reads the same file.
    smaller = proxyless_arch_space(**{**MOBILE_TRIM_SPACE, "kernel_sizes": (3, 7), "depths": (2, 4),
                                      "expand_ratios": (6,)})
    sub_rows = smaller.random_indices(50, 1)
    sub = load_ofa_latency_table(PROXYLESS_TABLE, arch_space=smaller)
    assert np.abs(sub(sub_rows) / _reference_proxyless_latencies(smaller, sub_rows, monkeypatch) - 1).max() <= 1e-9


@needs_released
def test_proxylessnas_table_restricts_a_space_to_its_resolution():
    space = proxyless_arch_space(**{**MOBILE_TRIM_SPACE, "resolutions": (192, 224)})
    table = load_ofa_latency_table(PROXYLESS_TABLE, arch_space=space)
    assert table.arch_space == proxyless_arch_space(**MOBILE_TRIM_SPACE) and table.dropped_resolutions == (192,)
    assert table.coverage_note(space.resolutions) == (
        "latency tables cover resolutions [224]: the search is restricted to them (1 of the space's resolutions "
        "have no table: [192])")


@needs_released
@pytest.mark.parametrize("space_kwargs, needed", [
    ({}, "Conv-input:224x224x3-output:112x112x40"),  # the released supernet, width 1.3
    ({**MOBILE_TRIM_SPACE, "expand_ratios": (3, 4, 6)},
     "expanded_conv-input:112x112x16-output:56x56x24-expand:4-kernel:3-stride:2-idskip:0"),
    ({**MOBILE_TRIM_SPACE, "num_classes": 10}, "Logits-input:7x7x1280-output:10"),
])
def test_proxylessnas_table_refuses_a_space_it_does_not_cover(space_kwargs, needed):
    space = proxyless_arch_space(**space_kwargs)
    with pytest.raises(InvalidInputError) as error:
        load_ofa_latency_table(PROXYLESS_TABLE, arch_space=space)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{PROXYLESS_TABLE}: this OFA-ProxylessNAS space ")
    assert f"needs entry {needed!r}, which the table lacks" in message
    assert message.endswith("the table covers OFA-ProxylessNAS width 1.0 (stem width 32), kernels [3, 5, 7], "
                            "expand ratios [3, 6], resolutions [224], 1000 classes")


@needs_released
def test_proxylessnas_table_refuses_other_resolutions_and_layouts():
    with pytest.raises(InvalidInputError) as error:
        load_ofa_latency_table(PROXYLESS_TABLE,
                               arch_space=proxyless_arch_space(**{**MOBILE_TRIM_SPACE, "resolutions": (160, 192)}))
    assert str(error.value) == f"{PROXYLESS_TABLE}: the tables cover resolutions [224], none of the space's [160, 192]"
    with pytest.raises(InvalidInputError) as error:
        load_ofa_latency_table(NOTE10, arch_space=proxyless_arch_space(**MOBILE_TRIM_SPACE))
    message = str(error.value)
    assert message.startswith(f"{NOTE10 / '160_lookup_table.yaml'}: expected a ProxylessNAS lookup table")
    assert "found an OFA-MobileNetV3 lookup table" in message
    with pytest.raises(InvalidInputError, match="describe OFA-MobileNetV3 and OFA-ProxylessNAS subnets, not this "
                                                "OFA-ResNet50 space"):
        load_ofa_latency_table(PROXYLESS_TABLE, arch_space=resnet50_space())


@needs_released
def test_tables_of_another_space_or_layout_are_refused(tmp_path):
    with pytest.raises(InvalidInputError) as error:
        load_ofa_latency_table(PROXYLESS_TABLE, arch_space=tutorial_space())
    message = str(error.value)
    assert message.startswith(f"{PROXYLESS_TABLE}: expected an OFA-MobileNetV3 lookup table")
    assert "found a ProxylessNAS lookup table" in message
    with pytest.raises(InvalidInputError) as error:
        ProxylessNASLatencyLUT.load(NOTE10 / "160_lookup_table.yaml")
    assert "expected a ProxylessNAS lookup table" in str(error.value)
    assert "found an OFA-MobileNetV3 lookup table" in str(error.value)
    # The Note10 tables describe width 1.2: a width-1.0 space is refused, naming the first missing op.
    with pytest.raises(InvalidInputError) as error:
        load_ofa_latency_table(NOTE10, arch_space=ArchSpace(resolutions=TUTORIAL_RESOLUTIONS))
    message = str(error.value)
    assert "160_lookup_table.yaml: this space (stem width 16, width_mult 1.0" in message
    assert "needs entry 'Conv-input:160x160x3-output:80x80x16'" in message and "the table has stem width 24" in message
    with pytest.raises(InvalidInputError, match=r"cover resolutions \[160, 176, 192, 208, 224\], none of"):
        load_ofa_latency_table(NOTE10, arch_space=tutorial_space(resolutions=(128, 144)))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidInputError, match="no .yaml lookup tables in this folder"):
        load_ofa_latency_table(empty)


# -------------------------------------------------------------------------------------- the CLI
@needs_released
def test_search_with_the_released_predictor_and_note10_tables(tmp_path, capsys):
    folder = tmp_path / "note10"
    folder.mkdir()
    for r in (176, 208):
        shutil.copy(NOTE10 / f"{r}_lookup_table.yaml", folder)
    out = tmp_path / "search.json"
    assert main(["search", "--predictor", str(MBV3_PREDICTOR), "--lut", str(folder), "--target", "latency_ms<=20",
                 "--target", "latency_ms<=30", "--population", "30", "--generations", "10", "--quiet",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "note: latency tables cover resolutions [176, 208]: the search is restricted to them" in printed
    document = json.loads(out.read_text())
    space = tutorial_space(resolutions=(176, 208))
    assert document["space"] == space.signature()
    table, predictor = load_ofa_latency_table(folder), load_ofa_accuracy_predictor(MBV3_PREDICTOR)
    for target, budget in zip(document["targets"], (20, 30), strict=True):
        sample = space.validate(target["sample"])
        assert target["costs"]["latency_ms"] == pytest.approx(table(sample)) and table(sample) <= budget
        wide = {**sample}  # the predictor's own space has every tutorial resolution
        assert target["score"] == pytest.approx(predictor(wide), abs=1e-6)


@needs_released
def test_search_with_the_proxylessnas_mobile_table(tmp_path, capsys, monkeypatch):
    """``ofa-nni search --lut mobile_trim.yaml`` for an OFA-ProxylessNAS predictor of the covered
    widths and choices at 192 and 224: the search keeps 224 (the table's one resolution), says so,
    and every target's latency is the reference's for its subnet."""
    from ofa_nni.accuracy import RidgeAccuracyPredictor
    from ofa_nni.efficiency import MacsModel
    from search_spaces import OFAProxylessNASSpace

    space = proxyless_arch_space(**{**MOBILE_TRIM_SPACE, "resolutions": (192, 224)})
    rows = space.random_indices(200, 0)
    macs = MacsModel(space)(rows)
    predictor = RidgeAccuracyPredictor(arch_space=space)
    predictor.fit(space.to_features(rows), 0.6 + 0.2 * macs / macs.max())  # bigger subnets score higher
    predictor.save(tmp_path / "predictor.npz")
    out = tmp_path / "search.json"
    assert main(["search", "--predictor", str(tmp_path / "predictor.npz"), "--lut", str(PROXYLESS_TABLE),
                 "--target", "latency_ms<=60", "--target", "latency_ms<=80", "--population", "30",
                 "--generations", "10", "--quiet", "--out", str(out)]) == 0
    assert "note: latency tables cover resolutions [224]: the search is restricted to them" in capsys.readouterr().out
    document = json.loads(out.read_text())
    covered = proxyless_arch_space(**MOBILE_TRIM_SPACE)
    # The space of a supernet built with these settings: its file takes the results to 'ofa-nni export'.
    assert document["space"] == OFAProxylessNASSpace(**MOBILE_TRIM_SPACE).arch_space.signature()
    samples = [covered.validate(target["sample"]) for target in document["targets"]]
    theirs = _reference_proxyless_latencies(covered, [covered.to_indices(s) for s in samples], monkeypatch)
    for target, budget, reference in zip(document["targets"], (60, 80), theirs, strict=True):
        assert target["costs"]["latency_ms"] == pytest.approx(reference, rel=1e-9) and reference <= budget
        assert target["score"] == pytest.approx(predictor(target["sample"]))  # the predictor's own space
    assert "Google Pixel 1" in document["latency_table"]["description"]


@needs_released
def test_search_with_the_released_resnet50_predictor(tmp_path):
    out = tmp_path / "search.json"
    assert main(["search", "--predictor", str(RESNET50_PREDICTOR), "--target", "macs<=2000M", "--target",
                 "params<=15M", "--population", "30", "--generations", "5", "--quiet", "--out", str(out)]) == 0
    document = json.loads(out.read_text())
    space = resnet50_space()
    assert document["space"] == space.signature()
    predictor = load_ofa_accuracy_predictor(RESNET50_PREDICTOR)
    macs = [target["costs"]["macs"] for target in document["targets"]]
    assert macs[0] <= 2e9 and document["targets"][1]["costs"]["params"] <= 15e6
    for target in document["targets"]:
        sample = space.parse(target["arch"])
        assert target["score"] == pytest.approx(predictor(sample), abs=1e-6)


@needs_released
@pytest.mark.parametrize("args, found", [
    (["--predictor", str(MBV3_PREDICTOR), "--lut", str(PROXYLESS_TABLE)], "found a ProxylessNAS lookup table"),
    (["--predictor", str(RESNET50_PREDICTOR), "--lut", str(NOTE10)], "OFA-ResNet50"),
])
def test_search_refuses_released_files_of_another_space(tmp_path, capsys, args, found):
    out = tmp_path / "search.json"
    assert main(["search", *args, "--target", "macs<=300M", "--quiet", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and found in lines[0] and "Traceback" not in captured.err
    assert not out.exists()


# ------------------------------------------------------------------------------------ net.config
def _assert_net_configs_equal_the_references(net, space, count):
    """For ``count`` random subnets and the smallest and largest: our config equals what ``net`` (the
    reference supernet) writes, and reading theirs gives the subnet back. Returns the last sample."""
    rows = space.random_indices(count, 0)
    rows = np.concatenate([rows, [space.to_indices(space.min_sample()), space.to_indices(space.max_sample())]])
    for row in rows:
        sample = space.from_indices(row)
        arch = arch_to_ofa(sample, space=space)
        net.set_active_subnet(ks=arch["ks"], e=arch["e"], d=arch["d"])
        theirs = json.loads(json.dumps(net.get_active_net_config()))
        assert json.loads(json.dumps(ofa_net_config(sample, space=space))) == theirs
        read = sample_from_ofa_net_config(theirs, resolution=arch["r"], space=space)
        np.testing.assert_array_equal(space.to_indices(read), canonical_indices(space, row[None])[0])
    return sample


def _reference_net(**kwargs):
    from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3

    return OFAMobileNetV3(**kwargs)


@pytest.mark.parametrize("ofa_kwargs, space_kwargs", [
    (dict(width_mult=1.0), dict()),
    (dict(width_mult=1.2), dict(width_mult=1.2)),
    (dict(n_classes=10, width_mult=0.5, ks_list=[3, 5], expand_ratio_list=[2, 3], depth_list=[1, 2]),
     dict(num_classes=10, width_mult=0.5, kernel_sizes=(3, 5), expand_ratios=(2, 3), depths=(1, 2),
          resolutions=(64, 96))),
])
def test_net_config_round_trips_with_the_reference(ofa_kwargs, space_kwargs, tmp_path):
    defaults = dict(ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4])
    space = ArchSpace(**space_kwargs)
    sample = _assert_net_configs_equal_the_references(_reference_net(**{**defaults, **ofa_kwargs}), space, 40)
    folder = tmp_path / "subnet"
    assert write_ofa_net_config(folder, sample, space=space) == [folder / "net.config", folder / "run.config"]
    assert json.loads((folder / "run.config").read_text()) == {"image_size": sample["resolution"]}
    assert read_ofa_net_config(folder, space=space) == read_ofa_net_config(folder / "net.config", space=space,
                                                                          resolution=sample["resolution"])


def test_published_net_config_spelling_is_read():
    """mit-han-lab's published configs call the block layer ``mobile_inverted_conv``/``MBInvertedConvLayer``."""
    space = ArchSpace(width_mult=1.2)
    sample = space.random_sample(3)
    config = ofa_net_config(sample, space=space)
    for block in config["blocks"]:
        block["mobile_inverted_conv"] = {**block.pop("conv"), "name": "MBInvertedConvLayer"}
    read = sample_from_ofa_net_config(config, resolution=sample["resolution"], space=space)
    canonical = canonical_indices(space, space.to_indices(sample)[None])[0]
    np.testing.assert_array_equal(space.to_indices(read), canonical)


def test_net_config_of_another_space_names_the_first_mismatch(tmp_path):
    from ofa.imagenet_classification.elastic_nn.networks import OFAProxylessNASNets

    wide = ArchSpace(width_mult=1.2)
    config = ofa_net_config(wide.max_sample(), space=wide)
    with pytest.raises(InvalidInputError) as error:
        sample_from_ofa_net_config(config, resolution=224, space=ArchSpace(), source="net.config")
    assert str(error.value) == ("net.config: not a subnet of this space (expected an OFA-MobileNetV3 config of width "
                                "1, 1000 classes): first_conv.out_channels is 24, this space has 16")
    shallow = _reference_net(ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6], depth_list=[1, 2, 3, 4])
    shallow.set_active_subnet(d=[2, 1, 4, 4, 4])
    with pytest.raises(InvalidInputError, match=r"stage 2 depth \(active blocks\) is 1, this space allows \[2, 3, 4\]"):
        sample_from_ofa_net_config(shallow.get_active_net_config(), resolution=224)
    proxyless = OFAProxylessNASNets(ks_list=[3], expand_ratio_list=[3], depth_list=[2])
    with pytest.raises(InvalidInputError, match="name is 'ProxylessNASNets', this space has 'MobileNetV3'"):
        sample_from_ofa_net_config(proxyless.get_active_net_config(), resolution=224)
    with pytest.raises(InvalidInputError, match=r"resolution is 202, this space allows \[128, 132"):
        sample_from_ofa_net_config(ofa_net_config(ArchSpace().min_sample()), resolution=202)
    (tmp_path / "net.config").write_text(json.dumps(config))
    with pytest.raises(InvalidInputError, match="does not record the input resolution"):
        read_ofa_net_config(tmp_path, space=wide)


def test_export_writes_ofa_net_configs(tmp_path):
    from search_spaces import OFAMobileNetV3Space

    torch.manual_seed(0)
    supernet = OFAMobileNetV3Space(**{**TINY_SPACE_KWARGS, "num_classes": 10})
    supernet.save(tmp_path / "supernet.pt")
    arch = "r40_k5e3|k3e2_k5e3-k5e2_k3e3-k5e3"
    out_dir = tmp_path / "exports"
    assert main(["export", "--supernet", str(tmp_path / "supernet.pt"), "--arch", arch, "--formats", "onnx",
                 "--calibration-images", "50", "--no-evaluate", "--no-latency", "--ofa-config", "--quiet",
                 "--out-dir", str(out_dir)]) == 0
    sample = supernet.arch_space.parse(arch)
    assert json.loads((out_dir / "subnet1" / "net.config").read_text()) == json.loads(
        json.dumps(ofa_net_config(sample, space=supernet)))
    assert read_ofa_net_config(out_dir / "subnet1", space=supernet) == sample
    assert json.loads((out_dir / "exports.json").read_text())["subnets"][0]["ofa_config"] == "subnet1/net.config"


# ------------------------------------------------------------------------ net.config, ProxylessNAS
def _reference_proxyless(**kwargs):
    from ofa.imagenet_classification.elastic_nn.networks import OFAProxylessNASNets

    return OFAProxylessNASNets(**kwargs)


@pytest.mark.parametrize("ofa_kwargs, space_kwargs", [
    (dict(width_mult=1.3), dict()),  # the released supernet
    (dict(width_mult=1.0), dict(width_mult=1.0)),
    (dict(n_classes=10, width_mult=0.5, ks_list=[3, 5], expand_ratio_list=[2, 3], depth_list=[1, 2]),
     dict(num_classes=10, width_mult=0.5, kernel_sizes=(3, 5), expand_ratios=(2, 3), depths=(1, 2),
          resolutions=(64, 96))),
])
def test_proxyless_net_config_round_trips_with_the_reference(ofa_kwargs, space_kwargs, tmp_path):
    """What ``OFAProxylessNASNets.get_active_net_config()`` writes is read into our sample, and we
    write the same config for it (equal as JSON)."""
    defaults = dict(ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4])
    space = proxyless_arch_space(**space_kwargs)
    sample = _assert_net_configs_equal_the_references(_reference_proxyless(**{**defaults, **ofa_kwargs}), space, 30)
    folder = tmp_path / "subnet"
    write_ofa_net_config(folder, sample, space=space)
    assert read_ofa_net_config(folder, space=space) == space.canonical_sample(sample)


def test_proxyless_net_config_of_another_space_or_layout_names_the_first_mismatch():
    released = proxyless_arch_space()
    mbv3 = _reference_net(ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4])
    with pytest.raises(InvalidInputError) as error:
        sample_from_ofa_net_config(mbv3.get_active_net_config(), resolution=224, space=released, source="net.config")
    assert str(error.value) == ("net.config: not a subnet of this space (expected an OFA-ProxylessNAS config of width "
                                "1.3, 1000 classes): name is 'MobileNetV3', this space has 'ProxylessNASNets'")
    narrow = _reference_proxyless(width_mult=1.0, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4])
    with pytest.raises(InvalidInputError, match="first_conv.out_channels is 32, this space has 40"):
        sample_from_ofa_net_config(narrow.get_active_net_config(), resolution=224, space=released)
    shallow = _reference_proxyless(width_mult=1.3, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6],
                                   depth_list=[1, 2, 3, 4])
    shallow.set_active_subnet(d=[2, 1, 4, 4, 4, 1])
    with pytest.raises(InvalidInputError, match=r"stage 2 depth \(active blocks\) is 1, this space allows \[2, 3, 4\]"):
        sample_from_ofa_net_config(shallow.get_active_net_config(), resolution=224, space=released)
    proxyless_config = ofa_net_config(released.max_sample(), space=released)
    with pytest.raises(InvalidInputError, match="name is 'ProxylessNASNets', this space has 'MobileNetV3'"):
        sample_from_ofa_net_config(proxyless_config, resolution=224, space=ArchSpace())
    no_head = {key: value for key, value in proxyless_config.items() if key != "feature_mix_layer"}
    with pytest.raises(InvalidInputError, match="the config has no 'feature_mix_layer'"):
        sample_from_ofa_net_config(no_head, resolution=224, space=released)


def test_export_writes_proxyless_net_configs(tmp_path):
    from search_spaces import OFAProxylessNASSpace

    torch.manual_seed(0)
    supernet = OFAProxylessNASSpace(**{**TINY_PROXYLESS_KWARGS, "num_classes": 10})
    supernet.save(tmp_path / "supernet.pt")
    sample = supernet.arch_space.canonical_sample(supernet.arch_space.random_sample(1))
    arch = supernet.arch_space.format(sample)
    out_dir = tmp_path / "exports"
    assert main(["export", "--supernet", str(tmp_path / "supernet.pt"), "--arch", arch, "--formats", "onnx",
                 "--calibration-images", "50", "--no-evaluate", "--no-latency", "--ofa-config", "--quiet",
                 "--out-dir", str(out_dir)]) == 0
    written = json.loads((out_dir / "subnet1" / "net.config").read_text())
    assert written["name"] == "ProxylessNASNets" and written["bn"]["eps"] == supernet.bn_settings[1]
    assert written == json.loads(json.dumps(ofa_net_config(sample, space=supernet)))
    assert read_ofa_net_config(out_dir / "subnet1", space=supernet) == sample
    # the reference builds a network of the frozen subnet's size from it
    from ofa.imagenet_classification.networks import ProxylessNASNets

    reference = ProxylessNASNets.build_from_config(written)
    subnet = supernet.freeze(sample)
    assert sum(p.numel() for p in reference.parameters()) == sum(p.numel() for p in subnet.parameters())


# ------------------------------------------------------------------------------- net.config, ResNet
RESNET_RELEASED_OFA = dict(depth_list=[0, 1, 2], expand_ratio_list=[0.2, 0.25, 0.35], width_mult_list=[0.65, 0.8, 1.0])
RESNET_SMALL_OFA = dict(n_classes=10, depth_list=[0, 1], expand_ratio_list=[0.2, 0.35], width_mult_list=[0.25, 0.5])
RESNET_SMALL_SPACE = dict(num_classes=10, depths=(0, 1), expand_ratios=(0.2, 0.35), width_mults=(0.25, 0.5),
                          resolutions=(32, 48))


def _reference_resnet(**kwargs):
    from ofa.imagenet_classification.elastic_nn.networks import OFAResNets

    return OFAResNets(**kwargs)


def _first_equal_widths(sample, arch: ResNetArchSpace) -> dict:
    """``sample`` with each width multiplier replaced by the smallest one of the same channel count
    (the released space's stem convs have 24 channels at 0.65 and at 0.8): a net.config holds channel
    counts, so that is the multiplier a reader can give back."""
    sample = dict(sample)
    widths_by_label = [(arch.STEM_MID_WIDTH_LABEL, arch.stem_mid_widths()), (arch.STEM_WIDTH_LABEL, arch.stem_widths())]
    widths_by_label += [(arch.width_label(s), arch.stage_widths(s)) for s in range(arch.num_stages)]
    for label, widths in widths_by_label:
        sample[label] = arch.width_mults[widths.index(widths[arch.width_mults.index(sample[label])])]
    return sample


def _reference_resnet_config(net, settings) -> dict:
    """``net.get_active_net_config()`` after ``set_active_subnet(**settings)``, as JSON: the reference
    puts the input stem's ``IdentityLayer`` itself, not its config, in the residual block (neither
    ``json.dump`` nor ``ResNets.build_from_config`` take it), so it is written as its ``.config``."""
    net.set_active_subnet(**{key: value for key, value in settings.items() if key != "r"})
    return json.loads(json.dumps(net.get_active_net_config(), default=lambda layer: layer.config))


@pytest.mark.parametrize("ofa_kwargs, space", [
    (dict(RESNET_RELEASED_OFA, dropout_rate=0.1), ResNetArchSpace()),  # the released supernet
    (dict(RESNET_SMALL_OFA, bn_param=(0.05, 1e-3), dropout_rate=0), "small"),
])
def test_resnet_net_config_round_trips_with_the_reference(ofa_kwargs, space, tmp_path):
    """For random, smallest and largest subnets, our config equals what ``OFAResNets`` writes after
    ``set_active_subnet(**our ofa settings)``, and reading theirs gives our sample back."""
    if space == "small":  # a built space: its dropout and BN settings are written
        from search_spaces import OFAResNetSpace

        space = OFAResNetSpace(**RESNET_SMALL_SPACE, dropout=0, bn_momentum=0.05, bn_eps=1e-3)
    net, arch = _reference_resnet(**ofa_kwargs), getattr(space, "arch_space", space)
    rows = np.concatenate([arch.random_indices(30, 0), [arch.to_indices(arch.min_sample()),
                                                        arch.to_indices(arch.max_sample())]])
    for row in rows:
        sample = arch.canonical_sample(arch.from_indices(row))
        theirs = _reference_resnet_config(net, resnet_ofa_settings(sample, arch))
        assert json.loads(json.dumps(ofa_net_config(sample, space=space))) == theirs
        read = sample_from_ofa_net_config(theirs, resolution=sample["resolution"], space=space)
        assert read == _first_equal_widths(sample, arch)
    # the reference's dict itself (its stem shortcut an IdentityLayer module) reads alike
    raw = net.get_active_net_config()
    assert sample_from_ofa_net_config(raw, resolution=sample["resolution"], space=space) == read
    folder = tmp_path / "subnet"
    assert write_ofa_net_config(folder, sample, space=space) == [folder / "net.config", folder / "run.config"]
    assert json.loads((folder / "run.config").read_text()) == {"image_size": sample["resolution"]}
    assert read_ofa_net_config(folder, space=space) == _first_equal_widths(sample, arch)


def test_resnet_static_config_spelling_is_read():
    """A static network's ``.config`` (what ``ofa.model_zoo.ofa_specialized`` builds from: every layer
    field written, the stem's shortcut as a config) is read too: ``ResNet50D`` is the released space's
    subnet of widths 1.0, depths 3, 4, 6, 3 and ratio 0.25; our config of it builds the same network."""
    from ofa.imagenet_classification.networks import ResNet50D, ResNets

    space = ResNetArchSpace()
    static = json.loads(json.dumps(ResNet50D().config))
    sample = sample_from_ofa_net_config(static, resolution=224, space=space)
    expected = {label: 1.0 for label in (space.STEM_MID_WIDTH_LABEL, space.STEM_WIDTH_LABEL)}
    expected.update({space.width_label(s): 1.0 for s in range(space.num_stages)})
    expected.update({space.depth_label(s): depth for s, depth in enumerate((3, 4, 6, 3))})
    expected.update({space.expand_label(s, b): 0.25 for s, b in space.blocks}, resolution=224)
    expected[space.STEM_DEPTH_LABEL] = 3
    assert sample == space.canonical_sample(expected)
    ours = ResNets.build_from_config(ofa_net_config(sample, space=space))
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in ResNet50D().state_dict().items()}


def test_resnet_and_mobilenet_configs_are_refused_by_each_others_spaces(tmp_path):
    """A config of the other layout is refused naming the file, the layout expected and found."""
    resnet, mbv3 = ResNetArchSpace(), ArchSpace()
    resnet_config = ofa_net_config(resnet.max_sample(), space=resnet)
    (tmp_path / "net.config").write_text(json.dumps(resnet_config))
    (tmp_path / "run.config").write_text(json.dumps({"image_size": 224}))
    with pytest.raises(InvalidInputError) as error:
        read_ofa_net_config(tmp_path, space=mbv3)
    assert str(error.value) == (f"{tmp_path / 'net.config'}: not a subnet of this space (expected an OFA-MobileNetV3 "
                                "config of width 1, 1000 classes): name is 'ResNets', this space has 'MobileNetV3'")
    with pytest.raises(InvalidInputError, match="name is 'ResNets', this space has 'ProxylessNASNets'"):
        sample_from_ofa_net_config(resnet_config, resolution=224, space=proxyless_arch_space())
    mbv3_net = _reference_net(ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4])
    with pytest.raises(InvalidInputError) as error:
        sample_from_ofa_net_config(mbv3_net.get_active_net_config(), resolution=224, space=resnet,
                                   source="net.config")
    assert str(error.value) == ("net.config: not a subnet of this space (expected an OFA-ResNet50 config of width "
                                "0.65/0.8/1, 1000 classes): name is 'MobileNetV3', this space has 'ResNets'")


@pytest.mark.parametrize("ofa_kwargs, settings, change, message", [
    (dict(width_mult_list=[0.5]), dict(), None,
     r"input_stem\[0\].out_channels \(stem mid width\) is 16, this space allows \[24, 32\]"),
    (dict(width_mult_list=[0.65, 1.2]), dict(w=[0, 1, 0, 0, 0, 0]), None,
     r"input_stem\[2\].out_channels \(stem width\) is 80, this space allows \[40, 48, 64\]"),
    (dict(expand_ratio_list=[0.5]), dict(), None,
     r"blocks\[0\] \(stage 1 block 1\) mid_channels is 128, this space allows \[48, 64, 88\] \(expand ratios "
     r"0.2, 0.25, 0.35 of 256 channels\)"),
    (dict(depth_list=[0, 1, 2, 3]), dict(d=[2, 0, 3, 0, 0]), None,
     r"stage 2 depth \(active blocks\) is 5, this space allows \[2, 3, 4\]"),
    (dict(), dict(), lambda c: c["blocks"][1].update(mid_channels=72),
     r"blocks\[1\] \(stage 1 block 2\) mid_channels is 72, this space allows \[48, 64, 88\] \(expand ratios 0.2, "
     r"0.25, 0.35 of 256 channels\)"),
    (dict(), dict(), lambda c: c["blocks"][4].update(downsample_mode="conv"),
     r"blocks\[4\] \(stage 2 block 1\) downsample_mode is 'conv', this space has 'avgpool_conv'"),
    (dict(), dict(), lambda c: c["blocks"][2].update(kernel_size=5),
     r"blocks\[2\] \(stage 1 block 3\) kernel_size is 5, this space has 3"),
    (dict(n_classes=10), dict(), None, r"classifier.out_features \(classes\) is 10, this space has 1000"),
    (dict(), dict(), lambda c: c["input_stem"][1].update(shortcut=None),
     r"input_stem\[1\] \(the residual conv\) has shortcut None, this space has an 'IdentityLayer'"),
])
def test_resnet_net_config_mismatch_names_the_first(ofa_kwargs, settings, change, message):
    net = _reference_resnet(**{**RESNET_RELEASED_OFA, **ofa_kwargs})
    net.set_max_net()
    config = _reference_resnet_config(net, settings)
    if change is not None:
        change(config)
    with pytest.raises(InvalidInputError, match=r"^net.config: not a subnet of this space \(expected an OFA-ResNet50 "
                                               r"config of width 0.65/0.8/1, 1000 classes\): " + message + "$"):
        sample_from_ofa_net_config(config, resolution=224, space=ResNetArchSpace(), source="net.config")


def test_resnet_stem_depth_and_resolution_are_checked():
    fixed_depth = ResNetArchSpace(depths=(1,))  # one depth choice: the stem's residual conv always runs
    net = _reference_resnet(**RESNET_RELEASED_OFA)
    config = _reference_resnet_config(net, dict(d=[0, 1, 1, 1, 1], e=0.25, w=2))
    with pytest.raises(InvalidInputError, match=r"input_stem depth is 2 \(its residual conv skipped\), this space "
                                                r"allows \[3\]"):
        sample_from_ofa_net_config(config, resolution=224, space=fixed_depth)
    with pytest.raises(InvalidInputError, match=r"resolution is 202, this space allows \[128, 132"):
        sample_from_ofa_net_config(config, resolution=202, space=ResNetArchSpace())
    from ofa.imagenet_classification.networks import ResNet50  # (not -D: one 7x7 conv as its stem)

    with pytest.raises(InvalidInputError, match=r"input_stem is 1 layer, this space has 2 or 3 \(conv 3x3/2"):
        sample_from_ofa_net_config(json.loads(json.dumps(ResNet50().config)), resolution=224, space=ResNetArchSpace())


def test_resnet_subnet_that_ofa_would_build_otherwise_is_not_written():
    """A stage whose first block keeps stride 1 and its width, in a space where that block has a shortcut
    conv (its widths differ from the previous stage's at other multipliers): OFA's
    ``ResNetBottleneckBlock`` would build an identity shortcut, another network; refused."""
    space = ResNetArchSpace(depths=(0,), expand_ratios=(0.25,), width_mults=(0.5, 1.0), base_depths=(1, 1),
                            base_widths=(32, 64, 128), stage_strides=(1, 2), resolutions=(32,), num_classes=10)
    sample = space.canonical_sample({**space.max_sample(), space.width_label(0): 0.5})
    with pytest.raises(InvalidInputError, match=r"stage 1 block 1 keeps stride 1 and 32 channels: OFA's "
                                                r"ResNetBottleneckBlock would have an identity shortcut there, this "
                                                r"space's block has a shortcut conv"):
        ofa_net_config(sample, space=space)
    assert ofa_net_config(space.max_sample(), space=space)["name"] == "ResNets"


def test_export_writes_resnet_net_configs_the_reference_builds(tmp_path):
    """``ofa-nni export --ofa-config`` on a ResNet supernet holding a reference ``OFAResNets``'
    (random) weights: the reference builds a network from our net.config that loads its own subnet's
    weights (same names and shapes) and computes what our frozen subnet computes."""
    from ofa.imagenet_classification.elastic_nn.networks import OFAResNets
    from ofa.imagenet_classification.networks import ResNets
    from test_ofa_reference import _randomized_ofa_net

    from search_spaces import OFAResNetSpace

    reference = _randomized_ofa_net(3, OFAResNets, **RESNET_SMALL_OFA).eval()
    supernet = OFAResNetSpace.from_ofa_state_dict(reference.state_dict(), **RESNET_SMALL_SPACE, dropout=0).eval()
    supernet.save(tmp_path / "supernet.pt")
    arch = supernet.arch_space
    samples = [arch.min_sample(), arch.max_sample(), arch.canonical_sample(arch.random_sample(1))]
    out_dir = tmp_path / "exports"
    command = ["export", "--supernet", str(tmp_path / "supernet.pt"), "--formats", "torchscript",
               "--calibration-images", "20", "--no-evaluate", "--no-latency", "--ofa-config", "--quiet",
               "--out-dir", str(out_dir)]
    for sample in samples:
        command += ["--arch", arch.format(sample)]
    assert main(command) == 0
    x = torch.randn(2, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    for index, sample in enumerate(samples):
        folder = out_dir / f"subnet{index + 1}"
        written = json.loads((folder / "net.config").read_text())
        assert written == _reference_resnet_config(reference, supernet.ofa_settings(sample))
        assert read_ofa_net_config(folder, space=supernet) == sample
        built = ResNets.build_from_config(written).eval()
        built.load_state_dict(reference.get_active_subnet().state_dict())  # strict: same names and shapes
        resolution = json.loads((folder / "run.config").read_text())["image_size"]
        inputs = torch.nn.functional.interpolate(x, size=resolution, mode="bilinear", align_corners=False)
        with torch.no_grad():
            theirs, ours = built(inputs), supernet.freeze(sample).eval()(inputs)
        assert float((ours - theirs).abs().max() / theirs.abs().max()) <= 1e-4
    assert json.loads((out_dir / "exports.json").read_text())["subnets"][0]["ofa_config"] == "subnet1/net.config"


def test_export_refuses_an_unwritable_resnet_config_before_any_work(tmp_path, capsys):
    """Refused before the data are read (7 classes: digits' 10 would be refused there) and nothing written."""
    from search_spaces import OFAResNetSpace

    supernet = OFAResNetSpace(depths=(0,), expand_ratios=(0.25,), width_mults=(0.5, 1.0), base_depths=(1, 1),
                              base_widths=(32, 64, 128), stage_strides=(1, 2), resolutions=(32,), num_classes=7)
    supernet.save(tmp_path / "supernet.pt")
    arch = supernet.arch_space.format({**supernet.arch_space.max_sample(), supernet.arch_space.width_label(0): 0.5})
    out_dir = tmp_path / "exports"
    assert main(["export", "--supernet", str(tmp_path / "supernet.pt"), "--arch", arch, "--formats", "onnx",
                 "--no-evaluate", "--no-latency", "--ofa-config", "--quiet", "--out-dir", str(out_dir)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "identity shortcut" in lines[0] and arch in lines[0]
    assert not out_dir.exists()
