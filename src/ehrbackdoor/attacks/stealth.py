"""Stealth of a missingness trigger: do triggered stays' observation masks look like real ones?

A missingness trigger changes *which* cells are observed, so its stealth is judged on masks (the
(T, F) `observation_masks`), comparing triggered stays with clean stays:

1. ``elbo`` -- where the pattern's, and each triggered stay's, ELBO under the mask VAE falls among
   the clean stays' ELBOs (percentile 0.5 = perfectly typical, near 0 = implausible);
2. ``missing_rate`` -- per variable, the share of (stay, hour) cells without an observation in
   triggered minus clean stays (a trigger that empties vitals shows up here);
3. ``nn_hamming`` -- each stay's Hamming distance to its nearest *other* clean stay's mask
   (triggered vs clean leave-one-out): masks no real stay resembles stand out;
4. ``rarity_detector`` -- the share of stays a simple mask-rarity detector flags: score = negative
   log-likelihood under independent per-cell Bernoulli rates fit on the reference (training)
   masks, flagged above the 95th percentile of the reference scores; with a VAE also the same
   detector on the negative ELBO. Because likelihoods favour sparse masks, a stay thinned by
   ``delete`` looks *more* probable, so each detector also reports a two-sided rule (outside the
   reference's central 95 %), and ``low_density`` flags masks sparser than 95 % of the reference.

`missingness_stealth` returns all four as a JSON-serialisable dict (the "stealth" entry of an
attack's results.json).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ehrbackdoor.attacks.mask_vae import MaskVAE, bernoulli_nll, cell_frequency
from ehrbackdoor.attacks.masks import hamming_to_masks, observation_masks
from ehrbackdoor.data.cohort import Cohort

#: Reference-score quantile above which the rarity detector flags a stay.
FLAG_QUANTILE = 0.95


def _rarity_model(
    train_masks: np.ndarray, vae: MaskVAE | None
) -> Callable[[np.ndarray], np.ndarray]:
    """Score function of the rarity detector (higher = rarer), fit on `train_masks`."""
    if vae is not None:
        return lambda m: -vae.elbo(m) if len(m) else np.zeros(0)
    freq = cell_frequency(train_masks)
    return lambda m: bernoulli_nll(m, freq) if len(m) else np.zeros(0)


def mask_rarity_scores(
    train_masks: np.ndarray,
    masks: np.ndarray,
    vae: MaskVAE | None = None,
    quantile: float = FLAG_QUANTILE,
) -> tuple[np.ndarray, float]:
    """Rarity score of each mask and the flag threshold (higher = rarer).

    Without `vae`: negative log-likelihood (nats) under per-cell independent Bernoulli rates fit on
    `train_masks` (add-one smoothed) -- a detector any defender can fit. With `vae`: the negative
    ELBO. The threshold is the `quantile` of the clean training masks' own scores, so about 5 % of
    clean stays are flagged.
    """
    train_masks = np.asarray(train_masks, dtype=bool)
    score = _rarity_model(train_masks, vae)
    return score(np.asarray(masks, dtype=bool)), float(np.quantile(score(train_masks), quantile))


def _nn_hamming(
    masks: np.ndarray, ref: np.ndarray, own: np.ndarray | None, exclude_ids: np.ndarray | None
) -> np.ndarray:
    """Distance of each mask to the nearest reference mask, skipping references whose stay id
    equals the mask's own (`own` = stay ids of `masks`, `exclude_ids` = stay ids of `ref`)."""
    if len(masks) == 0 or len(ref) == 0:
        return np.zeros(len(masks))
    out = np.empty(len(masks))
    for start in range(0, len(masks), 512):
        ham, _ = hamming_to_masks(masks[start : start + 512], ref)
        if own is not None and exclude_ids is not None:
            same = own[start : start + 512, None] == exclude_ids[None, :]
            ham = np.where(same, np.iinfo(np.int32).max, ham)
        out[start : start + 512] = ham.min(axis=1)
    return out


def _density(masks: np.ndarray) -> np.ndarray:
    return masks.reshape(len(masks), -1).mean(axis=1) if len(masks) else np.zeros(0)


def _flag_shares(
    ref: np.ndarray, clean: np.ndarray, triggered: np.ndarray, two_sided: bool
) -> dict[str, float]:
    """Shares of clean and triggered stays flagged: score above the reference's 95th percentile
    and, if `two_sided`, outside its central 95 % range."""
    thr = float(np.quantile(ref, FLAG_QUANTILE))
    out = {
        "threshold": thr,
        "clean_flagged": float(np.mean(clean > thr)) if len(clean) else 0.0,
        "triggered_flagged": float(np.mean(triggered > thr)) if len(triggered) else 0.0,
    }
    if two_sided:
        lo, hi = np.quantile(ref, [(1 - FLAG_QUANTILE) / 2, (1 + FLAG_QUANTILE) / 2])
        for name, x in (("clean", clean), ("triggered", triggered)):
            flagged = (x < lo) | (x > hi)
            out[f"{name}_flagged_two_sided"] = float(np.mean(flagged)) if len(x) else 0.0
    return out


def _summary(x: np.ndarray) -> dict[str, float]:
    if len(x) == 0:
        return {"mean": float("nan"), "median": float("nan")}
    return {"mean": float(np.mean(x)), "median": float(np.median(x))}


def missingness_stealth(
    clean: Cohort,
    triggered: Cohort,
    vae: MaskVAE | None,
    pattern: np.ndarray,
    reference: Cohort | None = None,
    max_clean: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """The four stealth measures of module docstring for `triggered` stays against `clean` ones.

    `reference` (default: `clean`) supplies the masks the rarity detector is fit on (the clean
    training stays in an attack run). Leave-one-out distances among clean stays use a seeded
    sample of at most `max_clean` stays to keep the cost bounded.
    """
    if clean.schema.name != triggered.schema.name:
        raise ValueError("clean and triggered cohorts use different schemas")
    pattern = np.asarray(pattern, dtype=bool)
    m_c = observation_masks(clean)
    m_t = observation_masks(triggered)
    m_ref = m_c if reference is None else observation_masks(reference)
    names = clean.schema.names
    out: dict[str, Any] = {
        "n_clean": int(len(m_c)),
        "n_triggered": int(len(m_t)),
        "pattern_density": float(pattern.mean()),
        "density": {
            "clean": float(m_c.mean()) if len(m_c) else float("nan"),
            "triggered": float(m_t.mean()) if len(m_t) else float("nan"),
        },
        "exact_match_share": float(np.mean(np.all(m_t == pattern[None], axis=(1, 2))))
        if len(m_t)
        else 0.0,
        "clean_carrier_share": float(np.mean(~np.any(m_c & ~pattern[None], axis=(1, 2))))
        if len(m_c)
        else 0.0,
    }

    # 1. ELBO percentile
    if vae is not None:
        e_c = np.sort(vae.elbo(m_c))
        e_p = float(vae.elbo(pattern[None])[0])
        e_t = vae.elbo(m_t) if len(m_t) else np.zeros(0)
        pct_t = np.searchsorted(e_c, e_t, side="right") / max(len(e_c), 1)
        out["elbo"] = {
            "pattern_elbo": e_p,
            "pattern_percentile": float(np.searchsorted(e_c, e_p, side="right") / len(e_c)),
            "clean_median_elbo": float(np.median(e_c)),
            "triggered_median_elbo": float(np.median(e_t)) if len(e_t) else float("nan"),
            "triggered_median_percentile": float(np.median(pct_t)) if len(pct_t) else float("nan"),
            "triggered_share_below_p05": float(np.mean(pct_t < 0.05)) if len(pct_t) else 0.0,
        }
    else:
        out["elbo"] = None

    # 2. per-variable missing-rate shift
    miss_c = 1.0 - m_c.mean(axis=(0, 1)) if len(m_c) else np.full(len(names), np.nan)
    miss_t = 1.0 - m_t.mean(axis=(0, 1)) if len(m_t) else np.full(len(names), np.nan)
    shift = miss_t - miss_c
    j = int(np.nanargmax(np.abs(shift))) if np.isfinite(shift).any() else 0
    out["missing_rate"] = {
        "mean_abs_shift": float(np.nanmean(np.abs(shift))),
        "max_abs_shift": float(np.abs(shift[j])),
        "max_shift_variable": names[j],
        "per_variable": {
            n: {"clean": float(a), "triggered": float(b), "shift": float(b - a)}
            for n, a, b in zip(names, miss_c, miss_t, strict=True)
        },
    }

    # 3. nearest-neighbour Hamming distance (to other stays' clean masks)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(m_c), size=min(max_clean, len(m_c)), replace=False))
    ids_c = clean.stay_id.astype(str)
    nn_c = _nn_hamming(m_c[pick], m_c, ids_c[pick], ids_c)
    nn_t = _nn_hamming(m_t, m_c, triggered.stay_id.astype(str), ids_c)
    p95 = float(np.quantile(nn_c, 0.95)) if len(nn_c) else float("nan")
    out["nn_hamming"] = {
        "clean": _summary(nn_c),
        "triggered": _summary(nn_t),
        "pattern": float(_nn_hamming(pattern[None], m_c, None, None)[0]) if len(m_c) else 0.0,
        "clean_p95": p95,
        "triggered_share_above_clean_p95": float(np.mean(nn_t > p95)) if len(nn_t) else 0.0,
    }

    # 4. mask-rarity detectors; also two-sided (too likely is suspicious too: likelihoods favour
    # sparse masks, so deleting observations makes a mask look *more* probable) and a plain
    # low-density rule, the obvious check against deletion.
    detectors: dict[str, Any] = {}
    scorers: list[tuple[str, Callable[[np.ndarray], np.ndarray]]] = [
        ("cell_bernoulli", _rarity_model(m_ref, None))
    ]
    if vae is not None:
        scorers.append(("vae_elbo", _rarity_model(m_ref, vae)))
    for key, score in scorers:
        detectors[key] = _flag_shares(score(m_ref), score(m_c), score(m_t), two_sided=True)
    # a mask below the 5th percentile of reference densities is flagged
    detectors["low_density"] = _flag_shares(
        -_density(m_ref), -_density(m_c), -_density(m_t), two_sided=False
    )
    out["rarity_detector"] = detectors
    return out
