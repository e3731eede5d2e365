"""Aggregate a run's cells: mean and 95% confidence interval over seeds per victim and setting.

The interval is Student's t over the seeds' values (mean +- t(0.975, n-1) * sd / sqrt(n)),
clipped to the metric's range (rates and areas in [0, 1], counts >= 0). With a single seed the
CSV and JSON leave it empty; the tables people read then show the cell's own bootstrap interval
over the test stays where one is stored (the attack success rates) and say so.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ehrbackdoor.experiments.store import Store

FORMATS = ("markdown", "csv", "json", "long")

#: Columns that identify an attack setting (besides trigger parameters).
SETTING_COLUMNS = ["data", "victim", "attack", "trigger", "target", "rate", "apply", "selection"]

#: Setting columns that exist only in runs that use them (a config that sets them, or any cell
#: that differs from the default); cells without the key get the default.
OPTIONAL_SETTING_COLUMNS = {"space": "raw", "protocol": "honest", "victim_preset": "tuned"}
_SETTING_SET = {*SETTING_COLUMNS, *OPTIONAL_SETTING_COLUMNS}

#: Metrics shown by default, in order, with their headers.
MAIN_METRICS = {
    "asr": "ASR poisoned",
    "asr_baseline": "ASR unpoisoned",
    "baseline_auroc": "AUROC unpoisoned",
    "clean_auroc": "AUROC poisoned, clean",
    "triggered_auroc": "AUROC poisoned, triggered",
    "baseline_auprc": "AUPRC unpoisoned",
    "clean_auprc": "AUPRC poisoned, clean",
    "triggered_auprc": "AUPRC poisoned, triggered",
    "auroc_cost": "AUROC cost",
}
#: Per-cell bootstrap interval columns of a metric (used for single-seed tables).
BOOTSTRAP_CI = {
    "asr": ("asr_ci_low", "asr_ci_high"),
    "asr_baseline": ("asr_baseline_ci_low", "asr_baseline_ci_high"),
}
#: Per-cell bookkeeping, not aggregated.
NOT_AGGREGATED = {
    "asr_ci_low",
    "asr_ci_high",
    "asr_baseline_ci_low",
    "asr_baseline_ci_high",
    "threshold",
    "threshold_baseline",
    "n_train",
    "n_val",
    "n_test",
}


def cells_frame(store: Store, status: str | None = "ok") -> pd.DataFrame:
    """One row per cell: setting columns, trigger parameters (`p_<name>`), seed, metrics."""
    rows = []
    cells = store.cells(status)
    optional = [k for k in OPTIONAL_SETTING_COLUMNS if any(k in r["params"] for r in cells)]
    for r in cells:
        p = r["params"]
        row: dict[str, Any] = {k: p.get(k) for k in SETTING_COLUMNS}
        row.update({k: p.get(k, OPTIONAL_SETTING_COLUMNS[k]) for k in optional})
        for k, v in (p.get("trigger_params") or {}).items():
            row[f"p_{k}"] = json.dumps(v) if isinstance(v, list | dict) else v
        row["seed"] = p["seed"]
        row["key"] = r["key"]
        row["status"] = r["status"]
        row["error"] = r["error"]
        row.update(r["metrics"] or {})
        for k, v in (r["timings"] or {}).items():
            row[f"t_{k}"] = v
        rows.append(row)
    return pd.DataFrame(rows)


def setting_columns(df: pd.DataFrame) -> list[str]:
    optional = [c for c in OPTIONAL_SETTING_COLUMNS if c in df.columns]
    return SETTING_COLUMNS + optional + sorted(c for c in df.columns if c.startswith("p_"))


def metric_columns(df: pd.DataFrame) -> list[str]:
    skip = set(setting_columns(df)) | {"seed", "key", "status", "error"} | NOT_AGGREGATED
    cols = [
        c
        for c in df.columns
        if c not in skip and not c.startswith("t_") and pd.api.types.is_numeric_dtype(df[c])
    ]
    first = [c for c in MAIN_METRICS if c in cols]
    return first + [c for c in cols if c not in MAIN_METRICS]


def metric_range(metric: str) -> tuple[float, float]:
    """The range a metric's values (and so its interval) live in.

    Costs are differences of two areas ([-1, 1]); counts (`n_*`) are >= 0; rates, areas under
    curves, precisions, shares, p-values and KS statistics lie in [0, 1]; anything else is free.
    """
    parts = metric.split("_")
    if metric.endswith("_cost"):
        return (-1.0, 1.0)
    if "n" in parts:
        return (0.0, math.inf)
    unit = {"asr", "auroc", "auprc", "tpr", "precision", "share", "p", "statistic", "recall"}
    if unit & set(parts):
        return (0.0, 1.0)
    return (-math.inf, math.inf)


def is_bounded(metric: str) -> bool:
    """Whether `metric` lives in [0, 1]."""
    return metric_range(metric) == (0.0, 1.0)


def t_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of a Student-t interval; NaN bounds with fewer than 2 values."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return (math.nan, math.nan, math.nan)
    m = float(v.mean())
    if len(v) < 2:
        return (m, math.nan, math.nan)
    from scipy import stats

    half = float(stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return (m, m - half, m + half)


def aggregate(df: pd.DataFrame, bootstrap_single: bool = False) -> pd.DataFrame:
    """Mean, CI low and CI high of every metric per setting (columns `<metric>`, `<metric>_lo`,
    `<metric>_hi`), plus `n_seeds`; rows in the order the settings first appear.

    `bootstrap_single`: a setting with one seed takes the cell's stored bootstrap interval for
    the metrics that have one (`BOOTSTRAP_CI`) instead of none."""
    if df.empty:
        return pd.DataFrame()
    keys = setting_columns(df)
    metrics = metric_columns(df)
    work = df.copy()
    for k in keys:  # group on strings so missing parameters (NaN) form their own group
        work[k] = work[k].map(
            lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else v
        )
    out = []
    for group_key, g in work.groupby(keys, sort=False, dropna=False):
        row = dict(zip(keys, group_key, strict=True))
        row["n_seeds"] = int(g["seed"].nunique())
        for m in metrics:
            mean, lo, hi = t_interval(g[m].to_numpy(dtype=np.float64))
            ci = BOOTSTRAP_CI.get(m)
            if bootstrap_single and len(g) == 1 and ci and set(ci) <= set(g.columns):
                lo, hi = (float(g[c].iloc[0]) for c in ci)
            low, high = metric_range(m)  # never an interval outside what the metric can be
            if not math.isnan(lo):
                lo, hi = min(max(lo, low), high), max(min(hi, high), low)
            row[m], row[f"{m}_lo"], row[f"{m}_hi"] = mean, lo, hi
        out.append(row)
    agg = pd.DataFrame(out)
    # drop trigger-parameter columns no setting uses
    for k in keys:
        if k.startswith("p_") and (agg[k] == "").all():
            agg = agg.drop(columns=k)
    return agg


def load_aggregate(run_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(cells, aggregated) of a run directory."""
    store = Store.open_run(run_dir, readonly=True)
    try:
        cells = cells_frame(store)
    finally:
        store.close()
    return cells, aggregate(cells)


def _fmt(v: Any, digits: int = 3) -> str:
    from ehrbackdoor.experiments.tables import fmt_value

    return fmt_value(v, digits)


def display_table(agg: pd.DataFrame, metrics: list[str] | None = None) -> pd.DataFrame:
    """Human-readable table: `mean [lo, hi]` per metric, only the columns that vary."""
    from ehrbackdoor.experiments.tables import fmt_interval

    if agg.empty:
        return agg
    keys = [c for c in agg.columns if c in _SETTING_SET or c.startswith("p_")]
    constant = [k for k in keys if agg[k].nunique(dropna=False) == 1 and k not in ("victim",)]
    shown_keys = [k for k in keys if k not in constant]
    metrics = metrics or [m for m in MAIN_METRICS if m in agg.columns]
    extra = [
        c
        for c in agg.columns
        if (c.startswith("stealth_") or c.startswith("defence_")) and not c.endswith(("_lo", "_hi"))
    ]
    out = pd.DataFrame(
        {(k[2:] if k.startswith("p_") else k): agg[k].map(_setting) for k in shown_keys}
    )
    out["seeds"] = agg["n_seeds"]
    for m in metrics + extra:
        header = MAIN_METRICS.get(m, m)
        out[header] = [
            fmt_interval(mean, lo, hi)
            for mean, lo, hi in zip(agg[m], agg[f"{m}_lo"], agg[f"{m}_hi"], strict=True)
        ]
    return out


def constant_settings(agg: pd.DataFrame) -> dict[str, Any]:
    keys = [c for c in agg.columns if c in _SETTING_SET or c.startswith("p_")]
    return {
        (k[2:] if k.startswith("p_") else k): _setting(agg[k].iloc[0])
        for k in keys
        if k != "victim" and agg[k].nunique(dropna=False) == 1
    }


def _setting(v: Any) -> str:
    if isinstance(v, float | np.floating):
        return f"{v:g}"
    return "" if v is None else str(v)


def to_markdown(df: pd.DataFrame) -> str:
    if df.empty:
        return "_no finished cells_\n"
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(_fmt(v) for v in r.tolist()) + " |")
    return "\n".join(lines) + "\n"


def format_results(
    run_dir: str | Path, fmt: str = "markdown", width: int | None = None, brief: bool = False
) -> str:
    """The aggregated results of a run: `markdown` (tables for people, each at most `width`
    columns wide, default the terminal's or 80), `csv` (one column per mean / CI bound), `json`
    or `long` (CSV, one row per setting and metric); `brief` shows the main tables only."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; allowed: {', '.join(FORMATS)}")
    run_dir = Path(run_dir)
    store = Store.open_run(run_dir, readonly=True)
    try:
        cells = cells_frame(store)
        counts = store.counts()
    finally:
        store.close()
    if fmt == "long":
        return long_table(aggregate(cells, bootstrap_single=True)).to_csv(index=False)
    agg = aggregate(cells)
    if fmt == "csv":
        buf = io.StringIO()
        agg.to_csv(buf, index=False)
        return buf.getvalue()
    if fmt == "json":
        records = json.loads(agg.to_json(orient="records")) if not agg.empty else []
        return json.dumps({"cells": counts, "results": records}, indent=2) + "\n"
    from ehrbackdoor.experiments.readable import results_text

    return results_text(aggregate(cells, bootstrap_single=True), counts, width, brief)


def interval_kind(n_seeds: int, metric: str) -> str:
    """What a row's interval is: `t over seeds`, `bootstrap` (one seed) or empty (none)."""
    if n_seeds > 1:
        return "t over seeds"
    return "bootstrap over test stays" if metric in BOOTSTRAP_CI else ""


def long_table(agg: pd.DataFrame) -> pd.DataFrame:
    """One row per setting and metric (tidy data for plotting tools): the setting columns,
    `n_seeds`, `metric`, `mean`, `lo`, `hi` and `interval` (what kind of interval it is)."""
    if agg.empty:
        return pd.DataFrame(columns=["metric", "mean", "lo", "hi", "n_seeds", "interval"])
    keys = [c for c in agg.columns if c in SETTING_COLUMNS or c.startswith("p_")]
    metrics = [c for c in agg.columns if f"{c}_lo" in agg.columns]
    rows = []
    for _, r in agg.iterrows():
        base = {k: r[k] for k in keys}
        for m in metrics:
            lo, hi = r[f"{m}_lo"], r[f"{m}_hi"]
            kind = interval_kind(int(r["n_seeds"]), m) if not pd.isna(lo) else ""
            rows.append(
                {
                    **base,
                    "n_seeds": int(r["n_seeds"]),
                    "metric": m,
                    "mean": r[m],
                    "lo": lo,
                    "hi": hi,
                    "interval": kind,
                }
            )
    return pd.DataFrame(rows)
