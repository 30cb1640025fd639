"""soundbench.fetch.extract: split zips, tar.gz, ZipCrypto, hostile and corrupt archives."""
from __future__ import annotations

import importlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from soundbench.fetch.extract import ExtractError, UnsafeArchiveError, detect_kind, extract, write_encrypted_zip

FILES = {
    "mp3/0/a.mp3": os.urandom(40_000),
    "mp3/1/b.mp3": b"ID3" + bytes(range(256)) * 100,
    "annotations_final.csv": b"clip_id\tguitar\n1\t0\n" * 50,
}
UNZIP = shutil.which("unzip")


@pytest.fixture
def work(tmp_path):
    """An output directory that already holds a file (it must survive any failure), and its parent."""
    out = tmp_path / "work" / "out"
    out.mkdir(parents=True)
    (out / "keep.txt").write_text("previous contents")
    (tmp_path / "arch").mkdir()
    return out


def _untouched(out: Path) -> bool:
    """out holds exactly what it held before, and no temporary directory is left beside it."""
    return sorted(p.name for p in out.parent.iterdir()) == ["out"] and \
        sorted(str(p.relative_to(out)) for p in out.rglob("*")) == ["keep.txt"] and \
        (out / "keep.txt").read_text() == "previous contents"


def _zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _info(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


def _check_files(out: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        assert (out / name).read_bytes() == data, name


# ----------------------------------------------------------------------------------------- good archives

def test_split_zip_parts_are_concatenated(work, tmp_path):
    whole = _zip(tmp_path / "whole.zip", FILES).read_bytes()
    cuts = [0, len(whole) // 3, 2 * len(whole) // 3, len(whole)]  # like `split -n 3`: plain byte ranges
    parts = []
    for i in range(3):
        p = tmp_path / "arch" / f"mp3.zip.00{i + 1}"
        p.write_bytes(whole[cuts[i]:cuts[i + 1]])
        parts.append(p)
    assert detect_kind(parts) == "zip"
    names = extract(parts, work)
    assert sorted(names) == sorted(FILES)
    _check_files(work, FILES)
    assert (work / "keep.txt").exists()
    assert sorted(p.name for p in work.parent.iterdir()) == ["out"]  # no temp dir, no concatenation left


def test_tar_gz_with_dot_prefix_merges_into_existing_dir(work, tmp_path):
    (work / "speech").mkdir()
    (work / "speech" / "old.wav").write_bytes(b"old")
    members = [(_info("./", tarfile.DIRTYPE), None), (_info("./speech", tarfile.DIRTYPE), None)]
    members += [(_info(f"./speech/{n}"), d) for n, d in FILES.items()]
    members += [(_info("./speech/alias.mp3", tarfile.SYMTYPE, "mp3/0/a.mp3"), None)]
    archive = _tar(tmp_path / "arch" / "speech_commands_v0.02.tar.gz", members)
    assert detect_kind([archive]) == "tar"
    names = extract([archive], work)
    assert sorted(names) == sorted([f"speech/{n}" for n in FILES] + ["speech/alias.mp3"])
    _check_files(work / "speech", FILES)
    assert (work / "speech" / "alias.mp3").read_bytes() == FILES["mp3/0/a.mp3"]
    assert (work / "speech" / "old.wav").read_bytes() == b"old"  # merged, not replaced


def test_kind_file_copies(work, tmp_path):
    src = tmp_path / "arch" / "labels.csv"
    src.write_bytes(b"a,b\n")
    assert extract([src], work, kind="file") == ["labels.csv"]
    assert (work / "labels.csv").read_bytes() == b"a,b\n"


# ----------------------------------------------------------------------------------------------- ZipCrypto

def test_encrypted_zip_is_readable_by_zipfile_and_unzip(tmp_path):
    files = {"audio/x.wav": os.urandom(5000), "meta/y.csv": b"a,b\n" * 500, "dir/": b""}
    archive = write_encrypted_zip(tmp_path / "enc.zip", files, "DCASE_2017_evaluation_set")
    with zipfile.ZipFile(archive) as zf:
        assert all(zf.getinfo(n).flag_bits & 1 for n in files if not n.endswith("/"))
        assert zf.getinfo("meta/y.csv").compress_type == zipfile.ZIP_DEFLATED  # compressible: deflated
        assert zf.getinfo("audio/x.wav").compress_type == zipfile.ZIP_STORED  # random: stored
        for name in ("audio/x.wav", "meta/y.csv"):
            assert zf.read(name, pwd=b"DCASE_2017_evaluation_set") == files[name]
        with pytest.raises(RuntimeError):
            zf.read("meta/y.csv", pwd=b"wrong")
    assert write_encrypted_zip(tmp_path / "again.zip", files, "DCASE_2017_evaluation_set").read_bytes() == \
        archive.read_bytes()  # reproducible with the default seed
    if UNZIP is None:
        pytest.skip("unzip binary not installed")
    for name in ("audio/x.wav", "meta/y.csv"):
        got = subprocess.run([UNZIP, "-p", "-P", "DCASE_2017_evaluation_set", str(archive), name],
                             capture_output=True, check=True).stdout
        assert got == files[name]
    assert subprocess.run([UNZIP, "-tq", "-P", "DCASE_2017_evaluation_set", str(archive)],
                          capture_output=True).returncode == 0


def test_extract_encrypted_zip_with_right_wrong_and_no_password(work, tmp_path):
    archive = write_encrypted_zip(tmp_path / "arch" / "eval.zip", FILES, "s3cret")
    for password, message in ((None, "no password"), ("wrong", "wrong password")):
        with pytest.raises(ExtractError, match=message) as err:
            extract([archive], work, password=password)
        assert str(archive) in str(err.value)
        assert _untouched(work)
    assert sorted(extract([archive], work, password="s3cret")) == sorted(FILES)
    _check_files(work, FILES)


def test_zipcrypto_decryption_matches_zipfile_and_pure_python(tmp_path, monkeypatch):
    """The compiled decrypter, the pure-Python fallback and zipfile agree, chunk boundaries included."""
    ex = importlib.import_module("soundbench.fetch.extract")  # the package re-exports the function by that name
    files = {"a.bin": os.urandom(ex.COPY_BLOCK + 17), "b.csv": b"x,y\n" * 70_000}
    archive = write_encrypted_zip(tmp_path / "enc.zip", files, "pw")
    for compiled in (True, False):
        if not compiled:
            monkeypatch.setattr(ex, "_zipcrypto_decrypt_kernel", _no_numba)
        out = tmp_path / f"out-{compiled}"
        extract([archive], out, password="pw")
        _check_files(out, files)


def _no_numba():
    raise ImportError("numba disabled for this test")


# ------------------------------------------------------------------------------------------ hostile archives

def _hostile_zip(path: Path, bad_name: str) -> Path:
    return _zip(path, {**FILES, bad_name: b"pwned"})  # good members first: nothing may be written anyway


def _zip_symlink(path: Path, target: str) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ok.txt", b"fine")
        info = zipfile.ZipInfo("link")
        info.create_system, info.external_attr = 3, (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, target)
    return path


def _zip_fifo(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo("pipe")
        info.create_system, info.external_attr = 3, (stat.S_IFIFO | 0o644) << 16
        zf.writestr(info, b"")
    return path


def _good_tar_members() -> list:
    return [(_info(n), d) for n, d in FILES.items()]


HOSTILE = {
    "zip-dotdot": (lambda p: _hostile_zip(p / "a.zip", "../evil"), "../evil"),
    "zip-nested-dotdot": (lambda p: _hostile_zip(p / "a.zip", "mp3/../../evil"), "mp3/../../evil"),
    "zip-absolute": (lambda p: _hostile_zip(p / "a.zip", "/abs/evil"), "/abs/evil"),
    "zip-drive-letter": (lambda p: _hostile_zip(p / "a.zip", "C:/evil"), "C:/evil"),
    "zip-backslash-dotdot": (lambda p: _hostile_zip(p / "a.zip", "..\\evil"), "..\\evil"),
    "zip-symlink-outside": (lambda p: _zip_symlink(p / "a.zip", "../../etc/passwd"), "link"),
    "zip-symlink-absolute": (lambda p: _zip_symlink(p / "a.zip", "/etc/passwd"), "link"),
    "zip-fifo": (lambda p: _zip_fifo(p / "a.zip"), "pipe"),
    "tar-dotdot": (lambda p: _tar(p / "a.tar.gz", _good_tar_members() + [(_info("../evil"), b"x")]), "../evil"),
    "tar-absolute": (lambda p: _tar(p / "a.tar.gz", _good_tar_members() + [(_info("/tmp/evil"), b"x")]),
                     "/tmp/evil"),
    "tar-symlink-then-write-through": (lambda p: _tar(p / "a.tar.gz", _good_tar_members() + [
        (_info("etc", tarfile.SYMTYPE, "/etc"), None), (_info("etc/evil.conf"), b"x")]), "etc"),
    "tar-write-through-inside-symlink": (lambda p: _tar(p / "a.tar.gz", _good_tar_members() + [
        (_info("d", tarfile.SYMTYPE, "mp3"), None), (_info("d/evil"), b"x")]), "d/evil"),
    "tar-symlink-chain-escape": (lambda p: _tar(p / "a.tar.gz", [
        (_info("here", tarfile.SYMTYPE, "."), None), (_info("up", tarfile.SYMTYPE, "here/../x"), None)]), "up"),
    "tar-hardlink-outside": (lambda p: _tar(p / "a.tar.gz", _good_tar_members() + [
        (_info("passwd", tarfile.LNKTYPE, "../../../etc/passwd"), None)]), "passwd"),
    "tar-hardlink-absolute": (lambda p: _tar(p / "a.tar.gz", [
        (_info("passwd", tarfile.LNKTYPE, "/etc/passwd"), None)]), "passwd"),
    "tar-fifo": (lambda p: _tar(p / "a.tar.gz", [(_info("pipe", tarfile.FIFOTYPE), None)]), "pipe"),
    "tar-char-device": (lambda p: _tar(p / "a.tar.gz", [(_info("null", tarfile.CHRTYPE), None)]), "null"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archives_are_refused_before_writing(work, tmp_path, case):
    make, member = HOSTILE[case]
    archive = make(tmp_path / "arch")
    with pytest.raises(UnsafeArchiveError) as err:
        extract([archive], work)
    assert str(archive) in str(err.value) and repr(member) in str(err.value)
    assert _untouched(work)


def test_hostile_member_into_a_new_out_dir_creates_nothing(tmp_path):
    archive = _hostile_zip(tmp_path / "a.zip", "../evil")
    out = tmp_path / "fresh" / "out"
    with pytest.raises(UnsafeArchiveError):
        extract([archive], out)
    assert not out.exists() and list((tmp_path / "fresh").iterdir()) == []
    assert not (tmp_path / "fresh" / "evil").exists()


# ------------------------------------------------------------------------------------------ corrupt archives

def test_corrupt_archives_raise_extract_error_and_leave_nothing(work, tmp_path):
    garbage = tmp_path / "arch" / "garbage.zip"
    garbage.write_bytes(b"this is not a zip at all" * 100)
    good = _zip(tmp_path / "good.zip", FILES).read_bytes()
    flipped = bytearray(good)
    flipped[200] ^= 0xFF  # inside the first member's deflated data: fails mid-extraction (CRC/deflate)
    bad_crc = tmp_path / "arch" / "bad_crc.zip"
    bad_crc.write_bytes(bytes(flipped))
    tgz = _tar(tmp_path / "whole.tar.gz", _good_tar_members()).read_bytes()
    truncated = tmp_path / "arch" / "truncated.tar.gz"
    truncated.write_bytes(tgz[: len(tgz) // 2])
    for archive in (garbage, bad_crc, truncated):
        with pytest.raises(ExtractError) as err:
            extract([archive], work)
        assert not isinstance(err.value, UnsafeArchiveError)
        assert str(archive) in str(err.value)
        assert _untouched(work), archive


def test_missing_part_is_named(work, tmp_path):
    with pytest.raises(ExtractError, match="mp3.zip.002"):
        extract([tmp_path / "arch" / "mp3.zip.002"], work)
