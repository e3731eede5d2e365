"""Variance-stabilising transforms of raw values, declared per variable in the schema.

Heavy-tailed positive labs (AST, ALT, creatinine, ...) vary multiplicatively: a covariance taken in
raw units is dominated by a few extreme stays, and a draw from it shifts a typical stay by far more
than its own spread (onto the valid-range floor). Triggers therefore estimate covariances and add
their patterns in the variable's declared space f and map back: value' = f^-1(f(value) + t).

- ``identity``: f(x) = x (vitals, bounded or symmetric variables, categoricals);
- ``log``: f(x) = log(x), for variables whose valid range starts above 0;
- ``log1p``: f(x) = log(1 + x), for right-skewed counts or volumes that may be 0 (urine output).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

TRANSFORMS = ("identity", "log", "log1p")


def check_transform(name: str, low: float) -> str:
    """`name` if it is a known transform defined on [low, inf), else a ValueError."""
    if name not in TRANSFORMS:
        raise ValueError(f"transform must be one of {TRANSFORMS}, got {name!r}")
    if name == "log" and not low > 0:
        raise ValueError(f"transform 'log' needs a valid range above 0, got low={low!r}")
    if name == "log1p" and not low > -1:
        raise ValueError(f"transform 'log1p' needs a valid range above -1, got low={low!r}")
    return name


def _codes(spaces: Sequence[str], variable: np.ndarray) -> np.ndarray:
    table = np.array([TRANSFORMS.index(s) for s in spaces], dtype=np.int64)
    return table[np.asarray(variable, dtype=np.int64)]


def forward(spaces: Sequence[str], variable: np.ndarray, value: np.ndarray) -> np.ndarray:
    """f(value) per element, with f the transform of the element's variable (`spaces[variable]`)."""
    code = _codes(spaces, variable)
    out = np.asarray(value, dtype=np.float64).copy()
    log = code == 1
    out[log] = np.log(np.maximum(out[log], np.finfo(np.float64).tiny))
    l1p = code == 2
    out[l1p] = np.log1p(np.maximum(out[l1p], 0.0))
    return out


def inverse(spaces: Sequence[str], variable: np.ndarray, value: np.ndarray) -> np.ndarray:
    """f^-1(value) per element (inverse of `forward`); overflow saturates at the float maximum."""
    code = _codes(spaces, variable)
    out = np.asarray(value, dtype=np.float64).copy()
    with np.errstate(over="ignore"):
        log = code == 1
        out[log] = np.exp(np.minimum(out[log], 700.0))
        l1p = code == 2
        out[l1p] = np.expm1(np.minimum(out[l1p], 700.0))
    return out


def forward_grid(spaces: Sequence[str], values: np.ndarray) -> np.ndarray:
    """`forward` of an (..., F) array whose last axis is the variable."""
    var = np.broadcast_to(np.arange(values.shape[-1]), values.shape).ravel()
    return forward(spaces, var, values.ravel()).reshape(values.shape)
