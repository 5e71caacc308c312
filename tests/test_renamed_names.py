"""The renaming pass of docs/architecture.md ("arch space" = ArchSpace as ``arch_space``, "supernet" =
the NNI module as ``supernet``): the old keyword ``space=`` and the old attribute ``.space`` keep
working for one release, each with a DeprecationWarning, and give what the new names give."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import TINY_SPACE_KWARGS

from ofa_nni import AnalyticCostModel, ArchSpace
from ofa_nni._deprecation import RenamedAttribute, renamed_keywords

TINY = ArchSpace(**TINY_SPACE_KWARGS)
COSTS = {"macs": AnalyticCostModel(TINY).macs}


def test_a_renamed_keyword_warns_maps_and_refuses_both_names():
    @renamed_keywords(space="arch_space")
    def describe(*, arch_space):
        return arch_space

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new name warns about nothing
        assert describe(arch_space=1) == 1
    with pytest.deprecated_call(match=r"describe\(\): the keyword space= is deprecated .*; pass arch_space="):
        assert describe(space=2) == 2
    with pytest.raises(TypeError, match=r"got both space= and arch_space="):
        describe(space=1, arch_space=1)

    class Holder:
        space = RenamedAttribute("arch_space")

        def __init__(self):
            self.arch_space = TINY

    with pytest.deprecated_call(match=r"Holder.space is deprecated .*; use .arch_space"):
        assert Holder().space is TINY


def test_search_engines_take_arch_space_and_the_old_keyword_for_one_release():
    from ofa_nni.search import EvolutionSearch, ParetoSearch, canonical_indices, minimum_costs, specialize

    with pytest.deprecated_call(match="EvolutionSearch"):
        old = EvolutionSearch(space=TINY, costs=COSTS, targets={"macs": 1e9}, generations=1, population_size=4)
    new = EvolutionSearch(arch_space=TINY, costs=COSTS, targets={"macs": 1e9}, generations=1, population_size=4)
    assert old.arch_space is new.arch_space is TINY
    with pytest.deprecated_call(match=r"EvolutionSearch.space"):
        assert new.space is TINY
    with pytest.deprecated_call(match="ParetoSearch"):
        pareto = ParetoSearch(space=TINY, costs=COSTS, generations=1, population_size=4)
    front = pareto.run(lambda rows: -rows.sum(axis=1).astype(float))
    with pytest.deprecated_call(match=r"ParetoFront.space"):
        assert front.space is front.arch_space is TINY
    objective = lambda rows: rows.sum(axis=1).astype(float)  # noqa: E731
    with pytest.deprecated_call(match="specialize"):
        by_old = specialize(objective=objective, costs=COSTS, targets={"macs": 1e9}, generations=1, space=TINY)
    assert by_old[0].arch == specialize(TINY, objective, COSTS, {"macs": 1e9}, generations=1)[0].arch
    with pytest.deprecated_call(match="minimum_costs"):
        assert minimum_costs(space=TINY, costs=COSTS)["macs"][0] == minimum_costs(TINY, COSTS)["macs"][0]
    rows = TINY.random_indices(3, np.random.default_rng(0))
    with pytest.deprecated_call(match="canonical_indices"):
        np.testing.assert_array_equal(canonical_indices(space=TINY, indices=rows), canonical_indices(TINY, rows))


def test_predictors_and_accuracy_data_take_arch_space_and_the_old_keyword_for_one_release(tmp_path):
    from ofa_nni.accuracy import AccuracyDataset, AccuracyPredictor, RidgeAccuracyPredictor, plan_subnets

    rows = plan_subnets(TINY, 12, seed=0)
    with pytest.deprecated_call(match="plan_subnets"):
        np.testing.assert_array_equal(plan_subnets(space=TINY, num_subnets=12, seed=0), rows)
    accuracies = np.linspace(0.2, 0.8, len(rows))
    with pytest.deprecated_call(match="AccuracyDataset"):
        dataset = AccuracyDataset(space=TINY, indices=rows, accuracies=accuracies)
    with pytest.deprecated_call(match=r"AccuracyDataset.space"):
        assert dataset.space is dataset.arch_space is TINY
    with pytest.deprecated_call(match="RidgeAccuracyPredictor"):
        predictor = RidgeAccuracyPredictor(space=TINY)
    predictor.fit(TINY.to_features(rows), accuracies)
    path = tmp_path / "ridge.npz"
    predictor.save(path)
    with pytest.deprecated_call(match=r"RidgeAccuracyPredictor.space"):
        assert predictor.space is TINY
    with pytest.deprecated_call(match=r"load\(\): the keyword space="):
        loaded = AccuracyPredictor.load(path, space=TINY)
    np.testing.assert_array_equal(loaded(rows), AccuracyPredictor.load(path, arch_space=TINY)(rows))


def test_costs_and_latency_tables_take_arch_space_and_the_old_keyword_for_one_release(tmp_path):
    from ofa_nni.efficiency import MacsModel
    from ofa_nni.latency import LatencyTable, build_latency_table

    rows = TINY.random_indices(5, np.random.default_rng(0))
    costs = AnalyticCostModel(TINY)
    with pytest.deprecated_call(match=r"AnalyticCostModel.space"):
        assert costs.space is costs.arch_space is TINY
    with pytest.deprecated_call(match="MacsModel"):
        macs = MacsModel(space=TINY)
    np.testing.assert_array_equal(macs(rows), costs.macs(rows))
    with pytest.deprecated_call(match=r"MacsModel.space"):
        assert macs.space is TINY
    with pytest.deprecated_call(match="build_latency_table"):
        table = build_latency_table(space=TINY, resolutions=(32,), warmup=0, repeats=1, rounds=1, num_threads=1,
                                    show_progress=False)
    with pytest.deprecated_call(match=r"LatencyTable.space"):
        assert table.space is table.arch_space is TINY
    path = tmp_path / "lut.json"
    table.save(path)
    with pytest.deprecated_call(match=r"load\(\): the keyword space="):
        loaded = LatencyTable.load(path, space=TINY)
    np.testing.assert_array_equal(loaded(rows), LatencyTable.load(path, arch_space=TINY)(rows))


def test_save_supernet_takes_the_supernet_and_the_old_keyword_for_one_release(tiny_space, tmp_path):
    from search_spaces import load_supernet, save_supernet

    with pytest.deprecated_call(match=r"save_supernet\(\): the keyword space= is deprecated .*; pass supernet="):
        save_supernet(space=tiny_space, path=tmp_path / "old.pt")
    save_supernet(supernet=tiny_space, path=tmp_path / "new.pt")
    assert load_supernet(tmp_path / "old.pt").space_kwargs() == load_supernet(tmp_path / "new.pt").space_kwargs()


def test_the_optuna_sampler_and_the_nni_tuner_hold_arch_space():
    from strategies import OFAEvolutionSampler
    from strategies.nni_tuner import OFAEvolutionTuner

    with pytest.deprecated_call(match="OFAEvolutionSampler"):
        sampler = OFAEvolutionSampler(space=TINY, seed=0)
    with pytest.deprecated_call(match=r"OFAEvolutionSampler.space"):
        assert sampler.space is sampler.arch_space is TINY
    from nnictl_experiment import TINY_SPEC

    tuner = OFAEvolutionTuner(space=TINY_SPEC)  # classArgs keep their key: "space" is a spec, not an ArchSpace
    with pytest.deprecated_call(match=r"OFAEvolutionTuner.space"):
        assert tuner.space == tuner.arch_space


def test_nni_search_space_takes_arch_space_and_the_old_keyword_for_one_release():
    from ofa_nni.nni_search_space import check_nni_search_space, dumps_nni_search_space, nni_search_space

    with pytest.deprecated_call(match="nni_search_space"):
        assert nni_search_space(space=TINY) == nni_search_space(arch_space=TINY)
    with pytest.deprecated_call(match="dumps_nni_search_space"):
        assert dumps_nni_search_space(space=TINY) == dumps_nni_search_space(TINY)
    with pytest.deprecated_call(match="check_nni_search_space"):
        check_nni_search_space(space=TINY, search_space=nni_search_space(TINY))
