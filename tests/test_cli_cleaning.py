"""`data info` prints a compact cleaning summary: non-zero counts only, per-file counts summarised."""

from __future__ import annotations

from ehrbackdoor.cli.data import render_cleaning


def test_cleaning_summary_is_compact():
    per_file = {f"{i}.txt": 1 + i % 3 for i in range(1594)}
    text = render_cleaning(
        {
            "policy": "rows outside the window are dropped",
            "dropped_empty_parameter": per_file,
            "blank_lines": 0,
            "dropped_rows_after_48h": 12,
        }
    )
    assert len(text.splitlines()) <= 6
    assert "1,594 entries" in text and f"{sum(per_file.values()):,}" in text
    assert "blank lines" not in text and "dropped rows after 48h 12" in text
    assert all(len(line) <= 80 for line in text.splitlines())


def test_cleaning_of_several_sources():
    text = render_cleaning({"sources": [{"policy": "p", "empty_stays": 2}, {"policy": "q"}]})
    assert "source 1: cleaning: p" in text and "empty stays 2" in text and "nothing" in text
