"""`mlp`: a feed-forward network on the standardised window features.

Input: the benchmark's window features (train-mean imputed, standardised with `FeatureScaler`),
optionally followed by the standardised static covariates. One or two hidden layers
(Linear -> ReLU -> Dropout), then a linear output. ``embed`` returns the last hidden layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ehrbackdoor.checks import check_choice
from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.victims.inputs import FEATURE_REPRESENTATIONS, StandardisedFeatures
from ehrbackdoor.victims.torch_base import (
    TorchVictim,
    check_class_weight,
    check_head_classes,
    two_class_logit,
)


class MLPNet(nn.Module):
    def __init__(
        self, n_in: int, hidden: Sequence[int], dropout: float, head_classes: int = 1
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_in
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, head_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return two_class_logit(self.head(self.body(x)))


def check_hidden(name: str, hidden: object, max_layers: int = 2) -> None:
    if isinstance(hidden, int | np.integer) and not isinstance(hidden, bool):
        hidden = [hidden]
    if not isinstance(hidden, list | tuple) or not 1 <= len(hidden) <= max_layers:
        raise ValueError(
            f"{name} must be 1 to {max_layers} positive layer widths (an int or a list), "
            f"got {hidden!r}"
        )
    for h in hidden:
        if isinstance(h, bool) or not isinstance(h, int | np.integer) or h < 1:
            raise ValueError(f"{name} must hold positive integers, got {hidden!r}")


def as_layers(hidden: int | Sequence[int]) -> list[int]:
    return [int(hidden)] if isinstance(hidden, int | np.integer) else [int(h) for h in hidden]


class MLPVictim(StandardisedFeatures, TorchVictim):
    """Multi-layer perceptron on window features (see module docstring).

    Parameters: ``hidden`` (int or list of 1-2 widths), ``dropout``, ``lr`` (Adam),
    ``weight_decay`` (L2), ``batch_size``, ``max_epochs``, ``patience`` (epochs without a better
    validation AUPRC before stopping), ``grad_clip`` (None = off), ``ema`` (decay of the weight
    moving average that is evaluated and kept, None = off), ``use_static`` (append the static
    covariates), ``cache``, ``features`` (``events`` or ``hourly`` window statistics,
    `inputs.FEATURE_REPRESENTATIONS`) (use the preprocessing cache), ``seed``; ``head_classes``
    (1: one logit; 2: a 2-class softmax head as in the paper) and ``class_weight`` (None:
    ``pos_weight`` loss; [w0, w1]: class-weighted mean loss as in the paper).
    """

    name = "mlp"

    @property
    def representation(self) -> str:
        """Input representation (``events`` or ``hourly`` window statistics), for results."""
        return self.features

    def __init__(
        self,
        hidden: int | Sequence[int] = (64,),
        dropout: float = 0.5,
        lr: float = 3e-4,
        weight_decay: float = 1e-3,
        batch_size: int = 128,
        max_epochs: int = 40,
        patience: int = 6,
        grad_clip: float | None = None,
        ema: float | None = 0.99,
        use_static: bool = True,
        cache: bool = True,
        features: str = "events",
        seed: int = 0,
        head_classes: int = 1,
        class_weight: Sequence[float] | None = None,
        device: str = "auto",
    ) -> None:
        self._store_params(locals())
        self.features = check_choice("features", features, FEATURE_REPRESENTATIONS)
        check_head_classes(head_classes)
        check_class_weight(class_weight)
        check_hidden("hidden", hidden)
        self._check_common()

    def _fit_inputs(self, train: Cohort) -> None:
        self._fit_features(train)
        n_in = len(self.scaler_.mean_) + self.static_.width  # type: ignore[arg-type]
        self.arch_ = {"n_in": n_in, "hidden": as_layers(self.hidden)}

    def _inputs(self, cohort: Cohort) -> list[np.ndarray]:
        return [self._X(cohort)]

    def _build(self) -> nn.Module:
        return MLPNet(self.arch_["n_in"], self.arch_["hidden"], self.dropout, self.head_classes)

    def _inputs_state(self) -> dict:
        return self._features_state()

    def _set_inputs_state(self, state: dict) -> None:
        self._set_features_state(state)
