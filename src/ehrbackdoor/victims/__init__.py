"""Victim models of in-hospital mortality: one interface for every model an attack targets.

``VICTIMS`` maps a name to its class; `make_victim(name, seed=0, **params)` builds one with the
tuned defaults (PhysioNet 2012); `load_victim(dir)` restores a saved one (JSON + safetensors, no
pickle). See `ehrbackdoor.victims.base.Victim` for the interface:

    victim = make_victim("gru", seed=0).fit(train, val, progress=None)
    p = victim.predict_proba(test)          # (n,) P(death)
    z = victim.embed(test)                  # (n, d) penultimate representation
    victim.threshold_                       # max-F1 threshold on clean validation stays
    victim.save("runs/gru"); load_victim("runs/gru")

Presets and protocols (a faithful reproduction of Joe et al. 2021): ``make_victim("mlp",
preset="paper")`` builds the paper's network (`ehrbackdoor.victims.presets`), and
``fit(train, val, selection=paper_selection(val, trigger, threat))`` selects it the paper's way
(threshold 0.5, epoch by attack success; `ehrbackdoor.victims.protocol`,
`ehrbackdoor.attacks.protocol`).

=======  ============================================================================
name     model
=======  ============================================================================
lr       logistic regression on standardised window features (scikit-learn lbfgs)
mlp      1-2 hidden-layer perceptron on the same features (PyTorch)
lstm     LSTM on the hourly grid: standardised values + masks (+ static covariates)
gru      GRU on the same inputs
grud     GRU-D: learned input and hidden-state decay from masks and time since last obs.
gbdt     scikit-learn HistGradientBoostingClassifier on window features with NaN
=======  ============================================================================
"""

from __future__ import annotations

from typing import Any

from ehrbackdoor.base import Registry
from ehrbackdoor.victims.base import NotFittedError, Victim, load_victim
from ehrbackdoor.victims.gbdt import GBDTVictim
from ehrbackdoor.victims.grud import GRUDVictim
from ehrbackdoor.victims.lr import LogisticVictim
from ehrbackdoor.victims.mlp import MLPVictim
from ehrbackdoor.victims.presets import PRESET_NAMES, preset_params
from ehrbackdoor.victims.protocol import PROTOCOLS, Selection
from ehrbackdoor.victims.recurrent import GRUVictim, LSTMVictim

VICTIMS: Registry[Victim] = Registry(
    "victim",
    (LogisticVictim, MLPVictim, LSTMVictim, GRUVictim, GRUDVictim, GBDTVictim),
)


def make_victim(name: str, seed: int = 0, preset: str = "tuned", **params: Any) -> Victim:
    """A new (unfitted) victim `name` with the given seed and hyperparameters.

    `preset` names the starting hyperparameters (`ehrbackdoor.victims.presets`: "tuned" = the
    constructor defaults, "paper" = Joe et al. 2021); `params` override them. Unknown names or
    parameters raise ValueError listing the valid ones.
    """
    return VICTIMS.make(name, seed=seed, **{**preset_params(preset, name), **params})


__all__ = [
    "PRESET_NAMES",
    "PROTOCOLS",
    "VICTIMS",
    "GBDTVictim",
    "GRUDVictim",
    "GRUVictim",
    "LSTMVictim",
    "LogisticVictim",
    "MLPVictim",
    "NotFittedError",
    "Selection",
    "Victim",
    "load_victim",
    "make_victim",
    "preset_params",
]
