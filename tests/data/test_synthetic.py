"""Tests for the synthetic MIMIC-III-format generator, read back through the real reader."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.data.readers.mimic3 import official_split, read_mimic3
from ehrbackdoor.data.synthetic import generate_synthetic

N = 2000


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_synthetic(tmp_path_factory.mktemp("synth") / "ihm", n_stays=N, seed=0)


@pytest.fixture(scope="module")
def cohort(synth_dir: Path) -> Cohort:
    return read_mimic3(synth_dir)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_same_seed_same_bytes_different_seed_differs(tmp_path: Path) -> None:
    a = _files(generate_synthetic(tmp_path / "a", n_stays=150, seed=7))
    b = _files(generate_synthetic(tmp_path / "b", n_stays=150, seed=7, progress=lambda *a: None))
    c = _files(generate_synthetic(tmp_path / "c", n_stays=150, seed=8))
    assert a == b
    assert a != c
    assert len(a) == 150 + 3


def test_layout_and_split(synth_dir: Path, cohort: Cohort) -> None:
    for name in ("train_listfile.csv", "val_listfile.csv", "test_listfile.csv"):
        assert (synth_dir / name).read_text().startswith("stay,y_true\n")
    assert all(re.fullmatch(r"\d+_episode1_timeseries\.csv", s) for s in cohort.stay_id)
    sp = official_split(cohort)
    sizes = {k: len(v) for k, v in sp.items()}
    assert sum(sizes.values()) == N
    assert abs(sizes["train"] / N - 0.70) < 0.01
    assert abs(sizes["val"] / N - 0.15) < 0.01
    assert abs(sizes["test"] / N - 0.15) < 0.01
    for idx in sp.values():  # stratified by label
        assert abs(cohort.label[idx].mean() - cohort.label.mean()) < 0.01
    test_names = {p.name for p in (synth_dir / "test").iterdir()}
    assert test_names == set(cohort.stay_id[sp["test"]])


def test_mortality(cohort: Cohort) -> None:
    assert 0.12 <= cohort.label.mean() <= 0.14


def test_grid_missing_rate(cohort: Cohort) -> None:
    missing = cohort.missing_fraction()
    assert 0.50 <= missing.mean() <= 0.75
    # Vital signs are charted about hourly, height at most once.
    assert missing[cohort.schema.index("HR")] < 0.3
    assert missing[cohort.schema.index("Height")] > 0.95


def test_values_plausible(cohort: Cohort) -> None:
    s = cohort.schema
    e = cohort.events
    assert cohort.meta["cleaning"]["out_of_range_kept_total"] == 0
    assert cohort.meta["cleaning"]["empty_stays"] == 0
    scale = 10.0 ** s.precisions[e.variable]
    np.testing.assert_allclose(np.round(e.value * scale), e.value * scale, atol=1e-6)
    assert e.time.min() >= 0.0 and e.time.max() <= 48.0
    # Hours have 6 decimals; some rows sit exactly on the hour (bin edges).
    assert np.allclose(np.round(e.time * 1e6), e.time * 1e6)
    assert np.any((e.time == np.round(e.time)) & (e.time > 0))
    first = e.time[e.offsets[:-1]]
    assert np.median(first) < 1.0
    # GCS total is the sum of its components where all four are charted together.
    eye, motor, verbal, total = (
        s.index(x) for x in ("GCS_eye", "GCS_motor", "GCS_verbal", "GCS_total")
    )
    key = e.stay * 10**8 + np.rint(e.time * 1e6).astype(np.int64)
    parts = {}
    for j in (eye, motor, verbal, total):
        m = e.variable == j
        parts[j] = dict(zip(key[m].tolist(), e.value[m].tolist(), strict=True))
    common = set(parts[eye]) & set(parts[motor]) & set(parts[verbal]) & set(parts[total])
    assert len(common) > 1000
    assert all(
        parts[eye][k] + parts[motor][k] + parts[verbal][k] == parts[total][k] for k in common
    )


def test_gcs_text_aliases(cohort: Cohort) -> None:
    s = cohort.schema
    e = cohort.events
    for short, numbered, plain in (
        ("GCS_eye", "4 Spontaneously", "Spontaneously"),
        ("GCS_motor", "6 Obeys Commands", "Obeys Commands"),
        ("GCS_verbal", "5 Oriented", "Oriented"),
    ):
        v = s.variables[s.index(short)]
        used = np.bincount(e.alias[e.variable == s.index(short)], minlength=len(v.benchmark_values))
        n_num = used[v.benchmark_values.index(numbered)]
        n_plain = used[v.benchmark_values.index(plain)]
        assert n_num > n_plain > 0, (short, n_num, n_plain)


def _features(c: Cohort) -> np.ndarray:
    """Per variable: mean, last value (normal value if never charted) and log count."""
    e = c.events
    n, v = c.n_stays, len(c.schema)
    cell = e.stay * v + e.variable
    count = np.bincount(cell, minlength=n * v).reshape(n, v)
    total = np.bincount(cell, weights=e.value, minlength=n * v).reshape(n, v)
    mean = np.where(count > 0, total / np.maximum(count, 1), c.schema.normals)
    last_pos = np.full(n * v, -1)
    np.maximum.at(last_pos, cell, np.arange(len(cell)))  # events are time-ordered
    last = np.where(last_pos >= 0, e.value[last_pos], np.tile(c.schema.normals, n)).reshape(n, v)
    return np.hstack([mean, last, np.log1p(count)])


def test_not_trivially_separable(cohort: Cohort) -> None:
    sp = official_split(cohort)
    x = _features(cohort)
    y = cohort.label
    train = np.concatenate([sp["train"], sp["val"]])
    scaler = StandardScaler().fit(x[train])
    model = LogisticRegression(max_iter=2000).fit(scaler.transform(x[train]), y[train])
    auroc = roc_auc_score(y[sp["test"]], model.predict_proba(scaler.transform(x[sp["test"]]))[:, 1])
    assert 0.75 <= auroc <= 0.90, auroc


def test_sicker_patients_measured_more(cohort: Cohort) -> None:
    n_events = cohort.lengths
    assert n_events[cohort.label == 1].mean() > n_events[cohort.label == 0].mean()


def test_rejects_bad_size(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate_synthetic(tmp_path, n_stays=0)
