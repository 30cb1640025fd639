"""Regression tests of issue 15's breaks in downloading and extracting (each failed on the code before the fix).

Network only from servers on 127.0.0.1 that the tests start (tests/http_server.py). The property-based
suites over the same code are tests/test_fuzz_extract.py and tests/test_fuzz_download.py.
"""
from __future__ import annotations

import errno
import hashlib
import io
import json
import multiprocessing
import os
import struct
import subprocess
import sys
import tarfile
import threading
import zipfile
import zlib
from pathlib import Path

import pytest
from http_server import Server, serve

from soundbench import sources
from soundbench.datasets.base import Release, RemoteFile, Unpack
from soundbench.fetch.download import DownloadError, download
from soundbench.fetch.extract import ArchiveLimitError, ExtractError, Limits, UnsafeArchiveError, extract

BODY = bytes(range(256)) * 800  # 200 KiB
SHA = hashlib.sha256(BODY).hexdigest()
FAST = dict(progress=False, backoff=0.01, timeout=5.0)
# the modules (the package re-exports the functions by these names)
dl = sys.modules["soundbench.fetch.download"]
ex = sys.modules["soundbench.fetch.extract"]


@pytest.fixture
def server():
    with serve(Server(files={"/data.bin": BODY})) as state:
        yield state


def _tree(top: Path) -> dict[str, object]:
    """Everything under top (links not followed): path -> bytes, "dir" or ("link", target)."""
    out: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(top))
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = p.read_bytes()
    return out


def _info(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], mode: str = "w:gz", **kw) -> Path:
    with tarfile.open(path, mode, **kw) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


# ------------------------------------------------------------------ 1. two downloads of the same file

def _download_in_child(url: str, dest: str, sha256: str | None) -> None:
    download(url, dest, sha256=sha256, **FAST)


@pytest.mark.parametrize("sha256", [None, SHA], ids=["no-checksum", "checksum"])
def test_concurrent_downloads_of_one_file_never_mix_their_bytes(server, tmp_path, sha256):
    server.chunk_delay = 0.03  # ~0.4 s for the body: the second process starts while the first is writing
    dest = tmp_path / "data.bin"
    ctx = multiprocessing.get_context("fork")
    first = ctx.Process(target=_download_in_child, args=(server.url("/data.bin"), str(dest), sha256))
    first.start()
    part = tmp_path / "data.bin.part"
    for _ in range(400):  # until the first one is writing its .part
        if part.exists() and part.stat().st_size > 0:
            break
        first.join(0.005)
    second = ctx.Process(target=_download_in_child, args=(server.url("/data.bin"), str(dest), sha256))
    second.start()
    for p in (first, second):
        p.join(30)
        assert p.exitcode == 0
    assert dest.read_bytes() == BODY
    assert len(server.requests) == 1  # the second waited for the first and found the file finished
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin"]  # no .part, no lock left


# ------------------------------------------------------------------ 2. symlinks escaping across archives

def test_symlink_escape_spread_over_three_archives_is_refused(tmp_path):
    box = tmp_path / "box"
    out = box / "out"
    out.mkdir(parents=True)
    (box / "sentinel").write_bytes(b"outside")
    a1 = _tar(tmp_path / "1.tar.gz", [(_info("b", tarfile.DIRTYPE), None), (_info("b/c", tarfile.SYMTYPE, ".."), None)])
    a2 = _tar(tmp_path / "2.tar.gz", [(_info("x", tarfile.SYMTYPE, "b/c/.."), None)])  # b/c/.. is out/.. on disk
    a3 = _tar(tmp_path / "3.tar.gz", [(_info("x/file"), b"pwned")])
    extract(a1, out)
    with pytest.raises(UnsafeArchiveError) as err:
        extract(a2, out)
    assert str(a2) in str(err.value) and "'x'" in str(err.value)
    extract(a3, out)  # x does not exist now: a plain folder inside
    assert (out / "x" / "file").read_bytes() == b"pwned"
    assert sorted(_tree(box)) == ["out", "out/b", "out/b/c", "out/x", "out/x/file", "sentinel"]


def test_member_through_a_symlink_already_on_disk_that_leads_outside_is_refused(tmp_path):
    out = tmp_path / "box" / "out"
    out.mkdir(parents=True)
    (out / "data").symlink_to(tmp_path / "elsewhere")  # e.g. the user's own link in the target directory
    (tmp_path / "elsewhere").mkdir()
    archive = _tar(tmp_path / "a.tar.gz", [(_info("data/f.wav"), b"x")])
    with pytest.raises(UnsafeArchiveError, match="already there") as err:
        extract(archive, out)
    assert str(archive) in str(err.value) and "data/f.wav" in str(err.value)
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_local_archive_list_is_checked_as_one_set(tmp_path):
    """`source: local` with `archive: [three tars]`: fetched and unpacked into one staging tree."""
    box = tmp_path / "box"
    box.mkdir()
    a1 = _tar(tmp_path / "p1.tar.gz", [(_info("b", tarfile.DIRTYPE), None),
                                       (_info("b/c", tarfile.SYMTYPE, ".."), None)])
    a2 = _tar(tmp_path / "p2.tar.gz", [(_info("x", tarfile.SYMTYPE, "b/c/.."), None)])
    a3 = _tar(tmp_path / "p3.tar.gz", [(_info("x/file"), b"pwned")])
    release = sources.release_for("speech_commands", {"source": "local", "archive": [str(a1), str(a2), str(a3)]})
    sources.fetch("speech_commands", release, box / "archives", None, progress=False)
    with pytest.raises(UnsafeArchiveError) as err:
        sources.unpack(release, box / "archives", box / "datasets" / "speech_commands")
    assert "p2.tar.gz" in str(err.value)
    assert sorted(p.name for p in box.iterdir()) == ["archives", "datasets"]
    assert list((box / "datasets").iterdir()) == []  # no root, no staging, no lock


def test_hard_link_to_a_symlink_cannot_become_an_escaping_symlink(tmp_path):
    """tarfile recreates a hard link to a symlink as a copy of that symlink at the link's place, where its
    relative target leads elsewhere (found while writing the fuzzing suite)."""
    out = tmp_path / "box" / "out"
    out.mkdir(parents=True)
    archive = _tar(tmp_path / "h.tar", [(_info("d", tarfile.DIRTYPE), None),
                                        (_info("d/s", tarfile.SYMTYPE, "../x"), None),
                                        (_info("h", tarfile.LNKTYPE, "d/s"), None)], mode="w")
    with pytest.raises(UnsafeArchiveError, match="not a regular file earlier") as err:
        extract(archive, out)
    assert str(archive) in str(err.value) and "'h'" in str(err.value)
    assert _tree(tmp_path / "box") == {"out": "dir"}


# ------------------------------------------------------------------ 3. zip bombs and lying sizes

def test_zip_bomb_is_refused_before_anything_is_written(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("zeros.bin", "w", force_zip64=True) as f:
        block = bytes(1 << 20)
        for _ in range(256):  # 256 MiB of zeros: a ~250 KiB zip, ~1000x
            f.write(block)
    assert bomb.stat().st_size < 1 << 20
    out = tmp_path / "out"
    with pytest.raises(ArchiveLimitError, match="max_ratio") as err:
        extract(bomb, out)
    assert str(bomb) in str(err.value) and "256.0 MiB" in str(err.value)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bomb.zip"]


def _lying_zip(path: Path, data: bytes, declared: int, crc: int) -> Path:
    """A deflated one-member zip whose headers declare `declared` bytes and CRC `crc` (both consistent)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("member.bin", data)
    raw = bytearray(path.read_bytes())
    struct.pack_into("<I", raw, 14, crc)  # local header: CRC-32 at 14, uncompressed size at 22
    struct.pack_into("<I", raw, 22, declared)
    central = raw.index(b"PK\x01\x02")
    struct.pack_into("<I", raw, central + 16, crc)
    struct.pack_into("<I", raw, central + 24, declared)
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize("declared_delta", [-5000, +5000], ids=["expands-past-declared", "ends-short"])
def test_member_whose_actual_size_differs_from_the_declared_one_is_refused(tmp_path, declared_delta):
    data = os.urandom(20_000)
    declared = len(data) + declared_delta
    # the CRC matches what a reader that trusts the declared size gets, so only the size check catches it
    crc = zlib.crc32(data[:declared]) if declared_delta < 0 else zlib.crc32(data)
    archive = _lying_zip(tmp_path / "lie.zip", data, declared, crc)
    out = tmp_path / "out"
    with pytest.raises(ExtractError) as err:
        extract(archive, out)
    msg = str(err.value)
    assert str(archive) in msg and "'member.bin'" in msg
    assert ("expands past its declared size" if declared_delta < 0 else f"holds {len(data)} bytes") in msg
    assert not out.exists()


def test_limits_cap_the_whole_set_of_a_dataset(tmp_path):
    """sources.unpack charges every archive of a release to one budget, read from release.json."""
    arch = tmp_path / "archives"
    arch.mkdir()
    units, files = [], []
    for i in range(3):
        with zipfile.ZipFile(arch / f"a{i}.zip", "w") as zf:
            zf.writestr(f"part{i}.bin", os.urandom(400_000))
        files.append(RemoteFile(f"a{i}.zip", (arch / f"a{i}.zip").as_uri()))
        units.append(Unpack((f"a{i}.zip",), "zip"))
    release = Release(tuple(files), tuple(units))
    record = json.loads(sources.release_to_json(release))
    (arch / "release.json").write_text(json.dumps({**record, "dataset": "mtt", "extract": {"max_gib": 1e-3}}))
    root = tmp_path / "datasets" / "mtt"
    with pytest.raises(ArchiveLimitError, match=r"datasets\.mtt\.extract\.max_gib") as err:
        sources.unpack(release, arch, root)  # 1e-3 GiB ~ 1.07 MB: the third archive brings it to 1.2 MB
    assert "a2.zip" in str(err.value)
    assert not root.exists() and list((tmp_path / "datasets").iterdir()) == []
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as zf:
        for i in range(3):
            zf.writestr(f"f{i}.txt", b"x")
    with pytest.raises(ArchiveLimitError, match=r"datasets\.x\.extract\.max_files") as err:
        extract(many, tmp_path / "one", limits=Limits(max_files=2, key="datasets.x.extract"))
    assert str(many) in str(err.value) and not (tmp_path / "one").exists()


def test_free_space_is_checked_before_extracting(tmp_path, monkeypatch):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("f.bin", os.urandom(1000))
    monkeypatch.setattr(ex, "_free_bytes", lambda path: 10 << 20, raising=False)  # 10 MiB free
    out = tmp_path / "out"
    with pytest.raises(ExtractError, match="free") as err:
        extract(archive, out)
    assert str(archive) in str(err.value) and not out.exists()


def test_limits_from_config_name_the_key():
    lim = Limits.from_config({"max_gib": 2, "max_ratio": 10}, "datasets.mtt.extract")
    assert (lim.max_bytes, lim.max_files, lim.max_ratio) == (2 << 30, Limits().max_files, 10)
    for bad, key in (({"max_gib": -1}, "max_gib"), ({"max_ratio": 0.5}, "max_ratio"), ({"max_files": "many"},
                                                                                          "max_files")):
        with pytest.raises(ValueError, match=rf"datasets\.mtt\.extract\.{key}"):
            Limits.from_config(bad, "datasets.mtt.extract")
    with pytest.raises(sources.SourceError, match=r"datasets\.mtt\.extract: unknown key\(s\) \['max_gb'\]"):
        sources.extract_limits("mtt", {"extract": {"max_gb": 1}})


# ------------------------------------------------------------------ 4. a corrupt tar.gz

def test_corrupt_tar_gz_is_refused_even_without_a_published_checksum(tmp_path):
    data = os.urandom(50_000)
    good = _tar(tmp_path / "good.tar.gz", [(_info("a.wav"), data)], compresslevel=0).read_bytes()
    raw = bytearray(good)
    i = raw.index(data[1000:1032])  # stored deflate blocks: the member's bytes appear as they are
    raw[i] ^= 0xFF  # tar, gzip framing and deflate stay valid; only gzip's CRC-32 can tell
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(bytes(raw))
    out = tmp_path / "out"
    with pytest.raises(ExtractError, match="damaged") as err:
        extract(bad, out)
    assert str(bad) in str(err.value) and "CRC" in str(err.value)
    assert not out.exists()
    extract(tmp_path / "good.tar.gz", out)
    assert (out / "a.wav").read_bytes() == data


# ------------------------------------------------------------------ minor: downloads

def test_a_trickling_download_ends(server, tmp_path, monkeypatch):
    server.trickle = 0.02  # 50 bytes/s: every read succeeds, none times out
    monkeypatch.setattr(dl, "STALL_SECONDS", 0.3, raising=False)
    monkeypatch.setattr(dl, "MIN_SPEED", 1000, raising=False)
    outcome: list[BaseException | None] = []

    def run():
        try:
            download(server.url("/data.bin"), tmp_path / "data.bin", retries=1, **FAST)
            outcome.append(None)
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            outcome.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive(), "the download still trickles after 10 s"
    assert isinstance(outcome[0], DownloadError) and "stalled" in str(outcome[0])
    assert server.url("/data.bin") in str(outcome[0]) and len(server.requests) == 2  # retries=1: two attempts


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])  # a full disk, a read-only target
def test_an_unwritable_target_fails_at_once_naming_the_path(server, tmp_path, monkeypatch, code):
    real_open = open

    def failing(file, mode="r", *args, **kwargs):  # as root, chmod cannot make a directory read-only
        if str(file).endswith(".part") and ("w" in mode or "a" in mode):
            raise OSError(code, os.strerror(code), str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(dl, "open", failing, raising=False)
    with pytest.raises(DownloadError) as err:
        download(server.url("/data.bin"), tmp_path / "data.bin", retries=5, **FAST)
    assert str(tmp_path / "data.bin.part") in str(err.value) and os.strerror(code) in str(err.value)
    assert "not retried" in str(err.value)
    assert len(server.requests) == 1  # not retried as if the network had failed


def test_a_target_under_a_file_fails_before_any_request(server, tmp_path):
    (tmp_path / "afile").write_text("")
    with pytest.raises(DownloadError) as err:
        download(server.url("/data.bin"), tmp_path / "afile" / "data.bin", retries=5, **FAST)
    assert str(tmp_path / "afile") in str(err.value) and "not retried" in str(err.value)
    assert server.requests == []


def test_a_download_that_cannot_fit_is_refused_before_it_starts(server, tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "_free_bytes", lambda path: 1000, raising=False)
    with pytest.raises(DownloadError, match="free") as err:
        download(server.url("/data.bin"), tmp_path / "data.bin", **FAST)
    assert str(tmp_path / "data.bin.part") in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_failure_message_mentions_a_part_only_when_one_exists(server, tmp_path):
    server.fail_first = 10**6
    with pytest.raises(DownloadError) as err:
        download(server.url("/data.bin"), tmp_path / "data.bin", retries=1, **FAST)
    assert "is kept" not in str(err.value) and "Nothing was kept" in str(err.value)
    server.fail_first, server.drop_first = 0, 10**6  # half of the body, every time
    with pytest.raises(DownloadError) as err:
        download(server.url("/data.bin"), tmp_path / "data.bin", retries=1, **FAST)
    part = tmp_path / "data.bin.part"
    assert f"{part} ({dl.human_size(part.stat().st_size)}) is kept and the next run resumes it" in str(err.value)


def test_a_server_that_shifts_the_resumed_range_is_caught_without_a_checksum(server, tmp_path):
    server.drop_first = 1  # the first answer breaks off half-way: the second asks for a Range
    server.shift = 1000  # ... and gets the bytes from 1000 further on, labelled as the ones asked for
    server.script = lambda n, asked: {"shift": 0} if n > 2 else {}
    dest = download(server.url("/data.bin"), tmp_path / "data.bin", **FAST)
    assert dest.read_bytes() == BODY
    assert [r for _, r in server.requests] == [None, f"bytes={len(BODY) // 2 - dl.OVERLAP}-", None]


# ------------------------------------------------------------------ minor: extraction leftovers, CLI

def test_temporary_directories_of_killed_extractions_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "out"
    stale = tmp_path / f"out.tmp-{dead.pid}"
    (stale / "half").mkdir(parents=True)
    (stale / "half" / "written.wav").write_bytes(b"x" * 100)
    live = tmp_path / f"out.tmp-{os.getppid()}"  # a live process's: left alone
    live.mkdir()
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("f.txt", b"ok")
    extract(archive, out)
    assert not stale.exists() and live.exists()
    assert (out / "f.txt").read_bytes() == b"ok"


@pytest.mark.parametrize("value", ["1.5", "-1", "nan", "x"])
def test_max_failed_fraction_must_be_a_fraction(value, capsys):
    from soundbench import cli

    args = ["features", "--dataset", "d", "--manifest", "m", "--spec", "{}", "--shard", "0", "--n-shards", "1",
            "--out", "o", "--skipped", "s", "--max-failed-fraction", value]
    with pytest.raises(SystemExit):
        cli.parser().parse_args(args)
    assert "--max-failed-fraction" in capsys.readouterr().err
    assert cli.parser().parse_args(args[:-1] + ["0.25"]).max_failed_fraction == 0.25


# ------------------------------------------------------------------ sources: names, parts, destinations

def test_local_split_archive_parts_are_one_archive(tmp_path):
    whole = io.BytesIO()
    with zipfile.ZipFile(whole, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("mp3/0/a.mp3", os.urandom(30_000))
        zf.writestr("annotations.csv", b"a\tb\n" * 100)
    raw = whole.getvalue()
    parts = []
    for i, (lo, hi) in enumerate(((0, 10_000), (10_000, 20_000), (20_000, len(raw))), 1):
        parts.append(tmp_path / f"mp3.zip.00{i}")
        parts[-1].write_bytes(raw[lo:hi])
    cfg = {"source": "local", "archive": [str(p) for p in parts]}
    release = sources.release_for("mtt", cfg)
    assert release.unpack == (Unpack(("mp3.zip.001", "mp3.zip.002", "mp3.zip.003"), "zip"),)
    sources.fetch("mtt", release, tmp_path / "archives", None, progress=False)
    assert sources.unpack(release, tmp_path / "archives", tmp_path / "root") == 2
    with pytest.raises(sources.SourceError, match=r"in order from \.001"):
        sources.release_for("mtt", {"source": "local", "archive": [str(parts[1]), str(parts[0])]})


def test_local_archive_names_must_differ_and_be_files(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for d in ("a", "b"):
        (tmp_path / d / "x.zip").write_bytes(b"PK")
    with pytest.raises(sources.SourceError, match="same file name") as err:
        sources.release_for("mtt", {"source": "local", "archive": [str(tmp_path / d / "x.zip") for d in "ab"]})
    assert str(tmp_path / "a" / "x.zip") in str(err.value) and str(tmp_path / "b" / "x.zip") in str(err.value)
    with pytest.raises(sources.SourceError, match="is a directory.*mirror"):
        sources.release_for("mtt", {"source": "local", "archive": str(tmp_path / "a")})


@pytest.mark.parametrize("field,value", [("name", "../evil.zip"), ("name", "{tmp}/evil.zip"), ("name", ".."),
                                         ("dest", "../outside"), ("dest", "{tmp}/abs"), ("part", "../../etc/passwd")])
def test_release_names_cannot_leave_their_directories(tmp_path, field, value):
    value = value.format(tmp=tmp_path)  # absolute names point into this test's directory
    src = tmp_path / "src.zip"
    with zipfile.ZipFile(src, "w") as zf:
        zf.writestr("f.txt", b"x")
    name = value if field == "name" else "src.zip"
    unit = Unpack((value if field == "part" else name,), "zip", dest=value if field == "dest" else ".")
    release = Release((RemoteFile(name, src.as_uri()),), (unit,))
    arch = tmp_path / "box" / "archives"
    with pytest.raises(sources.SourceError, match="plain file name|relative path") as err:
        sources.fetch("mtt", release, arch, None, progress=False)
    assert repr(value) in str(err.value)
    assert not (tmp_path / "box").exists() and not (tmp_path / "evil.zip").exists()
    if field != "name":  # unpack checks a (possibly edited) release.json too
        (arch / "src.zip").parent.mkdir(parents=True)
        (arch / "src.zip").write_bytes(src.read_bytes())
        with pytest.raises(sources.SourceError):
            sources.unpack(release, arch, tmp_path / "box" / "root")
        assert sorted(p.name for p in (tmp_path / "box").iterdir()) == ["archives"]


@pytest.mark.slow
def test_extract_limits_reach_unpack_through_the_workflow(tmp_path):
    """datasets.NAME.extract in the config -> fetch's --source -> release.json -> unpack's refusal; raising the
    limit reruns fetch and unpack (their params changed) and then extracts."""
    from workflow_runs import snakemake

    cfg = {"datasets": {"speech_commands": {"source": "demo", "demo": {"per_word": 2},
                                            "extract": {"max_gib": 1e-6}}},  # ~1 KiB
           "features": {}, "experiments": {}}
    target = "resources/datasets/speech_commands.done"
    r = snakemake(tmp_path, cfg, "--cores", "1", target)
    assert r.returncode != 0
    log = (tmp_path / "logs" / "unpack" / "speech_commands.log").read_text()
    assert "speech_commands_v0.02.tar.gz: refusing to extract" in log
    assert "datasets.speech_commands.extract.max_gib" in log
    assert not (tmp_path / "resources" / "datasets" / "speech_commands").exists()
    cfg["datasets"]["speech_commands"]["extract"] = {"max_gib": 1}
    r = snakemake(tmp_path, cfg, "--cores", "1", target)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((tmp_path / target).read_text())["entries"] > 0
