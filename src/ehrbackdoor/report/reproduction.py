"""The report's reproduction section: measured attack success of grid-space temporal cells beside
the values Joe et al. (2021) published (`ehrbackdoor.reference.joe2021_asr_figure`).

One panel per victim x apply mode: the measured ASR over the poisoning rate, one colour per
strength, solid for the paper protocol and dashed for the honest one, the unpoisoned model's rate
of the same trigger as thin dotted lines, and the published points as crosses. The published
numbers come from MIMIC-III (the measured from whatever the run used), so the panels compare
shapes and levels, not identical experiments.
"""

from __future__ import annotations

import html

import pandas as pd

from ehrbackdoor.reference import JOE2021_CITATION, joe2021_asr_figure
from ehrbackdoor.report import plots
from ehrbackdoor.report.fragments import img

PROTOCOL_STYLE = {"paper": "-", "honest": "--"}


def reproduction_cells(agg: pd.DataFrame) -> pd.DataFrame:
    """The aggregated rows the section draws: temporal trigger, grid space (empty if none)."""
    if agg.empty or "space" not in agg.columns or "trigger" not in agg.columns:
        return agg.iloc[0:0]
    sub = agg[(agg["space"] == "grid") & (agg["trigger"] == "temporal")].copy()
    if "protocol" not in sub.columns:
        sub["protocol"] = "honest"
    if "p_strength" not in sub.columns:
        sub["p_strength"] = float("nan")
    return sub


def published_beside(sub: pd.DataFrame) -> pd.DataFrame:
    """One row per measured (victim, apply, strength, rate, protocol, target) with the measured
    ASR, the unpoisoned model's rate and the published ASR (NaN where the paper has none; the
    paper's numbers are for target 1)."""
    pub = joe2021_asr_figure().rename(columns={"model": "victim", "asr": "published_asr"})
    pub = pub.drop(columns=["note"])
    cols = ["victim", "apply", "p_strength", "rate", "protocol", "target", "asr", "asr_baseline"]
    have = [c for c in cols if c in sub.columns]
    m = sub[have].rename(columns={"p_strength": "strength"}).copy()
    m["strength"] = m["strength"].astype(float)
    m["rate"] = m["rate"].astype(float)
    out = m.merge(pub, on=["victim", "apply", "strength", "rate"], how="left")
    if "target" in out.columns:
        out.loc[out["target"].astype(str) != "1", "published_asr"] = float("nan")
    return out


def figure(sub: pd.DataFrame) -> bytes:
    """Measured (both protocols) and published ASR over rate, per victim x apply mode."""
    plt = plots.plt
    pub = joe2021_asr_figure()
    victims = list(dict.fromkeys(sub["victim"]))
    modes = list(dict.fromkeys(sub["apply"]))
    strengths = sorted(set(sub["p_strength"].astype(float)) | set(pub["strength"]))
    color = {s: plots.COLORS[i % len(plots.COLORS)] for i, s in enumerate(strengths)}
    fig, axes = plt.subplots(
        len(victims),
        len(modes),
        figsize=(3.4 * len(modes) + 1.8, 2.8 * len(victims)),
        sharey=True,
        squeeze=False,
    )
    for r, victim in enumerate(victims):
        for c, mode in enumerate(modes):
            ax = axes[r][c]
            cell = sub[(sub["victim"] == victim) & (sub["apply"] == mode)]
            for (strength, protocol), g in cell.groupby(["p_strength", "protocol"], sort=True):
                g = g.sort_values("rate")
                style = PROTOCOL_STYLE.get(str(protocol), "-.")
                col = color[float(strength)]
                ax.plot(
                    g["rate"],
                    g["asr"],
                    "o" + style,
                    color=col,
                    label=f"strength {strength:g}, {protocol}",
                )
                ax.plot(g["rate"], g["asr_baseline"], ":", color=col, lw=1, alpha=0.7)
            p = pub[(pub["model"] == victim) & (pub["apply"] == mode)]
            for strength, g in p.groupby("strength"):
                ax.plot(
                    g["rate"],
                    g["asr"],
                    "x",
                    color=color[float(strength)],
                    ms=7,
                    label=f"published, strength {strength:g}",
                )
            ax.set_title(f"{victim}, apply {mode}", fontsize=9)
            ax.set_ylim(-0.02, 1.02)
            ax.set_xlabel("poisoning rate")
            if c == 0:
                ax.set_ylabel("ASR")
            ax.grid(alpha=0.3)
    handles, labels = {}, []
    for ax in axes.ravel():
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    fig.legend(
        [handles[lab] for lab in labels],
        labels,
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        fontsize=8,
    )
    fig.tight_layout()
    return plots.png(fig)


def section(agg: pd.DataFrame) -> list[str]:
    """HTML of the reproduction section, or [] when the run has no grid-space temporal cells."""
    sub = reproduction_cells(agg)
    if sub.empty:
        return []
    table = published_beside(sub)
    caption = (
        "Measured attack success rate (mean over seeds) of the grid-space temporal trigger: solid "
        "lines the paper protocol (threshold 0.5, the paper's epoch rule), dashed the honest "
        "protocol (clean-validation epoch and threshold); thin dotted lines the unpoisoned "
        "model's rate of the same trigger under the same protocol; crosses the published values "
        f"of {JOE2021_CITATION}. The published values are for MIMIC-III, target 1."
    )
    return [
        "<h2>Reproduction of Joe et al. (2021)</h2>",
        f"<figure>{img(figure(sub), 'measured and published ASR')}"
        f'<figcaption class="note">{html.escape(caption)}</figcaption></figure>',
        table.to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="", border=0),
    ]


__all__ = ["published_beside", "reproduction_cells", "section"]
