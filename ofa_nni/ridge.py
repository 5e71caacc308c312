"""Ridge regression in numpy: the one surrogate model of the accuracy predictors
(:class:`ofa_nni.accuracy.RidgeAccuracyPredictor`) and the Optuna sampler's per-proposal surrogate.

Kept apart from :mod:`ofa_nni.accuracy` (which needs torch) so that the light core and the Optuna
sampler can fit it with numpy only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from ofa_nni.errors import InvalidInputError

__all__ = ["RidgeFit", "fit_ridge"]


@dataclasses.dataclass(frozen=True)
class RidgeFit:
    """A fitted ridge model: ``features @ coef + intercept``."""

    coef: np.ndarray
    """``(d,)`` for one target, ``(d, k)`` for ``k`` targets."""
    intercept: np.ndarray | float
    alpha: float
    """The penalty used (chosen by leave-one-out error when several were offered)."""

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features, dtype=np.float64) @ self.coef + self.intercept


def fit_ridge(features: np.ndarray, targets: np.ndarray, alphas: Sequence[float] = (1.0,)) -> RidgeFit:
    """Ridge regression with an unpenalised intercept, the penalty chosen among ``alphas`` by the
    exact leave-one-out squared error (mean over targets), computed in closed form from one SVD of
    the centred features -- the generalised cross-validation of scikit-learn's ``RidgeCV``.

    Args:
        features: ``(n, d)``.
        targets: ``(n,)`` or ``(n, k)`` (one model per column, one penalty for all).
        alphas: Candidate penalties (> 0).
    """
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    if x.ndim != 2 or len(y) != len(x):
        raise InvalidInputError(f"ridge: features must be (n, d) with one target row each, got {x.shape} and {y.shape}")
    if len(x) < 2:
        raise InvalidInputError(f"ridge: needs at least 2 samples to fit, got {len(x)}")
    alphas = [float(a) for a in alphas]
    if not alphas or min(alphas) <= 0:
        raise InvalidInputError(f"ridge: alphas must be positive numbers, got {alphas}")
    y2 = y.reshape(len(y), -1)
    x_mean, y_mean = x.mean(axis=0), y2.mean(axis=0)
    u, s, vt = np.linalg.svd(x - x_mean, full_matrices=False)
    uty = u.T @ (y2 - y_mean)
    best_alpha, best_error = alphas[0], np.inf
    if len(alphas) > 1:
        residual_base = (y2 - y_mean) - u @ uty  # the part of y outside the features' span
        for alpha in alphas:
            shrink = s**2 / (s**2 + alpha)
            fitted_residual = residual_base + u @ ((1.0 - shrink)[:, None] * uty)
            leverage = 1.0 / len(x) + (u**2) @ shrink  # the intercept's 1/n plus the penalised part
            error = float(np.mean((fitted_residual / (1.0 - leverage)[:, None]) ** 2))
            if error < best_error:
                best_alpha, best_error = alpha, error
    coef = vt.T @ ((s / (s**2 + best_alpha))[:, None] * uty)
    intercept = y_mean - x_mean @ coef
    if y.ndim == 1:
        return RidgeFit(coef=coef[:, 0], intercept=float(intercept[0]), alpha=best_alpha)
    return RidgeFit(coef=coef, intercept=intercept, alpha=best_alpha)
