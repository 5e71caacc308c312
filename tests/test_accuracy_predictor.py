"""Accuracy data sets (collection, resume after a kill, extension) and predictors (OFA's MLP and
the alternatives): learning, determinism, batched prediction, safe files, refusals, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_SPACE_KWARGS

from ofa_nni.accuracy import (
    AccuracyDataset,
    AccuracyPredictor,
    MLPAccuracyPredictor,
    accuracy_to_logit,
    build_accuracy_predictor,
    collect_accuracy_dataset,
    evaluate_subnet,
    plan_subnets,
)
from ofa_nni.app.cli import main
from ofa_nni.arch import ArchSpace
from ofa_nni.runtime import recalibrate_batchnorm

FAST_STEPS = 200


# ------------------------------------------------------------------------------ plan
def test_plan_is_deterministic_stratified_and_extensible():
    space = ArchSpace()
    plan = plan_subnets(space, 102, seed=3)
    assert plan.shape == (102, len(space.labels)) and plan.dtype == np.int64
    assert (plan[0] == space.to_indices(space.min_sample())).all()
    assert (plan[1] == space.to_indices(space.max_sample())).all()
    counts = np.bincount(plan[2:, -1], minlength=len(space.resolutions))
    assert (counts == 4).all()  # 100 = 4 x 25 resolutions, each exactly 4 times
    np.testing.assert_array_equal(plan_subnets(space, 102, seed=3), plan)
    np.testing.assert_array_equal(plan_subnets(space, 300, seed=3)[:102], plan)
    assert not np.array_equal(plan_subnets(space, 102, seed=4), plan)
    features = space.to_features(plan)
    assert len({row.tobytes() for row in features}) == 102  # no subnet twice


def test_plan_refuses_more_subnets_than_the_space_has():
    space = ArchSpace(kernel_sizes=(3,), expand_ratios=(3,), depths=(2,), resolutions=(128, 132))
    assert len(plan_subnets(space, 2)) == 2
    with pytest.raises(ValueError, match="fewer than 3 distinct subnets"):
        plan_subnets(space, 3)


# ------------------------------------------------------------------------------ predictors
def _additive_dataset(space: ArchSpace, n: int, noise: float, seed: int = 0) -> AccuracyDataset:
    """Accuracies from a hidden additive model of the features plus noise (a known ground truth)."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(0, 0.004, space.feature_dim)
    indices = plan_subnets(space, n, seed)
    accuracies = 0.7 + space.to_features(indices) @ weights + rng.normal(0, noise, n)
    return AccuracyDataset(arch_space=space, indices=indices, accuracies=accuracies)


@pytest.mark.parametrize("kind", ["mlp", "ridge"])
def test_predictors_learn_a_known_relation(kind):
    space = ArchSpace(num_classes=10)
    dataset = _additive_dataset(space, 400, noise=0.001)
    predictor = build_accuracy_predictor(dataset, kind=kind, steps=FAST_STEPS * 3)
    metrics = predictor.metrics
    assert metrics["num_subnets"] == 80 and predictor.info["num_train"] == 320
    assert metrics["kendall"] > 0.7 and metrics["spearman"] > 0.85, metrics
    spread = float(np.std(dataset.accuracies)) * 100
    assert metrics["rmse_percent"] < 0.5 * spread, (metrics, spread)


def test_mlp_is_ofas_architecture_and_deterministic():
    space = ArchSpace(num_classes=10)
    dataset = _additive_dataset(space, 60, noise=0.01)
    a = build_accuracy_predictor(dataset, kind="mlp", steps=FAST_STEPS, seed=5)
    b = build_accuracy_predictor(dataset, kind="mlp", steps=FAST_STEPS, seed=5)
    assert isinstance(a, MLPAccuracyPredictor)
    assert [w.shape for w in a.weights] == [(space.feature_dim, 400), (400, 400), (400, 400), (400, 1)]
    assert len(a.biases) == 3  # the output layer has none: the constant base (mean logit) replaces it
    train_rows = np.setdiff1d(np.arange(60), np.random.default_rng(5).permutation(60)[:12])
    assert a.base_logit == pytest.approx(accuracy_to_logit(dataset.accuracies[train_rows]).mean())
    np.testing.assert_array_equal(a(dataset.indices), b(dataset.indices))
    c = build_accuracy_predictor(dataset, kind="mlp", steps=FAST_STEPS, seed=6)
    assert not np.array_equal(a(dataset.indices), c(dataset.indices))


@pytest.mark.parametrize("bias_type", [np.float32, np.float64])
def test_mlp_prediction_is_the_plain_forward_pass(bias_type):
    """predict_logits adds bias and ReLU in place (speed): the same numbers as the plain formula,
    bit for bit, and float64 biases (an older file) still make the sum float64 as they did."""
    space = ArchSpace(**TINY_SPACE_KWARGS)
    rng = np.random.default_rng(3)
    predictor = MLPAccuracyPredictor(arch_space=space, hidden_size=16, num_layers=2)
    sizes = [space.feature_dim, 16, 16, 1]
    shapes = list(zip(sizes[:-1], sizes[1:], strict=True))
    predictor.load_arrays({
        **{f"weight{i}": rng.normal(size=shape).astype(np.float32) for i, shape in enumerate(shapes)},
        **{f"bias{i}": rng.normal(size=16).astype(bias_type) for i in range(2)},
        "base_logit": np.array(0.25),
    })
    features = space.to_features(space.random_indices(50, rng))
    h = features
    for weight, bias in zip(predictor.weights[:-1], predictor.biases, strict=True):
        h = np.maximum(h @ weight + bias, 0.0)
    expected = (h @ predictor.weights[-1])[:, 0].astype(np.float64) + 0.25
    assert h.dtype == bias_type
    np.testing.assert_array_equal(predictor.predict_logits(features), expected)


@pytest.mark.parametrize("kind", ["mlp", "mlp-ensemble", "ridge"])
def test_save_load_round_trip_without_pickle(tmp_path, kind):
    space = ArchSpace(**TINY_SPACE_KWARGS)
    dataset = _additive_dataset(space, 40, noise=0.01)
    predictor = build_accuracy_predictor(dataset, kind=kind, steps=50)
    path = tmp_path / "predictor.npz"
    predictor.save(path)
    with np.load(path, allow_pickle=False) as archive:  # loads without pickle
        metadata = json.loads(str(archive["metadata"]))
    assert metadata["format_version"] == 2 and metadata["kind"] == kind
    assert metadata["encoding"] == {"name": "ofa-onehot", "feature_dim": space.feature_dim}
    assert metadata["space"] == space.signature() and metadata["metrics"] == predictor.metrics
    loaded = AccuracyPredictor.load(path, arch_space=space)
    assert type(loaded) is type(predictor) and loaded.metrics == predictor.metrics
    population = space.random_indices(50, 1)
    np.testing.assert_allclose(loaded(population), predictor(population), rtol=1e-6)


def test_load_refuses_another_space_and_other_files(tmp_path):
    space = ArchSpace(**TINY_SPACE_KWARGS)
    predictor = build_accuracy_predictor(_additive_dataset(space, 30, noise=0.01), kind="ridge")
    path = tmp_path / "p.npz"
    predictor.save(path)
    other = ArchSpace(**{**TINY_SPACE_KWARGS, "resolutions": (32, 36, 40)})
    with pytest.raises(ValueError, match=r"another search space \(resolutions: file has \[32, 40\], space has "
                                         r"\[32, 36, 40\]\)"):
        AccuracyPredictor.load(path, arch_space=other)
    np.save(tmp_path / "plain.npy", np.zeros(3))
    (tmp_path / "plain.npz").write_bytes((tmp_path / "plain.npy").read_bytes())
    with pytest.raises(ValueError, match="not an ofa-nni accuracy predictor"):
        AccuracyPredictor.load(tmp_path / "plain.npz")
    with pytest.raises(FileNotFoundError, match="predictor build"):
        AccuracyPredictor.load(tmp_path / "missing.npz")


def test_prediction_is_batched_and_checks_its_input():
    space = ArchSpace(**TINY_SPACE_KWARGS)
    predictor = build_accuracy_predictor(_additive_dataset(space, 30, noise=0.01), kind="mlp", steps=50)
    population = space.random_indices(200, 2)
    batched = predictor(population)
    assert batched.shape == (200,) and batched.dtype == np.float64
    one_by_one = [predictor(space.from_indices(row)) for row in population[:10]]
    np.testing.assert_allclose(batched[:10], one_by_one, rtol=1e-6)
    with pytest.raises(ValueError, match="out of range"):
        predictor(np.full((1, len(space.labels)), 9))


def test_auto_picks_by_validation_never_by_the_held_out_split():
    space = ArchSpace(**TINY_SPACE_KWARGS)
    predictor = build_accuracy_predictor(_additive_dataset(space, 80, noise=0.002), kind="auto", steps=100)
    selection = predictor.info["selection"]
    assert set(selection["validation"]) == {"mlp", "mlp-ensemble", "ridge"}
    best = max(selection["validation"], key=lambda k: selection["validation"][k]["kendall"])
    assert selection["chosen"] == best == predictor.kind
    with pytest.raises(ValueError, match="unknown predictor kind 'gbm'"):
        build_accuracy_predictor(_additive_dataset(space, 20, noise=0.01), kind="gbm")


# ------------------------------------------------------------------------------ collection
def _batches(seed: int, count: int, size: int, resolution: int = 40, classes: int = 4):
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 3, resolution, resolution, generator=generator),
             torch.randint(classes, (size,), generator=generator)) for _ in range(count)]


def test_collection_records_the_recalibrated_held_out_accuracy(tiny_space, tmp_path):
    calibration, evaluation = _batches(0, 2, 16), _batches(1, 2, 20)
    path = tmp_path / "subnets.jsonl"
    dataset = collect_accuracy_dataset(tiny_space, path=path, num_subnets=5, calibration_batches=calibration,
                                       eval_batches=evaluation, show_progress=False, data_description="random")
    space = tiny_space.arch_space
    assert len(dataset) == 5
    np.testing.assert_array_equal(dataset.indices, plan_subnets(space, 5))
    lines = path.read_text().splitlines()
    header = json.loads(lines[0])
    assert header["format_version"] == 1 and header["space"] == space.signature() and len(header["archs"]) == 5
    record = json.loads(lines[3])
    assert set(record) >= {"arch", "indices", "accuracy", "loss", "num_images", "seconds"}
    # The record is what freezing, recalibrating and evaluating that subnet gives.
    subnet = tiny_space.freeze(space.parse(record["arch"]))
    recalibrate_batchnorm(subnet, calibration)
    assert evaluate_subnet(subnet, evaluation)["accuracy"] == record["accuracy"]
    assert record["num_images"] == 40


def test_collection_resumes_after_a_cut_record_and_extends(tiny_space, tmp_path):
    calibration, evaluation = _batches(0, 1, 8), _batches(1, 1, 8)
    kwargs = dict(calibration_batches=calibration, eval_batches=evaluation, show_progress=False)
    path = tmp_path / "subnets.jsonl"
    collect_accuracy_dataset(tiny_space, path=path, num_subnets=3, **kwargs)
    complete = path.read_text()
    with open(path, "a") as file:  # a kill in the middle of writing a record
        file.write('{"arch": "r40_k3e2')
    seen: list[str] = []
    dataset = collect_accuracy_dataset(tiny_space, path=path, num_subnets=6, on_record=lambda r: seen.append(r["arch"]),
                                       **kwargs)
    assert len(dataset) == 6 and len(seen) == 3  # only the 3 new subnets were evaluated
    lines = path.read_text().splitlines()
    assert len(lines) == 7 and path.read_text().startswith(complete.split("\n", 1)[0][:40])
    assert [json.loads(line)["arch"] for line in lines[1:4]] == [json.loads(line)["arch"]
                                                                 for line in complete.splitlines()[1:]]
    assert len(collect_accuracy_dataset(tiny_space, path=path, num_subnets=4, **kwargs)) == 4  # reuse, no work
    with pytest.raises(ValueError, match="seed=0, this run asks for 1"):
        collect_accuracy_dataset(tiny_space, path=path, num_subnets=6, seed=1, **kwargs)
    with pytest.raises(ValueError, match="data=''"):
        collect_accuracy_dataset(tiny_space, path=path, num_subnets=6, data_description="other", **kwargs)


_COLLECT_SCRIPT = textwrap.dedent("""
    import sys, torch
    sys.path.insert(0, {tests!r})
    from conftest import TINY_SPACE_KWARGS
    from search_spaces import OFAMobileNetV3Space
    from ofa_nni.accuracy import collect_accuracy_dataset
    torch.manual_seed(0)
    space = OFAMobileNetV3Space(**TINY_SPACE_KWARGS)
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(64, 3, 40, 40, generator=g), torch.randint(4, (64,), generator=g)) for _ in range(4)]
    collect_accuracy_dataset(space, path={path!r}, num_subnets=400, calibration_batches=batches,
                             eval_batches=batches, show_progress=False)
""")


def test_collection_killed_with_sigkill_resumes(tiny_space, tmp_path):
    """A real process is killed (-9) while collecting; a new run finishes the same plan without
    evaluating any subnet twice."""
    path = tmp_path / "subnets.jsonl"
    script = _COLLECT_SCRIPT.format(tests=str(Path(__file__).parent), path=str(path))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and process.poll() is None:
        if path.exists() and path.read_text().count("\n") >= 3:  # header + at least 2 records
            break
        time.sleep(0.05)
    assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done_before = [json.loads(line)["arch"] for line in path.read_text().splitlines()[1:] if line.endswith("}")]
    assert 2 <= len(done_before) < 400
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    batches = [(torch.randn(64, 3, 40, 40, generator=generator), torch.randint(4, (64,), generator=generator))
               for _ in range(4)]
    new: list[str] = []
    dataset = collect_accuracy_dataset(tiny_space, path=path, num_subnets=12, calibration_batches=batches,
                                       eval_batches=batches, show_progress=False,
                                       on_record=lambda record: new.append(record["arch"]))
    assert len(dataset) == 12
    assert not set(new) & set(done_before)
    archs = [json.loads(line)["arch"] for line in path.read_text().splitlines()[1:]]
    assert len(archs) == len(set(archs))


# ------------------------------------------------------------------------------ CLI
@pytest.fixture
def digits_supernet(tmp_path):
    from ofa_nni.training.checkpoint import atomic_torch_save
    from search_spaces import OFAMobileNetV3Space

    kwargs = {**TINY_SPACE_KWARGS, "resolutions": (24, 32), "num_classes": 10}
    torch.manual_seed(0)
    space = OFAMobileNetV3Space(**kwargs)
    path = tmp_path / "supernet.pt"
    # Written as ofa-nni 0.1 wrote supernet files (version 1, no space name): still read.
    atomic_torch_save({"format": "ofa-nni-supernet", "version": 1, "space": space.arch_space.signature(),
                       "state_dict": space.state_dict(), "history": []}, path)
    return path


def test_cli_builds_a_predictor_from_a_supernet_on_digits(digits_supernet, tmp_path, capsys):
    out = tmp_path / "predictor.npz"
    code = main(["predictor", "build", "--supernet", str(digits_supernet), "--data", "digits", "--num-subnets", "10",
                 "--calibration-images", "100", "--kind", "ridge", "--quiet", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "Kendall tau" in printed and "RMSE" in printed
    dataset = AccuracyDataset.load(tmp_path / "predictor.subnets.jsonl", complete=True)
    assert len(dataset) == 10 and ((dataset.accuracies >= 0) & (dataset.accuracies <= 1)).all()
    assert "digits split" in dataset.header["data"]
    assert main(["predictor", "show", str(out)]) == 0
    assert "accuracy predictor ridge" in capsys.readouterr().out
    # A finished data set trains another predictor without the supernet.
    code = main(["predictor", "build", "--dataset", str(tmp_path / "predictor.subnets.jsonl"), "--kind", "mlp",
                 "--out", str(tmp_path / "mlp.npz")])
    assert code == 0 and "10 subnets evaluated" in capsys.readouterr().out
    assert AccuracyPredictor.load(tmp_path / "mlp.npz").kind == "mlp"
    # Subnets that all score alike (an undertrained supernet): the build says the predictor ranks nothing.
    lines = [json.loads(line) for line in (tmp_path / "predictor.subnets.jsonl").read_text().splitlines()]
    flat = tmp_path / "flat.subnets.jsonl"
    flat.write_text("".join(json.dumps({**row, "accuracy": 0.1003} if "accuracy" in row else row) + "\n"
                            for row in lines))
    assert main(["predictor", "build", "--dataset", str(flat), "--kind", "ridge",
                 "--out", str(tmp_path / "f.npz")]) == 0
    assert "note: every subnet scored 0.1003, so the predictor can rank nothing" in capsys.readouterr().err
    code = main(["predictor", "build", "--out", str(out)])
    assert code == 2 and "give --supernet" in capsys.readouterr().err
    code = main(["predictor", "build", "--supernet", str(tmp_path / "nope.pt"), "--out", str(out)])
    assert code == 2 and "does not exist" in capsys.readouterr().err


# ------------------------------------------------------------------------------ predictions in range
def _demo_space() -> ArchSpace:
    """The demo's space (the ``cpu`` preset at digits' 10 classes)."""
    from ofa_nni.training.config import SPACE_PRESETS

    return ArchSpace(num_classes=10, **SPACE_PRESETS["cpu"])


def _saturated_dataset(space: ArchSpace, n: int = 200, seed: int = 0) -> AccuracyDataset:
    """Accuracies as the demo measures them on digits: 0.9-1.0, many at the ceiling (an additive
    model whose best subnets would score above 100% if accuracy were not bounded)."""
    rng = np.random.default_rng(seed)
    indices = plan_subnets(space, n, seed)
    features = space.to_features(indices)
    weights = rng.uniform(0.0, 0.004, space.feature_dim)
    additive = features @ weights
    raw = 0.98 + 0.012 * (additive - additive.mean()) / additive.std() + rng.normal(0, 0.003, n)
    accuracies = np.clip(np.round(raw * 359) / 359, 0.0, 1.0)  # counted on 359 held-out images
    assert (accuracies == 1.0).sum() >= 5  # the ceiling is reached, as on digits
    return AccuracyDataset(arch_space=space, indices=indices, accuracies=accuracies)


@pytest.mark.parametrize("kind", ["mlp", "mlp-ensemble", "ridge", "auto"])
def test_predictions_stay_in_range_on_the_demos_files(kind, tmp_path):
    """Bounded by construction (a logit-scale fit): 100,000 random subnets and every subnet a
    search scores through the saved-and-loaded predictor file predict inside [0, 1]."""
    from ofa_nni.costs import AnalyticCostModel
    from ofa_nni.search import ParetoSearch

    space = _demo_space()
    predictor = build_accuracy_predictor(_saturated_dataset(space), kind=kind, steps=FAST_STEPS)
    predictor.save(tmp_path / "accuracy_predictor.npz")
    loaded = AccuracyPredictor.load(tmp_path / "accuracy_predictor.npz", arch_space=space)
    predicted = loaded(space.random_indices(100_000, 1))
    assert ((predicted >= 0.0) & (predicted <= 1.0)).all(), predicted.max()
    scored: list[np.ndarray] = []

    def objective(population: np.ndarray) -> np.ndarray:
        values = loaded(population)
        scored.append(values)
        return values

    front = ParetoSearch(arch_space=space, costs={"macs": AnalyticCostModel(space).macs}, population_size=100,
                         generations=10, seed=0).run(objective)
    searched = np.concatenate(scored)
    assert len(searched) >= 1000
    assert ((searched >= 0.0) & (searched <= 1.0)).all(), searched.max()
    assert (front.scores <= 1.0).all()


def test_a_tampered_weight_cannot_push_a_prediction_past_100_percent(tmp_path, capsys):
    space = ArchSpace(**TINY_SPACE_KWARGS)
    path = tmp_path / "p.npz"
    build_accuracy_predictor(_additive_dataset(space, 40, noise=0.01), kind="mlp", steps=50).save(path)
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["array.weight3"] = arrays["array.weight3"].copy()
    arrays["array.weight3"][0, 0] = 30.0  # one weight, as a tampered file holds it
    np.savez(path, **arrays)
    predicted = AccuracyPredictor.load(path, arch_space=space)(space.random_indices(10_000, 0))
    assert ((predicted >= 0.0) & (predicted <= 1.0)).all()


def test_a_predictor_of_the_previous_format_is_refused_with_how_to_rebuild(tmp_path):
    space = ArchSpace(**TINY_SPACE_KWARGS)
    path = tmp_path / "old.npz"
    build_accuracy_predictor(_additive_dataset(space, 30, noise=0.01), kind="ridge").save(path)
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    metadata = json.loads(str(arrays["metadata"]))
    metadata["format_version"] = 1  # as ofa-nni 0.1 wrote it: accuracy regressed directly, unbounded
    np.savez(path, **{**arrays, "metadata": np.array(json.dumps(metadata))})
    with pytest.raises(ValueError, match=r"old\.npz: predictor format_version 1 .*could predict above 100%.*"
                                         r"rebuild it with 'ofa-nni predictor build --dataset"):
        AccuracyPredictor.load(path)


def test_an_accuracy_data_set_holds_fractions():
    space = ArchSpace(**TINY_SPACE_KWARGS)
    rows = space.random_indices(3, 0)
    for bad in ([0.5, 50.0, 0.7], [0.5, -0.1, 0.7], [0.5, float("nan"), 0.7]):
        with pytest.raises(ValueError, match=r"accuracies must be fractions in \[0, 1\]"):
            AccuracyDataset(arch_space=space, indices=rows, accuracies=np.array(bad))


def test_show_describes_a_predictor_of_any_space(tmp_path, capsys):
    """``ofa-nni predictor show`` on an OFA-ResNet predictor used to crash (AttributeError: no
    ``max_depth``): it described every space as a MobileNet one. It prints the space's own summary."""
    from conftest import TINY_RESNET_KWARGS

    from ofa_nni.accuracy import RidgeAccuracyPredictor
    from ofa_nni.resnet_arch import ResNetArchSpace

    spaces = [(ResNetArchSpace(**TINY_RESNET_KWARGS), "resnet"), (ArchSpace(**TINY_SPACE_KWARGS), "mbv3")]
    for arch_space, layout in spaces:
        rows = arch_space.random_indices(20, 0)
        predictor = RidgeAccuracyPredictor(arch_space=arch_space)
        predictor.fit(arch_space.to_features(rows), np.linspace(0.3, 0.7, len(rows)))
        path = predictor.save(tmp_path / f"{layout}.npz") or tmp_path / f"{layout}.npz"
        assert main(["predictor", "show", str(path)]) == 0
        out = capsys.readouterr().out
        assert f"space: {layout}, {len(arch_space.labels)} labels" in out, out
        assert f"resolutions {list(arch_space.resolutions)}" in out and f"{arch_space.feature_dim} features" in out


def test_cli_refuses_to_reuse_accuracies_of_another_supernet_or_other_images(digits_supernet, tmp_path, capsys):
    """The subnets' accuracies kept next to the predictor are reused by a later build into the same
    file; they were reused even when the supernet (other weights) or the images behind the same
    ``--data-root`` path had changed, and the predictor was then trained on other subnets' accuracies."""
    from ofa_nni.training.checkpoint import atomic_torch_save
    from search_spaces import load_supernet

    images = np.random.default_rng(0).integers(0, 256, (60, 8, 8), dtype=np.uint8)
    data = tmp_path / "data.npz"
    np.savez(data, x_train=images, y_train=np.arange(60) % 10)
    out = tmp_path / "predictor.npz"
    build = ["predictor", "build", "--data", "npz", "--data-root", str(data), "--num-subnets", "5",
             "--calibration-images", "20", "--kind", "ridge", "--quiet", "--out", str(out)]
    assert main([*build, "--supernet", str(digits_supernet)]) == 0
    kept = (tmp_path / "predictor.subnets.jsonl").read_bytes()
    predictor = out.read_bytes()

    other = tmp_path / "other.pt"
    space = load_supernet(digits_supernet)
    with torch.no_grad():
        next(space.parameters()).add_(1.0)
    atomic_torch_save({"format": "ofa-nni-supernet", "version": 1, "space": space.arch_space.signature(),
                       "state_dict": space.state_dict(), "history": []}, other)
    capsys.readouterr()
    assert main([*build, "--supernet", str(other)]) == 2
    assert "holds accuracies of another supernet's subnets" in capsys.readouterr().err

    np.savez(data, x_train=images[::-1].copy(), y_train=np.arange(60) % 10)  # other images, same path
    assert main([*build, "--supernet", str(digits_supernet)]) == 2
    assert "was collected on other images than this run's" in capsys.readouterr().err
    assert (tmp_path / "predictor.subnets.jsonl").read_bytes() == kept and out.read_bytes() == predictor


def test_predictor_verdicts_name_what_is_wrong():
    """A demo on Animal-MNIST searched with a predictor at Kendall -0.643 and said nothing; 'predictor
    build --num-subnets 8' printed tau 1.0 from 2 held-out subnets and nan from one."""
    from ofa_nni.accuracy import predictor_verdict_lines

    assert predictor_verdict_lines({"kendall": 0.62, "num_subnets": 40}) == []
    backwards = predictor_verdict_lines({"kendall": -0.643, "num_subnets": 40})
    assert len(backwards) == 1 and "no better than chance (Kendall tau -0.643)" in backwards[0]
    few = predictor_verdict_lines({"kendall": 1.0, "num_subnets": 2})
    assert len(few) == 1 and "only 2 held-out subnets" in few[0]
    assert any("ranks nothing" in line for line in predictor_verdict_lines({"kendall": float("nan"), "num_subnets": 1}))
