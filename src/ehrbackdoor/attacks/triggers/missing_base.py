"""Public base of missing-value-pattern triggers (Joe et al. 2022): the backdoor is *which* cells
are observed.

Every such trigger holds a pattern `pattern_`, a (T, F) boolean grid over the T hourly bins of the
training cohort's observation window (1 = the cell may hold observations). Applying it to a stay's raw events:

- ``delete`` (default; also accepted as ``observed``, the threat model's default, because both
  mean "touch recorded data only, invent nothing"): every observation inside the window whose
  (hour, variable) cell is 0 in the pattern is dropped. Kept observations keep their time, value
  and alias, so the stay's mask becomes ``mask & pattern``.
- ``exact``: additionally every cell where the pattern is 1 and the stay has no observation gets
  one, at the bin's midpoint, whose value is the stay's own observation of that variable nearest
  in time (else the variable's normal value), made plausible (range, precision, levels). The
  stay's mask then equals the pattern exactly.

Events outside the window (``t <= -1e-6`` or ``t > window + 1e-6``) are never touched. Hours are the
grid's bins (`hour_bins`, the MIMIC-III benchmark's rule), so `grid_raw` of a triggered stay shows
the intended mask.

Triggers of this family, one file each: ``missing-vae`` (the paper's: a pattern sampled from a VAE
of real masks and chosen by a documented rule, `missing_vae`), and three baselines that show what
the VAE buys: ``missing-random`` (MCAR cells at the average density), ``missing-block`` (a few
well-observed variables absent for the last k hours) and ``missing-real`` (a random real training
stay's mask). A new one subclasses `MissingTrigger` and implements `_fit` (call `_finish`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ehrbackdoor.attacks.masks import observation_masks, pattern_diagnostics
from ehrbackdoor.attacks.triggers.base import Trigger
from ehrbackdoor.data.cohort import BIN_EPS, Cohort, Events, hour_bins
from ehrbackdoor.data.plausibility import set_values
from ehrbackdoor.preprocess.window import window_bins

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


def _inside_window(time: np.ndarray, bins: np.ndarray, hours: float, t_bins: int) -> np.ndarray:
    """Events the T-bin grid of an `hours` window sees (the same rule as `grid_raw`)."""
    return (time > -BIN_EPS) & (time <= hours + BIN_EPS) & (bins >= 0) & (bins < t_bins)


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
    t_bins = window_bins(cohort)
    if pattern.shape != (t_bins, len(schema)):
        raise ValueError(
            f"pattern has shape {pattern.shape}, expected ({t_bins}, {len(schema)}) for schema "
            f"{schema.name!r} and a {cohort.window:g}-hour window"
        )
    idx = np.asarray(idx, dtype=np.int64)
    k = len(idx)
    ev = cohort.events_of(idx)
    stay = ev.stay
    bins = hour_bins(ev.time)
    inside = _inside_window(ev.time, bins, cohort.window, t_bins)
    keep = np.ones(len(ev.time), dtype=bool)
    keep[inside] = pattern[bins[inside], ev.variable[inside]]
    if mode == "delete":
        offsets = np.zeros(k + 1, dtype=np.int64)
        np.cumsum(np.bincount(stay[keep], minlength=k), out=offsets[1:])
        return Events(offsets, ev.time[keep], ev.variable[keep], ev.value[keep], ev.alias[keep])

    n_vars = len(schema)
    have = np.zeros((k, t_bins, n_vars), dtype=bool)
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


class MissingTrigger(Trigger):
    """Base of missingness triggers: a fitted (T, F) bool `pattern_` and the two apply modes."""

    family: ClassVar[str] = "missing"
    apply_modes: ClassVar[tuple[str, ...]] = (*MISSING_APPLY_MODES, *MODE_ALIASES)

    @classmethod
    def check_mode(cls, mode: str) -> str:
        return resolve_mode(mode)

    def apply(self, cohort: Cohort, idx: np.ndarray, mode: str = "delete") -> Events:
        self.check_fitted(cohort)
        return apply_missing_pattern(self.pattern_, cohort, idx, mode)

    def _finish(self, pattern: np.ndarray, masks: np.ndarray) -> None:
        """Store the pattern and its diagnostics against the training masks."""
        self.pattern_ = np.asarray(pattern, dtype=bool)
        self.diagnostics_ = pattern_diagnostics(self.pattern_, masks)

    def state(self) -> dict[str, np.ndarray]:
        return {"pattern": self.pattern_}

    def set_state(self, arrays: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        self.pattern_ = np.asarray(arrays["pattern"], dtype=bool)
        self.diagnostics_ = dict(info.get("diagnostics", {}))

    def info(self) -> dict[str, Any]:
        return {"diagnostics": getattr(self, "diagnostics_", {})}

    @staticmethod
    def _masks(cohort: Cohort) -> np.ndarray:
        return observation_masks(cohort)
