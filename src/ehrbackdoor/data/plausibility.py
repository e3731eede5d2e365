"""Plausibility constraints on raw values: what a recorded (or poisoned) value may look like.

A trigger proposes new raw values; these functions make them look like real charting: inside the
variable's valid range, at the precision the data records, and for ordinal categoricals one of the
variable's clinical levels. Kept apart from the triggers so every trigger uses the same rules.
"""

from __future__ import annotations

import numpy as np

from ehrbackdoor.data.schema import Kind, Schema, round_to_precision


def level_index(schema: Schema, variable: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Position of each categorical value among its variable's ordered levels (nearest level)."""
    out = np.zeros(len(value), dtype=np.int64)
    for j in np.unique(variable):
        v = schema.variables[int(j)]
        if not v.is_categorical:
            continue
        sel = variable == j
        levels = np.asarray(v.levels)
        out[sel] = np.abs(value[sel, None] - levels[None, :]).argmin(axis=1)
    return out


def shift_values(
    schema: Schema, variable: np.ndarray, value: np.ndarray, delta: np.ndarray
) -> np.ndarray:
    """Add `delta` to raw values and make the results plausible.

    Continuous: round to recorded precision, then clip to the valid range. Ordinal: move by the
    rounded delta in clinical order, clipped to the first/last level. Binary flags never change.
    """
    variable = np.asarray(variable, dtype=np.int64)
    value = np.asarray(value, dtype=np.float64)
    out = round_to_precision(value + delta, schema.precisions[variable])
    out = np.clip(out, schema.lows[variable], schema.highs[variable])
    kinds = np.array([v.kind is Kind.ORDINAL for v in schema.variables])[variable]
    if kinds.any():
        idx = level_index(schema, variable[kinds], value[kinds])
        step = np.round(np.asarray(delta, dtype=np.float64)[kinds]).astype(np.int64)
        vars_k = variable[kinds]
        new = np.empty(kinds.sum(), dtype=np.float64)
        for j in np.unique(vars_k):
            levels = np.asarray(schema.variables[int(j)].levels)
            sel = vars_k == j
            new[sel] = levels[np.clip(idx[sel] + step[sel], 0, len(levels) - 1)]
        out[kinds] = new
    binary = np.array([v.kind is Kind.BINARY for v in schema.variables])[variable]
    out[binary] = value[binary]
    return out


def set_values(schema: Schema, variable: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Make proposed absolute values plausible (same rules as `shift_values`, from zero)."""
    variable = np.asarray(variable, dtype=np.int64)
    value = np.asarray(value, dtype=np.float64)
    out = round_to_precision(value, schema.precisions[variable])
    out = np.clip(out, schema.lows[variable], schema.highs[variable])
    cat = schema.categorical[variable]
    if cat.any():
        idx = level_index(schema, variable[cat], value[cat])
        vars_c = variable[cat]
        new = np.empty(cat.sum(), dtype=np.float64)
        for j in np.unique(vars_c):
            levels = np.asarray(schema.variables[int(j)].levels)
            sel = vars_c == j
            new[sel] = levels[idx[sel]]
        out[cat] = new
    return out


def is_plausible(schema: Schema, variable: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Per value: inside the valid range, at recorded precision, a valid level if categorical."""
    variable = np.asarray(variable, dtype=np.int64)
    value = np.asarray(value, dtype=np.float64)
    ok = (value >= schema.lows[variable]) & (value <= schema.highs[variable])
    ok &= np.isclose(
        round_to_precision(value, schema.precisions[variable]), value, rtol=0, atol=1e-9
    )
    cat = schema.categorical[variable]
    for j in np.unique(variable[cat]):
        sel = variable == j
        ok[sel] &= np.isin(value[sel], schema.variables[int(j)].levels)
    return ok
