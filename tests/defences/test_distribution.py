from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from ehrbackdoor.defences.distribution import (
    adjust_pvalues,
    ks_tests,
    missing_rate_tests,
    mmd_test,
    stealth_tests,
)
from ehrbackdoor.preprocess.grid import grid_raw
from tests.defences.conftest import structured_cohort


def test_benjamini_hochberg_matches_scipy():
    p = np.random.default_rng(0).random(40) ** 3
    np.testing.assert_allclose(adjust_pvalues(p, "bh"), stats.false_discovery_control(p))


def test_holm_by_hand():
    np.testing.assert_allclose(
        adjust_pvalues(np.array([0.01, 0.04, 0.03]), "holm"), [0.03, 0.06, 0.06]
    )
    assert adjust_pvalues(np.array([0.5, 0.9]), "holm").max() == 1.0
    with pytest.raises(ValueError, match="correction"):
        adjust_pvalues(np.array([0.1]), "bonferroni-ish")


def test_blatant_poison_differs_in_every_test(blatant):
    r = stealth_tests(blatant.cohort, n_permutations=99, seed=0)
    assert r["n_poisoned"] == len(blatant.indices)
    assert r["ks"]["n_significant"] > 0
    assert r["ks"]["top"][0]["feature"].startswith("HR/")
    assert r["mmd"]["p"] <= 0.05
    hr = {v["variable"]: v for v in r["missing_rate"]["variables"]}["HR"]
    assert hr["p_adjusted"] < 0.05
    assert hr["missing_rate_poisoned"] == 0.0  # HR written into every hour
    assert r == stealth_tests(blatant.cohort, n_permutations=99, seed=0)  # deterministic


def test_random_split_of_clean_stays_is_not_significant(blatant):
    clean = blatant.cohort.subset(np.flatnonzero(~blatant.cohort.modified))
    fake = np.zeros(clean.n_stays, dtype=bool)
    fake[np.random.default_rng(1).choice(clean.n_stays, 20, replace=False)] = True
    assert ks_tests(clean, fake)["n_significant"] == 0
    assert mmd_test(clean, fake, n_permutations=99, seed=0)["p"] > 0.05
    assert missing_rate_tests(clean, fake, correction="holm")["n_significant"] == 0


def test_clean_label_restricts_the_comparison(blatant):
    c = blatant.cohort
    r = ks_tests(c, c.modified, clean_label=0)
    assert r["n_tests"] > 0
    with pytest.raises(ValueError, match="at least 2 poisoned"):
        ks_tests(c, np.zeros(c.n_stays, dtype=bool))
    with pytest.raises(ValueError, match="shape"):
        mmd_test(c, np.zeros(3, dtype=bool))


def test_missing_rate_chi_square_accounts_for_cells_clustered_in_stays():
    # Two observation profiles (hourly vitals vs sparse): whole stays differ, so a random
    # subset's cell-level missing rate swings far more than independent cells would.
    # A group of 20 with 15 "vitals" stays (75 % vs 60 % overall): a 1.4-SD fluctuation of
    # stays, but thousands of "independent" cells.
    cohort = structured_cohort(n=200, n_poison=0)
    temp = grid_raw(cohort).mask[:, :, cohort.schema.index("Temp")].sum(axis=1)
    vitals = np.flatnonzero(temp > 30)
    sparse = np.flatnonzero(temp <= 30)
    fake = np.zeros(cohort.n_stays, dtype=bool)
    fake[vitals[:15]] = fake[sparse[:5]] = True
    r = missing_rate_tests(cohort, fake)
    naive = [stats.chi2.sf(v["chi2_cells"], 1) for v in r["variables"]]
    assert min(naive) < 1e-3  # the uncorrected test would cry wolf
    assert r["n_significant"] == 0
    for v in r["variables"]:
        assert v["design_effect"] >= 1.0
        assert v["chi2"] == pytest.approx(v["chi2_cells"] / v["design_effect"])
