"""One TrainingSettings object from the YAML configuration through the runner and the strategies to
the one-shot Lightning module; the strategies' keyword arguments map onto it one to one."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from ofa_nni.errors import InvalidInputError
from ofa_nni.training import ConfigError, TrainingSettings, load_config

# Every training setting away from its default, so a value dropped on the way shows.
YAML = """
seed: 7
space: {preset: cpu, kernel_sizes: [3, 5], expand_ratios: [2, 3], depths: [1, 2], resolutions: [16, 20]}
data: {kind: digits, batch_size: 32, calibration_images: 64}
optimizer: {momentum: 0.8, nesterov: false, weight_decay: 1.0e-4, label_smoothing: 0.2}
validation: {random_subnets: 3, calibration_batches: 5}
"""


@pytest.mark.parametrize("strategy", [{"name": "progressive_shrinking", "epochs_factor": 0.001},
                                      {"name": "sandwich", "epochs": 1}])
def test_the_yaml_values_arrive_unchanged_in_the_one_shot_module(tmp_path, strategy):
    from nni.nas.evaluator.pytorch import ClassificationModule, DataLoader, Lightning, Trainer
    from nni.nas.execution import SequentialExecutionEngine
    from nni.nas.space import RawFormatModelSpace

    from ofa_nni.app.runner import _strategy, build_space
    from ofa_nni.data import load_data

    path = tmp_path / "train.yaml"
    path.write_text(YAML + yaml.safe_dump({"strategy": strategy}))
    config = load_config(path)
    data = load_data("digits", resolution=20, calibration_images=64)
    supernet = build_space(config, data.num_classes)
    evaluator = Lightning(ClassificationModule(num_classes=data.num_classes),
                          Trainer(max_epochs=1, logger=False, enable_progress_bar=False),
                          train_dataloaders=DataLoader(data.train, batch_size=32),
                          val_dataloaders=DataLoader(data.val, batch_size=32))
    # What the runner does: its strategy, initialised on NNI's sequential engine.
    training = _strategy(config, data, tmp_path / "checkpoints", False)
    training.initialize(RawFormatModelSpace(supernet, evaluator), SequentialExecutionEngine())
    module = training.oneshot_module

    settings = module.settings
    assert settings is training.settings
    assert (settings.seed, settings.momentum, settings.nesterov, settings.weight_decay, settings.label_smoothing,
            settings.validation_random_subnets, settings.calibration_batches) == (7, 0.8, False, 1e-4, 0.2, 3, 5)
    assert settings.checkpoint_dir == tmp_path / "checkpoints" and settings.resume is False
    assert settings.run_config == config.to_dict()
    # ... and the module trains with them: the optimizer it builds.
    module.training_module.set_model(supernet)
    optimizer = module.configure_optimizers()
    assert [(group["momentum"], group["nesterov"]) for group in optimizer.param_groups] == [(0.8, False)] * 2
    assert [group["weight_decay"] for group in optimizer.param_groups] == [1e-4, 0.0]  # none on BN and biases
    # NasExperiment.resume hands the strategy the checkpoint folder it recorded; the module follows.
    training.load_state_dict({"checkpoint_dir": str(tmp_path / "elsewhere")})
    assert module.settings == dataclasses.replace(settings, checkpoint_dir=tmp_path / "elsewhere", resume=True)


def test_strategy_keywords_map_onto_the_settings_one_to_one(tmp_path):
    from strategies import ProgressiveShrinking, SandwichRule

    assert ProgressiveShrinking().settings == TrainingSettings()
    base = TrainingSettings(seed=3, momentum=0.5, calibration_batches=2)
    strategy = SandwichRule(epochs=1, settings=base, momentum=0.8, checkpoint_dir=str(tmp_path))
    assert strategy.settings == dataclasses.replace(base, momentum=0.8, checkpoint_dir=tmp_path)
    every = {"seed": 1, "label_smoothing": 0.0, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0,
             "validation_random_subnets": 0, "calibration_batches": 1, "checkpoint_dir": tmp_path, "resume": True,
             "run_config": {"seed": 1}}
    assert set(every) == {field.name for field in dataclasses.fields(TrainingSettings)}
    assert ProgressiveShrinking(**every).settings == TrainingSettings(**every)


@pytest.mark.parametrize("given, message", [
    ({"momentum": 1.5}, r"^momentum: 1.5 is out of range; allowed: \[0, 1\)$"),
    ({"label_smoothing": -0.1}, r"^label_smoothing: -0.1 is out of range; allowed: \[0, 1\)$"),
    ({"weight_decay": float("nan")}, r"^weight_decay: expected a finite number, got nan$"),
    ({"calibration_batches": 0}, r"^calibration_batches: 0 is out of range; allowed: \[1, inf\)$"),
    ({"validation_random_subnets": 1.5}, r"^validation_random_subnets: expected an int, got 1.5$"),
    ({"seed": True}, r"^seed: expected an int, got True$"),
    ({"nesterov": 1}, r"^nesterov: expected true or false, got 1$"),
    ({"resume": True}, r"^resume=True needs checkpoint_dir"),
    ({"checkpoint_dir": 3}, r"^checkpoint_dir: expected a path or None, got 3$"),
])
def test_bad_settings_are_refused_naming_the_field(given, message):
    from strategies import ProgressiveShrinking

    with pytest.raises(InvalidInputError, match=message):
        TrainingSettings(**given)
    with pytest.raises(InvalidInputError, match=message):  # the strategies' keywords: the same check
        ProgressiveShrinking(**given)
    with pytest.raises(InvalidInputError, match=r"unknown training setting\(s\) \['lr'\]"):
        TrainingSettings.build(lr=0.1)


@pytest.mark.parametrize("section, key, value, message", [
    ("optimizer", "momentum", 1.5, r"optimizer.momentum: 1.5 is out of range; allowed: \[0, 1\)"),
    ("optimizer", "label_smoothing", 1.0, r"optimizer.label_smoothing: 1.0 is out of range; allowed: \[0, 1\)"),
    ("validation", "calibration_batches", 0, r"validation.calibration_batches: 0 is out of range; allowed: \[1, inf\)"),
    ("validation", "random_subnets", -1, r"validation.random_subnets: -1 is out of range; allowed: \[0, inf\)"),
])
def test_bad_yaml_settings_are_refused_at_load_naming_the_key(tmp_path, section, key, value, message):
    path = Path(tmp_path) / "train.yaml"
    path.write_text(yaml.safe_dump({section: {key: value}}))
    with pytest.raises(ConfigError, match=message):
        load_config(path)


@pytest.mark.parametrize("name", ["ofa-mbv3", "ofa-proxyless", "ofa-resnet50"])
def test_every_choice_of_the_cpu_presets_changes_the_network(name):
    """Two values of a label that give the same network once widths are rounded to multiples of 8
    make the search score repeated subnets. The ResNet preset's first widths did that for the whole
    of ``stem.width`` and ``stem.mid_width``; only what the released space itself merges is allowed
    (its stem's mid width at multipliers 0.65 and 0.8)."""
    import itertools

    import numpy as np

    from ofa_nni.costs import cost_model_for
    from ofa_nni.nni_search_space import arch_space_from_spec

    arch = arch_space_from_spec({"name": name, "preset": "cpu", "num_classes": 10})
    costs = cost_model_for(arch)
    rows = arch.random_indices(300, np.random.default_rng(0))
    merged = []
    for column, label in enumerate(arch.labels):
        for a, b in itertools.combinations(range(len(arch.choices(label))), 2):
            rows_a, rows_b = rows.copy(), rows.copy()
            rows_a[:, column], rows_b[:, column] = a, b
            if (np.array_equal(costs.macs(rows_a), costs.macs(rows_b))
                    and np.array_equal(costs.params(rows_a), costs.params(rows_b))):
                merged.append((label, arch.choices(label)[a], arch.choices(label)[b]))
    assert merged == ([("stem.mid_width", 0.65, 0.8)] if name == "ofa-resnet50" else [])
