"""Progressive-shrinking and sandwich schedules: phases, unlocked choices, subnets per step, lr, KD."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ofa_nni.arch import ArchSpace
from ofa_nni.training import (
    PAPER_RECIPE,
    PHASE_NAMES,
    distillation_loss,
    learning_rate,
    locate_epoch,
    median_sample,
    plan_step,
    progressive_shrinking,
    sandwich_rule,
    soft_cross_entropy,
    step_seed,
    unlocked_choices,
    validation_subnets,
)

PAPER = ArchSpace()


def _values(arch, phase, suffix, draws=60):
    seen = set()
    for batch in range(draws):
        for sample in plan_step(arch, phase, step_seed(0, 0, batch)).samples:
            seen |= {value for label, value in sample.items() if label.endswith(suffix)}
    return seen


def test_paper_recipe_unlocks_choices_phase_by_phase():
    phases = progressive_shrinking(PAPER)
    assert [p.name for p in phases] == list(PHASE_NAMES)
    expected = {
        #          kernels     expands     depths    subnets/step
        "full": ((7,), (6,), (4,), 1),
        "kernel": ((3, 5, 7), (6,), (4,), 1),
        "depth1": ((3, 5, 7), (6,), (3, 4), 2),
        "depth2": ((3, 5, 7), (6,), (2, 3, 4), 2),
        "expand1": ((3, 5, 7), (4, 6), (2, 3, 4), 4),
        "expand2": ((3, 5, 7), (3, 4, 6), (2, 3, 4), 4),
    }
    for phase in phases:
        kernels, expands, depths, subnets = expected[phase.name]
        assert (phase.kernel_sizes, phase.expand_ratios, phase.depths) == (kernels, expands, depths), phase.name
        assert phase.subnets_per_step == subnets
        assert phase.resolutions == PAPER.resolutions  # elastic resolution in every phase
        # What is actually sampled matches what is unlocked.
        assert _values(PAPER, phase, ".kernel") == set(kernels)
        assert _values(PAPER, phase, ".expand") == set(expands)
        assert _values(PAPER, phase, ".depth") == set(depths)


def test_paper_recipe_epochs_lr_kd_and_channel_sorting():
    phases = {p.name: p for p in progressive_shrinking(PAPER)}
    assert [phases[n].epochs for n in PHASE_NAMES] == [180, 120, 25, 125, 25, 125]
    assert phases["kernel"].warmup_epochs == 5
    assert [phases[n].lr for n in PHASE_NAMES] == [2.6, 0.96, 0.08, 0.24, 0.08, 0.24]
    assert phases["full"].kd_ratio == 0 and all(phases[n].kd_ratio == 1.0 for n in PHASE_NAMES[1:])
    assert phases["expand1"].keep_expand_ratios == (6,)
    assert phases["expand2"].keep_expand_ratios == (4, 6)
    assert all(phases[n].keep_expand_ratios is None for n in PHASE_NAMES[:4])


def test_epochs_factor_and_batch_size_scaling():
    phases = progressive_shrinking(PAPER, epochs_factor=1 / 12, batch_size=64)
    assert [p.epochs for p in phases] == [15, 10, 2, 10, 2, 10]
    assert [p.warmup_epochs for p in phases] == [0, 0, 0, 0, 0, 0]
    assert phases[0].lr == pytest.approx(2.6 * 64 / 2048)
    tiny = progressive_shrinking(PAPER, epochs_factor=0.001)
    assert all(p.epochs == 1 for p in tiny)  # at least one epoch per phase


def test_overrides_and_subsets():
    phases = progressive_shrinking(PAPER, overrides={"kernel": {"epochs": 7, "lr": 0.5, "warmup_epochs": 2}},
                                   phases=("kernel", "depth1"))
    assert [(p.name, p.epochs, p.lr, p.warmup_epochs) for p in phases] == [("kernel", 7, 0.5, 2),
                                                                          ("depth1", 25, 0.08, 0)]
    with pytest.raises(ValueError, match="unknown phase.*'kernal'.*allowed"):
        progressive_shrinking(PAPER, phases=("kernal",))
    with pytest.raises(ValueError, match="order"):
        progressive_shrinking(PAPER, phases=("depth1", "kernel"))
    with pytest.raises(ValueError, match="unknown field.*'epoch'"):
        progressive_shrinking(PAPER, overrides={"kernel": {"epoch": 3}})
    with pytest.raises(ValueError, match="warmup_epochs"):
        progressive_shrinking(PAPER, overrides={"kernel": {"epochs": 2, "warmup_epochs": 2}})


def test_two_choice_space_top_two_equals_all():
    arch = ArchSpace(kernel_sizes=(3, 5), expand_ratios=(2, 3), depths=(1, 2), resolutions=(32, 40),
                     base_widths=(8, 8, 16, 24, 32, 48, 64), stage_strides=(2, 2, 2),
                     stage_activations=("relu", "hswish", "hswish"), stage_se=(False, True, True))
    phases = {p.name: p for p in progressive_shrinking(arch)}
    assert phases["depth1"].depths == phases["depth2"].depths == (1, 2)
    assert phases["full"].depths == (2,) and phases["full"].expand_ratios == (3,)


def test_step_plans_are_deterministic_and_share_the_resolution():
    phase = progressive_shrinking(PAPER)[-1]
    first = plan_step(PAPER, phase, step_seed(3, 5, 7))
    again = plan_step(PAPER, phase, step_seed(3, 5, 7))
    other = plan_step(PAPER, phase, step_seed(3, 5, 8))
    assert first == again and first != other
    assert len(first.samples) == 4 and first.distill_from == "teacher" and first.kd_ratio == 1.0
    assert len({s["resolution"] for s in first.samples}) == 1
    for sample in first.samples:
        PAPER.validate(sample)
    full = plan_step(PAPER, progressive_shrinking(PAPER)[0], step_seed(0, 0, 0))
    assert full.distill_from is None and len(full.samples) == 1
    assert {k: v for k, v in full.samples[0].items() if k != "resolution"} == {
        k: v for k, v in PAPER.max_sample().items() if k != "resolution"}


def test_sandwich_plan_has_largest_smallest_and_randoms():
    (phase,) = sandwich_rule(PAPER, epochs=3, lr=0.1, num_random=2)
    plan = plan_step(PAPER, phase, step_seed(0, 0, 0))
    assert plan.samples[0] == PAPER.max_sample() and plan.samples[1] == PAPER.min_sample()
    assert len(plan.samples) == 4 and plan.label_loss == (True, False, False, False)
    assert plan.distill_from == "first"


def test_include_smallest_trains_the_phase_smallest_subnet_every_step():
    plain = {p.name: p for p in progressive_shrinking(PAPER)}
    phases = {p.name: p for p in progressive_shrinking(
        PAPER, overrides={"depth2": {"include_smallest": True}, "expand2": {"include_smallest": True}})}
    for name, expected_expand in (("depth2", 6), ("expand2", 3)):
        phase = phases[name]
        for batch in range(5):
            plan = plan_step(PAPER, phase, step_seed(0, 1, batch))
            smallest, *others = plan.samples
            assert len(plan.samples) == phase.subnets_per_step and plan.distill_from == "teacher"
            # the smallest of what the phase unlocks (not of the whole space), at the step's resolution
            assert {k: v for k, v in smallest.items() if k.endswith(".kernel")} == dict.fromkeys(
                [k for k in PAPER.labels if k.endswith(".kernel")], 3)
            assert {v for k, v in smallest.items() if k.endswith(".expand")} == {expected_expand}
            assert {v for k, v in smallest.items() if k.endswith(".depth")} == {2}
            assert len({s["resolution"] for s in plan.samples}) == 1
            assert all(other != smallest for other in others)
        # the option draws one random subnet less; without it the plan is the recipe's, draw for draw
        assert plan_step(PAPER, plain[name], step_seed(0, 1, 0)) != plan_step(PAPER, phase, step_seed(0, 1, 0))
    assert plan_step(PAPER, plain["kernel"], step_seed(0, 1, 0)) == plan_step(PAPER, phases["kernel"],
                                                                                step_seed(0, 1, 0))
    with pytest.raises(ValueError, match="include_smallest needs subnets_per_step >= 2"):
        progressive_shrinking(PAPER, overrides={"kernel": {"include_smallest": True}})
    with pytest.raises(ValueError, match="include_smallest must be true or false"):
        progressive_shrinking(PAPER, overrides={"expand2": {"include_smallest": 1}})


def test_short_recipe_is_the_paper_recipe_with_faster_later_phases_and_the_smallest_subnet():
    paper = progressive_shrinking(PAPER, epochs_factor=1 / 16, batch_size=64)
    short = progressive_shrinking(PAPER, recipe="short", epochs_factor=1 / 16, batch_size=64)
    assert [p.name for p in short] == list(PHASE_NAMES)
    for p, s in zip(paper, short, strict=True):
        assert (s.epochs, s.warmup_epochs, s.subnets_per_step, s.kd_ratio) == (
            p.epochs, p.warmup_epochs, p.subnets_per_step, p.kd_ratio)
        assert (s.kernel_sizes, s.expand_ratios, s.depths) == (p.kernel_sizes, p.expand_ratios, p.depths)
        later = p.name in ("depth1", "depth2", "expand1", "expand2")
        assert s.include_smallest is later and not p.include_smallest
        assert s.lr == pytest.approx(paper[1].lr if later else p.lr)  # the kernel phase's 0.96 x 64 / 2048
    assert "include_smallest" not in paper[-1].to_dict() and short[-1].to_dict()["include_smallest"] is True
    with pytest.raises(ValueError, match=r"unknown recipe 'fast'; allowed: \['paper', 'short'\]"):
        progressive_shrinking(PAPER, recipe="fast")


def test_unlocked_choices_refuses_choices_outside_the_space():
    phase = progressive_shrinking(PAPER)[0]
    small = ArchSpace(kernel_sizes=(3, 5))
    with pytest.raises(ValueError, match="not among the space's choices"):
        unlocked_choices(small, phase)


def test_learning_rate_warmup_then_cosine_per_phase():
    phase = progressive_shrinking(PAPER, overrides={"kernel": {"epochs": 4, "warmup_epochs": 1, "lr": 1.0}},
                                  phases=("kernel",))[0]
    steps = 10
    warm = [learning_rate(phase, 0, b, steps) for b in range(steps)]
    assert warm == pytest.approx([(b + 1) / 10 for b in range(steps)])
    assert learning_rate(phase, 1, 0, steps) == pytest.approx(1.0)
    middle = learning_rate(phase, 2, 5, steps)  # halfway through the 30 cosine steps
    assert middle == pytest.approx(0.5)
    assert learning_rate(phase, 3, 9, steps) == pytest.approx(0.5 * (1 + math.cos(math.pi * 29 / 30)))
    lrs = [learning_rate(phase, e, b, steps) for e in range(1, 4) for b in range(steps)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))


def test_locate_epoch():
    phases = progressive_shrinking(PAPER, epochs_factor=1 / 12)  # 15, 10, 2, 10, 2, 10
    assert locate_epoch(phases, 0) == (0, 0)
    assert locate_epoch(phases, 14) == (0, 14)
    assert locate_epoch(phases, 15) == (1, 0)
    assert locate_epoch(phases, 27) == (3, 0)
    assert locate_epoch(phases, 48) == (5, 9)
    with pytest.raises(ValueError, match="past the schedule's 49 epochs"):
        locate_epoch(phases, 49)


def test_soft_cross_entropy_and_distillation():
    torch.manual_seed(0)
    logits, labels = torch.randn(8, 5), torch.randint(0, 5, (8,))
    one_hot = F.one_hot(labels, 5).float()
    assert soft_cross_entropy(logits, one_hot) == pytest.approx(float(F.cross_entropy(logits, labels)), rel=1e-6)
    teacher = torch.randn(8, 5, requires_grad=True)
    student = torch.randn(8, 5, requires_grad=True)
    loss = distillation_loss(student, teacher)
    expected = -(F.softmax(teacher, 1) * F.log_softmax(student, 1)).sum(1).mean()
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-6)
    loss.backward()
    assert teacher.grad is None and student.grad is not None  # the teacher is not trained by KD
    # Minimised when the student equals the teacher: the loss is then the teacher's entropy.
    same = distillation_loss(teacher.detach(), teacher)
    entropy = -(F.softmax(teacher, 1) * F.log_softmax(teacher, 1)).sum(1).mean()
    assert float(same) == pytest.approx(float(entropy), rel=1e-6)
    assert float(loss.detach()) > float(same)


def test_median_and_validation_subnets():
    median = median_sample(PAPER)
    assert {median[label] for label in PAPER.labels if label.endswith(".kernel")} == {5}
    assert {median[label] for label in PAPER.labels if label.endswith(".depth")} == {3}
    assert median["resolution"] == 176
    subnets = validation_subnets(PAPER, num_random=3, seed=1)
    assert list(subnets) == ["smallest", "median", "largest", "random0", "random1", "random2"]
    assert subnets == validation_subnets(PAPER, num_random=3, seed=1)
    assert len({PAPER.format(s) for s in subnets.values()}) == 6


def test_step_seed_is_a_pure_function():
    a = step_seed(1, 2, 3).integers(0, 1 << 30, 4)
    b = step_seed(1, 2, 3).integers(0, 1 << 30, 4)
    np.testing.assert_array_equal(a, b)
    assert PAPER_RECIPE["full"]["epochs"] == 180
