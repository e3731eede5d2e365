"""Every registered detector must rank a blatant trigger as MORE suspicious than clean stays.

Heart rate 300 in every one of the last 24 hours, on 5 % of the stays, relabelled to 1: no
deployable detector may be inverted on that (the two-sample detector used to score it at detection
AUROC 0.01-0.13). Each detector runs as the audit runs it: data-level ones on the poisoned
training cohort, model-level ones with a victim trained on it, all with trusted clean reference
stays. The reference filter `random` is excluded (AUROC 0.5 by construction), and
`imputation-consistency`, which only sees grid-space poison, and `mask-duplicates`, which only
sees copied masks, must be exactly blind (0.5) to this raw-space value trigger rather than
inverted.
"""

from __future__ import annotations

import numpy as np
import pytest

from ehrbackdoor.attacks import ThreatModel, make_trigger, poison
from ehrbackdoor.data.cohort import Cohort, Events
from ehrbackdoor.data.schema import physionet2012_schema
from ehrbackdoor.defences import DEFENCES, make_defence
from ehrbackdoor.defences.evaluate import detection_metrics
from tests.attacks.conftest import random_cohort

#: The margin over chance each detector must clear on this trigger. The mask views see only the
#: trigger's extra observations (hourly instead of 4-hourly heart rate), a weaker signal than its
#: values: measured 0.59 (mask-rarity) to 0.85 (lof-mask); value and model views 0.71-1.0.
MIN_AUROC = {"isolation-forest-mask": 0.55, "lof-mask": 0.55, "mask-rarity": 0.55}
DEFAULT_MIN_AUROC = 0.65
#: Detectors blind to this trigger by construction (grid-space poison only; copied masks only):
#: they must score it at exactly chance.
RAW_BLIND = {"imputation-consistency", "mask-duplicates"}
DETECTORS = [n for n in DEFENCES if n != "random" and n not in RAW_BLIND]


def _charted(c: Cohort, seed: int) -> Cohort:
    """Heart rate charted every 4 hours in every stay (normal values), like a sparse ward chart:
    the trigger's hourly values then change the observation pattern as well as the values, so
    the mask-view detectors have something to see too."""
    rng = np.random.default_rng(seed)
    hr = c.schema.index("HR")
    e = c.events
    keep = e.variable != hr
    t = np.tile(np.arange(0.5, 48, 4.0), c.n_stays)
    stay = np.repeat(np.arange(c.n_stays), 12)
    events = Events.from_flat(
        np.concatenate([e.stay[keep], stay]),
        c.n_stays,
        np.concatenate([e.time[keep], t]),
        np.concatenate([e.variable[keep], np.full(len(t), hr)]),
        np.concatenate([e.value[keep], np.round(rng.normal(85, 8, len(t)))]),
    )
    return Cohort(c.schema, c.stay_id, c.label, c.static, events)


@pytest.fixture(scope="module")
def setting():
    from ehrbackdoor.victims import make_victim

    schema = physionet2012_schema()
    clean = _charted(random_cohort(schema, n=240, per_stay=20, seed=3), seed=3)
    trig = make_trigger("fixed", variable="HR", value=300.0, hours=24).fit(clean)
    poisoned = poison(clean, trig, ThreatModel(target=1, rate=0.05, apply="all", seed=0)).cohort
    reference = _charted(random_cohort(schema, n=120, per_stay=20, seed=11), seed=11)
    victim = make_victim(
        "mlp", hidden=[32], lr=3e-3, max_epochs=15, batch_size=32, dropout=0.1
    ).fit(poisoned, reference)
    return poisoned, reference, victim


def test_every_detector_is_covered():
    assert {"two-sample", "spectral", "strip", "range-check"} <= set(DETECTORS)


@pytest.mark.parametrize("name", DETECTORS)
def test_detector_is_not_inverted_on_a_blatant_trigger(setting, name):
    poisoned, reference, victim = setting
    det = make_defence(name)
    s = det.score(poisoned, victim if det.needs_victim else None, reference=reference)
    auroc = detection_metrics(poisoned.modified, s)["auroc"]
    assert auroc >= MIN_AUROC.get(name, DEFAULT_MIN_AUROC), (name, auroc, det.info_)


@pytest.mark.parametrize("name", sorted(RAW_BLIND))
def test_grid_only_detector_is_blind_not_inverted_on_raw_poison(setting, name):
    poisoned, reference, victim = setting
    s = make_defence(name).score(poisoned, None, reference=reference)
    assert detection_metrics(poisoned.modified, s)["auroc"] == pytest.approx(0.5)


def test_two_sample_without_reference_is_not_inverted_either(setting):
    """Without trusted stays it falls back to two-sided label atypicality (the one-sided score
    measured 0.095 here; the two-sided one 0.78)."""
    poisoned, reference, _ = setting
    det = make_defence("two-sample")
    s = det.score(poisoned)
    assert det.info_["mode"] == "label-atypicality"
    assert detection_metrics(poisoned.modified, s)["auroc"] >= DEFAULT_MIN_AUROC
    with_ref = make_defence("two-sample")
    with_ref.score(poisoned, reference=reference)
    assert with_ref.info_["mode"] == "reference"
    assert with_ref.info_["c2st_auroc"]["1"] > with_ref.info_["c2st_auroc"]["0"]  # poison: label 1
