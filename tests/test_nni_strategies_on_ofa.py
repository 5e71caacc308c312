"""NNI's own multi-trial strategies and OFAEvolution on an OFA supernet, as NNI users run them
(``NasExperiment`` with the sequential engine): scores with BN recalibration (``RecalibratedEvaluator``),
the warning without it, OFAEvolution's trial budget, and its error for a space that is not an OFA space."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import nni
import pytest
import torch
from nni.nas.evaluator import FunctionalEvaluator
from nni.nas.experiment import NasExperiment
from nni.nas.strategy import Random, RegularizedEvolution
from nnictl_experiment import train_tiny_supernet
from torch.utils.data import DataLoader

from ofa_nni.accuracy import evaluate_subnet
from ofa_nni.data import calibration_loader, load_data
from ofa_nni.evaluation import evaluate_frozen_subnet
from strategies import OFAEvolution
from strategies.nni_evaluator import RecalibratedEvaluator
from strategies.nni_tuner import canonical_arch


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, list[Any], list[Any]]:
    """A briefly trained supernet of the tiny nnictl space, its calibration and held-out batches."""
    from search_spaces import load_supernet

    space = load_supernet(train_tiny_supernet(tmp_path_factory.mktemp("supernet")))
    data = load_data("digits", resolution=max(space.arch_space.resolutions))
    calibration = list(calibration_loader(data, batch_size=100))
    held_out = list(DataLoader(data.val, batch_size=256))
    return space, calibration, held_out


def run_experiment(space: Any, evaluator: Any, strategy: Any, directory: Path, trials: int) -> dict[str, float]:
    """Run a NasExperiment; the canonical arch and final metric of every model it evaluated."""
    experiment = NasExperiment(space, evaluator, strategy)
    experiment.config.experiment_working_directory = str(directory)
    experiment.config.max_trial_number = trials
    experiment.run()
    experiment.stop()
    return {canonical_arch(space.arch_space, model.sample): model.metric
            for model in strategy.list_models(sort=False)}


def held_out_accuracy(model: torch.nn.Module, batches: list[Any]) -> None:
    """An evaluation function as NNI's examples write it: held-out accuracy of the model as it is."""
    nni.report_final_result(evaluate_subnet(model, batches)["accuracy"])


@pytest.mark.parametrize("strategy", [RegularizedEvolution(population_size=4, sample_size=2, seed=0),
                                      Random(seed=0)], ids=["RegularizedEvolution", "Random"])
def test_nni_strategy_scores_subnets_like_the_recalibrated_evaluation(trained, strategy, tmp_path, monkeypatch):
    space, calibration, held_out = trained
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scores = run_experiment(space, RecalibratedEvaluator(calibration, held_out), strategy, tmp_path, trials=6)
    assert len(scores) == 6
    for arch, score in scores.items():
        expected = evaluate_frozen_subnet(space, space.arch_space.parse(arch), calibration, held_out).accuracy
        assert score == pytest.approx(expected, abs=1e-12), arch
    assert not [w for w in caught if "RecalibratedEvaluator" in str(w.message)]


def test_evaluation_without_recalibration_scores_wrong_and_warns_once(trained, tmp_path, monkeypatch):
    space, calibration, held_out = trained
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scores = run_experiment(space, FunctionalEvaluator(held_out_accuracy, batches=held_out),
                                Random(seed=0), tmp_path, trials=4)
    recalibrated = {arch: evaluate_frozen_subnet(space, space.arch_space.parse(arch), calibration, held_out).accuracy
                    for arch in scores}
    assert any(abs(scores[arch] - recalibrated[arch]) > 0.01 for arch in scores), (scores, recalibrated)
    messages = [str(w.message) for w in caught if "batch-norm statistics" in str(w.message)]
    assert len(messages) == 1, messages
    assert "strategies.RecalibratedEvaluator" in messages[0] and "OFAMobileNetV3Space" in messages[0]


def test_recalibrated_evaluator_runs_a_function_on_the_recalibrated_subnet(trained, tmp_path):
    space, calibration, held_out = trained
    seen: list[torch.nn.Module] = []

    def evaluate(model: torch.nn.Module, batches: list[Any]) -> None:
        seen.append(model)
        held_out_accuracy(model, batches)

    evaluator = RecalibratedEvaluator(calibration, function=evaluate, batches=held_out)
    scores = run_experiment(space, evaluator, Random(seed=1), tmp_path, trials=2)
    assert len(seen) == 2
    for arch, score in scores.items():
        assert score == pytest.approx(
            evaluate_frozen_subnet(space, space.arch_space.parse(arch), calibration, held_out).accuracy, abs=1e-12)


def test_recalibrated_evaluator_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="needs held_out_data"):
        RecalibratedEvaluator([torch.zeros(1, 3, 8, 8)])
    with pytest.raises(ValueError, match="calibration_batches must be a positive integer"):
        RecalibratedEvaluator([torch.zeros(1, 3, 8, 8)], [], calibration_batches=0)
    with pytest.raises(ValueError, match=r"\['batches'\] go with function="):
        RecalibratedEvaluator([torch.zeros(1, 3, 8, 8)], [], batches=[])


# ----------------------------------------------------------------------------- OFAEvolution
def count_evaluations(space: Any, targets: Any, tmp_path: Path, **settings: Any) -> int:
    strategy = OFAEvolution(targets=targets, seed=0, **settings)
    scores = run_experiment(space, FunctionalEvaluator(_macs_score), strategy, tmp_path, trials=1000)
    assert strategy.search is not None and strategy.search.done
    return len(scores)


def _macs_score(model: torch.nn.Module) -> None:
    """A deterministic, cheap score: the subnet's parameter count."""
    nni.report_final_result(float(sum(p.numel() for p in model.parameters())))


def test_ofa_evolution_budget_is_per_target(tiny_space, tmp_path):
    """population_size=8, generations=3: at most 8 x 4 = 32 trials for one target, len(targets) times
    that for several (each target keeps its own population), max_evaluations caps the total."""
    macs = tiny_space.cost_model.macs
    arch = tiny_space.arch_space
    low, high = float(macs(arch.min_sample())), float(macs(arch.max_sample()))
    targets = [{"macs": low + f * (high - low)} for f in (0.2, 0.45, 0.7)]
    settings = {"population_size": 8, "generations": 3}
    one = count_evaluations(tiny_space, targets[:1], tmp_path / "one", **settings)
    three = count_evaluations(tiny_space, targets, tmp_path / "three", **settings)
    capped = count_evaluations(tiny_space, targets, tmp_path / "capped", max_evaluations=32, **settings)
    assert one <= 8 * 4 < three <= 3 * 8 * 4
    assert capped == 32
    assert "len(targets) * population_size * (generations + 1)" in " ".join(OFAEvolution.__doc__.split())


def test_ofa_evolution_names_the_space_it_cannot_search():
    from nni.nas.execution import SequentialExecutionEngine
    from nni.nas.nn.pytorch import LayerChoice, ModelSpace
    from nni.nas.space import SimplifiedModelSpace

    class HubLikeSpace(ModelSpace):  # an NNI space that is not an OFA space (as NNI's hub spaces)
        def __init__(self) -> None:
            super().__init__()
            self.layer = LayerChoice([torch.nn.Conv2d(3, 3, 1), torch.nn.Conv2d(3, 3, 3, padding=1)], label="op")

    simplified = SimplifiedModelSpace.from_model(HubLikeSpace(), FunctionalEvaluator(_macs_score))
    with pytest.raises(ValueError, match="OFAEvolution searches only the OFA spaces") as error:
        OFAEvolution().initialize(simplified, SequentialExecutionEngine())
    assert "got HubLikeSpace" in str(error.value)
