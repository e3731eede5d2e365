"""STRIP (Gao et al., 2019) adapted to time x variable grids of raw ICU events.

STRIP perturbs an input by superimposing it on random clean inputs and watches the model's
predictions: a clean input's prediction moves with what it is blended with (high entropy), while an
input carrying the trigger keeps the target prediction whatever is blended in (low entropy).

Superimposing two stays (`superimpose`): on the hourly grid, the blend is observed wherever either
stay is observed (mask OR); a cell observed in both takes ``alpha * x + (1 - alpha) * donor`` (the
donor's last value in that cell), rounded to the variable's precision and snapped to its levels;
cells observed only in the donor receive the donor's events. Done on raw events, so every victim
(window features or grids) sees a well-formed stay.

Entropy of a binary prediction is taken at the victim's operating point: ``q = sigmoid(logit(p) -
logit(threshold))``, so "confident" means far from the decision threshold, not far from 0.5 (a
mortality model with a 14 % base rate is rarely above 0.5). A stay's suspicion is ``ln 2 - mean
entropy`` over ``n_superimpose`` blends. Donors come from the trusted ``reference`` stays when
given (the clean validation cohort in an audit), else from the training cohort itself. Limitation
of a binary task: confidently predicted clean stays also keep their prediction, so STRIP is
weaker than on many-class images.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from ehrbackdoor.data.cohort import Cohort, Events, hour_bins
from ehrbackdoor.data.plausibility import set_values
from ehrbackdoor.defences.base import Detector, check_float, check_int
from ehrbackdoor.preprocess.window import check_window, window_bins

_EPS = 1e-6


def _cell_keys(ev: Events, n_vars: int, t_bins: int, hours: float) -> np.ndarray:
    """(pair, bin, variable) cell of each event; -1 outside the `hours` observation window."""
    bins = hour_bins(ev.time)
    inside = (ev.time > -_EPS) & (ev.time <= hours + _EPS) & (bins >= 0) & (bins < t_bins)
    key = (ev.stay * t_bins + bins) * n_vars + ev.variable.astype(np.int64)
    return np.where(inside, key, -1)


def superimpose(a: Cohort, ia: np.ndarray, b: Cohort, ib: np.ndarray, alpha: float = 0.5) -> Cohort:
    """Stays ``a[ia[j]]`` superimposed with donors ``b[ib[j]]`` (module docstring), one per pair.

    The result keeps the label and static covariates of the `a` stays.
    """
    ia, ib = np.asarray(ia, dtype=np.int64), np.asarray(ib, dtype=np.int64)
    if len(ia) != len(ib):
        raise ValueError(f"{len(ia)} stays but {len(ib)} donors")
    schema = a.schema
    check_window(b.window, a, "the donors' cohort")  # cells must mean the same hours
    n_vars, t_bins = len(schema), window_bins(a)
    A, B = a.events_of(ia), b.events_of(ib)
    ka = _cell_keys(A, n_vars, t_bins, a.window)
    kb = _cell_keys(B, n_vars, t_bins, a.window)
    # The donor's value of a cell: its last event there (events are time-ordered within a stay).
    inb = np.flatnonzero(kb >= 0)
    order = inb[np.argsort(kb[inb], kind="stable")]
    ks = kb[order]
    last = np.ones(len(ks), dtype=bool)
    last[:-1] = ks[1:] != ks[:-1]
    cell_b, value_b = ks[last], B.value[order[last]]
    cell_a = np.unique(ka[ka >= 0])

    values, alias = A.value.copy(), A.alias.copy()
    if len(cell_b):
        pos = np.clip(np.searchsorted(cell_b, ka), 0, len(cell_b) - 1)
        both = (ka >= 0) & (cell_b[pos] == ka)
        if both.any():
            blended = alpha * A.value[both] + (1 - alpha) * value_b[pos[both]]
            new = set_values(schema, A.variable[both], blended)
            changed = new != A.value[both]
            values[both] = new
            al = alias[both]
            al[changed] = -1
            alias[both] = al
    keep_b = (kb >= 0) & ~np.isin(kb, cell_a)
    events = Events.from_flat(
        np.concatenate([A.stay, B.stay[keep_b]]),
        len(ia),
        np.concatenate([A.time, B.time[keep_b]]),
        np.concatenate([A.variable, B.variable[keep_b]]),
        np.concatenate([values, B.value[keep_b]]),
        np.concatenate([alias, B.alias[keep_b]]),
    )
    return Cohort(
        schema=schema,
        stay_id=np.array([f"strip-{j}" for j in range(len(ia))]),
        label=a.label[ia],
        static=a.static[ia],
        events=events,
        window=a.window,
    )


@contextlib.contextmanager
def no_disk_cache(victim: Any) -> Iterator[None]:
    """Victims featurise throwaway blends without writing them to the preprocessing cache: the
    victim's own ``cache`` parameter is switched off for the block (and restored), so nothing
    process-wide changes and concurrent work in the same process keeps its cache."""
    if not hasattr(victim, "cache"):
        yield
        return
    old = victim.cache
    victim.cache = False
    try:
        yield
    finally:
        victim.cache = old


def threshold_entropy(p: np.ndarray, threshold: float) -> np.ndarray:
    """Binary entropy (nats) of predictions re-centred at the operating threshold."""
    lo = 1e-7
    p = np.clip(np.asarray(p, dtype=np.float64), lo, 1 - lo)
    t = min(max(float(threshold), lo), 1 - lo)
    u = np.log(p / (1 - p)) - np.log(t / (1 - t))
    q = np.clip(1.0 / (1.0 + np.exp(-u)), 1e-12, 1 - 1e-12)
    return -(q * np.log(q) + (1 - q) * np.log1p(-q))


class StripDetector(Detector):
    """Low prediction entropy under superimposition with random clean stays."""

    name = "strip"
    family = "model"
    needs_victim = True

    def __init__(
        self,
        n_superimpose: int = 8,
        alpha: float = 0.5,
        batch_size: int = 4096,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        self.n_superimpose = check_int("n_superimpose", n_superimpose, 1)
        self.alpha = check_float("alpha", alpha, 0.0, 1.0)
        self.batch_size = check_int("batch_size", batch_size, 1)

    def _score(self, cohort: Cohort, victim: Any, reference: Cohort | None) -> np.ndarray:
        donors = reference if reference is not None and reference.n_stays > 0 else cohort
        n, m = cohort.n_stays, self.n_superimpose
        rng = self._rng()
        pair_a = np.repeat(np.arange(n), m)
        pair_b = rng.integers(0, donors.n_stays, size=n * m)
        if donors is cohort and n > 1:  # never blend a stay with itself
            same = pair_b == pair_a
            pair_b[same] = (pair_b[same] + 1 + rng.integers(0, n - 1, same.sum())) % n
        entropy = np.empty(n * m)
        thr = float(victim.threshold_)
        with no_disk_cache(victim):
            for s in range(0, n * m, self.batch_size):
                sl = slice(s, s + self.batch_size)
                blend = superimpose(cohort, pair_a[sl], donors, pair_b[sl], self.alpha)
                entropy[sl] = threshold_entropy(victim.predict_proba(blend), thr)
        mean_h = entropy.reshape(n, m).mean(axis=1)
        self.info_ = {"donors": "reference" if donors is not cohort else "training"}
        return np.log(2.0) - mean_h
