"""The search engine (ofa_nni.search): constraints, determinism, many targets, Pareto fronts."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from conftest import TINY_SPACE_KWARGS
from hypothesis import given, settings
from hypothesis import strategies as st

from ofa_nni import AnalyticCostModel, ArchSpace
from ofa_nni.search import (
    EvolutionSearch,
    ParetoSearch,
    crowding_distance,
    minimum_costs,
    non_dominated_sort,
    pareto_mask,
    specialize,
)
from ofa_nni.search.evolution import POLISH_SHARE

TINY = ArchSpace(**TINY_SPACE_KWARGS)
DEFAULT = ArchSpace()
TINY_COSTS = AnalyticCostModel(TINY)
DEFAULT_COSTS = AnalyticCostModel(DEFAULT)


def random_mlp(space: ArchSpace, seed: int = 0):
    """A small random MLP on OFA's features: a rugged stand-in for an accuracy predictor."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(size=(space.feature_dim, 32)) / np.sqrt(space.feature_dim)
    w2 = rng.normal(size=32) / np.sqrt(32)

    def predict(indices: np.ndarray) -> np.ndarray:
        return np.maximum(space.to_features(indices) @ w1, 0.0) @ w2

    return predict


def size_aware(space: ArchSpace, seed: int = 0):
    """Accuracy-like: grows with MACs (log), plus a random per-choice effect."""
    rng = np.random.default_rng(seed)
    costs = AnalyticCostModel(space)
    weights = rng.normal(size=space.feature_dim) * 0.01

    def predict(indices: np.ndarray) -> np.ndarray:
        return np.log(costs.macs(indices)) + space.to_features(indices) @ weights

    return predict


def all_subnets(space: ArchSpace) -> np.ndarray:
    """Every distinct subnet of a tiny space (inactive genes zeroed)."""
    rows = np.array(list(itertools.product(*[range(c) for c in space.cardinalities])), dtype=np.int64)
    return np.unique(space.canonical_indices(rows), axis=0)


# ----------------------------------------------------------------------------- basics
def test_result_fields_and_determinism():
    kwargs = dict(generations=20, population_size=40, seed=3)
    targets = [{"macs": 60e6}, {"macs": 90e6, "params": 4e6}]
    costs = {"macs": DEFAULT_COSTS.macs, "params": DEFAULT_COSTS.params}
    first = specialize(DEFAULT, random_mlp(DEFAULT), costs, targets, **kwargs)
    second = specialize(DEFAULT, random_mlp(DEFAULT), costs, targets, **kwargs)
    assert [t.arch for t in first] == [t.arch for t in second]
    assert [t.score for t in first] == [t.score for t in second]
    assert first.evaluations == second.evaluations
    np.testing.assert_array_equal(first.history, second.history)
    other_seed = specialize(DEFAULT, random_mlp(DEFAULT), costs, targets, **{**kwargs, "seed": 4})
    assert [t.arch for t in other_seed] != [t.arch for t in first]

    best = first[1]
    assert best.budgets == {"macs": 90e6, "params": 4e6}
    assert DEFAULT.parse(best.arch) == best.sample == DEFAULT.from_indices(best.indices)
    assert best.costs["macs"] == DEFAULT_COSTS.macs(best.sample)
    assert best.costs["params"] == DEFAULT_COSTS.params(best.sample)
    assert best.score == pytest.approx(float(random_mlp(DEFAULT)(best.indices[None])[0]))
    assert first.history.shape == (21, 2)
    assert (np.diff(first.history, axis=0) >= 0).all()  # the best never gets worse


def test_every_asked_candidate_is_new_and_feasible():
    search = EvolutionSearch(
        arch_space=DEFAULT, costs={"macs": DEFAULT_COSTS.macs}, targets={"macs": 80e6}, generations=15, seed=0
    )
    objective = random_mlp(DEFAULT)
    seen: set[bytes] = set()
    while not search.done:
        rows = search.ask()
        assert len(rows) <= search.population_size
        assert (DEFAULT_COSTS.macs(rows) <= 80e6).all()
        keys = {row.tobytes() for row in DEFAULT.canonical_indices(rows)}
        assert len(keys) == len(rows) and not keys & seen  # no query is spent twice
        seen |= keys
        search.tell(rows, objective(rows))
    assert search.evaluations == len(seen)
    assert len(search.ask()) == 0


@settings(max_examples=25, deadline=None)
@given(
    macs=st.floats(min_value=DEFAULT_COSTS.macs(DEFAULT.min_sample()), max_value=600e6),
    params=st.one_of(st.none(), st.floats(min_value=DEFAULT_COSTS.params(DEFAULT.min_sample()), max_value=8e6)),
    seed=st.integers(0, 2**16),
)
def test_constraints_always_met(macs, params, seed):
    budgets = {"macs": macs} if params is None else {"macs": macs, "params": params}
    costs = {"macs": DEFAULT_COSTS.macs, "params": DEFAULT_COSTS.params}
    search = EvolutionSearch(arch_space=DEFAULT, costs=costs, targets=budgets, generations=3, population_size=30,
                             seed=seed)
    objective = size_aware(DEFAULT, seed)
    while not search.done:
        rows = search.ask()
        assert (DEFAULT_COSTS.macs(rows) <= macs).all()
        if params is not None:
            assert (DEFAULT_COSTS.params(rows) <= params).all()
        search.tell(rows, objective(rows))
    best = search.result()[0]
    assert best.costs["macs"] <= macs
    assert params is None or best.costs["params"] <= params


def test_infeasible_budget_states_the_smallest_value():
    smallest = DEFAULT_COSTS.macs(DEFAULT.min_sample())
    with pytest.raises(
        ValueError, match=rf"budget {smallest - 1} for 'macs' .* smallest achievable macs is {smallest} "
    ):
        EvolutionSearch(arch_space=DEFAULT, costs={"macs": DEFAULT_COSTS.macs}, targets={"macs": smallest - 1})
    EvolutionSearch(arch_space=DEFAULT, costs={"macs": DEFAULT_COSTS.macs}, targets={"macs": smallest})
    smallest_params = DEFAULT_COSTS.params(DEFAULT.min_sample())
    with pytest.raises(ValueError, match=rf"target 1 budget 1000000 for 'params' .* params is {smallest_params} "):
        EvolutionSearch(
            arch_space=DEFAULT,
            costs={"macs": DEFAULT_COSTS.macs, "params": DEFAULT_COSTS.params},
            targets=[{"params": 5e6}, {"params": 1e6}],
        )


def test_minimum_costs_match_exhaustive_search():
    rows = all_subnets(TINY)
    # A non-monotone cost (a latency table could be one): a larger resolution runs faster and an
    # active block with kernel 5 is cheaper than with kernel 3.

    def odd_cost(indices: np.ndarray) -> np.ndarray:
        flipped = indices.copy()
        flipped[:, -1] = 1 - flipped[:, -1]
        active = TINY.active_gene_mask(indices)[:, : TINY.num_blocks]
        return TINY_COSTS.macs(flipped) - 5000.0 * (indices[:, : TINY.num_blocks] * active).sum(axis=1)

    minima = minimum_costs(TINY, {"macs": TINY_COSTS.macs, "odd": odd_cost})
    assert minima["macs"][0] == TINY_COSTS.macs(rows).min()
    assert minima["odd"][0] == odd_cost(rows).min()
    assert odd_cost(minima["odd"][1][None])[0] == minima["odd"][0]
    # The search repairs towards that cheapest subnet and meets a budget the smallest one misses.
    budget = float(np.sort(odd_cost(rows))[5])
    assert odd_cost(np.zeros((1, len(TINY.labels)), dtype=np.int64))[0] > budget
    result = specialize(TINY, random_mlp(TINY), {"odd": odd_cost}, {"odd": budget}, generations=5, seed=0)
    assert result[0].costs["odd"] <= budget


def test_bad_arguments_name_the_culprit():
    costs = {"macs": DEFAULT_COSTS.macs}
    with pytest.raises(ValueError, match="unknown cost 'latency'"):
        EvolutionSearch(arch_space=DEFAULT, costs=costs, targets={"latency": 3.0})
    with pytest.raises(ValueError, match="population_size"):
        EvolutionSearch(arch_space=DEFAULT, costs=costs, targets={"macs": 3e8}, population_size=1)
    with pytest.raises(ValueError, match="mutation_prob"):
        EvolutionSearch(arch_space=DEFAULT, costs=costs, targets={"macs": 3e8}, mutation_prob=1.5)
    with pytest.raises(ValueError, match="at least one"):
        EvolutionSearch(arch_space=DEFAULT, costs=costs, targets=[])
    # A string is a sequence: it was walked character by character ("targets[0] ... got 'm'").
    with pytest.raises(ValueError, match=r"got the string 'macs<=1M' \(the command line's syntax\)"):
        EvolutionSearch(arch_space=DEFAULT, costs=costs, targets="macs<=1M")
    with pytest.raises(ValueError, match="must be a number"):
        EvolutionSearch(arch_space=DEFAULT, costs=costs, targets={"macs": "big"})
    search = EvolutionSearch(arch_space=DEFAULT, costs=costs, targets={"macs": 3e8}, generations=1)
    with pytest.raises(ValueError, match="no candidate has been scored"):
        search.result()
    rows = search.ask()
    with pytest.raises(ValueError, match="shape"):
        search.tell(rows[:, :3], np.zeros(len(rows)))
    with pytest.raises(ValueError, match="scores"):
        search.tell(rows, np.zeros(len(rows) + 1))
    with pytest.raises(ValueError, match="one number per row"):
        search.run(lambda x: np.zeros((len(x), 2)))
    with pytest.raises(ValueError, match="cost 'macs' must return one number per row"):
        EvolutionSearch(arch_space=DEFAULT, costs={"macs": lambda x: np.zeros(3)}, targets={"macs": 1.0})


# ------------------------------------------------------------------------ many targets
def test_many_targets_share_one_run_and_more_budget_is_never_worse():
    budgets = np.linspace(45e6, 200e6, 10)
    objective = random_mlp(DEFAULT, seed=1)
    result = specialize(
        DEFAULT,
        objective,
        {"macs": DEFAULT_COSTS.macs},
        [{"macs": b} for b in budgets],
        generations=30,
        seed=0,
    )
    scores = np.array([t.score for t in result])
    assert all(t.costs["macs"] <= b for t, b in zip(result, budgets, strict=True))
    assert (np.diff(scores) >= 0).all()
    # one objective call per generation for all ten targets (30, the initial population and the
    # polish's generations: ten targets rotate)
    calls = []

    def counting(indices: np.ndarray) -> np.ndarray:
        calls.append(len(indices))
        return objective(indices)

    specialize(DEFAULT, counting, {"macs": DEFAULT_COSTS.macs}, [{"macs": b} for b in budgets], generations=30)
    assert len(calls) <= 31 + round(POLISH_SHARE * 30)


def test_tiny_space_finds_the_exhaustive_optimum_per_target():
    rows = all_subnets(TINY)
    objective = random_mlp(TINY, seed=2)
    scores, macs = objective(rows), TINY_COSTS.macs(rows)
    budgets = np.quantile(macs, [0.1, 0.3, 0.6, 1.0])
    result = specialize(
        TINY,
        objective,
        {"macs": TINY_COSTS.macs},
        [{"macs": float(b)} for b in budgets],
        generations=60,
        population_size=50,
        seed=0,
    )
    for target, budget in zip(result, budgets, strict=True):
        assert target.score == pytest.approx(scores[macs <= budget].max())


# ------------------------------------------------------------------------------ Pareto
def brute_force_front(objectives: np.ndarray) -> np.ndarray:
    n = len(objectives)
    dominated = np.zeros(n, dtype=bool)
    for i in range(n):
        for j in range(n):
            if (objectives[j] <= objectives[i]).all() and (objectives[j] < objectives[i]).any():
                dominated[i] = True
                break
    return ~dominated


@settings(max_examples=40, deadline=None)
@given(
    data=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6), st.integers(0, 6)), min_size=1, max_size=40),
    three=st.booleans(),
)
def test_pareto_mask_matches_brute_force(data, three):
    objectives = np.array(data, dtype=np.float64)[:, : 3 if three else 2]
    np.testing.assert_array_equal(pareto_mask(objectives), brute_force_front(objectives))
    rank = non_dominated_sort(objectives)
    np.testing.assert_array_equal(rank == 0, brute_force_front(objectives))
    for front in range(rank.max() + 1):  # each front is non-dominated once earlier fronts are removed
        rest = rank >= front
        np.testing.assert_array_equal(brute_force_front(objectives[rest]), rank[rest] == front)


def test_crowding_distance_boundaries_are_infinite():
    points = np.array([[0.0, 3.0], [1.0, 2.0], [2.0, 1.0], [3.0, 0.0]])
    distance = crowding_distance(points)
    assert np.isinf(distance[[0, 3]]).all()
    np.testing.assert_allclose(distance[[1, 2]], [4 / 3, 4 / 3])


def test_pareto_search_recovers_the_exhaustive_front_of_a_tiny_space():
    rows = all_subnets(TINY)
    objective = random_mlp(TINY, seed=0)
    scores, macs = objective(rows), TINY_COSTS.macs(rows).astype(np.float64)
    keep = pareto_mask(np.c_[-scores, macs])
    true_front = {(round(s, 9), m) for s, m in zip(scores[keep], macs[keep], strict=True)}
    assert len(true_front) > 10
    search = ParetoSearch(arch_space=TINY, costs={"macs": TINY_COSTS.macs}, generations=60, population_size=100, seed=0)
    front = search.run(objective)
    found = {(round(s, 9), m) for s, m in zip(front.scores, front.costs["macs"], strict=True)}
    assert found == true_front
    assert front.evaluations < len(rows) / 5  # found without enumerating the space
    assert len(front.archs()) == len(front) and all(isinstance(a, str) for a in front.archs())
    assert (np.diff(front.costs["macs"]) >= 0).all()


def test_a_front_lists_each_score_and_cost_once():
    """Subnets that score alike at the same cost are one point of the front (an untrained supernet
    scored every subnet 0.1003, and 'search --pareto' listed 18 identical rows)."""
    resolution = TINY.labels.index(TINY.RESOLUTION_LABEL)

    def resolution_cost(rows):
        return np.asarray(rows)[:, resolution].astype(np.float64)

    front = ParetoSearch(arch_space=TINY, costs={"r": resolution_cost}, generations=5, population_size=20,
                         seed=0).run(lambda rows: np.full(len(rows), 0.1003))
    assert len(front) == 1 and front.costs["r"][0] == 0 and front.scores[0] == 0.1003


def test_pareto_search_with_two_costs_and_a_budget():
    costs = {"macs": DEFAULT_COSTS.macs, "params": DEFAULT_COSTS.params}
    front = ParetoSearch(arch_space=DEFAULT, costs=costs, budgets={"macs": 150e6}, generations=10, seed=0).run(
        random_mlp(DEFAULT)
    )
    assert (front.costs["macs"] <= 150e6).all()
    objectives = np.c_[-front.scores, front.costs["macs"], front.costs["params"]]
    assert pareto_mask(objectives).all()


# ------------------------------------------------------------------ ask/tell and resume
@pytest.mark.parametrize(
    "targets, completed",
    [([{"macs": 70e6}, {"macs": 1e8}], 5), ([{"macs": b} for b in np.linspace(70e6, 2e8, 20)], 5),
     ([{"macs": b} for b in np.linspace(70e6, 2e8, 20)], 13)],
    ids=["two targets", "twenty targets (rotating)", "twenty targets (in the polish)"],
)
def test_resume_from_state_dict_gives_the_same_result(targets, completed):
    objective = random_mlp(DEFAULT)
    kwargs = dict(
        arch_space=DEFAULT,
        costs={"macs": DEFAULT_COSTS.macs},
        targets=targets,
        generations=12,
        seed=5,
    )
    uninterrupted = EvolutionSearch(**kwargs).run(objective)

    search = EvolutionSearch(**kwargs)
    for _ in range(completed):  # 13: the initial population and 12 generations; then the polish
        rows = search.ask()
        search.tell(rows, objective(rows))
    rows = search.ask()
    search.tell(rows[:7], objective(rows[:7]))  # interrupted in the middle of a generation
    state = json.loads(json.dumps(search.state_dict()))
    resumed = EvolutionSearch(**kwargs)
    resumed.load_state_dict(state)
    assert len(resumed.ask()) == len(rows) - 7
    result = resumed.run(objective)
    assert [t.arch for t in result] == [t.arch for t in uninterrupted]
    assert result.evaluations == uninterrupted.evaluations
    np.testing.assert_array_equal(result.history, uninterrupted.history)

    with pytest.raises(ValueError, match="different settings"):
        EvolutionSearch(**{**kwargs, "generations": 3}).load_state_dict(state)
    with pytest.raises(ValueError, match="not a ParetoSearch state"):
        ParetoSearch(arch_space=DEFAULT, costs={"macs": DEFAULT_COSTS.macs}).load_state_dict(state)


def test_pareto_resume():
    objective = random_mlp(DEFAULT)
    kwargs = dict(arch_space=DEFAULT, costs={"macs": DEFAULT_COSTS.macs}, generations=6, seed=1)
    uninterrupted = ParetoSearch(**kwargs).run(objective)
    search = ParetoSearch(**kwargs)
    for _ in range(3):
        rows = search.ask()
        search.tell(rows, objective(rows))
    resumed = ParetoSearch(**kwargs)
    resumed.load_state_dict(json.loads(json.dumps(search.state_dict())))
    front = resumed.run(objective)
    np.testing.assert_array_equal(front.indices, uninterrupted.indices)


def test_tell_accepts_outside_results_and_failures():
    objective = size_aware(DEFAULT)
    search = EvolutionSearch(
        arch_space=DEFAULT, costs={"macs": DEFAULT_COSTS.macs}, targets={"macs": 1e8}, generations=2, seed=0
    )
    rows = search.ask()
    scores = objective(rows)
    scores[0] = np.nan  # a failed evaluation: archived, never chosen
    search.tell(rows[::-1], scores[::-1])  # any order
    # a subnet evaluated elsewhere, better than anything found: it must win
    outside = search.arch_space.to_indices(search.arch_space.min_sample())[None]
    outside[0, -1] = 3
    search.tell(outside, [100.0])
    assert search.result()[0].score == 100.0
    result = search.run(objective)
    assert result[0].score == 100.0
    assert search.evaluations == result.evaluations


def test_max_evaluations_is_the_query_budget():
    search = EvolutionSearch(
        arch_space=DEFAULT,
        costs={"macs": DEFAULT_COSTS.macs},
        targets={"macs": 1e8},
        generations=1000,
        max_evaluations=333,
        seed=0,
    )
    result = search.run(random_mlp(DEFAULT))
    assert result.evaluations == 333
    assert search.done
