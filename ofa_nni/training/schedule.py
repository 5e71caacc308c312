"""Training schedules of an elastic supernet: OFA's progressive shrinking and BigNAS's sandwich rule.

A schedule is a tuple of :class:`Phase` s. Each phase unlocks some choices of the space, trains
for some epochs with its own learning rate (linear warm-up, then cosine decay to zero, restarted
per phase as OFA's per-phase runs do) and draws a fixed number of subnets per step whose gradients
are accumulated before one optimizer step. :func:`plan_step` turns (phase, step seed) into the
step's subnets; everything here is deterministic given the seed, so a resumed run draws exactly the
subnets the uninterrupted run would have drawn.

Progressive shrinking (Cai et al., ICLR 2020, Sec. 3.2 and Fig. 3/4)::

    full net   K max, E max, D max     1 subnet / step
    kernel     K all                   1
    depth1     D top two               2
    depth2     D all                   2
    expand1    E top two               4    (channels re-ordered by importance first)
    expand2    E all                   4    (channels re-ordered again, keeping trained sets)

OFA-ResNet50 (no elastic kernel) shrinks depth, then expand ratio, then width (the reference's
order for ``OFAResNets``): ``full, depth1, depth2, expand1, expand2, width1, width2``, the width phases
at the expand phases' settings (mit-han-lab published no separate ResNet recipe).

Resolution is elastic in every phase (one random resolution per step). From the kernel phase on,
the loss adds knowledge distillation from the full network trained in phase one (the teacher).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ofa_nni.arch import ArchSpace, Sample
from ofa_nni.errors import InvalidInputError
from ofa_nni.resnet_arch import ResNetArchSpace

__all__ = [
    "Phase",
    "SubnetStep",
    "PHASE_NAMES",
    "RESNET_PHASE_NAMES",
    "phase_names",
    "PAPER_RECIPE",
    "SHORT_RECIPE",
    "RECIPES",
    "PHASE_OVERRIDE_FIELDS",
    "PAPER_BATCH_SIZE",
    "progressive_shrinking",
    "sandwich_rule",
    "unlocked_choices",
    "plan_step",
    "learning_rate",
    "locate_epoch",
    "step_seed",
]

PHASE_NAMES = ("full", "kernel", "depth1", "depth2", "expand1", "expand2")
"""Progressive-shrinking phases, in order."""

RESNET_PHASE_NAMES = ("full", "depth1", "depth2", "expand1", "expand2", "width1", "width2")
"""Progressive-shrinking phases of an OFA-ResNet space, in order."""

_RECIPE_OF = {"width1": "expand1", "width2": "expand2"}  # the recipe entry a ResNet width phase uses
_RESNET_KERNELS = (3,)  # a ResNet's fixed 3x3 (the reference's ks_list)


def phase_names(arch: Any) -> tuple[str, ...]:
    """The progressive-shrinking phases of ``arch``'s kind of space, in order."""
    return RESNET_PHASE_NAMES if isinstance(arch, ResNetArchSpace) else PHASE_NAMES

PAPER_BATCH_SIZE = 2048
"""Batch size the paper's learning rates belong to (32 GPUs x 64 images)."""

PAPER_RECIPE: Mapping[str, Mapping[str, float]] = {
    # The paper's ImageNet recipe (../shared/ANCHORS.md; once-for-all's train_ofa_net.py):
    # epochs, warm-up epochs, learning rate at batch 2048, subnets per step.
    "full": {"epochs": 180, "warmup_epochs": 0, "lr": 2.6, "subnets_per_step": 1},
    "kernel": {"epochs": 120, "warmup_epochs": 5, "lr": 0.96, "subnets_per_step": 1},
    "depth1": {"epochs": 25, "warmup_epochs": 0, "lr": 0.08, "subnets_per_step": 2},
    "depth2": {"epochs": 125, "warmup_epochs": 0, "lr": 0.24, "subnets_per_step": 2},
    "expand1": {"epochs": 25, "warmup_epochs": 0, "lr": 0.08, "subnets_per_step": 4},
    "expand2": {"epochs": 125, "warmup_epochs": 0, "lr": 0.24, "subnets_per_step": 4},
}
"""OFA's progressive-shrinking recipe on ImageNet (learning rates for batch 2048)."""

SHORT_RECIPE: Mapping[str, Mapping[str, Any]] = {
    **PAPER_RECIPE,
    **{
        name: {**PAPER_RECIPE[name], "lr": PAPER_RECIPE["kernel"]["lr"], "include_smallest": True}
        for name in ("depth1", "depth2", "expand1", "expand2")
    },
}
"""The paper's recipe for runs at a small fraction of its epochs (the demo's 1/16): the depth and
expand phases at the kernel phase's learning rate (the recipe's 0.08/0.24 are fine-tuning rates for
25-125-epoch phases) and with the smallest subnet of the phase in every step (``include_smallest``).
On digits at 1/16 of the epochs it lifts the smallest subnet from 0.85 to 0.97-0.99 held-out
accuracy (benchmarks/results/ps_vs_random_oneshot.md)."""

RECIPES: Mapping[str, Mapping[str, Mapping[str, Any]]] = {"paper": PAPER_RECIPE, "short": SHORT_RECIPE}
"""Named progressive-shrinking presets (``progressive_shrinking(recipe=...)``, YAML ``strategy.recipe``)."""

PHASE_OVERRIDE_FIELDS = ("epochs", "warmup_epochs", "lr", "subnets_per_step", "kd_ratio", "include_smallest")
"""Phase fields a recipe may be overridden in, per phase (``overrides=``, YAML ``strategy.phases``)."""


@dataclasses.dataclass(frozen=True)
class Phase:
    """One phase of a supernet training schedule.

    Attributes:
        name: One of :data:`PHASE_NAMES`, or ``"sandwich"``.
        epochs: Training epochs of the phase (>= 1).
        lr: Peak learning rate (after warm-up) for the batch size actually used.
        subnets_per_step: Subnets whose gradients are accumulated per optimizer step.
        kernel_sizes, expand_ratios, depths, resolutions: The choices unlocked in this phase.
        warmup_epochs: Linear warm-up from 0 to ``lr`` (counted inside ``epochs``).
        kd_ratio: Weight of the distillation loss from the teacher (OFA: 1.0 after phase one).
        sandwich: BigNAS's sandwich rule: the step's subnets are the largest, the smallest and
            random ones; the largest learns from labels, the others from its soft labels.
        include_smallest: Progressive shrinking with the smallest subnet of the phase's unlocked
            choices as one of every step's subnets (the others drawn uniformly as in OFA). Uniform
            draws reach the smallest configuration almost never, and the paper's recipe unlocks
            the smallest widths only in its last phase; this trains it every step of the phases
            that use it (borrowed from BigNAS's sandwich rule; needs ``subnets_per_step >= 2``).
        keep_expand_ratios: If set, channels are re-ordered by importance at the start of the phase,
            keeping the channel sets of these (already trained) expand ratios.
        width_mults: The width multipliers unlocked (OFA-ResNet spaces; empty for the others).
    """

    name: str
    epochs: int
    lr: float
    subnets_per_step: int
    kernel_sizes: tuple[int, ...]
    expand_ratios: tuple[float, ...]
    depths: tuple[int, ...]
    resolutions: tuple[int, ...]
    warmup_epochs: int = 0
    kd_ratio: float = 0.0
    sandwich: bool = False
    include_smallest: bool = False
    keep_expand_ratios: tuple[float, ...] | None = None
    width_mults: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise InvalidInputError(f"phase {self.name!r}: epochs must be an int >= 1, got {self.epochs!r}")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise InvalidInputError(
                f"phase {self.name!r}: warmup_epochs must be in [0, epochs={self.epochs}), got {self.warmup_epochs!r}"
            )
        if not (isinstance(self.lr, (int, float)) and self.lr > 0 and math.isfinite(self.lr)):
            raise InvalidInputError(f"phase {self.name!r}: lr must be a positive number, got {self.lr!r}")
        minimum = 2 if self.sandwich else 1
        if isinstance(self.subnets_per_step, bool) or not isinstance(self.subnets_per_step, int) or \
                self.subnets_per_step < minimum:
            raise InvalidInputError(
                f"phase {self.name!r}: subnets_per_step must be an int >= {minimum}, got {self.subnets_per_step!r}"
            )
        if not isinstance(self.include_smallest, bool):
            raise InvalidInputError(
                f"phase {self.name!r}: include_smallest must be true or false, got {self.include_smallest!r}"
            )
        if self.include_smallest and (self.sandwich or self.subnets_per_step < 2):
            raise InvalidInputError(
                f"phase {self.name!r}: include_smallest needs subnets_per_step >= 2 (the smallest subnet and at "
                f"least one random one) and no sandwich rule; got subnets_per_step={self.subnets_per_step}"
                + (", sandwich" if self.sandwich else "")
            )
        if not (isinstance(self.kd_ratio, (int, float)) and self.kd_ratio >= 0):
            raise InvalidInputError(f"phase {self.name!r}: kd_ratio must be >= 0, got {self.kd_ratio!r}")
        for field in ("kernel_sizes", "expand_ratios", "depths", "resolutions"):
            if not getattr(self, field):
                raise InvalidInputError(f"phase {self.name!r}: {field} must not be empty")

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (stored in checkpoints, compared on resume)."""
        data = dataclasses.asdict(self)
        if not self.include_smallest:
            del data["include_smallest"]  # the form checkpoints had before the option existed
        if not self.width_mults:
            del data["width_mults"]  # MobileNet phases: the form their checkpoints always had
        return {key: list(value) if isinstance(value, tuple) else value for key, value in data.items()}


@dataclasses.dataclass(frozen=True)
class SubnetStep:
    """What one optimizer step trains.

    Attributes:
        samples: The subnets, in the order they run (all at the step's resolution for progressive
            shrinking; each at its own resolution for the sandwich rule).
        label_loss: Per subnet, whether it learns from the labels (else only from soft labels).
        distill_from: ``"teacher"`` (the frozen full network), ``"first"`` (the step's first
            subnet, BigNAS's inplace distillation) or ``None``.
        kd_ratio: Weight of the distillation term for the subnets it applies to.
    """

    samples: tuple[Sample, ...]
    label_loss: tuple[bool, ...]
    distill_from: str | None
    kd_ratio: float


def _top(values: Sequence[Any], count: int) -> tuple[Any, ...]:
    return tuple(sorted(values)[-count:])


def progressive_shrinking(
    arch: ArchSpace | ResNetArchSpace,
    *,
    recipe: str = "paper",
    epochs_factor: float = 1.0,
    batch_size: int = PAPER_BATCH_SIZE,
    kd_ratio: float = 1.0,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    phases: Sequence[str] = PHASE_NAMES,
) -> tuple[Phase, ...]:
    """OFA's progressive-shrinking schedule for ``arch``, from a named recipe of :data:`RECIPES`
    (``"paper"``: the paper's; ``"short"``: :data:`SHORT_RECIPE`, for a small fraction of its epochs).

    Epochs are the recipe's times ``epochs_factor`` (rounded, at least 1; warm-up likewise, kept
    below the phase's epochs); learning rates are the recipe's scaled linearly to ``batch_size``
    (the recipe's are for :data:`PAPER_BATCH_SIZE`). ``overrides`` replaces fields per phase, e.g.
    ``{"kernel": {"epochs": 3, "lr": 0.05}}`` (allowed: ``epochs``, ``warmup_epochs``, ``lr``,
    ``subnets_per_step``, ``kd_ratio``, ``include_smallest``). ``phases`` selects a subset, in
    order (e.g. without ``full`` to continue from a trained full network; distillation then needs
    a teacher).

    "Top two" phases (depth1, expand1) unlock the two largest choices; for a space with two
    choices they equal the second step.
    """
    if not isinstance(recipe, str) or recipe not in RECIPES:
        raise InvalidInputError(f"unknown recipe {recipe!r}; allowed: {list(RECIPES)}")
    if not (isinstance(epochs_factor, (int, float)) and epochs_factor > 0):
        raise InvalidInputError(f"epochs_factor must be a positive number, got {epochs_factor!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidInputError(f"batch_size must be a positive int, got {batch_size!r}")
    names = phase_names(arch)
    if isinstance(arch, ResNetArchSpace) and tuple(phases) == PHASE_NAMES:
        phases = names  # the default: every phase of this kind of space
    unknown = [name for name in phases if name not in names]
    if unknown:
        raise InvalidInputError(f"unknown phase(s) {unknown}; allowed: {list(names)}")
    if list(phases) != [name for name in names if name in phases]:
        raise InvalidInputError(f"phases must keep the order {list(names)}, got {list(phases)}")
    overrides = dict(overrides or {})
    for name, changes in overrides.items():
        if name not in phases:
            raise InvalidInputError(f"overrides for unknown or unused phase {name!r}; phases: {list(phases)}")
        bad = [key for key in changes if key not in PHASE_OVERRIDE_FIELDS]
        if bad:
            raise InvalidInputError(f"overrides[{name!r}]: unknown field(s) {bad}; allowed: "
                                    f"{list(PHASE_OVERRIDE_FIELDS)}")

    expands, depths = arch.expand_ratios, arch.depths
    widths: dict[str, tuple[float, ...]] = {}
    if isinstance(arch, ResNetArchSpace):
        kernels: tuple[int, ...] = _RESNET_KERNELS
        all_widths = arch.width_mults
        unlocked = {
            "full": (kernels, _top(expands, 1), _top(depths, 1)),
            "depth1": (kernels, _top(expands, 1), _top(depths, 2)),
            "depth2": (kernels, _top(expands, 1), depths),
            "expand1": (kernels, _top(expands, 2), depths),
            "expand2": (kernels, expands, depths),
            "width1": (kernels, expands, depths),
            "width2": (kernels, expands, depths),
        }
        widths = {name: _top(all_widths, 1) for name in unlocked}
        widths.update(width1=_top(all_widths, 2), width2=all_widths)
    else:
        kernels = arch.kernel_sizes
        unlocked = {
            "full": (_top(kernels, 1), _top(expands, 1), _top(depths, 1)),
            "kernel": (kernels, _top(expands, 1), _top(depths, 1)),
            "depth1": (kernels, _top(expands, 1), _top(depths, 2)),
            "depth2": (kernels, _top(expands, 1), depths),
            "expand1": (kernels, _top(expands, 2), depths),
            "expand2": (kernels, expands, depths),
        }
    keep = {"expand1": _top(expands, 1), "expand2": _top(expands, 2)}
    result = []
    for name in phases:
        settings = RECIPES[recipe][_RECIPE_OF.get(name, name)]
        epochs = max(1, round(settings["epochs"] * epochs_factor))
        warmup = min(round(settings["warmup_epochs"] * epochs_factor), epochs - 1)
        fields: dict[str, Any] = {
            "epochs": epochs,
            "warmup_epochs": warmup,
            "lr": settings["lr"] * batch_size / PAPER_BATCH_SIZE,
            "subnets_per_step": int(settings["subnets_per_step"]),
            "kd_ratio": 0.0 if name == "full" else float(kd_ratio),
            "include_smallest": bool(settings.get("include_smallest", False)),
        }
        fields.update(overrides.get(name, {}))
        kernel_sizes, expand_ratios, depth_choices = unlocked[name]
        result.append(Phase(
            name=name,
            kernel_sizes=tuple(kernel_sizes),
            expand_ratios=tuple(expand_ratios),
            depths=tuple(depth_choices),
            resolutions=arch.resolutions,
            keep_expand_ratios=keep.get(name),
            width_mults=widths.get(name, ()),
            **fields,
        ))
    return tuple(result)


def sandwich_rule(
    arch: ArchSpace | ResNetArchSpace,
    *,
    epochs: int,
    lr: float,
    num_random: int = 2,
    warmup_epochs: int = 0,
) -> tuple[Phase, ...]:
    """BigNAS's sandwich rule (Yu et al., ECCV 2020) as a one-phase schedule.

    Each step trains the largest subnet (labels), the smallest and ``num_random`` random subnets
    (soft labels of the largest, "inplace distillation"), all choices unlocked from the start.
    """
    if isinstance(num_random, bool) or not isinstance(num_random, int) or num_random < 0:
        raise InvalidInputError(f"num_random must be an int >= 0, got {num_random!r}")
    return (Phase(
        name="sandwich",
        epochs=epochs,
        lr=lr,
        subnets_per_step=2 + num_random,
        kernel_sizes=_RESNET_KERNELS if isinstance(arch, ResNetArchSpace) else arch.kernel_sizes,
        expand_ratios=arch.expand_ratios,
        depths=arch.depths,
        resolutions=arch.resolutions,
        width_mults=arch.width_mults if isinstance(arch, ResNetArchSpace) else (),
        warmup_epochs=warmup_epochs,
        kd_ratio=1.0,
        sandwich=True,
    ),)


def _resnet_unlocked(arch: ResNetArchSpace, phase: Phase) -> dict[str, tuple[Any, ...]]:
    """:func:`unlocked_choices` of a ResNet space: its depth labels count blocks (base + extra) and the
    stem's residual conv is elastic once more than one depth is unlocked."""
    stages = range(arch.num_stages)
    choices: dict[str, tuple[Any, ...]] = {arch.expand_label(s, b): phase.expand_ratios for s, b in arch.blocks}
    choices[arch.STEM_DEPTH_LABEL] = arch.stem_depths if len(phase.depths) > 1 else arch.stem_depths[-1:]
    choices.update({arch.depth_label(s): tuple(arch.base_depths[s] + d for d in phase.depths) for s in stages})
    widths = {arch.STEM_MID_WIDTH_LABEL, arch.STEM_WIDTH_LABEL} | {arch.width_label(s) for s in stages}
    choices.update({label: phase.width_mults for label in widths})
    choices[arch.RESOLUTION_LABEL] = phase.resolutions
    for label in arch.labels:
        outside = [value for value in choices[label] if value not in arch.choices(label)]
        if outside or not choices[label]:
            raise InvalidInputError(f"phase {phase.name!r} unlocks {outside or 'nothing'} for {label!r}; the space's "
                                    f"choices are {list(arch.choices(label))}")
    return {label: choices[label] for label in arch.labels}


def unlocked_choices(arch: ArchSpace | ResNetArchSpace, phase: Phase) -> dict[str, tuple[Any, ...]]:
    """Per label of ``arch``, the choices ``phase`` samples from."""
    if isinstance(arch, ResNetArchSpace):
        return _resnet_unlocked(arch, phase)
    by_kind = {
        ".kernel": phase.kernel_sizes,
        ".expand": phase.expand_ratios,
        ".depth": phase.depths,
    }
    fixed_depth_labels = {arch.depth_label(s) for s in range(arch.num_stages)
                          if arch.fixed_depths and arch.fixed_depths[s] is not None}
    choices: dict[str, tuple[Any, ...]] = {}
    for label in arch.labels:
        if label in fixed_depth_labels:  # a stage of fixed depth (ProxylessNAS's last) has nothing to unlock
            choices[label] = arch.choices(label)
            continue
        allowed = next((values for suffix, values in by_kind.items() if label.endswith(suffix)), phase.resolutions)
        outside = [value for value in allowed if value not in arch.choices(label)]
        if outside:
            raise InvalidInputError(
                f"phase {phase.name!r} unlocks {outside} for {label!r}, not among the space's "
                f"choices {list(arch.choices(label))}"
            )
        choices[label] = tuple(allowed)
    return choices


def step_seed(seed: int, epoch: int, batch: int) -> np.random.Generator:
    """The generator of one step's subnets: a function of (seed, global epoch, batch index) only,
    so every data-parallel rank and every resumed run draws the same subnets."""
    return np.random.default_rng([int(seed), int(epoch), int(batch)])


def _draw(choices: Mapping[str, tuple[Any, ...]], rng: np.random.Generator) -> Sample:
    return {label: values[int(rng.integers(len(values)))] for label, values in choices.items()}


def plan_step(arch: ArchSpace | ResNetArchSpace, phase: Phase, rng: np.random.Generator) -> SubnetStep:
    """The subnets one step of ``phase`` trains (see :class:`SubnetStep`)."""
    choices = unlocked_choices(arch, phase)
    if phase.sandwich:
        largest = {label: max(values) for label, values in choices.items()}
        smallest = {label: min(values) for label, values in choices.items()}
        randoms = [_draw(choices, rng) for _ in range(phase.subnets_per_step - 2)]
        samples = (largest, smallest, *randoms)
        return SubnetStep(samples=samples, label_loss=(True,) + (False,) * (len(samples) - 1),
                          distill_from="first", kd_ratio=phase.kd_ratio)
    # OFA: one resolution per step (per batch), shared by every subnet of the step.
    resolution = phase.resolutions[int(rng.integers(len(phase.resolutions)))]
    draws = [_draw(choices, rng) for _ in range(phase.subnets_per_step - int(phase.include_smallest))]
    if phase.include_smallest:
        draws.insert(0, {label: min(values) for label, values in choices.items()})
    samples = tuple({**draw, ArchSpace.RESOLUTION_LABEL: resolution} for draw in draws)
    return SubnetStep(samples=samples, label_loss=(True,) * len(samples),
                      distill_from="teacher" if phase.kd_ratio > 0 else None, kd_ratio=phase.kd_ratio)


def learning_rate(phase: Phase, epoch_in_phase: int, batch: int, steps_per_epoch: int) -> float:
    """OFA's per-phase learning rate: linear warm-up over ``warmup_epochs``, then cosine to zero
    over the remaining epochs, updated every step."""
    if steps_per_epoch < 1:
        raise InvalidInputError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    step = epoch_in_phase * steps_per_epoch + batch
    warmup_steps = phase.warmup_epochs * steps_per_epoch
    if step < warmup_steps:
        return phase.lr * (step + 1) / warmup_steps
    total = (phase.epochs - phase.warmup_epochs) * steps_per_epoch
    progress = min(step - warmup_steps, total) / total
    return 0.5 * phase.lr * (1.0 + math.cos(math.pi * progress))


def locate_epoch(phases: Sequence[Phase], epoch: int) -> tuple[int, int]:
    """``(phase index, epoch within the phase)`` of global epoch ``epoch`` (counted from 0)."""
    if epoch < 0:
        raise InvalidInputError(f"epoch must be >= 0, got {epoch}")
    start = 0
    for index, phase in enumerate(phases):
        if epoch < start + phase.epochs:
            return index, epoch - start
        start += phase.epochs
    raise InvalidInputError(f"epoch {epoch} is past the schedule's {start} epochs")
