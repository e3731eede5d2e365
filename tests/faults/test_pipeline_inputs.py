"""Bad arguments to the one cell path fail before any expensive work."""

from __future__ import annotations

import pytest

from ehrbackdoor.attacks.triggers.temporal import TemporalCovarianceTrigger
from ehrbackdoor.pipeline.cell import AttackConfig, DefenceSpec, build_attack
from tests.victims.conftest import make_cohort


def test_apply_mode_rejected_before_the_trigger_is_fit(monkeypatch):
    calls = []
    monkeypatch.setattr(
        TemporalCovarianceTrigger, "_fit", lambda self, cohort: calls.append(1), raising=True
    )
    train, test = make_cohort(40, seed=1, prefix="tr"), make_cohort(20, seed=2, prefix="te")
    config = AttackConfig(attack="temporal", apply="exact")  # a missing-value mode
    with pytest.raises(ValueError, match="exact"):
        build_attack(config, train, test)
    assert calls == []


@pytest.mark.parametrize("k", [float("nan"), float("inf"), 0.0, -1.0])
def test_defence_budget_factor_must_be_positive_and_finite(k):
    with pytest.raises(ValueError, match="k_factor"):
        DefenceSpec(("range-check",), {}, k)
