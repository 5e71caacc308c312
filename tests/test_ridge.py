"""The one ridge surrogate (ofa_nni.ridge): what RidgeAccuracyPredictor and the Optuna sampler fit."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TINY_SPACE_KWARGS

from ofa_nni import ArchSpace
from ofa_nni.errors import InvalidInputError
from ofa_nni.ridge import fit_ridge

SPACE = ArchSpace()
ALPHAS = tuple(10.0 ** np.arange(-3, 3.5, 0.5))


def _data(n: int, seed: int, outputs: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = SPACE.to_features(SPACE.random_indices(n, rng)).astype(np.float64)
    y = x @ rng.normal(size=(x.shape[1], outputs)) * 0.01 + rng.normal(size=(n, outputs)) * 0.01 + 0.7
    return x, y


@pytest.mark.parametrize("n, seed", [(30, 0), (80, 1), (400, 2)])
def test_leave_one_out_choice_equals_scikit_learns_ridgecv(n: int, seed: int) -> None:
    sklearn = pytest.importorskip("sklearn.linear_model")
    x, y = _data(n, seed)
    ours = fit_ridge(x, y[:, 0], ALPHAS)
    reference = sklearn.RidgeCV(alphas=ALPHAS).fit(x, y[:, 0])
    assert ours.alpha == reference.alpha_
    np.testing.assert_allclose(ours.coef, reference.coef_, atol=1e-10)
    np.testing.assert_allclose(ours.predict(x[:5]), reference.predict(x[:5]), atol=1e-10)


def test_several_targets_are_fitted_column_by_column_with_one_penalty() -> None:
    x, y = _data(60, 3, outputs=3)
    together = fit_ridge(x, y, alphas=(1.0,))
    assert together.coef.shape == (x.shape[1], 3)
    for k in range(3):
        alone = fit_ridge(x, y[:, k], alphas=(1.0,))
        np.testing.assert_allclose(together.predict(x)[:, k], alone.predict(x), atol=1e-10)


def test_the_optuna_sampler_and_the_predictor_use_it() -> None:
    from ofa_nni.accuracy import RidgeAccuracyPredictor
    from strategies.optuna_sampler import _ridge_predictions

    space = ArchSpace(**TINY_SPACE_KWARGS)
    rng = np.random.default_rng(0)
    rows, candidates = space.random_indices(40, rng), space.random_indices(7, rng)
    values = rng.normal(size=(40, 1))
    constraints = rng.normal(size=(40, 2))
    predicted, violation = _ridge_predictions(space, rows, values, constraints, candidates)
    model = fit_ridge(space.to_features(rows), np.column_stack([values, constraints]), alphas=(1.0,))
    expected = model.predict(space.to_features(candidates))
    np.testing.assert_allclose(predicted, expected[:, :1], atol=1e-10)
    np.testing.assert_allclose(violation, np.clip(expected[:, 1:], 0, None).sum(axis=1), atol=1e-10)

    # The predictor fits the same ridge on the logits of the accuracies (bounded predictions).
    from ofa_nni.accuracy import accuracy_to_logit, logit_to_accuracy

    accuracies = rng.uniform(0.5, 0.99, size=40)
    predictor = RidgeAccuracyPredictor(arch_space=space)
    predictor.fit(space.to_features(rows), accuracies)
    direct = fit_ridge(space.to_features(rows), accuracy_to_logit(accuracies), predictor.alphas)
    assert predictor.alpha == direct.alpha
    np.testing.assert_allclose(predictor(candidates), logit_to_accuracy(direct.predict(space.to_features(candidates))),
                               atol=1e-10)


def test_bad_input_is_refused() -> None:
    x, y = _data(10, 4)
    with pytest.raises(InvalidInputError, match="at least 2 samples"):
        fit_ridge(x[:1], y[:1])
    with pytest.raises(InvalidInputError, match="alphas must be positive"):
        fit_ridge(x, y, alphas=(0.0,))
    with pytest.raises(InvalidInputError, match="one target row each"):
        fit_ridge(x, y[:5])
