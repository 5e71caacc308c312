"""OFA's evolutionary search as an Optuna sampler (Cai et al., ICLR 2020, Sec. 3.3).

:class:`OFAEvolutionSampler` proposes whole subnets of an OFA search space, one per trial, with the
core's search engine (:class:`ofa_nni.search.EvolutionSearch`: mutation and crossover of the best
subnets found so far, candidates canonicalised so that no trial is spent on a subnet already
tried, optional repair to known cost budgets). The Optuna search space is the space's labels as
categorical parameters; :func:`suggest_sample` suggests them all::

    space = OFAMobileNetV3Space()
    cost_model = space.cost_model

    def objective(trial):
        sample = suggest_sample(trial, space)         # every label; user attr "arch" is set
        set_constraints(trial, {"macs": cost_model.macs(sample) - 300e6})   # <= 0 is feasible
        return evaluate(space.freeze(sample))

    study = optuna.create_study(direction="maximize", sampler=OFAEvolutionSampler(arch_space=space, seed=0))
    study.optimize(objective, n_trials=200)

The sampler keeps Optuna's sampler contract (``tests/test_optuna_sampler.py`` runs Optuna's shared
sampler test cases, ``optuna.testing.pytest_samplers``, on it). Its relative search space is the
labels the study suggests: those every COMPLETE trial suggested with the space's choices, as Optuna's
relative samplers infer theirs. Every other parameter -- a learning rate, or one that only shares a
label's name, say ``resolution`` as an int -- is the fallback ``RandomSampler``'s (seeded with
``seed``), so a study without the labels gets exactly RandomSampler's values and no proposal. All
labels of a trial come from one proposed subnet, those of a study's first trials too. Labels a trial
gets elsewhere -- fixed by ``optuna.samplers.PartialFixedSampler``, or given to
``study.enqueue_trial`` -- are set in the proposal before it is deduplicated and claimed, so that no
trial repeats a subnet with them either. A COMPLETE trial that suggested only some of the labels is
skipped (no parent, no data for the surrogate), with one warning. ``reseed_rng()`` reseeds both the
proposals and the fallback.

The sampler is stateless across processes: every proposal rebuilds the population from
``study.get_trials()`` (finished trials are immutable, so their decoded parameters are cached by
trial id), so any number of workers can share one RDB or journal storage. Subnets of trials that
are RUNNING or WAITING in other workers are never proposed again; each proposal is claimed at once
in the trial's system attribute ``ofa_nni:arch`` and checked against the other trials after the
claim, so two workers proposing at the same moment do not both keep the same subnet (the older
trial keeps it, or the one that decided first). A trial that loses its claim a few times in a row
(workers that rank the same candidates alike meet on each next pick) claims random new subnets
instead until one is its own. The engine's random generator is seeded from the sampler seed and the trial
number, so a sequential study is reproducible and concurrent workers draw different candidates.

A worker that dies mid-trial (``kill -9``, the OOM killer, a preempted node) loses nothing else:
finished trials are in the storage and the sampler keeps no state, so a restarted worker continues
the search. Its trial stays RUNNING, though; with Optuna's heartbeat and retry callback the next
worker to start a trial marks it FAIL and queues its subnet again (a new trial with the same
parameters; ``system_attrs["failed_trial"]`` names the original)::

    storage = optuna.storages.RDBStorage(
        url, heartbeat_interval=60, grace_period=120,
        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
    )
    study.optimize(objective, callbacks=[MaxTrialsCallback(n, states=(TrialState.COMPLETE,))])

The retried trial inherits the dead one's system attributes, constraints set before the kill
included (same subnet, same values; ``set_constraint`` keeps them with a warning).
``tests/test_reliability.py`` kills a worker this way and checks the resumed study.

Selection follows the study: values are read in the study's directions; single-objective studies
rank trials by value, multi-objective ones by NSGA-II's non-dominated sorting and crowding distance
(:func:`ofa_nni.search.rank_and_crowding`, the ranking ParetoSearch selects by). Constraints
are Optuna's (``trial.set_constraint`` in Optuna 5, the list-style ``constraints`` system attribute
that the older ``constraints_func`` writes, which this sampler also accepts): a feasible trial
ranks above every infeasible one, infeasible ones by total violation (Deb's rule, as NSGA-II).
Constraints known in advance as cost callables (``costs`` and ``budgets``, e.g. the analytic MACs)
are met by construction: candidates are repaired before they are proposed.

With a ``predictor`` (a callable on ``(n, L)`` index arrays, e.g. a trained accuracy predictor of
:mod:`ofa_nni.accuracy`), each proposal pre-screens ``prescreen`` candidates and proposes the one
predicted best, so trials are spent only on promising subnets. The default, ``predictor="ridge"``,
fits ridge regression on the one-hot features of the finished trials at every proposal (a surrogate
retrained between proposals, as DyNAS-T/LINAS do between generations) and predicts each objective
and each observed constraint with it; ``predictor=None`` is plain evolution. In
``benchmarks/bench_optuna_samplers.py`` the ridge surrogate is what puts the sampler ahead of
GPSampler at 200 trials (plain evolution is 0.002 behind there) at less overhead than TPE.

The module also writes what optuna-dashboard shows: :func:`set_constraints` stores constraints in
both formats (the dashboard 0.21 only shows the list-style one), and :func:`publish_to_dashboard`
uploads the Pareto plot and the chosen subnet's summary as artifacts and notes.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from ofa_nni._deprecation import RenamedAttribute, renamed_keywords
from ofa_nni.arch import ArchSpace, ChoiceSpace, Sample
from ofa_nni.costs import cost_model_for
from ofa_nni.errors import InvalidInputError
from ofa_nni.plots import ParetoPanel, pareto_plot
from ofa_nni.ridge import fit_ridge
from ofa_nni.search import (
    ArrayFn,
    EvolutionSearch,
    EvolutionSettings,
    canonical_indices,
    pareto_mask,
    rank_and_crowding,
)

__all__ = [
    "OFAEvolutionSampler",
    "optuna_search_space",
    "suggest_sample",
    "trial_sample",
    "set_constraints",
    "publish_to_dashboard",
    "ARCH_ATTR",
    "SAMPLER_SETTINGS",
]

ARCH_ATTR = "arch"
"""User attribute holding a trial's arch string (:meth:`ArchSpace.format`), shown by optuna-dashboard."""

_PROPOSAL_ATTR = "ofa_nni:arch"
"""System attribute where the sampler records its proposal as soon as it is made."""

_LIST_CONSTRAINTS_ATTR = "constraints"
"""Optuna's list-style constraints system attribute (what ``constraints_func`` writes)."""

_SEED_SPACE = 2**63 - 1

_CLAIM_ATTEMPTS = 4
"""The engine's proposals per trial at most when concurrent workers keep picking the same subnet;
after them the trial claims random new subnets (concurrent workers' random draws hardly ever meet)."""
_MAX_CLAIMS = 64
"""Claims per trial at most, random ones included: only a space with next to nothing left untried
gets there (the trial then keeps its last proposal, as a sequential study would repeat one)."""
_CLAIM_WAIT_SECONDS = 10.0
"""How long a trial waits for a newer trial that claimed the same subnet to keep it or give way."""
_CLAIM_POLL_SECONDS = 0.02
_RANDOM_REFILL = 256
"""Random subnets drawn when the engine's candidates, with a trial's pinned values set, are all known."""


def _as_arch_space(space: Any) -> ArchSpace:
    """The arch description of ``space`` (an ``ArchSpace``/``ResNetArchSpace`` or a search space with
    ``.arch_space``)."""
    arch = getattr(space, "arch_space", space)
    if not isinstance(arch, ChoiceSpace):
        raise InvalidInputError(
            "space must be an arch space (ArchSpace, ResNetArchSpace) or a supernet of one (OFAMobileNetV3Space, "
            f"OFAProxylessNASSpace, OFAResNetSpace: anything with .arch_space), got {space!r}"
        )
    return arch  # type: ignore[return-value]  # the engine uses the interface both share


def optuna_search_space(space: Any) -> dict[str, CategoricalDistribution]:
    """The space as Optuna distributions: one categorical parameter per label, in label order."""
    arch = _as_arch_space(space)
    return {label: CategoricalDistribution(arch.choices(label)) for label in arch.labels}


def suggest_sample(trial: optuna.Trial, space: Any) -> Sample:
    """Suggest every label of ``space`` in ``trial`` and return the sample.

    Also sets the trial's user attribute ``arch`` to the arch string, so the dashboard lists it and
    :func:`trial_sample` can read it back.
    """
    arch = _as_arch_space(space)
    sample = {label: trial.suggest_categorical(label, arch.choices(label)) for label in arch.labels}
    trial.set_user_attr(ARCH_ATTR, arch.format(sample))
    return sample


def trial_sample(trial: FrozenTrial, space: Any) -> Sample:
    """The sample a finished trial evaluated (ValueError naming the missing label or bad value)."""
    arch = _as_arch_space(space)
    missing = [label for label in arch.labels if label not in trial.params]
    if missing:
        raise InvalidInputError(
            f"trial {trial.number} has no parameter {missing[0]!r} ({len(missing)} labels missing): "
            "was it suggested with suggest_sample(trial, space) for this space?"
        )
    return arch.validate({label: trial.params[label] for label in arch.labels})


def set_constraints(trial: optuna.Trial, constraints: Mapping[str, float]) -> None:
    """Record constraint values (``<= 0`` is feasible) in both formats Optuna tools read.

    ``trial.set_constraint(name, value)`` (Optuna 5, read by every sampler and ``best_trials``) and
    the list-style ``constraints`` system attribute, the only one optuna-dashboard 0.21 displays.
    """
    values: list[float] = []
    for name, value in constraints.items():
        value = float(value)
        if math.isnan(value):
            raise InvalidInputError(f"constraint {name!r} is NaN; constraint values must be numbers (<= 0 is feasible)")
        trial.set_constraint(name, value)
        values.append(value)
    # The list-style attribute is read back as constraints "0", "1", ...: the same values, so
    # feasibility is unchanged.
    trial.storage.set_trial_system_attr(trial._trial_id, _LIST_CONSTRAINTS_ATTR, tuple(values))


class _Decoded:
    """What the sampler needs from one trial, decoded once (finished trials never change): its subnet
    (``None`` unless it has every label, or is another worker's claim), the labels it suggested
    with the space's choices, and its parameters named like a label but with another distribution."""

    __slots__ = ("row", "labels", "foreign")

    def __init__(
        self, row: np.ndarray | None, labels: frozenset[str], foreign: Mapping[str, BaseDistribution]
    ) -> None:
        self.row = row
        self.labels = labels
        self.foreign = foreign


SAMPLER_SETTINGS = EvolutionSettings(population_size=64, parent_ratio=12 / 64, seed=None)
"""The sampler's default settings: 64 candidates bred per proposal and 12 parents (the settings
``benchmarks/bench_optuna_samplers.py`` ran with), OFA's mutation settings, no seed."""


def _sampler_settings(settings: EvolutionSettings | None, *, num_parents: int | None,
                      **given: Any) -> EvolutionSettings:
    """The keyword arguments of :class:`OFAEvolutionSampler` mapped onto one settings object (those
    not given, None, keep the values of ``settings``, default :data:`SAMPLER_SETTINGS`)."""
    base = EvolutionSettings.build(SAMPLER_SETTINGS if settings is None else settings)
    chosen = EvolutionSettings.build(base, **{name: value for name, value in given.items() if value is not None})
    if num_parents is None:
        num_parents = base.num_parents
    if isinstance(num_parents, bool) or not isinstance(num_parents, (int, np.integer)) or num_parents < 1:
        raise InvalidInputError(f"num_parents must be a positive integer, got {num_parents!r}")
    # More parents than the population: all of it (the engine's ratio is at most 1).
    return EvolutionSettings.build(chosen, parent_ratio=min(1.0, int(num_parents) / chosen.population_size))


class OFAEvolutionSampler(BaseSampler):
    """Optuna sampler running OFA's evolutionary search over a whole OFA search space.

    Args:
        arch_space: The search space: an :class:`~ofa_nni.arch.ArchSpace`, or a supernet such as
            ``OFAMobileNetV3Space`` (its ``arch_space`` is used). ``space=`` is its old name.
        population_size: Candidates bred per proposal (mutation and crossover children).
        num_parents: How many of the best trials so far are parents (OFA: a quarter of a population
            of 100); maps onto ``parent_ratio = num_parents / population_size``.
        n_startup_trials: Random (deduplicated, repaired) proposals before evolution starts.
        mutation_ratio, mutation_prob, resolution_mutation_prob: OFA's mutation settings (shares of
            mutation vs crossover children; per-block and per-depth mutation probability; the
            resolution's).
        settings: An :class:`ofa_nni.search.EvolutionSettings` instead of (or under) the keyword
            arguments above; default :data:`SAMPLER_SETTINGS` (population 64, 12 parents, OFA's
            mutation settings). ``seed`` maps onto ``settings.seed``.
        costs: Optional cost callables known in advance ``{name: fn}`` on ``(n, L)`` index arrays
            (e.g. ``{"macs": AnalyticCostModel(arch_space).macs}``).
        budgets: ``{cost name: maximum}`` for ``costs``; proposals meet them by construction
            (repair). Report them to Optuna as well (``set_constraints``) so every tool sees them.
        predictor: ``"ridge"`` (default): a surrogate fitted on the finished trials at every
            proposal; a callable on ``(n, L)`` index arrays returning the predicted objective values
            ``(n,)`` (or ``(n, n_objectives)``), in the study's own units and directions; or
            ``None`` for plain evolution.
        prescreen: Candidates ranked by the predictor per proposal (ignored without a predictor).
        constraints_func: Optional (deprecated in Optuna 5, kept for older code): called with each
            finished trial, returns its constraint values, stored as the list-style ``constraints``
            system attribute. Prefer ``trial.set_constraint`` / :func:`set_constraints`.
        seed: Seed of the proposals and of the fallback ``RandomSampler`` (parameters other than the
            labels); with a seed a sequential study is reproducible, until ``reseed_rng()``.
    """

    space = RenamedAttribute("arch_space")  # the old name, for one release

    @renamed_keywords(space="arch_space")
    def __init__(
        self,
        *,
        arch_space: Any,
        population_size: int | None = None,
        num_parents: int | None = None,
        n_startup_trials: int = 16,
        mutation_ratio: float | None = None,
        mutation_prob: float | None = None,
        resolution_mutation_prob: float | None = None,
        costs: Mapping[str, ArrayFn] | None = None,
        budgets: Mapping[str, float] | None = None,
        predictor: ArrayFn | str | None = "ridge",
        prescreen: int = 1024,
        constraints_func: Callable[[FrozenTrial], Sequence[float]] | None = None,
        seed: int | None = None,
        settings: EvolutionSettings | None = None,
    ) -> None:
        self.arch_space = _as_arch_space(arch_space)
        self.settings = _sampler_settings(
            settings,
            population_size=population_size,
            num_parents=num_parents,
            mutation_ratio=mutation_ratio,
            mutation_prob=mutation_prob,
            resolution_mutation_prob=resolution_mutation_prob,
            seed=seed,
        )
        seed = self.settings.seed
        if isinstance(n_startup_trials, bool) or int(n_startup_trials) != n_startup_trials or n_startup_trials < 0:
            raise InvalidInputError(f"n_startup_trials must be an integer >= 0, got {n_startup_trials!r}")
        if isinstance(prescreen, bool) or int(prescreen) != prescreen or prescreen < 1:
            raise InvalidInputError(f"prescreen must be a positive integer, got {prescreen!r}")
        if not (predictor is None or predictor == "ridge" or callable(predictor)):
            raise InvalidInputError(f"predictor must be None, 'ridge' or a callable on index arrays, got {predictor!r}")
        if budgets and not costs:
            raise InvalidInputError(f"budgets {list(budgets)} given without costs: pass costs={{name: callable}} too")
        unknown = [name for name in (budgets or {}) if name not in (costs or {})]
        if unknown:  # the engine would name its own argument ('targets[0]'), which the user never wrote
            raise InvalidInputError(f"budgets: unknown cost {unknown[0]!r}; the costs given: {list(costs or {})}")
        if constraints_func is not None and not callable(constraints_func):
            raise InvalidInputError(f"constraints_func must be callable, got {constraints_func!r}")
        self.population_size = self.settings.population_size
        self.num_parents = self.settings.num_parents
        self.n_startup_trials = int(n_startup_trials)
        self.costs: dict[str, ArrayFn] = dict(costs or {})
        self.budgets: dict[str, float] = dict(budgets or {})
        self.predictor = predictor
        self.prescreen = int(prescreen)
        self.constraints_func = constraints_func
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self._distributions = optuna_search_space(self.arch_space)
        self._index_of = [{v: i for i, v in enumerate(self.arch_space.choices(label))}
                          for label in self.arch_space.labels]
        self._random_sampler = RandomSampler(seed=seed)
        self._decoded: dict[tuple[Any, ...], _Decoded] = {}
        # The subnet of each trial this process is running, once proposed ((study id, trial id) ->
        # index row): every label of the trial takes its value from it, relative or independent.
        self._trial_rows: dict[tuple[int, int], np.ndarray] = {}
        # Labels a wrapping sampler handed back while being asked what it fixes (trial id -> labels).
        self._probes: dict[int, list[str]] = {}
        # Per running trial: the study's parameters named like a label with another distribution.
        self._foreign: dict[tuple[int, int], dict[str, tuple[int, BaseDistribution]]] = {}
        self._warned_partial = False
        # Validates the settings (and the budgets against the smallest achievable costs) now,
        # with a clear error, rather than at the first trial.
        self._engine(seed=0, batch=self.population_size)

    # ----------------------------------------------------------------- Optuna interface
    def reseed_rng(self) -> None:
        # Both random streams: the proposals' (a seeded sampler's trial seeds come from its seed, so
        # the seed goes) and the fallback's. Optuna reseeds every thread of optimize(n_jobs=...).
        self._seed = None
        self._rng = np.random.default_rng()
        self._random_sampler.reseed_rng()

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        """The labels the study suggests: those every COMPLETE trial suggested with the space's
        choices (the intersection search space of Optuna's relative samplers, restricted to the
        space's labels). Empty for a study that suggests none, so that it gets the fallback's values;
        a parameter that only shares a label's name (another kind or other choices) is the
        fallback's too."""
        labels: frozenset[str] | None = None
        for frozen in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            suggested = self._decode(study, frozen).labels
            labels = suggested if labels is None else labels & suggested
            if not labels:
                return {}
        return {label: d for label, d in self._distributions.items() if labels and label in labels}

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        if self._distributions.get(param_name) != param_distribution:
            # Not a label of the space (a learning rate, or a parameter that only shares a label's name).
            return self._random_sampler.sample_independent(study, trial, param_name, param_distribution)
        probe = self._probes.get(trial._trial_id)
        if probe is not None:  # a wrapping sampler asked about this label hands it to this sampler
            probe.append(param_name)
            return self.arch_space.choices(param_name)[0]
        self._check_same_choices(study, trial, param_name)
        # A label outside the relative search space (the first trials of a study, before any is
        # complete; or one a partial trial left out): from the trial's subnet all the same, so that
        # it is deduplicated and claimed like every other.
        row = self._trial_row(study, trial, free={param_name})
        return self.arch_space.choices(param_name)[int(row[self.arch_space.labels.index(param_name)])]

    def _check_same_choices(self, study: Study, trial: FrozenTrial, label: str) -> None:
        """A label outside the relative search space may be one the study has with other choices (it
        was run on another space): Optuna's storage would refuse the value; say why first. The
        study's trials are read once per trial."""
        key = (study._study_id, trial._trial_id)
        foreign = self._foreign.get(key)
        if foreign is None:
            foreign = {}
            for frozen in study.get_trials(deepcopy=False):
                for name, distribution in self._decode(study, frozen).foreign.items():
                    foreign.setdefault(name, (frozen.number, distribution))
            self._foreign[key] = foreign
        if label in foreign:
            number, other = foreign[label]
            raise InvalidInputError(
                f"trial {number}: parameter {label!r} has {_described(other)} but the sampler's space has "
                f"{self.arch_space.choices(label)}; the study was run on another search space"
            )

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        labels = [name for name, d in search_space.items() if self._distributions.get(name) == d]
        params: dict[str, Any] = {}
        if labels:
            sample = self.arch_space.from_indices(self._trial_row(study, trial, free=set(labels)))
            params = {label: sample[label] for label in labels}
        # Anything else in a search space handed in (the inferred one holds only labels): the fallback's.
        for name, distribution in search_space.items():
            if name not in params:
                params[name] = self._random_sampler.sample_independent(study, trial, name, distribution)
        return params

    def _trial_row(self, study: Study, trial: FrozenTrial, free: set[str]) -> np.ndarray:
        """The subnet of ``trial``, proposed and claimed at its first label; ``free`` are labels the
        trial is sure to take from it (the others may be pinned, see :meth:`_pinned`)."""
        key = (study._study_id, trial._trial_id)
        row = self._trial_rows.get(key)
        if row is None:
            row = self._propose_and_claim(study, trial, self._pinned(study, trial, free))
            self._trial_rows[key] = row
        return row

    def _pinned(self, study: Study, trial: FrozenTrial, free: set[str]) -> dict[int, int]:
        """The labels whose value ``trial`` gets from elsewhere than this sampler's proposal, as
        {column: choice index}: those it already has, those given to ``study.enqueue_trial`` (even in
        ``free``: Optuna takes them first), and those a wrapping sampler fixes
        (``PartialFixedSampler``). The wrapper is asked for each label outside ``free``
        (``sample_independent``): a label it hands back to this sampler is not fixed, one it answers
        itself is. Proposals are deduplicated and claimed with these values, which
        are the parameters the trial ends up with."""
        enqueued = trial.system_attrs.get("fixed_params") or {}
        wrapper = study.sampler if study.sampler is not self else None
        pinned: dict[int, int] = {}
        for col, label in enumerate(self.arch_space.labels):
            if len(self._index_of[col]) == 1:  # Optuna sets a single choice itself
                continue
            distribution = self._distributions[label]
            if label in trial.params:
                if trial.distributions.get(label) != distribution:
                    continue
                value = trial.params[label]
            elif label in enqueued:  # Optuna takes these before the relative search space
                value = enqueued[label]
            elif label in free:
                continue
            elif wrapper is not None:
                handed_back: list[str] = []
                self._probes[trial._trial_id] = handed_back
                try:
                    value = wrapper.sample_independent(study, trial, label, distribution)
                finally:
                    del self._probes[trial._trial_id]
                if handed_back:
                    continue
            else:
                continue
            index = self._index_of[col].get(value)
            if index is not None:
                pinned[col] = index
        return pinned

    def _propose_and_claim(self, study: Study, trial: FrozenTrial, pinned: Mapping[int, int]) -> np.ndarray:
        row = self.propose(study, trial, pinned)
        for attempt in range(1, _MAX_CLAIMS + 1):
            # Claim the subnet in the storage, then look again: a worker that proposed the same
            # subnet concurrently has claimed it too, and one of the two proposes anew (its next
            # proposal counts the other's claim as tried). Sequential studies never re-propose, so
            # they stay reproducible. Workers that rank the same candidates alike keep meeting on
            # the engine's next pick, so after a few attempts the trial draws random new subnets.
            self._claim(study, trial, row)
            if not self._claimed_elsewhere(study, trial, row):
                return row
            if attempt == _MAX_CLAIMS:
                break
            following = (self.propose(study, trial, pinned) if attempt < _CLAIM_ATTEMPTS
                         else self._random_new(study, trial, pinned, attempt))
            if following is None:  # nothing left untried: keep the claim, as a sequential study repeats
                return row
            row = following
        warnings.warn(f"trial {trial.number} runs subnet {self.arch_space.format(self.arch_space.from_indices(row))} "
                      f"that another trial holds: {_MAX_CLAIMS} claims in a row met concurrent claims",
                      stacklevel=2)
        return row

    def _random_new(
        self, study: Study, trial: FrozenTrial, pinned: Mapping[int, int], attempt: int
    ) -> np.ndarray | None:
        """A random subnet no other trial has run, holds or waits with (pinned genes set, within the
        budgets where any is), drawn from the trial's seed and ``attempt``; None if none is found."""
        done_rows, _, _, tried_rows = self._history(study, study.get_trials(deepcopy=False), trial)
        rng = np.random.default_rng([self._trial_seed(trial.number), attempt])
        empty = np.zeros((0, len(self.arch_space.labels)), dtype=np.int64)
        rows = self._fresh_candidates(empty, pinned, np.concatenate([done_rows, tried_rows]), rng)
        return rows[0] if len(rows) else None

    def _claim(self, study: Study, trial: FrozenTrial, row: np.ndarray) -> None:
        study._storage.set_trial_system_attr(
            trial._trial_id, _PROPOSAL_ATTR, self.arch_space.format(self.arch_space.from_indices(row))
        )

    def _claimed_elsewhere(self, study: Study, trial: FrozenTrial, row: np.ndarray) -> bool:
        """Whether another trial has the subnet ``row`` first, so that ``trial`` must give it up: a
        trial that is finished, waiting or decided (its parameters are stored), or an older one
        (smaller number) that has claimed it too. A newer trial's claim is settled by watching it:
        the newer trial gives way if it saw this trial's claim (its claim moves on) and keeps the
        subnet otherwise (its parameters appear). Were both to give way, two workers could propose
        the same next subnet again, in lockstep; were both to keep it, it would run twice."""
        mine = canonical_indices(self.arch_space, row[None])
        labels = self.arch_space.labels
        deadline = time.monotonic() + _CLAIM_WAIT_SECONDS
        while True:
            others = [
                (frozen, decoded.row)
                for frozen in study.get_trials(deepcopy=False)
                if frozen.number != trial.number and (decoded := self._decode(study, frozen)).row is not None
            ]
            if not others:
                return False
            same = (canonical_indices(self.arch_space, np.stack([r for _, r in others])) == mine).all(axis=1)
            holders = [frozen for (frozen, _), match in zip(others, same, strict=True) if match]
            for frozen in holders:
                decided = frozen.state != TrialState.RUNNING or all(label in frozen.params for label in labels)
                if decided or frozen.number < trial.number:
                    return True
            if not holders:
                return False
            # Only newer trials claim it and have not decided yet: wait until each keeps it or moves on.
            if time.monotonic() > deadline:  # the newer trial's worker may have died: give way
                return True
            time.sleep(_CLAIM_POLL_SECONDS)

    def after_trial(
        self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        self._trial_rows.pop((study._study_id, trial._trial_id), None)
        self._foreign.pop((study._study_id, trial._trial_id), None)
        if self.constraints_func is None or state not in (TrialState.COMPLETE, TrialState.PRUNED):
            return
        constraints = [float(v) for v in self.constraints_func(trial)]
        if any(math.isnan(v) for v in constraints):
            raise InvalidInputError(f"constraints_func returned NaN for trial {trial.number}: {constraints}")
        study._storage.set_trial_system_attr(trial._trial_id, _LIST_CONSTRAINTS_ATTR, tuple(constraints))

    # --------------------------------------------------------------------- the search
    def propose(self, study: Study, trial: FrozenTrial, pinned: Mapping[int, int] | None = None) -> np.ndarray:
        """The index row of the subnet the sampler proposes for ``trial`` (rebuilt from the storage),
        with the choice indices ``pinned`` ({column: index}, the values the trial gets elsewhere)."""
        trials = study.get_trials(deepcopy=False)
        directions = study.directions
        done_rows, done_values, done_constraints, tried_rows = self._history(study, trials, trial)
        done_violation = np.where(done_constraints > 0, done_constraints, 0.0).sum(axis=1)
        n_done = len(done_rows)
        seed = self._trial_seed(trial.number)
        engine = self._engine(seed=seed, batch=max(self.population_size, self._prescreen_size(n_done)))
        if n_done:
            order_score = self._rank_scores(done_values, done_violation, directions)
            evolve = n_done >= self.n_startup_trials
            # Before evolution starts, the finished trials only exclude their subnets (NaN score).
            engine.tell(done_rows, order_score if evolve else np.full(n_done, np.nan))
        if len(tried_rows):
            engine.tell(tried_rows, np.full(len(tried_rows), np.nan))
        candidates = engine.ask()
        rng = np.random.default_rng(seed)
        if pinned or len(candidates) == 0:  # (none: every subnet the operators reach was tried)
            candidates = self._fresh_candidates(candidates, pinned or {}, np.concatenate([done_rows, tried_rows]), rng)
        if len(candidates) == 0:  # no new subnet found: the space is (nearly) exhausted, a random one
            return self._with_pinned(self.arch_space.random_indices(1, rng), pinned or {})[0]
        if self.predictor is not None and n_done >= self.n_startup_trials and len(candidates) > 1:
            merit = self._predict(candidates, done_rows, done_values, done_constraints, directions)
            return candidates[int(np.argmax(merit))]
        return candidates[int(rng.integers(len(candidates)))]

    def _with_pinned(self, rows: np.ndarray, pinned: Mapping[int, int]) -> np.ndarray:
        """``rows`` with the pinned genes set, canonical (the subnets the trials will run)."""
        rows = rows.copy()
        for col, index in pinned.items():
            rows[:, col] = index
        return canonical_indices(self.arch_space, rows)

    def _fresh_candidates(
        self, candidates: np.ndarray, pinned: Mapping[int, int], known: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """The engine's candidates as the trial will run them (pinned genes set), without repeats of
        ``known`` subnets or of each other, within the budgets where any is; when none is left (the
        engine bred them with other values at the pinned genes, or has none), random new subnets
        with the pinned genes."""
        seen = {row.tobytes() for row in canonical_indices(self.arch_space, known)} if len(known) else set()
        rows = candidates[:0]
        for pool in (candidates, self.arch_space.random_indices(_RANDOM_REFILL, rng)):
            rows = self._with_pinned(pool, pinned)
            fresh = []
            for i, row in enumerate(rows):
                key = row.tobytes()
                if key not in seen:
                    seen.add(key)
                    fresh.append(i)
            rows = rows[fresh]
            if self.budgets and len(rows):
                # A pinned value may exceed a budget the engine repaired the candidate to meet.
                within = np.ones(len(rows), dtype=bool)
                for name, limit in self.budgets.items():
                    within &= np.asarray(self.costs[name](rows), dtype=np.float64) <= limit
                rows = rows[within] if within.any() else rows
            if len(rows):
                break
        return rows

    def _prescreen_size(self, n_done: int) -> int:
        if self.predictor is None or n_done < self.n_startup_trials:
            return self.population_size
        return self.prescreen

    def _trial_seed(self, number: int) -> int:
        base = self._seed if self._seed is not None else int(self._rng.integers(_SEED_SPACE))
        return int(np.random.SeedSequence([base, number]).generate_state(1, dtype=np.uint64)[0] % _SEED_SPACE)

    def _engine(self, *, seed: int, batch: int) -> EvolutionSearch:
        return EvolutionSearch(
            arch_space=self.arch_space,
            costs=self.costs,
            targets=self.budgets,
            settings=self.settings,
            population_size=batch,
            parent_ratio=min(1.0, self.num_parents / batch),
            generations=64,
            seed=seed,
        )

    def _history(
        self, study: Study, trials: Sequence[FrozenTrial], current: FrozenTrial
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Finished trials with values (rows, values, constraint values -- a column per constraint
        name, 0 where a trial lacks it) and every other subnet already tried or in flight (rows)."""
        n_labels = len(self.arch_space.labels)
        done_rows, done_values, tried_rows = [], [], []
        done_constraints: list[dict[str, float]] = []
        n_objectives = len(study.directions)
        for frozen in trials:
            if frozen.number == current.number:
                continue
            decoded = self._decode(study, frozen)
            if decoded.row is None:
                continue
            if frozen.state == TrialState.COMPLETE and frozen.values is not None:
                if len(frozen.values) != n_objectives:
                    continue
                done_rows.append(decoded.row)
                done_values.append(frozen.values)
                done_constraints.append(frozen.constraints)
            else:
                tried_rows.append(decoded.row)
        names = sorted({name for constraints in done_constraints for name in constraints})
        constraint_values = np.zeros((len(done_constraints), len(names)))
        for i, constraints in enumerate(done_constraints):
            for k, name in enumerate(names):
                constraint_values[i, k] = float(constraints.get(name, 0.0))
        return (
            np.asarray(done_rows, dtype=np.int64).reshape(-1, n_labels),
            np.asarray(done_values, dtype=np.float64).reshape(-1, n_objectives),
            constraint_values,
            np.asarray(tried_rows, dtype=np.int64).reshape(-1, n_labels),
        )

    def _decode(self, study: Study, frozen: FrozenTrial) -> _Decoded:
        # In-memory studies all have study id 0 and trial ids from 0: the start time tells them apart.
        key = (study._study_id, frozen._trial_id, frozen.number, frozen.datetime_start)
        cached = self._decoded.get(key)
        if cached is not None:
            return cached
        params: Mapping[str, Any] = frozen.params
        distributions: Mapping[str, BaseDistribution] | None = frozen.distributions
        if frozen.state == TrialState.WAITING:  # enqueued: what was given to enqueue_trial (no distributions)
            params, distributions = frozen.system_attrs.get("fixed_params") or {}, None
        indices = self._label_indices(params, distributions)
        labels = frozenset(self.arch_space.labels[col] for col in indices)
        foreign = {  # parameters named like a label with another distribution
            name: d for name, d in (distributions or {}).items()
            if name in self._distributions and d != self._distributions[name]
        }
        row = None
        if len(indices) == len(self.arch_space.labels):
            row = np.array([indices[col] for col in range(len(self.arch_space.labels))], dtype=np.int64)
        elif frozen.state == TrialState.RUNNING and _PROPOSAL_ATTR in frozen.system_attrs:
            # Another worker's proposal whose parameters are not stored yet.
            row = self.arch_space.to_indices(self.arch_space.parse(frozen.system_attrs[_PROPOSAL_ATTR]))
        elif frozen.state == TrialState.COMPLETE and labels:
            self._warn_partial(frozen, len(labels))
        decoded = _Decoded(row, labels, foreign)
        if frozen.state.is_finished() and frozen.datetime_start is not None:  # finished trials never change
            self._decoded[key] = decoded
        return decoded

    def _label_indices(
        self, params: Mapping[str, Any], distributions: Mapping[str, BaseDistribution] | None
    ) -> dict[int, int]:
        """{column: choice index} of the labels among ``params`` suggested with the space's choices
        (``distributions=None``: values only, as ``enqueue_trial`` records them)."""
        indices: dict[int, int] = {}
        for col, label in enumerate(self.arch_space.labels):
            if label not in params:
                continue
            if distributions is not None and distributions.get(label) != self._distributions[label]:
                continue  # a parameter that only shares the label's name
            index = self._index_of[col].get(params[label])
            if index is not None:
                indices[col] = index
        return indices

    def _warn_partial(self, frozen: FrozenTrial, n_labels: int) -> None:
        """Warn (once per sampler) that a COMPLETE trial with only some of the labels is skipped."""
        if self._warned_partial:
            return
        self._warned_partial = True
        detail = "a value outside the space's choices"
        for label in self.arch_space.labels:
            distribution = frozen.distributions.get(label)
            if distribution is None:
                detail = f"no {label!r}"
                break
            if distribution != self._distributions[label]:
                detail = (f"{label!r} with {_described(distribution)} where the space has "
                          f"{self.arch_space.choices(label)}")
                break
        warnings.warn(
            f"trial {frozen.number} suggested {n_labels} of the space's {len(self.arch_space.labels)} labels with "
            f"the space's choices ({detail}): the sampler skips it (not a parent, not in the surrogate's data, "
            "not deduplicated against), and other such trials without a further warning. Suggest every "
            "label, e.g. with suggest_sample(trial, space)",
            UserWarning,
            stacklevel=2,
        )

    @staticmethod
    def _rank_scores(values: np.ndarray, violation: np.ndarray, directions: Sequence[StudyDirection]) -> np.ndarray:
        """A score per finished trial, higher = better, encoding the selection order: feasible
        trials first (by value, or by NSGA-II rank then crowding distance), then infeasible ones by
        violation."""
        minimised = _minimised(values, directions)
        feasible = violation <= 0
        n = len(values)
        primary = np.zeros(n)
        secondary = np.zeros(n)
        at = np.nonzero(feasible)[0]
        if len(at):
            if minimised.shape[1] == 1:
                primary[at] = minimised[at, 0]
            else:
                rank, crowd = rank_and_crowding(minimised[at])
                primary[at] = rank
                secondary[at] = -crowd
        infeasible = np.nonzero(~feasible)[0]
        primary[infeasible] = violation[infeasible]
        order = np.lexsort((secondary, primary, ~feasible))
        score = np.empty(n)
        score[order] = np.arange(n, 0, -1, dtype=np.float64)
        return score

    def _predict(
        self,
        candidates: np.ndarray,
        done_rows: np.ndarray,
        done_values: np.ndarray,
        done_constraints: np.ndarray,
        directions: Sequence[StudyDirection],
    ) -> np.ndarray:
        """Higher-is-better predicted merit of each candidate."""
        if self.predictor == "ridge":
            predicted, violation = _ridge_predictions(self.arch_space, done_rows, done_values, done_constraints,
                                                      candidates)
        else:
            assert callable(self.predictor)
            raw = np.asarray(self.predictor(candidates), dtype=np.float64)
            if raw.shape not in ((len(candidates),), (len(candidates), len(directions))):
                raise InvalidInputError(
                    f"predictor must return shape ({len(candidates)},) or ({len(candidates)}, {len(directions)}) "
                    f"for {len(candidates)} candidates, got {raw.shape}"
                )
            if not np.isfinite(raw).any():  # it would rank nothing: the prescreen would pick at random
                raise InvalidInputError(f"predictor returned no finite value for {len(candidates)} candidates "
                                        f"(e.g. {raw.reshape(-1)[:3].tolist()})")
            predicted, violation = raw.reshape(len(candidates), -1), np.zeros(len(candidates))
        minimised = _minimised(predicted, directions[: predicted.shape[1]])
        if minimised.shape[1] == 1:
            merit = -minimised[:, 0]
        else:  # predicted non-dominated first, then the most isolated among them
            rank, crowd = rank_and_crowding(minimised)
            merit = -rank.astype(np.float64)
            front = rank == 0
            merit[front] += 0.5 * np.tanh(crowd[front])
        # A candidate predicted to violate a constraint ranks below every one predicted feasible.
        return np.where(violation > 0, -1e18 - violation, merit)


def _described(distribution: BaseDistribution) -> str:
    if isinstance(distribution, CategoricalDistribution):
        return f"choices {distribution.choices}"
    return f"a {type(distribution).__name__}"


def _minimised(values: np.ndarray, directions: Sequence[StudyDirection]) -> np.ndarray:
    sign = np.array([-1.0 if d == StudyDirection.MAXIMIZE else 1.0 for d in directions])
    out = values * sign
    return np.where(np.isnan(out), np.inf, out)


def _ridge_predictions(
    space: ArchSpace,
    rows: np.ndarray,
    values: np.ndarray,
    constraints: np.ndarray,
    candidates: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Ridge regression (:func:`ofa_nni.ridge.fit_ridge`, the accuracy predictors' model, penalty 1)
    on OFA's one-hot features (:meth:`ArchSpace.to_features`), fitted on the finished trials: the
    candidates' predicted values (a column per objective) and predicted total constraint violation
    (each constraint value regressed on its own, not the clipped violation)."""
    targets = np.column_stack([values, constraints])
    finite = np.isfinite(targets).all(axis=1)
    n_values = values.shape[1]
    if finite.sum() < 2:
        return np.zeros((len(candidates), n_values)), np.zeros(len(candidates))
    model = fit_ridge(space.to_features(rows[finite]), targets[finite], alphas=(1.0,))
    predicted = model.predict(space.to_features(candidates))
    predicted_constraints = predicted[:, n_values:]
    violation = np.where(predicted_constraints > 0, predicted_constraints, 0.0).sum(axis=1)
    return predicted[:, :n_values], violation


# ------------------------------------------------------------------------- optuna-dashboard
def _completed(study: Study, space: ArchSpace) -> tuple[list[FrozenTrial], np.ndarray]:
    """COMPLETE trials that suggested every label of ``space``, and their index rows."""
    trials = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.values is not None and all(label in t.params for label in space.labels)
    ]
    rows = np.array([space.to_indices(trial_sample(t, space)) for t in trials], dtype=np.int64)
    return trials, rows.reshape(len(trials), len(space.labels))


def _choose_trial(study: Study, trials: Sequence[FrozenTrial]) -> FrozenTrial:
    """The best feasible trial; for several objectives, the feasible Pareto trial that is best in
    the first objective."""
    feasible = [t for t in trials if all(v <= 0 for v in t.constraints.values())]
    if not feasible:
        raise InvalidInputError(
            f"study {study.study_name!r} has no feasible COMPLETE trial of the space to publish "
            f"({len(trials)} complete, all violate a constraint)"
        )
    minimised = _minimised(np.array([t.values for t in feasible], dtype=np.float64), study.directions)
    front = np.nonzero(pareto_mask(minimised))[0]
    return feasible[int(front[np.argmin(minimised[front, 0])])]


def _summary_markdown(study: Study, space: ArchSpace, trial: FrozenTrial, macs: float, params: float) -> str:
    sample = trial_sample(trial, space)
    names = study.metric_names or [f"objective {k}" for k in range(len(study.directions))]
    lines = [
        f"## Chosen subnet: trial {trial.number}",
        "",
        f"`{space.format(sample)}`",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    for name, direction, value in zip(names, study.directions, trial.values or [], strict=False):
        lines.append(f"| {name} ({direction.name.lower()}) | {value:.6g} |")
    lines += [f"| MACs | {macs / 1e6:.2f} M |", f"| parameters | {params / 1e6:.3f} M |"]
    constraints = trial.constraints
    named = {name: value for name, value in constraints.items() if not name.isdigit()}
    # set_constraints writes each value twice (named, and list-style "0", "1", ... for the dashboard)
    if len(named) == len(constraints) - len(named):
        constraints = named
    for name, value in constraints.items():
        lines.append(f"| constraint {name} (<= 0 feasible) | {value:.6g} |")
    lines += ["", f"Resolution {sample[space.RESOLUTION_LABEL]}.", "", "| stage | depth | blocks (kernel, expand) |"]
    lines.append("|---|---|---|")
    for s in range(space.num_stages):
        depth = sample[space.depth_label(s)]
        blocks = ", ".join(
            f"k{sample[space.kernel_label(s, b)]}e{sample[space.expand_label(s, b)]}"
            for b in range(depth)
        )
        lines.append(f"| {s + 1} | {depth} | {blocks} |")
    return "\n".join(lines) + "\n"


def _pareto_plot(
    path: Path, study: Study, trials: Sequence[FrozenTrial], macs: np.ndarray, chosen: FrozenTrial
) -> None:
    """The study's trials against analytic MACs (and against the second objective, if any), with
    the feasible Pareto front and the chosen trial (:func:`ofa_nni.plots.pareto_plot`)."""
    values = np.array([t.values for t in trials], dtype=np.float64)
    feasible = np.array([all(v <= 0 for v in t.constraints.values()) for t in trials])
    names = study.metric_names or [f"objective {k}" for k in range(len(study.directions))]
    at_chosen = [t.number for t in trials].index(chosen.number)
    axes = [(macs / 1e6, "MACs (M)")]
    if values.shape[1] > 1:
        axes.append((values[:, 1], names[1]))
    y, sign = values[:, 0], -1.0 if study.directions[0] == StudyDirection.MAXIMIZE else 1.0
    panels = []
    for x, x_name in axes:
        front = np.nonzero(feasible)[0]
        front = front[pareto_mask(np.column_stack([x[front], sign * y[front]]))]
        panels.append(ParetoPanel(
            xlabel=x_name, ylabel=names[0], front=(x[front], y[front]),
            points=(x[feasible], y[feasible]), points_label="feasible",
            infeasible=(x[~feasible], y[~feasible]),
            chosen=[("chosen", [x[at_chosen]], [y[at_chosen]])],
        ))
    pareto_plot(path, panels, title=f"{study.study_name}: {len(trials)} subnets")


def publish_to_dashboard(
    study: Study,
    space: Any,
    artifact_dir: str | os.PathLike[str],
    *,
    trial: FrozenTrial | int | None = None,
) -> dict[str, Any]:
    """Put a study's OFA results where optuna-dashboard shows them.

    Uploads, with :func:`optuna.artifacts.upload_artifact` to a ``FileSystemArtifactStore`` in
    ``artifact_dir``: the Pareto plot (objective against analytic MACs, and against the second
    objective if any; PNG) and the chosen subnet's summary (markdown), both study artifacts (a
    finished trial's attributes are read-only). The summary is also the chosen trial's note, and the
    study's note names it (``optuna_dashboard.save_note``). Serve them with::

        optuna-dashboard <storage URL> --artifact-dir <artifact_dir> --host 127.0.0.1

    Args:
        study: A study whose trials suggested the space's labels (e.g. with :func:`suggest_sample`).
        space: The search space (``ArchSpace`` or ``OFAMobileNetV3Space``).
        artifact_dir: Directory of the artifact store (created if missing).
        trial: The subnet to summarise (a trial or its number); default: the best feasible trial
            (several objectives: the feasible Pareto trial best in the first objective).

    Returns:
        ``{"trial": number, "pareto_plot": artifact id, "summary": artifact id, "arch": str}``.

    Raises:
        ImportError: optuna-dashboard or matplotlib missing (``pip install ofa-nni[dashboard]``).
        ValueError: no complete trial of the space, no feasible one, or an unknown trial number.
    """
    try:
        import matplotlib  # noqa: F401
        from optuna_dashboard import save_note
    except ImportError as error:
        raise ImportError(
            f"publish_to_dashboard needs optuna-dashboard and matplotlib ({error}); "
            "install them with: pip install 'ofa-nni[dashboard]'"
        ) from error
    from optuna.artifacts import FileSystemArtifactStore, upload_artifact

    arch = _as_arch_space(space)
    trials, rows = _completed(study, arch)
    if not trials:
        raise InvalidInputError(
            f"study {study.study_name!r} has no COMPLETE trial with the space's {len(arch.labels)} parameters: "
            "suggest them with suggest_sample(trial, space)"
        )
    if trial is None:
        chosen = _choose_trial(study, trials)
    else:
        number = trial if isinstance(trial, int) else trial.number
        matches = [t for t in trials if t.number == number]
        if not matches:
            raise InvalidInputError(
                f"trial {number} is not a COMPLETE trial of the space in study {study.study_name!r}"
            )
        chosen = matches[0]
    cost_model = cost_model_for(arch)
    macs = cost_model.macs(rows).astype(np.float64)
    params = cost_model.params(rows).astype(np.float64)
    at_chosen = [t.number for t in trials].index(chosen.number)
    summary = _summary_markdown(study, arch, chosen, float(macs[at_chosen]), float(params[at_chosen]))

    store_dir = Path(artifact_dir)
    store_dir.mkdir(parents=True, exist_ok=True)
    store = FileSystemArtifactStore(base_path=str(store_dir))
    with tempfile.TemporaryDirectory() as tmp:
        plot_path = Path(tmp) / "pareto_front.png"
        _pareto_plot(plot_path, study, trials, macs, chosen)
        plot_id = upload_artifact(artifact_store=store, file_path=str(plot_path), study_or_trial=study)
        summary_path = Path(tmp) / f"subnet_trial{chosen.number}.md"
        summary_path.write_text(summary)
        # A finished trial's attributes are read-only in every storage: the summary file is a study
        # artifact, and the trial gets it as its note (notes live in the study's attributes).
        summary_id = upload_artifact(artifact_store=store, file_path=str(summary_path), study_or_trial=study)
    save_note(optuna.Trial(study, chosen._trial_id), summary)
    save_note(
        study,
        f"## OFA search: {len(trials)} subnets\n\nChosen subnet: trial {chosen.number}, "
        f"`{arch.format(trial_sample(chosen, arch))}`, {macs[at_chosen] / 1e6:.2f} M MACs. "
        "The Pareto plot is among the study's artifacts; the subnet's summary is its trial's note.\n",
    )
    return {
        "trial": chosen.number,
        "pareto_plot": plot_id,
        "summary": summary_id,
        "arch": arch.format(trial_sample(chosen, arch)),
    }
