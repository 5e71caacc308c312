"""NNI accepts OFAMobileNetV3Space as a one-shot search space, end to end."""

from __future__ import annotations

import random

import pytest
import torch
from nni.nas.oneshot.pytorch.supermodule.base import BaseSuperNetModule


def _resample_all(space, memo=None):
    """What NNI's one-shot modules do every step: resample every supernet module."""
    result = dict(memo or {})
    for module in space.modules():
        if isinstance(module, BaseSuperNetModule):
            result.update(module.resample(memo=result))
    return result


def test_resample_covers_every_label_and_honours_the_memo(tiny_space):
    random.seed(0)
    seen = set()
    for _ in range(30):
        sample = _resample_all(tiny_space)
        assert tiny_space.arch_space.validate(sample) == sample
        assert tiny_space.active_sample() == sample
        seen.add(sample["resolution"])
    assert seen == {32, 40}
    fixed = tiny_space.min_sample()
    assert _resample_all(tiny_space, memo=fixed) == fixed
    assert tiny_space.active_sample() == fixed


def test_export_returns_the_active_sample(tiny_space):
    sample = tiny_space.activate(tiny_space.random_sample(2))
    exported = {}
    for module in tiny_space.modules():
        if isinstance(module, BaseSuperNetModule):
            exported.update(module.export(memo=exported))
    assert exported == sample


def test_random_one_shot_trains_and_exports_a_freezable_sample(tiny_space, tmp_path):
    from nni.nas.evaluator.pytorch import Classification, DataLoader
    from nni.nas.experiment import NasExperiment
    from nni.nas.strategy import RandomOneShot

    torch.manual_seed(0)
    images = torch.randn(48, 3, 40, 40)
    labels = torch.randint(0, 4, (48,))
    dataset = torch.utils.data.TensorDataset(images, labels)
    evaluator = Classification(
        train_dataloaders=DataLoader(dataset, batch_size=16),
        val_dataloaders=DataLoader(dataset, batch_size=16),
        num_classes=4,
        max_epochs=2,
        accelerator="cpu",
        enable_progress_bar=False,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    before = {k: v.clone() for k, v in tiny_space.state_dict().items()}
    experiment = NasExperiment(tiny_space, evaluator, RandomOneShot())
    experiment.config.experiment_working_directory = str(tmp_path)
    experiment.run()
    changed = [k for k, v in tiny_space.state_dict().items() if not torch.equal(v, before[k])]
    assert any(".transform_" in k for k in changed)  # elastic kernels were trained
    assert any(k.startswith("stages.2.") for k in changed)

    (sample,) = experiment.export_top_models(formatter="dict")
    assert set(sample) == set(tiny_space.arch_space.labels)
    model = tiny_space.freeze(sample).eval()
    tiny_space.eval()
    tiny_space.activate(sample)
    x = images[:4]
    assert torch.allclose(model(x), tiny_space(x), atol=1e-5)
    (instance,) = experiment.export_top_models(formatter="instance")  # NNI freezes through our space
    assert instance(x).shape == (4, 4)


@pytest.mark.parametrize("strategy_name", ["RandomOneShot"])
def test_mutate_model_keeps_our_supernet_modules(tiny_space, strategy_name):
    import nni.nas.strategy as strategies

    strategy = getattr(strategies, strategy_name)()
    modules_before = [type(m) for m in tiny_space.modules()]
    mutated = strategy.mutate_model(tiny_space)
    assert mutated is tiny_space
    assert [type(m) for m in mutated.modules()] == modules_before
