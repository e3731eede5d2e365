"""Preprocessed arrays of every stay, for use outside ehrbackdoor (`ehrbackdoor data export`).

A use case over the data and preprocess layers, so it lives here rather than in `data`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ehrbackdoor.data.load import load_cohort
from ehrbackdoor.io import atomic_savez

REPRESENTATIONS = ("grid", "features")


def export_arrays(
    path: str | Path,
    out: str | Path,
    representation: str = "grid",
    layout: str = "ordinal",
    impute: str = "previous",
) -> tuple[int, tuple[int, ...]]:
    """Write `X` (float32, stays first), `y`, `stay_id` and `columns` to an .npz file.

    `grid` gives the hourly grid of the cohort's window with masks appended (benchmark layout: 48 x 76
    for MIMIC-III);
    `features` gives the raw window features (NaN where a window is empty; imputation and scaling
    belong to the victim). Returns the number of stays and the shape of X.
    """
    from ehrbackdoor.preprocess import features_cached, grid_cached

    if representation not in REPRESENTATIONS:
        raise ValueError(f"representation must be one of {REPRESENTATIONS}, got {representation!r}")
    cohort = load_cohort(path)
    if representation == "grid":
        g = grid_cached(cohort, impute=impute, layout=layout)
        x = g.flat()
        mask_cols = [f"mask->{n}" for n in cohort.schema.names]
        columns = list(g.columns) + mask_cols
    else:
        f = features_cached(cohort)
        x, columns = f.X, list(f.columns)
    atomic_savez(
        Path(out),
        {
            "X": np.asarray(x, dtype=np.float32),
            "y": cohort.label.astype(np.int8),
            "stay_id": cohort.stay_id.astype(str),
            "columns": np.asarray(columns, dtype=str),
        },
    )
    return cohort.n_stays, tuple(x.shape)
