"""The shared PyTorch training loop of the neural victims (mlp, lstm, gru, grud).

One loop for every network so all of them follow the same protocol:

* seeded: parameters are initialised and dropout drawn from ``torch.manual_seed(seed)`` inside a
  forked RNG (the caller's global torch RNG state is left untouched); minibatches are shuffled with
  ``numpy.random.default_rng(seed)``; ``torch.use_deterministic_algorithms(True)`` is on while
  training and predicting, so on CPU the same seed gives the same predictions bit for bit;
* a fixed number of CPU threads (restored afterwards), and CUDA when a GPU is present. The default
  is ONE intra-op thread; ``EHRBACKDOOR_THREADS=2`` (capped at ``os.cpu_count()``) uses both cores
  of the target machine. Why one: PyTorch's OpenMP workers busy-wait, and on a 2-core machine that
  is also running anything else two threads were measured 5-15x slower in wall time than one (GRU,
  3 epochs on PhysioNet: 150 s vs 10 s); and the thread count changes float32 results in the last
  bits (1e-7), so it must be fixed for bit-for-bit reproducibility -- fix it with the variable;
* Adam with L2 weight decay, a class-weighted ``BCEWithLogitsLoss`` with
  ``pos_weight = n_negative / n_positive`` of the training stays, optional gradient clipping;
* after every epoch the validation AUPRC (average precision) is computed; the best state dict is
  copied and restored at the end; training stops after ``patience`` epochs without improvement or
  after ``max_epochs``.  Model selection uses the CLEAN validation stays only.

With an `EpochSelector` (the paper protocol, `ehrbackdoor.victims.protocol`) every epoch is trained
(no early stopping) and the selector's rule, not the AUPRC, says which epoch's weights are kept.
``TrainConfig.class_weight`` = (w0, w1) replaces the ``pos_weight`` loss by the class-weighted mean
of PyTorch's ``nll_loss(weight=...)`` (the paper's loss).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ehrbackdoor.data.cohort import Cohort
from ehrbackdoor.metrics import auprc
from ehrbackdoor.victims.protocol import EpochChooser, Selection, make_chooser, scores_at

ProgressFn = Callable[[int, float], None]

#: Environment variable setting the CPU threads of training and inference (default 1).
THREADS_ENV = "EHRBACKDOOR_THREADS"


#: Accepted ``device`` parameters: ``auto`` = CUDA when available, else CPU.
DEVICES = ("auto", "cpu", "cuda")


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def check_device(device: object) -> str:
    """A valid ``device`` parameter (checked at construction; CUDA itself only when used)."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    return str(device)


def resolve_device(device: str) -> torch.device:
    """The torch device of a ``device`` parameter; a clear error if CUDA is asked for but absent."""
    check_device(device)
    if device == "auto":
        return default_device()
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "device='cuda' was requested but PyTorch sees no CUDA device (torch "
            f"{torch.__version__}, CUDA build {torch.version.cuda or 'none'}); use device='cpu' or "
            "device='auto'"
        )
    return torch.device(device)


def n_threads() -> int:
    """Intra-op CPU threads: ``$EHRBACKDOOR_THREADS`` (default 1), capped at the core count."""
    raw = os.environ.get(THREADS_ENV, "").strip()
    try:
        wanted = int(raw) if raw else 1
    except ValueError:
        raise ValueError(f"{THREADS_ENV} must be a positive integer, got {raw!r}") from None
    if wanted < 1:
        raise ValueError(f"{THREADS_ENV} must be a positive integer, got {raw!r}")
    return min(wanted, os.cpu_count() or 1)


@contextlib.contextmanager
def torch_session(
    seed: int | None = None, device: torch.device | None = None, threads: int | None = None
) -> Iterator[None]:
    """Deterministic torch settings for the duration of a fit or a prediction.

    The one session every torch model of the library (victims, the mask VAE) runs in. Sets the
    thread count (``threads``, capped at the core count; default `n_threads()`) and deterministic
    algorithms, restoring the previous values on exit; with ``seed`` given, forks the global RNG
    and seeds it, so the caller's RNG stream is unaffected.
    """
    if device is not None and device.type == "cuda":
        # Required by cuBLAS for deterministic results; must be set before the first cuBLAS call.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    old_fill = torch.utils.deterministic.fill_uninitialized_memory
    wanted = n_threads() if threads is None else max(1, min(int(threads), os.cpu_count() or 1))
    torch.set_num_threads(wanted)
    torch.use_deterministic_algorithms(True)
    # Deterministic mode also fills every torch.empty with NaN (a debugging aid, not needed for
    # reproducibility: no op here reads uninitialised memory); it cost GRU-D half its time.
    torch.utils.deterministic.fill_uninitialized_memory = False
    try:
        if seed is None:
            yield
        else:
            devices = [device.index or 0] if device is not None and device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed)
                yield
    finally:
        torch.use_deterministic_algorithms(old_det, warn_only=old_warn)
        torch.utils.deterministic.fill_uninitialized_memory = old_fill
        torch.set_num_threads(old_threads)


@dataclass
class TrainConfig:
    """Optimisation hyperparameters of the shared loop."""

    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 64
    max_epochs: int = 30
    patience: int = 5
    grad_clip: float | None = None
    ema: float | None = None
    seed: int = 0
    #: (weight of class 0, weight of class 1) of a weighted-mean loss; None = pos_weight loss.
    class_weight: tuple[float, float] | None = None


@dataclass
class EpochSelector:
    """Paper-protocol hook of `train_model`: scores each epoch at 0.5 and says which to keep.

    `trig_inputs` are the model inputs of the triggered validation stays (label != target); they
    are needed for the ASR rule only.
    """

    chooser: EpochChooser
    y_val: np.ndarray
    trig_inputs: Sequence[np.ndarray] | None = None
    target: int = 1
    _trig: list[torch.Tensor] | None = field(default=None, repr=False)

    def offer(self, epoch: int, model: nn.Module, val_logits: np.ndarray, device) -> bool:
        p_trig = None
        if self.trig_inputs is not None:
            if self._trig is None:
                self._trig = to_tensors(self.trig_inputs, device)
            p_trig = sigmoid(predict_logits(model, self._trig))
        scores = scores_at(self.y_val, sigmoid(val_logits), p_trig, self.target)
        return self.chooser.offer(epoch, scores)


def make_selector(
    selection: Selection, victim: str, y_val: np.ndarray, inputs: Callable[[Cohort], list]
) -> tuple[EpochSelector | None, str | None]:
    """The paper protocol's `EpochSelector` for `victim` (inputs of triggered stays made with
    `inputs`), and the rule's name; (None, None) when the victim keeps its usual selection."""
    made = make_chooser(selection, victim)
    if made is None:
        return None, None
    chooser, rule = made
    trig = selection.triggered_stays() if chooser.score == "asr" else None
    trig_inputs = inputs(trig) if trig is not None else None
    return EpochSelector(chooser, np.asarray(y_val), trig_inputs, selection.target), rule


@dataclass
class TrainResult:
    best_epoch: int
    best_val_auprc: float
    history: list[float] = field(default_factory=list)  # val AUPRC per epoch


def fit_summary(
    result: TrainResult,
    selector: EpochSelector | None,
    rule: str | None,
    protocol: str,
    device: torch.device,
    *,
    best_val_auprc: bool = True,
) -> dict:
    """The fit report of a victim trained by `train_model`: how its epoch was selected (the
    paper protocol's `selector` and `rule`, else validation AUPRC under `protocol`), the epochs
    and the validation history; `best_val_auprc` adds the best AUPRC seen during training."""
    if selector is None:
        selection = {"protocol": protocol, "rule": "val_auprc"}
    else:
        selection = selector.chooser.summary(rule)
    selection["selected_epoch"] = result.best_epoch
    out = {
        "selection": selection,
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
    }
    if best_val_auprc:
        out["best_val_auprc_during_training"] = result.best_val_auprc
    return {**out, "history": result.history, "device": device.type}


def to_tensors(arrays: Sequence[np.ndarray], device: torch.device) -> list[torch.Tensor]:
    return [torch.as_tensor(np.ascontiguousarray(a, dtype=np.float32)).to(device) for a in arrays]


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    inputs: Sequence[torch.Tensor],
    batch_size: int = 1024,
    forward: Callable[..., torch.Tensor] | None = None,
) -> np.ndarray:
    """Logits of `model` (eval mode) on `inputs`, in fixed-size batches, as float64 numpy."""
    model.eval()
    fn = forward or model
    n = inputs[0].shape[0]
    out = []
    for start in range(0, n, batch_size):
        out.append(fn(*(t[start : start + batch_size] for t in inputs)).reshape(-1).float().cpu())
    if not out:
        return np.zeros(0)
    return torch.cat(out).numpy().astype(np.float64)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function in float64."""
    z = np.asarray(z, dtype=np.float64)
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def _copy_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def train_model(
    model: nn.Module,
    train_inputs: Sequence[np.ndarray],
    y_train: np.ndarray,
    val_inputs: Sequence[np.ndarray],
    y_val: np.ndarray,
    config: TrainConfig,
    device: torch.device,
    progress: ProgressFn | None = None,
    selector: EpochSelector | None = None,
) -> TrainResult:
    """Train `model` in place with the shared protocol; leaves it holding the best weights.

    `train_inputs` / `val_inputs` are arrays whose first axis is the stay; they are passed to
    ``model(*batch)``, which must return one logit per stay.  Call inside `torch_session(seed)`
    (the model should have been built there too, so its initialisation is seeded).
    With `selector`, all ``max_epochs`` are trained and the selector picks the weights kept.
    """
    y_train = np.asarray(y_train, dtype=np.float32)
    n_pos = float(y_train.sum())
    n_neg = float(len(y_train) - n_pos)
    pos_weight = torch.tensor([n_neg / max(n_pos, 1.0)], dtype=torch.float32, device=device)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    if config.class_weight is not None:
        loss_fn = _weighted_loss(config.class_weight)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    xs = to_tensors(train_inputs, device)
    yt = torch.as_tensor(y_train).to(device)
    xv = to_tensors(val_inputs, device)
    rng = np.random.default_rng(config.seed)
    n = len(y_train)

    best_score = -np.inf
    best_epoch = 0
    best_state = _copy_state(model)
    history: list[float] = []
    # Exponential moving average of the weights (buffers copied), evaluated instead of the raw
    # weights when config.ema is set; decay warms up as min(ema, (1 + step) / (10 + step)).
    live = model.state_dict()
    ema_state = _copy_state(model) if config.ema else None
    step = 0
    for epoch in range(1, config.max_epochs + 1):
        model.train()
        perm = torch.as_tensor(rng.permutation(n)).to(device)
        for start in range(0, n, config.batch_size):
            idx = perm[start : start + config.batch_size]
            opt.zero_grad(set_to_none=True)
            logits = model(*(x[idx] for x in xs)).reshape(-1)
            loss = loss_fn(logits, yt[idx])
            loss.backward()
            if config.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            opt.step()
            if ema_state is not None:
                decay = min(float(config.ema), (1.0 + step) / (10.0 + step))
                with torch.no_grad():
                    for k, v in live.items():
                        if v.dtype.is_floating_point:
                            ema_state[k].lerp_(v, 1.0 - decay)
                        else:
                            ema_state[k].copy_(v)
            step += 1
        raw_state = None
        if ema_state is not None:
            raw_state = _copy_state(model)
            model.load_state_dict(ema_state)
        val_logits = predict_logits(model, xv)
        score = auprc(y_val, val_logits) if np.isfinite(val_logits).all() else -np.inf
        history.append(float(score))
        if progress is not None:
            progress(epoch, float(score))
        if selector is None:
            improved = score > best_score
        else:
            improved = selector.offer(epoch, model, val_logits, device)
        if improved:
            best_score, best_epoch = score, epoch
            best_state = _copy_state(model)
        if raw_state is not None:
            model.load_state_dict(raw_state)
        if selector is None and not improved and epoch - best_epoch >= config.patience:
            break
    if selector is not None and selector.chooser.chosen is None:
        # The paper's fallback: no epoch passed the gates, the last epoch's weights are kept.
        best_state = ema_state if ema_state is not None else _copy_state(model)
        best_epoch, best_score = len(history), history[-1]
    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(best_epoch=best_epoch, best_val_auprc=float(best_score), history=history)


def _weighted_loss(class_weight: tuple[float, float]) -> Callable[..., torch.Tensor]:
    """Class-weighted mean BCE: ``sum w_y * loss / sum w_y``, as ``nll_loss(weight=w)`` over a
    2-class log-softmax (a 2-class softmax's logit difference is the logit of BCE)."""
    w0, w1 = (float(w) for w in class_weight)

    def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        w = w0 + (w1 - w0) * y
        each = nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")
        return (w * each).sum() / w.sum()

    return loss
