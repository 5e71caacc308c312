"""ProgressiveShrinking and SandwichRule through NNI's NasExperiment, end to end on the tiny space."""

from __future__ import annotations

import pytest
import torch

from ofa_nni.training import learning_rate, locate_epoch, progressive_shrinking


def _evaluator(callbacks=(), epochs=1):
    from nni.nas.evaluator.pytorch import Classification, DataLoader

    generator = torch.Generator().manual_seed(0)
    images = torch.randn(64, 3, 40, 40, generator=generator)
    labels = torch.randint(0, 4, (64,), generator=generator)
    dataset = torch.utils.data.TensorDataset(images, labels)
    return Classification(
        train_dataloaders=DataLoader(dataset, batch_size=16, shuffle=True),
        val_dataloaders=DataLoader(dataset, batch_size=32),
        num_classes=4,
        max_epochs=epochs,
        accelerator="cpu",
        enable_progress_bar=False,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=list(callbacks),
    )


class _Recorder:
    """A Lightning callback recording, per training batch, the epoch, lr and subnets activated."""

    def __init__(self, space):
        import pytorch_lightning as pl

        recorder = self
        self.rows: list[tuple[int, int, float, int]] = []
        self.activations = 0
        self.sorts: list[tuple[int, tuple]] = []
        activate, sort_channels = space.activate, space.sort_channels

        def counting_activate(sample):
            recorder.activations += 1
            return activate(sample)

        def recording_sort(trained=None):
            recorder.sorts.append((recorder.epoch, tuple(trained)))
            return sort_channels(trained)

        space.activate, space.sort_channels = counting_activate, recording_sort
        self.epoch = -1

        class Callback(pl.Callback):
            def on_train_epoch_start(self, trainer, module):
                recorder.epoch = trainer.current_epoch

            def on_train_batch_start(self, trainer, module, batch, batch_idx):
                recorder.activations = 0

            def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
                lr = module.optimizers().optimizer.param_groups[0]["lr"]
                recorder.rows.append((trainer.current_epoch, batch_idx, lr, recorder.activations))

        self.callback = Callback()


def test_progressive_shrinking_runs_through_nas_experiment(tiny_space, tmp_path):
    from nni.nas.experiment import NasExperiment

    from strategies import ProgressiveShrinking

    recorder = _Recorder(tiny_space)
    strategy = ProgressiveShrinking(epochs_factor=0.001, validation_random_subnets=1, calibration_batches=1,
                                    checkpoint_dir=tmp_path / "ckpt")
    experiment = NasExperiment(tiny_space, _evaluator([recorder.callback]), strategy)
    experiment.config.experiment_working_directory = str(tmp_path / "nni")
    before = {k: v.clone() for k, v in tiny_space.state_dict().items()}
    experiment.run()

    phases = strategy.phases
    assert [p.name for p in phases] == ["full", "kernel", "depth1", "depth2", "expand1", "expand2"]
    assert all(p.epochs == 1 for p in phases)
    assert phases[0].lr == pytest.approx(2.6 * 16 / 2048)  # scaled to the loader's batch size
    # Per step: the phase's learning rate and its number of subnets (activations of the supernet).
    assert len(recorder.rows) == 6 * 4
    for epoch, batch, lr, activations in recorder.rows:
        phase_index, epoch_in_phase = locate_epoch(phases, epoch)
        phase = phases[phase_index]
        assert lr == pytest.approx(learning_rate(phase, epoch_in_phase, batch, 4))
        assert activations == phase.subnets_per_step
    # Channels re-ordered at the start of each width phase, keeping the trained ratios.
    assert recorder.sorts == [(4, (3,)), (5, (2, 3))]
    history = strategy.oneshot_module.history
    assert [h["phase"] for h in history] == [p.name for p in phases]
    assert {"val_acc_smallest", "val_acc_median", "val_acc_largest", "val_acc_random0"} <= set(history[-1])
    changed = [k for k, v in tiny_space.state_dict().items() if not torch.equal(v, before[k])]
    assert any(".transform_" in k for k in changed) and any(k.startswith("stages.2.") for k in changed)
    # The teacher is the full network of phase one, frozen: equal to the largest subnet of the
    # phase-one checkpoint, and unchanged afterwards.
    phase_one = torch.load(tmp_path / "ckpt" / "phase1-full.pt", weights_only=True)
    final = torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)
    assert phase_one["teacher"] is None and final["teacher"] is not None
    reference = type(tiny_space)(**{k: tuple(v) if isinstance(v, list) else v for k, v in phase_one["space"].items()})
    reference.load_state_dict(phase_one["supernet"])
    expected_teacher = reference.freeze(reference.max_sample()).state_dict()
    assert set(expected_teacher) == set(final["teacher"])
    for key, value in expected_teacher.items():
        assert torch.equal(value, final["teacher"][key]), key
    assert not strategy.oneshot_module.teacher.training
    (sample,) = experiment.export_top_models(formatter="dict")
    assert sample == tiny_space.max_sample()
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "last.pt", "phase1-full.pt", "phase2-kernel.pt", "phase3-depth1.pt", "phase4-depth2.pt",
        "phase5-expand1.pt", "phase6-expand2.pt"]


def test_sandwich_rule_runs_through_nas_experiment(tiny_space, tmp_path):
    from nni.nas.experiment import NasExperiment

    from strategies import SandwichRule

    recorder = _Recorder(tiny_space)
    strategy = SandwichRule(epochs=2, num_random=1, validation_random_subnets=0, calibration_batches=1)
    experiment = NasExperiment(tiny_space, _evaluator([recorder.callback]), strategy)
    experiment.config.experiment_working_directory = str(tmp_path / "nni")
    before = {k: v.clone() for k, v in tiny_space.state_dict().items()}
    experiment.run()
    (phase,) = strategy.phases
    assert phase.name == "sandwich" and phase.subnets_per_step == 3 and phase.lr == pytest.approx(2.6 * 16 / 2048)
    assert [row[3] for row in recorder.rows] == [3] * 8
    assert [h["phase"] for h in strategy.oneshot_module.history] == ["sandwich", "sandwich"]
    assert {"val_acc_smallest", "val_acc_median", "val_acc_largest"} <= set(strategy.oneshot_module.history[-1])
    assert any(not torch.equal(v, before[k]) for k, v in tiny_space.state_dict().items())


def test_explicit_phases_and_argument_errors(tiny_space):
    from strategies import ProgressiveShrinking, SandwichRule

    phases = progressive_shrinking(tiny_space.arch_space, phases=("full",), epochs_factor=0.001)
    with pytest.raises(ValueError, match="either phases= or"):
        ProgressiveShrinking(phases=phases, epochs_factor=0.5)
    with pytest.raises(ValueError, match="resume=True needs checkpoint_dir"):
        ProgressiveShrinking(resume=True)
    with pytest.raises(ValueError, match="label_smoothing"):
        SandwichRule(epochs=1, label_smoothing=1.5)
    with pytest.raises(TypeError, match=r"trains an OFA space \(OFAMobileNetV3Space, OFAProxylessNASSpace, "
                                        r"OFAResNetSpace\), got"):
        ProgressiveShrinking().mutate_model(torch.nn.Linear(2, 2))


def test_a_misspelt_strategy_setting_names_the_strategy_and_what_it_takes():
    """``ProgressiveShrinking(epoch_factor=...)`` ended in NNI's "Strategy.__init__() got an unexpected
    keyword argument", naming neither the strategy nor its settings."""
    from strategies import ProgressiveShrinking, SandwichRule

    with pytest.raises(ValueError, match=r"ProgressiveShrinking: unknown setting 'epoch_factor'; allowed: \[.*"
                                         r"'epochs_factor'"):
        ProgressiveShrinking(recipe="short", epoch_factor=0.01)
    with pytest.raises(ValueError, match=r"SandwichRule: unknown setting 'lrr'; allowed: \[.*'lr'"):
        SandwichRule(epochs=1, lrr=0.1)
