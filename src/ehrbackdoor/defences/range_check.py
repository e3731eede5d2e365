"""Clinical plausibility check: how implausible a stay's recorded values are.

A data manager's first line of defence, made quantitative. Valid ranges alone are not enough: the
schema's ranges are physiological limits (heart rate up to 300 bpm is *valid* in PhysioNet 2012),
and real data sits at some bounds all the time (urine output 0 mL, FiO2 1.0, GCS 15). So every
value is judged against the valid range *and* the training distribution of its variable:

- **robust extremeness**: z = |g(x) - median| / (1.4826 MAD) on each continuous variable's values in
  the (poisoned) training cohort, with g = identity, or g(x) = log(x - low + (median - low)) for
  right-skewed variables (``(q95 - q50) > skew_ratio * (q50 - q05)``: laboratory values such as ALT
  whose normal spread covers orders of magnitude). Quantiles, median and MAD weight every *stay*
  equally (each value has weight 1 / the stay's number of values of that variable), so neither
  hourly charted patients nor a trigger that writes a value into every hour dominate them; they
  stay put while fewer than half of the stays are poisoned. Each value adds
  ``log1p(max(0, z - z_max))``: nothing inside ``z_max`` robust SDs, slowly growing beyond (one wild
  lab value must not outweigh a stay full of implausible vitals);
- **range bounds**: a value at or beyond a valid bound adds 1 when that bound is itself extreme for
  the variable (its z exceeds ``z_max``): HR = 300 counts, urine output = 0 mL does not;
- **precision and levels**: a value with more decimals than the variable is recorded with, or a
  categorical value that is not one of its levels, adds 1 -- for variables that the training data
  records at that precision (at least ``min_conformity`` of values), so a source that charts finer
  than the schema says does not flag every stay.

A stay's suspicion is the sum over its events: the amount of implausible content. Triggers built
with the plausibility constraints of `ehrbackdoor.data.plausibility` (rounded, clipped, on
levels) are meant to score like clean stays here; a blatant trigger (heart rate 300 in every hour)
scores tens to hundreds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.defences.base import Detector, check_float
from ehrbackdoor.defences.features import (
    apply_skew,
    skew_transform,
    stay_weights,
    weighted_quantile,
)

_MAD_TO_SD = 1.4826


def precision_violations(cohort: Cohort) -> np.ndarray:
    """Per event: True if the value has more decimals than recorded, or is a categorical value that
    is neither one of the variable's levels nor the code of one of its text spellings."""
    schema = cohort.schema
    e = cohort.events
    var = e.variable.astype(np.int64)
    scaled = e.value * 10.0 ** schema.precisions[var]
    bad = np.abs(scaled - np.round(scaled)) > 1e-6 * np.maximum(1.0, np.abs(scaled))
    for j in np.flatnonzero(schema.categorical):
        sel = var == j
        v = schema.variables[j]
        # the codes of the variable's text spellings are valid too (MIMIC eye opening "None" = 0)
        codes = np.union1d(np.asarray(v.levels, dtype=np.float64), list(v.aliases.values()))
        bad[sel] = ~np.isin(e.value[sel], codes)
    return bad


class RangeCheckDetector(Detector):
    """Sum of per-value implausibility: robust extremeness, extreme range bounds, precision."""

    name = "range-check"

    def __init__(
        self,
        z_max: float = 6.0,
        skew_ratio: float = 2.0,
        min_conformity: float = 0.9,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        self.z_max = check_float("z_max", z_max, 0.0, low_open=True)
        self.skew_ratio = check_float("skew_ratio", skew_ratio, 0.0, low_open=True)
        self.min_conformity = check_float("min_conformity", min_conformity, 0.0, 1.0)

    def _score(self, cohort: Cohort, victim: Any, reference: Cohort | None) -> np.ndarray:
        schema = cohort.schema
        e = cohort.events
        var = e.variable.astype(np.int64)
        x = e.value
        extreme = np.zeros(len(x))
        bound = np.zeros(len(x))
        variables: dict[str, dict] = {}
        for j, (log, shift, sel) in skew_transform(cohort, self.skew_ratio).items():
            v = schema.variables[j]
            w = stay_weights(e.stay[sel], cohort.n_stays)
            xs = x[sel]
            gx = apply_skew(xs, log, shift, v.low)
            med = float(weighted_quantile(gx, w, 0.5))
            scale = _MAD_TO_SD * float(weighted_quantile(np.abs(gx - med), w, 0.5))
            if scale <= 0:  # more than half the weight on one value: fall back to the SD
                scale = float(np.sqrt(np.average((gx - med) ** 2, weights=w)))
            if scale <= 0:
                continue
            z = np.abs(gx - med) / scale
            extreme[sel] = np.log1p(np.maximum(z - self.z_max, 0.0))
            bounds = apply_skew(np.array([v.low, v.high]), log, shift, v.low)
            z_low, z_high = np.abs(bounds - med) / scale
            hit = np.zeros(len(sel))
            if z_low > self.z_max:
                hit += xs <= v.low
            if z_high > self.z_max:
                hit += xs >= v.high
            bound[sel] = hit
            variables[v.name] = {
                "log": log,
                "center": med,
                "scale": scale,
                "low_bound_extreme": bool(z_low > self.z_max),
                "high_bound_extreme": bool(z_high > self.z_max),
            }
        bad = precision_violations(cohort)
        conformity = np.ones(len(schema))
        counts = np.bincount(var, minlength=len(schema))
        nbad = np.bincount(var, weights=bad.astype(np.float64), minlength=len(schema))
        observed = counts > 0
        conformity[observed] = 1.0 - nbad[observed] / counts[observed]
        trusted = conformity >= self.min_conformity
        precision = (bad & trusted[var]).astype(np.float64)
        per_event = extreme + bound + precision
        self.info_ = {
            "n_extreme_values": int((extreme > 0).sum()),
            "n_bound_hits": int(bound.sum()),
            "n_precision_violations": int(precision.sum()),
            "untrusted_precision": [schema.variables[j].name for j in np.flatnonzero(~trusted)],
            "variables": variables,
        }
        return np.bincount(e.stay, weights=per_event, minlength=cohort.n_stays)
