"""soundbench.fetch.download and .checksums against a real HTTP server on 127.0.0.1 (misbehaving on demand)."""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import socket
import time
from pathlib import Path

import pytest
from http_server import Server, serve

from soundbench.fetch.checksums import ChecksumLock
from soundbench.fetch.download import OVERLAP, ChecksumError, DownloadError, download, file_digest

BODY = bytes(range(256)) * 800  # 200 KiB, not text: nothing in it looks like HTML
FAST = dict(progress=False, backoff=0.01, timeout=5.0)


@pytest.fixture
def server():
    with serve(Server(files={"/data.bin": BODY})) as state:
        yield state


SHA = hashlib.sha256(BODY).hexdigest()
MD5 = hashlib.md5(BODY).hexdigest()


def _no_leftovers(dest: Path) -> bool:
    return not dest.exists() and not dest.with_name(dest.name + ".part").exists()


# ------------------------------------------------------------------------------------------- happy paths

def test_plain_download_verifies_md5_sha256_size(server, tmp_path):
    dest = download(server.url("/data.bin"), tmp_path / "sub" / "data.bin", md5=MD5, sha256=SHA,
                    size=len(BODY), **FAST)
    assert dest.read_bytes() == BODY
    assert not dest.with_name("data.bin.part").exists()
    assert file_digest(dest, "md5") == MD5 and file_digest(dest) == SHA


def test_file_url_and_plain_path(tmp_path):
    src = tmp_path / "src file.bin"
    src.write_bytes(BODY)
    a = download(src.as_uri(), tmp_path / "a.bin", sha256=SHA, progress=False)
    b = download(str(src), tmp_path / "b.bin", md5=MD5.upper(), size=len(BODY), progress=False)
    assert a.read_bytes() == BODY == b.read_bytes()
    with pytest.raises(ChecksumError, match="sha256"):
        download(src.as_uri(), tmp_path / "c.bin", sha256="0" * 64, progress=False)
    assert _no_leftovers(tmp_path / "c.bin")
    with pytest.raises(DownloadError, match="does not exist"):
        download((tmp_path / "missing.bin").as_uri(), tmp_path / "d.bin", progress=False)


def test_valid_dest_makes_no_request_invalid_dest_is_replaced(server, tmp_path):
    dest = tmp_path / "data.bin"
    download(server.url("/data.bin"), dest, sha256=SHA, **FAST)
    download(server.url("/data.bin"), dest, sha256=SHA, **FAST)
    assert len(server.requests) == 1
    dest.write_bytes(b"stale")
    download(server.url("/data.bin"), dest, sha256=SHA, **FAST)
    assert len(server.requests) == 2 and dest.read_bytes() == BODY


# ----------------------------------------------------------------------------------------- resumption

def test_resumes_with_range_after_dropped_connections(server, tmp_path):
    server.drop_first = 2
    dest = download(server.url("/data.bin"), tmp_path / "data.bin", sha256=SHA, retries=1, **FAST)
    assert dest.read_bytes() == BODY
    assert len(server.requests) == 3
    assert server.ranges() and all(r.startswith("bytes=") and r != "bytes=0-" for r in server.ranges())


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    server.drop_first, server.ignore_range = 1, True
    dest = download(server.url("/data.bin"), tmp_path / "data.bin", sha256=SHA, **FAST)
    assert dest.read_bytes() == BODY
    assert server.ranges() == [f"bytes={len(BODY) // 2 - OVERLAP}-"]  # asked to resume, got 200, started over


def test_flaky_link_that_keeps_progressing_finishes(server, tmp_path):
    server.per_connection = 16 * 1024  # 13 connections for 200 KiB, far more than `retries`
    dest = download(server.url("/data.bin"), tmp_path / "data.bin", sha256=SHA, retries=2, **FAST)
    assert dest.read_bytes() == BODY
    # the first connection brings 16 KiB; each resumed one re-reads OVERLAP bytes it already has
    assert len(server.requests) == 1 + -(-(len(BODY) - server.per_connection) // (server.per_connection - OVERLAP))


def test_attempts_without_progress_exhaust_the_budget(server, tmp_path):
    server.drop_first, server.ignore_range = 10**6, True  # the same first half, over and over
    with pytest.raises(DownloadError, match="failed after"):
        download(server.url("/data.bin"), tmp_path / "data.bin", retries=3, **FAST)
    assert len(server.requests) == 1 + 4  # first one progresses; then 4 without progress (> retries)


def test_complete_part_is_confirmed_without_downloading_it_again(server, tmp_path):
    for name, size in (("data.bin", len(BODY)), ("again.bin", None)):
        (tmp_path / f"{name}.part").write_bytes(BODY)
        dest = download(server.url("/data.bin"), tmp_path / name, size=size, **FAST)
        assert dest.read_bytes() == BODY
    assert server.ranges() == [f"bytes={len(BODY) - OVERLAP}-"] * 2  # only its last OVERLAP bytes, compared
    damaged = bytearray(BODY)
    damaged[-10] ^= 1  # a .part of the right size but damaged: only the size is known, and yet it is caught
    (tmp_path / "bad.bin.part").write_bytes(bytes(damaged))
    assert download(server.url("/data.bin"), tmp_path / "bad.bin", size=len(BODY), **FAST).read_bytes() == BODY


def test_stale_part_longer_than_the_file_starts_over(server, tmp_path):
    (tmp_path / "data.bin.part").write_bytes(BODY + BODY)  # the server answers 416 to the overlap request
    dest = download(server.url("/data.bin"), tmp_path / "data.bin", **FAST)
    assert dest.read_bytes() == BODY
    assert server.requests == [("/data.bin", f"bytes={2 * len(BODY) - OVERLAP}-"), ("/data.bin", None)]


def test_transient_5xx_is_retried_404_is_not(server, tmp_path):
    server.fail_first = 2
    assert download(server.url("/data.bin"), tmp_path / "a.bin", sha256=SHA, **FAST).read_bytes() == BODY
    n = len(server.requests)
    with pytest.raises(DownloadError, match=r"HTTP 404.*/nope\.zip|/nope\.zip.*HTTP 404"):
        download(server.url("/nope.zip"), tmp_path / "nope.zip", **FAST)
    assert len(server.requests) == n + 1


# ------------------------------------------------------------------------------------------- failures

def test_corrupt_bytes_raise_checksum_error_and_leave_nothing(server, tmp_path):
    server.files["/data.bin"] = BODY[:-1] + b"\x00"
    dest = tmp_path / "data.bin"
    with pytest.raises(ChecksumError) as err:
        download(server.url("/data.bin"), dest, sha256=SHA, **FAST)
    msg = str(err.value)
    assert "data.bin" in msg and SHA in msg and hashlib.sha256(server.files["/data.bin"]).hexdigest() in msg
    assert _no_leftovers(dest)
    with pytest.raises(ChecksumError, match="size"):
        download(server.url("/data.bin"), dest, size=len(BODY) + 1, **FAST)
    assert _no_leftovers(dest)


def test_unreachable_host_fails_fast_with_advice(tmp_path):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/data.bin"
    t0 = time.monotonic()
    with pytest.raises(DownloadError) as err:
        download(url, tmp_path / "data.bin", retries=2, **FAST)
    assert time.monotonic() - t0 < 5
    msg = str(err.value)
    assert url in msg and "could not be reached" in msg
    assert "source: mirror" in msg and "source: local" in msg
    assert _no_leftovers(tmp_path / "data.bin")


@pytest.mark.parametrize("content_type,body", [
    ("text/html; charset=utf-8", b"<html><body>Google Drive can't scan this file for viruses</body></html>"),
    ("application/octet-stream", b"\n  <!DOCTYPE html><html><head><title>Warning</title></head></html>"),
])
def test_html_instead_of_archive(server, tmp_path, content_type, body):
    server.content_type = content_type
    server.files["/uc?id=abc"] = body
    url = server.url("/uc?id=abc")
    with pytest.raises(DownloadError, match="HTML") as err:
        download(url, tmp_path / "archive.zip", **FAST)
    assert url in str(err.value) and "Drive" in str(err.value)
    assert _no_leftovers(tmp_path / "archive.zip")
    # a page that is actually wanted
    page = download(url, tmp_path / "page.html", expect="any", **FAST)
    assert page.read_bytes() == body


# ------------------------------------------------------------------------------------ trust on first use

def test_checksum_lock_records_verifies_and_names_the_lock(tmp_path):
    lock = ChecksumLock(tmp_path / "checksums.lock.json")
    f = tmp_path / "mp3.zip.001"
    f.write_bytes(BODY)
    assert lock.verify_or_record("mtt/mp3.zip.001", f, "http://x/mp3.zip.001") == SHA
    saved = json.loads(lock.path.read_text())
    assert saved == {"mtt/mp3.zip.001": {"sha256": SHA, "size": len(BODY), "url": "http://x/mp3.zip.001"}}
    assert lock.verify_or_record("mtt/mp3.zip.001", f, "http://x/mp3.zip.001") == SHA  # second use verifies
    f.write_bytes(BODY[:-1] + b"!")
    with pytest.raises(ChecksumError) as err:
        lock.verify_or_record("mtt/mp3.zip.001", f, "http://x/mp3.zip.001")
    msg = str(err.value)
    assert str(f) in msg and str(lock.path) in msg and SHA in msg and file_digest(f) in msg
    assert "delete" in msg
    assert json.loads(lock.path.read_text()) == saved  # a failure does not rewrite the lock


def _record_many(lock_path: str, worker: int, src: str) -> None:
    lock = ChecksumLock(lock_path)
    for i in range(10):
        lock.verify_or_record(f"ds/{worker}/{i}", src, f"http://x/{worker}/{i}")


def test_checksum_lock_concurrent_writers_lose_nothing(tmp_path):
    src = tmp_path / "f.bin"
    src.write_bytes(b"abc")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_record_many, args=(str(tmp_path / "lock.json"), w, str(src))) for w in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    text = (tmp_path / "lock.json").read_text()
    entries = json.loads(text)
    assert len(entries) == 60 and list(entries) == sorted(entries)
    assert not list(tmp_path.glob("*.tmp"))
