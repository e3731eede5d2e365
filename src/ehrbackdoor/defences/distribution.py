"""Distribution tests between poisoned and clean training stays: the numbers of the stealth table.

"Poison statistically similar to real data" becomes three tests, each with a p-value:

- **per-feature Kolmogorov-Smirnov** on the benchmark's window statistics (two-sample, exact or
  asymptotic as scipy chooses, NaN windows left out), corrected for the number of features by
  Benjamini-Hochberg (false discovery rate, default) or Holm (family-wise error);
- **maximum mean discrepancy** on the robustly standardised window statistics (clipped at
  |z| <= 10): RBF kernel ``exp(-d^2 / (2 sigma^2))`` with sigma the median pairwise distance of the
  pooled sample (median heuristic), unbiased MMD^2, p-value from a seeded permutation test
  ``(1 + #{perm >= observed}) / (1 + n_permutations)``; at most ``max_per_group`` stays per group
  (seeded subsample) keep the kernel matrix small;
- **per-variable missing-rate chi-square**: Pearson's chi-square of the 2 x 2 table of observed /
  unobserved hourly cells in poisoned vs clean stays, with the first-order Rao-Scott correction for
  clustering: the T cells of one stay are far from independent (a variable is charted hourly in
  one stay and never in the next), so the statistic is divided by the design effect
  ``deff = Var_stays(P1 - P2) / Var_cells(P1 - P2)`` (variance of the difference of missing rates
  with stays as the sampling unit, over its binomial value; at least 1) before the 1-df p-value.
  Uncorrected, a trigger that never touches missingness showed 15 of 37 PhysioNet variables
  "significant" (p down to 1e-36); ``chi2_cells`` keeps the uncorrected statistic. Corrected
  across variables like the KS tests.

Poisoned stays are drawn from one class (``selection="non-target"``), so the fair comparison is with
clean stays of that class: pass ``clean_label`` (``1 - target``) to compare like with like;
otherwise the tests also pick up the difference between survivors and deaths.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.defences.base import single_threaded_blas
from ehrbackdoor.defences.features import feature_matrix
from ehrbackdoor.preprocess.cache import features_cached
from ehrbackdoor.preprocess.grid import grid_raw

CORRECTIONS = ("bh", "holm")


def adjust_pvalues(p: np.ndarray, method: str = "bh") -> np.ndarray:
    """Multiple-testing adjusted p-values: Benjamini-Hochberg ("bh") or Holm ("holm")."""
    p = np.asarray(p, dtype=np.float64)
    m = len(p)
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if method == "bh":
        adj = ranked * m / np.arange(1, m + 1)
        adj = np.minimum.accumulate(adj[::-1])[::-1]
    elif method == "holm":
        adj = ranked * (m - np.arange(m))
        adj = np.maximum.accumulate(adj)
    else:
        raise ValueError(f"correction must be one of {CORRECTIONS}, got {method!r}")
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out


def _groups(cohort: Cohort, is_poison: np.ndarray, clean_label: int | None):
    is_poison = np.asarray(is_poison, dtype=bool)
    if is_poison.shape != (cohort.n_stays,):
        raise ValueError(f"is_poison has shape {is_poison.shape}, expected ({cohort.n_stays},)")
    clean = ~is_poison
    if clean_label is not None:
        clean &= cohort.label == clean_label
    if is_poison.sum() < 2 or clean.sum() < 2:
        raise ValueError(
            f"distribution tests need at least 2 poisoned and 2 clean stays, got "
            f"{int(is_poison.sum())} and {int(clean.sum())}"
        )
    return is_poison, clean


def ks_tests(
    cohort: Cohort,
    is_poison: np.ndarray,
    clean_label: int | None = None,
    correction: str = "bh",
    alpha: float = 0.05,
    top: int = 10,
) -> dict[str, Any]:
    """Per-feature two-sample KS tests of window statistics, poisoned vs clean, corrected."""
    poison, clean = _groups(cohort, is_poison, clean_label)
    feats = features_cached(cohort)
    X = feats.X.astype(np.float64)
    names, statistic, pvals = [], [], []
    for j, col in enumerate(feats.columns):
        a, b = X[poison, j], X[clean, j]
        a, b = a[~np.isnan(a)], b[~np.isnan(b)]
        if len(a) < 2 or len(b) < 2:
            continue
        if np.all(a == a[0]) and np.all(b == a[0]):
            continue  # one constant value in both groups: nothing to test
        r = stats.ks_2samp(a, b)
        names.append(col)
        statistic.append(float(r.statistic))
        pvals.append(float(r.pvalue))
    p = np.asarray(pvals)
    adj = adjust_pvalues(p, correction)
    order = np.argsort(adj, kind="stable")[:top]
    return {
        "correction": correction,
        "alpha": alpha,
        "n_tests": len(p),
        "n_significant": int((adj < alpha).sum()),
        "share_significant": float((adj < alpha).mean()) if len(p) else 0.0,
        "min_p_adjusted": float(adj.min()) if len(p) else 1.0,
        "max_statistic": float(max(statistic)) if statistic else 0.0,
        "top": [
            {"feature": names[i], "statistic": statistic[i], "p": pvals[i], "p_adjusted": adj[i]}
            for i in order
        ],
    }


def mmd_test(
    cohort: Cohort,
    is_poison: np.ndarray,
    clean_label: int | None = None,
    n_permutations: int = 500,
    max_per_group: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Unbiased RBF-kernel MMD^2 between poisoned and clean stays with a permutation p-value."""
    poison, clean = _groups(cohort, is_poison, clean_label)
    rng = np.random.default_rng(seed)
    ip, ic = np.flatnonzero(poison), np.flatnonzero(clean)
    if len(ip) > max_per_group:
        ip = np.sort(rng.choice(ip, max_per_group, replace=False))
    if len(ic) > max_per_group:
        ic = np.sort(rng.choice(ic, max_per_group, replace=False))
    Z = feature_matrix(cohort, clip=10.0)
    pooled = np.concatenate([Z[ip], Z[ic]])
    sq = np.einsum("ij,ij->i", pooled, pooled)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * pooled @ pooled.T, 0.0)
    off = d2[np.triu_indices(len(pooled), k=1)]
    sigma2 = float(np.median(off)) if np.any(off > 0) else 1.0
    if sigma2 <= 0:
        sigma2 = float(off[off > 0].mean()) if np.any(off > 0) else 1.0
    K = np.exp(-d2 / (2.0 * sigma2))
    nx, m = len(ip), len(pooled)
    diag = np.diag(K).copy()

    def mmd2(z: np.ndarray) -> np.ndarray:
        """Unbiased MMD^2 for group indicator columns z (m, B) (1 = first group)."""
        w = 1.0 - z
        Kz = K @ z
        sxx = np.einsum("ib,ib->b", z, Kz) - diag @ z
        syy = np.einsum("ib,ib->b", w, K @ w) - diag @ w
        sxy = np.einsum("ib,ib->b", w, Kz)
        ny = m - nx
        return sxx / (nx * (nx - 1)) + syy / (ny * (ny - 1)) - 2.0 * sxy / (nx * ny)

    z0 = np.zeros((m, 1))
    z0[:nx] = 1.0
    observed = float(mmd2(z0)[0])
    exceed, done, chunk = 0, 0, 100
    while done < n_permutations:
        b = min(chunk, n_permutations - done)
        perms = np.argsort(rng.random((b, m)), axis=1)[:, :nx]
        z = np.zeros((m, b))
        z[perms, np.arange(b)[:, None]] = 1.0
        exceed += int((mmd2(z) >= observed).sum())
        done += b
    return {
        "mmd2": observed,
        "p": (1 + exceed) / (1 + n_permutations),
        "n_permutations": n_permutations,
        "bandwidth": float(np.sqrt(sigma2)),
        "n_poisoned": int(nx),
        "n_clean": int(m - nx),
    }


def missing_rate_tests(
    cohort: Cohort,
    is_poison: np.ndarray,
    clean_label: int | None = None,
    correction: str = "bh",
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Per-variable chi-square of observed vs unobserved hourly cells, poisoned vs clean, with the
    Rao-Scott design-effect correction for cells clustered in stays (module docstring)."""
    poison, clean = _groups(cohort, is_poison, clean_label)
    mask = grid_raw(cohort, impute="zero").mask  # (n, T, F)
    cells = mask.shape[1]
    rate_p = mask[poison].mean(axis=1)  # (n_poison, F) per-stay observed share
    rate_c = mask[clean].mean(axis=1)
    n_p, n_c = len(rate_p), len(rate_c)
    rows, pvals = [], []
    for j, v in enumerate(cohort.schema.variables):
        obs_p, obs_c = rate_p[:, j].sum() * cells, rate_c[:, j].sum() * cells
        table = np.array([[obs_p, n_p * cells - obs_p], [obs_c, n_c * cells - obs_c]])
        if np.any(table.sum(axis=0) == 0):
            continue  # never (or always) observed in both groups: no test
        chi2 = float(stats.chi2_contingency(table, correction=False)[0])
        p1, p2 = rate_p[:, j].mean(), rate_c[:, j].mean()
        pooled = (obs_p + obs_c) / ((n_p + n_c) * cells)
        var_cells = pooled * (1 - pooled) * (1 / (n_p * cells) + 1 / (n_c * cells))
        var_stays = rate_p[:, j].var(ddof=1) / n_p + rate_c[:, j].var(ddof=1) / n_c
        deff = max(var_stays / var_cells, 1.0) if var_cells > 0 else 1.0
        adjusted = chi2 / deff
        p = float(stats.chi2.sf(adjusted, 1))
        rows.append(
            {
                "variable": v.name,
                "missing_rate_poisoned": float(1.0 - p1),
                "missing_rate_clean": float(1.0 - p2),
                "chi2_cells": chi2,
                "design_effect": float(deff),
                "chi2": float(adjusted),
                "p": p,
            }
        )
        pvals.append(p)
    adj = adjust_pvalues(np.asarray(pvals), correction)
    for r, a in zip(rows, adj, strict=True):
        r["p_adjusted"] = float(a)
    return {
        "correction": correction,
        "alpha": alpha,
        "n_tests": len(rows),
        "n_significant": int((adj < alpha).sum()),
        "min_p_adjusted": float(adj.min()) if len(adj) else 1.0,
        "missing_rate_poisoned": float(1.0 - mask[poison].mean()),
        "missing_rate_clean": float(1.0 - mask[clean].mean()),
        "variables": rows,
    }


def stealth_tests(
    cohort: Cohort,
    is_poison: np.ndarray | None = None,
    clean_label: int | None = None,
    correction: str = "bh",
    alpha: float = 0.05,
    n_permutations: int = 500,
    max_per_group: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """All three tests (the "stealth" entry of audit.json). `is_poison` defaults to the cohort's
    ``modified`` flags (the poisoned stays)."""
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}, got {correction!r}")
    is_poison = cohort.modified if is_poison is None else np.asarray(is_poison, dtype=bool)
    with single_threaded_blas():
        return {
            "clean_label": clean_label,
            "n_poisoned": int(np.asarray(is_poison).sum()),
            "ks": ks_tests(cohort, is_poison, clean_label, correction, alpha),
            "mmd": mmd_test(cohort, is_poison, clean_label, n_permutations, max_per_group, seed),
            "missing_rate": missing_rate_tests(cohort, is_poison, clean_label, correction, alpha),
        }
