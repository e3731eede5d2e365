"""Saved mask VAEs and triggers are untrusted input too: forged sizes, NaN, changed bytes."""

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


def test_trigger_arrays_changed_or_symlinked_are_refused(tmp_path):
    from ehrbackdoor.attacks import load_trigger, make_trigger
    from ehrbackdoor.data.schema import physionet2012_schema
    from tests.attacks.conftest import random_cohort

    trig = make_trigger("fixed", variable="HR", value=300.0, hours=24).fit(
        random_cohort(physionet2012_schema(), n=20)
    )
    d = tmp_path / "t"
    d.mkdir()
    trig.save(d)
    assert load_trigger(d).get_params() == trig.get_params()
    raw = bytearray((d / "trigger.npz").read_bytes())
    raw[len(raw) // 2] ^= 0x01
    (d / "trigger.npz").write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match="SHA-256"):
        load_trigger(d)
    (d / "trigger.npz").rename(tmp_path / "real.npz")
    (d / "trigger.npz").symlink_to(tmp_path / "real.npz")
    with pytest.raises(ModelFileError, match="symlink"):
        load_trigger(d)
