"""Atomic writes: complete files, and the mode the user's umask asks for (not mkstemp's 0600)."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from ehrbackdoor.io import (
    atomic_savez,
    atomic_write_bytes,
    atomic_write_json,
    current_umask,
    file_mode,
)


@pytest.fixture
def umask():
    old = os.umask(0o022)
    os.umask(old)

    def set_(mask: int) -> None:
        os.umask(mask)

    yield set_
    os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002, 0o027])
def test_atomic_writes_respect_the_umask(tmp_path, umask, mask):
    umask(mask)
    assert current_umask() == mask
    assert file_mode() == 0o666 & ~mask
    atomic_write_bytes(tmp_path / "a.bin", b"x")
    atomic_write_json(tmp_path / "r.json", {"a": 1})
    atomic_savez(tmp_path / "c.npz", {"x": np.arange(3)})
    for name in ("a.bin", "r.json", "c.npz"):
        mode = stat.S_IMODE((tmp_path / name).stat().st_mode)
        assert mode == 0o666 & ~mask, (name, oct(mode))
        # the same as a file opened the ordinary way
    (tmp_path / "plain").write_bytes(b"")
    assert stat.S_IMODE((tmp_path / "plain").stat().st_mode) == 0o666 & ~mask


def test_reading_the_umask_leaves_it_unchanged(umask):
    umask(0o027)
    for _ in range(3):
        assert current_umask() == 0o027
    assert os.umask(0o027) == 0o027


def test_failed_write_leaves_no_temporary_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "r.json"
    atomic_write_bytes(target, b"old")
    with pytest.raises(TypeError):
        atomic_write_json(target, {"bad": object()})
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
