"""Matplotlib figures of a run, returned as PNG bytes (the report embeds them as base64)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

DPI = 100
COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def text_overlaps(fig) -> list[tuple[str, str]]:
    """Pairs of visible texts of a figure whose drawn boxes overlap (tick labels, axis labels,
    titles, legend entries): what a reader sees as labels written over each other."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    texts = []
    for ax in fig.axes:
        (x0, x1), (y0, y1) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
        ticks = [(t, t.get_position()[0], x0, x1) for t in ax.get_xticklabels()]
        ticks += [(t, t.get_position()[1], y0, y1) for t in ax.get_yticklabels()]
        for t, pos, lo, hi in ticks:  # ticks outside the view limits are not drawn
            if t.get_visible() and t.get_text() and lo - 1e-9 <= pos <= hi + 1e-9:
                texts.append((f"tick {t.get_text()}", t.get_window_extent(r), id(ax), "tick"))
        for t in (ax.xaxis.label, ax.yaxis.label, ax.title):
            if t.get_visible() and t.get_text():
                texts.append((t.get_text(), t.get_window_extent(r), id(ax), "label"))
    for t in fig.texts:
        if t.get_visible() and t.get_text():
            texts.append((t.get_text(), t.get_window_extent(r), 0, "label"))
    out = []
    for i, (a, ba, axa, ka) in enumerate(texts):
        for b, bb, axb, kb in texts[i + 1 :]:
            if ka == kb == "tick" and axa == axb:
                continue  # neighbouring ticks of one axis are matplotlib's own business
            if ba.overlaps(bb) and ba.width > 0 and bb.width > 0:
                out.append((a, b))
    return out


def _rate_axis(ax, rates) -> None:
    """Ticks at the rates used; one rate gets one tick, not a meaningless 0.048-0.052 range."""
    rates = sorted(set(float(r) for r in rates))
    ax.set_xticks(rates, [f"{r:g}" for r in rates])
    if len(rates) == 1:
        ax.set_xlim(rates[0] * 0.5, rates[0] * 1.5)


def _nan(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _series_label(row: pd.Series, cols: Sequence[str]) -> str:
    parts = []
    for c in cols:
        name = c[2:] if c.startswith("p_") else c
        parts.append(f"{row[c]}" if name == "trigger" else f"{name} {row[c]}")
    return ", ".join(parts) or str(row.get("trigger", "all"))


def _varying(df: pd.DataFrame, cols: Sequence[str]) -> list[str]:
    return [c for c in cols if c in df.columns and df[c].astype(str).nunique() > 1]


def asr_vs_rate(agg: pd.DataFrame, title: str) -> bytes:
    """Attack success rate against the poisoning rate: one panel per victim, one line per
    strength (or other trigger parameter), with the 95% CI over seeds and the clean model's rate."""
    victims = list(dict.fromkeys(agg["victim"]))
    series_cols = _varying(agg, ["trigger"] + [c for c in agg.columns if c.startswith("p_")])
    n = len(victims)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n + 0.6, 3.0), sharey=True, squeeze=False)
    for ax, victim in zip(axes[0], victims, strict=True):
        sub = agg[agg["victim"] == victim]
        groups = sub.groupby(series_cols, sort=True) if series_cols else [((), sub)]
        for i, (_, g) in enumerate(groups):
            g = g.sort_values("rate")
            color = COLORS[i % len(COLORS)]
            label = _series_label(g.iloc[0], series_cols)
            ax.plot(g["rate"], g["asr"], "o-", color=color, label=label)
            lo, hi = g["asr_lo"].to_numpy(float), g["asr_hi"].to_numpy(float)
            if np.isfinite(lo).any():
                ax.fill_between(g["rate"], lo, hi, color=color, alpha=0.15, linewidth=0)
            ax.plot(g["rate"], g["asr_baseline"], ":", color=color, alpha=0.8)
        ax.set_title(victim)
        ax.set_xlabel("poisoning rate")
        _rate_axis(ax, sub["rate"])
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("attack success rate")
    handles, labels = axes[0][0].get_legend_handles_labels()
    handles.append(plt.Line2D([], [], color="grey", linestyle=":"))
    labels.append("unpoisoned model, same trigger")
    fig.legend(
        handles,
        labels,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=min(5, len(labels)),
        frameon=False,
    )
    fig.suptitle(title, y=1.04)
    return png(fig)


#: The three model/data pairs, as the README's glossary names them.
PAIRS = [
    ("baseline", "unpoisoned model, clean test stays"),
    ("clean", "poisoned model, clean test stays"),
    ("triggered", "poisoned model, triggered test stays"),
]


def clean_vs_attacked(agg: pd.DataFrame, title: str) -> bytes:
    """AUROC and AUPRC per victim of the three model/data pairs for one attack setting (rows of
    `agg` are one per victim; the caller makes one figure per setting, nothing is pooled)."""
    victims = list(dict.fromkeys(agg["victim"]))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), layout="constrained")
    x = np.arange(len(victims))
    w = 0.26
    for ax, metric in zip(axes, ("auroc", "auprc"), strict=True):
        for i, (prefix, label) in enumerate(PAIRS):
            col = f"{prefix}_{metric}"
            vals = [agg.loc[agg["victim"] == v, col].mean() for v in victims]
            ax.bar(x + (i - 1) * w, vals, w, label=label, color=COLORS[i])
        ax.set_xticks(x, victims)
        ax.set_ylabel(metric.upper())
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    return png(fig)


def poisoning_cost(agg: pd.DataFrame, title: str) -> bytes:
    """Clean-performance cost of poisoning (unpoisoned minus poisoned model, on clean test stays)
    against the poisoning rate, one line per victim and setting of `agg`."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), layout="constrained")
    for ax, metric in zip(axes, ("auroc", "auprc"), strict=True):
        col = f"{metric}_cost"
        for i, (victim, g) in enumerate(agg.groupby("victim", sort=False)):
            m = g.groupby("rate")[col].mean()
            ax.plot(m.index, m.to_numpy(), "o-", color=COLORS[i % len(COLORS)], label=victim)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xlabel("poisoning rate")
        _rate_axis(ax, agg["rate"])
        ax.set_ylabel(f"{metric.upper()} lost to poisoning", labelpad=6)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    return png(fig)


def trigger_heatmap(
    pattern: np.ndarray, sd: np.ndarray | None, variables: Sequence[str], title: str
) -> bytes:
    """A value trigger's (hours x variables) pattern in units of each variable's spread."""
    p = np.asarray(pattern, dtype=np.float64)
    if sd is not None and len(sd) == p.shape[1]:
        scale = np.where(np.asarray(sd) > 0, sd, 1.0)
        p = p / scale
        unit = "change / SD of the variable"
    else:
        unit = "change (raw units)"
    keep = np.flatnonzero(np.any(p != 0, axis=0))
    if len(keep) == 0:
        keep = np.arange(p.shape[1])
    names = [variables[j] if j < len(variables) else str(j) for j in keep]
    lim = float(np.nanmax(np.abs(p[:, keep]))) or 1.0
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(keep) + 1.2))
    im = ax.imshow(
        p[:, keep].T, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest"
    )
    ax.set_yticks(range(len(keep)), names, fontsize=7)
    ax.set_xlabel("hour since admission")
    fig.colorbar(im, ax=ax, label=unit, shrink=0.8)
    ax.set_title(title, fontsize=10)
    return png(fig)


def masks_figure(
    panels: Sequence[tuple[str, np.ndarray]], variables: Sequence[str], title: str
) -> bytes:
    """Observation masks (hours x variables) side by side: real stays and triggered stays."""
    n = len(panels)
    height = max(4.6, 0.16 * len(variables) + 1.6)  # about 11 px per variable name at 100 dpi
    fig, axes = plt.subplots(1, n, figsize=(1.7 * n + 1.6, height), sharey=True, squeeze=False)
    for k, (ax, (label, m)) in enumerate(zip(axes[0], panels, strict=True)):
        m = np.asarray(m, dtype=np.float64)
        ax.imshow(m.T, aspect="auto", cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(label, fontsize=8)
        ax.set_xlabel("hour", fontsize=8)
        if k == 0:
            ax.set_yticks(range(len(variables)), variables, fontsize=8)
    fig.suptitle(title + "  (dark = observed)", fontsize=10, y=1.0)
    return png(fig)


#: Colour per trigger family and marker per victim of the efficacy-stealth plot.
FAMILY_COLORS = {"value": COLORS[0], "missing": COLORS[1]}
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">"]


def _family_color(family: str, families: list[str]) -> str:
    return FAMILY_COLORS.get(family, COLORS[(2 + families.index(family)) % len(COLORS)])


def efficacy_stealth(
    frontier: pd.DataFrame, title: str, max_detection: float = 0.65, min_asr: float = 0.97
) -> bytes:
    """Attack success rate against the detection AUROC of the strongest data-level detector
    (rows of `experiments.frontier.frontier_table`): one colour per trigger family, one marker
    per victim, and a faint hollow marker at the unpoisoned model's rate of the same setting,
    joined to the poisoned one by a thin line (the height of that line is what the backdoor
    adds). The shaded corner (detection AUROC <= `max_detection`, ASR >= `min_asr`) holds the
    attacks that are both strong and hidden from every data-level detector the run tried; its
    label is in the legend, outside the data, where no point can hide it."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    x = frontier["detection_auroc"].to_numpy(dtype=np.float64)
    lo_x = min(0.4, float(np.nanmin(x)) - 0.02) if np.isfinite(x).any() else 0.4
    hi_x = max(1.0, float(np.nanmax(x)) + 0.02) if np.isfinite(x).any() else 1.0
    ax.add_patch(
        plt.Rectangle(
            (lo_x, min_asr),
            max_detection - lo_x,
            1.02 - min_asr,
            color="#2ca02c",
            alpha=0.18,
            linewidth=0,
            zorder=0,
        )
    )
    ax.axvline(0.5, color="grey", linestyle=":", linewidth=0.8, zorder=0)
    families = list(dict.fromkeys(frontier["family"]))
    victims = list(dict.fromkeys(frontier["victim"]))
    for _, r in frontier.iterrows():
        color = _family_color(r["family"], families)
        marker = MARKERS[victims.index(r["victim"]) % len(MARKERS)]
        base = r.get("asr_baseline")
        if not _nan(base):
            ax.plot(
                [r["detection_auroc"]] * 2, [base, r["asr"]], "-", color=color, lw=0.6, alpha=0.5
            )
            ax.plot(r["detection_auroc"], base, marker, mfc="none", mec=color, alpha=0.45, ms=6)
        ax.plot(r["detection_auroc"], r["asr"], marker, color=color, ms=7, mec="white", mew=0.5)
    ax.set_xlim(lo_x, hi_x)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("detection AUROC, strongest data-level detector (0.5 = chance)")
    ax.set_ylabel("attack success rate")
    ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], linewidth=5, color=_family_color(f, families)) for f in families]
    labels = [f"{f} trigger" for f in families]
    handles += [
        plt.Line2D([], [], marker=MARKERS[i % len(MARKERS)], linestyle="", color="dimgrey")
        for i in range(len(victims))
    ]
    labels += list(victims)
    handles.append(plt.Line2D([], [], marker="o", mfc="none", mec="dimgrey", linestyle=""))
    labels.append("unpoisoned model, same trigger")
    handles.append(plt.Rectangle((0, 0), 1, 1, color="#2ca02c", alpha=0.18, linewidth=0))
    labels.append(f"strong and hidden:\nAUROC <= {max_detection:g}, ASR >= {min_asr:g}")
    ax.legend(
        handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False
    )
    ax.set_title(title, fontsize=10)
    return png(fig)
