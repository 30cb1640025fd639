"""Resumable, verified downloads over http(s) and file:// with the standard library only.

The transfer streams into ``<dest>.part``; an interrupted transfer resumes with an HTTP Range request, the
completed file is checked (size, md5, sha256) and only then published with an atomic ``os.replace``. So
``dest`` either does not exist or is complete and verified, whatever happens in between.
"""
from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

log = logging.getLogger(__name__)

CHUNK = 1 << 16  # network read size
DIGEST_BLOCK = 1 << 20  # file_digest block size (1 MiB)
MAX_DELAY = 60.0  # ceiling of the exponential backoff, seconds
ATTEMPTS_PER_RETRY = 20  # total attempts are capped at retries * this, so nothing loops forever
USER_AGENT = "soundbench/0.1 (+python-urllib)"
SOURCE_HINT = (
    "If this machine cannot reach it, set `source: mirror` with `mirror: BASE_URL` in the dataset config, "
    "or `source: local` with `root:` (an extracted copy) or `archive:` (a directory holding the archives)."
)


class DownloadError(RuntimeError):
    """A file could not be downloaded; the message names the URL and what to do about it."""


class ChecksumError(DownloadError):
    """A file's size or digest differs from the expected one; the message names the file and both values."""


class _Retry(Exception):
    """A transient failure of one attempt (dropped connection, 5xx, short body): try again."""


# ---------------------------------------------------------------------------------------------- digests

def file_digest(path: str | os.PathLike, algo: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB blocks."""
    return file_digests(path, (algo,))[algo]


def file_digests(path: str | os.PathLike, algos: tuple[str, ...]) -> dict[str, str]:
    """Several hex digests of a file in one pass (md5 and sha256 of a multi-GB archive read it once)."""
    hashers = {a: hashlib.new(a) for a in algos}
    with open(path, "rb") as f:
        while block := f.read(DIGEST_BLOCK):
            for h in hashers.values():
                h.update(block)
    return {a: h.hexdigest() for a, h in hashers.items()}


def mismatches(path: Path, *, md5: str | None = None, sha256: str | None = None,
               size: int | None = None) -> list[tuple[str, str, str]]:
    """(what, expected, actual) for each given check that `path` fails; empty when it verifies."""
    bad = []
    actual_size = path.stat().st_size
    if size is not None and actual_size != int(size):
        # A wrong size settles it; hashing a multi-GB file to report two more mismatches is wasted time.
        return [("size", str(size), str(actual_size))]
    expected = {a: v.lower() for a, v in (("md5", md5), ("sha256", sha256)) if v}
    if expected:
        actual = file_digests(path, tuple(expected))
        bad += [(a, expected[a], actual[a]) for a in expected if actual[a] != expected[a]]
    return bad


def _checksum_error(path: Path, url: str, bad: list[tuple[str, str, str]], note: str) -> ChecksumError:
    details = "; ".join(f"expected {what} {exp}, got {act}" for what, exp, act in bad)
    return ChecksumError(f"{path} (from {url}) failed verification: {details}. {note}")


# --------------------------------------------------------------------------------------------- download

def download(url: str, dest: str | os.PathLike, *, md5: str | None = None, sha256: str | None = None,
             size: int | None = None, retries: int = 5, timeout: float = 30.0, backoff: float = 1.0,
             progress: bool = True, expect: str = "binary") -> Path:
    """Download `url` to `dest` and verify it; returns `dest`.

    url: http(s)://, file:// or a plain local path.
    md5/sha256/size: whichever are given are checked before `dest` appears.
    retries: failed attempts that made no progress before giving up (attempts that delivered new bytes
        do not count, so a flaky link still finishes; all attempts are capped at retries * 20).
    timeout: socket timeout in seconds (connect and each read); backoff: first retry delay in seconds,
        doubled after every attempt without progress.
    expect: "binary" refuses an HTML page (e.g. Google Drive's virus-scan confirmation); "any" accepts it.
    """
    dest = Path(dest)
    if dest.exists():
        bad = mismatches(dest, md5=md5, sha256=sha256, size=size)
        if not bad:
            log.debug("%s already present and verified", dest)
            return dest
        log.warning("%s exists but fails verification (%s); downloading it again", dest, bad[0][0])
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")

    source = _local_source(url)
    if source is not None:
        _copy_local(url, source, part, progress)
    elif urllib.parse.urlparse(url).scheme in ("http", "https"):
        _fetch_http(url, part, size=size, retries=retries, timeout=timeout, backoff=backoff,
                    progress=progress, expect=expect)
    else:
        raise DownloadError(f"{url}: unsupported URL scheme (use http, https, file:// or a local path)")

    bad = mismatches(part, md5=md5, sha256=sha256, size=size)
    if bad:
        part.unlink(missing_ok=True)
        raise _checksum_error(dest, url, bad, "The partial download was deleted; if upstream changed the "
                                              "file, update the checksum, otherwise run again.")
    os.replace(part, dest)  # atomic: dest is never half-written
    return dest


def _local_source(url: str) -> Path | None:
    """The local path of a file:// URL or a plain path; None for network URLs."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise DownloadError(f"{url}: file:// URLs must name a local file (file:///path)")
        return Path(urllib.request.url2pathname(parsed.path))
    if parsed.scheme == "" or re.fullmatch(r"[A-Za-z]", parsed.scheme):  # "C:\..." parses as scheme "c"
        return Path(url)
    return None


def _progress_bar(name: str, total: int | None, progress: bool) -> tqdm:
    # disable=None: tqdm hides itself when stderr is not a terminal (Snakemake logs stay readable)
    return tqdm(total=total, desc=name, unit="B", unit_scale=True, unit_divisor=1024, leave=False,
                disable=None if progress else True)


def _copy_local(url: str, source: Path, part: Path, progress: bool) -> None:
    """Copy a local file into `part` (verification and publishing are the caller's)."""
    if not source.is_file():
        raise DownloadError(f"{url}: local file {source} does not exist")
    with open(source, "rb") as src, open(part, "wb") as out, \
            _progress_bar(part.name[:-5], source.stat().st_size, progress) as bar:
        while block := src.read(DIGEST_BLOCK):
            out.write(block)
            bar.update(len(block))


def _fetch_http(url: str, part: Path, *, size: int | None, retries: int, timeout: float, backoff: float,
                progress: bool, expect: str) -> None:
    """Fill `part` with the whole body of `url`, resuming after failures."""
    host = urllib.parse.urlparse(url).hostname or url
    failures = attempts = 0
    best = part.stat().st_size if part.exists() else 0  # high-water mark: what counts as progress
    reached = False  # did any attempt get an HTTP answer?
    last: BaseException | None = None
    with _progress_bar(part.name[:-5], size, progress) as bar:
        while True:
            attempts += 1
            try:
                if _http_attempt(url, part, timeout=timeout, expect=expect, size=size, bar=bar):
                    return
            except DownloadError:  # HTML page, 404...: permanent, retrying cannot help
                raise
            except urllib.error.URLError as e:  # no HTTP answer at all (HTTPError is handled in the attempt)
                if isinstance(e.reason, socket.gaierror):  # DNS failure: retrying will not help
                    raise _unreachable(url, host, e.reason) from e
                last = e
            except (_Retry, OSError, http.client.HTTPException) as e:  # dropped mid-way, timeout, 5xx
                reached = True
                last = e
            got = part.stat().st_size if part.exists() else 0
            if got > best:
                best = got
                delay = min(backoff, 1.0)  # progress: come back soon, the link works
            else:
                failures += 1
                delay = min(backoff * 2 ** (failures - 1), MAX_DELAY)
            if failures > retries or attempts >= max(retries, 1) * ATTEMPTS_PER_RETRY:
                if not reached:
                    raise _unreachable(url, host, last)
                raise DownloadError(f"{url}: download failed after {attempts} attempts "
                                    f"({failures} without progress); last error: {last}. The partial file "
                                    f"{part} is kept and the next run resumes it. {SOURCE_HINT}")
            log.info("%s: attempt %d failed (%s); retrying in %.1fs", url, attempts, last, delay)
            time.sleep(delay)


def _unreachable(url: str, host: str, err: BaseException | None) -> DownloadError:
    reason = getattr(err, "reason", err)
    return DownloadError(f"{url}: host {host} could not be reached ({reason}). {SOURCE_HINT}")


def _http_attempt(url: str, part: Path, *, timeout: float, expect: str, size: int | None, bar: tqdm) -> bool:
    """One request appending to `part`; True when the file is complete, otherwise raises."""
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset > size:  # stale .part longer than the file: start over
        part.unlink()
        offset = 0
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
    if offset:
        req.add_header("Range", f"bytes={offset}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        with e:
            return _http_error(url, e, part, offset, size)
    with resp:
        _refuse_html_type(url, resp, expect, part)
        if resp.status == 206:
            start, total = _content_range(resp.headers.get("Content-Range"))
            if start != offset:  # not the bytes we asked for: drop the .part and start clean
                part.unlink(missing_ok=True)
                raise _Retry(f"server sent range start {start}, expected {offset}")
            mode = "ab"
        else:  # 200: the server ignored Range (or there was none); the body is the whole file
            if offset:
                log.info("%s: server ignored the Range request; starting over", url)
            offset, mode = 0, "wb"
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        total = total if total is not None else size
        bar.reset(total=total)
        bar.update(offset)
        _stream(url, resp, part, mode, check_html=(offset == 0 and expect == "binary"), bar=bar)
    got = part.stat().st_size
    if total is not None and got < total:
        raise _Retry(f"connection closed after {got} of {total} bytes")
    return True


def _stream(url: str, resp, part: Path, mode: str, *, check_html: bool, bar: tqdm) -> None:
    """Copy the response body into `part`, looking at the first bytes for an HTML page."""
    with open(part, mode) as out:
        while chunk := resp.read(CHUNK):
            if check_html:
                check_html = False
                if _looks_like_html(chunk):
                    out.close()
                    part.unlink(missing_ok=True)
                    raise _html_error(url, "the body starts like an HTML page")
            out.write(chunk)
            bar.update(len(chunk))


def _http_error(url: str, e: urllib.error.HTTPError, part: Path, offset: int, size: int | None) -> bool:
    """Map an HTTP error status to done (416 on a complete .part), retry, or a DownloadError."""
    if e.code == 416:
        _, total = _content_range(e.headers.get("Content-Range"))
        total = total if total is not None else size
        if offset and total is not None and offset == total:
            return True  # we asked for the bytes after the end: the .part is already whole
        part.unlink(missing_ok=True)
        raise _Retry(f"HTTP 416 with {offset} bytes on disk; starting over")
    if e.code in (408, 425, 429) or e.code >= 500:
        raise _Retry(f"HTTP {e.code} {e.reason}")
    raise DownloadError(f"{url}: HTTP {e.code} {e.reason}. Check the URL (the file may have moved). "
                        f"{SOURCE_HINT}")


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(start, total) of a Content-Range header ("bytes 100-199/1000" or "bytes */1000")."""
    m = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*", value or "")
    if not m:
        return None, None
    start = int(m.group(1)) if m.group(1) else None
    total = int(m.group(2)) if m.group(2) != "*" else None
    return start, total


def _looks_like_html(head: bytes) -> bool:
    text = head[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith((b"<!doctype html", b"<html"))


def _refuse_html_type(url: str, resp, expect: str, part: Path) -> None:
    if expect == "binary" and resp.headers.get_content_type() == "text/html":
        part.unlink(missing_ok=True)
        raise _html_error(url, "the server answered with Content-Type text/html")


def _html_error(url: str, why: str) -> DownloadError:
    return DownloadError(
        f"{url}: expected an archive but got an HTML page ({why}). This is typically a login or "
        f"confirmation page, e.g. Google Drive's \"can't scan this file for viruses\" page for large files; "
        f"download the file in a browser and use `source: local` with `archive:`, or a `mirror`.")
