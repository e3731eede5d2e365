"""Victim presets: the paper's architectures are built as stated, the tuned ones are the defaults."""

from __future__ import annotations

import numpy as np
import pytest
from torch import nn

from ehrbackdoor.victims import VICTIMS, load_victim, make_victim, preset_params
from tests.victims.conftest import make_cohort


@pytest.fixture(scope="module")
def data():
    return make_cohort(160, 0), make_cohort(80, 1, "v")


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_tuned_is_the_constructor_defaults():
    for name, cls in VICTIMS.items():
        assert preset_params("tuned", name) == {}
        assert make_victim(name, preset="tuned").get_params() == cls().get_params()


def test_unknown_preset_and_overrides():
    with pytest.raises(ValueError, match="unknown victim preset"):
        preset_params("best", "mlp")
    v = make_victim("mlp", preset="paper", max_epochs=3)
    assert v.max_epochs == 3 and v.hidden == [400] and v.lr == 1e-4
    preset_params("paper", "mlp")["hidden"].append(1)  # a copy: the registry is untouched
    assert preset_params("paper", "mlp")["hidden"] == [400]


def test_paper_mlp_is_features_400_2(data):
    train, val = data
    v = make_victim("mlp", preset="paper", max_epochs=1).fit(train, val)
    n_in = v.arch_["n_in"]
    assert n_in == len(v.scaler_.mean_)  # window statistics only, no static covariates
    assert v.features == "hourly"
    linears = [m for m in v.model_.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(n_in, 400), (400, 2)]
    assert _n_params(v.model_) == n_in * 400 + 400 + 400 * 2 + 2
    assert any(isinstance(m, nn.ReLU) for m in v.model_.modules())
    assert v.embed(val).shape == (val.n_stays, 400)
    assert (v.batch_size, v.weight_decay, v.class_weight, v.ema) == (64, 1e-2, [0.5, 1.0], None)


def test_paper_lr_is_one_linear_layer(data, tmp_path):
    train, val = data
    v = make_victim("lr", preset="paper", max_epochs=2).fit(train, val)
    n_in = len(v.scaler_.mean_)
    assert v.coef_.shape == (n_in,) and v.C_ is None
    assert v.fit_info_["epochs_run"] == 2
    loaded = load_victim(v.save(tmp_path / "lr"))
    np.testing.assert_array_equal(loaded.predict_proba(val), v.predict_proba(val))


def test_paper_lstm_architecture(data):
    train, val = data
    v = make_victim("lstm", preset="paper", max_epochs=1).fit(train, val)
    m = v.model_
    n_in = v.arch_["n_in"]
    assert n_in == 2 * v.n_vars_  # values + masks, no static covariates, no deltas
    assert isinstance(m.rnn, nn.LSTM) and m.rnn.bidirectional and m.rnn.num_layers == 2
    assert m.rnn.hidden_size == 16 and m.rnn.dropout == 0.3 and m.drop.p == 0.3
    assert (m.fc.in_features, m.fc.out_features) == (32, 10)
    assert (m.head.in_features, m.head.out_features) == (10, 2)
    h = 16
    lstm = 2 * (4 * h * (n_in + h) + 8 * h) + 2 * (4 * h * (2 * h + h) + 8 * h)
    assert _n_params(m) == lstm + (32 * 10 + 10) + (10 * 2 + 2)
    assert v.embed(val).shape == (val.n_stays, 10)
    assert v.class_weight == [0.3, 1.0] and preset_params("paper", "lstm")["max_epochs"] == 100


def test_new_parameters_are_validated():
    with pytest.raises(ValueError, match="head_classes"):
        make_victim("mlp", head_classes=3)
    with pytest.raises(ValueError, match="class_weight"):
        make_victim("gru", class_weight=[1.0])
    with pytest.raises(ValueError, match="solver"):
        make_victim("lr", solver="sgd")
