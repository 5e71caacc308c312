"""Every search space through the product, as a user drives it from the CLI on digits: training
(progressive shrinking, ``space.name`` in the configuration), the accuracy predictor, the latency
table, the search, export, NNI's search space JSON and the Optuna sampler. One small variant per
space (``ofa-mbv3``, ``ofa-proxyless``, ``ofa-resnet50``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from ofa_nni.app.cli import main
from ofa_nni.efficiency import MacsModel
from ofa_nni.latency import LatencyTable
from ofa_nni.nni_search_space import arch_space_from_spec, check_nni_search_space
from ofa_nni.search import minimum_costs
from search_spaces import OFAMobileNetV3Space, OFAProxylessNASSpace, OFAResNetSpace, load_supernet

SPACES = {
    # The CPU presets, cut down further: 2 choices per dimension, resolutions 16 and 20.
    "ofa-mbv3": (OFAMobileNetV3Space, "r20_k5e3-k5e3_k5e3-k5e3_k5e3-k5e3"),
    "ofa-proxyless": (OFAProxylessNASSpace, "r20_k5e3-k5e3_k5e3-k5e3_k5e3-k5e3_k5e3"),
    "ofa-resnet50": (OFAResNetSpace, "r20_d3w1w0.65_w1:e0.35-e0.25_w0.65:e0.35|e0.25"),
}
TINY_CHOICES = {"kernel_sizes": [3, 5], "expand_ratios": [2, 3], "depths": [1, 2], "resolutions": [16, 20]}
RESNET_CHOICES = {"depths": [0, 1], "expand_ratios": [0.25, 0.35], "width_mults": [0.65, 1.0], "resolutions": [16, 20]}
CHOICES = {"ofa-mbv3": TINY_CHOICES, "ofa-proxyless": TINY_CHOICES, "ofa-resnet50": RESNET_CHOICES}
PHASES = {
    "ofa-mbv3": ["full", "kernel", "depth1", "depth2", "expand1", "expand2"],
    "ofa-proxyless": ["full", "kernel", "depth1", "depth2", "expand1", "expand2"],
    # the reference's order for OFAResNets: depth, then expand, then width
    "ofa-resnet50": ["full", "depth1", "depth2", "expand1", "expand2", "width1", "width2"],
}
FAST_LUT = ["--warmup", "1", "--repeats", "2", "--rounds", "1", "--threads", "1", "--statistic", "min",
            "--validate", "0", "--quiet"]


@pytest.fixture(scope="module", params=sorted(SPACES))
def trained(request, tmp_path_factory):
    """A supernet trained by ``ofa-nni train`` (one short epoch per progressive-shrinking phase), its
    predictor and its latency table."""
    name = request.param
    root = tmp_path_factory.mktemp(name)
    config = {
        "seed": 0,
        "space": {"name": name, "preset": "cpu", **CHOICES[name]},
        "data": {"kind": "digits", "batch_size": 32, "calibration_images": 64},
        "strategy": {"name": "progressive_shrinking", "epochs_factor": 0.001},
        "validation": {"random_subnets": 1, "calibration_batches": 1},
        "trainer": {"progress_bar": False, "limit_train_batches": 2, "limit_val_batches": 1},
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", "--config", str(root / "config.yaml"), "--run-dir", str(root / "run")]) == 0
    supernet = root / "run" / "supernet.pt"
    assert main(["predictor", "build", "--supernet", str(supernet), "--num-subnets", "10", "--calibration-images",
                 "100", "--kind", "ridge", "--quiet", "--out", str(root / "predictor.npz")]) == 0
    assert main(["lut", "build", "--supernet", str(supernet), *FAST_LUT, "--out", str(root / "lut.json")]) == 0
    return name, root, supernet


def test_training_writes_a_supernet_of_the_configured_space(trained):
    name, root, supernet_path = trained
    cls, _ = SPACES[name]
    supernet = load_supernet(supernet_path)
    assert type(supernet) is cls and supernet.space_name == name
    assert supernet.arch_space.expand_ratios == tuple(CHOICES[name]["expand_ratios"])
    assert supernet.arch_space.resolutions == (16, 20)
    checkpoint = load_supernet(root / "run" / "checkpoints" / "last.pt")
    assert type(checkpoint) is cls and checkpoint.arch_space == supernet.arch_space
    metrics = json.loads((root / "run" / "metrics.json").read_text())
    assert [p["name"] for p in metrics["phases"]] == PHASES[name]


def test_latency_table_covers_the_space(trained):
    name, root, supernet_path = trained
    supernet = load_supernet(supernet_path)
    table = LatencyTable.load(root / "lut.json", arch_space=supernet.arch_space)
    rng = np.random.default_rng(0)
    indices = supernet.arch_space.random_indices(50, rng)
    latencies = table(indices)
    assert latencies.shape == (50,) and (latencies > 0).all()
    # Bigger subnets predict slower, as measured op by op.
    assert table(supernet.max_sample()) > table(supernet.min_sample())


def test_search_and_export_through_the_cli(trained, tmp_path):
    name, root, supernet_path = trained
    _, extra_arch = SPACES[name]
    table = LatencyTable.load(root / "lut.json")
    arch = table.arch_space
    costs = {"latency_ms": table, "macs": MacsModel(arch)}
    smallest = minimum_costs(arch, costs)
    budget = {key: smallest[key][0] + (fn(arch.max_sample()) - smallest[key][0]) / 2 for key, fn in costs.items()}
    out = tmp_path / "search.json"
    assert main(["search", "--predictor", str(root / "predictor.npz"), "--lut", str(root / "lut.json"),
                 "--target", f"latency_ms<={budget['latency_ms']:.4f}", "--target", f"macs<={budget['macs']:.0f}",
                 "--population", "16", "--generations", "6", "--quiet", "--out", str(out)]) == 0
    search = json.loads(out.read_text())
    assert search["space"] == arch.signature() == load_supernet(supernet_path).arch_space.signature()
    assert all(arch.parse(target["arch"]) for target in search["targets"])
    assert table(arch.parse(search["targets"][0]["arch"])) <= budget["latency_ms"]

    exports = tmp_path / "exports"
    assert main(["export", "--supernet", str(supernet_path), "--search", str(out), "--arch", extra_arch,
                 "--out-dir", str(exports), "--calibration-images", "100", "--no-latency", "--ofa-config",
                 "--quiet"]) == 0
    document = json.loads((exports / "exports.json").read_text())
    assert [entry["arch"] for entry in document["subnets"]][-1] == extra_arch
    for entry in document["subnets"]:
        assert all(f["max_abs_diff"] <= 1e-4 for f in entry["files"].values())
        assert 0.0 <= entry["accuracy"] <= 1.0
        _assert_reference_builds_the_export(exports, entry, load_supernet(supernet_path))

    # The report of the search with its exports (crashed for OFA-ResNet50: the search's space was
    # rebuilt as an OFA-MobileNetV3-style space).
    assert main(["report", str(out), str(exports / "exports.json"), "--out", str(tmp_path / "report.md")]) == 0
    report = (tmp_path / "report.md").read_text()
    assert all(target["arch"].replace("|", "\\|") in report for target in search["targets"])  # markdown-escaped

    # A re-export into the same folder replaces the earlier one: without --ofa-config and without the
    # extra subnet, no net.config is left to describe another subnet than its NAME.pt, and the extra
    # subnet's files go (files the earlier exports.json did not list stay).
    earlier = {entry["name"]: entry for entry in document["subnets"]}
    (exports / "notes.txt").write_text("mine")
    assert main(["export", "--supernet", str(supernet_path), "--search", str(out), "--out-dir", str(exports),
                 "--calibration-images", "100", "--no-latency", "--no-evaluate", "--quiet"]) == 0
    document = json.loads((exports / "exports.json").read_text())
    assert "ofa_config" not in document["subnets"][0]
    assert not any((exports / name).exists() for name in earlier)  # the NAME/ folders of net.config
    (extra,) = set(earlier) - {entry["name"] for entry in document["subnets"]}
    assert not any((exports / f["path"]).exists() for f in earlier[extra]["files"].values())
    assert all((exports / f["path"]).is_file() for entry in document["subnets"] for f in entry["files"].values())
    assert (exports / "notes.txt").read_text() == "mine"


def _assert_reference_builds_the_export(exports, entry, supernet):
    """The reference (PyPI ``ofa``) builds a network from the exported subnet's net.config that takes
    its weights (same tensors in the same order and shapes) and computes what it computes; reading the
    net.config gives the subnet back."""
    from ofa.imagenet_classification.networks import get_net_by_name

    from ofa_nni.ofa_released import ofa_net_config, read_ofa_net_config

    config = json.loads((exports / entry["ofa_config"]).read_text())
    read = read_ofa_net_config(exports / entry["name"], space=supernet)
    assert ofa_net_config(read, space=supernet) == ofa_net_config(entry["sample"], space=supernet) == config
    subnet = torch.jit.load(str(exports / entry["files"]["torchscript"]["path"])).eval()
    reference = get_net_by_name(config["name"]).build_from_config(config).eval()
    ours, theirs = list(subnet.state_dict().values()), list(reference.state_dict())
    assert [tuple(t.shape) for t in ours] == [tuple(t.shape) for t in reference.state_dict().values()]
    reference.load_state_dict(dict(zip(theirs, ours, strict=True)))
    resolution = read["resolution"]
    x = torch.randn(4, 3, resolution, resolution, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = reference(x)
        assert float((subnet(x) - expected).abs().max() / expected.abs().max()) <= 1e-4


@pytest.mark.parametrize("name", sorted(SPACES))
def test_onnxruntime_latency_table_of_each_space(name, tmp_path):
    """``lut build --space NAME --preset cpu --backend onnxruntime``: every op of the space measured."""
    pytest.importorskip("onnxruntime")
    out = tmp_path / "lut.json"
    assert main(["lut", "build", "--space", name, "--preset", "cpu", "--num-classes", "10", "--backend",
                 "onnxruntime", "--resolutions", "28", *FAST_LUT, "--out", str(out)]) == 0
    table = LatencyTable.load(out)
    assert table.arch_space == arch_space_from_spec({"name": name, "preset": "cpu", "num_classes": 10})
    assert table.measured_resolutions == (28,)
    assert (table(table.arch_space.random_indices(20, 0)) > 0).all()


@pytest.mark.parametrize("name", sorted(SPACES))
def test_sandwich_rule_trains_each_space(name, tmp_path):
    from ofa_nni.app.runner import train

    config = {
        "seed": 0, "space": {"name": name, "preset": "cpu", **CHOICES[name]},
        "data": {"kind": "digits", "batch_size": 32, "calibration_images": 64},
        "strategy": {"name": "sandwich", "epochs": 1, "num_random": 1},
        "validation": {"random_subnets": 1, "calibration_batches": 1},
        "trainer": {"progress_bar": False, "limit_train_batches": 2, "limit_val_batches": 1},
    }
    result = train(config, run_dir=tmp_path / "run")
    assert [p["name"] for p in result.phases] == ["sandwich"]
    assert type(load_supernet(result.supernet_path)) is SPACES[name][0]


@pytest.mark.parametrize("name", sorted(SPACES))
def test_nni_search_space_of_each_space(name, tmp_path, capsys):
    out = tmp_path / "search_space.json"
    assert main(["nni", "search-space", "--space", name, "--preset", "cpu", "--depths", "1", "2",
                 "--out", str(out)]) == 0
    arch = arch_space_from_spec({"name": name, "preset": "cpu", "depths": [1, 2]})
    search_space = json.loads(out.read_text())
    check_nni_search_space(arch, search_space)
    assert list(search_space) == list(arch.labels)
    if name == "ofa-proxyless":
        assert search_space["stage4.depth"] == {"_type": "choice", "_value": [1]}
        assert search_space["stage3.depth"]["_value"] == [1, 2]


def test_space_name_and_arguments_are_checked():
    with pytest.raises(ValueError, match=r"space\.name: 'ofa-resnet' is not a search space; allowed: \['ofa-mbv3', "
                                         r"'ofa-proxyless', 'ofa-resnet50'\]"):
        main_config({"name": "ofa-resnet"})
    with pytest.raises(ValueError, match="space 'ofa-proxyless' has no argument 'stage_se'"):
        main_config({"name": "ofa-proxyless", "stage_se": [False, False, False, False]})
    with pytest.raises(ValueError, match=r"'ofa-mobilenetv3' is not a preset; allowed: \['ofa-proxylessnas', 'cpu'\] "
                                         r"\(the presets of ofa-proxyless\)"):
        main_config({"name": "ofa-proxyless", "preset": "ofa-mobilenetv3"})
    with pytest.raises(ValueError, match=r"unknown key 'stage_activations'; allowed: \['name', 'preset', 'kernel"):
        arch_space_from_spec({"name": "ofa-proxyless", "stage_activations": ["relu"] * 4})


def main_config(space: dict) -> None:
    from ofa_nni.training import load_config

    load_config({"space": space})


def test_optuna_sampler_on_the_proxyless_space():
    optuna = pytest.importorskip("optuna")
    from strategies.optuna_sampler import OFAEvolutionSampler, suggest_sample, trial_sample

    space = OFAProxylessNASSpace(**{**TINY_CHOICES, "base_widths": (8, 8, 16, 24, 32, 48, 64),
                                    "stage_strides": (2, 2, 2, 1), "width_mult": 1.0, "num_classes": 4})
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=OFAEvolutionSampler(arch_space=space, seed=0), direction="minimize")
    study.optimize(lambda trial: float(space.macs(suggest_sample(trial, space))), n_trials=30)
    samples = [trial_sample(trial, space) for trial in study.trials]
    assert all(sample["stage4.depth"] == 1 for sample in samples)
    assert len({space.arch_space.format(sample) for sample in samples}) == 30  # no subnet tried twice
    # The evolution finds small subnets: the best is below the median of the first (random) ones.
    assert study.best_value < np.median([trial.value for trial in study.trials[:8]])
    frozen = space.freeze(trial_sample(study.best_trial, space)).eval()
    assert torch.isfinite(frozen(torch.randn(1, 3, 20, 20))).all()


def test_optuna_sampler_on_the_resnet_space():
    optuna = pytest.importorskip("optuna")
    from strategies.optuna_sampler import OFAEvolutionSampler, suggest_sample, trial_sample

    space = OFAResNetSpace(**{**RESNET_CHOICES, "base_depths": (1, 1), "base_widths": (16, 32, 64),
                              "stage_strides": (1, 2), "num_classes": 4})
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=OFAEvolutionSampler(arch_space=space, seed=0), direction="minimize")
    study.optimize(lambda trial: float(space.macs(suggest_sample(trial, space))), n_trials=30)
    samples = [trial_sample(trial, space) for trial in study.trials]
    assert len({space.arch_space.format(space.arch_space.canonical_sample(s)) for s in samples}) == 30
    assert study.best_value < np.median([trial.value for trial in study.trials[:8]])
    frozen = space.freeze(trial_sample(study.best_trial, space)).eval()
    assert torch.isfinite(frozen(torch.randn(1, 3, 20, 20))).all()


def test_nni_tuner_on_the_proxyless_space():
    """OFAEvolutionTuner with ``classArgs.space`` naming the space, driven as NNI's dispatcher drives it."""
    from test_nni_tuner import drive, macs_objective

    from ofa_nni.nni_search_space import nni_search_space
    from strategies.nni_tuner import OFAEvolutionTuner

    tuner = OFAEvolutionTuner(space={"name": "ofa-proxyless", "preset": "cpu", **TINY_CHOICES, "num_classes": 10},
                              population_size=6, seed=0)
    assert tuner.arch_space.layout == "proxyless" and tuner.arch_space.choices("stage4.depth") == (1,)
    tuner.update_search_space(nni_search_space(tuner.arch_space))
    proposed = drive(tuner, macs_objective(tuner.arch_space), trials=30, concurrency=3)
    assert len(proposed) == 30
    canonical = {tuner.canonical_arch(tuner.arch_space.parse(arch)) for arch in proposed}
    assert len(canonical) == 30  # no subnet proposed twice
    assert all(arch.endswith(("_k3e2", "_k3e3", "_k5e2", "_k5e3")) for arch in proposed)


def test_nni_tuner_on_the_resnet_space():
    """OFAEvolutionTuner with ``classArgs.space`` naming the ResNet space, driven as NNI's dispatcher drives it."""
    from test_nni_tuner import drive, macs_objective

    from ofa_nni.nni_search_space import nni_search_space
    from strategies.nni_tuner import OFAEvolutionTuner

    tuner = OFAEvolutionTuner(space={"name": "ofa-resnet50", "preset": "cpu", **RESNET_CHOICES, "num_classes": 10},
                              population_size=6, seed=0)
    assert tuner.arch_space.choices("stage1.width") == (0.65, 1)
    tuner.update_search_space(nni_search_space(tuner.arch_space))
    proposed = drive(tuner, macs_objective(tuner.arch_space), trials=30, concurrency=3)
    assert len(proposed) == 30
    canonical = {tuner.canonical_arch(tuner.arch_space.parse(arch)) for arch in proposed}
    assert len(canonical) == 30  # no subnet proposed twice
