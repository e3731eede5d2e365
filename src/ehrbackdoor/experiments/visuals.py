"""What the steps keep for the report's figures (small arrays beside each step's output).

The data step keeps real observation masks and how often each (hour, variable) is observed, plus
each variable's spread (to scale value triggers); the poison step keeps the trigger's learned
(hours x variables) arrays and a few test stays' masks and values before and after the trigger.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Stays whose grids are kept for the report's missingness figure.
N_EXAMPLE_STAYS = 3


def data_visual(train) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Observed rate per (hour, variable), a few example masks and each variable's SD."""
    from ehrbackdoor.preprocess.grid import grid_raw

    rng = np.random.default_rng(0)
    n_ex = min(N_EXAMPLE_STAYS, train.n_stays)
    ex = np.sort(rng.choice(train.n_stays, size=n_ex, replace=False))
    g = grid_raw(train, impute="previous")
    with np.errstate(invalid="ignore"):
        sd = np.nanstd(g.values.reshape(-1, g.values.shape[-1]), axis=0)
    arrays = {
        "observed_rate": g.mask.mean(axis=0).astype(np.float32),
        "example_masks": g.mask[ex].astype(np.uint8),
        "sd": np.nan_to_num(sd).astype(np.float64),
    }
    return arrays, {"variables": list(train.schema.names)}


def poison_visual(trigger, test, attacked, triggered_idx: np.ndarray) -> dict[str, np.ndarray]:
    """The trigger's (hours x variables) state arrays and example test stays before / after."""
    from ehrbackdoor.preprocess.grid import grid_raw

    arrays: dict[str, np.ndarray] = {}
    for name, a in trigger.state().items():
        a = np.asarray(a)
        if a.ndim == 2 and a.shape[1] == len(test.schema) and a.dtype.kind in "biuf":
            arrays[f"state_{name}"] = a.astype(np.float64)
    ex = triggered_idx[:N_EXAMPLE_STAYS]
    before = grid_raw(test.subset(ex), impute="previous")
    after = grid_raw(attacked.subset(ex), impute="previous")
    arrays["mask_before"] = before.mask.astype(np.uint8)
    arrays["mask_after"] = after.mask.astype(np.uint8)
    arrays["value_change"] = np.where(after.mask, after.values - before.values, 0.0)
    return arrays
