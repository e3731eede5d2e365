"""What `data fetch` trusts: the shipped manifest of official digests, extraction limits, and
file writes that never follow links.

A mirror's own SHA256SUMS.txt catches corruption but not tampering (whoever alters the archive
alters the list too), so the expected digests of the official files ship with the package
(``resources/physionet2012_manifest.json``); where a digest is present, the mirror's list and the
download must both match it. Extraction is bounded by the manifest's per-archive size and member
count (with margin) and by a compression-ratio limit, so a small archive cannot fill the disk.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import BinaryIO

_HEX64 = frozenset("0123456789abcdef")
#: Extracted bytes may be at most this many times the archive's size (text gzips about 4:1).
MAX_RATIO = 20.0
#: Limits for an archive the manifest does not describe.
DEFAULT_MAX_BYTES = 1 << 30
DEFAULT_MAX_MEMBERS = 100_000


class UnsafePathError(OSError):
    """A path to be written is a link or not a plain file."""


@dataclass(frozen=True)
class FileSpec:
    sha256: str | None = None
    extracted_max_bytes: int = DEFAULT_MAX_BYTES
    max_members: int = DEFAULT_MAX_MEMBERS


def load_manifest() -> dict[str, FileSpec]:
    """The shipped manifest: file name -> expected digest (or None) and extraction limits."""
    text = (
        resources.files("ehrbackdoor.data")
        .joinpath("resources/physionet2012_manifest.json")
        .read_text(encoding="utf-8")
    )
    return parse_manifest(json.loads(text))


def parse_manifest(doc: dict) -> dict[str, FileSpec]:
    out = {}
    for name, spec in doc.get("files", {}).items():
        digest = spec.get("sha256")
        if digest is not None:
            digest = str(digest).lower()
            if len(digest) != 64 or not set(digest) <= _HEX64:
                raise ValueError(f"manifest: bad sha256 for {name!r}")
        out[str(name)] = FileSpec(
            digest,
            int(spec.get("extracted_max_bytes", DEFAULT_MAX_BYTES)),
            int(spec.get("max_members", DEFAULT_MAX_MEMBERS)),
        )
    return out


def extraction_limit(spec: FileSpec | None, archive_bytes: int) -> tuple[int, int]:
    """(max extracted bytes, max members) for an archive of `archive_bytes`."""
    spec = spec or FileSpec()
    return min(spec.extracted_max_bytes, int(MAX_RATIO * max(archive_bytes, 1))), spec.max_members


def regular_size(path: Path) -> int:
    """Size of a plain file at `path` (0 if absent); raises UnsafePathError for links and others."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0
    if not stat.S_ISREG(st.st_mode):
        raise UnsafePathError(
            errno.ELOOP, "is a link or not a plain file; refusing to use it", str(path)
        )
    return st.st_size


def refuse_link(path: Path) -> None:
    """Raise UnsafePathError if `path` exists and is anything but a plain file."""
    regular_size(path)


def open_nofollow(path: Path, append: bool = False, exclusive: bool = False) -> BinaryIO:
    """Open a plain file for writing without following a symlink at `path`.

    Refuses links (O_NOFOLLOW), non-regular files and files with other hard links (writing would
    change the other name too). Truncates only after those checks.
    """
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    if exclusive:
        flags |= os.O_EXCL
    if append:
        flags |= os.O_APPEND
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            raise UnsafePathError(
                errno.ELOOP, "is a symbolic link; refusing to write through it", str(path)
            ) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            raise UnsafePathError(
                errno.EPERM, "is not a plain singly-linked file; refusing to write it", str(path)
            )
        if not append:
            os.ftruncate(fd, 0)
        return os.fdopen(fd, "ab" if append else "wb")
    except BaseException:
        os.close(fd)
        raise
