"""A variational auto-encoder of hourly observation masks (the missingness attack's mask model).

Joe et al. (2022) hide a backdoor in *which* values are missing. To make the missingness pattern
look like a real stay's, they learn the distribution of real observation masks with a VAE and draw
the trigger from it. Here a mask is the (T, F) boolean grid of `grid_raw(cohort).mask` (1 = at
least one observation of the variable in that hour) over the T hourly bins of the cohort's window
(48 at 48 h, 24 for YAIB's Mortality24). `fit` records T (``n_steps_``); masks of another T are
refused.

Model: a 1-D convolutional encoder over the T hourly steps (the F variables are channels; T is
zero-padded to a multiple of 4 and the output cropped back, a no-op at 48 and 24 steps), a
Gaussian posterior q(z|x) = N(mu, diag(exp(logvar))), a standard-normal prior and a transposed-
convolution decoder whose output are independent Bernoulli logits per cell, plus a learned per-cell
bias started at the training cell frequencies (so the latent only has to explain what the per-cell
frequency does not). Small on purpose: 40 epochs on ~5,000 PhysioNet masks (48 x 37) cost about
22 s of CPU time.

Training is deterministic on CPU: parameters are initialised from ``torch.manual_seed(seed)`` inside
a forked RNG (the caller's RNG is untouched), minibatches are shuffled and reparameterisation noise
drawn from seeded generators, and ``torch.use_deterministic_algorithms`` is on (the library's one
`ehrbackdoor.victims.training.torch_session`). ``device`` is ``"cpu"`` by default, so fitted
masks (and the trigger drawn from them) are the same on every machine; ``"cuda"`` (or ``"auto"``:
CUDA when present) trains on a GPU, deterministic per device but not bit-identical to the CPU. It
runs on one
thread by default (`n_threads`): convolutions this small gain little from a second thread and, on
a shared two-core machine, lose several-fold to thread contention. Early stopping watches the
negative ELBO of held-out masks; the best weights are kept.

Persistence is code-free: `save(dir)` writes ``mask_vae.safetensors`` (tensors) and
``mask_vae.json`` (hyperparameters, training summary); `load(dir)` reads them back with safetensors
and ``json`` only.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ehrbackdoor.attacks.mask_likelihood import bernoulli_nll, cell_frequency, check_masks
from ehrbackdoor.base import Component
from ehrbackdoor.checks import check_int
from ehrbackdoor.io import atomic_write_bytes, atomic_write_json
from ehrbackdoor.victims.training import check_device, resolve_device, torch_session

WEIGHTS_FILE = "mask_vae.safetensors"
CONFIG_FILE = "mask_vae.json"
FORMAT_VERSION = 1
_LOG2 = math.log(2.0)


class _Net(nn.Module):
    """Strided conv encoder (T -> T/2 -> T/4 steps) and mirrored transposed-conv decoder."""

    def __init__(self, n_vars: int, latent_dim: int, hidden: int, n_steps: int) -> None:
        super().__init__()
        self.n_steps = n_steps
        self.padded = -(-n_steps // 4) * 4  # T rounded up to a multiple of 4
        quarter = self.padded // 4
        self.encoder = nn.Sequential(
            nn.Conv1d(n_vars, hidden, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv1d(hidden, hidden, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        self.to_stats = nn.Linear(hidden * quarter, 2 * latent_dim)
        self.from_z = nn.Linear(latent_dim, hidden * quarter)
        self.decoder = nn.Sequential(
            nn.ReLU(),
            nn.ConvTranspose1d(hidden, hidden, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose1d(hidden, n_vars, 4, stride=2, padding=1),
        )
        self.cell_bias = nn.Parameter(torch.zeros(n_steps, n_vars))
        self.hidden = hidden

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, F) -> mu, logvar (B, latent)."""
        xt = x.transpose(1, 2)
        if self.padded != self.n_steps:
            xt = nn.functional.pad(xt, (0, self.padded - self.n_steps))
        h = self.to_stats(self.encoder(xt))
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 8.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, latent) -> Bernoulli logits (B, T, F)."""
        h = self.from_z(z).view(len(z), self.hidden, self.padded // 4)
        return self.decoder(h).transpose(1, 2)[:, : self.n_steps] + self.cell_bias


def _elbo_terms(net: _Net, x: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample reconstruction log-likelihood and KL(q(z|x) || N(0, I)), one reparam. draw."""
    mu, logvar = net.encode(x)
    z = mu + torch.exp(0.5 * logvar) * eps
    logits = net.decode(z)
    rec = -nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none")
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)
    return rec.flatten(1).sum(dim=1), kl


class MaskVAE(Component):
    """VAE of (T, F) observation masks with a Bernoulli decoder.

    Parameters are stored by the constructor; `fit` learns the weights (attributes ending in ``_``).
    ``heldout_`` reports reconstruction and ELBO on the held-out masks next to the per-cell
    frequency baseline, which is what shows the model learned more than marginal rates.
    """

    kind = "model"
    name = "mask-vae"

    def __init__(
        self,
        latent_dim: int = 16,
        hidden: int = 32,
        epochs: int = 40,
        batch_size: int = 128,
        lr: float = 3e-3,
        patience: int = 6,
        val_fraction: float = 0.1,
        kl_warmup: int = 5,
        n_threads: int = 1,
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        if int(latent_dim) < 1 or int(hidden) < 1:
            raise ValueError(f"latent_dim and hidden must be >= 1, got {latent_dim}, {hidden}")
        if int(epochs) < 1 or int(batch_size) < 1 or int(patience) < 1:
            raise ValueError("epochs, batch_size and patience must be >= 1")
        if not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr!r}")
        self.latent_dim = int(latent_dim)
        self.hidden = int(hidden)
        self.epochs = int(epochs)
        self.batch_size = int(batch_size)
        self.lr = float(lr)
        self.patience = int(patience)
        self.val_fraction = float(val_fraction)
        self.kl_warmup = max(0, int(kl_warmup))
        self.n_threads = max(1, int(n_threads))
        self.seed = check_int("seed", seed, 0)
        self.device = check_device(device)

    # ------------------------------------------------------------------ fitting
    def fit(self, masks: np.ndarray, val_masks: np.ndarray | None = None) -> MaskVAE:
        """Train on `masks` (n, T, F); early-stop on `val_masks`, or on a seeded held-out share."""
        x = check_masks(masks)
        device = resolve_device(self.device)
        rng = np.random.default_rng(self.seed)
        if val_masks is None:
            if len(x) < 4:
                raise ValueError(f"fitting the mask VAE needs at least 4 masks, got {len(x)}")
            perm = rng.permutation(len(x))
            n_val = max(1, int(round(self.val_fraction * len(x))))
            x_val, x = x[perm[:n_val]], x[perm[n_val:]]
        else:
            x_val = check_masks(val_masks, x.shape[2], x.shape[1])
        self.n_vars_, self.n_steps_ = int(x.shape[2]), int(x.shape[1])
        self.cell_freq_ = cell_frequency(x)
        t0 = time.perf_counter()
        with torch_session(self.seed, device, threads=self.n_threads):
            net = _Net(self.n_vars_, self.latent_dim, self.hidden, self.n_steps_)
            with torch.no_grad():
                net.cell_bias.copy_(
                    torch.as_tensor(np.log(self.cell_freq_ / (1 - self.cell_freq_)))
                )
            net = net.to(device)
            opt = torch.optim.Adam(net.parameters(), lr=self.lr)
            gen = torch.Generator().manual_seed(self.seed)
            xt, xv = torch.from_numpy(x).to(device), torch.from_numpy(x_val).to(device)
            val_eps = torch.randn(len(xv), self.latent_dim, generator=gen).to(device)
            best, best_state, best_epoch, history, waited = math.inf, None, 0, [], 0
            for epoch in range(1, self.epochs + 1):
                net.train()
                beta = min(1.0, epoch / self.kl_warmup) if self.kl_warmup else 1.0
                order = torch.from_numpy(rng.permutation(len(xt))).to(device)
                for start in range(0, len(xt), self.batch_size):
                    xb = xt[order[start : start + self.batch_size]]
                    eps = torch.randn(len(xb), self.latent_dim, generator=gen).to(device)
                    rec, kl = _elbo_terms(net, xb, eps)
                    loss = (beta * kl - rec).mean()
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                net.eval()
                with torch.no_grad():
                    rec, kl = _elbo_terms(net, xv, val_eps)
                    val_loss = float((kl - rec).mean())
                history.append(round(val_loss, 4))
                if val_loss < best - 1e-4:
                    best, best_epoch, waited = val_loss, epoch, 0
                    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                elif epoch > self.kl_warmup:
                    waited += 1
                    if waited >= self.patience:
                        break
            assert best_state is not None
            net.load_state_dict(best_state)
            net = net.cpu().eval()  # inference (sampling, scoring) runs on the CPU
        self.net_ = net
        self.fit_info_ = {
            "n_train": int(len(x)),
            "n_heldout": int(len(x_val)),
            "best_epoch": int(best_epoch),
            "epochs_run": len(history),
            "heldout_neg_elbo_history": history,
            "fit_seconds": round(time.perf_counter() - t0, 3),
        }
        self.heldout_ = self.evaluate(x_val)
        return self

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "net_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise self._not_fitted("call fit(masks) or MaskVAE.load(dir) first")

    # ------------------------------------------------------------------ inference
    def _run(self, fn: Any, *arrays: np.ndarray, batch: int = 2048) -> list[np.ndarray]:
        """Apply `fn` to float32 tensors in batches without gradients; numpy float64 results."""
        self._check_fitted()
        n = len(arrays[0])
        outs: list[list[np.ndarray]] = []
        with torch_session(None, threads=self.n_threads), torch.no_grad():
            for start in range(0, n, batch):
                res = fn(*(torch.from_numpy(a[start : start + batch]) for a in arrays))
                res = res if isinstance(res, tuple) else (res,)
                if not outs:
                    outs = [[] for _ in res]
                for o, r in zip(outs, res, strict=True):
                    o.append(r.numpy().astype(np.float64))
        if not outs:
            return [np.zeros((0,))]
        return [np.concatenate(o) for o in outs]

    def encode(self, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and log-variance (n, latent) of each mask."""
        self._check_fitted()
        x = check_masks(masks, self.n_vars_, self.n_steps_)
        mu, logvar = self._run(self.net_.encode, x)
        return mu, logvar

    def decode_logits(self, z: np.ndarray) -> np.ndarray:
        """Bernoulli logits (n, T, F) of latent codes `z` (n, latent)."""
        self._check_fitted()
        z = np.ascontiguousarray(z, dtype=np.float32).reshape(-1, self.latent_dim)
        return self._run(self.net_.decode, z)[0]

    def reconstruct(self, masks: np.ndarray) -> np.ndarray:
        """Cell probabilities (n, T, F) of each mask decoded from its posterior mean."""
        mu, _ = self.encode(masks)
        return _sigmoid(self.decode_logits(mu))

    def elbo(self, masks: np.ndarray, n_samples: int = 4, seed: int = 0) -> np.ndarray:
        """Per-mask ELBO in nats (standard single-level bound, averaged over `n_samples` seeded
        reparameterised draws; no importance weighting). Higher = more typical."""
        self._check_fitted()
        x = check_masks(masks, self.n_vars_, self.n_steps_)
        if len(x) == 0:
            return np.zeros(0)
        rng = np.random.default_rng(seed)
        total = np.zeros(len(x))
        for _ in range(max(1, int(n_samples))):
            eps = rng.standard_normal((len(x), self.latent_dim)).astype(np.float32)
            rec, kl = self._run(lambda a, e: _elbo_terms(self.net_, a, e), x, eps)
            total += rec - kl
        return total / max(1, int(n_samples))

    def sample_prior(
        self, n: int, seed: int | np.random.Generator = 0, binarize: bool = True
    ) -> np.ndarray:
        """`n` masks drawn from the generative model: z ~ N(0, I), each cell ~ Bernoulli.
        With `binarize=False` the cell probabilities are returned instead."""
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        z = rng.standard_normal((int(n), self.latent_dim))
        probs = _sigmoid(self.decode_logits(z))
        return rng.random(probs.shape) < probs if binarize else probs

    def sample_posterior(
        self, masks: np.ndarray, seed: int | np.random.Generator = 0, binarize: bool = True
    ) -> np.ndarray:
        """One decoding per mask of a draw z ~ q(z | mask): realistic variations of real stays."""
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        mu, logvar = self.encode(masks)
        z = mu + np.exp(0.5 * logvar) * rng.standard_normal(mu.shape)
        probs = _sigmoid(self.decode_logits(z))
        return rng.random(probs.shape) < probs if binarize else probs

    def evaluate(self, masks: np.ndarray) -> dict[str, float]:
        """Reconstruction and ELBO of `masks` next to the per-cell frequency baseline.

        `*_nll_per_cell` are mean negative log-likelihoods in bits per cell; accuracies threshold
        the cell probability at 0.5. The VAE learned structure if its reconstruction NLL is below
        the baseline's (the baseline assigns every stay the same probabilities).
        """
        x = check_masks(masks, self.n_vars_, self.n_steps_)
        cells = x.shape[1] * x.shape[2]
        rec = self.reconstruct(x)
        elbo = self.elbo(x)
        base = np.broadcast_to(self.cell_freq_, x.shape)
        return {
            "n": int(len(x)),
            "recon_nll_per_cell_bits": float(bernoulli_nll(x, rec).mean() / cells / _LOG2),
            "recon_accuracy": float(((rec >= 0.5) == (x >= 0.5)).mean()),
            "neg_elbo_per_cell_bits": float(-elbo.mean() / cells / _LOG2),
            "elbo_mean_nats": float(elbo.mean()),
            "baseline_nll_per_cell_bits": float(bernoulli_nll(x, base).mean() / cells / _LOG2),
            "baseline_accuracy": float(((base >= 0.5) == (x >= 0.5)).mean()),
        }

    # ------------------------------------------------------------------ persistence
    def config(self) -> dict[str, Any]:
        """JSON-serialisable description (parameters, shapes, training summary)."""
        self._check_fitted()
        return {
            "format_version": FORMAT_VERSION,
            "params": self.get_params(),
            "n_vars": self.n_vars_,
            "n_steps": self.n_steps_,
            "fit_info": getattr(self, "fit_info_", {}),
            "heldout": getattr(self, "heldout_", {}),
        }

    def arrays(self) -> dict[str, np.ndarray]:
        """Weights and cell frequencies as plain float arrays (for safetensors or NPZ)."""
        self._check_fitted()
        out = {f"net.{k}": v.detach().cpu().numpy() for k, v in self.net_.state_dict().items()}
        out["cell_freq"] = np.asarray(self.cell_freq_, dtype=np.float64)
        return out

    @classmethod
    def from_arrays(cls, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> MaskVAE:
        """Rebuild a fitted model from `config()` and `arrays()` (no code is executed)."""
        if config.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unsupported mask VAE format {config.get('format_version')!r}")
        from ehrbackdoor.victims._persist import ModelFileError, check_finite_tensors, check_shapes

        vae = cls(**config["params"])
        vae.n_vars_ = int(config["n_vars"])
        vae.cell_freq_ = np.asarray(arrays["cell_freq"], dtype=np.float64)
        check_finite_tensors(arrays, Path(WEIGHTS_FILE))
        # T: recorded since windows vary; older files have it only as the cell frequencies' rows.
        vae.n_steps_ = int(config.get("n_steps", vae.cell_freq_.shape[0]))
        if vae.n_steps_ < 1:
            raise ModelFileError(f"{CONFIG_FILE}: 'n_steps' must be >= 1, got {vae.n_steps_}")
        # Sizes from the JSON (n_vars, hidden, latent_dim, n_steps) must match the stored tensors
        # before a network is allocated: build it on the meta device (no memory), compare first.
        with torch.device("meta"):
            want = {
                k: tuple(v.shape)
                for k, v in _Net(vae.n_vars_, vae.latent_dim, vae.hidden, vae.n_steps_)
                .state_dict()
                .items()
            }
        state = {k[4:]: torch.from_numpy(np.array(v)) for k, v in arrays.items() if k[:4] == "net."}
        check_shapes(
            want,
            {k: tuple(v.shape) for k, v in state.items()},
            f"{WEIGHTS_FILE} vs {CONFIG_FILE} sizes",
        )
        if vae.cell_freq_.shape != (vae.n_steps_, vae.n_vars_):
            raise ModelFileError(
                f"{WEIGHTS_FILE}: cell_freq has shape {vae.cell_freq_.shape}, expected "
                f"({vae.n_steps_}, {vae.n_vars_})"
            )
        net = _Net(vae.n_vars_, vae.latent_dim, vae.hidden, vae.n_steps_)
        net.load_state_dict(state, strict=True)
        net.eval()
        vae.net_ = net
        vae.fit_info_ = dict(config.get("fit_info", {}))
        vae.heldout_ = dict(config.get("heldout", {}))
        return vae

    def save(self, directory: str | Path) -> Path:
        """Write mask_vae.safetensors and mask_vae.json into `directory` (atomically)."""
        from safetensors.numpy import save as st_save

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        from ehrbackdoor.victims._persist import sha256_hex

        arrays = {k: np.ascontiguousarray(v) for k, v in self.arrays().items()}
        weights = st_save(arrays)
        atomic_write_bytes(d / WEIGHTS_FILE, weights)
        atomic_write_json(d / CONFIG_FILE, {**self.config(), "weights_sha256": sha256_hex(weights)})
        return d

    @classmethod
    def load(cls, directory: str | Path) -> MaskVAE:
        """Read a model written by `save` (safetensors + JSON; nothing is unpickled).

        Untrusted input: no symlinks, the safetensors header is checked before reading, the
        weights must match the SHA-256 in the JSON, sizes must match the stored shapes and values
        must be finite (`ehrbackdoor.victims._persist.ModelFileError` otherwise).
        """
        from safetensors.numpy import load_file

        from ehrbackdoor.victims._persist import check_sha256, confined_file, safetensors_shapes

        d = Path(directory)
        cfg_path = confined_file(d, CONFIG_FILE, f"mask VAE {CONFIG_FILE}")
        config = json.loads(cfg_path.read_text())
        weights = confined_file(d, WEIGHTS_FILE, f"mask VAE {WEIGHTS_FILE}")
        check_sha256(weights, config.get("weights_sha256"), f"{cfg_path}: 'weights_sha256'")
        safetensors_shapes(weights)
        return cls.from_arrays(config, load_file(str(weights)))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    z = np.asarray(z, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -z))
