"""Checks that make loading a saved model safe against a tampered or corrupt directory.

A model directory may come from someone else, so nothing in it is trusted: a file name read from
JSON must name a regular file inside the directory (no absolute path, no ``..``, no symlink out);
the safetensors header is parsed and checked against the file's size before any tensor is read;
sizes recorded in JSON are compared with the tensors' shapes before a module is built (a forged
``hidden`` of 10^6 would otherwise make torch allocate terabytes); numbers must be finite; and the
weights' SHA-256 recorded at save time must match. Every error names the file and the field.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

#: Upper bound on a safetensors JSON header (the format's own reference limit is 100 MB).
MAX_HEADER_BYTES = 100_000_000
_ITEMSIZE = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}


class ModelFileError(ValueError):
    """A saved model directory is malformed, tampered with or inconsistent."""


def confined_file(directory: Path, name: Any, where: str) -> Path:
    """`directory / name` if `name` is a relative path to a regular file inside `directory`.

    `where` names the JSON file and field for the error message (e.g. ``victim.json: 'weights'``).
    """
    if not isinstance(name, str) or not name or "\x00" in name:
        raise ModelFileError(f"{where} must be a file name, got {name!r}")
    rel = Path(name)
    if rel.is_absolute() or rel.drive or ".." in rel.parts or "\\" in name:
        raise ModelFileError(
            f"{where} = {name!r} must be a relative path inside the model directory "
            "(no absolute paths, no '..')"
        )
    path = directory / rel
    root = directory.resolve()
    probe = directory
    for part in rel.parts:  # no symlink anywhere on the way, even one pointing back inside
        probe = probe / part
        if probe.is_symlink():
            raise ModelFileError(f"{where} = {name!r}: {probe} is a symlink; refusing to follow it")
    if not path.resolve().is_relative_to(root):
        raise ModelFileError(f"{where} = {name!r} resolves outside the model directory {root}")
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found ({where})")
    return path


def safetensors_shapes(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """{tensor name: (dtype, shape)} from a safetensors header, checked against the file size.

    Reads only the header, so a forged file is rejected before any tensor is allocated.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ModelFileError(f"{path}: too short for a safetensors file ({size} bytes)")
        n = int.from_bytes(head, "little")
        if n > min(MAX_HEADER_BYTES, size - 8):
            raise ModelFileError(f"{path}: safetensors header length {n} exceeds the file")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelFileError(f"{path}: unreadable safetensors header ({exc})") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path}: safetensors header is not a JSON object")
    data_bytes = size - 8 - n
    out: dict[str, tuple[str, tuple[int, ...]]] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
            ok = (
                dtype in _ITEMSIZE
                and all(isinstance(d, int) and d >= 0 for d in shape)
                and isinstance(begin, int)
                and isinstance(end, int)
            )
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise ModelFileError(f"{path}: malformed safetensors entry {name!r}: {info!r}")
        nbytes = math.prod(shape) * _ITEMSIZE[dtype]
        if not 0 <= begin <= end <= data_bytes or end - begin != nbytes:
            raise ModelFileError(
                f"{path}: tensor {name!r} of shape {shape} ({dtype}) does not fit its byte range "
                f"[{begin}, {end}) in {data_bytes} data bytes"
            )
        out[name] = (dtype, tuple(shape))
    return out


def sha256_hex(data: bytes | Path) -> str:
    """SHA-256 of bytes or of a file's contents, as hex."""
    if isinstance(data, Path):
        h = hashlib.sha256()
        with data.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()
    return hashlib.sha256(data).hexdigest()


def check_sha256(path: Path, expected: Any, where: str) -> None:
    if not isinstance(expected, str) or len(expected) != 64:
        raise ModelFileError(f"{where} must be a 64-digit SHA-256 hex string, got {expected!r}")
    got = sha256_hex(path)
    if got != expected.lower():
        raise ModelFileError(
            f"{path}: SHA-256 {got} does not match {where} = {expected}; the weights were changed "
            "or belong to another model"
        )


def finite_number(value: Any, where: str) -> float:
    """`value` as a finite float, or a ModelFileError naming `where`."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ModelFileError(f"{where} must be a number, got {value!r}") from None
    if not math.isfinite(x) or isinstance(value, bool):
        raise ModelFileError(f"{where} must be a finite number, got {value!r}")
    return x


def check_finite_tensors(tensors: Mapping[str, Any], path: Path) -> None:
    """Every floating tensor (numpy or torch) holds finite values only."""
    for name, t in tensors.items():
        a = (
            t.detach().cpu().float().numpy()
            if hasattr(t, "detach") and t.is_floating_point()
            else np.asarray(t)
        )
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            n_bad = int((~np.isfinite(a)).sum())
            raise ModelFileError(f"{path}: tensor {name!r} holds {n_bad} non-finite values")


def check_shapes(
    expected: Mapping[str, tuple[int, ...]], stored: Mapping[str, tuple[int, ...]], where: str
) -> None:
    """The tensors a module built from JSON sizes expects are exactly those stored."""
    missing, extra = sorted(set(expected) - set(stored)), sorted(set(stored) - set(expected))
    if missing or extra:
        raise ModelFileError(f"{where}: missing tensors {missing}, unexpected {extra}")
    bad = {k: (expected[k], stored[k]) for k in expected if tuple(expected[k]) != tuple(stored[k])}
    if bad:
        k, (want, got) = next(iter(bad.items()))
        raise ModelFileError(
            f"{where}: {len(bad)} tensors disagree with the sizes in the JSON, e.g. {k!r}: the "
            f"JSON implies {list(want)}, the weights file holds {list(got)}"
        )
