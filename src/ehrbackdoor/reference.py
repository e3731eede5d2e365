"""Published reference numbers shipped with the package, to compare reproductions against.

A base-layer module (pandas only), so the report can draw them without importing the attacks.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

JOE2021_ASR_FILE = "joe2021_asr_figure.csv"
#: Citation of `joe2021_asr_figure` (also in the file's header).
JOE2021_CITATION = (
    "Joe et al. (2021), temporal-covariance backdoor trigger on MIMIC-III in-hospital mortality; "
    "values read off the saved result figure of github.com/byunggilljoe/mimic3_td_backdoor "
    "(result_plot.ipynb), about +/-0.02"
)


def joe2021_asr_figure() -> pd.DataFrame:
    """The published attack success rates of Joe et al. (2021), one row per curve point.

    Columns: ``model`` (lr, mlp, lstm), ``apply`` (observed, all), ``strength`` (Mahalanobis
    distance), ``rate`` (poisoning rate), ``asr``, ``note`` ("approximate" or empty). Values were
    read off a figure (about +/-0.02), so compare with a tolerance.
    """
    path = resources.files("ehrbackdoor").joinpath("resources", JOE2021_ASR_FILE)
    with path.open("r", encoding="utf-8") as fh:
        df = pd.read_csv(fh, comment="#", dtype={"model": str, "apply": str, "note": str})
    df["note"] = df["note"].fillna("")
    return df


__all__ = ["JOE2021_CITATION", "joe2021_asr_figure"]
