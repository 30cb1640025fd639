"""Property-based tests of soundbench.fetch.download against a lying server on 127.0.0.1 (hypothesis; see
fuzzing.py for the bounded default and the long profile).

Each example draws how the server misbehaves request by request (503s, dropped connections, ignored or shifted
Ranges, wrong Content-Length or Content-Range totals, bodies cut short, HTML content types), what a previous run
left as `.part` (nothing, a true prefix, garbage, more than the file), and what the caller can check (sha256,
size, nothing). Invariants:
- `dest` is published only with exactly the file's bytes; a failure raises DownloadError naming the URL (or the
  file) and publishes nothing;
- no lock file and nothing but `dest`/`.part` is ever left in the directory;
- several concurrent downloads of one URL to one file all end with the file's bytes or a DownloadError, never
  with a mix of both writers' bytes.
Without a checksum, a server that consistently serves a shorter body under its own Content-Length cannot be
told from a shorter file: that lie is only drawn when a checksum or size is given.
"""
from __future__ import annotations

import hashlib
import random
import tempfile
import threading
from pathlib import Path

import pytest
from fuzzing import fuzz_settings
from http_server import Server, serve
from hypothesis import assume, example, given
from hypothesis import strategies as st

from soundbench.fetch.download import DownloadError, download

BODY = random.Random(1).randbytes(150_000)
SHA = hashlib.sha256(BODY).hexdigest()
OPTS = dict(progress=False, backoff=0.001, timeout=3.0, retries=4)

BEHAVIOUR = st.one_of(
    st.just({}),
    st.just({"status": 503}),
    st.just({"drop": True}),
    st.just({"ignore_range": True}),
    st.integers(1, 5000).map(lambda k: {"shift": k}),
    st.integers(0, 160_000).map(lambda n: {"per_connection": n}),
    st.integers(1, 5000).map(lambda d: {"length_lie": d}),  # announces more than it sends, then hangs up
    st.integers(1, 5000).map(lambda d: {"length_lie": -d}),  # announces and sends less (checksum mode only)
    st.integers(-5000, 5000).filter(bool).map(lambda d: {"total_lie": d}),
    st.just({"content_type": "text/html"}),
)
LEFTOVER = st.one_of(st.just(("none", 0)), st.tuples(st.sampled_from(["prefix", "garbage"]), st.integers(1, 149_999)),
                     st.tuples(st.just("long"), st.integers(1, 5000)))


@pytest.fixture(scope="module")
def server():
    with serve(Server(files={"/f.bin": BODY})) as state:
        yield state


def _scripted(server: Server, behaviours: list[dict]) -> None:
    with server.lock:
        server.requests.clear()
        server.script = lambda n, asked: behaviours[n - 1] if n <= len(behaviours) else {}


def _leftover(part: Path, kind: str, n: int) -> None:
    if kind == "prefix":
        part.write_bytes(BODY[:n])
    elif kind == "garbage":
        part.write_bytes(random.Random(n).randbytes(n))
    elif kind == "long":
        part.write_bytes(BODY + bytes(n))


def _check(url: str, dest: Path, outcome: BaseException | None) -> None:
    if outcome is None:
        assert dest.read_bytes() == BODY, "published other bytes than the file's"
    else:
        assert isinstance(outcome, DownloadError), repr(outcome)
        assert url in str(outcome) or str(dest) in str(outcome), f"the error names neither URL nor file: {outcome}"
    assert not dest.with_name(dest.name + ".lock").exists()
    assert {p.name for p in dest.parent.iterdir()} <= {dest.name, dest.name + ".part"}


@fuzz_settings(80)
@given(st.lists(BEHAVIOUR, max_size=6), LEFTOVER, st.sampled_from(["sha256", "size", "none"]))
# found by the long profile: a .part one byte too long, and a first answer whose total is one byte too many,
# once published the extra byte (the body ended before the overlap was confirmed)
@example(behaviours=[{"total_lie": 1}], leftover=("long", 1), check="none")
# found on the code before the fix: a garbage .part was resumed, and published when only the size was checked
@example(behaviours=[], leftover=("garbage", 1), check="size")
def test_a_lying_server_never_gets_a_wrong_file_published(server, behaviours, leftover, check):
    if check == "none":
        assume(not any(b.get("length_lie", 0) < 0 for b in behaviours))
    _scripted(server, behaviours)
    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(tmp) / "f.bin"
        _leftover(dest.with_name("f.bin.part"), *leftover)
        url = server.url("/f.bin")
        outcome = None
        try:
            download(url, dest, sha256=SHA if check == "sha256" else None,
                     size=len(BODY) if check == "size" else None, **OPTS)
        except DownloadError as e:
            outcome = e
        _check(url, dest, outcome)
        if check == "size" and outcome is None:
            assert dest.stat().st_size == len(BODY)


@fuzz_settings(25)
@given(st.lists(st.one_of(st.just({}), st.just({"status": 503}), st.just({"drop": True}),
                          st.integers(1, 5000).map(lambda k: {"shift": k}),
                          st.integers(1, 60_000).map(lambda n: {"per_connection": n})), max_size=4),
       st.integers(2, 3), st.booleans())
def test_concurrent_downloads_of_one_url_never_mix(server, behaviours, n_threads, with_checksum):
    _scripted(server, [{**b, "chunk_delay": 0.002} for b in behaviours] + [{"chunk_delay": 0.002}] * 3)
    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(tmp) / "f.bin"
        url = server.url("/f.bin")
        outcomes: list[BaseException | None] = [None] * n_threads

        def run(i: int) -> None:
            try:
                download(url, dest, sha256=SHA if with_checksum else None, **OPTS)
            except BaseException as e:  # noqa: BLE001 - checked below
                outcomes[i] = e

        threads = [threading.Thread(target=run, args=(i,)) for i in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
            assert not t.is_alive()
        for outcome in outcomes:
            _check(url, dest, outcome)
        assert any(o is None for o in outcomes) or not dest.exists()
