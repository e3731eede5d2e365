"""A saved model directory is untrusted input: every tampering is refused with a named error."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from ehrbackdoor.victims import load_victim
from ehrbackdoor.victims._persist import ModelFileError, safetensors_shapes, sha256_hex


def _saved(fitted_small, name: str, tmp_path: Path) -> Path:
    d = tmp_path / name
    fitted_small[name].save(d)
    return d


def _edit(d: Path, fn) -> None:
    cfg = json.loads((d / "victim.json").read_text())
    fn(cfg)
    (d / "victim.json").write_text(json.dumps(cfg))  # json writes NaN as the token NaN


def _rehash(d: Path) -> None:
    """Make the recorded hash match again, so only the check under test can fire."""
    _edit(d, lambda c: c.update(weights_sha256=sha256_hex(d / "weights.safetensors")))


@pytest.mark.parametrize("name", ["lr", "mlp", "gbdt"])
def test_round_trip_still_loads(fitted_small, tmp_path, name):
    d = _saved(fitted_small, name, tmp_path)
    cfg = json.loads((d / "victim.json").read_text())
    assert cfg["weights_sha256"] == sha256_hex(d / "weights.safetensors")
    assert load_victim(d).threshold_ == fitted_small[name].threshold_


# ---------------------------------------------------------------------------- path escapes
def test_weights_path_outside_the_directory_is_refused(fitted_small, tmp_path):
    d = _saved(fitted_small, "lr", tmp_path)
    outside = tmp_path / "outside.safetensors"
    outside.write_bytes((d / "weights.safetensors").read_bytes())
    digest = sha256_hex(outside)
    for bad in ("../outside.safetensors", str(outside), "sub/../../outside.safetensors"):
        _edit(d, lambda c, bad=bad: c.update(weights=bad, weights_sha256=digest))
        with pytest.raises(ModelFileError, match="'weights'.*(relative|outside)"):
            load_victim(d)


def test_symlinked_weights_are_refused(fitted_small, tmp_path):
    d = _saved(fitted_small, "lr", tmp_path)
    real = tmp_path / "elsewhere.safetensors"
    (d / "weights.safetensors").rename(real)
    (d / "weights.safetensors").symlink_to(real)
    with pytest.raises(ModelFileError, match="symlink"):
        load_victim(d)


def test_non_string_weights_field_is_refused(fitted_small, tmp_path):
    d = _saved(fitted_small, "lr", tmp_path)
    _edit(d, lambda c: c.update(weights=["weights.safetensors"]))
    with pytest.raises(ModelFileError, match="'weights' must be a file name"):
        load_victim(d)


# ---------------------------------------------------------------------------- huge sizes
@pytest.mark.parametrize(
    ("name", "field", "value"),
    [
        ("mlp", "hidden", [10**6]),
        ("gru", "hidden", 10**5),
        ("grud", "hidden", 10**6),
        ("mlp", "n_in", 10**9),
    ],
)
def test_forged_sizes_fail_before_allocation(fitted_small, tmp_path, name, field, value):
    """hidden = 10^5..10^6 asked torch for 120 GB - 12 TB; now it is compared with the stored
    shapes on the meta device, so it fails at once and allocates nothing."""
    d = _saved(fitted_small, name, tmp_path)
    _edit(d, lambda c: c["state"]["arch"].update({field: value}))
    t0 = time.perf_counter()
    with pytest.raises(ModelFileError, match="disagree with the sizes in the JSON"):
        load_victim(d)
    assert time.perf_counter() - t0 < 5.0


def test_forged_safetensors_header_is_refused(fitted_small, tmp_path):
    d = _saved(fitted_small, "mlp", tmp_path)
    w = d / "weights.safetensors"
    raw = w.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    key = next(k for k in header if k != "__metadata__")
    header[key]["shape"] = [10**6, 10**6]  # 4 TB of float32 claimed by a small file
    new = json.dumps(header).encode()
    w.write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + n :])
    _rehash(d)
    with pytest.raises(ModelFileError, match="does not fit its byte range"):
        load_victim(d)
    w.write_bytes(struct.pack("<Q", 10**12) + raw[8:])  # header length beyond the file
    with pytest.raises(ModelFileError, match="header length"):
        safetensors_shapes(w)


# ---------------------------------------------------------------------------- non-finite values
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_threshold_is_refused(fitted_small, tmp_path, bad):
    d = _saved(fitted_small, "lr", tmp_path)
    _edit(d, lambda c: c.update(threshold=bad))
    with pytest.raises(ModelFileError, match="'threshold' must be a finite number"):
        load_victim(d)


@pytest.mark.parametrize("name", ["lr", "mlp", "gbdt"])
def test_non_finite_weights_are_refused(fitted_small, tmp_path, name):
    d = _saved(fitted_small, name, tmp_path)
    w = d / "weights.safetensors"
    tensors = load_file(str(w))
    key = next(k for k, v in tensors.items() if v.dtype.kind == "f" and v.size)
    tensors[key] = tensors[key].copy()
    tensors[key].reshape(-1)[0] = np.nan
    save_file(tensors, str(w))
    _rehash(d)
    with pytest.raises(ModelFileError, match=f"tensor '{key}' holds 1 non-finite"):
        load_victim(d)


def test_non_finite_scaler_statistics_are_refused(fitted_small, tmp_path):
    d = _saved(fitted_small, "lr", tmp_path)
    _edit(d, lambda c: c["state"]["features"]["std"].__setitem__(3, float("nan")))
    with pytest.raises(ValueError, match="'std'.*non-finite|non-finite.*'std'"):
        load_victim(d)


# ---------------------------------------------------------------------------- hash
def test_weights_changed_after_saving_are_refused(fitted_small, tmp_path):
    d = _saved(fitted_small, "lr", tmp_path)
    w = d / "weights.safetensors"
    tensors = load_file(str(w))
    tensors["coef"] = tensors["coef"] * 2.0  # finite, right shape: only the hash can tell
    save_file(tensors, str(w))
    with pytest.raises(ModelFileError, match="SHA-256 .* does not match"):
        load_victim(d)


def test_corrupted_bytes_are_refused(fitted_small, tmp_path):
    d = _saved(fitted_small, "mlp", tmp_path)
    w = d / "weights.safetensors"
    raw = bytearray(w.read_bytes())
    raw[-1] ^= 0x01  # one flipped bit in the last weight: same shapes, finite, wrong model
    w.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match="SHA-256"):
        load_victim(d)


def test_missing_hash_is_refused(fitted_small, tmp_path):
    d = _saved(fitted_small, "lr", tmp_path)
    _edit(d, lambda c: c.pop("weights_sha256"))
    with pytest.raises(ModelFileError, match="'weights_sha256' must be a 64-digit"):
        load_victim(d)
