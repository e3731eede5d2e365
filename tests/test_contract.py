"""The one contract every component (victim, trigger, detector) follows."""

from __future__ import annotations

import numpy as np
import pytest

from ehrbackdoor.attacks import (
    TRIGGERS,
    ThreatModel,
    TriggerInfo,
    attack_test,
    check_apply_mode,
    make_trigger,
    poison,
    trigger_info,
)
from ehrbackdoor.base import Component, NotFittedError, Registry
from ehrbackdoor.data.schema import physionet2012_schema
from ehrbackdoor.defences import DEFENCES, make_defence
from ehrbackdoor.victims import VICTIMS, make_victim
from tests.attacks.conftest import random_cohort

REGISTRIES = [("trigger", TRIGGERS, make_trigger), ("defence", DEFENCES, make_defence)]
ALL = [(kind, name, make) for kind, reg, make in REGISTRIES for name in reg] + [
    ("victim", name, make_victim) for name in VICTIMS
]


@pytest.fixture(scope="module")
def cohort():
    return random_cohort(physionet2012_schema(), n=40)


@pytest.mark.parametrize(("kind", "name", "make"), ALL, ids=[f"{k}:{n}" for k, n, _ in ALL])
def test_get_params_round_trips_through_the_factory(kind, name, make):
    comp = make(name)
    assert isinstance(comp, Component) and comp.kind == kind and comp.name == name
    params = comp.get_params()
    assert list(params) == comp.param_names()
    again = make(name, **params)
    assert again.get_params() == params
    assert repr(comp) == f"{type(comp).__name__}()"  # only non-default parameters are shown


@pytest.mark.parametrize(("kind", "name", "make"), ALL, ids=[f"{k}:{n}" for k, n, _ in ALL])
def test_unknown_parameter_is_a_value_error_naming_it(kind, name, make):
    with pytest.raises(
        ValueError,
        match=rf"unknown parameter 'colour' for {kind} '{name}'; valid "
        r"parameters: .*seed",
    ):
        make(name, colour="red")


@pytest.mark.parametrize(
    ("kind", "registry", "make"), REGISTRIES + [("victim", VICTIMS, make_victim)]
)
def test_unknown_name_lists_the_valid_ones(kind, registry, make):
    with pytest.raises(
        ValueError, match=rf"unknown {kind} 'nope'; valid names: {list(registry)[0]}"
    ):
        make("nope")


def test_repr_and_set_params():
    trig = make_trigger("temporal", strength=2.5, variables=["HR"])
    assert repr(trig) == "TemporalCovarianceTrigger(strength=2.5, variables=['HR'])"
    assert trig.set_params(strength=1.0) is trig
    assert repr(trig) == "TemporalCovarianceTrigger(variables=['HR'])"
    with pytest.raises(ValueError, match="strength"):
        trig.set_params(strength=-1.0)  # validated by the constructor again
    assert trig.strength == 1.0  # and nothing changed
    with pytest.raises(ValueError, match="unknown parameter 'strenght'"):
        trig.set_params(strenght=1.0)
    gru = make_victim("gru", hidden=8)
    assert repr(gru) == "GRUVictim(hidden=8)"
    assert repr(make_victim("gru", seed=3)) == "GRUVictim(seed=3)"


def test_one_not_fitted_error_everywhere(cohort):
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)
    from ehrbackdoor.attacks.mask_vae import MaskVAE

    with pytest.raises(NotFittedError, match="not fitted"):
        make_trigger("temporal").apply(cohort, np.arange(3))
    with pytest.raises(NotFittedError, match="not fitted"):
        make_victim("lr").predict_proba(cohort)
    with pytest.raises(NotFittedError, match="not fitted"):
        MaskVAE().encode(np.zeros((2, 48, 3), dtype=bool))
    with pytest.raises(NotFittedError, match="victim is not fitted"):
        make_defence("spectral").score(cohort, victim=make_victim("lr"))
    with pytest.raises(NotFittedError, match="not fitted"):
        poison(cohort, make_trigger("temporal"), ThreatModel(rate=0.1))


@pytest.mark.parametrize("name", list(TRIGGERS))
def test_trigger_info_for_every_registered_trigger(name):
    info = trigger_info(name)
    assert isinstance(info, TriggerInfo) and info.name == name
    assert info.family in ("value", "missing")
    assert info.family == ("missing" if name.startswith("missing") else "value")
    assert info.apply_modes and all(isinstance(m, str) for m in info.apply_modes)
    assert "observed" in info.apply_modes  # the threat model's default works for every trigger
    assert info.params == make_trigger(name).get_params()
    assert trigger_info(make_trigger(name)) == info
    for mode in info.apply_modes:
        assert check_apply_mode(name, mode) == mode


def test_trigger_info_of_unknown_name():
    with pytest.raises(ValueError, match="unknown trigger 'nope'; valid names: temporal"):
        trigger_info("nope")


@pytest.mark.parametrize("name", list(TRIGGERS))
def test_fit_validates_its_input(name):
    trig = make_trigger(name)
    with pytest.raises(ValueError, match="needs a Cohort, got ndarray"):
        trig.fit(np.zeros((4, 48, 3)))
    empty = random_cohort(physionet2012_schema(), n=3).subset(np.zeros(0, dtype=np.int64))
    with pytest.raises(ValueError, match=r"needs at least \d training stays, got 0"):
        trig.fit(empty)
    assert not trig.is_fitted


@pytest.mark.parametrize(
    ("name", "params", "bad"),
    [
        (
            "temporal",
            {"strength": 1e308},
            r"strength must be a positive number <= 1000 .*got 1e\+308",
        ),
        ("white-noise", {"strength": float("inf")}, "strength must be a positive number"),
        ("full-cov", {"strength": 0.0}, "strength must be a positive number"),
        ("temporal", {"strength": "big"}, "strength must be a positive number"),
        ("temporal", {"variables": "HR"}, "variables must be a list"),
        ("temporal", {"seed": -1}, "seed must be >= 0"),
        ("missing-vae", {"seed": 1.5}, "seed must be an integer"),
        ("missing-random", {"density": 1.0}, "density must be < 1"),
        ("missing-block", {"hours": 0}, "hours must be >= 1"),
        ("missing-vae", {"n_candidates": 1}, "n_candidates must be >= 2"),
        ("fixed", {"quantile": 2}, "quantile must be <= 1"),
        ("fixed", {"variable": 3}, "variable must be a variable name"),
    ],
)
def test_trigger_parameters_are_checked_up_front(name, params, bad):
    with pytest.raises(ValueError, match=bad):
        make_trigger(name, **params)


def test_apply_mode_rejected_before_any_fitting(cohort, monkeypatch):
    threat = ThreatModel(rate=0.1, apply="exact")  # a missingness mode
    with pytest.raises(
        ValueError, match=r"trigger 'temporal' \(value family\) accepts apply modes"
    ):
        threat.check_trigger("temporal")
    with pytest.raises(ValueError, match="missingness triggers accept apply modes"):
        ThreatModel(apply="all").check_trigger("missing-real")
    threat.check_trigger("missing-vae")  # accepted: no error

    trig = make_trigger("temporal")
    calls = []
    monkeypatch.setattr(type(trig), "apply", lambda *a, **k: calls.append(a))
    trig.fitted_ = True  # even a fitted trigger is never applied with a mode it rejects
    with pytest.raises(ValueError, match="accepts apply modes"):
        poison(cohort, trig, threat)
    with pytest.raises(ValueError, match="accepts apply modes"):
        attack_test(cohort, trig, threat)
    assert calls == []
    with pytest.raises(ValueError, match="apply must be one of"):
        ThreatModel(apply="sideways")


def test_registry_register_and_duplicates():
    reg: Registry = Registry("trigger")
    cls = TRIGGERS["temporal"]
    assert reg.register(cls) is cls and list(reg) == ["temporal"]
    reg.register(cls)  # registering the same class again is harmless
    with pytest.raises(ValueError, match="already registered"):
        reg.register(TRIGGERS["white-noise"], name="temporal")


def test_old_import_paths_still_work():
    from ehrbackdoor.attacks.triggers.missing import MISSING_APPLY_MODES, MissingTrigger
    from ehrbackdoor.attacks.triggers.missing_base import MissingTrigger as Base
    from ehrbackdoor.defences._features import feature_matrix
    from ehrbackdoor.defences.features import feature_matrix as public

    assert MissingTrigger is Base and feature_matrix is public
    assert MISSING_APPLY_MODES == ("delete", "exact")
