"""Observation-mask utilities: the hourly masks of stays and distances between masks.

Shared by the missingness triggers (fitting and diagnostics), the VAE selection rule and the
stealth measures. A mask is a (T, F) boolean grid over the T hourly bins of the cohort's window: 1 where a stay has at least one observation of
the variable in the hour (the grid's rule, `grid_raw`).
"""

from __future__ import annotations

import numpy as np

from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.preprocess.grid import grid_raw


def observation_masks(cohort: Cohort) -> np.ndarray:
    """(n, T, F) bool: 1 where a stay has at least one observation in the hour (the grid rule)."""
    return grid_raw(cohort, impute="zero").mask


def pattern_diagnostics(pattern: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    """How a pattern relates to real masks (n, T, F); JSON-serialisable.

    - ``density``: share of cells that are 1;
    - ``nn_hamming``: cells by which the nearest real mask differs (what `exact` mode is judged by);
    - ``carrier_share``: share of real stays whose mask already lies inside the pattern, i.e. that
      carry the `delete` trigger by accident;
    - ``mean_deleted_fraction``: mean share of a stay's observed cells that `delete` removes (how
      strong, and how visible, the trigger is).
    """
    p = np.asarray(pattern, dtype=bool).reshape(-1)
    m = np.asarray(masks, dtype=bool).reshape(len(masks), -1)
    ham, outside = hamming_to_masks(p[None, :], m)
    n_obs = m.sum(axis=1)
    deleted = outside[0] / np.maximum(n_obs, 1)
    return {
        "density": float(p.mean()),
        "n_cells_on": int(p.sum()),
        "nn_hamming": int(ham[0].min()) if len(m) else 0,
        "median_hamming": float(np.median(ham[0])) if len(m) else 0.0,
        "carrier_share": float(np.mean(outside[0] == 0)) if len(m) else 0.0,
        "carrier_share_nonempty": float(np.mean((outside[0] == 0)[n_obs > 0]))
        if np.any(n_obs > 0)
        else 0.0,
        "mean_deleted_fraction": float(deleted[n_obs > 0].mean()) if np.any(n_obs > 0) else 0.0,
    }


def hamming_to_masks(
    candidates: np.ndarray, masks: np.ndarray, chunk: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Hamming distances (c, n) between flattened candidates and masks, and the number of each
    mask's observed cells that lie outside each candidate (0 = the mask lies inside it).

    One float32 matrix product per chunk of candidates (exact: counts stay far below 2^24)."""
    c = np.asarray(candidates, dtype=np.float32).reshape(len(candidates), -1)
    m = np.asarray(masks, dtype=np.float32).reshape(len(masks), -1)
    m_t = np.ascontiguousarray(m.T)
    n_m = m.sum(axis=1)
    ham = np.empty((len(c), len(m)), dtype=np.int32)
    outside = np.empty((len(c), len(m)), dtype=np.int32)
    for start in range(0, len(c), chunk):
        cc = c[start : start + chunk]
        inter = cc @ m_t
        ham[start : start + chunk] = np.rint(cc.sum(axis=1)[:, None] + n_m[None, :] - 2 * inter)
        outside[start : start + chunk] = np.rint(n_m[None, :] - inter)
    return ham, outside
