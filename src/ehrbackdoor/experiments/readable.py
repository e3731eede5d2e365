"""The aggregated results as people read them: one section per attack, one table per family of
metrics (attack success, AUROC, AUPRC, cost, detectors, stealth), human headers, every table
within the terminal's width. The machine-readable names stay in CSV and JSON."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ehrbackdoor.experiments.tables import (
    GLOSSARY,
    POISONED_CLEAN,
    POISONED_TRIGGERED,
    UNPOISONED,
    Column,
    fmt_interval,
    fmt_value,
    render_tables,
    terminal_width,
    wilson_interval,
    wrap,
)

#: (family title, {metric: header}) of the main metrics, in the order they are shown.
FAMILIES: list[tuple[str, dict[str, str]]] = [
    ("Attack success rate (ASR)", {"asr": "poisoned", "asr_baseline": UNPOISONED}),
    (
        "AUROC",
        {
            "baseline_auroc": UNPOISONED,
            "clean_auroc": POISONED_CLEAN,
            "triggered_auroc": POISONED_TRIGGERED,
        },
    ),
    (
        "AUPRC",
        {
            "baseline_auprc": UNPOISONED,
            "clean_auprc": POISONED_CLEAN,
            "triggered_auprc": POISONED_TRIGGERED,
        },
    ),
    ("Cost of poisoning on clean test stays", {"auroc_cost": "AUROC", "auprc_cost": "AUPRC"}),
]

#: Detector metrics (`defence_<name>_<metric>`): family title per metric suffix.
DEFENCE_FAMILIES = {
    "auroc": "Detection AUROC (poisoned vs clean training stays; 0.5 = chance)",
    "tpr_at_5fpr": "Detection TPR at 5% FPR",
    "precision_at_k": "Detection precision at k (k = stays removed)",
    "asr_after": "ASR after removing each detector's flagged stays and retraining",
    "clean_auroc_after": f"AUROC ({POISONED_CLEAN}) after mitigation",
    "clean_auprc_after": f"AUPRC ({POISONED_CLEAN}) after mitigation",
}

STEALTH = {
    "stealth_ks_n_significant": "KS tests significant",
    "stealth_ks_share_significant": "KS share significant",
    "stealth_ks_max_statistic": "max KS statistic",
    "stealth_mmd2": "MMD^2",
    "stealth_mmd_p": "MMD p",
    "stealth_missing_n_significant": "missing-rate tests significant",
}

SETTING_NAMES = {"p_strength": "strength", "rate": "rate", "victim": "victim"}


def _setting(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return "" if v is None else str(v)


def metric_columns_for(agg: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(family, header, metric) of every metric shown, in order."""
    out = [(fam, h, m) for fam, cols in FAMILIES for m, h in cols.items() if m in agg.columns]
    defence = [c for c in agg.columns if c.startswith("defence_") and f"{c}_lo" in agg.columns]
    for suffix, fam in DEFENCE_FAMILIES.items():
        for c in defence:
            name = c[len("defence_") :]
            if name.endswith("_" + suffix) and not (
                suffix == "auroc" and name.endswith(("_clean_auroc", "_auroc_after"))
            ):
                out.append((fam, name[: -len(suffix) - 1].replace("_", "-"), c))
    out += [
        ("Stealth (poisoned vs clean training stays)", h, m)
        for m, h in STEALTH.items()
        if m in agg.columns
    ]
    return out


def _sections(agg: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """One section per attack name (the config's entry), in order."""
    if "attack" not in agg.columns:
        return [("", agg)]
    return [(str(a), g) for a, g in agg.groupby("attack", sort=False)]


def _keys(g: pd.DataFrame) -> tuple[list[Column], list[str]]:
    """Key columns that vary in a section (victim always) and a note of the constant ones."""
    cand = [
        c
        for c in g.columns
        if c in ("data", "victim", "trigger", "target", "rate", "apply", "selection")
        or c.startswith("p_")
    ]
    keys, const = [], []
    for c in cand:
        vals = g[c].map(_setting)
        name = SETTING_NAMES.get(c, c[2:] if c.startswith("p_") else c)
        if c == "victim" or vals.nunique() > 1:
            keys.append(Column("", name, list(vals)))
        elif vals.iloc[0] != "":
            const.append(f"{name} {vals.iloc[0]}")
    if g["n_seeds"].nunique() > 1:
        keys.append(Column("", "seeds", [str(int(v)) for v in g["n_seeds"]]))
    else:
        n = int(g["n_seeds"].iloc[0])
        const.append(f"{n} seed" + ("s" if n > 1 else ""))
    return keys, const


#: The families a brief summary (the demo) shows.
BRIEF = (
    "Attack success rate (ASR)",
    "AUROC",
    DEFENCE_FAMILIES["auroc"],
    DEFENCE_FAMILIES["asr_after"],
)


def results_text(
    agg: pd.DataFrame, counts: dict[str, int], width: int | None = None, brief: bool = False
) -> str:
    """The `ehrbackdoor results` text: counts, what the intervals are, and the tables
    (`brief`: only attack success, AUROC, detection AUROC and ASR after mitigation)."""
    width = width or terminal_width()
    head = f"{counts['ok']} cells finished, {counts['failed']} failed, {counts['pending']} pending."
    if agg.empty:
        return head + "\n\n_no finished cells_\n"
    seeds = set(agg["n_seeds"])
    if seeds == {1}:
        how = (
            "Each value: the one seed's result; [95% bootstrap interval over the triggered test "
            "stays] for the attack success rates (other metrics of a single seed have no "
            "interval)."
        )
    else:
        how = (
            "Each value: mean [95% Student-t interval over seeds], clipped to the metric's range"
            + (
                "; single-seed rows show the ASR bootstrap interval over test stays."
                if 1 in seeds
                else "."
            )
        )
    parts = [head, "", wrap(how, width), "", wrap(GLOSSARY, width), ""]
    metrics = metric_columns_for(agg)
    if brief:
        metrics = [m for m in metrics if m[0] in BRIEF]
    for title, g in _sections(agg):
        keys, const = _keys(g)
        parts.append("=" * min(width, 60))
        parts.append(wrap(f"{title}: " + ", ".join(const), width) if title else ", ".join(const))
        parts.append("=" * min(width, 60))
        parts.append("")
        cols = [
            Column(
                fam,
                h,
                [
                    fmt_interval(a, lo, hi)
                    for a, lo, hi in zip(g[m], g[f"{m}_lo"], g[f"{m}_hi"], strict=True)
                ],
            )
            for fam, h, m in metrics
            if g[m].notna().any()
        ]
        parts.append(render_tables(keys, cols, width))
    return "\n".join(parts)


def _triplet(family: str, rows: dict[str, dict], metric: str) -> list[Column]:
    pairs = [
        ("clean_baseline", UNPOISONED),
        ("clean", POISONED_CLEAN),
        ("triggered", POISONED_TRIGGERED),
    ]
    return [
        Column(family, h, [fmt_value(m[k][metric]) if k in m else "" for m in rows.values()])
        for k, h in pairs
    ]


def attack_text(result: dict, width: int | None = None) -> str:
    """The `ehrbackdoor attack` tables: per victim the ASR of the poisoned and the unpoisoned
    model with their 95% bootstrap intervals, then AUROC and AUPRC of the three model/data
    pairs."""
    width = width or terminal_width()
    a = result["attack"]
    models = result["models"]
    title = (
        f"{a['attack']} attack, target {a['target']}, rate {a['rate']:g}, "
        f"{result['n_poisoned']} of {result['n_train']} training stays poisoned"
        + (f", {a['space']} space" if a.get("space", "raw") != "raw" else "")
        + (f", {a['protocol']} protocol" if a.get("protocol", "honest") != "honest" else "")
    )
    keys = [Column("", "victim", list(models))]
    fam = "Attack success rate (ASR) [95% bootstrap interval over triggered test stays]"
    cols = [
        Column(
            fam,
            "poisoned",
            [fmt_interval(m["asr"], *m.get("asr_ci", (None, None))) for m in models.values()],
        ),
        Column(
            fam,
            UNPOISONED,
            [
                fmt_interval(m["asr_baseline"], *m.get("asr_baseline_ci", (None, None)))
                for m in models.values()
            ],
        ),
    ]
    cols += _triplet("AUROC", models, "auroc") + _triplet("AUPRC", models, "auprc")
    return (
        wrap(title, width)
        + "\n\n"
        + wrap(GLOSSARY, width)
        + "\n\n"
        + render_tables(keys, cols, width)
    )


def audit_text(result: dict, width: int | None = None) -> str:
    """The `ehrbackdoor audit` tables: how well each detector finds the poisoned stays, then per
    victim the ASR and clean AUROC before and after removing its flagged stays, beside the
    unpoisoned model. ASR intervals: Wilson 95% over the triggered test stays."""
    width = width or terminal_width()
    a = result["attack"]
    names = list(result["defences"])
    n_trig = int(result.get("n_triggered_test") or 0)
    d = result["defences"]
    keys = [
        Column("", "defence", names),
        Column("", "family", [str(d[n].get("family", "")) for n in names]),
    ]
    fam = f"Detection (k = {result.get('k_remove')} stays removed)"
    cols = [
        Column(fam, "AUROC", [fmt_value(d[n].get("auroc")) for n in names]),
        Column(fam, "TPR@5%FPR", [fmt_value(d[n].get("tpr_at_5fpr")) for n in names]),
        Column(fam, "precision@k", [fmt_value(d[n].get("precision_at_k")) for n in names]),
        Column(fam, "removed", [fmt_value(d[n].get("n_removed")) for n in names]),
        Column(fam, "poisoned removed", [fmt_value(d[n].get("n_poisoned_removed")) for n in names]),
    ]

    def asr(v):
        return fmt_interval(v, *wilson_interval(v, n_trig)) if v is not None else ""

    lines = [
        wrap(
            f"poison detection: {a['attack']}, rate {a['rate']:g}, target {a['target']}, "
            f"{result.get('n_poisoned')} poisoned training stays, {n_trig} triggered test stays",
            width,
        ),
        "",
    ]
    for victim, before in result["before"].items():
        base = result["clean_baseline"][victim]
        lines.append(
            wrap(
                f"{victim} before mitigation: ASR poisoned {asr(before['asr'])}, ASR {UNPOISONED} "
                f"{asr(base['asr'])}; AUROC {POISONED_CLEAN} {fmt_value(before['clean_auroc'])}, "
                f"AUROC {UNPOISONED} {fmt_value(base['clean_auroc'])}",
                width,
            )
        )
        vfam = f"{victim} after removing the flagged stays and retraining"
        after = [d[n].get("after", {}).get(victim, {}) for n in names]
        cols += [
            Column(vfam, "ASR [Wilson 95%]", [asr(x.get("asr")) for x in after]),
            Column(
                vfam, f"AUROC {POISONED_CLEAN}", [fmt_value(x.get("clean_auroc")) for x in after]
            ),
        ]
    lines.append("")
    return "\n".join(lines) + "\n" + render_tables(keys, cols, width)


def design_text(result: dict, width: int | None = None) -> str:
    """The `ehrbackdoor design` tables: the chosen candidate's surrogate scores, then per victim
    (and for the family's default trigger, when compared) the transfer: ASR beside the clean
    model's rate, clean AUROC / AUPRC change and AUPRC drop, and each detector's AUROC."""
    width = width or terminal_width()
    a, c = result["attack"], result["chosen"]
    det = ", ".join(f"{k} {fmt_value(v)}" for k, v in c["detection_auroc"].items())
    head = (
        f"designed {a['attack']} trigger ({result['n_candidates']} candidates, surrogate "
        f"{result['surrogate']}, objective {result['objective']}), target {a['target']}, rate "
        f"{a['rate']:g}, {a['apply']}: {result['n_poisoned']} of {result['n_victim_train']} victim "
        f"training stays poisoned; designed on {result['n_attacker']} attacker stays. Surrogate: "
        f"ASR {fmt_value(c['asr'])} (clean surrogate {fmt_value(c['asr_clean_surrogate'])}), "
        f"AUROC cost {fmt_value(c['auroc_cost'])}"
        + (f", detection {det}" if det else "")
        + (
            ""
            if result.get("feasible", True)
            else ". NO candidate met the limits (clean AUROC cost, detection AUROC): the one "
            "with the least excess was chosen"
        )
    )
    runs = [("designed", result["designed"])]
    if "default" in result:
        runs.append(("default", result["default"]))
    trig, vic, cols = [], [], {k: [] for k in ("p", "u", "auroc", "auprc", "drop")}
    dets = list(result["designed"]["detection_auroc"])
    det_cols: dict[str, list[str]] = {d: [] for d in dets}
    for kind, run in runs:
        for name, m in run["models"].items():
            trig.append(kind)
            vic.append(name)
            cols["p"].append(fmt_interval(m["asr"], *m.get("asr_ci", (None, None))))
            cols["u"].append(fmt_value(m["asr_baseline"]))
            cols["auroc"].append(fmt_value(m["clean_auroc_change"]))
            cols["auprc"].append(fmt_value(m["clean_auprc_change"]))
            cols["drop"].append(fmt_value(m["auprc_drop"]))
            for d in dets:
                det_cols[d].append(fmt_value(run["detection_auroc"].get(d)))
    keys = [Column("", "trigger", trig), Column("", "victim", vic)]
    asr = "Attack success rate (ASR) on the victim's test stays"
    perf = "Clean performance change (poisoned minus unpoisoned) and AUPRC drop when triggered"
    metrics = [
        Column(asr, "poisoned", cols["p"]),
        Column(asr, UNPOISONED, cols["u"]),
        Column(perf, "AUROC change", cols["auroc"]),
        Column(perf, "AUPRC change", cols["auprc"]),
        Column(perf, "AUPRC drop", cols["drop"]),
    ]
    title = "Detection AUROC on the victim's poisoned training stays"
    metrics += [Column(title, d, det_cols[d]) for d in dets]
    text = wrap(head, width) + "\n\n" + render_tables(keys, metrics, width)
    front = result.get("frontier") or []
    if front:
        fam = "The search's own frontier (surrogate): best ASR at each detection level"
        text += "\n" + render_tables(
            [
                Column(
                    "", "strongest detector AUROC", [fmt_value(p["detection_auroc"]) for p in front]
                )
            ],
            [
                Column(fam, "surrogate ASR", [fmt_value(p["asr"]) for p in front]),
                Column(
                    fam, "clean surrogate", [fmt_value(p["asr_clean_surrogate"]) for p in front]
                ),
            ],
            width,
        )
    return text
