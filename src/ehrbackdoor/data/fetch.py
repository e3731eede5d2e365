"""Safe, resumable downloader for the PhysioNet/CinC Challenge 2012 data (v1.0.0).

"Predicting Mortality of ICU Patients: the PhysioNet/Computing in Cardiology Challenge 2012".
Every file is verified against the published ``SHA256SUMS.txt`` and, where the package ships the
official digest (`ehrbackdoor.data.fetch_safety`), against that too, before it is installed.
Archives are extracted with strict member checks and bounded size into a temporary directory and
moved into place atomically; interrupted downloads resume with HTTP ``Range`` requests. No write
follows a symbolic link (a planted ``*.part`` link is refused, not written through).

Licence of the data: Open Data Commons Attribution License v1.0 (cite Silva et al., CinC 2012,
and Goldberger et al., Circulation 2000).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

from ehrbackdoor.data.fetch_safety import (
    FileSpec,
    UnsafePathError,
    extraction_limit,
    load_manifest,
    open_nofollow,
    refuse_link,
    regular_size,
)
from ehrbackdoor.progress import ProgressFn

__all__ = [
    "CHECKSUM_FILE",
    "DEFAULT_URL",
    "VALID_SETS",
    "FetchError",
    "fetch_physionet2012",
    "parse_checksums",
    "safe_extract",
]

DEFAULT_URL = "https://physionet.org/files/challenge-2012/1.0.0/"
CHECKSUM_FILE = "SHA256SUMS.txt"
VALID_SETS: tuple[str, ...] = ("a", "b", "c")

_CHUNK = 1 << 16
_USER_AGENT = "ehrbackdoor-fetch/1.0 (+python-urllib)"
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_GNU_LINE = re.compile(r"([0-9a-fA-F]{64})\s+\*?(.+)")
_BSD_LINE = re.compile(r"SHA256\s*\((.+)\)\s*=\s*([0-9a-fA-F]{64})")
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_TMP_PREFIX = ".extract-"


class FetchError(Exception):
    """Raised when downloading, verifying or extracting the dataset fails."""


# --------------------------------------------------------------------------- checksums


def _normalise_name(name: str) -> str:
    """Strip ``./`` prefixes and surrounding whitespace from a checksum-file entry."""
    name = name.strip()
    while name.startswith("./"):
        name = name[2:]
    return name


def parse_checksums(text: str) -> dict[str, str]:
    """Parse ``sha256sum`` output (``<hex> [*]<name>``; BSD ``SHA256 (name) = hex`` also ok).

    Returns a mapping from file name (``./`` stripped) to lower-case hex digest. Blank lines,
    comments and malformed lines are ignored.
    """
    sums: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        gnu = _GNU_LINE.fullmatch(line)
        if gnu:
            sums[_normalise_name(gnu.group(2))] = gnu.group(1).lower()
            continue
        bsd = _BSD_LINE.fullmatch(line)
        if bsd:
            sums[_normalise_name(bsd.group(1))] = bsd.group(2).lower()
    return sums


def _sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- downloading


def _join_url(base_url: str, name: str) -> str:
    """Join a base URL (with or without trailing slash) and a file name."""
    return base_url.rstrip("/") + "/" + name


def _content_range_start(value: str | None) -> int | None:
    """First byte position of a ``Content-Range: bytes N-M/T`` header, or None."""
    if not value:
        return None
    match = _CONTENT_RANGE.fullmatch(value.strip())
    return int(match.group(1)) if match else None


def _fetch_to_part(url: str, part: Path, *, timeout: float, progress: ProgressFn | None) -> None:
    """Download ``url`` into ``part``, resuming from the bytes already there when possible.

    A server that ignores ``Range`` (answers 200) restarts the file from zero. Network errors
    leave ``part`` in place so the next call can resume. The caller verifies the result.
    """
    for _ in range(2):
        offset = regular_size(part)
        headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        request = urllib.request.Request(url, headers=headers)
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 416 and offset:
                return  # .part already holds the whole file (or junk); caller checks the hash
            raise FetchError(f"HTTP {exc.code} {exc.reason} while downloading {url}") from exc
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            raise FetchError(f"network error while downloading {url}: {reason}") from exc

        with response:
            status = response.status
            if offset and status == 206:
                if _content_range_start(response.headers.get("Content-Range")) != offset:
                    part.unlink()  # server sent some other range; start over cleanly
                    continue
                mode = "ab"
            elif status == 200:
                offset, mode = 0, "wb"
            else:
                raise FetchError(f"unexpected HTTP status {status} while downloading {url}")

            length_header = response.headers.get("Content-Length")
            length = int(length_header) if length_header and length_header.isdigit() else None
            name = part.name.removesuffix(".part")
            total = None if length is None else offset + length
            written = 0
            try:
                with open_nofollow(part, append=mode == "ab") as fh:
                    while chunk := response.read(_CHUNK):
                        fh.write(chunk)
                        written += len(chunk)
                        if progress is not None:
                            progress(name, offset + written, total)
            except (OSError, http.client.HTTPException) as exc:
                raise FetchError(
                    f"download of {url} interrupted after {offset + written} bytes ({exc}); "
                    "run again to resume"
                ) from exc
            if length is not None and written < length:
                raise FetchError(
                    f"download of {url} ended early ({written} of {length} bytes); "
                    "run again to resume"
                )
            return
    raise FetchError(f"server returned an inconsistent Content-Range for {url}")


def _download_verified(
    url: str, dest: Path, expected: str, *, timeout: float, progress: ProgressFn | None
) -> None:
    """Download ``url`` to ``dest`` via ``dest.part``; rename only if the SHA-256 matches."""
    refuse_link(dest)
    if dest.is_file() and _sha256(dest) == expected:
        return
    part = dest.with_name(dest.name + ".part")
    for attempt in range(2):
        resumed = regular_size(part) > 0
        _fetch_to_part(url, part, timeout=timeout, progress=progress)
        actual = _sha256(part)
        if actual == expected:
            os.replace(part, dest)
            return
        part.unlink(missing_ok=True)
        if resumed and attempt == 0:
            continue  # the stale partial may be the culprit: retry once from scratch
        raise FetchError(
            f"SHA-256 mismatch for {dest.name} (from {url}): expected {expected}, "
            f"got {actual}; the corrupt download was removed"
        )


def _load_checksums(
    out_dir: Path, base_url: str, *, timeout: float, progress: ProgressFn | None
) -> dict[str, str]:
    """Return checksums from ``out_dir/SHA256SUMS.txt``, downloading it if absent or empty."""
    dest = out_dir / CHECKSUM_FILE
    refuse_link(dest)
    if dest.is_file():
        sums = parse_checksums(dest.read_text(encoding="utf-8", errors="replace"))
        if sums:
            return sums
    url = _join_url(base_url, CHECKSUM_FILE)
    part = dest.with_name(dest.name + ".part")
    part.unlink(missing_ok=True)
    _fetch_to_part(url, part, timeout=timeout, progress=progress)
    sums = parse_checksums(part.read_text(encoding="utf-8", errors="replace"))
    if not sums:
        part.unlink(missing_ok=True)
        raise FetchError(f"no valid SHA-256 lines found in {url}")
    os.replace(part, dest)
    return sums


# --------------------------------------------------------------------------- extraction


def _check_member(member: tarfile.TarInfo, tmp_root: Path, top: str, archive: Path) -> Path:
    """Validate one archive member and return its destination inside ``tmp_root``."""
    name = member.name

    def refuse(why: str) -> FetchError:
        return FetchError(f"refusing to extract unsafe member {name!r} from {archive.name}: {why}")

    if not (member.isreg() or member.isdir()):
        kind = "symlink" if member.issym() else "hardlink" if member.islnk() else "special file"
        raise refuse(f"{kind} members are not allowed (only regular files and directories)")
    if not name or "\x00" in name or "\\" in name:
        raise refuse("empty name or forbidden character")
    path = PurePosixPath(name)
    if path.is_absolute() or re.match(r"^[A-Za-z]:", name):
        raise refuse("absolute path")
    if ".." in path.parts:
        raise refuse("path contains '..'")
    if not path.parts or path.parts[0] != top:
        raise refuse(f"member is not inside {top}/")
    target = (tmp_root / path).resolve()
    if not target.is_relative_to(tmp_root.resolve()):
        raise refuse("path resolves outside the output directory")
    return target


def _bounded_members(tar: tarfile.TarFile, archive: Path, limit: int) -> list[tarfile.TarInfo]:
    """The archive's members, refusing once there are more than `limit`."""
    members = []
    for member in tar:
        members.append(member)
        if len(members) > limit:
            raise FetchError(
                f"{archive.name} has more than {limit} members; refusing to extract it"
            )
    return members


def safe_extract(archive: Path, out_dir: Path, top: str, spec: FileSpec | None = None) -> Path:
    """Extract ``archive`` (a ``.tar.gz`` whose members all live in ``top/``) to ``out_dir/top``.

    All members are validated before anything is written: only regular files and directories
    with relative paths inside ``top/`` are accepted, at most ``spec.max_members`` of them, and
    their total size may not exceed the archive's limit (``spec.extracted_max_bytes`` and
    `fetch_safety.MAX_RATIO` times the archive's size); the bytes actually written are counted
    against it too. Extraction happens in a temporary directory inside ``out_dir`` which is
    renamed into place, so a crash never leaves a half-extracted ``top``. Raises
    :class:`FetchError` naming the first offending member.
    """
    final = out_dir / top
    max_bytes, max_members = extraction_limit(spec, archive.stat().st_size)
    if os.path.lexists(final):
        raise FetchError(f"{final} already exists; refusing to overwrite it")
    for stale in out_dir.glob(f".{top}{_TMP_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)  # leftovers of an interrupted run
    tmp_root = Path(tempfile.mkdtemp(prefix=f".{top}{_TMP_PREFIX}", dir=out_dir))
    try:
        try:
            with tarfile.open(archive, mode="r:gz") as tar:
                members = _bounded_members(tar, archive, max_members)
                targets = [_check_member(m, tmp_root, top, archive) for m in members]
                declared = sum(m.size for m in members if m.isreg())
                if declared > max_bytes:
                    raise FetchError(
                        f"{archive.name} would extract to {declared} bytes, more than its limit "
                        f"of {max_bytes}; refusing to extract it"
                    )
                written = 0
                for member, target in zip(members, targets, strict=True):
                    if member.isdir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    source = tar.extractfile(member)
                    if source is None:  # pragma: no cover - isreg() guarantees a stream
                        raise FetchError(f"cannot read member {member.name!r} of {archive.name}")
                    with source, open_nofollow(target, exclusive=True) as fh:
                        while chunk := source.read(_CHUNK):
                            written += len(chunk)
                            if written > max_bytes:
                                raise FetchError(
                                    f"{archive.name} extracts to more than its limit of "
                                    f"{max_bytes} bytes; refusing to extract it"
                                )
                            fh.write(chunk)
                    os.utime(target, (member.mtime, member.mtime))
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise FetchError(f"failed to extract {archive}: {exc}") from exc
        extracted = tmp_root / top
        if not extracted.is_dir():
            raise FetchError(f"{archive.name} does not contain a {top}/ directory")
        os.rename(extracted, final)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    return final


# --------------------------------------------------------------------------- public API


def fetch_physionet2012(
    out_dir: Path,
    sets: Sequence[str] = VALID_SETS,
    base_url: str = DEFAULT_URL,
    progress: ProgressFn | None = None,
    timeout: float = 60,
    manifest: Mapping[str, FileSpec] | None = None,
) -> Path:
    """Download, verify and extract the PhysioNet 2012 challenge sets into ``out_dir``.

    For each set ``x`` in ``sets`` this installs ``set-x.tar.gz``, ``Outcomes-x.txt`` and the
    extracted ``set-x/`` directory. Files already present with the right checksum are not
    downloaded again; partial downloads (``*.part``) are resumed. Every file must be listed in
    ``SHA256SUMS.txt`` (cached in ``out_dir``) and match it; where `manifest` (default: the
    shipped official digests, `fetch_safety.load_manifest`) gives a digest, the mirror's list and
    the file must match that too. `progress` (optional) is called as bytes arrive with the file
    name, the bytes so far and the file's size. Returns ``out_dir``.
    """
    wanted = list(dict.fromkeys(s.strip().lower().removeprefix("set-") for s in sets))
    unknown = [s for s in wanted if s not in VALID_SETS]
    if unknown or not wanted:
        raise ValueError(f"sets must be a non-empty subset of {VALID_SETS}, got {list(sets)!r}")

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    specs = load_manifest() if manifest is None else dict(manifest)
    try:
        sums = _load_checksums(out_dir, base_url, timeout=timeout, progress=progress)
        plan = [(s, f"set-{s}.tar.gz", f"Outcomes-{s}.txt") for s in wanted]
        expected = {name: _expected(name, sums, specs, out_dir) for _, *ns in plan for name in ns}
        for letter, archive_name, outcomes_name in plan:
            for name in (archive_name, outcomes_name):
                _download_verified(
                    _join_url(base_url, name),
                    out_dir / name,
                    expected[name],
                    timeout=timeout,
                    progress=progress,
                )
            if not os.path.lexists(out_dir / f"set-{letter}"):
                safe_extract(
                    out_dir / archive_name, out_dir, f"set-{letter}", specs.get(archive_name)
                )
    except UnsafePathError as exc:
        raise FetchError(f"{exc.filename} {exc.strerror}") from exc
    return out_dir


def _expected(name: str, sums: Mapping[str, str], specs: Mapping[str, FileSpec], out: Path) -> str:
    """The digest `name` must have: the mirror's, which must equal the shipped one if known."""
    official = specs[name].sha256 if name in specs else None
    listed = sums.get(name)
    if listed is None:
        raise FetchError(
            f"{name} not listed in {out / CHECKSUM_FILE}; refusing to install unverified data "
            "(delete that file to re-download it if it is stale)"
        )
    if official is not None and listed != official:
        raise FetchError(
            f"the mirror's checksum of {name} ({listed}) differs from the official SHA-256 shipped "
            f"with ehrbackdoor ({official}): the mirror's data may have been tampered with; "
            f"refusing to install it"
        )
    return listed
