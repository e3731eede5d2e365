"""Two views a realistic attacker reads off a run: how strong an attack is against how well the
best deployable detector finds its poisoned stays (the efficacy-stealth frontier), and how little
poison an attack needs to reach a success rate (the poisoning rate for an ASR level).

Both take the aggregated results (`results.aggregate(cells_frame(store))`): one row per setting
and victim, each metric's mean and, where there is one, its interval (`<metric>_lo`, `_hi`).

```python
from ehrbackdoor.experiments.frontier import frontier_table, rate_for_asr
from ehrbackdoor.experiments.results import load_aggregate

_, agg = load_aggregate("runs/quickstart")
frontier_table(agg)  # one point per setting x victim
rate_for_asr(agg, level=0.9)  # per setting without the rate x victim
```
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ehrbackdoor.experiments.results import FORMATS, OPTIONAL_SETTING_COLUMNS, SETTING_COLUMNS

#: The detector family an attacker must evade: it needs only the training data, so a hospital
#: can run it before any model is trained. Model-level detectors need the trained victim and
#: reference detectors (perfect, random) are bounds nobody can deploy.
DEPLOYABLE_FAMILY = "data"
REFERENCE_FAMILY = "reference"

#: Columns of `frontier_table` after the setting columns (intervals only where `agg` has them).
FRONTIER_COLUMNS = [
    "family",
    "asr",
    "asr_lo",
    "asr_hi",
    "asr_baseline",
    "asr_baseline_lo",
    "asr_baseline_hi",
    "detector",
    "detection_auroc",
    "detection_auroc_lo",
    "detection_auroc_hi",
    "detection_auroc_no_trigger",
    "strongest_any",
    "strongest_any_auroc",
]

#: Columns of `rate_for_asr` after the setting columns.
RATE_COLUMNS = [
    "level",
    "n_rates",
    "rate",
    "reached",
    "lowest_tried",
    "max_asr",
    "at_rate",
    "rate_lo_bound",
    "max_asr_lo",
]


def _setting_columns(agg: pd.DataFrame) -> list[str]:
    keys = SETTING_COLUMNS + [c for c in OPTIONAL_SETTING_COLUMNS if c in agg.columns]
    keys += sorted(c for c in agg.columns if c.startswith("p_"))
    return [k for k in keys if k in agg.columns]


def detector_columns(agg: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """Registry name -> (its `defence_<name>_auroc` column, its family) of every registered
    detector `agg` has a detection AUROC for, in registry order (ties go to the first).

    Columns of names no longer registered are left out: without the registry nobody can say
    whether such a detector was deployable."""
    from ehrbackdoor.defences import DEFENCES

    out = {}
    for name, cls in DEFENCES.items():
        col = f"defence_{name.replace('-', '_')}_auroc"
        if col in agg.columns:
            out[name] = (col, cls.family)
    return out


def trigger_family(trigger: str, apply: Any = None) -> str:
    """`value` or `missing`: the registered trigger's family; for a name no longer registered,
    what the results record (missing-only apply modes, `missing-*` names)."""
    from ehrbackdoor.attacks import trigger_info

    try:
        return trigger_info(str(trigger)).family
    except ValueError:
        missing = apply in ("delete", "exact") or str(trigger).startswith("missing")
        return "missing" if missing else "value"


def _strongest(agg: pd.DataFrame, names: list[str], cols: dict) -> tuple[pd.Series, pd.Series]:
    """Per row, the detector of `names` with the highest mean AUROC and that AUROC (None / NaN
    where none of them has a value)."""
    if not names:
        return pd.Series([None] * len(agg), index=agg.index), pd.Series(np.nan, index=agg.index)
    values = agg[[cols[n][0] for n in names]].apply(pd.to_numeric, errors="coerce")
    values.columns = names
    has = values.notna().any(axis=1)
    best = values.fillna(-np.inf).idxmax(axis=1).where(has, None)
    auroc = values.max(axis=1, skipna=True).where(has)
    return best, auroc


def frontier_table(agg: pd.DataFrame) -> pd.DataFrame:
    """One row per setting x victim: the setting, the trigger's `family`, the attack success
    rate (`asr`, and `asr_baseline`: the same trigger against the unpoisoned model, the rate a
    trigger reaches without any backdoor), the strongest deployable (data-level) detector as
    `detector` with its mean `detection_auroc`, and `strongest_any` / `strongest_any_auroc`
    over data- and model-level detectors (reference bounds excluded), for information.
    `detection_auroc_no_trigger`: the chosen detector on the same poisoned stays without their
    trigger (configs with `detection_baseline: true`), what the choice of stays and the label
    flips alone give away.

    An attack is only as hidden as the best detector a defender can run on the training data,
    so the frontier pairs each ASR with that maximum, not with an average. Rows without a
    data-level detection AUROC are dropped; without any, the frame is empty (same columns)."""
    keys = _setting_columns(agg) if not agg.empty else []
    extra = [c for c in FRONTIER_COLUMNS if not c.endswith(("_lo", "_hi"))]
    cols = detector_columns(agg) if not agg.empty else {}
    data = [n for n, (_, fam) in cols.items() if fam == DEPLOYABLE_FAMILY]
    if not data:
        return pd.DataFrame(columns=keys + extra)
    deployable = [n for n, (_, fam) in cols.items() if fam != REFERENCE_FAMILY]
    best, auroc = _strongest(agg, data, cols)
    any_best, any_auroc = _strongest(agg, deployable, cols)
    out = agg[keys].copy()
    apply = agg["apply"] if "apply" in agg.columns else pd.Series(None, index=agg.index)
    out["family"] = [trigger_family(t, a) for t, a in zip(agg["trigger"], apply, strict=True)]
    for m in ("asr", "asr_baseline"):
        out[m] = agg[m] if m in agg.columns else np.nan
        for b in ("_lo", "_hi"):
            if f"{m}{b}" in agg.columns:
                out[f"{m}{b}"] = agg[f"{m}{b}"]
    out["detector"] = best
    out["detection_auroc"] = auroc
    # the chosen detector's own interval and its AUROC without the trigger, where recorded
    for suffix in ("_lo", "_hi", "_no_trigger"):
        col = {n: f"{cols[n][0]}{suffix}" for n in data if f"{cols[n][0]}{suffix}" in agg}
        if col:
            out[f"detection_auroc{suffix}"] = [
                float(agg.at[i, col[n]]) if n in col else np.nan
                for i, n in zip(agg.index, best, strict=True)
            ]
    out["strongest_any"] = any_best
    out["strongest_any_auroc"] = any_auroc
    out = out[out["detection_auroc"].notna()].reset_index(drop=True)
    return out[keys + [c for c in FRONTIER_COLUMNS if c in out.columns]]


def _first_crossing(rates: np.ndarray, asr: np.ndarray, level: float) -> tuple[float, bool]:
    """(rate, lowest_tried): the smallest rate at which `asr` reaches `level`, linearly
    interpolated between the last rate below and the first at or above it; NaN when no rate
    reaches it. When the smallest rate tried already does, that rate (an upper bound: nothing
    smaller was tried, and nothing is extrapolated)."""
    ok = np.isfinite(asr)
    rates, asr = rates[ok], asr[ok]
    hit = np.flatnonzero(asr >= level)
    if len(hit) == 0:
        return math.nan, False
    i = int(hit[0])
    if i == 0:
        return float(rates[0]), True
    r0, r1, a0, a1 = rates[i - 1], rates[i], asr[i - 1], asr[i]
    return float(r0 + (level - a0) * (r1 - r0) / (a1 - a0)), False


def rate_for_asr(agg: pd.DataFrame, level: float = 0.9) -> pd.DataFrame:
    """Per setting without its rate x victim: the smallest poisoning rate at which the mean ASR
    reaches `level` (`rate`, linearly interpolated between the two bracketing rates tried; NaN
    and `reached` False when none reaches it, never extrapolated; `lowest_tried` when the
    smallest rate tried already reaches it, so the true rate may be lower), the highest mean ASR
    (`max_asr`) and the rate it was reached at (`at_rate`), and `rate_lo_bound`: the same from
    the interval's lower bound `asr_lo` (NaN without one; `max_asr_lo` is its highest value), the
    conservative estimate: a rate at which even the low end of the ASR's 95% interval reaches
    `level`, not only its mean.

    Poison is what an attacker must smuggle into the records, so the least rate that buys a
    given success is the cost of the attack; comparing it across triggers and victims needs the
    same level for all, which the grid of rates rarely hits exactly."""
    if not 0 < level <= 1:
        raise ValueError(f"level must be in (0, 1], got {level}")
    keys = [k for k in _setting_columns(agg) if k != "rate"] if not agg.empty else []
    if agg.empty or "asr" not in agg.columns or "rate" not in agg.columns:
        return pd.DataFrame(columns=keys + RATE_COLUMNS)
    work = agg.copy()
    work["rate"] = pd.to_numeric(work["rate"], errors="coerce")
    has_lo = "asr_lo" in work.columns
    rows = []
    for group_key, g in work.groupby(keys, sort=False, dropna=False):
        per = g.groupby("rate", sort=True)[["asr"] + (["asr_lo"] if has_lo else [])].mean()
        rates = per.index.to_numpy(dtype=np.float64)
        asr = per["asr"].to_numpy(dtype=np.float64)
        rate, lowest = _first_crossing(rates, asr, level)
        lo = per["asr_lo"].to_numpy(dtype=np.float64) if has_lo else np.full(len(per), np.nan)
        finite = np.isfinite(asr)
        row: dict[str, Any] = dict(zip(keys, group_key, strict=True))
        row.update(
            level=level,
            n_rates=int(finite.sum()),
            rate=rate,
            reached=not math.isnan(rate),
            lowest_tried=lowest,
            max_asr=float(asr[finite].max()) if finite.any() else math.nan,
            at_rate=float(rates[finite][np.argmax(asr[finite])]) if finite.any() else math.nan,
            rate_lo_bound=_first_crossing(rates, lo, level)[0],
            max_asr_lo=float(np.nanmax(lo)) if np.isfinite(lo).any() else math.nan,
        )
        rows.append(row)
    return pd.DataFrame(rows, columns=keys + RATE_COLUMNS)


def _setting_labels(df: pd.DataFrame, keys: list[str]) -> tuple[list[str], str]:
    """(one compact label per row of the setting columns that vary, a note of the constant
    ones): a table of a handful of columns fits a terminal where one column per key would not."""
    varying = [k for k in keys if k != "victim" and df[k].map(_text).nunique() > 1]
    if {"attack", "trigger"} <= set(varying) and _one_to_one(df["attack"], df["trigger"]):
        varying.remove("attack")  # the trigger names the setting as well as the entry does
    const = [k for k in keys if k != "victim" and df[k].map(_text).nunique() == 1]
    labels = []
    for _, r in df.iterrows():
        parts = []
        for k in varying:
            v = _text(r[k])
            if v and not (k == "trigger" and v == _text(r.get("attack"))):
                parts.append(v if k in ("attack", "trigger") else f"{_name(k)} {v}")
        labels.append(", ".join(parts))
    note = ", ".join(f"{_name(k)} {_text(df[k].iloc[0])}" for k in const if _text(df[k].iloc[0]))
    return labels, note


def _one_to_one(a: pd.Series, b: pd.Series) -> bool:
    pairs = pd.DataFrame({"a": a.map(_text), "b": b.map(_text)}).drop_duplicates()
    return bool(pairs["a"].is_unique and pairs["b"].is_unique)


def _name(key: str) -> str:
    return key[2:] if key.startswith("p_") else key


def _keys_frame(df: pd.DataFrame, keys: list[str]) -> tuple[pd.DataFrame, str]:
    labels, note = _setting_labels(df, keys)
    out = pd.DataFrame({"victim": df["victim"].map(_text)}) if "victim" in df else pd.DataFrame()
    if any(labels):
        out["setting"] = labels
    return out, note


def _interval(df: pd.DataFrame, m: str) -> list[str]:
    from ehrbackdoor.experiments.tables import fmt_interval

    nan = pd.Series(np.nan, index=df.index)
    lo, hi = df.get(f"{m}_lo", nan), df.get(f"{m}_hi", nan)
    return [fmt_interval(a, b, c) for a, b, c in zip(df[m], lo, hi, strict=True)]


def display_frontier(frontier: pd.DataFrame) -> pd.DataFrame:
    """`frontier_table` for people: the setting columns that vary (victim always), intervals
    as `mean [lo, hi]`, the strongest detector of any deployable family as `name AUROC`."""
    from ehrbackdoor.experiments.tables import fmt_value

    if frontier.empty:
        return pd.DataFrame()
    out, _ = _keys_frame(frontier, _setting_columns(frontier))
    out["family"] = frontier["family"]
    out["ASR poisoned"] = _interval(frontier, "asr")
    out["ASR unpoisoned"] = _interval(frontier, "asr_baseline")
    out["data-level detector"] = frontier["detector"]
    out["detection AUROC"] = _interval(frontier, "detection_auroc")
    if "detection_auroc_no_trigger" in frontier.columns:
        out["same, no trigger"] = [fmt_value(v) for v in frontier["detection_auroc_no_trigger"]]
    out["strongest data/model"] = [
        f"{n} {fmt_value(a)}" if isinstance(n, str) else ""
        for n, a in zip(frontier["strongest_any"], frontier["strongest_any_auroc"], strict=True)
    ]
    return out


def display_rate_for_asr(rates: pd.DataFrame) -> pd.DataFrame:
    """`rate_for_asr` for people: the setting columns that vary (victim always), the rate as a
    number, `<= r` (the smallest rate tried already reaches the level) or `not reached`; the
    CI-bound rate is blank where the run has no interval."""
    from ehrbackdoor.experiments.tables import fmt_value

    if rates.empty:
        return pd.DataFrame()
    out, _ = _keys_frame(rates, [c for c in _setting_columns(rates) if c != "rate"])
    out["rates tried"] = [str(int(n)) for n in rates["n_rates"]]

    def shown(v: float, upper: bool) -> str:
        return "not reached" if math.isnan(v) else ("<= " if upper else "") + fmt_value(v, 4)

    level = f"{float(rates['level'].iloc[0]):g}"
    out[f"rate for ASR {level}"] = [
        shown(v, bool(low)) for v, low in zip(rates["rate"], rates["lowest_tried"], strict=True)
    ]
    out["rate, CI low"] = [
        "" if math.isnan(top) else shown(v, bool(low) and v == r)
        for v, top, low, r in zip(
            rates["rate_lo_bound"],
            rates["max_asr_lo"],
            rates["lowest_tried"],
            rates["rate"],
            strict=True,
        )
    ]
    out["max ASR"] = [fmt_value(v) for v in rates["max_asr"]]
    out["at rate"] = [fmt_value(v, 4) for v in rates["at_rate"]]
    return out


def _text(v: Any) -> str:
    if isinstance(v, float | np.floating):
        return "" if math.isnan(v) else f"{v:g}"
    return "" if v is None else str(v)


def format_table(
    table: pd.DataFrame,
    shown: pd.DataFrame,
    n_keys: int,
    fmt: str = "markdown",
    title: str = "",
    width: int | None = None,
    note: str = "",
) -> str:
    """`table` as `csv` or `json` (machine-readable names; `long` is the same CSV, the table
    already having one row per point), or `shown` (its `display_*` form, whose first `n_keys`
    columns name the setting) as tables for people at most `width` columns wide, `note` (what
    all rows share) above them."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; allowed: {', '.join(FORMATS)}")
    if fmt in ("csv", "long"):
        buf = io.StringIO()
        table.to_csv(buf, index=False)
        return buf.getvalue()
    if fmt == "json":
        records = json.loads(table.to_json(orient="records")) if not table.empty else []
        return json.dumps({"title": title, "rows": records}, indent=2) + "\n"
    from ehrbackdoor.experiments.tables import Column, render_tables, wrap

    if shown.empty:
        return f"{title}\n\n_nothing to show_\n"
    cols = [Column(title, str(c), [str(v) for v in shown[c]]) for c in shown.columns]
    head = wrap(f"All rows: {note}.", width) + "\n\n" if note else ""
    return head + render_tables(cols[:n_keys], cols[n_keys:], width)


def _run_aggregate(run_dir: str | Path, bootstrap_single: bool) -> pd.DataFrame:
    from ehrbackdoor.experiments.results import aggregate, cells_frame
    from ehrbackdoor.experiments.store import Store

    store = Store.open_run(run_dir, readonly=True)
    try:
        cells = cells_frame(store)
    finally:
        store.close()
    return aggregate(cells, bootstrap_single=bootstrap_single)


def _n_keys(shown: pd.DataFrame) -> int:
    return sum(c in ("victim", "setting") for c in shown.columns)


def format_frontier(run_dir: str | Path, fmt: str = "markdown", width: int | None = None) -> str:
    """`ehrbackdoor results DIR --frontier`: the run's `frontier_table` in `fmt` (markdown uses
    the single-seed bootstrap interval of the ASR, as `format_results` does; csv and json leave
    single-seed intervals empty)."""
    table = frontier_table(_run_aggregate(run_dir, bootstrap_single=fmt == "markdown"))
    title = "Efficacy-stealth frontier (detector: the strongest data-level one by AUROC)"
    if table.empty and fmt == "markdown":
        return f"{title}\n\n_no data-level detector in this run (config key `defences`)_\n"
    shown = display_frontier(table)
    note = _setting_labels(table, _setting_columns(table))[1] if not table.empty else ""
    return format_table(table, shown, _n_keys(shown), fmt, title, width, note)


def format_rate_for_asr(
    run_dir: str | Path, level: float = 0.9, fmt: str = "markdown", width: int | None = None
) -> str:
    """`ehrbackdoor results DIR --rate-for-asr LEVEL`: the run's `rate_for_asr` in `fmt`."""
    table = rate_for_asr(_run_aggregate(run_dir, bootstrap_single=fmt == "markdown"), level)
    shown = display_rate_for_asr(table)
    keys = [c for c in _setting_columns(table) if c != "rate"]
    note = _setting_labels(table, keys)[1] if not table.empty else ""
    title = f"Poisoning rate for ASR {level:g} (linear between the rates tried)"
    return format_table(table, shown, _n_keys(shown), fmt, title, width, note)
