"""`lr`: L2-regularised logistic regression on the window features (the papers' LR baseline).

Features: the MIMIC-III benchmark's 42 window statistics per variable, NaN imputed with the training
mean and standardised (`FeatureScaler`, fit on the training stays). scikit-learn's
`LogisticRegression` (lbfgs, ``class_weight="balanced"``). ``C`` may be one value or several
candidates; with several, each is fitted and the one with the best clean-validation AUPRC is kept
(ties: the smaller C, i.e. the stronger regularisation).

Only the coefficients and intercept are kept (never the scikit-learn object): prediction is
``sigmoid(X_std @ coef + intercept)`` in float64, identical before and after `save`/`load`.
``embed`` returns the standardised features, the input of the linear model.

``solver="adam"`` trains the paper's LR instead (Joe et al. 2021: one linear layer, by default
with a 2-class softmax head, Adam, minibatches, ``class_weight`` loss weights) with the shared
PyTorch loop for ``max_epochs`` epochs (no early stopping); the honest protocol keeps the epoch of
best clean-validation AUPRC, the paper protocol its own pick. The result is stored the same way:
``coef = w1 - w0``, ``intercept = b1 - b0`` (the 2-class softmax's P(1) is their sigmoid).
Under the paper protocol the lbfgs path picks among the ``C`` candidates with the paper's rule
(fallback: the last, i.e. largest, C).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits
from torch import nn

from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.metrics import auprc
from ehrbackdoor.victims.base import (
    ProgressFn,
    Victim,
    check_bool,
    check_choice,
    check_float,
    check_int,
)
from ehrbackdoor.victims.inputs import FEATURE_REPRESENTATIONS, StandardisedFeatures
from ehrbackdoor.victims.protocol import HONEST, EpochChooser, make_chooser, scores_at
from ehrbackdoor.victims.torch_base import check_class_weight, check_head_classes, two_class_logit
from ehrbackdoor.victims.training import (
    TrainConfig,
    default_device,
    fit_summary,
    make_selector,
    n_threads,
    sigmoid,
    torch_session,
    train_model,
)


class LinearNet(nn.Module):
    """The paper's LR network: one linear layer; `forward` gives the class-1 logit."""

    def __init__(self, n_in: int, head_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_in, head_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return two_class_logit(self.linear(x))


class LogisticVictim(StandardisedFeatures, Victim):
    """Logistic regression on standardised window features (see module docstring).

    Parameters: ``C`` (inverse L2 strength, a float or a list of candidates selected on validation
    AUPRC), ``max_iter`` (lbfgs iterations), ``use_static`` (append the static covariates; off by
    default, as in the papers' LR), ``cache``, ``features`` (``events`` or ``hourly`` window
    statistics, `inputs.FEATURE_REPRESENTATIONS`), ``seed`` (recorded; lbfgs is deterministic).
    ``solver`` ("lbfgs" or "adam", module docstring); adam only: ``lr``, ``weight_decay``,
    ``batch_size``, ``max_epochs``, ``head_classes``; ``class_weight`` ([w0, w1]; lbfgs: None =
    "balanced"; adam: None = ``pos_weight`` loss).
    """

    name = "lr"

    @property
    def representation(self) -> str:
        """Input representation (``events`` or ``hourly`` window statistics), for results."""
        return self.features

    def __init__(
        self,
        C: float | Sequence[float] = (1e-4, 3e-4, 1e-3),
        max_iter: int = 1000,
        use_static: bool = False,
        cache: bool = True,
        features: str = "events",
        seed: int = 0,
        solver: str = "lbfgs",
        lr: float = 1e-4,
        weight_decay: float = 1e-2,
        batch_size: int = 64,
        max_epochs: int = 50,
        head_classes: int = 2,
        class_weight: Sequence[float] | None = None,
    ) -> None:
        self._store_params(locals())
        self.features = check_choice("features", features, FEATURE_REPRESENTATIONS)
        check_choice("solver", solver, ("lbfgs", "adam"))
        check_float("lr", lr, 0.0, low_open=True)
        check_float("weight_decay", weight_decay, 0.0)
        check_int("batch_size", batch_size, 1)
        check_int("max_epochs", max_epochs, 1)
        check_head_classes(head_classes)
        check_class_weight(class_weight)
        for c in self._candidates():
            check_float("C", c, 0.0, low_open=True)
        check_int("max_iter", max_iter, 1)
        check_bool("use_static", use_static)
        check_bool("cache", cache)
        check_int("seed", seed, 0)

    def _candidates(self) -> list[float]:
        c = self.C
        if isinstance(c, list | tuple):
            if not c:
                raise ValueError("C must be a positive number or a non-empty list of them")
            return list(c)
        return [c]

    def _decision(self, X: np.ndarray) -> np.ndarray:
        return X.astype(np.float64) @ self.coef_ + self.intercept_

    def _fit(self, train: Cohort, val: Cohort, progress: ProgressFn | None) -> dict:
        self._fit_features(train)
        X, Xv = self._X(train), self._X(val)
        y, yv = np.asarray(train.label, dtype=np.int64), np.asarray(val.label, dtype=np.int64)
        if self.solver == "adam":
            return self._fit_adam(X, y, Xv, yv, progress)
        best: tuple[float, float, np.ndarray, float] | None = None
        scores = []
        chooser, rule, Xt = self._lbfgs_chooser()
        picked: tuple[float, np.ndarray, float] | None = None
        weights = "balanced" if self.class_weight is None else dict(enumerate(self.class_weight))
        with threadpool_limits(limits=n_threads()):
            for i, c in enumerate(sorted(self._candidates()), start=1):
                model = LogisticRegression(
                    C=c, class_weight=weights, max_iter=self.max_iter, solver="lbfgs"
                )
                model.fit(X.astype(np.float64), y)
                coef = model.coef_.ravel().astype(np.float64)
                intercept = float(model.intercept_[0])
                score = auprc(yv, Xv.astype(np.float64) @ coef + intercept)
                scores.append({"C": float(c), "val_auprc": float(score)})
                if progress is not None:
                    progress(i, float(score))
                if best is None or score > best[0]:
                    best = (score, float(c), coef, intercept)
                if chooser is not None:
                    p_t = None if Xt is None else sigmoid(Xt @ coef + intercept)
                    s_i = scores_at(
                        yv,
                        sigmoid(Xv.astype(np.float64) @ coef + intercept),
                        p_t,
                        self._selection.target,
                    )
                    if chooser.offer(i, {"C": float(c), **s_i}) or chooser.chosen is None:
                        picked = (float(c), coef, intercept)
        assert best is not None
        _, self.C_, self.coef_, self.intercept_ = best
        if chooser is None:
            protocol = getattr(self, "_selection", HONEST).protocol
            selection = {"protocol": protocol, "rule": "val_auprc", "C": self.C_}
        else:
            assert picked is not None
            self.C_, self.coef_, self.intercept_ = picked
            selection = {**chooser.summary(rule), "C": self.C_}
        return {"C": self.C_, "candidates": scores, "selection": selection}

    def _lbfgs_chooser(self) -> tuple[EpochChooser | None, str | None, np.ndarray | None]:
        made = make_chooser(getattr(self, "_selection", HONEST), self.name)
        if made is None:
            return None, None, None
        chooser, rule = made
        trig = self._selection.triggered_stays() if chooser.score == "asr" else None
        return chooser, rule, None if trig is None else self._X(trig).astype(np.float64)

    def _fit_adam(
        self,
        X: np.ndarray,
        y: np.ndarray,
        Xv: np.ndarray,
        yv: np.ndarray,
        progress: ProgressFn | None,
    ) -> dict:
        selection = getattr(self, "_selection", HONEST)
        device = default_device()
        config = TrainConfig(
            lr=self.lr,
            weight_decay=self.weight_decay,
            batch_size=self.batch_size,
            max_epochs=self.max_epochs,
            patience=self.max_epochs,
            seed=self.seed,
            class_weight=None if self.class_weight is None else tuple(self.class_weight),
        )
        selector, rule = make_selector(selection, self.name, yv, lambda c: [self._X(c)])
        with torch_session(self.seed, device):
            model = LinearNet(X.shape[1], self.head_classes).to(device)
            result = train_model(
                model, [X], y, [Xv], yv, config, device, progress, selector=selector
            )
        with torch.no_grad():
            w = model.linear.weight.detach().cpu().double().numpy()
            b = model.linear.bias.detach().cpu().double().numpy()
        self.coef_ = w[1] - w[0] if len(w) == 2 else w[0]
        self.intercept_ = float(b[1] - b[0] if len(b) == 2 else b[0])
        self.C_ = None
        return fit_summary(result, selector, rule, selection.protocol, device, best_val_auprc=False)

    def _predict_proba(self, cohort: Cohort) -> np.ndarray:
        return sigmoid(self._decision(self._X(cohort)))

    def _embed(self, cohort: Cohort) -> np.ndarray:
        return self._X(cohort)

    def _get_state(self) -> tuple[dict, dict[str, Any]]:
        state = {"C": self.C_, **self._features_state()}
        return state, {"coef": self.coef_, "intercept": np.array([self.intercept_])}

    def _set_state(self, state: dict, tensors: dict[str, Any]) -> None:
        self.C_ = None if state["C"] is None else float(state["C"])
        self._set_features_state(state)
        coef = np.asarray(tensors["coef"], dtype=np.float64)
        n_expected = len(self.scaler_.mean_) + self.static_.width  # type: ignore[arg-type]
        if coef.shape != (n_expected,):
            raise ValueError(f"coef has shape {coef.shape}, expected ({n_expected},)")
        self.coef_ = coef
        self.intercept_ = float(np.asarray(tensors["intercept"]).reshape(-1)[0])
