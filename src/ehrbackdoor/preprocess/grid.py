"""Hourly grids: the MIMIC-III benchmark discretiser, vectorised over all stays at once.

The rules are those of the benchmark's ``Discretizer(timestep=1.0, store_masks=True,
impute_strategy='previous', start_time='zero')`` called with ``end=48`` by its in-hospital-mortality
code, because results are compared against that pipeline and must match it numerically. ``hours`` is
the cohort's own window (`Cohort.window`: 48 for PhysioNet 2012 and MIMIC-III, 24 for YAIB's
Mortality24) unless a caller asks for another:

- ``N_bins = int(hours / timestep + 1 - 1e-6)`` (48 for 48 h at 1 h, 24 for 24 h);
- an event at hour t goes to bin ``int(t / timestep - 1e-6)`` (truncation toward zero: t = 0 and
  t = 1.0 both land in bin 0, t = 1.5 and t = 2.0 in bin 1);
- events with ``t > hours + 1e-6`` are dropped, and so are events with ``t <= -1e-6`` (the benchmark's
  task builder keeps ``-1e-6 < t``) and the rare events the benchmark would reject with an assertion
  (bin >= N_bins, e.g. t = hours + 5e-7 at timestep 0.5);
- within a bin the last event in event order wins (highest position in the cohort's event arrays;
  the cohort keeps file order for equal times, so this is the benchmark's last row);
- ``mask`` is 1 where the bin holds at least one observation of the variable;
- imputation: ``previous`` forward-fills the last observed bin value and uses the variable's normal
  value before the first observation; ``normal`` uses the normal value in every unobserved bin;
  ``zero`` leaves unobserved bins at 0 (all-zero one-hot for categoricals).

Two layouts of the value columns:

- ``benchmark``: continuous variables take one column, categorical variables one column per entry of
  ``Variable.benchmark_values`` (one-hot, in the benchmark's non-clinical order). The one-hot position
  is the event's ``alias`` (the text spelling it was read from); if ``alias == -1`` it is the position
  of the canonical label of the code. Like the benchmark (which forward-fills the original *text*) we
  forward-fill the alias position, so a bin imputed from "To Pain" one-hots "To Pain", not
  "2 To pain". For the 17 MIMIC channels: 59 value columns + 17 masks = 76, with the benchmark's header
  names (``Heart Rate``, ``Glascow coma scale total->11``, ``mask->Heart Rate``). Categorical
  variables without ``benchmark_values`` (PhysioNet GCS, MechVent) one-hot their ``level_labels``.
- ``ordinal`` (default): one column per variable holding the value, or the clinical code for
  categoricals. It is the cleaner input for models (ordered levels stay ordered, no text artefacts).

``delta`` (for GRU-D) is the time in hours from the start of the last bin before t in which the
variable was observed to the start of bin t, with delta = 0 at bin 0 and the time since admission
before any observation: the GRU-D recursion ``delta_t = s_t - s_{t-1} + delta_{t-1}`` if the variable
was unobserved at t-1, else ``s_t - s_{t-1}``, with ``s_t = t * timestep``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from ehrbackdoor.data.cohort import BIN_EPS, Cohort, hour_bins
from ehrbackdoor.data.schema import Schema, Variable
from ehrbackdoor.preprocess._perturb import perturb_values, perturbed_categoricals
from ehrbackdoor.preprocess.window import n_bins, window_hours

IMPUTE_STRATEGIES = ("previous", "normal", "zero")
LAYOUTS = ("ordinal", "benchmark")
_IMPUTE_ALIASES = {"normal_value": "normal"}  # the benchmark's spelling


def categories(v: Variable) -> tuple[str, ...]:
    """One-hot categories of a categorical variable in the benchmark layout."""
    return v.benchmark_values or v.level_labels


def _code_lookup(v: Variable) -> tuple[np.ndarray, np.ndarray]:
    """Sorted codes and their one-hot positions (canonical label first, then any alias spelling)."""
    cats = categories(v)
    mapping: dict[float, int] = {}
    for code, label in zip(v.levels, v.level_labels, strict=True):
        if label in cats:
            mapping[float(code)] = cats.index(label)
    for text, code in v.aliases.items():
        if float(code) not in mapping and text in cats:
            mapping[float(code)] = cats.index(text)
    codes = np.array(sorted(mapping), dtype=np.float64)
    return codes, np.array([mapping[c] for c in codes], dtype=np.int64)


def _positions_of_codes(v: Variable, codes: np.ndarray) -> np.ndarray:
    """One-hot position of each code of categorical variable `v`; raises on a code with none."""
    codes = np.asarray(codes, dtype=np.float64)
    if len(codes) == 0:
        return np.zeros(0, dtype=np.int64)
    known, pos = _code_lookup(v)
    if len(known) == 0:
        raise ValueError(f"variable {v.name!r} has no one-hot categories")
    i = np.clip(np.searchsorted(known, codes), 0, len(known) - 1)
    ok = known[i] == codes
    if not np.all(ok):
        raise ValueError(
            f"variable {v.name!r}: code {codes[~ok][0]} has no one-hot category (known codes "
            f"{known.tolist()})"
        )
    return pos[i]


def column_names(schema: Schema, layout: str = "ordinal") -> tuple[list[str], list[str]]:
    """Value column names and mask column names of a layout (the benchmark header for 'benchmark')."""
    _check_layout(layout)
    cols: list[str] = []
    for v in schema.variables:
        if layout == "benchmark" and v.is_categorical:
            cols += [f"{v.name}->{c}" for c in categories(v)]
        else:
            cols.append(v.name)
    return cols, [f"mask->{v.name}" for v in schema.variables]


def _check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")


def _check_impute(impute: str, allowed: Sequence[str] = IMPUTE_STRATEGIES) -> str:
    impute = _IMPUTE_ALIASES.get(impute, impute)
    if impute not in allowed:
        raise ValueError(f"impute must be one of {tuple(allowed)}, got {impute!r}")
    return impute


@dataclass(frozen=True, eq=False)
class Grid:
    """Discretised stays: values (n, T, C), masks and GRU-D deltas (n, T, F), all float32."""

    values: np.ndarray  # (n, T, C) float32
    mask: np.ndarray  # (n, T, F) float32, 1 = observed in the bin
    delta: np.ndarray  # (n, T, F) float32, hours since last observation (GRU-D)
    columns: tuple[str, ...]  # value column names
    mask_columns: tuple[str, ...]  # "mask->variable"
    column_variable: np.ndarray  # (C,) int64, variable index of each value column
    column_kind: tuple[str, ...]  # per value column: continuous / ordinal / binary / onehot
    stay_id: np.ndarray  # (n,) str
    label: np.ndarray  # (n,) int8
    hours: float  # the window the grid covers (the cohort's `window` by default)
    timestep: float = 1.0
    layout: str = "ordinal"
    impute: str = "previous"

    @property
    def n_stays(self) -> int:
        return self.values.shape[0]

    def __len__(self) -> int:
        return self.n_stays

    def flat(self) -> np.ndarray:
        """Benchmark-style (n, T, C + F) array: value columns, then mask columns."""
        return np.concatenate([self.values, self.mask], axis=-1)

    @property
    def flat_columns(self) -> list[str]:
        return list(self.columns) + list(self.mask_columns)

    def subset(self, idx: np.ndarray | Sequence[int]) -> Grid:
        """The stays at positions `idx` (e.g. a train split), in that order."""
        idx = np.asarray(idx)
        return self.with_values(self.values[idx], idx)

    def with_values(self, values: np.ndarray, idx: np.ndarray | None = None) -> Grid:
        """A copy carrying new value columns (what scalers return), optionally for stays `idx`."""
        sel = slice(None) if idx is None else idx
        # only the per-stay fields change; the column description and settings carry over
        return replace(
            self,
            values=values,
            mask=self.mask[sel],
            delta=self.delta[sel],
            stay_id=self.stay_id[sel],
            label=self.label[sel],
        )

    # ------------------------------------------------------------ cache round trip
    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays (no objects) for np.savez / the preprocessing cache."""
        return {
            "values": self.values,
            "mask": self.mask,
            "delta": self.delta,
            "columns": np.array(self.columns, dtype=str),
            "mask_columns": np.array(self.mask_columns, dtype=str),
            "column_variable": self.column_variable,
            "column_kind": np.array(self.column_kind, dtype=str),
            "stay_id": np.asarray(self.stay_id).astype(str),
            "label": self.label,
            "timestep": np.array(self.timestep),
            "hours": np.array(self.hours),
            "layout": np.array(self.layout),
            "impute": np.array(self.impute),
        }

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> Grid:
        return cls(
            values=a["values"],
            mask=a["mask"],
            delta=a["delta"],
            columns=tuple(str(x) for x in a["columns"]),
            mask_columns=tuple(str(x) for x in a["mask_columns"]),
            column_variable=a["column_variable"],
            column_kind=tuple(str(x) for x in a["column_kind"]),
            stay_id=a["stay_id"],
            label=a["label"],
            timestep=float(a["timestep"]),
            hours=float(a["hours"]),
            layout=str(a["layout"]),
            impute=str(a["impute"]),
        )


@dataclass(frozen=True, eq=False)
class RawGrid:
    """Per-variable hourly values (n, T, F) float64 without one-hot, plus the observation mask.

    Attacks use it to estimate per-variable temporal (T x T) covariances of plausible trajectories.
    """

    values: np.ndarray  # (n, T, F) float64; NaN where unobserved if impute == "none"
    mask: np.ndarray  # (n, T, F) bool
    names: tuple[str, ...]
    stay_id: np.ndarray
    label: np.ndarray
    hours: float  # the window the grid covers
    timestep: float = 1.0
    impute: str = "previous"


def _winning_events(cohort: Cohort, timestep: float, hours: float) -> np.ndarray:
    """(n, T, F) position of the event that fills each cell (the last in event order), -1 if none.

    One unbuffered ``np.maximum.at`` over the events: no sort, and "last in event order wins" holds
    by construction (plain fancy assignment with repeated indices has no promised order).
    """
    if timestep <= 0 or hours <= 0:
        raise ValueError(f"timestep and hours must be positive, got {timestep} and {hours}")
    t_bins = n_bins(hours, timestep)
    e = cohort.events
    n, n_vars = cohort.n_stays, len(cohort.schema)
    bins = hour_bins(e.time, timestep)
    keep = (e.time > -BIN_EPS) & (e.time <= hours + BIN_EPS) & (bins >= 0) & (bins < t_bins)
    idx = np.flatnonzero(keep)
    itype = np.int32 if len(e.time) < 2**31 - 1 else np.int64
    cell = (e.stay[idx] * t_bins + bins[idx]) * n_vars + e.variable[idx]
    last = np.full(n * t_bins * n_vars, -1, dtype=itype)
    np.maximum.at(last, cell, idx.astype(itype))
    return last.reshape(n, t_bins, n_vars)


def _forward_fill(values: np.ndarray, obs: np.ndarray, before: np.ndarray) -> None:
    """In place along time: unobserved bins take the previous bin's value, `before` at bin 0.

    A loop over the T bins, each step one vectorised copy over all stays and variables; cheaper than
    a gather with a (n, T, F) index array.
    """
    np.copyto(values[:, 0], np.broadcast_to(before, values[:, 0].shape), where=~obs[:, 0])
    for t in range(1, values.shape[1]):
        np.copyto(values[:, t], values[:, t - 1], where=~obs[:, t])


def _gru_d_delta(obs: np.ndarray, timestep: float) -> np.ndarray:
    """GRU-D delta (module docstring): the recursion itself, one vectorised step per bin."""
    delta = np.zeros(obs.shape, dtype=np.float32)
    step = np.float32(timestep)
    for t in range(1, obs.shape[1]):
        np.add(delta[:, t - 1], step, out=delta[:, t])
        np.copyto(delta[:, t], step, where=obs[:, t - 1])
    return delta


def impute_unobserved(values: np.ndarray, obs: np.ndarray, normal: np.ndarray, impute: str) -> None:
    """Impute unobserved cells of (n, T, F) `values` in place (observed cells already written;
    with ``zero`` the unobserved cells must already hold 0, as a fresh grid does)."""
    normal = normal.astype(values.dtype)
    if impute == "previous":
        _forward_fill(values, obs, normal)
    elif impute == "normal":
        np.copyto(values, np.broadcast_to(normal, values.shape), where=~obs)
    elif impute == "none":
        values[~obs] = np.nan
    # "zero": unobserved cells are already 0


def _scatter(cohort: Cohort, last: np.ndarray, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """Observation mask and (n, T, F) values of the winning events, zeros elsewhere."""
    obs = last >= 0
    values = np.zeros(last.shape, dtype=dtype)
    values[obs] = cohort.events.value[last[obs]]
    return obs, values


def grid_raw(
    cohort: Cohort,
    timestep: float = 1.0,
    hours: float | None = None,
    impute: str = "previous",
    perturb: bool = True,
) -> RawGrid:
    """Per-variable (n, T, F) float64 values with the benchmark's bin rule, and the mask.

    `hours` defaults to the cohort's window. `impute` is as in `discretize`, plus "none" to leave
    NaN in unobserved cells. `perturb` as in `discretize`.
    """
    impute = _check_impute(impute, (*IMPUTE_STRATEGIES, "none"))
    hours = window_hours(cohort, hours)
    obs, values = _scatter(cohort, _winning_events(cohort, timestep, hours), np.float64)
    impute_unobserved(values, obs, cohort.schema.normals, impute)
    if perturb:
        perturb_values(values, obs, cohort, timestep)
    return RawGrid(
        values,
        obs,
        tuple(cohort.schema.names),
        cohort.stay_id,
        cohort.label,
        hours=float(hours),
        timestep=float(timestep),
        impute=impute,
    )


def discretize(
    cohort: Cohort,
    timestep: float = 1.0,
    hours: float | None = None,
    impute: str = "previous",
    layout: str = "ordinal",
    perturb: bool = True,
) -> Grid:
    """Discretise every stay into `n_bins(hours, timestep)` bins (benchmark rules, module docstring).

    `hours` defaults to the cohort's window (`Cohort.window`).

    Vectorised over stays and events: one scatter-max of event positions into the (n, T, F) cells
    picks each cell's winning event, then a forward fill along time; Python loops run only over
    bins and categorical variables. A cohort carrying a grid-space trigger
    (`Cohort.grid_perturbation`) gets it added after imputation (`preprocess._perturb`);
    ``perturb=False`` gives the grid its raw events and masks imply (what detectors compare with).
    The benchmark layout one-hots categoricals from the events' text, so it refuses a perturbation
    that moves a categorical variable.
    """
    impute = _check_impute(impute)
    _check_layout(layout)
    hours = window_hours(cohort, hours)
    schema = cohort.schema
    last = _winning_events(cohort, timestep, hours)
    obs, ordinal = _scatter(cohort, last, np.float32)
    impute_unobserved(ordinal, obs, schema.normals, impute)
    if perturb:
        moved = perturbed_categoricals(cohort) if layout == "benchmark" else []
        if moved:
            raise ValueError(
                f"the benchmark layout cannot carry a grid perturbation of categorical variables "
                f"{moved}; use layout='ordinal'"
            )
        perturb_values(ordinal, obs, cohort, timestep)
    delta = _gru_d_delta(obs, timestep)

    columns, mask_columns = column_names(schema, layout)
    if layout == "ordinal":
        values = ordinal
        col_var = np.arange(len(schema), dtype=np.int64)
        kinds = tuple(v.kind.value for v in schema.variables)
    else:
        values, col_var, kinds = _one_hot_layout(cohort, last, obs, ordinal, impute)
    return Grid(
        values=values,
        mask=obs.astype(np.float32),
        delta=delta,
        columns=tuple(columns),
        mask_columns=tuple(mask_columns),
        column_variable=col_var,
        column_kind=kinds,
        stay_id=cohort.stay_id,
        label=cohort.label,
        timestep=float(timestep),
        hours=float(hours),
        layout=layout,
        impute=impute,
    )


def _one_hot_layout(
    cohort: Cohort, last: np.ndarray, obs: np.ndarray, ordinal: np.ndarray, impute: str
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Benchmark value columns: continuous copied, categoricals one-hot over their categories."""
    schema = cohort.schema
    n, t_bins, _ = obs.shape
    widths = [len(categories(v)) if v.is_categorical else 1 for v in schema.variables]
    starts = np.concatenate([[0], np.cumsum(widths)]).astype(np.int64)
    values = np.zeros((n, t_bins, int(starts[-1])), dtype=np.float32)
    col_var = np.repeat(np.arange(len(schema), dtype=np.int64), widths)
    kinds = [
        "onehot" if v.is_categorical else v.kind.value
        for v, w in zip(schema.variables, widths, strict=True)
        for _ in range(w)
    ]
    # Continuous variables: copy runs of consecutive variables as slices (fancy indexing on the
    # last axis is several times slower).
    f = 0
    while f < len(schema):
        if schema.variables[f].is_categorical:
            f += 1
            continue
        g = f
        while g < len(schema) and not schema.variables[g].is_categorical:
            g += 1
        values[:, :, starts[f] : starts[f] + g - f] = ordinal[:, :, f:g]
        f = g
    rows = values.reshape(n * t_bins, -1)
    for f in np.flatnonzero(schema.categorical):
        v, k, a = schema.variables[f], widths[f], int(starts[f])
        ev = last[:, :, f][obs[:, :, f]]
        pos_ev = (
            cohort.events.alias[ev].astype(np.int64)
            if v.benchmark_values
            else np.full(len(ev), -1, dtype=np.int64)
        )
        if np.any(pos_ev >= k):
            raise ValueError(
                f"variable {v.name!r}: alias {int(pos_ev.max())} is not an index "
                f"into its {k} benchmark values"
            )
        unknown = pos_ev < 0
        if unknown.any():
            pos_ev[unknown] = _positions_of_codes(v, cohort.events.value[ev[unknown]])
        # Fill one-hot positions (the alias = the original text), not codes: see module docstring.
        pos = np.full((n, t_bins, 1), -1, dtype=np.int64)
        pos[obs[:, :, f : f + 1]] = pos_ev
        if impute != "zero":  # "zero": unobserved cells stay -1, an all-zero one-hot
            impute_unobserved(
                pos, obs[:, :, f : f + 1], _positions_of_codes(v, np.array([v.normal])), impute
            )
        hot = np.flatnonzero(pos.ravel() >= 0)
        rows[hot, a + pos.ravel()[hot]] = 1.0
    return values, col_var, tuple(kinds)
