"""Report sections of the realistic attacker's two views: the efficacy-stealth frontier (ASR
against the strongest data-level detector) and the poisoning rate each attack needs for an ASR
of 0.9. Built from the aggregated results alone (`ehrbackdoor.experiments.frontier`)."""

from __future__ import annotations

import html

import pandas as pd

from ehrbackdoor.experiments.frontier import (
    display_frontier,
    display_rate_for_asr,
    frontier_table,
    rate_for_asr,
)
from ehrbackdoor.report import plots
from ehrbackdoor.report.fragments import img, table

#: The corner of the frontier plot an attacker aims for: what no data-level detector the run
#: tried finds much better than chance, at an ASR close to one.
MAX_DETECTION = 0.65
MIN_ASR = 0.97
#: The ASR level of the poisoning-rate table.
ASR_LEVEL = 0.9


def frontier_section(agg: pd.DataFrame) -> list[str]:
    """The plot (one per data source) and the table of its points; nothing without a
    data-level detector in the run."""
    points = frontier_table(agg)
    if points.empty:
        return []
    out = [
        "<h2>Efficacy-stealth frontier</h2>",
        '<p class="note">Each point: one attack setting and victim. x: detection AUROC of the '
        "strongest data-level detector the run tried (it needs only the training data, so a "
        "hospital can run it before training; model-level detectors and the perfect / random "
        "references are left out, the strongest of data- and model-level is in the table). "
        "y: attack success rate of the poisoned model; hollow: the unpoisoned model's rate of "
        f"the same trigger. Shaded: strong and hidden (AUROC &lt;= {MAX_DETECTION:g}, ASR "
        f"&gt;= {MIN_ASR:g}).</p>",
    ]
    groups = points.groupby("data", sort=False) if "data" in points.columns else [("", points)]
    many = len(points["data"].unique()) > 1 if "data" in points.columns else False
    for data, g in groups:
        title = "ASR vs strongest data-level detector" + (f": data {data}" if many else "")
        png = plots.efficacy_stealth(g, title, max_detection=MAX_DETECTION, min_asr=MIN_ASR)
        out.append(img(png, title))
    shown = display_frontier(points)
    hidden = (points["detection_auroc"] <= MAX_DETECTION) & (points["asr"] >= MIN_ASR)
    shown["strong and hidden"] = ["yes" if h else "" for h in hidden]
    out.append(table(shown))
    return out


def rate_section(agg: pd.DataFrame, level: float = ASR_LEVEL) -> list[str]:
    """The poisoning rate for an ASR of `level`, for the settings the run tried at two or more
    rates (with one rate there is nothing to interpolate)."""
    rates = rate_for_asr(agg, level)
    rates = rates[rates["n_rates"] >= 2].reset_index(drop=True)
    if rates.empty:
        return []
    return [
        f"<h2>Poisoning rate for ASR {html.escape(f'{level:g}')}</h2>",
        '<p class="note">The smallest poisoning rate at which the mean ASR reaches '
        f"{level:g}, linearly interpolated between the two rates tried around it; "
        "&lt;= r: the smallest rate tried already reaches it; not reached: no rate tried does "
        "(nothing is extrapolated). CI low: the same from the lower bound of the ASR's 95% "
        "interval.</p>",
        table(display_rate_for_asr(rates)),
    ]


def sections(agg: pd.DataFrame) -> list[str]:
    """Both sections, for `build_report`."""
    return frontier_section(agg) + rate_section(agg)
