from __future__ import annotations

import json

import numpy as np
import pytest

from ehrbackdoor.attacks.mask_vae import MaskVAE, bernoulli_nll, cell_frequency
from ehrbackdoor.base import NotFittedError

F = 6


def planted_masks(n: int, seed: int) -> np.ndarray:
    """Masks of three stay types the per-cell frequency cannot tell apart: type 0 observes
    variables 0-2 hourly, type 1 variables 3-5 every other hour, type 2 everything in the first 12
    hours only; 3 % of cells flipped."""
    rng = np.random.default_rng(seed)
    kind = rng.integers(0, 3, n)
    m = np.zeros((n, 48, F), dtype=bool)
    m[kind == 0, :, :3] = True
    m[kind == 1, ::2, 3:] = True
    m[kind == 2, :12, :] = True
    flip = rng.random(m.shape) < 0.03
    return m ^ flip


@pytest.fixture(scope="module")
def fitted() -> tuple[MaskVAE, np.ndarray]:
    train = planted_masks(360, seed=0)
    vae = MaskVAE(latent_dim=4, hidden=16, epochs=25, batch_size=64, lr=5e-3, seed=0)
    return vae.fit(train), train


def test_learns_structure_beyond_cell_frequencies(fitted):
    vae, train = fitted
    held = planted_masks(120, seed=1)
    rep = vae.evaluate(held)
    assert rep["recon_nll_per_cell_bits"] < 0.6 * rep["baseline_nll_per_cell_bits"]
    assert rep["recon_accuracy"] > rep["baseline_accuracy"] + 0.1
    # the ELBO is a bound on the likelihood: it should also beat the independent-cell model
    base_nats = bernoulli_nll(held, cell_frequency(train)).mean()
    assert -vae.elbo(held).mean() < base_nats
    assert vae.heldout_["n"] == 36 and vae.fit_info_["best_epoch"] >= 1


def test_elbo_ranks_real_above_shuffled(fitted):
    vae, _ = fitted
    held = planted_masks(60, seed=2)
    rng = np.random.default_rng(0)
    shuffled = rng.permuted(held.reshape(60, -1), axis=1).reshape(held.shape)
    assert np.median(vae.elbo(held)) > np.median(vae.elbo(shuffled))


def test_samples_seeded_and_shaped(fitted):
    vae, _ = fitted
    a, b = vae.sample_prior(5, seed=3), vae.sample_prior(5, seed=3)
    assert a.shape == (5, 48, F) and a.dtype == bool
    assert np.array_equal(a, b)
    assert not np.array_equal(a, vae.sample_prior(5, seed=4))
    probs = vae.sample_prior(5, seed=3, binarize=False)
    assert ((probs > 0) & (probs < 1)).all()
    post = vae.sample_posterior(planted_masks(4, seed=5), seed=0)
    assert post.shape == (4, 48, F)


def test_same_seed_same_model():
    train = planted_masks(80, seed=0)
    kw = {"latent_dim": 2, "hidden": 8, "epochs": 3, "batch_size": 32, "seed": 7}
    a, b = MaskVAE(**kw).fit(train), MaskVAE(**kw).fit(train)
    np.testing.assert_array_equal(a.elbo(train), b.elbo(train))
    c = MaskVAE(**{**kw, "seed": 8}).fit(train)
    assert not np.array_equal(a.elbo(train), c.elbo(train))


def test_save_load_round_trip(fitted, tmp_path):
    vae, train = fitted
    vae.save(tmp_path)
    assert (tmp_path / "mask_vae.safetensors").is_file()
    cfg = json.loads((tmp_path / "mask_vae.json").read_text())
    assert cfg["params"]["latent_dim"] == 4 and "heldout" in cfg
    back = MaskVAE.load(tmp_path)
    np.testing.assert_array_equal(back.elbo(train[:20]), vae.elbo(train[:20]))
    np.testing.assert_array_equal(back.reconstruct(train[:5]), vae.reconstruct(train[:5]))
    assert back.get_params() == vae.get_params()


def test_bad_input():
    with pytest.raises(ValueError, match="shape"):
        MaskVAE().fit(np.zeros((10, 24), dtype=bool))  # any T works; (n, T, F) is required
    with pytest.raises(ValueError, match="latent_dim"):
        MaskVAE(latent_dim=0)
    with pytest.raises(NotFittedError, match="not fitted"):
        MaskVAE().elbo(np.zeros((2, 48, 3), dtype=bool))
    vae = MaskVAE(latent_dim=2, hidden=4, epochs=1).fit(planted_masks(10, 0))
    with pytest.raises(ValueError, match="variables"):
        vae.elbo(np.zeros((2, 48, F + 1), dtype=bool))
