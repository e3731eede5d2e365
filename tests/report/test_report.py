"""The HTML report: self-contained, every section present, renders in a real browser."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ehrbackdoor.report import build_report, write_report
from tests.report.conftest import make_store

CHROMIUM = Path("/usr/bin/chromium")


def _images(text: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', text)]


def test_report_has_every_section_and_no_external_resources(fake_run, fake_report):
    assert fake_report == fake_run / "report.html"
    text = fake_report.read_text()
    for heading in (
        "Results",
        "Attack success rate vs poisoning rate",
        "AUROC / AUPRC: unpoisoned, poisoned on clean and on triggered stays",
        "Clean-performance cost of poisoning",
        "Value triggers",
        "Observation masks under the triggers",
        "Failed cells",
        "Where the time went",
        "Config",
    ):
        assert f"<h2>{heading}</h2>" in text, heading
    assert "Stealth" not in text  # only when the run has stealth metrics
    # errors are escaped, not injected
    assert "something broke &lt;b&gt;here&lt;/b&gt;" in text
    # self-contained: no scripts, no links to anything outside the file
    assert "<script" not in text
    assert not re.search(r'(src|href)="(?!data:)', text)
    imgs = _images(text)
    # 2 ASR panels (value, missing) + 8 AUC (one per setting: 6 value, 2 missing) + 3 cost
    # (value per strength, missing) + 2 heatmaps (strength 0.5, 2) + 1 masks
    assert len(imgs) == 16
    assert all(i.startswith(b"\x89PNG") for i in imgs)


def test_stealth_table_when_present_and_explicit_out(tmp_path):
    make_store(tmp_path / "run", stealth=True, failed=False)
    out = write_report(tmp_path / "run", tmp_path / "x" / "r.html")
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert "<h2>Stealth</h2>" in text and "stealth_detection_auroc" in text
    assert "Failed cells" not in text


def test_empty_run(tmp_path):
    from ehrbackdoor.experiments.store import Store

    Store.open_run(tmp_path).close()
    assert "No finished cells yet" in build_report(tmp_path)


def _png_variance(path: Path) -> float:
    import matplotlib.image as mpimg

    img = mpimg.imread(io.BytesIO(path.read_bytes()), format="png")
    return float(np.var(img[..., :3]))


@pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)",
)
def test_report_renders_in_chromium(fake_report, tmp_path):
    report = fake_report
    base = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
    ]
    shot = tmp_path / "shot.png"
    r = subprocess.run(
        [*base, "--window-size=1400,2400", f"--screenshot={shot}", report.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.is_file(), r.stderr[-2000:]
    assert _png_variance(shot) > 0.01  # not a blank page
    console = [
        line
        for line in r.stderr.splitlines()
        if "CONSOLE" in line or "Uncaught" in line or "Failed to load resource" in line
    ]
    assert not console, console

    dom = subprocess.run(
        [*base, "--dump-dom", report.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Attack success rate vs poisoning rate" in dom.stdout
    # every plot decoded: the browser kept all images (a broken one has no natural size, but
    # the DOM check above plus the screenshot variance are what headless mode can tell us)
    assert dom.stdout.count("data:image/png;base64,") == len(_images(report.read_text()))
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)


def test_trigger_family_comes_from_the_record_without_the_registry():
    import subprocess
    import sys

    from ehrbackdoor.report.html import trigger_family

    assert trigger_family("missing-vae", "observed") == "missing"
    assert trigger_family("some-old-trigger", "exact") == "missing"
    assert trigger_family("temporal", "all") == "value"
    assert trigger_family("fixed", "observed") == "value"
    code = (
        "import sys, ehrbackdoor.report; "
        "assert 'torch' not in sys.modules and 'ehrbackdoor.attacks' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_figures_have_no_overlapping_labels(fake_run, monkeypatch):
    """Every figure of the report, checked before it is embedded: no tick label, axis label or
    title drawn over another (the AUPRC cost panel's label once hid its minus signs)."""
    from ehrbackdoor.report import html as report_html
    from ehrbackdoor.report import plots

    bad = []
    real_png = plots.png

    def checked(fig):
        bad.extend(plots.text_overlaps(fig))
        return real_png(fig)

    monkeypatch.setattr(plots, "png", checked)
    report_html.build_report(fake_run)
    assert not bad, bad[:5]


def test_one_auc_figure_per_setting_and_single_rate_axis(fake_run):
    import pandas as pd

    from ehrbackdoor.report import plots

    text = (fake_run / "report.html").read_text()
    assert "nothing is averaged over rates" in text
    agg = pd.DataFrame(
        {
            "victim": ["lr", "gru"],
            "rate": [0.05, 0.05],
            "auroc_cost": [0.01, -0.02],
            "auprc_cost": [-0.03, 0.02],
        }
    )
    fig_ticks = []
    real_png = plots.png

    def grab(fig):
        fig_ticks.append([t.get_text() for t in fig.axes[0].get_xticklabels()])
        return real_png(fig)

    plots.png = grab
    try:
        plots.poisoning_cost(agg, "one rate")
    finally:
        plots.png = real_png
    assert fig_ticks[0] == ["0.05"]
