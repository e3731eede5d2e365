"""A saved mask VAE directory is untrusted input too: forged sizes, NaN, changed weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from ehrbackdoor.attacks.mask_vae import CONFIG_FILE, WEIGHTS_FILE, MaskVAE
from ehrbackdoor.victims._persist import ModelFileError, sha256_hex


@pytest.fixture(scope="module")
def vae():
    rng = np.random.default_rng(0)
    masks = rng.random((40, 48, 3)) < 0.3
    return MaskVAE(latent_dim=2, hidden=4, epochs=1, seed=0).fit(masks)


def _edit(d, fn):
    cfg = json.loads((d / CONFIG_FILE).read_text())
    fn(cfg)
    (d / CONFIG_FILE).write_text(json.dumps(cfg))


def test_round_trip(vae, tmp_path):
    vae.save(tmp_path)
    assert MaskVAE.load(tmp_path).n_vars_ == vae.n_vars_


@pytest.mark.parametrize(("field", "value"), [("hidden", 10**6), ("latent_dim", 10**6)])
def test_forged_sizes_fail_before_allocation(vae, tmp_path, field, value):
    vae.save(tmp_path)
    _edit(tmp_path, lambda c: c["params"].update({field: value}))
    with pytest.raises(ModelFileError, match="disagree with the sizes"):
        MaskVAE.load(tmp_path)


def test_forged_n_vars_fails_before_allocation(vae, tmp_path):
    vae.save(tmp_path)
    _edit(tmp_path, lambda c: c.update(n_vars=10**7))
    with pytest.raises(ModelFileError, match="disagree with the sizes"):
        MaskVAE.load(tmp_path)


def test_changed_or_nan_weights_are_refused(vae, tmp_path):
    vae.save(tmp_path)
    w = tmp_path / WEIGHTS_FILE
    arrays = load_file(str(w))
    key = next(k for k in arrays if k.startswith("net."))
    arrays[key] = arrays[key].copy()
    arrays[key].reshape(-1)[0] = np.nan
    save_file(arrays, str(w))
    with pytest.raises(ModelFileError, match="SHA-256"):
        MaskVAE.load(tmp_path)
    _edit(tmp_path, lambda c: c.update(weights_sha256=sha256_hex(w)))
    with pytest.raises(ModelFileError, match="non-finite"):
        MaskVAE.load(tmp_path)


def test_symlinked_weights_are_refused(vae, tmp_path):
    d = tmp_path / "m"
    vae.save(d)
    (d / WEIGHTS_FILE).rename(tmp_path / "real.safetensors")
    (d / WEIGHTS_FILE).symlink_to(tmp_path / "real.safetensors")
    with pytest.raises(ModelFileError, match="symlink"):
        MaskVAE.load(d)
