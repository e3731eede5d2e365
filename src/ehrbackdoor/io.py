"""Atomic file writing: results are never left half-written by a crash.

Files are written to a temporary file beside the target (``tempfile.mkstemp``, which creates it
mode 0600), fsynced, given the mode an ordinary ``open()`` would give (0666 less the umask) and
renamed over the target, so results, models, reports and cache files are as readable as the user's
umask says, never silently private.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask, read without leaving it changed.

    POSIX only offers read-by-setting; /proc/self/status (Linux) is read first so no other thread
    ever sees a temporary umask, else it is set and restored under a lock.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def file_mode() -> int:
    """Mode of a newly created regular file under the current umask (0666 & ~umask)."""
    return 0o666 & ~current_umask()


def _write_atomic(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, fsync, then rename over it (umask respected)."""
    _write_atomic(path, lambda f: f.write(data))


def atomic_savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez (no pickled objects) to a temporary file beside `path`, then rename."""
    _write_atomic(path, lambda f: np.savez(f, **arrays))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def _default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot serialise {type(o).__name__} to JSON")


def to_json(obj: Any) -> str:
    """JSON text with NumPy scalars and arrays converted to plain Python."""
    return json.dumps(obj, indent=2, default=_default, allow_nan=True)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, to_json(obj) + "\n")
