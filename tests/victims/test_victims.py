"""Every victim learns a planted signal, round-trips save/load, is deterministic, fails clearly."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from ehrbackdoor.metrics import auroc, choose_threshold
from ehrbackdoor.victims import (
    VICTIMS,
    LSTMVictim,
    NotFittedError,
    Victim,
    load_victim,
    make_victim,
)

from .conftest import FAST, make_cohort

NAMES = list(VICTIMS)
TORCH = ["mlp", "lstm", "gru", "grud"]


@pytest.fixture(scope="module")
def fitted(tiny) -> dict[str, Victim]:
    """One fit per victim on the tiny cohorts, shared by the tests below."""
    out = {}
    for name in NAMES:
        calls: list[tuple[int, float]] = []
        v = make_victim(name, seed=0, **FAST[name])
        v.fit(tiny["train"], tiny["val"], progress=lambda e, s, c=calls: c.append((e, s)))
        v.progress_calls = calls  # for test_progress
        out[name] = v
    return out


def test_registry_names():
    assert set(VICTIMS) == {"lr", "mlp", "lstm", "gru", "grud", "gbdt"}
    for name, cls in VICTIMS.items():
        assert cls.name == name


def test_unknown_victim_lists_valid_names():
    with pytest.raises(ValueError, match="unknown victim 'svm'.*lr, mlp, lstm, gru, grud, gbdt"):
        make_victim("svm")


def test_unknown_parameter_is_named():
    with pytest.raises(ValueError, match="unknown parameter.*'hiden'"):
        make_victim("gru", hiden=3)


@pytest.mark.parametrize(
    ("name", "params", "bad"),
    [
        ("gru", {"hidden": 0}, "hidden"),
        ("lstm", {"dropout": 1.5}, "dropout"),
        ("grud", {"lr": -1.0}, "lr"),
        ("mlp", {"hidden": [8, 8, 8]}, "hidden"),
        ("mlp", {"batch_size": 0}, "batch_size"),
        ("lr", {"C": 0.0}, "C"),
        ("lr", {"C": []}, "C"),
        ("gbdt", {"max_features": 0.0}, "max_features"),
        ("gbdt", {"class_weight": "auto"}, "class_weight"),
        ("gru", {"use_static": "yes"}, "use_static"),
        ("gru", {"seed": -1}, "seed"),
    ],
)
def test_bad_parameters_are_named(name, params, bad):
    with pytest.raises(ValueError, match=bad):
        make_victim(name, **params)


def test_constructor_does_no_work():
    v = make_victim("grud", hidden=7)
    assert v.get_params()["hidden"] == 7
    assert not hasattr(v, "threshold_") and not hasattr(v, "model_")
    with pytest.raises(NotFittedError, match="not fitted"):
        v.predict_proba(make_cohort(5))


@pytest.mark.parametrize("name", NAMES)
def test_learns_planted_signal(fitted, tiny, name):
    v = fitted[name]
    p = v.predict_proba(tiny["test"])
    assert p.shape == (tiny["test"].n_stays,) and p.dtype == np.float64
    assert np.all((p >= 0) & (p <= 1))
    assert auroc(tiny["test"].label, p) > 0.9, name


@pytest.mark.parametrize("name", NAMES)
def test_threshold_is_max_f1_on_val(fitted, tiny, name):
    v = fitted[name]
    expected = choose_threshold(tiny["val"].label, v.predict_proba(tiny["val"]), rule="max_f1")
    assert v.threshold_ == expected
    pred = v.predict(tiny["test"])
    assert np.array_equal(pred, (v.predict_proba(tiny["test"]) >= v.threshold_).astype(np.int8))


@pytest.mark.parametrize("name", NAMES)
def test_embed_shape(fitted, tiny, name):
    z = fitted[name].embed(tiny["test"])
    assert z.ndim == 2 and z.shape[0] == tiny["test"].n_stays and z.shape[1] > 0
    assert np.isfinite(z).all()


def test_progress_reports_epochs_and_val_auprc(fitted):
    for name, v in fitted.items():
        calls = v.progress_calls
        assert calls, name
        assert [e for e, _ in calls] == list(range(1, len(calls) + 1))
        assert all(0.0 <= s <= 1.0 for _, s in calls)
    assert len(fitted["lr"].progress_calls) == len(FAST["lr"]["C"])


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip(fitted, tiny, tmp_path, name):
    v = fitted[name]
    v.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["victim.json", "weights.safetensors"]
    config = json.loads((tmp_path / "victim.json").read_text())
    assert config["name"] == name
    assert config["threshold"] == v.threshold_
    assert config["params"] == json.loads(json.dumps(v.get_params()))
    assert {"torch", "numpy", "scikit-learn", "ehrbackdoor"} <= set(config["versions"])
    raw = (tmp_path / "weights.safetensors").read_bytes()
    header_len = int.from_bytes(raw[:8], "little")  # safetensors: u64 header size + JSON header
    assert isinstance(json.loads(raw[8 : 8 + header_len]), dict)

    loaded = load_victim(tmp_path)
    assert type(loaded) is type(v)
    assert loaded.threshold_ == v.threshold_
    assert loaded.get_params() == v.get_params()
    for part in ("test", "val"):
        assert np.array_equal(loaded.predict_proba(tiny[part]), v.predict_proba(tiny[part]))
        assert np.array_equal(loaded.embed(tiny[part]), v.embed(tiny[part]))


def test_class_load_checks_the_kind(fitted, tmp_path):
    fitted["gru"].save(tmp_path)
    assert type(VICTIMS["gru"].load(tmp_path)) is VICTIMS["gru"]
    assert type(Victim.load(tmp_path)) is VICTIMS["gru"]
    with pytest.raises(ValueError, match="holds a 'gru' victim"):
        LSTMVictim.load(tmp_path)


def test_load_rejects_unknown_name_and_missing_files(fitted, tmp_path):
    with pytest.raises(FileNotFoundError, match="victim.json"):
        load_victim(tmp_path / "nowhere")
    fitted["lr"].save(tmp_path)
    cfg = json.loads((tmp_path / "victim.json").read_text())
    cfg["name"] = "pickle_bomb"
    (tmp_path / "victim.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="unknown victim 'pickle_bomb'"):
        load_victim(tmp_path)


def test_load_rejects_mismatched_weights(fitted, tmp_path):
    fitted["gru"].save(tmp_path / "gru")
    fitted["lstm"].save(tmp_path / "lstm")
    (tmp_path / "gru" / "weights.safetensors").write_bytes(
        (tmp_path / "lstm" / "weights.safetensors").read_bytes()
    )
    with pytest.raises((ValueError, RuntimeError)):
        load_victim(tmp_path / "gru")


@pytest.mark.parametrize("name", TORCH)
def test_same_seed_is_bit_identical_other_seed_differs(fitted, tiny, name):
    params = {**FAST[name], "max_epochs": 3}
    a = make_victim(name, seed=0, **params).fit(tiny["train"], tiny["val"])
    b = make_victim(name, seed=0, **params).fit(tiny["train"], tiny["val"])
    c = make_victim(name, seed=1, **params).fit(tiny["train"], tiny["val"])
    pa, pb, pc = (v.predict_proba(tiny["test"]) for v in (a, b, c))
    assert np.array_equal(pa, pb)
    assert np.array_equal(a.embed(tiny["test"]), b.embed(tiny["test"]))
    assert not np.array_equal(pa, pc)


@pytest.mark.parametrize("name", ["lr", "gbdt"])
def test_non_torch_victims_are_deterministic(fitted, tiny, name):
    again = make_victim(name, seed=0, **FAST[name]).fit(tiny["train"], tiny["val"])
    expected = fitted[name].predict_proba(tiny["test"])
    assert np.array_equal(again.predict_proba(tiny["test"]), expected)


def test_fit_leaves_global_torch_state_alone(tiny):
    import torch

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    threads = torch.get_num_threads()
    make_victim("mlp", **{**FAST["mlp"], "max_epochs": 1}).fit(tiny["train"], tiny["val"])
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads


# ------------------------------------------------------------------------------ bad inputs
@pytest.mark.parametrize("name", ["lr", "gru"])
def test_empty_cohort(tiny, name):
    v = make_victim(name, **FAST[name])
    empty = tiny["train"].subset(np.array([], dtype=np.int64))
    with pytest.raises(ValueError, match="train cohort is empty"):
        v.fit(empty, tiny["val"])
    with pytest.raises(ValueError, match="val cohort is empty"):
        v.fit(tiny["train"], empty)


def test_empty_cohort_at_predict(fitted, tiny):
    empty = tiny["test"].subset(np.array([], dtype=np.int64))
    with pytest.raises(ValueError, match="input cohort is empty"):
        fitted["lr"].predict_proba(empty)


@pytest.mark.parametrize("name", NAMES)
def test_single_class_training_labels(tiny, name):
    train = tiny["train"]
    survivors = train.subset(np.flatnonzero(train.label == 0))
    with pytest.raises(ValueError, match="train cohort has a single class"):
        make_victim(name, **FAST[name]).fit(survivors, tiny["val"])


def test_single_class_validation_labels(tiny):
    val = tiny["val"]
    deaths = val.subset(np.flatnonzero(val.label == 1))
    with pytest.raises(ValueError, match="val cohort has a single class"):
        make_victim("lr").fit(tiny["train"], deaths)


def test_nan_labels(tiny):
    train = tiny["train"]
    label = train.label.astype(float)
    label[3] = np.nan
    with pytest.raises(ValueError, match="train cohort has 1 NaN labels"):
        make_victim("lr").fit(replace(train, label=label), tiny["val"])


def test_labels_other_than_0_1(tiny):
    train = tiny["train"]
    label = train.label.copy()
    label[0] = 2
    with pytest.raises(ValueError, match="must be 0 or 1"):
        make_victim("gbdt").fit(replace(train, label=label), tiny["val"])


def test_not_a_cohort(tiny):
    with pytest.raises(ValueError, match="train must be a Cohort"):
        make_victim("lr").fit(np.zeros((3, 3)), tiny["val"])


def test_bad_progress(tiny):
    with pytest.raises(ValueError, match="progress must be callable"):
        make_victim("lr").fit(tiny["train"], tiny["val"], progress=3)
