"""`grud`: GRU-D (Che et al., "Recurrent neural networks for multivariate time series with missing
values", Scientific Reports 2018) on the T-step hourly grid of the cohort's window.

Per variable d and hour t, with mask m (1 = observed in the bin), delta the hours since the last
observation (`Grid.delta`), x the standardised observed value, x_last the last observed value
before t and x_mean the empirical mean of the observed training values (standardised):

    gamma_x = exp(-relu(w_x * delta + b_x))                    (diagonal: one w_x, b_x per variable)
    x_hat   = m * x + (1 - m) * (gamma_x * x_last + (1 - gamma_x) * x_mean)
    gamma_h = exp(-relu(W_h delta + b_h))                          (full: F -> hidden)
    h       = gamma_h * h_{t-1}
    r, z    = sigmoid(W_{r,z} [x_hat, m] + U_{r,z} h + b_{r,z})
    h~      = tanh(W [x_hat, m] + r * (U h) + b)                   (PyTorch's GRU placement of r)
    h_t     = (1 - z) * h~ + z * h

Before the first observation of a variable x_last is x_mean (so x_hat = x_mean there). Everything
not recurrent (decays, x_hat, the input projections of all T steps) is computed in one batched
operation; only the hidden-state update loops over the T hours, vectorised over the batch. The last
hidden state, concatenated with the standardised static covariates when ``use_static``, goes
through dropout and a linear output; ``embed`` returns that concatenation. With ``static_per_step``
the static covariates are also part of every step's input [x_hat, m, static].
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.victims.base import check_bool, check_int
from ehrbackdoor.victims.recurrent import GridVictim


class GRUDNet(nn.Module):
    def __init__(
        self, n_vars: int, n_static: int, hidden: int, dropout: float, static_per_step: bool
    ) -> None:
        super().__init__()
        self.hidden = hidden
        self.static_per_step = static_per_step
        self.register_buffer("x_mean", torch.zeros(n_vars))
        # Diagonal input decay; small positive initial rates (decay over tens of hours).
        self.w_x = nn.Parameter(torch.empty(n_vars).uniform_(0.0, 0.1))
        self.b_x = nn.Parameter(torch.zeros(n_vars))
        self.decay_h = nn.Linear(n_vars, hidden)
        n_step_static = n_static if static_per_step else 0
        self.input_proj = nn.Linear(2 * n_vars + n_step_static, 3 * hidden)
        self.hidden_proj = nn.Linear(hidden, 3 * hidden, bias=False)
        bound = 1.0 / math.sqrt(hidden)
        for p in (self.input_proj.weight, self.hidden_proj.weight, self.decay_h.weight):
            nn.init.uniform_(p, -bound, bound)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden + n_static, 1)

    def embed(
        self, x: torch.Tensor, m: torch.Tensor, delta: torch.Tensor, static: torch.Tensor
    ) -> torch.Tensor:
        ever = torch.cummax(m, dim=1).values  # observed at or before t
        x_mean = self.x_mean.view(1, 1, -1)
        x_last = torch.where(ever > 0, x, x_mean)  # grid values are forward-filled
        gamma_x = torch.exp(-torch.relu(self.w_x * delta + self.b_x))
        x_hat = m * x + (1 - m) * (gamma_x * x_last + (1 - gamma_x) * x_mean)
        gamma_h = torch.exp(-torch.relu(self.decay_h(delta)))  # (n, T, H)
        step_in = [x_hat, m]
        if self.static_per_step:
            step_in.append(static[:, None, :].expand(-1, x.shape[1], -1))
        gi = self.input_proj(torch.cat(step_in, dim=-1))  # (n, T, 3H)
        h = x.new_zeros(x.shape[0], self.hidden)
        H = self.hidden
        # unbind once: indexing gi[:, t] in the loop would make every step's backward allocate
        # and fill a gradient of the full (n, T, 3H) tensor.
        for g, decay in zip(gi.unbind(1), gamma_h.unbind(1), strict=True):
            h = decay * h
            gh = self.hidden_proj(h)
            r = torch.sigmoid(g[:, :H] + gh[:, :H])
            z = torch.sigmoid(g[:, H : 2 * H] + gh[:, H : 2 * H])
            n = torch.tanh(g[:, 2 * H :] + r * gh[:, 2 * H :])
            h = (1 - z) * n + z * h
        return torch.cat([h, static], dim=1)

    def forward(
        self, x: torch.Tensor, m: torch.Tensor, delta: torch.Tensor, static: torch.Tensor
    ) -> torch.Tensor:
        return self.head(self.drop(self.embed(x, m, delta, static))).squeeze(-1)


class GRUDVictim(GridVictim):
    """GRU-D on the hourly grid with masks and time since last observation (module docstring).

    Parameters: ``hidden``, ``dropout`` (before the output layer), ``lr``, ``weight_decay``,
    ``batch_size``, ``max_epochs``, ``patience``, ``grad_clip``, ``ema`` (decay of the weight
    moving average that is evaluated and kept, None = off), ``use_static``, ``static_per_step``
    (static covariates also in every step's input), ``cache``, ``seed``.
    """

    name = "grud"

    def __init__(
        self,
        hidden: int = 64,
        dropout: float = 0.3,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 128,
        max_epochs: int = 30,
        patience: int = 5,
        grad_clip: float | None = 1.0,
        ema: float | None = 0.99,
        use_static: bool = True,
        static_per_step: bool = True,
        cache: bool = True,
        seed: int = 0,
        device: str = "auto",
    ) -> None:
        self._store_params(locals())
        check_int("hidden", hidden, 1)
        check_bool("static_per_step", static_per_step)
        self._check_common()

    def _fit_inputs(self, train: Cohort) -> None:
        grid = self._scaled_grid_fit(train)
        obs = grid.mask > 0
        count = obs.sum(axis=(0, 1))
        total = np.where(obs, grid.values, 0.0).sum(axis=(0, 1), dtype=np.float64)
        self.x_mean_ = np.divide(total, count, out=np.zeros(len(count)), where=count > 0)
        self.arch_ = {
            "n_vars": int(self.n_vars_),
            "n_static": self.static_.width,
            "hidden": int(self.hidden),
            "static_per_step": bool(self.static_per_step),
        }

    def _scaled_grid_fit(self, train: Cohort):
        self._fit_grid(train)
        return self._scaled_grid(train)

    def _inputs(self, cohort: Cohort) -> list[np.ndarray]:
        grid = self._scaled_grid(cohort)
        return [grid.values, grid.mask, grid.delta, self.static_.transform(cohort)]

    def _build(self) -> nn.Module:
        a = self.arch_
        net = GRUDNet(a["n_vars"], a["n_static"], a["hidden"], self.dropout, a["static_per_step"])
        if hasattr(self, "x_mean_"):
            net.x_mean.copy_(torch.as_tensor(self.x_mean_, dtype=torch.float32))
        return net

    def _set_inputs_state(self, state: dict) -> None:
        # x_mean is restored with the weights (a buffer of the network).
        self._set_grid_state(state)
