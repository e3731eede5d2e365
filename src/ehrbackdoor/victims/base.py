"""The victim interface: every model an attack targets looks the same from outside.

scikit-learn conventions: the constructor only stores (and validates) hyperparameters, `fit`
learns everything else and returns the victim, learned attributes end in ``_``.  A victim owns
its preprocessing: `fit` fits it on the training stays it is handed (which may be poisoned), and
`predict_proba` / `embed` take raw cohorts.

Persistence never executes code: `save(dir)` writes

* ``victim.json`` -- name, hyperparameters, operating threshold, the training cohort's window
  (hours; inputs of another window are refused), preprocessing state (JSON lists,
  float64 written with repr so it round-trips exactly), fit summary, library versions;
* ``weights.safetensors`` -- tensors only (network weights, logistic-regression coefficients,
  gradient-boosting tree node arrays),

and `load_victim(dir)` rebuilds the victim named in victim.json from those two files.  No pickle,
no joblib.
"""

from __future__ import annotations

import json
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from ehrbackdoor.base import Component, NotFittedError  # noqa: F401 (re-exported)
from ehrbackdoor.checks import check_bool, check_choice, check_float, check_int  # noqa: F401 (re-exported)
from ehrbackdoor.data.cohort import WINDOW_HOURS, Cohort
from ehrbackdoor.io import atomic_write_bytes, atomic_write_text
from ehrbackdoor.metrics import auprc, auroc, choose_threshold
from ehrbackdoor.preprocess.window import check_window
from ehrbackdoor.victims._persist import (
    ModelFileError,
    check_finite_tensors,
    check_sha256,
    confined_file,
    finite_number,
    safetensors_shapes,
    sha256_hex,
)
from ehrbackdoor.victims.protocol import PAPER_THRESHOLD, Selection, as_selection

if sys.version_info >= (3, 11):
    from typing import Self
else:  # pragma: no cover
    Self = TypeVar("Self", bound="Victim")

ProgressFn = Callable[[int, float], None]

#: Version of the on-disk layout written by `Victim.save`.
FORMAT_VERSION = 2  # 2: victim.json records weights_sha256
CONFIG_FILE = "victim.json"
WEIGHTS_FILE = "weights.safetensors"
#: Window of victim files saved before `victim.json` recorded one (all fit on 48-hour cohorts).
LEGACY_WINDOW = WINDOW_HOURS


# ------------------------------------------------------------------------------ cohort checks
def check_labels(cohort: Cohort, what: str) -> np.ndarray:
    """The 0/1 labels of `cohort` as int64, or a ValueError naming `what`."""
    lab = np.asarray(cohort.label)
    if lab.dtype.kind == "f" and np.isnan(lab).any():
        raise ValueError(f"{what} cohort has {int(np.isnan(lab).sum())} NaN labels")
    if lab.dtype.kind not in "biuf":
        raise ValueError(f"{what} cohort labels must be numeric 0/1, got dtype {lab.dtype}")
    bad = (lab != 0) & (lab != 1)
    if bad.any():
        raise ValueError(
            f"{what} cohort labels must be 0 or 1, found {np.unique(lab[bad])[:5].tolist()}"
        )
    return lab.astype(np.int64)


def check_cohort(cohort: Any, what: str, *, labels: bool = False, both_classes: bool = False):
    """Validate a cohort handed to a victim; returns its labels when `labels`."""
    if not isinstance(cohort, Cohort):
        raise ValueError(f"{what} must be a Cohort, got {type(cohort).__name__}")
    if cohort.n_stays == 0:
        raise ValueError(f"{what} cohort is empty (0 stays)")
    if not labels:
        return None
    y = check_labels(cohort, what)
    if both_classes:
        n_pos = int(y.sum())
        if n_pos == 0 or n_pos == len(y):
            raise ValueError(
                f"{what} cohort has a single class (all {len(y)} labels are {int(y[0])}); "
                "both deaths (1) and survivors (0) are needed"
            )
    return y


# ----------------------------------------------------------------------------- JSON helpers
def arr_to_json(a: np.ndarray) -> dict:
    """A numeric array as a JSON-able dict (exact round trip for float32/float64/int)."""
    a = np.asarray(a)
    return {"dtype": str(a.dtype), "shape": list(a.shape), "data": a.ravel().tolist()}


def arr_from_json(d: dict) -> np.ndarray:
    dtype = np.dtype(d["dtype"])
    if dtype.kind not in "biuf":
        raise ValueError(f"refusing to load array of dtype {dtype} from JSON")
    return np.asarray(d["data"], dtype=dtype).reshape(d["shape"])


def versions() -> dict[str, str]:
    import sklearn
    import torch

    import ehrbackdoor

    return {
        "ehrbackdoor": ehrbackdoor.__version__,
        "numpy": np.__version__,
        "torch": torch.__version__,
        "scikit-learn": sklearn.__version__,
        "format": str(FORMAT_VERSION),
    }


# --------------------------------------------------------------------------------- the base
class Victim(Component, ABC):
    """Abstract victim model of in-hospital mortality.

    Subclasses declare their hyperparameters as keyword arguments of ``__init__`` (stored under the
    same attribute names, validated there, nothing else done) and implement `_fit`,
    `_predict_proba`, `_embed`, `_get_state` and `_set_state`.

    Learned attributes: ``threshold_`` (max-F1 threshold on the clean validation stays),
    ``fit_info_`` (validation AUROC/AUPRC, best epoch/iteration, per-epoch history), and the
    subclass's preprocessing and weights.
    """

    kind: ClassVar[str] = "victim"
    #: "torch" victims store a torch state dict; "numpy" victims plain arrays.
    weights_kind: ClassVar[str] = "numpy"

    # ------------------------------------------------------------------ public API
    def fit(
        self,
        train: Cohort,
        val: Cohort,
        progress: ProgressFn | None = None,
        selection: Selection | str | None = None,
    ) -> Self:
        """Fit preprocessing and model on `train`, select the model and threshold on clean `val`.

        `progress(step, val_auprc)` is called after each epoch (networks), each boosting chunk
        (gbdt) or each regularisation candidate (lr). `selection` is the evaluation protocol
        (`ehrbackdoor.victims.protocol`): None / "honest" (default) or a paper `Selection`.
        """
        selection = as_selection(selection)
        check_cohort(train, "train", labels=True, both_classes=True)
        check_cohort(val, "val", labels=True, both_classes=True)
        if train.schema.name != val.schema.name:
            raise ValueError(
                f"train and val cohorts use different schemas: {train.schema.name!r} vs "
                f"{val.schema.name!r}"
            )
        if train.window != val.window:
            raise ValueError(
                f"train and val cohorts have different windows: {train.window:g} h vs "
                f"{val.window:g} h"
            )
        trig = selection.triggered_val
        if trig is not None and trig.schema.name != train.schema.name:
            raise ValueError(
                f"triggered_val uses schema {trig.schema.name!r}, train {train.schema.name!r}"
            )
        if trig is not None and trig.window != train.window:
            raise ValueError(
                f"triggered_val has a {trig.window:g}-hour window, train {train.window:g} h"
            )
        if progress is not None and not callable(progress):
            raise ValueError(f"progress must be callable or None, got {progress!r}")
        for attr in ("threshold_", "fit_info_"):  # a refit starts from scratch
            self.__dict__.pop(attr, None)
        self.schema_ = train.schema.name
        self.n_variables_ = len(train.schema)
        self.n_static_ = len(train.schema.static)
        self.window_ = float(train.window)
        self._selection = selection  # read by _fit; never saved
        try:
            info = self._fit(train, val, progress) or {}
        finally:
            del self._selection
        y_val = check_labels(val, "val")
        p_val = np.asarray(self._predict_proba(val), dtype=np.float64).reshape(-1)
        if selection.is_paper:
            self.threshold_ = PAPER_THRESHOLD
        else:
            self.threshold_ = float(choose_threshold(y_val, p_val, rule="max_f1"))
        info.setdefault("selection", {"protocol": selection.protocol})
        info["selection"].setdefault("threshold", self.threshold_)
        self.fit_info_ = {
            **info,
            "protocol": selection.protocol,
            "n_train": int(train.n_stays),
            "n_val": int(val.n_stays),
            "val_auroc": float(auroc(y_val, p_val)),
            "val_auprc": float(auprc(y_val, p_val)),
        }
        return self

    def predict_proba(self, cohort: Cohort) -> np.ndarray:
        """P(in-hospital death) of each stay, shape (n,), float64."""
        self._check_fitted()
        self._check_input(cohort)
        p = np.asarray(self._predict_proba(cohort), dtype=np.float64).reshape(-1)
        return p

    def predict(self, cohort: Cohort) -> np.ndarray:
        """0/1 predictions at the saved operating threshold (``p >= threshold_``)."""
        return (self.predict_proba(cohort) >= self.threshold_).astype(np.int8)

    def embed(self, cohort: Cohort) -> np.ndarray:
        """Penultimate representation of each stay, shape (n, d), float32."""
        self._check_fitted()
        self._check_input(cohort)
        return np.asarray(self._embed(cohort), dtype=np.float32)

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> Path:
        """Write victim.json and weights.safetensors into `directory` (created if needed)."""
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state, tensors = self._get_state()
        weights = _tensors_to_bytes(tensors, self.weights_kind)
        config = {
            "name": self.name,
            "params": self.get_params(),
            "threshold": self.threshold_,
            "schema": self.schema_,
            "n_variables": self.n_variables_,
            "n_static": self.n_static_,
            "window": self.window_,
            "fit_info": self.fit_info_,
            "state": state,
            "weights": WEIGHTS_FILE,
            "weights_sha256": sha256_hex(weights),
            "weights_kind": self.weights_kind,
            "versions": versions(),
        }
        atomic_write_bytes(directory / WEIGHTS_FILE, weights)
        atomic_write_text(directory / CONFIG_FILE, json.dumps(config, indent=1) + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Victim:
        """Load a saved victim; must be of this class (use `load_victim` to dispatch)."""
        victim = load_victim(directory)
        if cls is not Victim and not isinstance(victim, cls):
            raise ValueError(f"{directory} holds a {victim.name!r} victim, not {cls.name!r}")
        return victim

    # ------------------------------------------------------------------ internals
    def _check_fitted(self) -> None:
        if not hasattr(self, "threshold_"):
            raise self._not_fitted("call fit(train, val) or load_victim()")

    def _check_input(self, cohort: Cohort) -> None:
        check_cohort(cohort, "input")
        if cohort.schema.name != self.schema_:
            raise ValueError(
                f"victim was fitted on schema {self.schema_!r} but got a {cohort.schema.name!r} "
                "cohort"
            )
        check_window(self.window_, cohort, f"{self.name} victim")

    @abstractmethod
    def _fit(self, train: Cohort, val: Cohort, progress: ProgressFn | None) -> dict | None:
        """Learn preprocessing and weights; may return a JSON-able fit summary."""

    @abstractmethod
    def _predict_proba(self, cohort: Cohort) -> np.ndarray: ...

    @abstractmethod
    def _embed(self, cohort: Cohort) -> np.ndarray: ...

    @abstractmethod
    def _get_state(self) -> tuple[dict, dict[str, Any]]:
        """(JSON-able state, named arrays/tensors for safetensors)."""

    @abstractmethod
    def _set_state(self, state: dict, tensors: dict[str, Any]) -> None:
        """Rebuild the learned state from what `_get_state` returned."""


def _tensors_to_bytes(tensors: dict[str, Any], kind: str) -> bytes:
    if kind == "torch":
        from safetensors.torch import save

        return save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
    from safetensors.numpy import save

    return save({k: np.ascontiguousarray(v) for k, v in tensors.items()})


def _registry() -> dict[str, type[Victim]]:
    from ehrbackdoor.victims import VICTIMS

    return VICTIMS


def load_victim(directory: str | Path) -> Victim:
    """Rebuild a victim saved with `Victim.save`; dispatches on the name in victim.json.

    Reads JSON and safetensors only, so loading a directory from someone else never runs code;
    nothing in it is trusted either (`ehrbackdoor.victims._persist`): the weights file must lie
    inside the directory and match the SHA-256 in victim.json, its header is checked before any
    tensor is read, sizes in the JSON must match the stored shapes before a network is built, and
    the threshold, weights and scaler statistics must be finite. Violations raise `ModelFileError`
    (a ValueError) naming the file and field.
    """
    directory = Path(directory)
    cfg_path = directory / CONFIG_FILE
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path} not found: not a saved victim directory")
    confined_file(directory, CONFIG_FILE, str(cfg_path))
    try:
        config = json.loads(cfg_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{cfg_path}: not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise ModelFileError(f"{cfg_path}: expected a JSON object")
    registry = _registry()
    name = config.get("name")
    if name not in registry:
        raise ValueError(f"{cfg_path}: unknown victim {name!r}; known: {sorted(registry)}")
    fmt = str((config.get("versions") or {}).get("format"))
    if fmt != str(FORMAT_VERSION):
        raise ValueError(f"{cfg_path}: victim format {fmt} but this version reads {FORMAT_VERSION}")
    cls = registry[name]
    victim = cls(**config["params"])
    weights = confined_file(
        directory, config.get("weights", WEIGHTS_FILE), f"{cfg_path}: 'weights'"
    )
    check_sha256(weights, config.get("weights_sha256"), f"{cfg_path}: 'weights_sha256'")
    threshold = finite_number(config.get("threshold"), f"{cfg_path}: 'threshold'")
    victim.stored_shapes_ = {k: v[1] for k, v in safetensors_shapes(weights).items()}
    if cls.weights_kind == "torch":
        from safetensors.torch import load_file as load_torch

        tensors: dict[str, Any] = load_torch(str(weights), device="cpu")
    else:
        from safetensors.numpy import load_file as load_np

        tensors = load_np(str(weights))
    check_finite_tensors(tensors, weights)
    victim.schema_ = config["schema"]
    victim.n_variables_ = int(config["n_variables"])
    victim.n_static_ = int(config["n_static"])
    # Victims saved before the window was recorded were all fit on 48-hour cohorts.
    victim.window_ = finite_number(config.get("window", LEGACY_WINDOW), f"{cfg_path}: 'window'")
    if victim.window_ <= 0:
        raise ModelFileError(f"{cfg_path}: 'window' must be positive, got {victim.window_!r}")
    try:
        victim._set_state(config["state"], tensors)
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{cfg_path}: 'state' does not match {weights.name}: {exc}") from exc
    del victim.stored_shapes_
    victim.fit_info_ = config.get("fit_info", {})
    victim.threshold_ = threshold
    return victim
