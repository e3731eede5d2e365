"""Named hyperparameter presets of the victims: the project's tuned defaults and the paper's.

``tuned``
    Every victim's constructor defaults (tuned on PhysioNet 2012; see each victim's docstring).

``paper``
    The victims of Joe et al. (2021) as their code builds them (github
    byunggilljoe/mimic3_td_backdoor, ``model_torch.py`` and the ``poisoning_train_raw_*``
    scripts): Adam lr 1e-4, weight decay 1e-2, batch 64, a 2-class softmax head, class-weighted
    loss, no early stopping, no weight averaging, no gradient clipping, no static covariates:

    * ``lr``: one linear layer on the window statistics of the hourly forward-filled series
      (``features="hourly"``; 714 in MIMIC-III, here whatever the cohort's schema gives, 42 per
      variable), class weights [0.5, 1], 50 epochs;
    * ``mlp``: the same features -> 400 -> 2 with ReLU (no dropout), class weights [0.5, 1],
      50 epochs;
    * ``lstm``: 2-layer bidirectional LSTM, hidden 16, dropout 0.3 (between the layers and after
      the 32 -> 10 layer), last step's output 32 -> 10 -> ReLU -> 2, class weights [0.3, 1],
      100 epochs, on the grid's values and masks;
    * ``gru`` (not in the paper): the LSTM's settings with a GRU cell;
    * ``grud``, ``gbdt`` (not in the paper): their tuned defaults.

    Pair it with the paper protocol (`ehrbackdoor.victims.protocol`) for a faithful reproduction;
    ``patience`` equals ``max_epochs``, so under the honest protocol the same epochs are trained
    and the best clean-validation AUPRC epoch is kept.

`preset_params(preset, victim)` returns the constructor arguments; ``make_victim(name,
preset="paper", **overrides)`` builds one (overrides win).
"""

from __future__ import annotations

import copy
from typing import Any

_PAPER_OPTIM: dict[str, Any] = {"lr": 1e-4, "weight_decay": 1e-2, "batch_size": 64}
_PAPER_NET: dict[str, Any] = {
    **_PAPER_OPTIM,
    "grad_clip": None,
    "ema": None,
    "use_static": False,
    "head_classes": 2,
}
_PAPER_RECURRENT: dict[str, Any] = {
    **_PAPER_NET,
    "hidden": 16,
    "layers": 2,
    "bidirectional": True,
    "dropout": 0.3,
    "head_hidden": 10,
    "class_weight": [0.3, 1.0],
    "max_epochs": 100,
    "patience": 100,
    "use_delta": False,
    "static_per_step": False,
}

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "tuned": {},
    "paper": {
        "lr": {
            **_PAPER_OPTIM,
            "solver": "adam",
            "features": "hourly",
            "max_epochs": 50,
            "head_classes": 2,
            "class_weight": [0.5, 1.0],
            "use_static": False,
        },
        "mlp": {
            **_PAPER_NET,
            "hidden": [400],
            "features": "hourly",
            "dropout": 0.0,
            "class_weight": [0.5, 1.0],
            "max_epochs": 50,
            "patience": 50,
        },
        "lstm": _PAPER_RECURRENT,
        "gru": _PAPER_RECURRENT,
    },
}

#: Names accepted by `preset_params` (and ``make_victim(preset=...)``).
PRESET_NAMES = tuple(PRESETS)


def preset_params(preset: str, victim: str) -> dict[str, Any]:
    """Constructor arguments of `victim` under `preset` (a fresh copy; {} = the defaults)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown victim preset {preset!r}; valid: {', '.join(PRESET_NAMES)}")
    return copy.deepcopy(PRESETS[preset].get(victim, {}))


__all__ = ["PRESETS", "PRESET_NAMES", "preset_params"]
