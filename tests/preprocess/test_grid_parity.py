"""Parity of `discretize(layout="benchmark")` with the MIMIC-III benchmark's Discretizer.

`reference_transform` below is a straightforward per-row port of the benchmark's
``Discretizer.transform`` (timestep 1.0, store_masks=True, start_time='zero', end=48): it reads the
episode rows as TEXT, bins each row, writes the value or the one-hot of
``possible_values.index(text)``, imputes by forward-filling the original text (normal text before
the first observation), then appends the masks. Our vectorised grid must reproduce it exactly.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from ehrbackdoor.data.cohort import Cohort, Events
from ehrbackdoor.data.schema import mimic3_schema
from ehrbackdoor.preprocess import column_names, discretize

from .helpers import cohort_from_rows, random_episode, write_episode

try:
    from ehrbackdoor.data.readers.mimic3 import read_episode_files
except ImportError:  # the reader is written concurrently; the Events path still runs
    read_episode_files = None

CONFIG = json.loads(
    resources.files("ehrbackdoor.data").joinpath("resources", "discretizer_config.json").read_text()
)


def reference_transform(
    rows: list[list[str]], timestep: float = 1.0, impute: str = "previous", end: float = 48.0
) -> tuple[np.ndarray, str]:
    """The benchmark's Discretizer.transform, row by row, on text cells."""
    channels = CONFIG["id_to_channel"]
    is_cat = CONFIG["is_categorical_channel"]
    possible = CONFIG["possible_values"]
    normal = CONFIG["normal_values"]
    header = ["Hours", *channels]
    eps = 1e-6
    n_channels = len(channels)
    max_hours = end - 0.0  # start_time == 'zero'
    n_bins = int(max_hours / timestep + 1.0 - eps)

    begin, cur = [], 0
    for ch in channels:
        begin.append(cur)
        cur += len(possible[ch]) if is_cat[ch] else 1
    data = np.zeros((n_bins, cur), dtype=float)
    mask = np.zeros((n_bins, n_channels), dtype=int)
    original = [["" for _ in range(n_channels)] for _ in range(n_bins)]

    def write(bin_id: int, ch: str, text: str) -> None:
        c = channels.index(ch)
        if is_cat[ch]:
            k = possible[ch].index(text)
            for pos in range(len(possible[ch])):
                data[bin_id, begin[c] + pos] = 1.0 if pos == k else 0.0
        else:
            data[bin_id, begin[c]] = float(text)

    for row in rows:
        t = float(row[0])
        if t > max_hours + eps:
            continue
        bin_id = int(t / timestep - eps)
        assert 0 <= bin_id < n_bins
        for j in range(1, len(row)):
            if row[j] == "":
                continue
            ch = header[j]
            mask[bin_id][channels.index(ch)] = 1
            write(bin_id, ch, row[j])
            original[bin_id][channels.index(ch)] = row[j]

    if impute in ("normal_value", "previous"):
        prev: list[list[str]] = [[] for _ in range(n_channels)]
        for bin_id in range(n_bins):
            for c, ch in enumerate(channels):
                if mask[bin_id][c] == 1:
                    prev[c].append(original[bin_id][c])
                    continue
                if impute == "normal_value" or not prev[c]:
                    value = normal[ch]
                else:
                    value = prev[c][-1]
                write(bin_id, ch, value)

    data = np.hstack([data, mask.astype(np.float32)])
    new_header = []
    for ch in channels:
        if is_cat[ch]:
            new_header += [ch + "->" + v for v in possible[ch]]
        else:
            new_header.append(ch)
    new_header += ["mask->" + ch for ch in channels]
    return data, ",".join(new_header)


def _episodes(seed: int, n: int = 8) -> list[list[list[str]]]:
    rng = np.random.default_rng(seed)
    eps = [random_episode(rng, int(rng.integers(5, 90))) for _ in range(n - 2)]
    eps.append([])  # a stay without rows
    eps.append(random_episode(rng, 250))  # dense: many values per bin
    return eps


def _cohort(episodes: list[list[list[str]]], source: str, tmp_path: Path) -> Cohort:
    if source == "events":
        return cohort_from_rows(episodes)
    if read_episode_files is None:
        pytest.skip("MIMIC-III reader not available yet")
    paths = []
    for i, rows in enumerate(episodes):
        p = tmp_path / f"{i}_episode1_timeseries.csv"
        write_episode(p, rows)
        paths.append(p)
    return read_episode_files(paths, [0] * len(paths))


@pytest.mark.parametrize("source", ["reader", "events"])
@pytest.mark.parametrize("impute", ["previous", "normal_value", "zero"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_benchmark_layout_matches_reference(
    source: str, impute: str, seed: int, tmp_path: Path
) -> None:
    episodes = _episodes(seed)
    cohort = _cohort(episodes, source, tmp_path)
    grid = discretize(cohort, impute=impute, layout="benchmark")
    flat = grid.flat()
    assert flat.shape == (len(episodes), 48, 76)
    for i, rows in enumerate(episodes):
        ref, header = reference_transform(rows, impute=impute)
        assert ref.shape == (48, 76)
        assert grid.flat_columns == header.split(",")
        np.testing.assert_allclose(flat[i], ref, rtol=1e-6, err_msg=f"stay {i}")


def _canonical(rows: list[list[str]]) -> list[list[str]]:
    """Rows with every categorical text replaced by the canonical spelling of its code."""
    schema = mimic3_schema()
    out = []
    for row in rows:
        new = [row[0]]
        for j, text in enumerate(row[1:]):
            v = schema.variables[j]
            if v.is_categorical and text:
                code = v.aliases[text]
                new.append(v.label_of(code) if code in v.levels else text)
            else:
                new.append(text)
        out.append(new)
    return out


@pytest.mark.parametrize("impute", ["previous", "normal_value"])
def test_alias_minus_one_uses_canonical_label(impute: str) -> None:
    """Events without a recorded spelling (e.g. written by an attack) one-hot the canonical label."""
    episodes = _episodes(7)
    cohort = cohort_from_rows(episodes)
    e = cohort.events
    stripped = Events(e.offsets, e.time, e.variable, e.value, np.full_like(e.alias, -1))
    grid = discretize(
        Cohort(cohort.schema, cohort.stay_id, cohort.label, cohort.static, stripped),
        impute=impute,
        layout="benchmark",
    )
    flat = grid.flat()
    for i, rows in enumerate(episodes):
        ref, _ = reference_transform(_canonical(rows), impute=impute)
        np.testing.assert_allclose(flat[i], ref, rtol=1e-6)


def test_mimic_header_has_76_columns() -> None:
    values, masks = column_names(mimic3_schema(), "benchmark")
    assert len(values) == 59 and len(masks) == 17
    _, header = reference_transform([])
    assert values + masks == header.split(",")
    assert "Heart Rate" in values and "Glascow coma scale total->11" in values
    assert masks[8] == "mask->Heart Rate"


def test_ordinal_layout_agrees_with_benchmark_codes() -> None:
    """The ordinal layout holds the codes whose text the benchmark layout one-hots."""
    schema = mimic3_schema()
    cohort = cohort_from_rows(_episodes(3))
    ordn = discretize(cohort, layout="ordinal")
    bench = discretize(cohort, layout="benchmark")
    np.testing.assert_array_equal(ordn.mask, bench.mask)
    np.testing.assert_array_equal(ordn.delta, bench.delta)
    for f, v in enumerate(schema.variables):
        cols = np.flatnonzero(bench.column_variable == f)
        if not v.is_categorical:
            np.testing.assert_array_equal(ordn.values[:, :, f], bench.values[:, :, cols[0]])
            continue
        hot = bench.values[:, :, cols]
        assert np.all(hot.sum(-1) == 1)
        codes = np.array([v.aliases[t] for t in v.benchmark_values])[hot.argmax(-1)]
        np.testing.assert_array_equal(ordn.values[:, :, f], codes)
