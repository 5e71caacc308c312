"""``EvolutionSettings``: OFA's evolution settings, declared and checked once for every entry point.

The engines (:class:`~ofa_nni.search.EvolutionSearch`, :class:`~ofa_nni.search.ParetoSearch`), the NNI
strategy (``strategies.OFAEvolution``), the nnictl tuner (``strategies.nni_tuner.OFAEvolutionTuner``,
whose ``classArgs`` map one to one onto these fields) and the Optuna sampler
(``strategies.OFAEvolutionSampler``, whose keyword arguments map onto them) all take one of these.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ofa_nni._utils import replace_settings
from ofa_nni.errors import InvalidInputError

__all__ = ["EvolutionSettings", "PAPER_SETTINGS"]


def _is_whole(value: Any) -> bool:
    """An integer, or a float with an integral value (30.0 reads as 30); never a bool."""
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (int, np.integer)):
        return True
    return isinstance(value, (float, np.floating)) and bool(np.isfinite(value)) and float(value).is_integer()


@dataclasses.dataclass(frozen=True)
class EvolutionSettings:
    """OFA's regularised evolution (Cai et al., ICLR 2020, Sec. 3.3 and App. A; ``EvolutionFinder``
    of mit-han-lab/once-for-all). The defaults are the paper's: population 100, 500 generations,
    parent ratio 0.25, mutation ratio 0.5, mutation probability 0.1, resolution mutation
    probability 0.5. ``benchmarks/results/search_vs_ofa.md`` compares the engine with
    ``EvolutionFinder`` at these settings. Entry points whose own default differs say why:

    * ``OFAEvolutionTuner`` (one real NNI trial per candidate): population 16, 100 generations, a
      bound on the trials an experiment needs (the experiment's ``maxTrialNumber`` usually ends the
      search first); no benchmark compares it with the paper's.
    * ``OFAEvolutionSampler`` (one Optuna trial per proposal): population 64 and 12 parents
      (``parent_ratio`` 0.1875), the settings ``benchmarks/bench_optuna_samplers.py`` was run with
      (``benchmarks/results/optuna_samplers.md``).

    Args:
        population_size: Children scored per generation (and per target); >= 2.
        generations: Generations after the initial population; >= 0.
        parent_ratio: Share of the population kept as parents, in (0, 1] (``EvolutionSearch``;
            ``ParetoSearch`` chooses parents by tournament).
        mutation_ratio: Share of the children made by mutation (the rest by crossover), in [0, 1].
        mutation_prob: Probability to redraw each block (kernel and expand together) and each
            stage's depth, in [0, 1].
        resolution_mutation_prob: Probability to redraw the resolution, in [0, 1].
        max_evaluations: Stop after this many distinct subnets are scored (the query budget); None:
            no limit.
        seed: Seed of the search's random generator (None: fresh entropy).

    Raises:
        InvalidInputError: naming the field and its allowed range, for a value out of range.
    """

    population_size: int = 100
    generations: int = 500
    parent_ratio: float = 0.25
    mutation_ratio: float = 0.5
    mutation_prob: float = 0.1
    resolution_mutation_prob: float = 0.5
    max_evaluations: int | None = None
    seed: int | None = 0

    def __post_init__(self) -> None:
        def integer(name: str, low: int, allowed: str, *, optional: bool = False) -> None:
            value = getattr(self, name)
            if optional and value is None:
                return
            if not _is_whole(value) or value < low:
                raise InvalidInputError(f"{name} must be {allowed}, got {value!r}")
            object.__setattr__(self, name, int(value))

        def share(name: str, *, open_low: bool = False) -> None:
            value = getattr(self, name)
            allowed = "(0, 1]" if open_low else "[0, 1]"
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise InvalidInputError(f"{name} must be in {allowed}, got {value!r}") from None
            if isinstance(value, (bool, np.bool_)) or not (0.0 < number <= 1.0 if open_low else 0.0 <= number <= 1.0):
                raise InvalidInputError(f"{name} must be in {allowed}, got {value!r}")
            object.__setattr__(self, name, number)

        integer("population_size", 2, "an integer >= 2")
        integer("generations", 0, "an integer >= 0")
        share("parent_ratio", open_low=True)
        share("mutation_ratio")
        share("mutation_prob")
        share("resolution_mutation_prob")
        integer("max_evaluations", 1, "a positive integer or None", optional=True)
        integer("seed", 0, "an integer >= 0 or None", optional=True)

    @property
    def num_parents(self) -> int:
        """Parents kept per target: ``parent_ratio * population_size``, rounded, at least 1."""
        return max(1, int(round(self.parent_ratio * self.population_size)))

    @property
    def num_mutations(self) -> int:
        """Children made by mutation per population (the rest by crossover)."""
        return int(round(self.mutation_ratio * self.population_size))

    @classmethod
    def build(cls, settings: EvolutionSettings | None = None, **overrides: Any) -> EvolutionSettings:
        """``settings`` (default: the paper's) with keyword ``overrides`` of its fields: how the entry
        points map their keyword arguments (and NNI ``classArgs``) onto one settings object."""
        return replace_settings(cls, settings, overrides, what="evolution")

    def as_dict(self) -> dict[str, Any]:
        """The fields as plain JSON-able values (what a search's state records)."""
        return dataclasses.asdict(self)


PAPER_SETTINGS = EvolutionSettings()
"""The paper's settings (Cai et al., ICLR 2020, App. A), the defaults of every field."""
