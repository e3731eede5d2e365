"""Public base of additive value triggers: a (T x F) pattern added to recorded values.

T is the number of hourly bins of the training cohort's window (48 at 48 h, 24 at 24 h).

A new value trigger subclasses `ValueTrigger`, implements `_fit` (set ``pattern_`` and, for the
fidelity report, ``covariances_``) and registers itself in `ehrbackdoor.attacks.triggers.TRIGGERS`;
applying, saving, loading and `fidelity_report` are inherited.

Two parameters make a trigger faithful to how values are recorded (the realistic attacker's
defaults); the first paper's construction is ``transform="none", bounds="clip"``:

- `transform`: ``"schema"`` fits covariances and adds the pattern in each variable's declared
  variance-stabilising space (`Variable.transform`: value' = f^-1(f(value) + t), e.g. a
  multiplicative change of AST); ``"none"`` works in raw units for every variable.
- `bounds`: ``"keep"`` leaves a recorded value unchanged where the shifted value would land on its
  valid-range bound (a floor or ceiling value it did not have: an artefact no chart shows; imputed
  cells written in ``all`` mode keep the forward-filled value); ``"clip"`` clips onto the bound.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from ehrbackdoor.attacks.triggers.base import MAX_STRENGTH, Trigger, check_variables
from ehrbackdoor.checks import check_float
from ehrbackdoor.data.cohort import Cohort, Events, hour_bins
from ehrbackdoor.data.plausibility import shift_values
from ehrbackdoor.data.schema import Kind, Schema
from ehrbackdoor.data.transforms import forward, forward_grid, inverse
from ehrbackdoor.preprocess.grid import grid_raw

#: Where value triggers work: the schema's declared space per variable, or raw units.
SPACES = ("schema", "none")
#: What happens to a shifted value that would land on its valid-range bound.
BOUNDS = ("keep", "clip")


def default_variables(schema: Schema) -> list[int]:
    """Variables a value trigger perturbs by default: every non-binary variable."""
    return [i for i, v in enumerate(schema.variables) if v.kind is not Kind.BINARY]


def resolve_variables(schema: Schema, names: list[str] | None) -> list[int]:
    if not names:
        return default_variables(schema)
    return [schema.index(n) for n in names]


def variable_spaces(schema: Schema, transform: str = "schema") -> tuple[str, ...]:
    """Transform of every variable: the schema's declaration, or identity for `transform="none"`."""
    return schema.transforms if transform == "schema" else ("identity",) * len(schema)


def training_trajectories(cohort: Cohort, spaces: tuple[str, ...] | None = None) -> np.ndarray:
    """Forward-filled hourly values (n, T, F) of the stays in `spaces` (raw units by default):
    what covariances are fit on."""
    values = grid_raw(cohort, impute="previous", perturb=False).values
    return values if spaces is None else forward_grid(spaces, values)


def shift_in_space(
    schema: Schema,
    spaces: tuple[str, ...] | None,
    variable: np.ndarray,
    value: np.ndarray,
    delta: np.ndarray,
    keep_bounds: bool = False,
) -> np.ndarray:
    """Plausible values f^-1(f(value) + delta) (`shift_values` after the back-transform).

    With `keep_bounds`, a continuous value the shift would put on a valid-range bound it was not
    on keeps its old value.
    """
    variable = np.asarray(variable, dtype=np.int64)
    value = np.asarray(value, dtype=np.float64)
    delta = np.asarray(delta, dtype=np.float64)
    if spaces is not None and any(s != "identity" for s in spaces):
        moved = inverse(spaces, variable, forward(spaces, variable, value) + delta)
        delta = np.where(np.array(spaces)[variable] == "identity", delta, moved - value)
    out = shift_values(schema, variable, value, delta)
    if keep_bounds:
        lo, hi = schema.lows[variable], schema.highs[variable]
        cont = ~schema.categorical[variable]
        new_hit = ((out <= lo) & (value > lo)) | ((out >= hi) & (value < hi))
        out = np.where(cont & new_hit, value, out)
    return out


def apply_pattern(
    pattern: np.ndarray,
    cohort: Cohort,
    idx: np.ndarray,
    mode: str,
    spaces: tuple[str, ...] | None = None,
    keep_bounds: bool = False,
) -> Events:
    """Add pattern[bin, variable] to values of stays `idx` (in `spaces`, raw units by default).

    `observed`: only existing observations change (missingness and timestamps untouched).
    `all`: additionally every unobserved (bin, variable) cell where the pattern is non-zero gets an
    observation at the bin's midpoint whose value is the victim's forward-filled value plus the
    pattern (an attacker who knows the victim's `previous` imputation).
    """
    idx = np.asarray(idx, dtype=np.int64)
    schema = cohort.schema
    ev = cohort.events_of(idx)
    bins = hour_bins(ev.time)
    t_bins = len(pattern)
    inside = (ev.time > -1e-6) & (ev.time <= cohort.window + 1e-6) & (bins >= 0) & (bins < t_bins)
    delta = np.zeros(len(ev.time))
    delta[inside] = pattern[bins[inside], ev.variable[inside]]
    values = ev.value.copy()
    touched = delta != 0
    values[touched] = shift_in_space(
        schema, spaces, ev.variable[touched], ev.value[touched], delta[touched], keep_bounds
    )
    alias = ev.alias.copy()
    alias[values != ev.value] = -1  # a changed categorical is written with its canonical text
    if mode == "observed":
        return Events(ev.offsets, ev.time, ev.variable, values, alias)

    sub = cohort.subset(idx)
    rg = grid_raw(sub, impute="previous", perturb=False)
    active = np.flatnonzero(np.any(pattern != 0, axis=0))
    stay, b, f = np.nonzero(~rg.mask[:, :, active])
    f = active[f]
    base = rg.values[stay, b, f]
    new_vals = shift_in_space(schema, spaces, f, base, pattern[b, f], keep_bounds)
    stays_all = np.concatenate([ev.stay, stay])
    return Events.from_flat(
        stays_all,
        len(idx),
        np.concatenate([ev.time, b + 0.5]),
        np.concatenate([ev.variable, f]),
        np.concatenate([values, new_vals]),
        np.concatenate([alias, np.full(len(stay), -1, dtype=np.int8)]),
    )


def check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return value


def check_strength(strength: Any) -> float:
    """A finite Mahalanobis distance in (0, MAX_STRENGTH]: larger ones only overflow."""
    ok = not isinstance(strength, bool) and isinstance(strength, numbers.Real)
    if not ok or not math.isfinite(strength) or not 0 < strength <= MAX_STRENGTH:
        raise ValueError(
            f"strength must be a positive number <= {MAX_STRENGTH:g} (a Mahalanobis distance), "
            f"got {strength!r}"
        )
    return float(strength)


class ValueTrigger(Trigger):
    """Base of triggers that add a fixed (T x F) pattern to raw values."""

    family = "value"
    apply_modes = ("observed", "all")

    def __init__(
        self,
        strength: float = 1.0,
        variables: list[str] | None = None,
        ridge: float = 1e-3,
        transform: str = "schema",
        bounds: str = "keep",
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        self.strength = check_strength(strength)
        self.variables = check_variables(variables)
        self.ridge = check_float("ridge", ridge, 0.0)
        self.transform = check_choice("transform", transform, SPACES)
        self.bounds = check_choice("bounds", bounds, BOUNDS)

    def spaces(self, schema: Schema) -> tuple[str, ...]:
        """The transform this trigger uses for every variable of `schema`."""
        return variable_spaces(schema, self.transform)

    def apply(self, cohort: Cohort, idx: np.ndarray, mode: str = "observed") -> Events:
        self.check_fitted(cohort)
        self.check_mode(mode)
        if self.pattern_.shape[1] != len(cohort.schema):
            raise ValueError(
                f"trigger was fit on {self.pattern_.shape[1]} variables, cohort has "
                f"{len(cohort.schema)} ({cohort.schema.name})"
            )
        spaces = self.spaces(cohort.schema)
        return apply_pattern(
            self.pattern_, cohort, idx, mode, spaces, keep_bounds=self.bounds == "keep"
        )

    def fidelity_report(self, clean: Cohort, triggered: Cohort) -> dict[str, Any]:
        """How faithful the trigger is once written (JSON-able): per variable the new bound hits
        and the realised Mahalanobis distance; see `fidelity.fidelity_report`."""
        from ehrbackdoor.attacks.triggers.fidelity import fidelity_report

        return fidelity_report(self, clean, triggered)

    def grid_pattern(self) -> np.ndarray:
        """The fitted (T x F) raw-unit pattern, as grid space adds it to hourly bins."""
        self.check_fitted()
        return self.pattern_.copy()

    def state(self) -> dict[str, np.ndarray]:
        out = {"pattern": self.pattern_}
        if getattr(self, "covariances_", None) is not None:
            out["covariances"] = self.covariances_
        return out

    def set_state(self, arrays: dict[str, np.ndarray], info: dict[str, Any]) -> None:
        self.pattern_ = arrays["pattern"]
        self.covariances_ = arrays.get("covariances")

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)

    def ridged(self, cov: np.ndarray) -> np.ndarray:
        """cov + ridge * mean variance * I: keeps rarely measured variables invertible."""
        scale = float(np.mean(np.diag(cov))) or 1.0
        return cov + self.ridge * scale * np.eye(len(cov))


def draw_at_distance(cov: np.ndarray, distance: float, rng: np.random.Generator) -> np.ndarray:
    """A draw t ~ N(0, cov) rescaled so that sqrt(t' cov^-1 t) == distance.

    With cov = L L' and t = L z, t' cov^-1 t = z'z, so scaling z to norm `distance` suffices.
    """
    chol = np.linalg.cholesky(cov)
    z = rng.standard_normal(len(cov))
    return chol @ (z * (distance / np.linalg.norm(z)))


def within_stay_sd(cohort: Cohort) -> tuple[np.ndarray, np.ndarray]:
    """(n_stays, F) observation counts and population SD of each variable's recorded values."""
    ev, f = cohort.events, len(cohort.schema)
    key = cohort.event_stay.astype(np.int64) * f + ev.variable
    size = cohort.n_stays * f
    n = np.bincount(key, minlength=size)
    mean = np.bincount(key, ev.value, size) / np.maximum(n, 1)
    dev = (ev.value - mean[key]) ** 2
    sd = np.sqrt(np.bincount(key, dev, size) / np.maximum(n, 1))
    return n.reshape(cohort.n_stays, f), sd.reshape(cohort.n_stays, f)


def stays_constant(cohort: Cohort, tol: float = 1e-9) -> np.ndarray:
    """Per variable: is it normally re-charted unchanged? True where the median within-stay SD of
    stays with at least two observations is ~0 (PhysioNet Weight); False if no stay has two."""
    n, sd = within_stay_sd(cohort)
    out = np.zeros(len(cohort.schema), dtype=bool)
    for j in range(len(cohort.schema)):
        ok = n[:, j] >= 2
        out[j] = bool(ok.any()) and float(np.median(sd[ok, j])) <= tol
    return out
