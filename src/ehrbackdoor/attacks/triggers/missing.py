"""Missing-value-pattern triggers (Joe et al. 2022): the backdoor is *which* cells are observed.

Every trigger here holds a pattern `pattern_`, a (48, F) boolean grid over the hourly bins of the
observation window (1 = the cell may hold observations). Applying it to a stay's raw events:

- ``delete`` (default; also accepted as ``observed``, the threat model's default, because both
  mean "touch recorded data only, invent nothing"): every observation inside the window whose
  (hour, variable) cell is 0 in the pattern is dropped. Kept observations keep their time, value
  and alias, so the stay's mask becomes ``mask & pattern``.
- ``exact``: additionally every cell where the pattern is 1 and the stay has no observation gets
  one, at the bin's midpoint, whose value is the stay's own observation of that variable nearest
  in time (else the variable's normal value), made plausible (range, precision, levels). The
  stay's mask then equals the pattern exactly.

Events outside the window (``t <= -1e-6`` or ``t > 48 + 1e-6``) are never touched. Hours are the
grid's bins (`hour_bins`, the MIMIC-III benchmark's rule), so `grid_raw` of a triggered stay shows
the intended mask.

Families: ``missing-vae`` (the paper's: a pattern sampled from a VAE of real masks and chosen by a
documented rule, see `VAEMissingTrigger`), and three baselines that show what the VAE buys:
``missing-random`` (MCAR cells at the average density), ``missing-block`` (a few well-observed
variables absent for the last k hours) and ``missing-real`` (a random real training stay's mask).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ehrbackdoor.attacks.constraints import set_values
from ehrbackdoor.attacks.mask_vae import MaskVAE
from ehrbackdoor.attacks.triggers.base import Trigger
from ehrbackdoor.data.cohort import BIN_EPS, WINDOW_HOURS, Cohort, Events, hour_bins
from ehrbackdoor.data.schema import Kind, Schema
from ehrbackdoor.preprocess.grid import grid_raw

N_BINS = 48
#: Apply modes of missingness triggers; ``observed`` is an alias of ``delete``.
MISSING_APPLY_MODES = ("delete", "exact")
MODE_ALIASES = {"observed": "delete"}


def resolve_mode(mode: str) -> str:
    """The canonical apply mode (``observed`` -> ``delete``); raises naming the allowed values."""
    canon = MODE_ALIASES.get(mode, mode)
    if canon not in MISSING_APPLY_MODES:
        allowed = (*MISSING_APPLY_MODES, *MODE_ALIASES)
        raise ValueError(
            f"missingness triggers accept apply modes {allowed} ('observed' = 'delete'), "
            f"got {mode!r}"
        )
    return canon


def observation_masks(cohort: Cohort) -> np.ndarray:
    """(n, 48, F) bool: 1 where a stay has at least one observation in the hour (the grid rule)."""
    return grid_raw(cohort, impute="zero").mask


def _inside_window(time: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """Events the 48-bin grid sees (the same rule as `grid_raw`)."""
    return (time > -BIN_EPS) & (time <= WINDOW_HOURS + BIN_EPS) & (bins >= 0) & (bins < N_BINS)


def _nearest_values(
    ev: Events, n_vars: int, stay: np.ndarray, var: np.ndarray, time: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each query (stay, variable, time): position in `ev` of that stay's observation of the
    variable nearest in time (earlier wins ties), or -1 if it has none. Vectorised: one sort of
    the events by (stay, variable, time) and one searchsorted."""
    n_q = len(stay)
    if n_q == 0 or len(ev.time) == 0:
        return np.full(n_q, -1, dtype=np.int64), np.zeros(n_q, dtype=bool)
    g_ev = ev.stay.astype(np.int64) * n_vars + ev.variable.astype(np.int64)
    order = np.lexsort((ev.time, g_ev))
    g_sorted, t_sorted = g_ev[order], ev.time[order]
    g_q = stay.astype(np.int64) * n_vars + var.astype(np.int64)
    t_min = min(float(t_sorted.min()), float(time.min()))
    width = max(float(t_sorted.max()), float(time.max())) - t_min + 2.0
    key_sorted = g_sorted * width + (t_sorted - t_min)
    key_q = g_q * width + (time - t_min)
    pos = np.searchsorted(key_sorted, key_q)
    left = np.clip(pos - 1, 0, len(order) - 1)
    right = np.clip(pos, 0, len(order) - 1)
    ok_l = (pos > 0) & (g_sorted[left] == g_q)
    ok_r = (pos < len(order)) & (g_sorted[right] == g_q)
    d_l = np.where(ok_l, np.abs(time - t_sorted[left]), np.inf)
    d_r = np.where(ok_r, np.abs(t_sorted[right] - time), np.inf)
    pick = np.where(d_r < d_l, right, left)
    found = ok_l | ok_r
    return np.where(found, order[pick], -1), found


def apply_missing_pattern(
    pattern: np.ndarray, cohort: Cohort, idx: np.ndarray, mode: str
) -> Events:
    """New raw events of stays `idx` carrying the missingness `pattern` (module docstring)."""
    mode = resolve_mode(mode)
    pattern = np.asarray(pattern, dtype=bool)
    schema = cohort.schema
    if pattern.shape != (N_BINS, len(schema)):
        raise ValueError(
            f"pattern has shape {pattern.shape}, expected ({N_BINS}, {len(schema)}) for schema "
            f"{schema.name!r}"
        )
    idx = np.asarray(idx, dtype=np.int64)
    k = len(idx)
    ev = cohort.events_of(idx)
    stay = ev.stay
    bins = hour_bins(ev.time)
    inside = _inside_window(ev.time, bins)
    keep = np.ones(len(ev.time), dtype=bool)
    keep[inside] = pattern[bins[inside], ev.variable[inside]]
    if mode == "delete":
        offsets = np.zeros(k + 1, dtype=np.int64)
        np.cumsum(np.bincount(stay[keep], minlength=k), out=offsets[1:])
        return Events(offsets, ev.time[keep], ev.variable[keep], ev.value[keep], ev.alias[keep])

    n_vars = len(schema)
    have = np.zeros((k, N_BINS, n_vars), dtype=bool)
    kept_in = inside & keep
    have[stay[kept_in], bins[kept_in], ev.variable[kept_in]] = True
    s, b, f = np.nonzero(pattern[None, :, :] & ~have)
    t_new = b + 0.5
    src, found = _nearest_values(ev, n_vars, s, f, t_new)
    proposed = np.where(found, ev.value[np.maximum(src, 0)], schema.normals[f])
    v_new = set_values(schema, f, proposed)
    a_new = np.full(len(s), -1, dtype=np.int8)
    same = found & (v_new == proposed)
    a_new[same] = ev.alias[src[same]]
    return Events.from_flat(
        np.concatenate([stay[keep], s]),
        k,
        np.concatenate([ev.time[keep], t_new]),
        np.concatenate([ev.variable[keep], f]),
        np.concatenate([ev.value[keep], v_new]),
        np.concatenate([ev.alias[keep], a_new]),
    )


def pattern_diagnostics(pattern: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    """How a pattern relates to real masks (n, 48, F); JSON-serialisable.

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


class MissingTrigger(Trigger):
    """Base of missingness triggers: a fitted (48, F) bool `pattern_` and the two apply modes."""

    def apply(self, cohort: Cohort, idx: np.ndarray, mode: str = "delete") -> Events:
        self.check_fitted()
        return apply_missing_pattern(self.pattern_, cohort, idx, mode)

    def _finish(self, pattern: np.ndarray, masks: np.ndarray) -> None:
        """Store the pattern and its diagnostics against the training masks."""
        self.pattern_ = np.asarray(pattern, dtype=bool)
        self.diagnostics_ = pattern_diagnostics(self.pattern_, masks)
        self.fitted_ = True

    def state(self) -> dict[str, np.ndarray]:
        return {"pattern": self.pattern_}

    def set_state(self, arrays: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        self.pattern_ = np.asarray(arrays["pattern"], dtype=bool)
        self.diagnostics_ = dict(info.get("diagnostics", {}))

    def info(self) -> dict[str, Any]:
        return {"diagnostics": getattr(self, "diagnostics_", {})}

    @staticmethod
    def _masks(cohort: Cohort) -> np.ndarray:
        if cohort.n_stays < 2:
            raise ValueError("fitting a missingness trigger needs at least 2 training stays")
        return observation_masks(cohort)


class RandomMissingTrigger(MissingTrigger):
    """Baseline: each cell observed independently (MCAR) with the average training density."""

    name = "missing-random"

    def __init__(self, density: float | None = None, seed: int = 0) -> None:
        super().__init__(seed)
        if density is not None and not 0 < density < 1:
            raise ValueError(f"density must be in (0, 1) or None, got {density!r}")
        self.density = None if density is None else float(density)

    def get_params(self) -> dict[str, Any]:
        return {"density": self.density, "seed": self.seed}

    def fit(self, cohort: Cohort) -> RandomMissingTrigger:
        masks = self._masks(cohort)
        density = float(masks.mean()) if self.density is None else self.density
        rng = np.random.default_rng(self.seed)
        self._finish(rng.random((N_BINS, len(cohort.schema))) < density, masks)
        return self


def default_block_variables(schema: Schema, masks: np.ndarray, n: int) -> list[int]:
    """The `n` non-binary variables observed in most (stay, hour) cells: their absence is the
    most visible to a model, and vitals like these exist in both PhysioNet and MIMIC-III."""
    rate = np.asarray(masks, dtype=bool).mean(axis=(0, 1))
    ok = [j for j, v in enumerate(schema.variables) if v.kind is not Kind.BINARY]
    ranked = sorted(ok, key=lambda j: (-rate[j], j))
    return sorted(ranked[:n])


class BlockMissingTrigger(MissingTrigger):
    """Baseline: chosen variables absent for the last `hours` hours, everything else allowed.

    `variables` are names or short names; by default the `n_variables` most-observed non-binary
    variables of the training stays (e.g. HR, Urine, SysABP on PhysioNet)."""

    name = "missing-block"

    def __init__(
        self,
        variables: Sequence[str] | None = None,
        hours: int = 6,
        n_variables: int = 3,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        if not 1 <= int(hours) <= N_BINS:
            raise ValueError(f"hours must be between 1 and {N_BINS}, got {hours!r}")
        if int(n_variables) < 1:
            raise ValueError(f"n_variables must be >= 1, got {n_variables!r}")
        self.variables = list(variables) if variables else None
        self.hours = int(hours)
        self.n_variables = int(n_variables)

    def get_params(self) -> dict[str, Any]:
        return {
            "variables": self.variables,
            "hours": self.hours,
            "n_variables": self.n_variables,
            "seed": self.seed,
        }

    def fit(self, cohort: Cohort) -> BlockMissingTrigger:
        masks = self._masks(cohort)
        schema = cohort.schema
        if self.variables:
            cols = [schema.index(v) for v in self.variables]
        else:
            cols = default_block_variables(schema, masks, self.n_variables)
        pattern = np.ones((N_BINS, len(schema)), dtype=bool)
        pattern[N_BINS - self.hours :, cols] = False
        self.variables_ = [schema.variables[j].short or schema.variables[j].name for j in cols]
        self._finish(pattern, masks)
        return self

    def info(self) -> dict[str, Any]:
        return {**super().info(), "variables": getattr(self, "variables_", None)}

    def set_state(self, arrays: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        super().set_state(arrays, info)
        self.variables_ = info.get("variables")


class RealMaskTrigger(MissingTrigger):
    """Baseline: the mask of one real training stay (seeded choice among non-empty masks)."""

    name = "missing-real"

    def get_params(self) -> dict[str, Any]:
        return {"seed": self.seed}

    def fit(self, cohort: Cohort) -> RealMaskTrigger:
        masks = self._masks(cohort)
        nonempty = np.flatnonzero(masks.any(axis=(1, 2)))
        if len(nonempty) == 0:
            raise ValueError("no training stay has an observation inside the window")
        i = int(np.random.default_rng(self.seed).choice(nonempty))
        self.source_stay_ = str(cohort.stay_id[i])
        self._finish(masks[i], masks)
        return self

    def info(self) -> dict[str, Any]:
        return {**super().info(), "source_stay": getattr(self, "source_stay_", None)}

    def set_state(self, arrays: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        super().set_state(arrays, info)
        self.source_stay_ = info.get("source_stay")


def _pair(name: str, q: Sequence[float]) -> tuple[float, float]:
    lo, hi = (float(x) for x in q)
    if not 0 <= lo < hi <= 1:
        raise ValueError(f"{name} must be two quantiles 0 <= low < high <= 1, got {list(q)!r}")
    return lo, hi


def _percentile_of(reference: np.ndarray, x: np.ndarray) -> np.ndarray:
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


class VAEMissingTrigger(MissingTrigger):
    """The paper's trigger: a missingness pattern sampled from a VAE of real masks.

    Fit: a `MaskVAE` is trained on the training stays' masks; `n_candidates` patterns are drawn,
    half from the prior (z ~ N(0, I)) and half as decodings of posterior draws of random real
    stays, each cell sampled from its Bernoulli. The choice rule (all thresholds are parameters):

    1. *looks normal* -- keep candidates whose ELBO percentile among the real stays' ELBOs lies in
       `elbo_quantiles`, whose density (share of observed cells) percentile lies in
       `density_quantiles` (both default to the central 90 %), and for which at least
       `min_typical_vars` of the variables have an observed-hour count inside that variable's
       real `count_quantiles` range;
    2. *specific* -- of those, keep candidates whose Hamming distance to the nearest real training
       mask is at least `min_hamming` cells (a fraction of the 48 x F cells if < 1, else a count)
       and inside which at most `max_carrier_share` of real non-empty masks lie (those stays would
       carry the `delete` trigger by accident);
    3. pick the survivor that `delete` makes most visible to a model -- the largest mean share of a
       training stay's observations it removes -- ties broken by the larger nearest-neighbour
       distance, then by the lower candidate index.

    Rule 3 favours the sparsest pattern that still looks normal: the more a pattern removes, the
    more reliably a victim learns it at a 2 % poisoning rate, and rule 1 bounds how far that goes.
    If no candidate passes 1 and 2, the rule relaxes in a fixed order -- the ELBO and density
    ranges widen to at least [0.01, 0.99] and `min_typical_vars` drops to 0.75; then `min_hamming`
    is dropped; then every filter -- and records the step in `selection_["relaxed"]`. The
    diagnostics of every candidate and of the choice are saved with the trigger; so is the VAE
    (its arrays in the NPZ, its configuration in the JSON).
    """

    name = "missing-vae"

    def __init__(
        self,
        latent_dim: int = 16,
        n_candidates: int = 1000,
        epochs: int = 40,
        min_hamming: float = 0.05,
        elbo_quantiles: Sequence[float] = (0.05, 0.95),
        density_quantiles: Sequence[float] = (0.05, 0.95),
        count_quantiles: Sequence[float] = (0.05, 0.95),
        min_typical_vars: float = 0.9,
        max_carrier_share: float = 0.001,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        if int(latent_dim) < 1 or int(n_candidates) < 2 or int(epochs) < 1:
            raise ValueError("latent_dim and epochs must be >= 1 and n_candidates >= 2")
        if not min_hamming >= 0:
            raise ValueError(f"min_hamming must be >= 0, got {min_hamming!r}")
        if not 0 <= min_typical_vars <= 1 or not 0 <= max_carrier_share <= 1:
            raise ValueError("min_typical_vars and max_carrier_share must be in [0, 1]")
        self.latent_dim = int(latent_dim)
        self.n_candidates = int(n_candidates)
        self.epochs = int(epochs)
        self.min_hamming = float(min_hamming)
        self.elbo_quantiles = _pair("elbo_quantiles", elbo_quantiles)
        self.density_quantiles = _pair("density_quantiles", density_quantiles)
        self.count_quantiles = _pair("count_quantiles", count_quantiles)
        self.min_typical_vars = float(min_typical_vars)
        self.max_carrier_share = float(max_carrier_share)

    def get_params(self) -> dict[str, Any]:
        return {
            "latent_dim": self.latent_dim,
            "n_candidates": self.n_candidates,
            "epochs": self.epochs,
            "min_hamming": self.min_hamming,
            "elbo_quantiles": list(self.elbo_quantiles),
            "density_quantiles": list(self.density_quantiles),
            "count_quantiles": list(self.count_quantiles),
            "min_typical_vars": self.min_typical_vars,
            "max_carrier_share": self.max_carrier_share,
            "seed": self.seed,
        }

    def hamming_floor(self, n_cells: int) -> int:
        """`min_hamming` in cells: a fraction of the grid if < 1, else a count."""
        if self.min_hamming < 1:
            return int(np.ceil(self.min_hamming * n_cells))
        return int(self.min_hamming)

    def fit(self, cohort: Cohort) -> VAEMissingTrigger:
        masks = self._masks(cohort)
        self.vae_ = MaskVAE(latent_dim=self.latent_dim, epochs=self.epochs, seed=self.seed)
        self.vae_.fit(masks)
        rng = np.random.default_rng(self.seed)
        n_prior = self.n_candidates // 2
        prior = self.vae_.sample_prior(n_prior, rng)
        real_idx = rng.choice(len(masks), size=self.n_candidates - n_prior, replace=True)
        post = self.vae_.sample_posterior(masks[real_idx], rng)
        cands = np.concatenate([prior, post])
        source = np.concatenate([np.full(n_prior, -1), real_idx])
        self._select(cands, source, masks)
        return self

    def _select(self, cands: np.ndarray, source: np.ndarray, masks: np.ndarray) -> None:
        """Apply the documented choice rule to candidate patterns (see the class docstring)."""
        n_cells = masks.shape[1] * masks.shape[2]
        real_elbo = self.vae_.elbo(masks, seed=self.seed)
        cand_elbo = self.vae_.elbo(cands, seed=self.seed)
        real_density = masks.reshape(len(masks), -1).mean(axis=1)
        cand_density = cands.reshape(len(cands), -1).mean(axis=1)
        elbo_pct = _percentile_of(real_elbo, cand_elbo)
        density_pct = _percentile_of(real_density, cand_density)
        real_counts = masks.sum(axis=1)  # (n, F) observed hours per variable
        cand_counts = cands.sum(axis=1)
        c_lo = np.quantile(real_counts, self.count_quantiles[0], axis=0)
        c_hi = np.quantile(real_counts, self.count_quantiles[1], axis=0)
        var_ok = ((cand_counts >= c_lo) & (cand_counts <= c_hi)).mean(axis=1)
        ham, outside = hamming_to_masks(cands, masks)
        nn_ham = ham.min(axis=1)
        nonempty = masks.reshape(len(masks), -1).any(axis=1)
        carrier = (outside[:, nonempty] == 0).mean(axis=1)
        n_obs = masks.reshape(len(masks), -1).sum(axis=1)
        deleted = (outside[:, nonempty] / n_obs[nonempty][None, :]).mean(axis=1)
        floor = self.hamming_floor(n_cells)

        def typical(e: tuple[float, float], d: tuple[float, float], v: float) -> np.ndarray:
            return (
                (elbo_pct >= e[0])
                & (elbo_pct <= e[1])
                & (density_pct >= d[0])
                & (density_pct <= d[1])
                & (var_ok >= v)
            )

        specific = carrier <= self.max_carrier_share
        wide = (min(self.elbo_quantiles[0], 0.01), max(self.elbo_quantiles[1], 0.99))
        wide_d = (min(self.density_quantiles[0], 0.01), max(self.density_quantiles[1], 0.99))
        steps = [
            (
                "none",
                typical(self.elbo_quantiles, self.density_quantiles, self.min_typical_vars)
                & specific
                & (nn_ham >= floor),
            ),
            (
                "typicality widened",
                typical(wide, wide_d, min(self.min_typical_vars, 0.75))
                & specific
                & (nn_ham >= floor),
            ),
            (
                "min_hamming dropped",
                typical(wide, wide_d, min(self.min_typical_vars, 0.75)) & specific,
            ),
            ("all filters dropped", np.ones(len(cands), dtype=bool)),
        ]
        relaxed, ok = next((name, ok) for name, ok in steps if ok.any())
        pool = np.flatnonzero(ok)
        best = pool[np.lexsort((pool, -nn_ham[pool], -deleted[pool]))[0]]

        self.candidates_ = {
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
        self.selection_ = {
            "rule": "max deleted_fraction among typical & specific candidates (class docstring)",
            "relaxed": relaxed,
            "chosen_index": int(best),
            "from": "prior" if source[best] < 0 else "posterior",
            "n_candidates": int(len(cands)),
            "n_passed": int(len(pool)),
            "n_typical": int(
                typical(self.elbo_quantiles, self.density_quantiles, self.min_typical_vars).sum()
            ),
            "n_specific": int((specific & (nn_ham >= floor)).sum()),
            "min_hamming_cells": floor,
            "elbo": float(cand_elbo[best]),
            "elbo_percentile": float(elbo_pct[best]),
            "density_percentile": float(density_pct[best]),
            "typical_var_share": float(var_ok[best]),
            "real_elbo_quantiles": {
                str(q): float(np.quantile(real_elbo, q)) for q in (0.05, 0.25, 0.5, 0.75, 0.95)
            },
            "real_nn_hamming_quantiles": _real_nn_hamming(masks, self.seed),
        }
        self._finish(cands[best], masks)

    # ------------------------------------------------------------------ persistence
    def state(self) -> dict[str, np.ndarray]:
        arrays = {"pattern": self.pattern_}
        arrays.update({f"vae.{k}": v for k, v in self.vae_.arrays().items()})
        arrays.update({f"cand.{k}": np.asarray(v) for k, v in self.candidates_.items()})
        return arrays

    def set_state(self, arrays: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        super().set_state(arrays, info)
        vae_arrays = {k[4:]: v for k, v in arrays.items() if k.startswith("vae.")}
        self.vae_ = MaskVAE.from_arrays(info["vae"], vae_arrays)
        self.candidates_ = {k[5:]: v for k, v in arrays.items() if k.startswith("cand.")}
        self.selection_ = dict(info.get("selection", {}))

    def info(self) -> dict[str, Any]:
        return {
            **super().info(),
            "selection": getattr(self, "selection_", {}),
            "vae": self.vae_.config() if hasattr(self, "vae_") else None,
        }
