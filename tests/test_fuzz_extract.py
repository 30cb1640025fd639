"""Property-based tests of soundbench.fetch.extract over hostile and corrupt archives (hypothesis; see fuzzing.py
for the bounded default and the long profile).

Invariants, for any set of 1-3 zip/tar/tar.gz archives extracted one after the other into one directory (as
sources.unpack does with a release's archives):
- nothing is ever written outside the output directory, and nothing in it resolves to a place outside it;
- a refused or failed extraction leaves the output directory exactly as it was (nothing half-written);
- every refusal is an ExtractError that names the archive;
- a corrupt archive (flipped byte, truncation, lying sizes) is refused, or extracts every file it declares with
  exactly its original bytes;
- the limits are enforced: declared contents above max_bytes/max_files/max_ratio are refused, below are not.
"""
from __future__ import annotations

import io
import os
import random
import stat
import struct
import sys
import tarfile
import tempfile
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

from fuzzing import fuzz_settings
from hypothesis import assume, given
from hypothesis import strategies as st

from soundbench.fetch.extract import ArchiveLimitError, Budget, ExtractError, Limits, extract

ex = sys.modules["soundbench.fetch.extract"]


@dataclass(frozen=True)
class M:
    """One archive member: kind file|dir|symlink|hardlink|fifo|chr; `@IN`/`@OUT` in name or target stand for the
    absolute paths of the output directory and of a directory beside it."""

    kind: str
    name: str
    data: bytes = b""
    target: str = ""


SAFE = st.lists(st.sampled_from(["a", "b", "c", "d e", "é"]), min_size=1, max_size=3).map("/".join)
COMPONENT = st.sampled_from(["a", "b", "c", "..", ".", "", "d e", "é", "x\\..", "..\\..", "C:"])
HOSTILE = st.tuples(st.sampled_from(["", "", "/", "@IN/", "@OUT/"]),
                    st.lists(COMPONENT, min_size=1, max_size=4)).map(lambda t: t[0] + "/".join(t[1]))
NAME = st.one_of(SAFE, SAFE, HOSTILE)
TARGET = st.one_of(SAFE, HOSTILE, st.sampled_from(["..", ".", "../..", "a/..", "b/c/..", "@IN", "@OUT"]))
MEMBER = st.one_of(
    st.builds(M, st.just("file"), NAME, st.binary(max_size=64)),
    st.builds(M, st.just("file"), SAFE, st.binary(max_size=64)),
    st.builds(M, st.just("dir"), NAME),
    st.builds(M, st.just("symlink"), NAME, target=TARGET),
    st.builds(M, st.just("hardlink"), NAME, target=st.one_of(SAFE, TARGET)),
    st.builds(M, st.sampled_from(["fifo", "chr"]), NAME),
)
FORMAT = st.sampled_from(["zip", "tar", "tar.gz"])
ARCHIVE = st.tuples(FORMAT, st.lists(MEMBER, min_size=1, max_size=6))


def _sub(text: str, out: Path, outside: Path) -> str:
    return text.replace("@IN", str(out)).replace("@OUT", str(outside))


def build(path: Path, fmt: str, members: list[M], out: Path, outside: Path) -> Path:
    """Write the archive byte for byte as described, hostile parts included (no tool would)."""
    if fmt == "zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf, warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # duplicate names are meant
            for m in members:
                name = _sub(m.name, out, outside)
                mode = {"file": stat.S_IFREG | 0o644, "hardlink": stat.S_IFREG | 0o644, "dir": stat.S_IFDIR | 0o755,
                        "symlink": stat.S_IFLNK | 0o777, "fifo": stat.S_IFIFO | 0o644,
                        "chr": stat.S_IFCHR | 0o644}[m.kind]
                info = zipfile.ZipInfo(name + "/" if m.kind == "dir" and not name.endswith("/") else name)
                info.create_system, info.external_attr = 3, mode << 16
                payload = _sub(m.target, out, outside).encode() if m.kind == "symlink" else m.data
                zf.writestr(info, payload, zipfile.ZIP_DEFLATED)
        return path
    with tarfile.open(path, "w:gz" if fmt == "tar.gz" else "w") as tar:
        for m in members:
            info = tarfile.TarInfo(_sub(m.name, out, outside))
            info.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
                         "hardlink": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE, "chr": tarfile.CHRTYPE}[m.kind]
            info.linkname = _sub(m.target, out, outside)
            if m.kind == "file":
                info.size = len(m.data)
            tar.addfile(info, io.BytesIO(m.data) if m.kind == "file" else None)
    return path


def snapshot(top: Path, skip: Path | None = None) -> dict[str, object]:
    """Every entry under top (links not followed) with its bytes, "dir" or link target; `skip` left out."""
    out: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        if skip is not None and Path(dirpath) == skip.parent:
            dirnames[:] = [d for d in dirnames if d != skip.name]
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(top))
            if skip is not None and p == skip:
                continue
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                out[rel] = "dir"
            elif p.is_file():
                out[rel] = p.read_bytes()
            else:
                out[rel] = ("special", stat.S_IFMT(p.lstat().st_mode))
    return out


def assert_contained(out: Path) -> None:
    """Nothing under out is anything but a file, folder or symlink, nor resolves to a place outside it."""
    real_out = os.path.realpath(out)
    for dirpath, dirnames, filenames in os.walk(out):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            mode = os.lstat(p).st_mode
            assert stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode), f"{p}: special file"
            real = os.path.realpath(p)
            assert real == real_out or real.startswith(real_out + os.sep), f"{p} resolves to {real}"


class Sandbox:
    """root/box/out is the output directory; root/box/outside and root/box/keep.txt must never change."""

    def __init__(self, root: Path):
        self.root = root
        self.box = root / "box"
        self.out = self.box / "out"
        self.outside = self.box / "outside"
        self.archives = root / "archives"
        for d in (self.out, self.outside, self.archives):
            d.mkdir(parents=True)
        (self.outside / "sentinel.txt").write_bytes(b"must stay")
        (self.box / "keep.txt").write_bytes(b"must stay too")
        (self.out / "previous.txt").write_bytes(b"extracted before")
        self.around = snapshot(self.box, skip=self.out)

    def check_around(self) -> None:
        assert snapshot(self.box, skip=self.out) == self.around, "something outside the output changed"


@fuzz_settings(120)
@given(st.lists(ARCHIVE, min_size=1, max_size=3))
def test_hostile_archive_sets_never_write_outside(archives):
    with tempfile.TemporaryDirectory() as tmp:
        sb = Sandbox(Path(tmp))
        budget = Budget()
        for i, (fmt, members) in enumerate(archives):
            path = build(sb.archives / f"{i}.{fmt}", fmt, members, sb.out, sb.outside)
            before = snapshot(sb.out)
            try:
                names = extract(path, sb.out, budget=budget)
            except ExtractError as e:
                assert str(path) in str(e), f"the refusal does not name the archive: {e}"
                assert snapshot(sb.out) == before, f"a refused archive changed the output: {e}"
            else:
                assert all(os.path.lexists(sb.out / n) for n in names)
            sb.check_around()
            assert_contained(sb.out)


# --------------------------------------------------------------------------------------- corruption

NOISE = random.Random(0).randbytes(2000)
BENIGN = st.dictionaries(SAFE.map(lambda n: n + ".wav"),
                         st.one_of(st.binary(max_size=3000), st.just(b"\x00" * 5000), st.just(NOISE)),
                         min_size=1, max_size=4)


def _benign(path: Path, fmt: str, files: dict[str, bytes], method: int) -> Path:
    if fmt == "zip":
        with zipfile.ZipFile(path, "w", method) as zf:
            for name, data in files.items():
                zf.writestr(name, data)
    else:
        with tarfile.open(path, "w:gz" if fmt == "tar.gz" else "w") as tar:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def _lie_about_size(raw: bytearray, which: int, delta: int, crc_of_prefix: bool, data: bytes) -> None:
    """Change member `which`'s declared size by delta in its local and central headers (the CRC optionally
    made to match what a reader trusting the declared size would get)."""
    central = [i for i in range(len(raw) - 3) if raw[i:i + 4] == b"PK\x01\x02"]
    if not central:
        return
    c = central[which % len(central)]
    offset = struct.unpack_from("<I", raw, c + 42)[0]
    declared = max(0, struct.unpack_from("<I", raw, c + 24)[0] + delta)
    for pos in (c + 24, offset + 22):
        struct.pack_into("<I", raw, pos, declared)
    if crc_of_prefix:
        crc = zlib.crc32(data[:declared])
        for pos in (c + 16, offset + 14):
            struct.pack_into("<I", raw, pos, crc)


CORRUPTION = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**9), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 10**9), st.just(0)),
    st.tuples(st.just("lie"), st.integers(0, 3), st.integers(-300, 300), st.booleans()),
)


@fuzz_settings(150)
@given(st.sampled_from(["zip", "tar", "tar.gz"]), BENIGN, st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]),
       CORRUPTION)
def test_corrupt_archives_are_refused_or_extract_the_exact_bytes(fmt, files, method, corruption):
    if fmt == "tar":  # plain tar has no check sum over member data: only truncation is detectable
        assume(corruption[0] == "truncate")
    if corruption[0] == "lie":
        assume(fmt == "zip")
    with tempfile.TemporaryDirectory() as tmp:
        sb = Sandbox(Path(tmp))
        path = _benign(sb.archives / f"a.{fmt}", fmt, files, method)
        raw = bytearray(path.read_bytes())
        kind = corruption[0]
        if kind == "flip":
            raw[corruption[1] % len(raw)] ^= corruption[2]
        elif kind == "truncate":
            del raw[corruption[1] % len(raw):]
        else:
            _, which, delta, crc_of_prefix = corruption
            names = list(files)
            _lie_about_size(raw, which, delta, crc_of_prefix, files[names[which % len(names)]])
        path.write_bytes(bytes(raw))
        before = snapshot(sb.out)
        try:
            extract(path, sb.out)
        except ExtractError as e:
            assert str(path) in str(e)
            assert snapshot(sb.out) == before
        else:
            for name, data in files.items():
                p = sb.out / name
                if p.is_file() and not p.is_symlink():
                    assert p.read_bytes() == data, f"{name}: extracted with other bytes than archived"
        sb.check_around()
        assert_contained(sb.out)


# --------------------------------------------------------------------------------------------- limits

@fuzz_settings(60)
@given(st.lists(BENIGN, min_size=1, max_size=3), st.integers(1, 12_000), st.integers(1, 10),
       st.floats(1.0, 40.0))
def test_limits_refuse_exactly_what_exceeds_them(sets, max_bytes, max_files, max_ratio):
    limits = Limits(max_bytes=max_bytes, max_files=max_files, max_ratio=max_ratio, key="datasets.x.extract")
    with tempfile.TemporaryDirectory() as tmp, mock.patch.object(ex, "RATIO_FLOOR", 512):
        sb = Sandbox(Path(tmp))
        budget = Budget(limits)
        used_bytes = used_files = 0
        for i, files in enumerate(sets):
            path = _benign(sb.archives / f"{i}.zip", "zip", files, zipfile.ZIP_DEFLATED)
            size = sum(len(d) for d in files.values())
            ratio_exceeded = size > 512 and size > max_ratio * path.stat().st_size
            over = used_bytes + size > max_bytes or used_files + len(files) > max_files or ratio_exceeded
            before = snapshot(sb.out)
            try:
                extract(path, sb.out, budget=budget)
            except ArchiveLimitError as e:
                assert over, f"refused within the limits: {e}"
                assert str(path) in str(e) and "datasets.x.extract." in str(e)
                assert snapshot(sb.out) == before
            else:
                assert not over, "extracted beyond the limits"
                used_bytes += size
                used_files += len(files)
        sb.check_around()
