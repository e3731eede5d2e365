"""Tests for ehrbackdoor.metrics: known answers, sklearn agreement, bootstrap behaviour."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    accuracy_score,
    auc,
    average_precision_score,
    brier_score_loss,
    f1_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from ehrbackdoor import metrics as m
from ehrbackdoor.metrics import resample

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _toy(n: int = 300, prevalence: float = 0.15, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels plus informative probabilities with some tied (rounded) scores."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prevalence).astype(int)
    y[:2] = [0, 1]
    p = 1.0 / (1.0 + np.exp(-rng.normal(-1.5 + 1.5 * y, 1.0)))
    return y, np.round(p, 2)


@st.composite
def labelled_scores(draw, min_size: int = 2, max_size: int = 40, both: bool = True):
    """(y, p) with coarse scores so that ties are common."""
    n = draw(st.integers(min_size, max_size))
    y = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    if both:
        y[0], y[-1] = 0, 1
    levels = draw(st.integers(1, 6))
    p = np.array(draw(st.lists(st.integers(0, levels), min_size=n, max_size=n))) / levels
    return y, p


# ----------------------------------------------------------------- known answers: sklearn


@FAST
@given(labelled_scores())
def test_point_metrics_match_sklearn(data):
    y, p = data
    assert m.auroc(y, p) == pytest.approx(roc_auc_score(y, p))
    assert m.auprc(y, p) == pytest.approx(average_precision_score(y, p))
    precision, recall, _ = precision_recall_curve(y, p)
    assert m.auprc(y, p, method="trapezoid") == pytest.approx(auc(recall, precision))
    assert m.brier(y, p) == pytest.approx(brier_score_loss(y, p))
    assert m.detection_auroc(y.astype(bool), p) == pytest.approx(roc_auc_score(y, p))


@FAST
@given(labelled_scores(min_size=1, both=False), st.floats(0.0, 1.0))
def test_threshold_metrics_match_sklearn(data, threshold):
    y, p = data
    pred = (p >= threshold).astype(int)
    assert m.accuracy_at(y, p, threshold) == pytest.approx(accuracy_score(y, pred))
    assert m.f1_at(y, p, threshold) == pytest.approx(f1_score(y, pred, zero_division=0))


def test_predict_positive_at_equality():
    assert m.accuracy_at([1, 0], [0.5, 0.49], 0.5) == 1.0
    assert m.f1_at([1, 0], [0.5, 0.49], 0.5) == 1.0


def test_auprc_methods_differ_and_bad_method():
    y, p = _toy()
    assert m.auprc(y, p) != m.auprc(y, p, method="trapezoid")
    with pytest.raises(ValueError, match="method"):
        m.auprc(y, p, method="interpolated")  # type: ignore[arg-type]


# ------------------------------------------------------------ known answers: by hand


def test_min_se_ppv_hand_computed():
    # PR points (P, R): (.5, 1), (2/3, 1), (.5, .5), (1, .5), (1, 0) -> max min = 2/3.
    assert m.min_se_ppv([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(2 / 3)
    # A perfect ranking reaches 1.
    assert m.min_se_ppv([0, 1, 1], [0.1, 0.8, 0.9]) == 1.0


def test_ece_hand_computed():
    y = [0, 1, 1, 0]
    p = [0.05, 0.15, 0.95, 1.0]  # p == 1 lands in the last bin
    # bins: {0.05}: |.05-0|, {0.15}: |.15-1|, {.95, 1}: |.975-.5| (weight 2/4)
    expected = 0.05 / 4 + 0.85 / 4 + 0.475 * 2 / 4
    assert m.ece(y, p) == pytest.approx(expected)
    assert m.ece(y, p, n_bins=1) == pytest.approx(abs(np.mean(p) - 0.5))


def test_ece_perfectly_calibrated_bins_is_zero():
    y = [0, 1, 0, 0, 0, 1, 1, 1]
    p = [0.25] * 4 + [0.75] * 4
    assert m.ece(y, p, n_bins=4) == pytest.approx(0.0)


def test_attack_success_rate_excludes_target_class():
    y = [0, 0, 0, 1, 1]
    p = [0.9, 0.2, 0.6, 0.1, 0.95]
    # target 1: only true-0 records count -> preds 1, 0, 1 -> 2/3 (not 3/5 with all records)
    assert m.attack_success_rate(y, p, 0.5, target=1) == pytest.approx(2 / 3)
    # target 0: only true-1 records count -> preds 0, 1 -> 1/2
    assert m.attack_success_rate(y, p, 0.5, target=0) == pytest.approx(1 / 2)
    # threshold is inclusive: p >= t is predicted positive
    assert m.attack_success_rate([0], [0.5], 0.5, target=1) == 1.0


def test_attack_success_rate_errors():
    with pytest.raises(ValueError, match="target=1"):
        m.attack_success_rate([1, 1], [0.2, 0.9], 0.5, target=1)
    with pytest.raises(ValueError, match="target"):
        m.attack_success_rate([0, 1], [0.2, 0.9], 0.5, target=2)
    with pytest.raises(ValueError, match="threshold"):
        m.attack_success_rate([0, 1], [0.2, 0.9], float("nan"), target=1)


def test_choose_threshold_hand_computed():
    y = [0, 0, 1, 1, 0, 1]
    p = [0.1, 0.4, 0.35, 0.8, 0.7, 0.9]
    # F1 by threshold: .9: 1/2, .8: 4/5, .7: 2/3, .4: 4/7, .35: 3/4, .1: 2/3
    assert m.choose_threshold(y, p) == 0.8
    # J by threshold: .9: 1/3, .8: 2/3, .7: 1/3, .4: 0, .35: 1/3, .1: 0
    assert m.choose_threshold(y, p, rule="youden") == 0.8


def test_choose_threshold_ties_pick_smallest_threshold():
    # F1: .9 -> 2/3, .7 -> 1/2, .5 -> 2/5, .3 -> 2/3: tie between .9 and .3
    assert m.choose_threshold([1, 0, 0, 1], [0.9, 0.7, 0.5, 0.3]) == 0.3
    # J: .9 -> 1/2, .7 -> 0, .5 -> 1/2, .3 -> 0: tie between .9 and .5
    assert m.choose_threshold([1, 0, 1, 0], [0.9, 0.7, 0.5, 0.3], rule="youden") == 0.5


@FAST
@given(labelled_scores())
def test_choose_threshold_is_smallest_maximiser(data):
    y, p = data
    candidates = np.unique(p)
    for rule in ("max_f1", "youden"):
        if rule == "max_f1":
            values = [f1_score(y, (p >= t).astype(int), zero_division=0) for t in candidates]
        else:
            fpr, tpr = [], []
            for t in candidates:
                pred = p >= t
                tpr.append(pred[y == 1].mean())
                fpr.append(pred[y == 0].mean())
            values = list(np.array(tpr) - np.array(fpr))
        best = max(values)
        winners = [t for t, v in zip(candidates, values, strict=True) if np.isclose(v, best)]
        assert m.choose_threshold(y, p, rule=rule) == min(winners)


def test_choose_threshold_bad_rule():
    with pytest.raises(ValueError, match="rule"):
        m.choose_threshold([0, 1], [0.2, 0.8], rule="accuracy")  # type: ignore[arg-type]


# --------------------------------------------------------------------- detection metrics


def test_tpr_at_fpr_hand_computed():
    poison = np.array([1, 1, 1, 1] + [0] * 10, dtype=bool)
    scores = np.array([0.9, 0.8, 0.3, 0.2] + [0.85, 0.5, 0.4] + [0.1] * 7)
    # fpr .1 of 10 clean -> 1 false positive allowed -> flag >= .8 -> 2 of 4 poison
    assert m.tpr_at_fpr(poison, scores, fpr=0.1) == 0.5
    assert m.tpr_at_fpr(poison, scores, fpr=0.05) == 0.25
    assert m.tpr_at_fpr(poison, scores, fpr=1.0) == 1.0
    # the top score is clean: nothing can be flagged at zero false positives
    assert m.tpr_at_fpr([0, 1], [0.9, 0.1], fpr=0.0) == 0.0


@FAST
@given(labelled_scores(), st.floats(0.0, 1.0))
def test_tpr_at_fpr_matches_roc_curve(data, budget):
    y, p = data
    fpr, tpr, _ = roc_curve(y, p, drop_intermediate=False)
    expected = tpr[fpr <= budget + 1e-12].max()
    assert m.tpr_at_fpr(y, p, fpr=budget) == pytest.approx(expected)


def test_precision_at_k_ties_by_index():
    poison = [0, 1, 1, 0]
    scores = [0.5, 0.5, 0.9, 0.5]
    assert m.precision_at_k(poison, scores, 1) == 1.0  # record 2
    assert m.precision_at_k(poison, scores, 2) == 0.5  # + record 0 (earliest of the tie)
    assert m.precision_at_k(poison, scores, 3) == pytest.approx(2 / 3)  # + record 1
    with pytest.raises(ValueError, match="k"):
        m.precision_at_k(poison, scores, 5)
    with pytest.raises(ValueError, match="k"):
        m.precision_at_k(poison, scores, 0)


def test_detection_errors_name_arguments():
    with pytest.raises(ValueError, match="is_poison"):
        m.detection_auroc([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="scores"):
        m.detection_auroc([0, 1, 0], [0.1, np.nan, 0.3])
    with pytest.raises(ValueError, match="fpr"):
        m.tpr_at_fpr([0, 1], [0.1, 0.2], fpr=1.5)


# ----------------------------------------------------------------- fast batch kernels


@FAST
@given(labelled_scores(min_size=1, both=False), st.data())
def test_batch_kernels_match_sklearn(data, draw):
    y, p = data
    n = y.shape[0]
    rows = draw.draw(st.integers(1, 5))
    width = draw.draw(st.integers(1, 40))
    idx = np.array(
        draw.draw(
            st.lists(
                st.lists(st.integers(0, n - 1), min_size=width, max_size=width),
                min_size=rows,
                max_size=rows,
            )
        )
    )
    got = {
        "auroc": m.auroc_batch(y, p, idx),
        "ap": m.average_precision_batch(y, p, idx),
        "trap": m.auprc_trapezoid_batch(y, p, idx),
        "minse": m.min_se_ppv_batch(y, p, idx),
    }
    for b, row in enumerate(idx):
        yr, pr = y[row], p[row]
        if yr.min() == yr.max():
            assert all(np.isnan(v[b]) for v in got.values())
            continue
        precision, recall, _ = precision_recall_curve(yr, pr)
        assert got["auroc"][b] == pytest.approx(roc_auc_score(yr, pr), abs=1e-12)
        assert got["ap"][b] == pytest.approx(average_precision_score(yr, pr), abs=1e-12)
        assert got["trap"][b] == pytest.approx(auc(recall, precision), abs=1e-12)
        assert got["minse"][b] == pytest.approx(np.max(np.minimum(precision, recall)), abs=1e-12)


def test_batch_rejects_bad_indices():
    with pytest.raises(ValueError, match="indices"):
        m.auroc_batch([0, 1], [0.1, 0.9], [[0, 2]])
    with pytest.raises(ValueError, match="indices"):
        m.auroc_batch([0, 1], [0.1, 0.9], [[0.0, 1.0]])


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_deterministic_and_seed_dependent():
    y, p = _toy()
    for metric in ("auroc", "auprc"):
        a = m.bootstrap_ci(metric, y, p, n_resamples=500, seed=7)
        b = m.bootstrap_ci(metric, y, p, n_resamples=500, seed=7)
        c = m.bootstrap_ci(metric, y, p, n_resamples=500, seed=8)
        assert a == b
        assert a != c


def test_bootstrap_ci_contains_point_estimate():
    y, p = _toy()
    for name, fn in (("auroc", m.auroc), ("auprc", m.auprc), ("min_se_ppv", m.min_se_ppv)):
        low, high = m.bootstrap_ci(name, y, p, n_resamples=1000)
        assert 0.0 <= low < fn(y, p) < high <= 1.0
    low, high = m.bootstrap_ci(m.brier, y, p, n_resamples=200)
    assert low < m.brier(y, p) < high


def test_fast_path_equals_generic_loop(monkeypatch):
    # Small chunks so the comparison spans several index chunks.
    monkeypatch.setattr(resample, "_CHUNK_ELEMENTS", 100)
    y, p = _toy(n=40, prevalence=0.3, seed=3)
    pairs = [
        ("auroc", m.auroc),
        ("auprc", m.auprc),
        ("auprc_trapezoid", lambda a, b: m.auprc(a, b, method="trapezoid")),
        ("min_se_ppv", m.min_se_ppv),
    ]
    for name, fn in pairs:
        fast = m.bootstrap(name, y, p, n_resamples=60, seed=1)
        slow = m.bootstrap(lambda a, b, fn=fn: fn(a, b), y, p, n_resamples=60, seed=1)
        np.testing.assert_allclose(fast.statistics, slow.statistics, atol=1e-12)
        assert fast.n_skipped == slow.n_skipped
        assert (fast.low, fast.high) == pytest.approx((slow.low, slow.high))
    # the point-metric callables dispatch to the fast kernels
    by_name = m.bootstrap_ci("auroc", y, p, n_resamples=60)
    assert m.bootstrap_ci(m.auroc, y, p, n_resamples=60) == by_name


def test_bootstrap_skips_and_counts_single_class_resamples():
    y = np.array([1] + [0] * 9)
    p = np.linspace(0.9, 0.0, 10)
    fast = m.bootstrap("auroc", y, p, n_resamples=300)
    slow = m.bootstrap(lambda a, b: m.auroc(a, b), y, p, n_resamples=300)
    # P(no positive in a resample) = 0.9 ** 10 ~ 0.35
    assert 50 < fast.n_skipped < 200
    assert fast.n_skipped == slow.n_skipped
    assert fast.statistics.shape[0] + fast.n_skipped == 300


def test_bootstrap_all_resamples_undefined_raises():
    with pytest.raises(ValueError, match="undefined on all"):
        m.bootstrap_ci("auroc", [0, 0, 0], [0.1, 0.2, 0.3], n_resamples=10)


def test_bootstrap_generic_callable_multi_dim():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    low, high = m.bootstrap_ci(lambda a: float(a[:, 0].mean()), x, n_resamples=300)
    assert low < x[:, 0].mean() < high


def test_bootstrap_argument_errors():
    y, p = _toy(n=20)
    with pytest.raises(ValueError, match="unknown metric"):
        m.bootstrap_ci("accuracy", y, p)
    with pytest.raises(ValueError, match="alpha"):
        m.bootstrap_ci("auroc", y, p, alpha=1.5)
    with pytest.raises(ValueError, match="n_resamples"):
        m.bootstrap_ci("auroc", y, p, n_resamples=0)
    with pytest.raises(ValueError, match="equal lengths"):
        m.bootstrap_ci(lambda a, b: 0.0, y, p[:-1])
    with pytest.raises(ValueError, match="two arrays"):
        m.bootstrap_ci("auroc", y)
    with pytest.raises(ValueError, match="metric_fn"):
        m.bootstrap_ci(42, y, p)  # type: ignore[arg-type]


def test_bootstrap_speed_10k_resamples_1200_records():
    rng = np.random.default_rng(0)
    y = (rng.random(1200) < 0.12).astype(int)
    p = 1.0 / (1.0 + np.exp(-rng.normal(-2.0 + 1.5 * y, 1.0)))  # all scores distinct
    for metric in ("auroc", "auprc"):
        start = time.perf_counter()
        low, high = m.bootstrap_ci(metric, y, p, n_resamples=10_000)
        assert time.perf_counter() - start < 2.0
        assert low < high


def test_attack_success_ci():
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.2).astype(int)
    p = np.where(rng.random(400) < 0.7, 0.9, 0.1)
    asr = m.attack_success_rate(y, p, 0.5, target=1)
    ci = m.attack_success_ci(y, p, 0.5, target=1, n_resamples=2000, seed=3)
    assert ci == m.attack_success_ci(y, p, 0.5, target=1, n_resamples=2000, seed=3)
    assert ci != m.attack_success_ci(y, p, 0.5, target=1, n_resamples=2000, seed=4)
    assert 0.0 <= ci[0] < asr < ci[1] <= 1.0
    # every eligible record flipped -> degenerate interval at 1, whatever the target class does
    assert m.attack_success_ci([0, 0, 1], [0.9, 0.8, 0.1], 0.5, target=1) == (1.0, 1.0)


# ---------------------------------------------------------------------------- summarize


def test_summarize_json_and_consistent():
    y, p = _toy()
    out = m.summarize(y, p, threshold=0.3, n_resamples=300, seed=1)
    expected_keys = {
        "auroc", "auroc_ci", "auprc", "auprc_ci", "min_se_ppv", "accuracy",
        "f1", "brier", "ece", "n", "n_positive",
    }  # fmt: skip
    assert set(out) == expected_keys
    assert json.loads(json.dumps(out)) == out
    assert out["auroc"] == m.auroc(y, p)
    assert out["auprc"] == m.auprc(y, p)
    assert out["f1"] == m.f1_at(y, p, 0.3)
    assert out["n"] == 300 and out["n_positive"] == int(y.sum())
    for key in ("auroc_ci", "auprc_ci"):
        ci = out[key]
        assert isinstance(ci, list) and len(ci) == 2
        assert all(type(v) is float for v in ci)
        assert ci[0] <= out[key[:-3]] <= ci[1]
    assert out["auroc_ci"] == list(m.bootstrap_ci("auroc", y, p, n_resamples=300, seed=1))


# ------------------------------------------------------------------------ input errors


@pytest.mark.parametrize(
    ("y", "p", "match"),
    [
        ([0, np.nan, 1], [0.1, 0.2, 0.3], "y_true contains NaN"),
        ([0, 2, 1], [0.1, 0.2, 0.3], "y_true must contain only 0/1"),
        ([[0, 1], [1, 0]], [0.1, 0.2], "y_true must be 1-D"),
        ([0, 1, 1], [[0.1, 0.2, 0.3]], "p must be 1-D"),
        ([], [], "y_true must be non-empty"),
        ([0, 1, 1], [0.1, 0.2], "equal lengths"),
        ([0, 1, 1], [0.1, np.inf, 0.3], "p contains NaN or infinite"),
        ([0, 1, 1], [0.1, np.nan, 0.3], "p contains NaN or infinite"),
        (["a", "b"], [0.1, 0.2], "y_true must be numeric"),
    ],
)
def test_invalid_inputs_raise(y, p, match):
    for fn in (m.auroc, m.auprc, m.min_se_ppv, m.brier, m.ece):
        with pytest.raises(ValueError, match=match):
            fn(y, p)


@pytest.mark.parametrize("fn", [m.auroc, m.auprc, m.min_se_ppv, m.choose_threshold])
def test_single_class_is_undefined(fn):
    with pytest.raises(ValueError, match="undefined .* only one class"):
        fn([1, 1, 1], [0.2, 0.5, 0.9])
    with pytest.raises(m.UndefinedMetricError):
        fn([0, 0], [0.2, 0.5])


def test_probability_range_only_where_required():
    y, s = [0, 1, 1], [-2.0, 3.0, 5.0]  # logits are fine for ranking metrics
    assert m.auroc(y, s) == 1.0
    assert m.f1_at(y, s, 0.0) == 1.0
    for fn in (m.brier, m.ece):
        with pytest.raises(ValueError, match="p must be probabilities"):
            fn(y, s)
    with pytest.raises(ValueError, match="p must be probabilities"):
        m.summarize(y, s, 0.5, n_resamples=10)


def test_boolean_labels_accepted_and_bad_n_bins():
    assert m.auroc(np.array([False, True]), [0.1, 0.9]) == 1.0
    with pytest.raises(ValueError, match="n_bins"):
        m.ece([0, 1], [0.1, 0.9], n_bins=0)
