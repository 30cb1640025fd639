"""Safe, all-or-nothing extraction of zip (split, ZipCrypto-encrypted) and tar archives.

Before anything is written:
- every member is validated against the tree it will land in, i.e. the archive's own members over what the
  output directory already holds (symbolic links left there by an earlier archive of the same set included):
  no absolute paths, no `..`, no link leading outside, no member written through a link, no hard link to
  anything but a regular file earlier in the archive, no device files, no name both a link and something else;
- the declared sizes are checked against the limits (`Limits`: total bytes and members of a set of archives,
  expansion ratio of one archive) and against the free disk space.
The members are then written into a temporary sibling of the output directory and verified as they are read:
zip members by their declared size (a member that expands past it, or ends short of it, is refused) and their
CRC-32; a tar's compressed stream is read to its very end before anything is written, so the gzip/bz2/xz check
sums are verified even though tar itself stops at its end-of-archive blocks. Only a complete, verified
extraction is moved into the output directory, so a failure leaves it as it was. One extraction into a
directory at a time (a lock beside it); temporary directories of killed runs are removed by the next one.
"""
from __future__ import annotations

import functools
import io
import logging
import os
import random
import re
import shutil
import stat
import struct
import tarfile
import zipfile
import zlib
from bisect import bisect_right
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable

from soundbench.fetch.download import human_size
from soundbench.fetch.lock import exclusive

log = logging.getLogger(__name__)

COPY_BLOCK = 1 << 20
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz", ".tbz2", ".tar.xz", ".txz")
KINDS = ("auto", "zip", "tar", "file")
_DRIVE = re.compile(r"^[A-Za-z]:")
_MAX_LINK_DEPTH = 40  # like the kernel's ELOOP limit
MAX_LINK_TARGET = 4096  # bytes of a zip symlink member's target (PATH_MAX); a longer one is refused unread
GIB = 1 << 30
RATIO_FLOOR = 64 << 20  # the expansion ratio is only checked above this many bytes (small text archives pass)
BLOCK_OVERHEAD = 4096  # disk space counted per member on top of its size (blocks, inodes)
FREE_SLACK = 64 << 20  # free space that must remain after an extraction


class ExtractError(RuntimeError):
    """An archive could not be extracted (corrupt, wrong password...); the message names the archive."""


class UnsafeArchiveError(ExtractError):
    """A member would land outside the output directory, or is a device file; nothing was written."""


class ArchiveLimitError(ExtractError):
    """An archive (or a set of them) declares more than the limits allow; nothing was written."""


# ----------------------------------------------------------------------------------------------- limits

@dataclass(frozen=True)
class Limits:
    """Caps on what extraction may write. The defaults pass every real dataset with room to spare: the largest,
    DCASE 2017 Task 4 (52,763 clips of at most 10 s, 44.1 kHz 16-bit: <= 47 GB = 43 GiB of WAV from ~41 GB of
    zips) and TAU 2019 (14,400 clips of 10 s, 48 kHz 24-bit stereo: 41.5 GB = 38.6 GiB from its 21 audio zips
    of 35.6 GB, 1.16x), stay below a third of max_bytes; Speech Commands' ~106k members are a tenth of
    max_files; audio zips and tar.gz expand 1.0-1.6x, their small metadata zips up to ~10x (those stay below
    RATIO_FLOOR).

    max_bytes, max_files: for a whole set of archives extracted into one tree (one dataset).
    max_ratio: declared contents / archive bytes of one archive (deflate reaches ~1000x on a bomb).
    key: the config key named in a refusal (e.g. "datasets.mtt.extract").
    """

    max_bytes: int = 128 * GIB
    max_files: int = 1_000_000
    max_ratio: float = 50.0
    key: str = ""

    @classmethod
    def from_config(cls, cfg: dict | None, key: str) -> Limits:
        """From a config block {max_gib, max_files, max_ratio} (each optional); errors name `key`."""
        cfg = dict(cfg or {})
        unknown = sorted(set(cfg) - {"max_gib", "max_files", "max_ratio"})
        if unknown:
            raise ValueError(f"{key}: unknown key(s) {unknown}; known: max_gib, max_files, max_ratio")
        out = {}
        for k, name, typ in (("max_gib", "max_bytes", (int, float)), ("max_files", "max_files", int),
                             ("max_ratio", "max_ratio", (int, float))):
            if k not in cfg:
                continue
            v = cfg[k]
            if isinstance(v, bool) or not isinstance(v, typ) or v <= 0 or (k == "max_ratio" and v < 1):
                raise ValueError(f"{key}.{k}: expected a positive number{' >= 1' if k == 'max_ratio' else ''}, "
                                 f"got {v!r}")
            out[name] = int(v * GIB) if k == "max_gib" else v
        return cls(**out, key=key)

    def hint(self, what: str) -> str:
        where = f"{self.key}.{what}" if self.key else f"the `{what}` extraction limit"
        return f"if the archive is genuine, raise {where}"


class Budget:
    """What a set of archives extracted into one tree has used of its Limits (sources.unpack shares one)."""

    def __init__(self, limits: Limits | None = None):
        self.limits = limits or Limits()
        self.bytes = 0
        self.files = 0

    def check(self, label: str, expanded: int, members: int, compressed: int) -> None:
        """Raise ArchiveLimitError when an archive declaring this much would exceed a limit."""
        lim = self.limits
        if self.files + members > lim.max_files:
            raise ArchiveLimitError(
                f"{label}: refusing to extract: {members} members bring this set of archives to "
                f"{self.files + members}, above the limit of {lim.max_files}; nothing was extracted "
                f"({lim.hint('max_files')})")
        if self.bytes + expanded > lim.max_bytes:
            raise ArchiveLimitError(
                f"{label}: refusing to extract: it declares {human_size(expanded)} of contents, which brings this set "
                f"of archives to {human_size(self.bytes + expanded)}, above the limit of {human_size(lim.max_bytes)}; "
                f"nothing was extracted ({lim.hint('max_gib')})")
        if expanded > RATIO_FLOOR and expanded > lim.max_ratio * max(compressed, 1):
            raise ArchiveLimitError(
                f"{label}: refusing to extract: it declares {human_size(expanded)} of contents from "
                f"{human_size(compressed)} of archive, an expansion of {expanded / max(compressed, 1):.0f}x above "
                f"the limit of {lim.max_ratio:g}x (a zip bomb?); nothing was extracted ({lim.hint('max_ratio')})")

    def charge(self, label: str, expanded: int, members: int, compressed: int) -> None:
        self.check(label, expanded, members, compressed)
        self.bytes += expanded
        self.files += members


def _free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


def _require_space(label: str, where: Path, expanded: int, members: int) -> None:
    need = expanded + members * BLOCK_OVERHEAD + FREE_SLACK
    free = _free_bytes(where)
    if free < need:
        raise ExtractError(f"{label}: extracting needs about {human_size(need)} free in {where.parent} but "
                           f"{human_size(free)} is free; nothing was extracted. Free some space, then run again.")


# ------------------------------------------------------------------------------------------ public API

def extract(archive_parts: Iterable[str | os.PathLike] | str | os.PathLike, out_dir: str | os.PathLike, *,
            kind: str = "auto", password: str | None = None, limits: Limits | None = None,
            budget: Budget | None = None) -> list[str]:
    """Extract an archive into `out_dir`; returns the names (posix, relative) of the files and links written.

    archive_parts: one archive, or the byte-range parts of a split archive, concatenated in this order.
    kind: "zip", "tar" (any compression tarfile reads), "file" (copied as is) or "auto" (from the name).
    password: for ZipCrypto-encrypted zip members.
    limits: caps for this archive alone (default Limits()); budget: a Budget shared by a set of archives
        extracted into one tree (then `limits` is ignored).
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
    budget = budget if budget is not None else Budget(limits)

    # the real path: the temporary directory is a sibling of the real directory (same filesystem), and
    # "." gets a name and a parent
    out_dir = Path(os.path.realpath(out_dir))
    if not out_dir.name:
        raise ExtractError(f"{label}: refusing to extract into the filesystem root {out_dir}")
    tmp = out_dir.parent / f"{out_dir.name}.tmp-{os.getpid()}"
    with ExitStack() as stack:
        try:
            out_dir.parent.mkdir(parents=True, exist_ok=True)
            stack.enter_context(exclusive(out_dir.parent / f"{out_dir.name}.lock", f"extracting into {out_dir}"))
        except OSError as e:
            raise ExtractError(f"{label}: cannot write next to {out_dir} ({e.strerror or e})") from e
        _remove_stale_temps(out_dir)
        _remove(tmp)
        tmp.mkdir()
        try:
            if kind == "zip":
                names = _extract_zip(parts, tmp, out_dir, label, password, budget)
            elif kind == "tar":
                names = _extract_tar(parts, tmp, out_dir, label, budget)
            else:
                names = _copy_file(parts, tmp, label, budget)
            out_dir.mkdir(parents=True, exist_ok=True)
            _merge(tmp, out_dir, out_dir, label)
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


def _note_kind(label: str, kinds: dict[str, str], name: str, kind: str, raw: str) -> None:
    """Refuse a name that is a (hard) link and also something else: which one a tool keeps depends on order,
    and a file written over an earlier symlink of its name is written through it."""
    prev = kinds.get(name)
    if prev is not None and ({prev, kind} & {"symlink", "hard link"}):
        raise _unsafe(label, raw, f"the name appears twice in the archive, as a {prev} and as a {kind}")
    kinds[name] = kind


_UNSEEN = object()


class _Tree:
    """The tree an archive's members land in: its own symlinks over what `root` already holds on disk.

    A member that is a file or link replaces the entry of its name on disk (no lookup there); a directory
    member is merged into what is there, following a symlink already at its place, as the merge does.
    """

    def __init__(self, root: Path | None, links: dict[str, str], replaced: set[str]):
        self.root = str(root) if root is not None else None
        self.links = links
        self.replaced = replaced
        self._disk: dict[str, str | None] = {}

    def link(self, rel: str) -> str | None:
        """The target of the symlink at `rel` (a path without links in it), or None."""
        if rel in self.links:
            return self.links[rel]
        if rel in self.replaced or self.root is None:
            return None
        hit = self._disk.get(rel, _UNSEEN)
        if hit is _UNSEEN:
            path = os.path.join(self.root, rel)
            hit = self._disk[rel] = os.readlink(path) if os.path.islink(path) else None
        return hit

    def resolve(self, components: list[str], depth: int = 0) -> list[str] | None:
        """Follow a path through the links like the kernel would; None if it leaves the root."""
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
            target = self.link("/".join(stack))
            if target is None:
                continue
            stack.pop()
            unified = target.replace("\\", "/")
            if depth >= _MAX_LINK_DEPTH or not target or "\x00" in target or _DRIVE.match(unified):
                return None
            if unified.startswith("/"):  # only a link already on disk can get here (the archive's are refused)
                if self.root is None or not (unified == self.root or unified.startswith(self.root + "/")):
                    return None
                base, rest = [], unified[len(self.root):].split("/")
            else:
                base, rest = stack, unified.split("/")
            resolved = self.resolve(base + rest, depth + 1)
            if resolved is None:
                return None
            stack = resolved
        return stack


def _check_tree(label: str, root: Path | None, names: list[str], dirs: set[str], links: dict[str, str],
                hardlinks: dict[str, str], replaced: set[str]) -> None:
    """Refuse links leading outside, members written through a link, members whose folder leads outside
    through a link already on disk; `root` None checks the archive alone."""
    tree = _Tree(root, links, replaced)
    for link, target in links.items():
        unified = target.replace("\\", "/")
        if not target or "\x00" in target or unified.startswith("/") or _DRIVE.match(unified) \
                or tree.resolve(link.split("/")[:-1] + unified.split("/")) is None:
            raise _unsafe(label, link, f"symlink to {target!r} leads outside the output directory")
    for name in names + list(hardlinks.values()):
        comps = name.split("/")
        for i in range(1, len(comps)):
            prefix = "/".join(comps[:i])
            if prefix in links:
                raise _unsafe(label, name, f"path goes through the symlink {prefix!r}")
        folder = comps if name in dirs else comps[:-1]
        if folder and tree.resolve(folder) is None:
            raise _unsafe(label, name, "its folder leads outside the output directory through a symlink already "
                                       "there (left by an earlier archive?)")
    for link, target in hardlinks.items():
        if tree.resolve(target.split("/")) is None:
            raise _unsafe(label, link, f"hard link to {target!r} leads outside the output directory")


# ------------------------------------------------------------------------------------------------- tar

def _extract_tar(parts: list[Path], tmp: Path, root: Path, label: str, budget: Budget) -> list[str]:
    compressed = sum(p.stat().st_size for p in parts)
    with _open_parts(parts) as fp, tarfile.open(fileobj=fp, mode="r:*") as tar:
        members: list[tarfile.TarInfo] = []
        expanded = 0
        for m in tar:  # reads the (decompressed) stream header by header: a bomb is stopped as it grows
            members.append(m)
            if m.isreg():
                expanded += m.size
            budget.check(label, expanded, len(members), compressed)
        _verify_stream_end(label, tar)
        plan = _plan_tar(label, members, root)
        budget.charge(label, expanded, len(members), compressed)
        _require_space(label, tmp, expanded, len(members))
        kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # defence in depth
        tar.extractall(tmp, members=[m for m, _ in plan], **kwargs)
    return [name for m, name in plan if not m.isdir()]


def _verify_stream_end(label: str, tar: tarfile.TarFile) -> None:
    """Read the compressed stream past tar's end-of-archive blocks to its very end, so that gzip/bz2/xz verify
    their check sums (CRC-32 and length) over all of it; tarfile alone never gets there."""
    try:
        while tar.fileobj.read(COPY_BLOCK):
            pass
    except (OSError, EOFError, zlib.error) as e:
        raise ExtractError(f"{label}: the compressed stream is damaged ({type(e).__name__}: {e}); nothing was "
                           f"extracted. Delete the archive and download it again.") from e
    except Exception as e:  # lzma.LZMAError and other codec errors
        raise ExtractError(f"{label}: the compressed stream is damaged ({type(e).__name__}: {e}); nothing was "
                           f"extracted. Delete the archive and download it again.") from e


def _plan_tar(label: str, members: list[tarfile.TarInfo], root: Path | None) -> list[tuple[tarfile.TarInfo, str]]:
    """Validate all tar members; (member, normalized name) for those to extract (the root entry dropped)."""
    plan, links, hardlinks, kinds, regular = [], {}, {}, {}, set()
    for m in members:
        name = _safe_name(label, m.name)
        if m.ischr() or m.isblk() or m.isfifo() or not (m.isreg() or m.isdir() or m.issym() or m.islnk()):
            raise _unsafe(label, m.name, "device file, fifo or unknown member type")
        if name is None:
            if not m.isdir():
                raise _unsafe(label, m.name, "empty member name")
            continue
        kind = "symlink" if m.issym() else "hard link" if m.islnk() else "directory" if m.isdir() else "file"
        _note_kind(label, kinds, name, kind, m.name)
        if m.issym():
            links[name] = m.linkname
        elif m.islnk():
            try:
                target = _safe_name(label, m.linkname)
            except UnsafeArchiveError:
                target = None
            if target is None:
                raise _unsafe(label, m.name, f"hard link to {m.linkname!r} leads outside the output directory")
            if target not in regular:
                # tarfile recreates a link to a symlink as a symlink *here*, where its relative target means
                # something else; a link to a later or missing member is extracted from elsewhere
                raise _unsafe(label, m.name, f"hard link to {m.linkname!r}, which is not a regular file earlier "
                                             f"in the archive")
            hardlinks[name] = target
        if m.isreg() or m.islnk():
            regular.add(name)
        else:
            regular.discard(name)
        plan.append((m, name))
    _check_tree(label, root, [n for _, n in plan], {n for m, n in plan if m.isdir()}, links, hardlinks,
                {n for m, n in plan if not m.isdir()})
    return plan


# ------------------------------------------------------------------------------------------------- zip

def _zip_mode(info: zipfile.ZipInfo) -> int:
    """The unix mode stored by unix zip tools (0 when the archive carries none)."""
    return (info.external_attr >> 16) & 0xFFFF if info.create_system == 3 else 0


def _extract_zip(parts: list[Path], tmp: Path, root: Path, label: str, password: str | None,
                 budget: Budget) -> list[str]:
    pwd = password.encode("utf-8") if password is not None else None
    compressed = sum(p.stat().st_size for p in parts)
    with _open_parts(parts) as fp:
        try:
            zf = zipfile.ZipFile(fp)
        except zipfile.BadZipFile as e:
            raise ExtractError(f"{label}: not a valid zip archive ({e})") from e
        with zf:
            infos = zf.infolist()
            expanded = sum(i.file_size for i in infos)
            budget.check(label, expanded, len(infos), compressed)  # before reading any member
            _check_passwords(label, zf, infos, pwd)
            plan = _plan_zip(label, zf, infos, pwd, root)
            budget.charge(label, expanded, len(infos), compressed)
            _require_space(label, tmp, expanded, len(infos))
            _write_zip_members(label, zf, plan, tmp, pwd)
    return [name for _, name, what, _ in plan if what != "directory"]


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


def _plan_zip(label: str, zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], pwd: bytes | None,
              root: Path | None) -> list[tuple[zipfile.ZipInfo, str, str, str]]:
    """Validate all zip members; (info, normalized name, "directory"|"file"|"symlink", link target) for each."""
    plan, links, kinds = [], {}, {}
    for info in infos:
        name = _safe_name(label, info.filename)
        mode = _zip_mode(info)
        kind, target = "file", ""
        if stat.S_ISLNK(mode):
            kind = "symlink"
            if info.file_size > MAX_LINK_TARGET:
                raise _unsafe(label, info.filename, f"symlink whose target is {info.file_size} bytes long")
            buf = io.BytesIO()
            _copy_member(label, zf, info, pwd, buf)
            target = buf.getvalue().decode("utf-8", "surrogateescape")
        elif info.filename.endswith("/") or stat.S_ISDIR(mode):  # (ZipInfo.is_dir() fails on an empty name)
            kind = "directory"
        elif stat.S_IFMT(mode) not in (0, stat.S_IFREG):
            raise _unsafe(label, info.filename, "device file, fifo or socket")
        if name is None:
            if kind != "directory":
                raise _unsafe(label, info.filename, "empty member name")
            continue
        _note_kind(label, kinds, name, kind, info.filename)
        if kind == "symlink":
            links[name] = target
        plan.append((info, name, kind, target))
    _check_tree(label, root, [n for _, n, _, _ in plan], {n for _, n, k, _ in plan if k == "directory"}, links, {},
                {n for _, n, k, _ in plan if k != "directory"})
    return plan


def _write_zip_members(label: str, zf: zipfile.ZipFile, plan, tmp: Path, pwd: bytes | None) -> None:
    for info, name, kind, target in plan:
        path = tmp / name
        if kind == "directory":
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():  # never write through a link
            path.unlink()
        if kind == "symlink":
            os.symlink(target, path)
            continue
        with open(path, "wb") as out:
            _copy_member(label, zf, info, pwd, out)


def _corrupt(label: str, info: zipfile.ZipInfo, why: str) -> ExtractError:
    hint = " (wrong password?)" if info.flag_bits & 0x1 else ""
    return ExtractError(f"{label}: member {info.filename!r} is corrupt{hint}: {why}; nothing was extracted")


def _copy_member(label: str, zf: zipfile.ZipFile, info: zipfile.ZipInfo, pwd: bytes | None, out) -> None:
    """Write one member's contents to `out`, refusing it unless it decompresses to exactly its declared size
    with its declared CRC-32 (a lying size cannot make it write more than declared)."""
    encrypted = bool(info.flag_bits & 0x1)
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or (encrypted and pwd is None):
        _copy_member_zipfile(label, zf, info, pwd, out)
        return
    fp = zf.fp
    fp.seek(info.header_offset)
    header = fp.read(zipfile.sizeFileHeader)
    if len(header) != zipfile.sizeFileHeader or header[:4] != zipfile.stringFileHeader:
        raise _corrupt(label, info, "bad local header")
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    raw_name = fp.read(name_len)
    local_name = raw_name.decode("utf-8" if info.flag_bits & 0x800 else "cp437", "replace")
    if local_name != info.orig_filename:
        raise _corrupt(label, info, f"its local header names {local_name!r}")
    fp.seek(extra_len, io.SEEK_CUR)
    remaining, declared = info.compress_size, info.file_size
    decrypt = None
    if encrypted:
        decrypt = _ZipDecrypter(pwd)
        head = fp.read(12)
        if len(head) != 12:
            raise _corrupt(label, info, "the archive ends inside it")
        decrypt(head)
        remaining -= 12
    if info.compress_type == zipfile.ZIP_STORED and remaining != declared:
        raise _corrupt(label, info, f"stored with {remaining} bytes but declares {declared}")
    inflate = zlib.decompressobj(-15) if info.compress_type == zipfile.ZIP_DEFLATED else None
    written, crc = 0, 0

    def emit(data: bytes) -> None:
        nonlocal written, crc
        written += len(data)
        if written > declared:
            raise _corrupt(label, info, f"expands past its declared size of {declared} bytes (a zip bomb?)")
        crc = zlib.crc32(data, crc)
        out.write(data)

    try:
        while remaining > 0:
            chunk = fp.read(min(COPY_BLOCK, remaining))
            if not chunk:
                raise _corrupt(label, info, "the archive ends inside it")
            remaining -= len(chunk)
            if decrypt is not None:
                chunk = decrypt(chunk)
            if inflate is None:
                emit(chunk)
                continue
            emit(inflate.decompress(chunk, declared - written + 1))  # +1: one byte too many is noticed
            while inflate.unconsumed_tail and not inflate.eof:
                tail = len(inflate.unconsumed_tail)
                emit(inflate.decompress(inflate.unconsumed_tail, declared - written + 1))
                if len(inflate.unconsumed_tail) == tail:
                    break
            if inflate.eof:
                break  # bytes after the end of the deflate stream are never decompressed
        if inflate is not None:
            if not inflate.eof:
                raise _corrupt(label, info, "its compressed data ends early (truncated, or a wrong compressed "
                                            "size)")
    except zlib.error as e:
        raise _corrupt(label, info, f"invalid compressed data ({e})") from e
    if written != declared:
        raise _corrupt(label, info, f"holds {written} bytes but declares {declared}")
    if crc != info.CRC:
        raise _corrupt(label, info, f"CRC-32 {crc:08x} differs from the declared {info.CRC:08x}")


def _copy_member_zipfile(label: str, zf: zipfile.ZipFile, info: zipfile.ZipInfo, pwd: bytes | None, out) -> None:
    """Other compression methods, through zipfile (which stops at the declared size and checks the CRC)."""
    written = 0
    with ExitStack() as stack:
        try:
            src = stack.enter_context(zf.open(info, pwd=pwd))
        except Exception as e:  # BadZipFile, NotImplementedError (method), RuntimeError (password)...
            raise _corrupt(label, info, f"{type(e).__name__}: {e}") from e
        while True:
            try:
                block = src.read(COPY_BLOCK)
            except Exception as e:  # BadZipFile (CRC), EOFError, zlib/bz2/lzma errors
                raise _corrupt(label, info, f"{type(e).__name__}: {e}") from e
            if not block:
                break
            written += len(block)
            out.write(block)
    if written != info.file_size:
        raise _corrupt(label, info, f"holds {written} bytes but declares {info.file_size}")


# ------------------------------------------------------------------------------------------------ file

def _copy_file(parts: list[Path], tmp: Path, label: str, budget: Budget) -> list[str]:
    if len(parts) != 1:
        raise ExtractError(f"{label}: kind 'file' copies a single file, got {len(parts)} parts")
    size = parts[0].stat().st_size
    budget.charge(label, size, 1, size)
    _require_space(label, tmp, size, 1)
    shutil.copyfile(parts[0], tmp / parts[0].name)
    return [parts[0].name]


# ------------------------------------------------------------------------------------------- plumbing

def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_temps(out_dir: Path) -> None:
    """Remove `<out>.tmp-<pid>` directories of extractions that died (SIGKILL, power loss)."""
    prefix = out_dir.name + ".tmp-"
    for entry in os.scandir(out_dir.parent):
        pid = entry.name[len(prefix):]
        if entry.name.startswith(prefix) and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            log.info("removing %s, left by the killed extraction %s", entry.path, pid)
            _remove(Path(entry.path))


def _merge(src: Path, dst: Path, root: Path, label: str) -> None:
    """Move the contents of `src` into `dst`, merging directories; archive entries replace existing ones."""
    for entry in sorted(os.scandir(src), key=lambda e: e.name):
        target = dst / entry.name
        if entry.is_dir(follow_symlinks=False) and target.is_dir():
            if target.is_symlink():  # checked before extracting; unless it changed meanwhile, this holds
                real = os.path.realpath(target)
                if real != str(root) and not real.startswith(str(root) + os.sep):
                    raise UnsafeArchiveError(f"{label}: {target} became a symlink leading outside {root} during "
                                             f"the extraction")
            _merge(Path(entry.path), target, root, label)
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


def _zipcrypto_keys(password: bytes) -> list[int]:
    k0, k1, k2 = 0x12345678, 0x23456789, 0x34567890
    for c in password:
        k0 = (k0 >> 8) ^ _CRC[(k0 ^ c) & 0xFF]
        k1 = ((k1 + (k0 & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        k2 = (k2 >> 8) ^ _CRC[(k2 ^ (k1 >> 24)) & 0xFF]
    return [k0, k1, k2]


class _ZipDecrypter:
    """ZipCrypto decryption of one member's data, chunk by chunk (the key state carries over): numba-compiled
    like the writer's kernel (tens of MB/s, about what the unzip binary does), pure Python without numba."""

    def __init__(self, password: bytes):
        import numpy as np

        self._np = np
        self.keys = np.array(_zipcrypto_keys(password), dtype=np.int64)
        try:
            self._kernel = _zipcrypto_decrypt_kernel()
            self._table = np.array(_CRC, dtype=np.int64)
        except ImportError:
            self._kernel = None

    def __call__(self, data: bytes) -> bytes:
        if self._kernel is None:
            return _zipcrypto_decrypt_python(data, self.keys)
        return self._kernel(self._np.frombuffer(data, dtype=self._np.uint8), self.keys, self._table).tobytes()


@functools.cache
def _zipcrypto_decrypt_kernel():
    import numba
    import numpy as np

    @numba.njit(cache=False, nogil=True)
    def kernel(cipher, keys, table):
        k0, k1, k2 = keys[0], keys[1], keys[2]
        out = np.empty_like(cipher)
        for i in range(cipher.shape[0]):
            t = (k2 | 2) & 0xFFFF
            p = np.int64(cipher[i]) ^ (((t * (t ^ 1)) >> 8) & 0xFF)
            out[i] = p
            k0 = (k0 >> 8) ^ table[(k0 ^ p) & 0xFF]
            k1 = ((k1 + (k0 & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
            k2 = (k2 >> 8) ^ table[(k2 ^ (k1 >> 24)) & 0xFF]
        keys[0], keys[1], keys[2] = k0, k1, k2
        return out

    return kernel


def _zipcrypto_decrypt_python(data: bytes, keys) -> bytes:
    table = _CRC
    k0, k1, k2 = (int(k) for k in keys)
    out = bytearray(len(data))
    for i, c in enumerate(data):  # hot loop: locals only
        t = (k2 | 2) & 0xFFFF
        p = c ^ (((t * (t ^ 1)) >> 8) & 0xFF)
        out[i] = p
        k0 = (k0 >> 8) ^ table[(k0 ^ p) & 0xFF]
        k1 = ((k1 + (k0 & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        k2 = (k2 >> 8) ^ table[(k2 ^ (k1 >> 24)) & 0xFF]
    keys[0], keys[1], keys[2] = k0, k1, k2
    return bytes(out)


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
