"""`lstm` and `gru`: recurrent networks on the T-step hourly grid with observation masks.

T is the number of hourly bins of the training cohort's window (48 at 48 h, 24 at 24 h).

Input at each hour: the standardised values of the F variables (previous-value imputation, normal
value before the first observation; `GridScaler` statistics over observed training cells; 0 for a
variable never observed in training) and the F observation masks, i.e. 2F features per step; with
``use_delta`` also the hours since each variable's last observation divided by the window's
hours (3F features).

Static covariates (``use_static``; PhysioNet: age, gender, height, ICU type, weight; train-mean
imputed and standardised, ICU type one-hot, see `inputs.StaticInputs`) are concatenated to the
last hidden state before the output layer and, with ``static_per_step``, also to every step's
input, so the recurrent layer can condition on them. The last hidden state (+ static) goes through
dropout and a linear output; ``embed`` returns that concatenation (the output layer's input).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.preprocess import Grid, GridScaler
from ehrbackdoor.victims.base import check_bool, check_choice, check_int
from ehrbackdoor.victims.inputs import (
    StaticInputs,
    grid_of,
    scaler_state_from_json,
    scaler_state_to_json,
)
from ehrbackdoor.victims.torch_base import (
    TorchVictim,
    check_class_weight,
    check_head_classes,
    two_class_logit,
)


class RecurrentNet(nn.Module):
    """Recurrent layer(s), last step's output (+ static), then a linear head.

    With ``head_hidden`` (the paper's LSTM: 32 -> 10 -> 2) the head is Linear -> Dropout -> ReLU
    -> Linear, and ``embed`` is the ReLU output; ``bidirectional`` doubles the output width (the
    last step's output then holds the backward direction's first step, as in the paper).
    """

    def __init__(
        self,
        cell: str,
        n_in: int,
        n_static: int,
        hidden: int,
        layers: int,
        dropout: float,
        bidirectional: bool = False,
        head_hidden: int | None = None,
        head_classes: int = 1,
    ) -> None:
        super().__init__()
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        between = dropout if layers > 1 else 0.0
        kw = {"bidirectional": True} if bidirectional else {}
        self.rnn = rnn(n_in, hidden, num_layers=layers, batch_first=True, dropout=between, **kw)
        self.drop = nn.Dropout(dropout)
        width = hidden * (2 if bidirectional else 1) + n_static
        self.fc = nn.Linear(width, head_hidden) if head_hidden else None
        self.head = nn.Linear(head_hidden or width, head_classes)

    def _last(self, x: torch.Tensor, static: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return torch.cat([out[:, -1, :], static], dim=1)

    def embed(self, x: torch.Tensor, static: torch.Tensor) -> torch.Tensor:
        last = self._last(x, static)
        return last if self.fc is None else torch.relu(self.fc(last))

    def forward(self, x: torch.Tensor, static: torch.Tensor) -> torch.Tensor:
        last = self._last(x, static)
        if self.fc is None:
            return two_class_logit(self.head(self.drop(last)))
        return two_class_logit(self.head(torch.relu(self.drop(self.fc(last)))))


class GridVictim(TorchVictim):
    """Shared preprocessing of the grid victims: scaled grid values, masks, static covariates."""

    #: Input representation, for results (window-feature victims report ``events``/``hourly``).
    representation = "grid"

    def _fit_grid(self, train: Cohort) -> Grid:
        grid = grid_of(train, self.cache)
        self.grid_scaler_ = GridScaler().fit(grid)
        self.static_ = StaticInputs(self.use_static).fit(train)
        self.n_vars_ = grid.mask.shape[-1]
        # Value columns of variables never observed in training: GridScaler leaves them unscaled
        # (mean 0, std 1), so their imputed normal values (e.g. 208 platelets) would reach the
        # network raw. They carry no information learnable from training; we zero them.
        observed = grid.mask.reshape(-1, self.n_vars_).any(axis=0)
        self.dead_columns_ = np.flatnonzero(~observed[grid.column_variable])
        return grid

    def _scaled_grid(self, cohort: Cohort) -> Grid:
        grid = grid_of(cohort, self.cache)
        if grid.mask.shape[-1] != self.n_vars_:
            raise ValueError(
                f"cohort has {grid.mask.shape[-1]} variables, the victim was fitted on "
                f"{self.n_vars_}"
            )
        grid = self.grid_scaler_.transform(grid)
        if len(self.dead_columns_):
            values = grid.values.copy()
            values[:, :, self.dead_columns_] = 0.0
            grid = grid.with_values(values)
        return grid

    def _grid_state(self) -> dict:
        return {
            "grid": scaler_state_to_json(self.grid_scaler_.get_state()),
            "static": self.static_.get_state(),
            "n_vars": self.n_vars_,
            "dead_columns": self.dead_columns_.tolist(),
        }

    def _set_grid_state(self, state: dict) -> None:
        self.grid_scaler_ = GridScaler.from_state(scaler_state_from_json(state["grid"]))
        self.static_ = StaticInputs.from_state(self.use_static, state["static"])
        self.n_vars_ = int(state["n_vars"])
        self.dead_columns_ = np.asarray(state["dead_columns"], dtype=np.int64)

    def _inputs_state(self) -> dict:
        return self._grid_state()

    def _set_inputs_state(self, state: dict) -> None:
        self._set_grid_state(state)


class RecurrentVictim(GridVictim):
    """LSTM or GRU on the hourly grid (see module docstring).

    Parameters: ``hidden`` (units), ``layers`` (stacked recurrent layers), ``dropout`` (before the
    output layer, and between stacked layers), ``lr`` (Adam), ``weight_decay`` (L2),
    ``batch_size``, ``max_epochs``, ``patience`` (epochs without a better validation AUPRC),
    ``grad_clip`` (max gradient norm, None = off), ``ema`` (decay of the weight moving average
    that is evaluated and kept, None = off), ``use_static``, ``use_delta``, ``static_per_step``
    (module docstring), ``cache`` (preprocessing cache), ``seed``; ``bidirectional``,
    ``head_hidden`` (None: linear head; an int: Linear -> ReLU -> Linear head), ``head_classes``
    (1 logit or a 2-class softmax) and ``class_weight`` ([w0, w1] weighted-mean loss) express the
    paper's LSTM (`ehrbackdoor.victims.presets`).
    """

    cell = "gru"

    def __init__(
        self,
        hidden: int = 64,
        layers: int = 1,
        dropout: float = 0.3,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 128,
        max_epochs: int = 30,
        patience: int = 5,
        grad_clip: float | None = 1.0,
        ema: float | None = 0.99,
        use_static: bool = True,
        use_delta: bool = False,
        static_per_step: bool = True,
        cache: bool = True,
        seed: int = 0,
        bidirectional: bool = False,
        head_hidden: int | None = None,
        head_classes: int = 1,
        class_weight: list[float] | None = None,
        device: str = "auto",
    ) -> None:
        self._store_params(locals())
        check_bool("bidirectional", bidirectional)
        if head_hidden is not None:
            check_int("head_hidden", head_hidden, 1)
        check_head_classes(head_classes)
        check_class_weight(class_weight)
        check_int("hidden", hidden, 1)
        check_int("layers", layers, 1, 4)
        check_choice("cell", self.cell, ("lstm", "gru"))
        check_bool("use_delta", use_delta)
        check_bool("static_per_step", static_per_step)
        self._check_common()

    def _fit_inputs(self, train: Cohort) -> None:
        self._fit_grid(train)
        n_in = (3 if self.use_delta else 2) * self.n_vars_
        if self.static_per_step:
            n_in += self.static_.width
        self.arch_ = {
            "n_in": n_in,
            "n_static": self.static_.width,
            "hidden": int(self.hidden),
            "layers": int(self.layers),
        }

    def _inputs(self, cohort: Cohort) -> list[np.ndarray]:
        grid = self._scaled_grid(cohort)
        parts = [grid.values, grid.mask]
        if self.use_delta:
            parts.append(grid.delta / np.float32(grid.hours))
        static = self.static_.transform(cohort)
        if self.static_per_step:
            shape = (*grid.mask.shape[:2], static.shape[1])
            parts.append(np.broadcast_to(static[:, None, :], shape))
        return [np.concatenate(parts, axis=-1), static]

    def _build(self) -> nn.Module:
        a = self.arch_
        return RecurrentNet(
            self.cell,
            a["n_in"],
            a["n_static"],
            a["hidden"],
            a["layers"],
            self.dropout,
            self.bidirectional,
            self.head_hidden,
            self.head_classes,
        )


class LSTMVictim(RecurrentVictim):
    __doc__ = RecurrentVictim.__doc__
    name = "lstm"
    cell = "lstm"


class GRUVictim(RecurrentVictim):
    __doc__ = RecurrentVictim.__doc__
    name = "gru"
    cell = "gru"
