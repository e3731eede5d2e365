"""The published Joe et al. (2021) attack-success figure ships as a package resource."""

from __future__ import annotations

from importlib import resources

from ehrbackdoor.reference import joe2021_asr_figure


def test_joe2021_figure_loads_with_citation():
    df = joe2021_asr_figure()
    assert list(df.columns) == ["model", "apply", "strength", "rate", "asr", "note"]
    assert len(df) == 84
    assert set(df["model"]) == {"lr", "mlp", "lstm"} and set(df["apply"]) == {"observed", "all"}
    assert df["asr"].between(0, 1).all() and df["rate"].between(0.01, 0.05).all()
    assert set(df["note"]) == {"", "approximate"}
    # The paper's headline: strength 2, observed bins, LR at rate 0.01 is already about 0.96.
    row = df.query("model == 'lr' and apply == 'observed' and strength == 2.0 and rate == 0.01")
    assert abs(float(row["asr"].iloc[0]) - 0.96) < 1e-9
    header = resources.files("ehrbackdoor").joinpath("resources", "joe2021_asr_figure.csv")
    text = header.read_text(encoding="utf-8")
    assert "byunggilljoe/mimic3_td_backdoor" in text and "result_plot.ipynb" in text


def test_attacks_reference_still_exports_the_figure():
    from ehrbackdoor.attacks import reference

    assert reference.joe2021_asr_figure().equals(joe2021_asr_figure())
