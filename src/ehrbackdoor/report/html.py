"""One self-contained HTML report of a run, built from its results store alone.

Sections: the config, the aggregated results, attack success rate against the poisoning rate per
victim and strength, clean versus attacked AUROC/AUPRC, the clean-performance cost of poisoning,
the efficacy-stealth frontier and the poisoning rate for an ASR of 0.9 (`report.frontier`),
a heatmap of each value trigger, missing-value triggers beside real observation masks, stealth and
defence tables when the run has them, failed cells, and where the time went. Plots are PNGs
embedded as base64; the page loads nothing from anywhere and runs no script.
"""

from __future__ import annotations

import html
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ehrbackdoor.experiments.results import (
    MAIN_METRICS,
    SETTING_COLUMNS,
    aggregate,
    cells_frame,
    constant_settings,
    display_table,
)
from ehrbackdoor.experiments.store import Store
from ehrbackdoor.experiments.tables import GLOSSARY
from ehrbackdoor.io import atomic_write_text
from ehrbackdoor.report import frontier, plots, reproduction
from ehrbackdoor.report.fragments import fmt, img, table

REPORT_FILE = "report.html"
MAX_HEATMAPS = 12
MAX_SETTING_PANELS = 24

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; background: #fff; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 13px; margin: .6em 0 1.2em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
th { background: #f0f0f0; position: sticky; top: 0; }
td:first-child, th:first-child { text-align: left; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 12px; }
img { max-width: 100%; display: block; margin: .5em 0 1.5em; }
.note { color: #555; font-size: 14px; }
.scroll { overflow-x: auto; }
.fail { color: #a00; }
"""


def _group_title(keys: dict) -> str:
    names = {"target": "target", "apply": "apply", "selection": "selection", "data": "data"}
    parts = [str(keys.pop("attack"))] if "attack" in keys else []
    parts += [f"{names.get(k, k)} {v}" for k, v in keys.items()]
    return ", ".join(parts)


def build_report(run_dir: str | Path) -> str:
    """The report's HTML text."""
    run_dir = Path(run_dir)
    store = Store.open_run(run_dir, readonly=True)
    try:
        meta = store.meta()
        cells = cells_frame(store)
        failed = cells_frame(store, "failed")
        counts = store.counts()
        steps = store.steps()
        data_blobs = store.blobs("data")
        poison_blobs = store.blobs("poison")
    finally:
        store.close()
    agg = aggregate(cells, bootstrap_single=True)  # for people: one seed shows its bootstrap CI
    name = meta.get("name", run_dir.name)
    out: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>ehrbackdoor report: {html.escape(name)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>Backdoor experiment: {html.escape(name)}</h1>",
        f'<p class="note">run directory <code>{html.escape(str(run_dir))}</code>; created '
        f"{html.escape(meta.get('created', '?'))}; report written "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}. Cells: {counts['ok']} finished, "
        f"{counts['failed']} failed, {counts['pending']} pending.</p>",
    ]

    out.append("<h2>Results</h2>")
    if agg.empty:
        out.append('<p class="note">No finished cells yet.</p>')
    else:
        const = constant_settings(agg)
        if const:
            out.append(
                '<p class="note">All rows: '
                + html.escape(", ".join(f"{k} {fmt(v)}" for k, v in const.items()))
                + ". Each value: mean [95% CI over seeds] (one seed: the ASR's bootstrap "
                "interval over test stays).</p>"
            )
        out.append(f'<p class="note">{html.escape(GLOSSARY)}</p>')
        out.append(table(display_table(agg)))
        out += _attack_plots(agg)
        out += reproduction.section(agg)
        out += _extra_tables(agg)
        out += frontier.sections(agg)
    out += _trigger_heatmaps(data_blobs, poison_blobs)
    out += _missing_masks(data_blobs, poison_blobs)
    if not failed.empty:
        out.append("<h2>Failed cells</h2>")
        cols = [
            c
            for c in ("victim", "attack", "trigger", "target", "rate", "apply", "seed", "error")
            if c in failed.columns
        ]
        out.append(table(failed[cols]))
    out += _timings(steps, cells)
    out.append("<h2>Config</h2>")
    out.append(f"<pre>{html.escape(meta.get('config_yaml', ''))}</pre>")
    out.append("</body></html>")
    return "\n".join(out)


def _attack_plots(agg: pd.DataFrame) -> list[str]:
    out = ["<h2>Attack success rate vs poisoning rate</h2>"]
    out.append(
        '<p class="note">Solid: poisoned model (shaded: 95% CI over seeds, or the bootstrap '
        "interval over test stays for one seed); dotted: the same trigger against the "
        "unpoisoned model.</p>"
    )
    panel_keys = [
        c
        for c in ("data", "attack", "target", "apply", "selection")
        if agg[c].nunique() > 1 or c == "attack"
    ]
    for keys, g in agg.groupby(panel_keys, sort=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        title = _group_title(dict(zip(panel_keys, keys, strict=True)))
        out.append(img(plots.asr_vs_rate(g, title), f"ASR vs rate: {title}"))
    out.append("<h2>AUROC / AUPRC: unpoisoned, poisoned on clean and on triggered stays</h2>")
    out.append(
        '<p class="note">One figure per attack setting (nothing is averaged over rates, '
        "strengths, targets or apply modes). Bars: the unpoisoned model on the clean test stays, "
        "the poisoned model on the clean test stays, and the poisoned model on the same test "
        "stays with the trigger applied.</p>"
    )
    keys = [c for c in agg.columns if c in SETTING_COLUMNS or c.startswith("p_")]
    keys = [k for k in keys if k != "victim"]
    shown = 0
    for vals, g in agg.groupby(keys, sort=False, dropna=False):
        if shown >= MAX_SETTING_PANELS:
            out.append(
                f'<p class="note">{agg.groupby(keys, sort=False).ngroups - shown} more settings '
                "are in the tables above.</p>"
            )
            break
        title = _setting_title(dict(zip(keys, vals, strict=True)), agg)
        out.append(img(plots.clean_vs_attacked(g, title), f"AUROC and AUPRC: {title}"))
        shown += 1
    out.append("<h2>Clean-performance cost of poisoning</h2>")
    out.append(
        '<p class="note">Unpoisoned minus poisoned model, both on the clean test stays, against '
        "the poisoning rate; one figure per attack and trigger parameters.</p>"
    )
    cost_keys = [k for k in keys if k != "rate"]
    for vals, g in agg.groupby(cost_keys, sort=False, dropna=False):
        title = _setting_title(dict(zip(cost_keys, vals, strict=True)), agg)
        out.append(img(plots.poisoning_cost(g, title), f"cost of poisoning: {title}"))
    return out


def _setting_title(setting: dict, agg: pd.DataFrame) -> str:
    """The setting's values that vary in the run (the attack's name always)."""
    parts = [str(setting.get("attack", ""))]
    for k, v in setting.items():
        if k == "attack" or v is None or (isinstance(v, float) and math.isnan(v)) or v == "":
            continue
        if agg[k].astype(str).nunique() > 1 or k in ("rate", "trigger") or k.startswith("p_"):
            name = k[2:] if k.startswith("p_") else k
            parts.append(f"{name} {v:g}" if isinstance(v, float) else f"{name} {v}")
    return ", ".join(p for p in parts if p)


def _extra_tables(agg: pd.DataFrame) -> list[str]:
    out = []
    for prefix, title in (
        ("stealth_", "Stealth"),
        ("defence_", "Defences"),
        ("fidelity_", "Trigger fidelity"),
    ):
        cols = [c for c in agg.columns if c.startswith(prefix) and not c.endswith(("_lo", "_hi"))]
        if not cols:
            continue
        out.append(f"<h2>{title}</h2>")
        if prefix == "defence_":
            out += _defence_tables(agg)
            out.append("<h3>All defence metrics</h3>")
        t = display_table(agg, metrics=cols)
        keep = [c for c in t.columns if c not in MAIN_METRICS.values()]
        out.append(table(t[keep]))
    return out


def _defence_tables(agg: pd.DataFrame) -> list[str]:
    """Attack settings x detectors: detection AUROC, and ASR before / after mitigation."""
    names = [
        c[len("defence_") : -len("_auroc")]
        for c in agg.columns
        if c.startswith("defence_") and c.endswith("_auroc") and not c.endswith("_clean_auroc")
    ]
    if not names:
        return []
    out = []
    for title, note, metrics, before in (
        (
            "Detection AUROC",
            "How well each detector ranks the poisoned training stays above the clean ones "
            "(0.5: chance; perfect and random are reference bounds).",
            [f"defence_{n}_auroc" for n in names],
            [],
        ),
        (
            "Attack success rate before / after mitigation",
            "ASR of the poisoned model, and after removing each detector's most suspicious stays "
            "and retraining.",
            [f"defence_{n}_asr_after" for n in names],
            ["asr"],
        ),
    ):
        present = [m for m in metrics if m in agg.columns]
        if not present:
            continue
        t = display_table(agg, metrics=before + present)
        keys = list(t.columns[: list(t.columns).index("seeds") + 1])
        headers = {MAIN_METRICS[m]: "before" for m in before}
        headers.update({m: n.replace("_", "-") for m, n in zip(metrics, names, strict=True)})
        t = t[keys + [h for h in headers if h in t.columns]].rename(columns=headers)
        out.append(f"<h3>{title}</h3>")
        out.append(f'<p class="note">{note}</p>')
        out.append(table(t))
    return out


def _data_info(data_blobs) -> tuple[dict, dict]:
    if not data_blobs:
        return {}, {}
    _, info, arrays = data_blobs[0]
    return info, arrays


def _trigger_heatmaps(data_blobs, poison_blobs) -> list[str]:
    dinfo, darr = _data_info(data_blobs)
    variables = dinfo.get("variables", [])
    seen = set()
    figs = []
    for _, info, arrays in sorted(poison_blobs, key=lambda b: b[1].get("seed", 0)):
        s = info["setting"]
        if "state_pattern" not in arrays or _is_missing(s):
            continue
        ident = (s["trigger"], tuple(sorted((k, str(v)) for k, v in s["trigger_params"].items())))
        if ident in seen:
            continue
        seen.add(ident)
        params = ", ".join(f"{k} {v}" for k, v in s["trigger_params"].items())
        title = f"{s['trigger']} trigger ({params}), seed {info.get('seed')}"
        figs.append(
            img(
                plots.trigger_heatmap(arrays["state_pattern"], darr.get("sd"), variables, title),
                title,
            )
        )
        if len(figs) >= MAX_HEATMAPS:
            break
    if not figs:
        return []
    return [
        "<h2>Value triggers</h2>",
        '<p class="note">What each value trigger adds to a stay, per hour and variable, in units '
        "of the variable's standard deviation over the training stays.</p>",
        *figs,
    ]


def _missing_masks(data_blobs, poison_blobs) -> list[str]:
    dinfo, darr = _data_info(data_blobs)
    variables = dinfo.get("variables", [])
    real = []
    if "example_masks" in darr:
        real = [(f"real stay {i + 1}", m) for i, m in enumerate(darr["example_masks"])]
    if "observed_rate" in darr:
        real.append(("share observed (train)", darr["observed_rate"]))
    seen = set()
    figs = []
    for _, info, arrays in sorted(poison_blobs, key=lambda b: b[1].get("seed", 0)):
        s = info["setting"]
        if not (_is_missing(s) or _changes_mask(arrays)):
            continue
        ident = (s["trigger"], s["apply"])
        if ident in seen or "mask_after" not in arrays:
            continue
        seen.add(ident)
        panels = []
        if "state_pattern" in arrays:
            panels.append(("the trigger's pattern", arrays["state_pattern"] != 0))
        for i, (b, a) in enumerate(zip(arrays["mask_before"], arrays["mask_after"], strict=True)):
            panels.append((f"test stay {i + 1}", b))
            panels.append(("... with trigger", a))
            if i >= 0:
                break
        family = "missing-value" if _is_missing(s) else "value"
        title = f"{s['trigger']} ({family} trigger, apply {s['apply']}) beside typical real masks"
        figs.append(img(plots.masks_figure(real + panels, variables, title), title))
    if not figs:
        return []
    return [
        "<h2>Observation masks under the triggers</h2>",
        '<p class="note">Missing-value triggers, and value triggers whose apply mode adds '
        "observations (each figure says which), beside real stays' masks.</p>",
        *figs,
    ]


#: Apply modes only missing-value triggers accept (value triggers take `observed` or `all`).
MISSING_ONLY_MODES = ("delete", "exact")


def trigger_family(trigger: str, apply: str | None = None) -> str:
    """`missing` for triggers that change which values are observed, else `value`.

    Read from what the results record (the apply mode; missing-value families are named
    `missing-*`), so the report needs neither the trigger registry nor torch and still reads
    stores whose trigger names no longer exist. Once the attacks layer offers a light
    `trigger_info(name).family`, this is the one place to switch to it.
    """
    if apply in MISSING_ONLY_MODES or trigger.startswith("missing"):
        return "missing"
    return "value"


def _is_missing(setting: dict) -> bool:
    return trigger_family(setting["trigger"], setting.get("apply")) == "missing"


def _changes_mask(arrays: dict) -> bool:
    if "mask_before" not in arrays or "mask_after" not in arrays:
        return False
    return bool(np.any(arrays["mask_before"] != arrays["mask_after"]))


def _timings(steps: list[dict], cells: pd.DataFrame) -> list[str]:
    if not steps:
        return []
    df = pd.DataFrame(steps)
    ok = df[df["status"] == "ok"]
    t = ok.groupby("kind", sort=False)["seconds"].agg(["count", "sum", "mean", "max"]).reset_index()
    t.columns = ["step", "runs", "total s", "mean s", "max s"]
    out = [
        "<h2>Where the time went</h2>",
        '<p class="note">Each expensive step and how often it ran (data: load and split once per '
        "source; poison: once per attack setting and seed; baseline: once per victim and seed; "
        "cell: training a victim on a poisoned cohort).</p>",
        table(t),
    ]
    if not cells.empty and "t_train_seconds" in cells.columns:
        per = (
            cells.groupby("victim", sort=False)[["t_train_seconds", "t_cell_seconds"]]
            .mean()
            .reset_index()
        )
        per.columns = ["victim", "mean train s", "mean cell s"]
        out.append(table(per))
    return out


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the report (default `DIR/report.html`); returns its path."""
    run_dir = Path(run_dir)
    path = Path(out) if out is not None else run_dir / REPORT_FILE
    atomic_write_text(path, build_report(run_dir))
    return path
