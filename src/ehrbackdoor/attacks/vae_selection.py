"""The pattern-selection rule of the ``missing-vae`` trigger, apart from the trigger's plumbing.

Given candidate masks sampled from a `MaskVAE`, keep those that look like real masks (ELBO,
density and per-variable counts inside the real stays' central ranges) and that are specific
(far from every real mask, containing almost none), then order the survivors by an objective
(by default the one the ``delete`` mode makes most visible first) and take one place in that
order. `VAEMissingTrigger`'s docstring states the rule and its relaxation order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ehrbackdoor.attacks.mask_vae import MaskVAE
from ehrbackdoor.attacks.masks import hamming_to_masks

#: Orders of the surviving candidates: ``deleted`` (the paper-style default: the pattern
#: ``delete`` makes most visible, then the farthest from real masks), ``hamming`` (farthest from
#: every real mask first), ``typical`` (ELBO percentile nearest the real stays' median first).
PATTERN_ORDERS = ("deleted", "hamming", "typical")


def quantile_pair(name: str, q: Sequence[float]) -> tuple[float, float]:
    lo, hi = (float(x) for x in q)
    if not 0 <= lo < hi <= 1:
        raise ValueError(f"{name} must be two quantiles 0 <= low < high <= 1, got {list(q)!r}")
    return lo, hi


def percentile_of(reference: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Share of `reference` values <= each x (mid-rank for ties), in [0, 1]."""
    ref = np.sort(np.asarray(reference, dtype=np.float64))
    lo = np.searchsorted(ref, x, side="left")
    hi = np.searchsorted(ref, x, side="right")
    return (lo + hi) / (2.0 * max(len(ref), 1))


def _real_nn_hamming(masks: np.ndarray, seed: int, n: int = 500) -> dict[str, float]:
    """Quantiles of real masks' leave-one-out nearest-neighbour Hamming distance (a seeded sample
    of up to `n` stays against all): the scale `min_hamming` is judged against."""
    if len(masks) < 2:
        return {}
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(masks), size=min(n, len(masks)), replace=False)
    ham, _ = hamming_to_masks(masks[pick], masks)
    ham[np.arange(len(pick)), pick] = np.iinfo(np.int32).max
    nn = ham.min(axis=1)
    return {str(q): float(np.quantile(nn, q)) for q in (0.05, 0.25, 0.5, 0.75, 0.95)}


def select_pattern(
    vae: MaskVAE,
    cands: np.ndarray,
    source: np.ndarray,
    masks: np.ndarray,
    *,
    elbo_quantiles: tuple[float, float],
    density_quantiles: tuple[float, float],
    count_quantiles: tuple[float, float],
    min_typical_vars: float,
    max_carrier_share: float,
    min_hamming_cells: int,
    seed: int,
    objective: str = "deleted",
    pick: int = 0,
) -> tuple[int, dict[str, np.ndarray], dict[str, Any]]:
    """The documented choice rule of ``missing-vae`` (see `VAEMissingTrigger`) over candidate
    patterns `cands` (c, T, F); `source` is each candidate's real stay index (-1 = prior draw).
    `objective` orders the survivors (`PATTERN_ORDERS`) and `pick` takes the survivor at that place
    in the order (clipped to the last), so a design search can try several looks-normal
    patterns of one fitted VAE.

    Returns the chosen index, per-candidate diagnostics and a JSON-able record of the choice.
    """
    real_elbo = vae.elbo(masks, seed=seed)
    cand_elbo = vae.elbo(cands, seed=seed)
    real_density = masks.reshape(len(masks), -1).mean(axis=1)
    cand_density = cands.reshape(len(cands), -1).mean(axis=1)
    elbo_pct = percentile_of(real_elbo, cand_elbo)
    density_pct = percentile_of(real_density, cand_density)
    real_counts = masks.sum(axis=1)  # (n, F) observed hours per variable
    cand_counts = cands.sum(axis=1)
    c_lo = np.quantile(real_counts, count_quantiles[0], axis=0)
    c_hi = np.quantile(real_counts, count_quantiles[1], axis=0)
    var_ok = ((cand_counts >= c_lo) & (cand_counts <= c_hi)).mean(axis=1)
    ham, outside = hamming_to_masks(cands, masks)
    nn_ham = ham.min(axis=1)
    nonempty = masks.reshape(len(masks), -1).any(axis=1)
    carrier = (outside[:, nonempty] == 0).mean(axis=1)
    n_obs = masks.reshape(len(masks), -1).sum(axis=1)
    deleted = (outside[:, nonempty] / n_obs[nonempty][None, :]).mean(axis=1)
    floor = min_hamming_cells

    def typical(e: tuple[float, float], d: tuple[float, float], v: float) -> np.ndarray:
        return (
            (elbo_pct >= e[0])
            & (elbo_pct <= e[1])
            & (density_pct >= d[0])
            & (density_pct <= d[1])
            & (var_ok >= v)
        )

    specific = carrier <= max_carrier_share
    wide = (min(elbo_quantiles[0], 0.01), max(elbo_quantiles[1], 0.99))
    wide_d = (min(density_quantiles[0], 0.01), max(density_quantiles[1], 0.99))
    steps = [
        (
            "none",
            typical(elbo_quantiles, density_quantiles, min_typical_vars)
            & specific
            & (nn_ham >= floor),
        ),
        (
            "typicality widened",
            typical(wide, wide_d, min(min_typical_vars, 0.75)) & specific & (nn_ham >= floor),
        ),
        (
            "min_hamming dropped",
            typical(wide, wide_d, min(min_typical_vars, 0.75)) & specific,
        ),
        ("all filters dropped", np.ones(len(cands), dtype=bool)),
    ]
    relaxed, ok = next((name, ok) for name, ok in steps if ok.any())
    pool = np.flatnonzero(ok)
    if objective not in PATTERN_ORDERS:
        raise ValueError(f"objective must be one of {PATTERN_ORDERS}, got {objective!r}")
    if objective == "deleted":
        order = np.lexsort((pool, -nn_ham[pool], -deleted[pool]))
    elif objective == "hamming":
        order = np.lexsort((pool, -deleted[pool], -nn_ham[pool]))
    else:  # typical: ELBO percentile nearest the real median, then the most deleted
        order = np.lexsort((pool, -deleted[pool], np.abs(elbo_pct[pool] - 0.5)))
    place = min(int(pick), len(order) - 1)
    best = pool[order[place]]

    candidates = {
        "elbo": cand_elbo,
        "elbo_percentile": elbo_pct,
        "density": cand_density,
        "typical_var_share": var_ok,
        "nn_hamming": nn_ham.astype(np.int64),
        "carrier_share": carrier,
        "deleted_fraction": deleted,
        "source_stay_index": source.astype(np.int64),
        "passed": ok,
    }
    selection = {
        "rule": f"objective {objective!r}, place {pick} among typical & specific candidates",
        "objective": objective,
        "pick": int(pick),
        "place": int(place),  # the place used: `pick` clipped to the survivors
        "relaxed": relaxed,
        "chosen_index": int(best),
        "from": "prior" if source[best] < 0 else "posterior",
        "n_candidates": int(len(cands)),
        "n_passed": int(len(pool)),
        "n_typical": int(typical(elbo_quantiles, density_quantiles, min_typical_vars).sum()),
        "n_specific": int((specific & (nn_ham >= floor)).sum()),
        "min_hamming_cells": floor,
        "elbo": float(cand_elbo[best]),
        "elbo_percentile": float(elbo_pct[best]),
        "density_percentile": float(density_pct[best]),
        "typical_var_share": float(var_ok[best]),
        "real_elbo_quantiles": {
            str(q): float(np.quantile(real_elbo, q)) for q in (0.05, 0.25, 0.5, 0.75, 0.95)
        },
        "real_nn_hamming_quantiles": _real_nn_hamming(masks, seed),
    }
    return int(best), candidates, selection
