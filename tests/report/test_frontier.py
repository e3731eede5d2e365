"""The report's efficacy-stealth frontier and poisoning-rate sections, on a made-up store with
detector metrics (no training)."""

from __future__ import annotations

import base64
import html
import re

import numpy as np
import pandas as pd

from ehrbackdoor.experiments.plan import Cell
from ehrbackdoor.experiments.store import Store
from ehrbackdoor.report import build_report, plots

#: (trigger, apply, rates, ASR per rate) of the fixture; the missing trigger is strong at 0.05.
SETTINGS = [
    ("temporal", "observed", (0.01, 0.02, 0.05), (0.4, 0.8, 0.95)),
    ("missing-random", "exact", (0.05,), (0.99,)),
]


#: What every cell has besides the attack success rates (the other sections plot them).
BASE_METRICS = {
    "clean_auroc": 0.8,
    "clean_auprc": 0.45,
    "triggered_auroc": 0.6,
    "triggered_auprc": 0.3,
    "baseline_auroc": 0.81,
    "baseline_auprc": 0.46,
    "auroc_cost": 0.01,
    "auprc_cost": 0.01,
}


def _store(run_dir, settings=SETTINGS, rates_only_one: bool = False) -> None:
    cells, metrics = [], {}
    for trigger, apply, rates, asrs in settings:
        rates, asrs = (rates[-1:], asrs[-1:]) if rates_only_one else (rates, asrs)
        for rate, asr in zip(rates, asrs, strict=True):
            setting = {
                "attack": trigger,
                "trigger": trigger,
                "target": 1,
                "rate": rate,
                "apply": apply,
                "selection": "non-target",
                "trigger_params": {},
            }
            for victim, drop in (("lr", 0.0), ("gru", 0.3)):
                for seed in (0, 1):
                    key = f"c{len(cells)}"
                    cells.append(
                        Cell(
                            key,
                            "synth",
                            "d0",
                            f"p-{trigger}-{rate}-{seed}",
                            f"b-{victim}-{seed}",
                            victim,
                            {},
                            setting,
                            seed,
                            100,
                        )
                    )
                    metrics[key] = {
                        "asr": asr - drop + 0.01 * seed,
                        "asr_baseline": 0.05,
                        **BASE_METRICS,
                        "defence_isolation_forest_auroc": 0.55 + 0.01 * seed,
                        "defence_range_check_auroc": 0.6 if trigger == "temporal" else 0.9,
                        "defence_spectral_auroc": 0.95,
                        "defence_perfect_auroc": 1.0,
                    }
    with Store.open_run(run_dir) as s:
        s.set_meta(
            {
                "name": "frontier",
                "config_yaml": "name: frontier\n",
                "created": "x",
                "config_digest": "x",
            }
        )
        s.sync_plan(cells)
        for c in cells:
            s.finish_cell(c.key, "ok", metrics[c.key], {"cell_seconds": 1.0})


def _section(text: str, heading: str) -> str:
    start = text.index(f"<h2>{heading}</h2>")
    end = text.find("<h2>", start + 1)
    return text[start:end]


def test_report_has_the_frontier_plot_and_tables(tmp_path):
    _store(tmp_path / "run")
    text = build_report(tmp_path / "run")
    sec = _section(text, "Efficacy-stealth frontier")
    pngs = re.findall(r'src="data:image/png;base64,([^"]+)"', sec)
    assert len(pngs) == 1 and base64.b64decode(pngs[0]).startswith(b"\x89PNG")
    # the table of points: the data-level detector, not spectral's 0.95 or perfect's 1.0
    rows = re.findall(r"<tr>(.*?)</tr>", sec)
    cells = [[html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", r)] for r in rows[1:]]
    assert len(cells) == 8  # 4 settings x 2 victims
    temporal = [c for c in cells if any("temporal" in x for x in c)]
    assert all("range-check" in c and "0.600" in c for c in temporal)
    missing = [c for c in cells if any("missing-random" in x for x in c)]
    assert all("range-check" in c and "0.900" in c for c in missing)
    assert all(any(x.startswith("spectral 0.950") for x in c) for c in cells)
    # strong and hidden: ASR >= 0.97 at detection AUROC <= 0.65 (none here: the strong
    # missing-value attack is found by range-check at 0.9)
    assert not any(c[-1] == "yes" for c in cells)

    rate = _section(text, "Poisoning rate for ASR 0.9")
    assert "missing-random" not in rate  # one rate only: nothing to interpolate
    rows = [re.findall(r"<td>(.*?)</td>", r) for r in re.findall(r"<tr>(.*?)</tr>", rate)[1:]]
    by_victim = {r[0]: r for r in rows}
    # lr: mean ASR 0.805 at 0.02, 0.955 at 0.05 -> 0.02 + 0.095 / 0.15 * 0.03 = 0.0390
    assert "0.0390" in by_victim["lr"]
    assert "not reached" in by_victim["gru"]  # at most 0.655


def test_strong_and_hidden_rows_are_marked(tmp_path):
    _store(tmp_path / "run", [("temporal", "observed", (0.01, 0.05), (0.5, 0.99))])
    text = build_report(tmp_path / "run")
    sec = _section(text, "Efficacy-stealth frontier")
    rows = [re.findall(r"<td>(.*?)</td>", r) for r in re.findall(r"<tr>(.*?)</tr>", sec)[1:]]
    marked = [(r[0], r[1]) for r in rows if r[-1] == "yes"]
    assert marked == [("lr", "rate 0.05")]  # lr at 0.05: ASR 0.995, range-check 0.6


def test_each_section_only_when_the_run_supports_it(tmp_path, fake_run):
    text = build_report(fake_run)  # no detector metrics, three rates per setting
    assert "Efficacy-stealth frontier" not in text
    assert "<h2>Poisoning rate for ASR 0.9</h2>" in text
    _store(tmp_path / "one", rates_only_one=True)
    text = build_report(tmp_path / "one")
    assert "<h2>Efficacy-stealth frontier</h2>" in text
    assert "Poisoning rate for ASR" not in text


def test_frontier_figure_has_no_overlapping_text(monkeypatch):
    """Tick labels, axis labels and title are never drawn over each other; the legend (with
    the region's label) sits outside the axes, so no point hides it."""
    frontier = pd.DataFrame(
        {
            "victim": ["lr", "gru", "mlp", "lr", "gru", "mlp"],
            "family": ["value"] * 3 + ["missing"] * 3,
            "asr": [0.99, 0.6, 0.2, 0.98, 0.3, 1.0],
            "asr_baseline": [0.1, 0.05, 0.1, 0.2, 0.1, 0.4],
            "detection_auroc": [0.55, 0.6, 0.5, 0.9, 0.45, 0.62],
        }
    )
    seen = []
    real_png = plots.png

    def checked(fig):
        seen.append(fig)
        bad = plots.text_overlaps(fig)
        fig.canvas.draw()
        r = fig.canvas.get_renderer()
        (ax,) = fig.axes
        legend = ax.get_legend()
        assert legend is not None
        box = legend.get_window_extent(r)
        assert box.x0 >= ax.get_window_extent(r).x1  # outside the data
        others = [t for t in ax.get_xticklabels() + ax.get_yticklabels() if t.get_text()]
        others += [ax.xaxis.label, ax.yaxis.label, ax.title, *legend.get_texts()]
        for t in ax.texts:
            e = t.get_window_extent(r)
            bad += [
                (t.get_text(), o.get_text()) for o in others if e.overlaps(o.get_window_extent(r))
            ]
        assert not bad, bad
        labels = [t.get_text() for t in legend.get_texts()]
        assert labels[:2] == ["value trigger", "missing trigger"]
        assert {"lr", "gru", "mlp", "unpoisoned model, same trigger"} <= set(labels)
        assert "strong and hidden:\nAUROC <= 0.65, ASR >= 0.97" in labels
        assert ax.get_xlim() == (0.4, 1.0) and ax.get_ylim() == (-0.02, 1.02)
        # 6 poisoned + 6 hollow unpoisoned markers + 6 joining lines + the chance line
        assert len(ax.lines) == 19
        hollow = [ln for ln in ax.lines if ln.get_markerfacecolor() == "none"]
        assert len(hollow) == 6
        assert sorted(np.round([ln.get_ydata()[0] for ln in hollow], 3)) == sorted(
            frontier["asr_baseline"]
        )
        return real_png(fig)

    monkeypatch.setattr(plots, "png", checked)
    out = plots.efficacy_stealth(frontier, "ASR vs strongest data-level detector")
    assert out.startswith(b"\x89PNG") and len(seen) == 1
