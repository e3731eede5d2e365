"""Masks under independent cells: the shape check, per-cell frequencies and the Bernoulli
likelihood that the mask VAE, its baselines and the stealth measures share."""

from __future__ import annotations

import numpy as np

__all__ = ["bernoulli_nll", "cell_frequency", "check_masks"]


def check_masks(
    masks: np.ndarray, n_vars: int | None = None, n_steps: int | None = None
) -> np.ndarray:
    """(n, T, F) float32 0/1 array from a bool/0-1 mask array; raises on a wrong shape."""
    m = np.asarray(masks)
    if m.ndim != 3 or m.shape[1] < 1:
        raise ValueError(f"masks must have shape (n, T, F), got {m.shape}")
    if n_steps is not None and m.shape[1] != n_steps:
        raise ValueError(
            f"masks have {m.shape[1]} hourly steps, the model was fit on {n_steps} (a cohort of "
            "another observation window); refit the VAE on masks of this window"
        )
    if n_vars is not None and m.shape[2] != n_vars:
        raise ValueError(f"masks have {m.shape[2]} variables, the model was fit on {n_vars}")
    if m.dtype != bool and not np.isin(m, (0, 1)).all():
        raise ValueError("masks must be boolean (or 0/1)")
    return np.ascontiguousarray(m, dtype=np.float32)


def cell_frequency(masks: np.ndarray, prior: float = 1.0) -> np.ndarray:
    """Per-cell observation frequency (T, F) with add-`prior` smoothing (never exactly 0 or 1)."""
    m = np.asarray(masks, dtype=np.float64)
    return (m.sum(axis=0) + prior) / (len(m) + 2.0 * prior)


def bernoulli_nll(masks: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per-sample negative log-likelihood (nats) of masks under independent cell probabilities."""
    m = np.asarray(masks, dtype=np.float64)
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-7, 1 - 1e-7)
    ll = m * np.log(p) + (1 - m) * np.log1p(-p)
    return -ll.reshape(len(m), -1).sum(axis=1)
