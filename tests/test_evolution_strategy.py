"""OFAEvolution: OFA's search as an NNI multi-trial strategy, end to end on the tiny space."""

from __future__ import annotations

import io

import nni
import numpy as np
import pytest
import torch
from nni.nas.evaluator import FunctionalEvaluator
from nni.nas.execution import SequentialExecutionEngine
from nni.nas.experiment import NasExperiment
from nni.nas.space import RawFormatModelSpace

from ofa_nni.runtime import recalibrate_batchnorm
from strategies import OFAEvolution

IMAGES = torch.randn(24, 3, 40, 40, generator=torch.Generator().manual_seed(0))
LABELS = torch.randint(0, 4, (24,), generator=torch.Generator().manual_seed(1))
CALIBRATION = [IMAGES[:12], IMAGES[12:]]
EVALUATED: list[torch.nn.Module] = []


def evaluate(model: torch.nn.Module) -> None:
    """A deterministic score of the subnet it gets (accuracy plus a tie-breaker from its outputs)."""
    EVALUATED.append(model)
    model.eval()
    with torch.no_grad():
        logits = model(IMAGES)
    accuracy = (logits.argmax(1) == LABELS).float().mean().item()
    nni.report_final_result(accuracy + 1e-3 * float(torch.sigmoid(logits.mean())))


def random_predictor(space, seed: int = 0):
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=space.feature_dim)
    return lambda indices: space.to_features(indices) @ weights


@pytest.mark.parametrize("space_fixture", ["tiny_space", "tiny_proxyless", "tiny_resnet"])
def test_predictor_mode_submits_each_targets_subnet_with_recalibrated_weights(space_fixture, request, tmp_path):
    tiny_space = request.getfixturevalue(space_fixture)
    EVALUATED.clear()
    arch = tiny_space.arch_space
    macs = tiny_space.cost_model.macs
    budgets = [float(macs(arch.min_sample())) * 1.3, float(macs(arch.max_sample()))]
    strategy = OFAEvolution(
        predictor=random_predictor(arch),
        targets=[{"macs": b} for b in budgets],
        calibration_data=CALIBRATION,
        population_size=20,
        generations=10,
    )
    experiment = NasExperiment(tiny_space, FunctionalEvaluator(evaluate), strategy)
    experiment.config.experiment_working_directory = str(tmp_path)
    experiment.run()
    experiment.stop()

    result = strategy.result
    assert result is not None and len(result) == 2
    for target, budget in zip(result, budgets, strict=True):
        assert target.costs["macs"] <= budget
    archs = {arch.format(m.sample) for m in strategy.list_models(sort=False)}
    assert archs == {t.arch for t in result}
    assert len(EVALUATED) == len(archs)  # targets sharing a subnet share its evaluation
    top = experiment.export_top_models(top_k=2, formatter="dict")
    assert {arch.format(s) for s in top} == archs

    # The evaluator got the supernet's weights, with batch norms recalibrated on the given data.
    model = EVALUATED[-1]
    reference = tiny_space.freeze(arch.parse(model.arch))
    recalibrate_batchnorm(reference, CALIBRATION)
    for (name, tensor), expected in zip(model.state_dict().items(), reference.state_dict().values(), strict=True):
        assert torch.allclose(tensor.float(), expected.float(), atol=1e-6), name
    supernet_bns = [m for m in tiny_space.modules() if isinstance(m, torch.nn.BatchNorm2d)]  # the stem's first
    subnet_bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert not torch.allclose(subnet_bns[0].running_mean, supernet_bns[0].running_mean)


def run_real_evaluation(space, engine, state=None, **settings):
    strategy = OFAEvolution(
        targets={"macs": float(space.cost_model.macs(space.arch_space.max_sample())) * 0.7},
        population_size=6,
        generations=3,
        seed=2,
        **settings,
    )
    executable = RawFormatModelSpace(space, FunctionalEvaluator(evaluate))
    strategy.initialize(executable, engine)
    if state is not None:
        strategy.load_state_dict(state)
    strategy.run()
    return strategy


def test_real_evaluation_scores_every_candidate_with_the_evaluator(tiny_space):
    engine = SequentialExecutionEngine()
    strategy = run_real_evaluation(tiny_space, engine)
    models = list(engine.list_models())
    assert strategy.search is not None and len(models) == strategy.search.evaluations
    metrics = {tiny_space.arch_space.format(m.sample): m.metric for m in models}
    best = strategy.result[0]
    feasible = [
        v for k, v in metrics.items() if tiny_space.macs(tiny_space.arch_space.parse(k)) <= best.budgets["macs"]
    ]
    assert best.score == max(feasible)
    assert metrics[best.arch] == best.score


def test_resume_after_the_trial_budget_runs_out(tiny_space):
    uninterrupted = run_real_evaluation(tiny_space, SequentialExecutionEngine())

    first = run_real_evaluation(tiny_space, SequentialExecutionEngine(max_model_count=9))
    assert first.search is not None and first.search.evaluations == 9 and not first.search.done
    # NNI checkpoints with torch.save; the state must load with weights_only=True.
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    resumed = run_real_evaluation(tiny_space, SequentialExecutionEngine(), state=state)
    assert resumed.search is not None and resumed.search.done
    assert resumed.search.evaluations == uninterrupted.search.evaluations
    assert [t.arch for t in resumed.result] == [t.arch for t in uninterrupted.result]
    assert [t.score for t in resumed.result] == [t.score for t in uninterrupted.result]


def test_experiment_resume(tiny_space, tmp_path):
    def experiment_with(max_trials, experiment_id=None):
        strategy = OFAEvolution(population_size=6, generations=3, seed=2)
        experiment = NasExperiment(tiny_space, FunctionalEvaluator(evaluate), strategy, id=experiment_id)
        experiment.config.experiment_working_directory = str(tmp_path)
        experiment.config.max_trial_number = max_trials
        return experiment, strategy

    uninterrupted_experiment, uninterrupted = experiment_with(100)
    uninterrupted_experiment.run()
    uninterrupted_experiment.stop()
    assert uninterrupted.search.done

    experiment, strategy = experiment_with(8)
    experiment.run()  # returns when the trial budget is spent
    experiment.stop()  # NNI checkpoints the strategy (at Ctrl-C or process exit too)
    assert strategy.search.evaluations == 8 and not strategy.search.done
    resumed_experiment, resumed = experiment_with(100, experiment.id)
    resumed_experiment.resume()
    resumed_experiment.stop()
    assert resumed.search.done
    assert resumed.search.evaluations == uninterrupted.search.evaluations
    assert [t.arch for t in resumed.result] == [t.arch for t in uninterrupted.result]
    # only the subnets not evaluated before the interruption ran again
    assert len(list(resumed.list_models(sort=False))) == uninterrupted.search.evaluations - 8


def test_rejects_a_space_without_inherited_weights():
    from conftest import TINY_SPACE_KWARGS
    from nni.nas.space import SimplifiedModelSpace

    from search_spaces import OFAMobileNetV3Space

    space = OFAMobileNetV3Space(**TINY_SPACE_KWARGS)
    simplified = SimplifiedModelSpace.from_model(space, FunctionalEvaluator(evaluate))
    with pytest.raises(ValueError, match="raw' model format"):
        OFAEvolution().initialize(simplified, SequentialExecutionEngine())
    with pytest.raises(ValueError, match="predictor"):
        OFAEvolution(predictor=3)  # type: ignore[arg-type]


def test_rejects_an_evaluator_that_trains_every_subnet():
    """With NNI's Classification evaluator OFAEvolution trained two subnets for minutes, then failed in
    NNI (KeyError 'train_acc'): it scores a trained supernet's subnets as they are."""
    from conftest import TINY_SPACE_KWARGS
    from nni.nas.evaluator.pytorch import Classification, DataLoader

    from search_spaces import OFAMobileNetV3Space

    data = torch.utils.data.TensorDataset(torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,)))
    evaluator = Classification(train_dataloaders=DataLoader(data, batch_size=4), val_dataloaders=DataLoader(data),
                               num_classes=10, max_epochs=1, accelerator="cpu", logger=False)
    space = RawFormatModelSpace.from_model(OFAMobileNetV3Space(**TINY_SPACE_KWARGS), evaluator)
    with pytest.raises(ValueError, match=r"takes an evaluator that evaluates without training, e.g. "
                                         r"strategies.RecalibratedEvaluator .* got NNI's Classification"):
        OFAEvolution().initialize(space, SequentialExecutionEngine())
