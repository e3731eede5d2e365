"""Mask-pattern rarity: how unlikely a stay's missingness is under a model of normal missingness.

The second paper's trigger is a pattern of *missing* values meant to look normal. A defender who
wants to check that claim models which (hour, variable) cells are observed in ordinary stays and
asks how probable each stay's mask is. Observation is strongly structured (vitals hourly under
invasive monitoring, labs in panels, patients of different acuity), so independent cells are too
crude; the model is a mixture of K independent-Bernoulli profiles over the T x F cells, fit by EM
(seeded initialisation, cell probabilities kept in [1e-3, 1 - 1e-3]). "Normal" means shared by many
stays: a component whose weight falls below ``min_weight`` (default 10 %) is dropped during EM, so
a small group of stays with one unusual pattern -- poison at a few percent -- cannot claim a
component of its own and look typical.

Cross-fitted: the model that scores a stay was fit on the other folds, so a stay's own pattern never
makes itself likely. A stay's suspicion is its negative log-likelihood under that model. Limitations,
reported rather than hidden: poison above ``min_weight`` of the stays can still claim a component;
and a likelihood favours sparse masks (every observed cell of a rarely observed variable costs),
so a trigger that *removes* observations can look more typical than the stay it came from.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import logsumexp

from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.defences.base import Detector, check_float, check_int
from ehrbackdoor.defences.features import fold_ids, mask_matrix

_P_MIN = 1e-3


def fit_bernoulli_mixture(
    X: np.ndarray,
    k: int,
    n_iter: int,
    rng: np.random.Generator,
    min_weight: float = 0.0,
    tol: float = 1e-6,
) -> tuple[np.ndarray, np.ndarray]:
    """EM for a mixture of independent Bernoullis on binary rows of X; (log weights, probs).

    After each M-step the lightest component is dropped while its weight is below `min_weight`
    (and more than one component is left), so no component can describe a small group alone.
    """
    n = X.shape[0]
    k = max(1, min(k, n))
    resp = rng.dirichlet(np.ones(k), size=n)
    prev = -np.inf
    for _ in range(n_iter):
        nk = resp.sum(axis=0) + 1e-10
        if len(nk) > 1 and nk.min() / n < min_weight:
            keep = np.arange(len(nk)) != np.argmin(nk)
            resp = resp[:, keep]
            resp /= np.maximum(resp.sum(axis=1, keepdims=True), 1e-300)
            prev = -np.inf
            continue
        theta = np.clip((resp.T @ X) / nk[:, None], _P_MIN, 1 - _P_MIN)
        log_w = np.log(nk / n)
        ll = component_loglik(X, theta) + log_w
        total = logsumexp(ll, axis=1)
        resp = np.exp(ll - total[:, None])
        mean = float(total.mean())
        if mean - prev < tol * max(1.0, abs(mean)):
            break
        prev = mean
    nk = resp.sum(axis=0) + 1e-10
    theta = np.clip((resp.T @ X) / nk[:, None], _P_MIN, 1 - _P_MIN)
    return np.log(nk / n), theta


def component_loglik(X: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """(n, K) log p(x_i | component k) of binary rows under independent Bernoulli profiles."""
    log_p, log_q = np.log(theta), np.log1p(-theta)
    return X @ (log_p - log_q).T + log_q.sum(axis=1)


class MaskRarityDetector(Detector):
    """Cross-fitted negative log-likelihood of the hourly mask under a Bernoulli mixture."""

    name = "mask-rarity"

    def __init__(
        self,
        n_components: int = 8,
        min_weight: float = 0.1,
        n_folds: int = 5,
        n_iter: int = 100,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        self.n_components = check_int("n_components", n_components, 1)
        self.min_weight = check_float("min_weight", min_weight, 0.0, 1.0)
        self.n_folds = check_int("n_folds", n_folds, 2)
        self.n_iter = check_int("n_iter", n_iter, 1)

    def _score(self, cohort: Cohort, victim: Any, reference: Cohort | None) -> np.ndarray:
        X = mask_matrix(cohort)
        n = X.shape[0]
        folds = fold_ids(n, self.n_folds, self.seed)
        rng = self._rng()
        out = np.zeros(n)
        for f in np.unique(folds):
            test = folds == f
            log_w, theta = fit_bernoulli_mixture(
                X[~test], self.n_components, self.n_iter, rng, self.min_weight
            )
            out[test] = -logsumexp(component_loglik(X[test], theta) + log_w, axis=1)
            n_kept = len(log_w)
        self.info_ = {
            "n_cells": int(X.shape[1]),
            "observed_rate": float(X.mean()),
            "n_components_kept": int(n_kept),
        }
        return out
