"""One EvolutionSettings for the five entry points (issue 12): validated once, the paper's defaults,
keyword arguments (and NNI classArgs) mapping onto its fields one to one."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import TINY_SPACE_KWARGS

from ofa_nni import AnalyticCostModel, ArchSpace
from ofa_nni.errors import InvalidInputError
from ofa_nni.search import PAPER_SETTINGS, EvolutionSearch, EvolutionSettings, ParetoSearch

TINY = ArchSpace(**TINY_SPACE_KWARGS)
COSTS = {"macs": AnalyticCostModel(TINY).macs}
FIELDS = [field.name for field in dataclasses.fields(EvolutionSettings)]


def test_defaults_are_the_papers() -> None:
    """OFA's EvolutionFinder (Cai et al., ICLR 2020, App. A): population 100, 500 generations, parent
    ratio 0.25, mutation ratio 0.5, mutation probability 0.1, resolution mutation probability 0.5."""
    assert PAPER_SETTINGS == EvolutionSettings()
    assert (PAPER_SETTINGS.population_size, PAPER_SETTINGS.generations, PAPER_SETTINGS.parent_ratio,
            PAPER_SETTINGS.mutation_ratio, PAPER_SETTINGS.mutation_prob,
            PAPER_SETTINGS.resolution_mutation_prob) == (100, 500, 0.25, 0.5, 0.1, 0.5)
    assert PAPER_SETTINGS.num_parents == 25 and PAPER_SETTINGS.num_mutations == 50


@pytest.mark.parametrize(
    "field, value, allowed",
    [
        ("population_size", 1, "an integer >= 2"),
        ("population_size", 2.5, "an integer >= 2"),
        ("population_size", True, "an integer >= 2"),
        ("generations", -1, "an integer >= 0"),
        ("parent_ratio", 0.0, r"\(0, 1\]"),
        ("mutation_ratio", 1.5, r"\[0, 1\]"),
        ("mutation_prob", float("nan"), r"\[0, 1\]"),
        ("resolution_mutation_prob", "high", r"\[0, 1\]"),
        ("max_evaluations", 0, "a positive integer or None"),
        ("seed", -3, "an integer >= 0 or None"),
    ],
)
def test_bad_values_name_the_field_and_the_range(field: str, value: object, allowed: str) -> None:
    with pytest.raises(InvalidInputError, match=rf"^{field} must be (in )?{allowed}, got"):
        EvolutionSettings(**{field: value})  # type: ignore[arg-type]


def test_keyword_arguments_map_onto_the_fields() -> None:
    settings = EvolutionSettings.build(population_size=30.0, generations=4, seed=7)
    assert settings == dataclasses.replace(PAPER_SETTINGS, population_size=30, generations=4, seed=7)
    assert type(settings.population_size) is int
    with pytest.raises(InvalidInputError, match=r"unknown evolution setting\(s\) \['generation'\]; allowed"):
        EvolutionSettings.build(generation=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.generations = 5  # type: ignore[misc]


def test_the_core_engines_take_the_settings_or_their_fields() -> None:
    settings = EvolutionSettings(population_size=12, generations=2, parent_ratio=0.5, seed=3)
    by_object = EvolutionSearch(arch_space=TINY, costs=COSTS, targets={"macs": 1e9}, settings=settings)
    by_keyword = EvolutionSearch(arch_space=TINY, costs=COSTS, targets={"macs": 1e9}, population_size=12,
                                 generations=2, parent_ratio=0.5, seed=3)
    assert by_object.settings == by_keyword.settings == settings
    assert by_object.parents_size == 6
    pareto = ParetoSearch(arch_space=TINY, costs=COSTS, settings=settings, generations=1)
    assert pareto.settings == dataclasses.replace(settings, generations=1)
    with pytest.raises(InvalidInputError, match="mutation_prob must be in"):
        EvolutionSearch(arch_space=TINY, costs=COSTS, targets={"macs": 1e9}, settings=settings, mutation_prob=2)


def test_the_strategies_map_onto_the_same_settings() -> None:
    from nnictl_experiment import TINY_SPEC

    from strategies.evolution import OFAEvolution
    from strategies.nni_tuner import TUNER_SETTINGS, OFAEvolutionTuner
    from strategies.optuna_sampler import SAMPLER_SETTINGS, OFAEvolutionSampler

    assert OFAEvolution().settings == PAPER_SETTINGS
    assert OFAEvolution(population_size=6, seed=2).settings == EvolutionSettings.build(population_size=6, seed=2)
    # NNI classArgs are the fields, one to one; the tuner's defaults differ in size only (real trials).
    assert TUNER_SETTINGS == dataclasses.replace(PAPER_SETTINGS, population_size=16, generations=100)
    class_args = {"population_size": 8, "generations": 3, "parent_ratio": 0.5, "mutation_ratio": 0.25,
                  "mutation_prob": 0.2, "resolution_mutation_prob": 0.4, "max_evaluations": 50, "seed": 1}
    assert sorted(class_args) == sorted(FIELDS)
    assert OFAEvolutionTuner(space=TINY_SPEC, **class_args).settings == EvolutionSettings(**class_args)
    with pytest.raises(InvalidInputError, match="unknown evolution setting"):
        OFAEvolutionTuner(space=TINY_SPEC, population=8)
    # Optuna keyword arguments: num_parents is parent_ratio * population_size.
    sampler = OFAEvolutionSampler(arch_space=TINY, population_size=40, num_parents=10, mutation_prob=0.2, seed=5)
    assert sampler.settings == dataclasses.replace(SAMPLER_SETTINGS, population_size=40, parent_ratio=0.25,
                                                   mutation_prob=0.2, seed=5)
    assert sampler.num_parents == 10
    assert OFAEvolutionSampler(arch_space=TINY).settings == SAMPLER_SETTINGS
    assert SAMPLER_SETTINGS.num_parents == 12 and SAMPLER_SETTINGS.population_size == 64
    assert OFAEvolutionSampler(arch_space=TINY, settings=PAPER_SETTINGS).settings == PAPER_SETTINGS
    with pytest.raises(InvalidInputError, match="num_parents must be a positive integer"):
        OFAEvolutionSampler(arch_space=TINY, num_parents=0)
