"""Safe, all-or-nothing extraction of zip (split, ZipCrypto-encrypted) and tar archives.

Every member is validated before anything is written (no absolute paths, no `..`, no link leading outside,
no device files); the archive is extracted into a temporary sibling of the output directory and only moved
into place once complete, so a failure leaves the output directory as it was.
"""
from __future__ import annotations

import functools
import io
import os
import random
import re
import shutil
import stat
import struct
import subprocess
import tarfile
import zipfile
import zlib
from bisect import bisect_right
from pathlib import Path
from typing import BinaryIO, Iterable

COPY_BLOCK = 1 << 20
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz", ".tbz2", ".tar.xz", ".txz")
KINDS = ("auto", "zip", "tar", "file")
_DRIVE = re.compile(r"^[A-Za-z]:")
_MAX_LINK_DEPTH = 40  # like the kernel's ELOOP limit


class ExtractError(RuntimeError):
    """An archive could not be extracted (corrupt, wrong password...); the message names the archive."""


class UnsafeArchiveError(ExtractError):
    """A member would land outside the output directory, or is a device file; nothing was written."""


# ------------------------------------------------------------------------------------------ public API

def extract(archive_parts: Iterable[str | os.PathLike] | str | os.PathLike, out_dir: str | os.PathLike, *,
            kind: str = "auto", password: str | None = None, use_unzip: bool | None = None) -> list[str]:
    """Extract an archive into `out_dir`; returns the names (posix, relative) of the files and links written.

    archive_parts: one archive, or the byte-range parts of a split archive, concatenated in this order.
    kind: "zip", "tar" (any compression tarfile reads), "file" (copied as is) or "auto" (from the name).
    password: for ZipCrypto-encrypted zip members.
    use_unzip: for encrypted single-part zips, use the `unzip` binary when installed (None: auto), because
        Python's ZipCrypto decryption is slow on multi-GB archives; False forces the pure-Python path.
    """
    parts = [Path(archive_parts)] if isinstance(archive_parts, (str, os.PathLike)) else \
        [Path(p) for p in archive_parts]
    if not parts:
        raise ValueError("extract: no archive parts given")
    label = str(parts[0]) if len(parts) == 1 else f"{parts[0]} (+{len(parts) - 1} more parts)"
    for p in parts:
        if not p.is_file():
            raise ExtractError(f"{label}: archive part {p} does not exist")
    if kind not in KINDS:
        raise ValueError(f"extract: unknown kind {kind!r} (one of {', '.join(KINDS)})")
    if kind == "auto":
        kind = detect_kind(parts)

    out_dir = Path(os.path.abspath(out_dir))  # "." must get a real name and parent for the sibling temp dir
    tmp = out_dir.parent / f"{out_dir.name}.tmp-{os.getpid()}"
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove(tmp)  # left over by a killed run with the same pid
    tmp.mkdir()
    try:
        if kind == "zip":
            names = _extract_zip(parts, tmp, label, password, use_unzip)
        elif kind == "tar":
            names = _extract_tar(parts, tmp, label)
        else:
            names = _copy_file(parts, tmp, label)
        out_dir.mkdir(parents=True, exist_ok=True)
        _merge(tmp, out_dir)
    except ExtractError:
        raise
    except (OSError, EOFError, ValueError, RuntimeError, NotImplementedError, zlib.error, tarfile.TarError,
            zipfile.BadZipFile) as e:  # corrupt data surfaces as any of these, depending on the layer
        raise ExtractError(f"{label}: cannot extract ({type(e).__name__}: {e})") from e
    finally:
        _remove(tmp)
    return names


def detect_kind(parts: list[Path]) -> str:
    """"zip", "tar" or "file", from the first part's name (split suffixes like .001 ignored), else its bytes."""
    name = re.sub(r"\.\d{3}$", "", parts[0].name.lower())
    if name.endswith(".zip"):
        return "zip"
    if name.endswith(TAR_SUFFIXES):
        return "tar"
    with open(parts[0], "rb") as f:
        head = f.read(4)
    if head in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if len(parts) == 1 and tarfile.is_tarfile(parts[0]):
        return "tar"
    return "file"


# ------------------------------------------------------------------------------------ member validation

def _unsafe(label: str, member: str, why: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(f"{label}: refusing member {member!r}: {why}; nothing was extracted")


def _safe_name(label: str, name: str) -> str | None:
    """The member's normalized relative posix path (None for the archive root itself); raises if unsafe."""
    if "\x00" in name:
        raise _unsafe(label, name, "NUL byte in the name")
    unified = name.replace("\\", "/")  # Windows tools write backslashes; treat them as separators here
    if unified.startswith("/") or _DRIVE.match(unified):
        raise _unsafe(label, name, "absolute path")
    if ".." in unified.split("/"):
        raise _unsafe(label, name, "'..' path component")
    clean = [c for c in name.split("/") if c not in ("", ".")]
    return "/".join(clean) or None


def _resolve(components: list[str], links: dict[str, str], depth: int = 0) -> list[str] | None:
    """Follow a path through the archive's own symlinks like the kernel would; None if it leaves the root."""
    stack: list[str] = []
    for comp in components:
        if comp in ("", "."):
            continue
        if comp == "..":
            if not stack:
                return None
            stack.pop()
            continue
        stack.append(comp)
        target = links.get("/".join(stack))
        if target is not None:
            stack.pop()
            if depth >= _MAX_LINK_DEPTH or target.replace("\\", "/").startswith("/") or _DRIVE.match(target):
                return None
            resolved = _resolve(stack + target.replace("\\", "/").split("/"), links, depth + 1)
            if resolved is None:
                return None
            stack = resolved
    return stack


def _check_links(label: str, names: list[str], links: dict[str, str], hardlinks: dict[str, str]) -> None:
    """Refuse links leading outside, and members written through a symlink (whose target could change)."""
    for link, target in links.items():
        unified = target.replace("\\", "/")
        if not target or "\x00" in target or unified.startswith("/") or _DRIVE.match(unified) \
                or _resolve(link.split("/")[:-1] + unified.split("/"), links) is None:
            raise _unsafe(label, link, f"symlink to {target!r} leads outside the output directory")
    for name in names + list(hardlinks.values()):
        comps = name.split("/")
        for i in range(1, len(comps)):
            prefix = "/".join(comps[:i])
            if prefix in links:
                raise _unsafe(label, name, f"path goes through the symlink {prefix!r}")
    for link, target in hardlinks.items():
        if _resolve(target.split("/"), links) is None:
            raise _unsafe(label, link, f"hard link to {target!r} leads outside the output directory")


# ------------------------------------------------------------------------------------------------- tar

def _extract_tar(parts: list[Path], tmp: Path, label: str) -> list[str]:
    with _open_parts(parts) as fp, tarfile.open(fileobj=fp, mode="r:*") as tar:
        members = tar.getmembers()  # reads the whole (decompressed) stream: truncation shows up here
        plan = _plan_tar(label, members)
        kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # defence in depth
        tar.extractall(tmp, members=[m for m, _ in plan], **kwargs)
    return [name for m, name in plan if not m.isdir()]


def _plan_tar(label: str, members: list[tarfile.TarInfo]) -> list[tuple[tarfile.TarInfo, str]]:
    """Validate all tar members; (member, normalized name) for those to extract (the root entry dropped)."""
    plan, links, hardlinks = [], {}, {}
    for m in members:
        name = _safe_name(label, m.name)
        if m.ischr() or m.isblk() or m.isfifo() or not (m.isreg() or m.isdir() or m.issym() or m.islnk()):
            raise _unsafe(label, m.name, "device file, fifo or unknown member type")
        if name is None:
            if not m.isdir():
                raise _unsafe(label, m.name, "empty member name")
            continue
        if m.issym():
            links[name] = m.linkname
        elif m.islnk():
            try:
                target = _safe_name(label, m.linkname)
            except UnsafeArchiveError:
                target = None
            if target is None:
                raise _unsafe(label, m.name, f"hard link to {m.linkname!r} leads outside the output directory")
            hardlinks[name] = target
        plan.append((m, name))
    _check_links(label, [n for _, n in plan], links, hardlinks)
    return plan


# ------------------------------------------------------------------------------------------------- zip

def _zip_mode(info: zipfile.ZipInfo) -> int:
    """The unix mode stored by unix zip tools (0 when the archive carries none)."""
    return (info.external_attr >> 16) & 0xFFFF if info.create_system == 3 else 0


def _extract_zip(parts: list[Path], tmp: Path, label: str, password: str | None,
                 use_unzip: bool | None) -> list[str]:
    pwd = password.encode("utf-8") if password is not None else None
    with _open_parts(parts) as fp:
        try:
            zf = zipfile.ZipFile(fp)
        except zipfile.BadZipFile as e:
            raise ExtractError(f"{label}: not a valid zip archive ({e})") from e
        with zf:
            infos = zf.infolist()
            _check_passwords(label, zf, infos, pwd)
            plan = _plan_zip(label, zf, infos, pwd)
            encrypted = any(i.flag_bits & 0x1 for i in infos)
            if encrypted and _want_unzip(use_unzip, parts, infos):
                _run_unzip(label, parts[0], tmp, password)
            else:
                _write_zip_members(label, zf, plan, tmp, pwd)
    return [name for _, name, what, _ in plan if what != "dir"]


def _check_passwords(label: str, zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], pwd: bytes | None) -> None:
    """Fail before writing anything when an encrypted member has no or the wrong password."""
    for info in infos:
        if not info.flag_bits & 0x1:
            continue
        if pwd is None:
            raise ExtractError(f"{label}: member {info.filename!r} is encrypted and no password was given")
        try:
            with zf.open(info, pwd=pwd):  # opening checks the encryption header against the CRC
                pass
        except RuntimeError as e:
            raise ExtractError(f"{label}: wrong password for member {info.filename!r} ({e})") from e


def _plan_zip(label: str, zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo],
              pwd: bytes | None) -> list[tuple[zipfile.ZipInfo, str, str, str]]:
    """Validate all zip members; (info, normalized name, "dir"|"file"|"link", link target) for each."""
    plan, links = [], {}
    for info in infos:
        name = _safe_name(label, info.filename)
        mode = _zip_mode(info)
        kind, target = "file", ""
        if stat.S_ISLNK(mode):
            kind = "link"
            target = zf.read(info, pwd=pwd).decode("utf-8", "surrogateescape")
        elif info.is_dir() or stat.S_ISDIR(mode):
            kind = "dir"
        elif stat.S_IFMT(mode) not in (0, stat.S_IFREG):
            raise _unsafe(label, info.filename, "device file, fifo or socket")
        if name is None:
            if kind != "dir":
                raise _unsafe(label, info.filename, "empty member name")
            continue
        if kind == "link":
            links[name] = target
        plan.append((info, name, kind, target))
    _check_links(label, [n for _, n, _, _ in plan], links, {})
    return plan


def _write_zip_members(label: str, zf: zipfile.ZipFile, plan, tmp: Path, pwd: bytes | None) -> None:
    for info, name, kind, target in plan:
        path = tmp / name
        if kind == "dir":
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():  # a duplicate name: replace the link, never write through it
            path.unlink()
        if kind == "link":
            os.symlink(target, path)
            continue
        try:
            with zf.open(info, pwd=pwd) as src, open(path, "wb") as out:
                shutil.copyfileobj(src, out, COPY_BLOCK)
        except zipfile.BadZipFile as e:
            hint = " (wrong password?)" if info.flag_bits & 0x1 else ""
            raise ExtractError(f"{label}: member {info.filename!r} is corrupt{hint}: {e}") from e


def _want_unzip(use_unzip: bool | None, parts: list[Path], infos: list[zipfile.ZipInfo]) -> bool:
    """unzip is much faster at ZipCrypto; used for single-part, ASCII-named archives (no charset guessing)."""
    if use_unzip is False or len(parts) != 1 or not shutil.which("unzip"):
        return False
    return all(i.filename.isascii() for i in infos)


def _run_unzip(label: str, archive: Path, tmp: Path, password: str | None) -> None:
    cmd = ["unzip", "-q", "-o"] + (["-P", password] if password is not None else []) + [str(archive), "-d", str(tmp)]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace")
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()[-500:]
        raise ExtractError(f"{label}: unzip failed with exit code {proc.returncode}: {detail}")


# ------------------------------------------------------------------------------------------------ file

def _copy_file(parts: list[Path], tmp: Path, label: str) -> list[str]:
    if len(parts) != 1:
        raise ExtractError(f"{label}: kind 'file' copies a single file, got {len(parts)} parts")
    shutil.copyfile(parts[0], tmp / parts[0].name)
    return [parts[0].name]


# ------------------------------------------------------------------------------------------- plumbing

def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def _merge(src: Path, dst: Path) -> None:
    """Move the contents of `src` into `dst`, merging directories; archive entries replace existing ones."""
    for entry in sorted(os.scandir(src), key=lambda e: e.name):
        target = dst / entry.name
        if entry.is_dir(follow_symlinks=False) and target.is_dir():
            _merge(Path(entry.path), target)
            continue
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif entry.is_dir(follow_symlinks=False) and (target.exists() or target.is_symlink()):
            target.unlink()
        os.replace(entry.path, target)  # same filesystem (sibling directory): a rename, no copy


class _ConcatReader(io.RawIOBase):
    """Read-only, seekable view of several files as one (a split archive without writing its concatenation)."""

    def __init__(self, paths: list[Path]):
        super().__init__()
        self._paths = paths
        sizes = [p.stat().st_size for p in paths]
        self._starts = [sum(sizes[:i]) for i in range(len(sizes))]
        self._ends = [s + n for s, n in zip(self._starts, sizes)]
        self._size = sum(sizes)
        self._pos = 0
        self._files: dict[int, BinaryIO] = {}

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer) -> int:
        if self._pos >= self._size:
            return 0
        i = bisect_right(self._starts, self._pos) - 1
        while self._ends[i] <= self._pos:  # skip empty parts
            i += 1
        f = self._files.get(i)
        if f is None:
            f = self._files[i] = open(self._paths[i], "rb")
        f.seek(self._pos - self._starts[i])
        view = memoryview(buffer)[: min(len(buffer), self._ends[i] - self._pos)]
        n = f.readinto(view)
        self._pos += n
        return n

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()
        super().close()


def _open_parts(parts: list[Path]) -> BinaryIO:
    """One part: the file itself; several: a buffered concatenation."""
    if len(parts) == 1:
        return open(parts[0], "rb")
    return io.BufferedReader(_ConcatReader(parts), buffer_size=COPY_BLOCK)


# ------------------------------------------------------------------------------- ZipCrypto zip writer

def _crc_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC = _crc_table()


def _zipcrypto(plain: bytes, password: bytes) -> bytes:
    """Traditional PKWARE encryption: a keystream driven by three CRC/LCG-updated keys and the plaintext.

    The keystream depends on every previous plaintext byte, so it cannot be vectorised: numba compiles the
    loop (~100x the pure-Python speed, which made the demo's encrypted zips take minutes); pure Python remains
    the fallback."""
    try:
        import numpy as np

        kernel = _zipcrypto_kernel()
    except ImportError:
        return _zipcrypto_python(plain, password)
    out = kernel(np.frombuffer(plain, dtype=np.uint8), np.frombuffer(password, dtype=np.uint8),
                 np.array(_CRC, dtype=np.uint32))
    return out.tobytes()


@functools.cache
def _zipcrypto_kernel():
    import numba

    @numba.njit(cache=False, nogil=True)
    def kernel(plain, password, table):
        k0, k1, k2 = numba.uint32(0x12345678), numba.uint32(0x23456789), numba.uint32(0x34567890)
        for c in password:
            k0 = (k0 >> 8) ^ table[(k0 ^ c) & 0xFF]
            k1 = numba.uint32((numba.uint64(k1) + (k0 & 0xFF)) * 134775813 + 1)
            k2 = (k2 >> 8) ^ table[(k2 ^ (k1 >> 24)) & 0xFF]
        out = plain.copy()
        for i in range(plain.shape[0]):
            p = plain[i]
            t = numba.uint32((k2 | 2) & 0xFFFF)
            out[i] = p ^ numba.uint8(((t * (t ^ 1)) >> 8) & 0xFF)
            k0 = (k0 >> 8) ^ table[(k0 ^ p) & 0xFF]
            k1 = numba.uint32((numba.uint64(k1) + (k0 & 0xFF)) * 134775813 + 1)
            k2 = (k2 >> 8) ^ table[(k2 ^ (k1 >> 24)) & 0xFF]
        return out

    return kernel


def _zipcrypto_python(plain: bytes, password: bytes) -> bytes:
    table = _CRC
    k0, k1, k2 = 0x12345678, 0x23456789, 0x34567890
    for c in password:
        k0 = (k0 >> 8) ^ table[(k0 ^ c) & 0xFF]
        k1 = ((k1 + (k0 & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        k2 = (k2 >> 8) ^ table[(k2 ^ (k1 >> 24)) & 0xFF]
    out = bytearray(len(plain))
    for i, p in enumerate(plain):  # hot loop: locals only
        t = (k2 | 2) & 0xFFFF
        out[i] = p ^ (((t * (t ^ 1)) >> 8) & 0xFF)
        k0 = (k0 >> 8) ^ table[(k0 ^ p) & 0xFF]
        k1 = ((k1 + (k0 & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        k2 = (k2 >> 8) ^ table[(k2 ^ (k1 >> 24)) & 0xFF]
    return bytes(out)


def _dos_time(date_time: tuple[int, int, int, int, int, int]) -> tuple[int, int]:
    y, mo, d, h, mi, s = date_time
    return (h << 11) | (mi << 5) | (s // 2), ((y - 1980) << 9) | (mo << 5) | d


def write_encrypted_zip(path: str | os.PathLike, files: dict[str, bytes], password: str, *,
                        compress: bool = True, date_time: tuple[int, int, int, int, int, int] = (1980, 1, 1, 0, 0, 0),
                        seed: int | None = 0) -> Path:
    """Write a zip whose members are ZipCrypto-encrypted with `password` (zipfile can only read those).

    Names ending in "/" become (unencrypted) directory entries. compress: deflate members when it helps.
    seed: the random bytes of each 12-byte encryption header come from it, so the archive is byte-for-byte
    reproducible (demo releases carry checksums); None draws them from os.urandom. Pure Python: about a
    MB per second, fine for demo data. No zip64 (members and archive below 4 GiB).
    """
    path = Path(path)
    pw = password.encode("utf-8")
    rng = random.Random(seed) if seed is not None else None
    dos_time, dos_date = _dos_time(date_time)
    body, central = bytearray(), bytearray()
    for name, data in files.items():
        raw_name = name.encode("utf-8")
        flags = 0 if name.isascii() else 0x800  # bit 11: the name is UTF-8
        crc = zlib.crc32(data) & 0xFFFFFFFF
        if name.endswith("/"):
            method, payload, attr = zipfile.ZIP_STORED, b"", (0o40755 << 16) | 0x10
        else:
            method, payload = zipfile.ZIP_STORED, bytes(data)
            if compress:
                co = zlib.compressobj(6, zlib.DEFLATED, -15)  # raw deflate stream, as zip stores it
                packed = co.compress(data) + co.flush()
                if len(packed) < len(data):
                    method, payload = zipfile.ZIP_DEFLATED, packed
            # header: 11 random bytes + the CRC's high byte, which readers use to check the password
            salt = rng.randbytes(11) if rng is not None else os.urandom(11)
            payload = _zipcrypto(salt + bytes([crc >> 24]) + payload, pw)
            flags |= 0x1
            attr = 0o100644 << 16
        if len(payload) >= 0xFFFFFFFF or len(data) >= 0xFFFFFFFF or len(body) >= 0xFFFFFFFF:
            raise ValueError(f"{path}: member {name!r} needs zip64, which write_encrypted_zip does not write")
        offset = len(body)
        body += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, method, dos_time, dos_date, crc,
                            len(payload), len(data), len(raw_name), 0) + raw_name + payload
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, (3 << 8) | 20, 20, flags, method, dos_time,
                               dos_date, crc, len(payload), len(data), len(raw_name), 0, 0, 0, 0, attr,
                               offset) + raw_name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(files), len(files), len(central), len(body), 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(body + central + end))
    return path
