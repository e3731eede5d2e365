"""Tests for the PhysioNet 2012 downloader against a local Range-capable HTTP server."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from ehrbackdoor.data import fetch as fetch_module
from ehrbackdoor.data.fetch import FetchError, fetch_physionet2012, parse_checksums
from ehrbackdoor.data.fetch_safety import FileSpec, load_manifest

N_RECORDS = 5


def _shared_physionet() -> Path | None:
    """Locate the shared PhysioNet 2012 copy (repo-relative, then $EHRBACKDOOR_SHARED)."""
    candidates = [Path(__file__).resolve().parents[3] / "shared"]
    if os.environ.get("EHRBACKDOOR_SHARED"):
        candidates.append(Path(os.environ["EHRBACKDOOR_SHARED"]))
    for shared in candidates:
        data = shared / "data" / "physionet2012"
        if (data / "set-a").is_dir():
            return data
    return None


@pytest.fixture(scope="module")
def source() -> Path:
    """The shared real-data directory, or skip."""
    data = _shared_physionet()
    if data is None:
        pytest.skip(
            "shared PhysioNet 2012 copy not found (expected <repo>/../shared/data/physionet2012/"
            "set-a or $EHRBACKDOOR_SHARED/data/physionet2012/set-a)"
        )
    return data


@pytest.fixture(autouse=True)
def _no_shipped_digests(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test archives are not the official ones: run without the shipped digests unless a
    test passes its own manifest."""
    monkeypatch.setattr(fetch_module, "load_manifest", dict)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make sure requests to the loopback test server never go through a proxy."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


# --------------------------------------------------------------------------- test server


@dataclass
class ServerState:
    """Files served from ``root`` plus a log of (path, Range header, status) per request."""

    root: Path
    base_url: str = ""
    ignore_range: bool = False
    requests: list[tuple[str, str | None, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def hits(self, name: str) -> list[tuple[str, str | None, int]]:
        """Requests for one file name."""
        return [r for r in self.requests if r[0] == name]


def _handler_for(state: ServerState) -> type[BaseHTTPRequestHandler]:
    class RangeHandler(BaseHTTPRequestHandler):
        """Minimal static handler supporting ``Range: bytes=N-`` (and ``N-M``)."""

        def do_GET(self) -> None:
            name = unquote(urlsplit(self.path).path).lstrip("/")
            range_header = self.headers.get("Range")
            path = state.root / name
            if "/" in name or not name or not path.is_file():
                self._reply(name, range_header, 404, b"not found")
                return
            data = path.read_bytes()
            if range_header and not state.ignore_range:
                spec = range_header.strip().removeprefix("bytes=")
                first_s, _, last_s = spec.partition("-")
                first = int(first_s)
                last = int(last_s) if last_s else len(data) - 1
                if first >= len(data):
                    self._reply(
                        name, range_header, 416, b"", {"Content-Range": f"bytes */{len(data)}"}
                    )
                    return
                last = min(last, len(data) - 1)
                headers = {"Content-Range": f"bytes {first}-{last}/{len(data)}"}
                self._reply(name, range_header, 206, data[first : last + 1], headers)
                return
            self._reply(name, range_header, 200, data)

        def _reply(
            self,
            name: str,
            range_header: str | None,
            status: int,
            body: bytes,
            headers: dict[str, str] | None = None,
        ) -> None:
            with state.lock:
                state.requests.append((name, range_header, status))
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            """Silence request logging."""

    return RangeHandler


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerState]:
    """A ThreadingHTTPServer on 127.0.0.1 (ephemeral port) serving ``tmp_path/srv``."""
    root = tmp_path / "srv"
    root.mkdir()
    state = ServerState(root=root)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(state))
    state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


# --------------------------------------------------------------------------- fixtures' data


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _build_set(source: Path, letter: str, root: Path) -> dict[str, bytes]:
    """Write ``set-<letter>.tar.gz`` and ``Outcomes-<letter>.txt`` from a few real records."""
    src_set = source / f"set-{letter}"
    if not src_set.is_dir():  # fall back to set-a records if this set is not shared
        src_set = source / "set-a"
    files = sorted(src_set.glob("*.txt"))[:N_RECORDS]
    records = {f.name: f.read_bytes() for f in files}

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(src_set, arcname=f"set-{letter}", recursive=False)
        for f in files:
            tar.add(f, arcname=f"set-{letter}/{f.name}")
    (root / f"set-{letter}.tar.gz").write_bytes(buf.getvalue())

    ids = {f.stem for f in files}
    outcomes_src = source / f"Outcomes-{letter}.txt"
    if outcomes_src.is_file():
        lines = outcomes_src.read_text().splitlines()
        body = [ln for ln in lines[1:] if ln.split(",", 1)[0] in ids]
        outcomes = "\n".join([lines[0], *body]) + "\n"
    else:
        header = "RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death"
        outcomes = "\n".join([header, *(f"{i},10,3,5,-1,0" for i in sorted(ids))]) + "\n"
    (root / f"Outcomes-{letter}.txt").write_text(outcomes)
    return records


def _write_sums(root: Path, overrides: dict[str, str] | None = None, omit: str = "") -> None:
    """Write SHA256SUMS.txt for everything in ``root`` (mixing the sha256sum styles)."""
    lines = []
    for i, path in enumerate(sorted(root.iterdir())):
        if path.name == "SHA256SUMS.txt" or path.name == omit:
            continue
        digest = (overrides or {}).get(path.name, _sha(path.read_bytes()))
        style = ("{h}  {n}", "{h} *{n}", "{h}  ./{n}")[i % 3]
        lines.append(style.format(h=digest, n=path.name))
    (root / "SHA256SUMS.txt").write_text("\n".join(lines) + "\n")


def _make_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> None:
    with tarfile.open(path, mode="w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)


def _info(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return info


def _assert_set(out: Path, letter: str, records: dict[str, bytes], root: Path) -> None:
    set_dir = out / f"set-{letter}"
    assert sorted(p.name for p in set_dir.iterdir()) == sorted(records)
    for name, data in records.items():
        assert (set_dir / name).read_bytes() == data
    for name in (f"set-{letter}.tar.gz", f"Outcomes-{letter}.txt"):
        assert (out / name).read_bytes() == (root / name).read_bytes()


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith(".") or p.suffix == ".part")


# --------------------------------------------------------------------------- tests


def test_parse_checksums_formats() -> None:
    h = "ab" * 32
    text = f"{h}  a.txt\n{h.upper()} *b.tar.gz\n# comment\n\n{h}  ./c.txt\nSHA256 (d) = {h}\nbad\n"
    assert parse_checksums(text) == {"a.txt": h, "b.tar.gz": h, "c.txt": h, "d": h}


def test_full_download_and_extraction(source: Path, server: ServerState, tmp_path: Path) -> None:
    records = {s: _build_set(source, s, server.root) for s in ("a", "b")}
    _write_sums(server.root)
    out = tmp_path / "dest" / "out"
    result = fetch_physionet2012(out, sets=("a", "b"), base_url=server.base_url)
    assert result == out
    for letter, recs in records.items():
        _assert_set(out, letter, recs, server.root)
    assert _leftovers(out) == []
    assert not (out / "set-c").exists()


def _fetch_over_partial(
    source: Path, server: ServerState, tmp_path: Path, part_of: Callable[[bytes], bytes]
) -> Path:
    """Fetch set a into a destination that already holds ``part_of(the whole archive)`` as an
    interrupted download; check the extracted set and return the destination."""
    records = _build_set(source, "a", server.root)
    _write_sums(server.root)
    out = tmp_path / "dest" / "out"
    out.mkdir(parents=True)
    (out / "set-a.tar.gz.part").write_bytes(part_of((server.root / "set-a.tar.gz").read_bytes()))

    fetch_physionet2012(out, sets=("a",), base_url=server.base_url)

    _assert_set(out, "a", records, server.root)
    return out


def _first_half(full: bytes) -> bytes:
    return full[: len(full) // 2]


def test_resume_sends_range_request(source: Path, server: ServerState, tmp_path: Path) -> None:
    out = _fetch_over_partial(source, server, tmp_path, _first_half)
    half = (server.root / "set-a.tar.gz").stat().st_size // 2
    assert server.hits("set-a.tar.gz") == [("set-a.tar.gz", f"bytes={half}-", 206)]
    assert _leftovers(out) == []


def test_server_ignoring_range_restarts(source: Path, server: ServerState, tmp_path: Path) -> None:
    server.ignore_range = True
    _fetch_over_partial(source, server, tmp_path, _first_half)
    half = (server.root / "set-a.tar.gz").stat().st_size // 2
    assert server.hits("set-a.tar.gz") == [("set-a.tar.gz", f"bytes={half}-", 200)]


def test_corrupt_partial_is_discarded_and_refetched(
    source: Path, server: ServerState, tmp_path: Path
) -> None:
    _fetch_over_partial(source, server, tmp_path, lambda full: b"garbage from another version")
    assert [r[2] for r in server.hits("set-a.tar.gz")] == [206, 200]


def test_complete_partial_answered_416(source: Path, server: ServerState, tmp_path: Path) -> None:
    _fetch_over_partial(source, server, tmp_path, lambda full: full)
    assert [r[2] for r in server.hits("set-a.tar.gz")] == [416]


def test_checksum_mismatch_raises(source: Path, server: ServerState, tmp_path: Path) -> None:
    _build_set(source, "a", server.root)
    wrong = "0" * 64
    _write_sums(server.root, overrides={"set-a.tar.gz": wrong})
    actual = _sha((server.root / "set-a.tar.gz").read_bytes())
    out = tmp_path / "dest" / "out"

    with pytest.raises(FetchError) as excinfo:
        fetch_physionet2012(out, sets=("a",), base_url=server.base_url)

    message = str(excinfo.value)
    assert "set-a.tar.gz" in message and wrong in message and actual in message
    assert not (out / "set-a.tar.gz").exists()
    assert not (out / "set-a.tar.gz.part").exists()
    assert not (out / "set-a").exists()


def test_file_missing_from_checksums_refused(
    source: Path, server: ServerState, tmp_path: Path
) -> None:
    _build_set(source, "a", server.root)
    _write_sums(server.root, omit="Outcomes-a.txt")
    out = tmp_path / "dest" / "out"

    with pytest.raises(FetchError, match=r"Outcomes-a\.txt.*not listed"):
        fetch_physionet2012(out, sets=("a",), base_url=server.base_url)

    assert [r[0] for r in server.requests] == ["SHA256SUMS.txt"]
    assert sorted(p.name for p in out.iterdir()) == ["SHA256SUMS.txt"]


def test_http_error_names_url(source: Path, server: ServerState, tmp_path: Path) -> None:
    _build_set(source, "a", server.root)
    _write_sums(server.root)
    (server.root / "Outcomes-a.txt").unlink()
    out = tmp_path / "dest" / "out"

    with pytest.raises(FetchError, match="404") as excinfo:
        fetch_physionet2012(out, sets=("a",), base_url=server.base_url)
    assert f"{server.base_url}Outcomes-a.txt" in str(excinfo.value)


def test_unknown_set_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sets"):
        fetch_physionet2012(tmp_path, sets=("d",), base_url="http://127.0.0.1:9/")


def _evil_members(kind: str, dest: Path) -> tuple[str, list[tuple[tarfile.TarInfo, bytes | None]]]:
    """(offending member name, archive members) for one attack kind."""
    payload = b"pwned\n"
    base = [(_info("set-a", tarfile.DIRTYPE), None), (_info("set-a/132539.txt"), b"ok\n")]
    if kind == "traversal":
        name = "../evil.txt"
        return name, [*base, (_info(name), payload)]
    if kind == "nested-traversal":
        name = "set-a/../../evil.txt"
        return name, [*base, (_info(name), payload)]
    if kind == "absolute":
        name = str(dest / "abs_evil.txt")
        return name, [*base, (_info(name), payload)]
    if kind == "symlink":
        name = "set-a/link"
        link = (_info(name, tarfile.SYMTYPE, linkname="../../.."), None)
        return name, [*base, link, (_info("set-a/link/evil.txt"), payload)]
    if kind == "hardlink":
        name = "set-a/hard"
        return name, [*base, (_info(name, tarfile.LNKTYPE, linkname=str(dest / "x")), None)]
    if kind == "device":
        name = "set-a/fifo"
        return name, [*base, (_info(name, tarfile.FIFOTYPE), None)]
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind", ["traversal", "nested-traversal", "absolute", "symlink", "hardlink", "device"]
)
def test_unsafe_archive_members_refused(kind: str, server: ServerState, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    out = dest / "out"
    out.mkdir(parents=True)
    bad_name, members = _evil_members(kind, dest)
    _make_tar(server.root / "set-a.tar.gz", members)
    (server.root / "Outcomes-a.txt").write_text("RecordID,SAPS-I\n132539,1\n")
    _write_sums(server.root)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if "srv" not in p.parts)

    with pytest.raises(FetchError, match="unsafe member") as excinfo:
        fetch_physionet2012(out, sets=("a",), base_url=server.base_url)

    assert repr(bad_name) in str(excinfo.value)
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if "srv" not in p.parts)
    new = {p for p in after if p not in before}
    # Only the verified downloads themselves may appear, and only inside out_dir.
    assert new == {
        Path("dest/out") / n for n in ("SHA256SUMS.txt", "set-a.tar.gz", "Outcomes-a.txt")
    }
    assert not (out / "set-a").exists()
    assert _leftovers(out) == []


def test_rerun_is_noop(source: Path, server: ServerState, tmp_path: Path) -> None:
    records = _build_set(source, "a", server.root)
    _write_sums(server.root)
    out = tmp_path / "dest" / "out"
    fetch_physionet2012(out, sets=("a",), base_url=server.base_url)
    assert len(server.requests) == 3
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*")}

    server.requests.clear()
    fetch_physionet2012(out, sets=("a",), base_url=server.base_url)

    assert server.requests == []
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == mtimes
    _assert_set(out, "a", records, server.root)


def test_progress_bar_smoke(source: Path, server: ServerState, tmp_path: Path) -> None:
    _build_set(source, "a", server.root)
    _write_sums(server.root)
    out = tmp_path / "dest" / "out"
    seen: list[tuple[str, int, int | None]] = []
    fetch_physionet2012(
        out, sets=["a"], base_url=server.base_url.rstrip("/"), progress=lambda *a: seen.append(a)
    )
    assert (out / "set-a").is_dir()
    assert {name for name, _, _ in seen} >= {"set-a.tar.gz", "Outcomes-a.txt"}


def test_connection_error_names_url(tmp_path: Path) -> None:
    with socket.socket() as sock:  # grab a free loopback port, then close it
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}/"
    with pytest.raises(FetchError, match="network error") as excinfo:
        fetch_physionet2012(tmp_path / "out", sets=("a",), base_url=base)
    assert f"{base}SHA256SUMS.txt" in str(excinfo.value)


# --------------------------------------------------------------------------- links, bombs, manifest


def _served_set_and_victim(source: Path, server: ServerState, tmp_path: Path) -> tuple[Path, Path]:
    """Set a on the server, an empty destination, and a file outside it that a link planted in
    the destination could make the fetch overwrite."""
    _build_set(source, "a", server.root)
    _write_sums(server.root)
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious\n")
    return out, victim


@pytest.mark.parametrize("planted", ["set-a.tar.gz.part", "Outcomes-a.txt.part", "Outcomes-a.txt"])
def test_planted_symlink_is_never_written_through(
    source: Path, server: ServerState, tmp_path: Path, planted: str
) -> None:
    out, victim = _served_set_and_victim(source, server, tmp_path)
    (out / planted).symlink_to(victim)
    with pytest.raises(FetchError, match="link"):
        fetch_physionet2012(out, sets=("a",), base_url=server.base_url)
    assert victim.read_bytes() == b"precious\n"


def test_planted_hardlink_part_is_refused(
    source: Path, server: ServerState, tmp_path: Path
) -> None:
    out, victim = _served_set_and_victim(source, server, tmp_path)
    os.link(victim, out / "set-a.tar.gz.part")
    with pytest.raises(FetchError, match="singly-linked"):
        fetch_physionet2012(out, sets=("a",), base_url=server.base_url)
    assert victim.read_bytes() == b"precious\n"


def _bomb(root: Path, n_bytes: int) -> None:
    _make_tar(
        root / "set-a.tar.gz",
        [(_info("set-a", tarfile.DIRTYPE), None), (_info("set-a/132539.txt"), b"\0" * n_bytes)],
    )
    (root / "Outcomes-a.txt").write_text("RecordID,SAPS-I\n132539,1\n")
    _write_sums(root)


def test_compression_bomb_is_refused(server: ServerState, tmp_path: Path) -> None:
    _bomb(server.root, 30_000_000)  # ~30 KB compressed
    assert (server.root / "set-a.tar.gz").stat().st_size < 100_000
    out = tmp_path / "out"
    with pytest.raises(FetchError, match="limit"):
        fetch_physionet2012(out, sets=("a",), base_url=server.base_url)
    assert not (out / "set-a").exists() and _leftovers(out) == []
    assert sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) < 1_000_000


@pytest.mark.parametrize("limit", ["bytes", "members"])
def test_declared_limits_bound_extraction(
    source: Path, server: ServerState, tmp_path: Path, limit: str
) -> None:
    _build_set(source, "a", server.root)
    _write_sums(server.root)
    spec = FileSpec(extracted_max_bytes=1000) if limit == "bytes" else FileSpec(max_members=3)
    out = tmp_path / "out"
    with pytest.raises(FetchError, match="limit" if limit == "bytes" else "members"):
        fetch_physionet2012(
            out,
            sets=("a",),
            base_url=server.base_url,
            manifest={"set-a.tar.gz": spec},
        )
    assert not (out / "set-a").exists() and _leftovers(out) == []
    # within generous limits the same archive installs
    fetch_physionet2012(
        out,
        sets=("a",),
        base_url=server.base_url,
        manifest={"set-a.tar.gz": FileSpec(extracted_max_bytes=10**8)},
    )
    assert len(list((out / "set-a").iterdir())) == N_RECORDS


def test_mirror_disagreeing_with_shipped_digest_is_refused(
    source: Path, server: ServerState, tmp_path: Path
) -> None:
    _build_set(source, "a", server.root)
    _write_sums(server.root)  # a consistent mirror: list and files agree with each other
    official = {"set-a.tar.gz": FileSpec(sha256="0" * 64)}
    out = tmp_path / "out"
    with pytest.raises(FetchError, match="tampered"):
        fetch_physionet2012(out, sets=("a",), base_url=server.base_url, manifest=official)
    assert not (out / "set-a.tar.gz").exists() and not (out / "set-a").exists()
    good = {"set-a.tar.gz": FileSpec(sha256=_sha((server.root / "set-a.tar.gz").read_bytes()))}
    fetch_physionet2012(out, sets=("a",), base_url=server.base_url, manifest=good)
    assert (out / "set-a").is_dir()


def test_shipped_manifest() -> None:
    m = load_manifest()
    assert set(m) == {
        f"{k}-{s}{e}" for s in "abc" for k, e in (("set", ".tar.gz"), ("Outcomes", ".txt"))
    }
    for name, spec in m.items():
        assert spec.sha256 is None or len(spec.sha256) == 64, name
    for s in "abc":
        assert m[f"set-{s}.tar.gz"].extracted_max_bytes <= 64_000_000
    data = _shared_physionet()
    if data is not None and (data / "SHA256SUMS").is_file():  # the reference copy agrees
        ref = parse_checksums((data / "SHA256SUMS").read_text())
        for name in ("Outcomes-a.txt", "Outcomes-b.txt"):
            if name in ref:
                assert m[name].sha256 == ref[name]
        # and the real sets fit their declared extraction limit
        for s in "ab":
            size = sum(p.stat().st_size for p in (data / f"set-{s}").iterdir())
            assert size < m[f"set-{s}.tar.gz"].extracted_max_bytes
