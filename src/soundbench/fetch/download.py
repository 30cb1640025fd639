"""Resumable, verified downloads over http(s) and file:// with the standard library only.

The transfer streams into ``<dest>.part``; an interrupted transfer resumes with an HTTP Range request, the
completed file is checked (size, md5, sha256) and only then published with an atomic ``os.replace``. So
``dest`` either does not exist or is complete and verified, whatever happens in between.

Also guarded against:
- two processes downloading the same file: an exclusive lock on ``<dest>.lock`` makes the second one wait for
  the first and then find the finished file, so no ``.part`` is ever written by two writers;
- a server that ignores or shifts the Range of a resumed request: the last OVERLAP bytes before the resume
  point are asked for again and must equal the ``.part``'s (this protects files without a published checksum,
  which are only recorded on first use), and a total that changes between attempts starts the file over;
- a connection that trickles: an attempt that delivers less than `min_speed` bytes/s over `stall_seconds`
  is abandoned and counts as a failed attempt, so a trickle ends after `retries` attempts;
- local failures (read-only or full disk): they fail at once, naming the path, instead of being retried as if
  the network had failed; a download that cannot fit in the free space is refused before it starts.
"""
from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import shutil
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Iterator

from tqdm import tqdm

from soundbench.fetch.lock import exclusive

log = logging.getLogger(__name__)

CHUNK = 1 << 16  # network read size
DIGEST_BLOCK = 1 << 20  # file_digest block size (1 MiB)
MAX_DELAY = 60.0  # ceiling of the exponential backoff, seconds
ATTEMPTS_PER_RETRY = 20  # total attempts are capped at retries * this, so nothing loops forever
OVERLAP = 4096  # bytes before the resume point that a resumed request fetches again and compares
HTML_SNIFF = 512  # bytes at the start of a body looked at for an HTML page
STALL_SECONDS = 60.0  # an attempt slower than MIN_SPEED over this long is abandoned
MIN_SPEED = 1024  # bytes per second
USER_AGENT = "soundbench/0.1 (+python-urllib)"
SOURCE_HINT = (
    "If this machine cannot reach it, set `source: mirror` with `mirror: BASE_URL` (e.g. file:///DIR for a "
    "directory holding the archives) in the dataset config, or `source: local` with `root:` (an extracted "
    "copy) or `archive:` (the archive files)."
)


class DownloadError(RuntimeError):
    """A file could not be downloaded; the message names the URL and what to do about it."""


class ChecksumError(DownloadError):
    """A file's size or digest differs from the expected one; the message names the file and both values."""


class _Retry(Exception):
    """A transient failure of one attempt (dropped connection, 5xx, short body): try again."""


class _Stalled(_Retry):
    """The attempt delivered too little for too long: abandon it (it counts as an attempt without progress)."""


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
             progress: bool = True, expect: str = "binary", stall_seconds: float | None = None,
             min_speed: float | None = None) -> Path:
    """Download `url` to `dest` and verify it; returns `dest`.

    url: http(s)://, file:// or a plain local path.
    md5/sha256/size: whichever are given are checked before `dest` appears.
    retries: failed attempts that made no progress before giving up (attempts that delivered new bytes
        do not count, so a flaky link still finishes; all attempts are capped at retries * 20).
    timeout: socket timeout in seconds (connect and each read); backoff: first retry delay in seconds,
        doubled after every attempt without progress.
    stall_seconds/min_speed: an attempt that averages less than min_speed bytes/s over stall_seconds is
        abandoned (a trickling connection never times out a read) and counts as an attempt without progress;
        default STALL_SECONDS (60) and MIN_SPEED (1 KiB/s).
    expect: "binary" refuses an HTML page (e.g. Google Drive's virus-scan confirmation); "any" accepts it.
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _local_error(dest.parent, e, url) from e
    with ExitStack() as stack:
        lock = dest.with_name(dest.name + ".lock")
        try:  # a second download of the same file waits here, then finds it finished
            stack.enter_context(exclusive(lock, f"the download of {url}"))
        except OSError as e:
            raise _local_error(lock, e, url) from e
        if dest.exists():
            bad = mismatches(dest, md5=md5, sha256=sha256, size=size)
            if not bad:
                log.debug("%s already present and verified", dest)
                return dest
            log.warning("%s exists but fails verification (%s); downloading it again", dest, bad[0][0])

        source = _local_source(url)
        if source is not None:
            _copy_local(url, source, part, progress)
        elif urllib.parse.urlparse(url).scheme in ("http", "https"):
            _fetch_http(url, part, size=size, retries=retries, timeout=timeout, backoff=backoff,
                        progress=progress, expect=expect,
                        stall=(float(STALL_SECONDS if stall_seconds is None else stall_seconds),
                               float(MIN_SPEED if min_speed is None else min_speed)))
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


def human_size(n: float) -> str:
    """A byte count for messages: 512 B, 1.5 MiB, 38.6 GiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover - the loop returns


def _local_error(path: Path, err: OSError, url: str) -> DownloadError:
    """A failure of this machine's disk, not of the network: retrying cannot help."""
    return DownloadError(f"{path}: cannot write there ({err.strerror or err}) while downloading {url}; not "
                         f"retried (a local failure, not the network's). Make sure the directory is writable and "
                         f"its disk has free space, then run again.")


def _free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


def _check_space(part: Path, url: str, need: int | None) -> None:
    """Refuse a download that cannot fit before writing any of it."""
    if need is None or need <= 0:
        return
    free = _free_bytes(part.parent)
    if need > free:
        raise DownloadError(f"{part}: the download of {url} needs {human_size(need)} more but only {human_size(free)} "
                            f"is free on that disk; free some space (or download elsewhere and use `source: "
                            f"local`), then run again.")


def _size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _hard_link(source: Path, part: Path) -> bool:
    """Make `part` a second name of `source` (no bytes written); False where the file system refuses (another
    file system, no hard links, a protected file), then the caller copies."""
    try:
        part.unlink(missing_ok=True)  # a local copy is never resumed
        os.link(source, part)  # follows a symlinked source to its file
    except OSError as e:
        log.debug("cannot hard-link %s (%s); copying it", source, e)
        return False
    return True


def _copy_local(url: str, source: Path, part: Path, progress: bool) -> None:
    """Hard-link, else copy, a local file into `part` (verification and publishing are the caller's). A link
    costs no disk: the release (a demo's, a mirror directory, a `local` archive) and resources/archives share
    the bytes. The file is verified through the link as a copy would be; deleting either name keeps the other."""
    if not source.is_file():
        raise DownloadError(f"{url}: local file {source} does not exist")
    if _hard_link(source, part):
        return
    total = source.stat().st_size
    _check_space(part, url, total)
    with open(source, "rb") as src, _open_part(part, "wb", url) as out, \
            _progress_bar(part.name[:-5], total, progress) as bar:
        while block := src.read(DIGEST_BLOCK):
            _write(out, block, part, url)
            bar.update(len(block))


def _open_part(part: Path, mode: str, url: str):
    try:
        return open(part, mode)
    except OSError as e:
        raise _local_error(part, e, url) from e


def _write(out, data: bytes, part: Path, url: str) -> None:
    try:
        out.write(data)
    except OSError as e:
        raise _local_error(part, e, url) from e


def _fetch_http(url: str, part: Path, *, size: int | None, retries: int, timeout: float, backoff: float,
                progress: bool, expect: str, stall: tuple[float, float]) -> None:
    """Fill `part` with the whole body of `url`, resuming after failures."""
    host = urllib.parse.urlparse(url).hostname or url
    failures = attempts = 0
    best = _size_of(part)  # high-water mark: what counts as progress
    reached = False  # did any attempt get an HTTP answer?
    last: BaseException | None = None
    announced: dict[str, int] = {}  # the file's total size as the server first announced it
    with _progress_bar(part.name[:-5], size, progress) as bar:
        while True:
            attempts += 1
            stalled = False
            try:
                if _http_attempt(url, part, timeout=timeout, expect=expect, size=size, bar=bar, stall=stall,
                                 announced=announced):
                    return
            except DownloadError:  # HTML page, 404, a local disk failure...: permanent, retrying cannot help
                raise
            except urllib.error.URLError as e:  # no HTTP answer at all (HTTPError is handled in the attempt)
                if isinstance(e.reason, socket.gaierror):  # DNS failure: retrying will not help
                    raise _unreachable(url, host, e.reason) from e
                last = e
            except _Stalled as e:
                reached, stalled, last = True, True, e
            except (_Retry, OSError, http.client.HTTPException) as e:  # dropped mid-way, timeout, 5xx
                reached = True
                last = e
            got = _size_of(part)
            if got > best and not stalled:
                best = got
                delay = min(backoff, 1.0)  # progress: come back soon, the link works
            else:
                best = max(best, got)
                failures += 1
                delay = min(backoff * 2 ** (failures - 1), MAX_DELAY)
            if failures > retries or attempts >= max(retries, 1) * ATTEMPTS_PER_RETRY:
                if not reached:
                    raise _unreachable(url, host, last)
                kept = (f"The partial file {part} ({human_size(got)}) is kept and the next run resumes it."
                        if part.exists() else "Nothing was kept.")
                raise DownloadError(f"{url}: download failed after {attempts} attempts ({failures} without "
                                    f"progress); last error: {last}. {kept} {SOURCE_HINT}")
            log.info("%s: attempt %d failed (%s); retrying in %.1fs", url, attempts, last, delay)
            time.sleep(delay)


def _unreachable(url: str, host: str, err: BaseException | None) -> DownloadError:
    reason = getattr(err, "reason", err)
    return DownloadError(f"{url}: host {host} could not be reached ({reason}). {SOURCE_HINT}")


def _http_attempt(url: str, part: Path, *, timeout: float, expect: str, size: int | None, bar: tqdm,
                  stall: tuple[float, float], announced: dict[str, int]) -> bool:
    """One request appending to `part`; True when the file is complete, otherwise raises."""
    offset = _size_of(part)
    if size is not None and offset > size:  # stale .part longer than the file: start over
        part.unlink()
        offset = 0
    overlap = min(offset, OVERLAP)
    first = offset - overlap  # the first byte asked for
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
    if offset:
        req.add_header("Range", f"bytes={first}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        with e:
            return _http_error(url, e, part, offset, size)
    with resp:
        _refuse_html_type(url, resp, expect, part)
        if resp.status == 206:
            start, end, total = _content_range(resp.headers.get("Content-Range"))
            if start != first:  # not the bytes we asked for: drop the .part and start clean
                part.unlink(missing_ok=True)
                raise _Retry(f"server sent range start {start}, expected {first}")
            if total is not None and (offset > total or end != total - 1):
                part.unlink(missing_ok=True)  # a .part longer than the file, or not the open range asked for
                raise _Retry(f"server sent bytes {start}-{end} of {total} for a .part of {offset}; starting over")
            mode = "ab"
        else:  # 200: the server ignored Range (or there was none); the body is the whole file
            if offset:
                log.info("%s: server ignored the Range request; starting over", url)
            offset, overlap, mode = 0, 0, "wb"
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        if total is not None:
            before = announced.setdefault("total", total)
            if total != before:  # the file changed upstream, or the server lies about it
                announced["total"] = total
                part.unlink(missing_ok=True)
                raise _Retry(f"the server now announces {total} bytes, earlier {before}; starting over")
            if size is not None and total != size:  # not the expected file: stop before reading its body
                part.unlink(missing_ok=True)
                raise _checksum_error(part.with_name(part.name[:-5]), url, [("size", str(size), str(total))],
                                      "(as announced by the server; nothing was downloaded). If upstream changed "
                                      "the file, update the expected size, otherwise try again later or use a "
                                      "mirror.")
        total = total if total is not None else size
        _check_space(part, url, None if total is None else total - offset)
        bar.reset(total=total)
        bar.update(offset)
        expected = b""
        if overlap:
            with open(part, "rb") as f:
                f.seek(offset - overlap)
                expected = f.read(overlap)
        _stream(url, _chunks(resp, stall), part, mode, expected=expected,
                check_html=(offset == 0 and expect == "binary"), bar=bar)
    got = _size_of(part)
    if total is not None and got < total:
        raise _Retry(f"connection closed after {got} of {total} bytes")
    if total is not None and got > total:
        part.unlink(missing_ok=True)
        raise _Retry(f"received {got} bytes, more than the {total} announced; starting over")
    return True


def _chunks(resp, stall: tuple[float, float]) -> Iterator[bytes]:
    """The body as it arrives (read1: whatever is there, so a trickle is noticed), abandoned when it stalls."""
    seconds, min_speed = stall
    read = getattr(resp, "read1", resp.read)
    window_start, window_bytes = time.monotonic(), 0
    while chunk := read(CHUNK):
        yield chunk
        window_bytes += len(chunk)
        elapsed = time.monotonic() - window_start
        if elapsed >= seconds:
            if window_bytes < min_speed * elapsed:
                raise _Stalled(f"stalled: {window_bytes} bytes in {elapsed:.1f} s, below {min_speed:g} B/s")
            window_start, window_bytes = time.monotonic(), 0


class _Mismatch(Exception):
    """The overlap re-sent by the server differs from the .part's bytes."""


class _HtmlBody(Exception):
    """The body of a fresh download starts like an HTML page."""


def _stream(url: str, chunks: Iterator[bytes], part: Path, mode: str, *, expected: bytes, check_html: bool,
            bar: tqdm) -> None:
    """Copy the body into `part`: the first len(expected) bytes must equal `expected` (the overlap, not
    written again); the first bytes of a fresh file are looked at for an HTML page before any is written."""
    head = b""
    try:
        with _open_part(part, mode, url) as out:
            for chunk in chunks:
                if expected:
                    n = min(len(expected), len(chunk))
                    if chunk[:n] != expected[:n]:
                        raise _Mismatch
                    expected, chunk = expected[n:], chunk[n:]
                if check_html:
                    head += chunk
                    if len(head) < HTML_SNIFF:
                        continue
                    chunk, head, check_html = head, b"", False
                    if _looks_like_html(chunk):
                        raise _HtmlBody
                if chunk:
                    _write(out, chunk, part, url)
                    bar.update(len(chunk))
            if head:  # a body shorter than HTML_SNIFF
                if _looks_like_html(head):
                    raise _HtmlBody
                _write(out, head, part, url)
                bar.update(len(head))
            if expected:  # the body ended before the resume point: the .part's tail is unconfirmed
                raise _Retry("the connection closed before the resumed range reached the partial file's end")
    except _Mismatch:
        part.unlink(missing_ok=True)
        raise _Retry("the server sent other bytes before the resume point than the partial file holds (it "
                     "ignores or shifts Range requests); starting over") from None
    except _HtmlBody:
        part.unlink(missing_ok=True)
        raise _html_error(url, "the body starts like an HTML page") from None


def _http_error(url: str, e: urllib.error.HTTPError, part: Path, offset: int, size: int | None) -> bool:
    """Map an HTTP error status to done (416 on a complete .part), retry, or a DownloadError."""
    if e.code == 416:
        _, _, total = _content_range(e.headers.get("Content-Range"))
        total = total if total is not None else size
        if offset and total is not None and offset == total:
            return True  # we asked for bytes the file does not have past the end: the .part is already whole
        part.unlink(missing_ok=True)
        raise _Retry(f"HTTP 416 with {offset} bytes on disk; starting over")
    if e.code in (408, 425, 429) or e.code >= 500:
        raise _Retry(f"HTTP {e.code} {e.reason}")
    raise DownloadError(f"{url}: HTTP {e.code} {e.reason}. Check the URL (the file may have moved). "
                        f"{SOURCE_HINT}")


def _content_range(value: str | None) -> tuple[int | None, int | None, int | None]:
    """(start, end, total) of a Content-Range header ("bytes 100-199/1000" or "bytes */1000")."""
    m = re.fullmatch(r"\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*", value or "")
    if not m:
        return None, None, None
    start = int(m.group(1)) if m.group(1) else None
    end = int(m.group(2)) if m.group(2) else None
    total = int(m.group(3)) if m.group(3) != "*" else None
    return start, end, total


def _looks_like_html(head: bytes) -> bool:
    text = head[:HTML_SNIFF].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
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
