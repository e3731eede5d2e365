"""Common machinery of the PyTorch victims: seeded build + train, batched inference, persistence.

A subclass says how to fit its preprocessing (`_fit_inputs`), how to turn a cohort into input
arrays (`_inputs`), how to build its network (`_build`, from the JSON-able ``arch_`` dict) and how
to save/restore its preprocessing (`_inputs_state` / `_set_inputs_state`).  Weights are the
network's state dict in safetensors; the architecture is rebuilt from victim.json, so loading runs
no code from the files.

``device`` (every torch victim's parameter): ``"auto"`` (default) trains on CUDA when PyTorch sees
a GPU, else on the CPU, so CPU-only machines give the same results as before the option existed;
``"cpu"`` pins the CPU (bit-for-bit reproducible across machines); ``"cuda"`` requires a GPU and
fails clearly without one. Inference runs where the model was trained; a loaded victim runs on
the CPU.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import numpy as np
import torch
from torch import nn

from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.victims._persist import ModelFileError, check_shapes
from ehrbackdoor.victims.base import ProgressFn, Victim, check_bool, check_float, check_int
from ehrbackdoor.victims.protocol import HONEST
from ehrbackdoor.victims.training import (
    EpochSelector,
    TrainConfig,
    check_device,
    fit_summary,
    make_selector,
    predict_logits,
    resolve_device,
    sigmoid,
    to_tensors,
    torch_session,
    train_model,
)


def check_class_weight(value: object) -> None:
    """None, or two positive loss weights (class 0, class 1)."""
    if value is None:
        return
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError(f"class_weight must be None or [w0, w1], got {value!r}")
    for w in value:
        check_float("class_weight", w, 0.0, low_open=True)


def check_head_classes(value: object) -> None:
    """1 (one logit) or 2 (a 2-class softmax head, whose logit difference is used)."""
    if isinstance(value, bool) or value not in (1, 2):
        raise ValueError(f"head_classes must be 1 or 2, got {value!r}")


def two_class_logit(out: torch.Tensor) -> torch.Tensor:
    """The logit of class 1 from a (..., 1) or (..., 2) head: P(1) = sigmoid(l1 - l0)."""
    if out.shape[-1] == 2:
        return out[..., 1] - out[..., 0]
    return out.squeeze(-1)


class TorchVictim(Victim):
    """Base of mlp, lstm, gru and grud (see module docstring)."""

    weights_kind = "torch"

    def _check_common(self) -> None:
        check_int("seed", self.seed, 0)
        check_float("lr", self.lr, 0.0, low_open=True)
        check_float("weight_decay", self.weight_decay, 0.0)
        check_float("dropout", self.dropout, 0.0, 1.0, high_open=True)
        check_int("batch_size", self.batch_size, 1)
        check_int("max_epochs", self.max_epochs, 1)
        check_int("patience", self.patience, 1)
        if self.grad_clip is not None:
            check_float("grad_clip", self.grad_clip, 0.0, low_open=True)
        if self.ema is not None:
            check_float("ema", self.ema, 0.0, 1.0, low_open=True, high_open=True)
        check_bool("use_static", self.use_static)
        check_bool("cache", self.cache)
        check_device(self.device)

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def _fit_inputs(self, train: Cohort) -> None:
        """Fit the preprocessing on the training stays; set ``arch_`` (network dimensions)."""

    @abstractmethod
    def _inputs(self, cohort: Cohort) -> list[np.ndarray]:
        """Model inputs of `cohort` (first axis = stay)."""

    @abstractmethod
    def _build(self) -> nn.Module:
        """The network for ``self.arch_`` (must define ``forward`` and ``embed``)."""

    @abstractmethod
    def _inputs_state(self) -> dict: ...

    @abstractmethod
    def _set_inputs_state(self, state: dict) -> None: ...

    # ------------------------------------------------------------------ Victim
    def _fit(self, train: Cohort, val: Cohort, progress: ProgressFn | None) -> dict:
        self._fit_inputs(train)
        x_train, x_val = self._inputs(train), self._inputs(val)
        device = resolve_device(self.device)
        config = TrainConfig(
            lr=self.lr,
            weight_decay=self.weight_decay,
            batch_size=self.batch_size,
            max_epochs=self.max_epochs,
            patience=self.patience,
            grad_clip=self.grad_clip,
            ema=self.ema,
            seed=self.seed,
            class_weight=getattr(self, "class_weight", None),
        )
        selector, rule = self._selector(val)
        with torch_session(self.seed, device):
            self.model_ = self._build().to(device)
            result = train_model(
                self.model_,
                x_train,
                train.label,
                x_val,
                val.label,
                config,
                device,
                progress,
                selector=selector,
            )
        self.device_ = device
        protocol = getattr(self, "_selection", HONEST).protocol
        return fit_summary(result, selector, rule, protocol, device)

    def _selector(self, val: Cohort) -> tuple[EpochSelector | None, str | None]:
        """The paper protocol's epoch selector for this victim, or (None, None)."""
        selection = getattr(self, "_selection", HONEST)
        return make_selector(selection, self.name, val.label, self._inputs)

    def _run(self, cohort: Cohort, embed: bool) -> np.ndarray:
        inputs = self._inputs(cohort)
        device = getattr(self, "device_", torch.device("cpu"))
        with torch_session(None, device):
            tensors = to_tensors(inputs, device)
            if not embed:
                return predict_logits(self.model_, tensors)
            self.model_.eval()
            out = []
            with torch.no_grad():
                for start in range(0, cohort.n_stays, 1024):
                    batch = (t[start : start + 1024] for t in tensors)
                    out.append(self.model_.embed(*batch).float().cpu())
            return torch.cat(out).numpy()

    def _predict_proba(self, cohort: Cohort) -> np.ndarray:
        return sigmoid(self._run(cohort, embed=False))

    def _embed(self, cohort: Cohort) -> np.ndarray:
        return self._run(cohort, embed=True)

    def _get_state(self) -> tuple[dict, dict[str, Any]]:
        state = {"arch": self.arch_, "inputs": self._inputs_state()}
        tensors = {k: v.detach().cpu() for k, v in self.model_.state_dict().items()}
        return state, tensors

    def _set_state(self, state: dict, tensors: dict[str, Any]) -> None:
        self.arch_ = state["arch"]
        self._set_inputs_state(state["inputs"])
        # Build on the meta device first (no memory): sizes in the JSON (e.g. a forged hidden of
        # 10^6) must match the stored tensors before a real network is allocated.
        try:
            with torch.device("meta"):
                shapes = {k: tuple(v.shape) for k, v in self._build().state_dict().items()}
        except (TypeError, ValueError, RuntimeError, KeyError) as exc:
            raise ModelFileError(
                f"victim.json: 'state.arch' {self.arch_!r} is invalid: {exc}"
            ) from None
        stored = getattr(self, "stored_shapes_", None) or {
            k: tuple(v.shape) for k, v in tensors.items()
        }
        check_shapes(shapes, stored, f"weights file vs victim.json 'state.arch' of {self.name}")
        model = self._build()
        model.load_state_dict(tensors, strict=True)
        model.eval()
        self.device_ = torch.device("cpu")
        self.model_ = model
