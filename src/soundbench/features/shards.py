"""HDF5 feature shards: one file per (dataset, feature spec, shard index).

Layout of a shard with N clips:
  clip_id   (N,) variable-length str
  length    (N,) int64 — valid samples (waveform) or frames (spectral) before padding
  <name>    (N, *shape) one dataset per named array ("x" for a feature; "audio", "aimage", "video" for the
            multimodal system), contiguous: per-example chunks cost ~20 % on random reads and multi-example
            chunks ~10x (env-notes §5), and nothing here is appended to after writing.
Attributes: spec (json), spec_hash, source_hash, resampler, soundbench_version, created (+ any given), and
  checksums: json {dataset name: CRC-32 of its bytes} (clip_id: of the ids joined by NUL), computed while writing
  and verified once per job before training or evaluation (verify_checksums), so a truncated shard or one with
  damaged bytes is named instead of failing with an HDF5 message or being used silently.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import zlib
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np

import soundbench

META = ("clip_id", "length")


class ShardMismatch(RuntimeError):
    """A shard was written for another feature spec or other source clips; the message says which hash."""


class ShardDamaged(RuntimeError):
    """A shard cannot be read or fails its checksums; the message names the file and how to rebuild it."""


CHECKSUM_BLOCK_BYTES = 32 << 20  # verification reads this much at a time (memory stays bounded)
REBUILD = ("rerun snakemake: it rebuilds the missing shard (rule features); without Snakemake, run the "
           "`soundbench features` command of its log again")


def open_shard(path: str | os.PathLike) -> h5py.File:
    """h5py.File(path, "r"), with an error that names the file when it is truncated or not HDF5 at all."""
    try:
        return h5py.File(path, "r")
    except FileNotFoundError:
        raise FileNotFoundError(f"shard {path} does not exist") from None
    except OSError as e:
        raise ShardDamaged(f"shard {path} cannot be read ({e}); it is truncated or damaged: {REBUILD}") from None


def _ids_crc(ids) -> int:
    return zlib.crc32("\0".join(map(str, ids)).encode("utf-8"))


def array_crc(ds: h5py.Dataset) -> int:
    """CRC-32 of a stored array's bytes (C order), read in blocks of rows."""
    crc = 0
    if ds.shape[0] == 0:
        return crc
    row_bytes = max(1, ds.dtype.itemsize * int(np.prod(ds.shape[1:], dtype=np.int64)))
    step = max(1, CHECKSUM_BLOCK_BYTES // row_bytes)
    for start in range(0, ds.shape[0], step):
        crc = zlib.crc32(np.ascontiguousarray(ds[start:start + step]), crc)
    return crc


def _checksum_problem(path: Path) -> str | None:
    """What is wrong with a shard's bytes (None: nothing; "unverified": written without checksums)."""
    try:
        f = h5py.File(path, "r")
    except FileNotFoundError:
        raise FileNotFoundError(f"shard {path} does not exist") from None
    except OSError as e:
        return f"cannot be read ({e})"
    try:
        with f:
            stored = f.attrs.get("checksums")
            if stored is None:
                return "unverified"
            stored = json.loads(stored.decode() if isinstance(stored, bytes) else stored)
            for name in sorted(set(stored) | set(f)):
                if name not in stored or name not in f:
                    return f"array {name!r} is {'not listed in its checksums' if name in f else 'missing'}"
                ds = f[name]
                found = _ids_crc(ds.asstr()[()]) if name == "clip_id" else array_crc(ds)
                if found != stored[name]:
                    return f"array {name!r} fails its checksum (stored {stored[name]:08x}, read {found:08x})"
    except (OSError, RuntimeError, KeyError, ValueError, UnicodeDecodeError) as e:  # damaged HDF5 metadata
        return f"cannot be read ({type(e).__name__}: {e})"
    return None


def verify_checksums(path: str | os.PathLike, quarantine: bool = False) -> bool:
    """Check every array of a shard against the checksums stored when it was written.

    Returns False for a shard written before checksums existed (accepted, with a warning). A shard that cannot be
    read or whose bytes differ raises ShardDamaged naming the file and the array; with quarantine=True the file is
    first moved aside to <path>.damaged, so the next Snakemake run sees the shard missing and rebuilds it."""
    path = Path(path)
    damaged = path.with_name(path.name + ".damaged")
    try:
        problem = _checksum_problem(path)
    except FileNotFoundError:
        if damaged.exists():  # another job of this run found it damaged first and moved it aside
            raise ShardDamaged(f"shard {path} is missing: it was found damaged and moved to {damaged}; {REBUILD}") \
                from None
        raise
    if problem is None:
        return True
    if problem == "unverified":
        logging.getLogger("soundbench.features").warning(
            "%s was written without checksums (an older soundbench): used unverified; delete it to rebuild it", path)
        return False
    moved = ""
    if quarantine and path.exists():
        os.replace(path, damaged)
        moved = f"; moved to {damaged}"
    raise ShardDamaged(f"shard {path}: {problem}: the file is damaged{moved}; {REBUILD}")


def shard_of(clip_id: str, n_shards: int) -> int:
    """Stable shard index of a clip: sha1 of the id, so it never changes between runs or machines."""
    digest = hashlib.sha1(str(clip_id).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % int(n_shards)


def source_hash(rows) -> str:
    """sha256 (first 16 hex) of the manifest rows a shard is made from: clip_id, path, start, duration.

    rows: a DataFrame (or iterable of mappings) with those columns; order-independent (sorted by clip_id).
    """
    records = rows.to_dict("records") if hasattr(rows, "to_dict") else list(rows)

    def num(v):
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), 6)

    canon = sorted([str(r["clip_id"]), str(r["path"]), num(r["start"]), num(r["duration"])] for r in records)
    return hashlib.sha256(json.dumps(canon, separators=(",", ":")).encode()).hexdigest()[:16]


def _storable(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    return a.astype(np.float32) if a.dtype == np.float64 else a  # float64 is always an accident here


class ShardWriter:
    """Write one shard atomically: to `path + ".tmp"`, renamed over `path` on a clean close.

    ShardWriter(path, attrs, n_items, layout=None): n_items is the number of clips planned; when fewer are
    added (decode failures) the file is repacked to the exact count on close. layout optionally fixes
    {name: (shape, dtype)} up front so an empty shard still has its (0, *shape) arrays.
    An exception inside the `with` block deletes the temporary file and leaves any old shard untouched.
    """

    def __init__(self, path: str | os.PathLike, attrs: dict | None = None, n_items: int = 0,
                 layout: dict[str, tuple[tuple[int, ...], str]] | None = None):
        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.name + ".tmp")
        self.attrs = dict(attrs or {})
        self.n_items = int(n_items)
        self.layout = dict(layout or {})
        self.count = 0
        self._file: h5py.File | None = None
        self._ids: list[str] = []
        self._crc: dict[str, int] = {}  # running CRC-32 of each array's rows, in the order they are stored

    def __enter__(self) -> "ShardWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = h5py.File(self.tmp, "w")
        self._file.create_dataset("length", shape=(self.n_items,), dtype=np.int64)
        for name, (shape, dtype) in self.layout.items():
            self._create(name, tuple(shape), np.dtype(dtype))
        return self

    def _create(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> h5py.Dataset:
        if name in META:
            raise ValueError(f"{self.path}: array name {name!r} is reserved")
        return self._file.create_dataset(name, shape=(self.n_items, *shape), dtype=dtype)  # contiguous

    def add(self, clip_id: str, arrays: dict[str, np.ndarray], length: int) -> None:
        """Store one clip: named arrays of fixed shape per name, and its valid length."""
        if self._file is None:
            raise RuntimeError(f"{self.path}: ShardWriter.add outside its `with` block")
        if self.count >= self.n_items:
            raise ValueError(f"{self.path}: more clips than the {self.n_items} announced (at {clip_id!r})")
        if not arrays:
            raise ValueError(f"{self.path}: clip {clip_id!r} has no arrays")
        for name, a in arrays.items():
            a = _storable(a)
            ds = self._file.get(name)
            if ds is None:
                if self.count:
                    raise ValueError(f"{self.path}: clip {clip_id!r} brings array {name!r} the earlier clips lack")
                ds = self._create(name, a.shape, a.dtype)
            if ds.shape[1:] != a.shape:
                raise ValueError(f"{self.path}: clip {clip_id!r} array {name!r} has shape {a.shape}, "
                                 f"expected {ds.shape[1:]}")
            row = np.ascontiguousarray(a.astype(ds.dtype, copy=False))
            ds[self.count] = row
            self._crc[name] = zlib.crc32(row, self._crc.get(name, 0))
        missing = [n for n in self._array_names() if n not in arrays]
        if missing:
            raise ValueError(f"{self.path}: clip {clip_id!r} lacks arrays {missing}")
        self._file["length"][self.count] = int(length)
        self._ids.append(str(clip_id))
        self.count += 1

    def _array_names(self) -> list[str]:
        return [n for n in self._file if n not in META]

    def _finish(self) -> None:
        f = self._file
        f.create_dataset("clip_id", data=np.array(self._ids, dtype=object), dtype=h5py.string_dtype())
        lengths = np.ascontiguousarray(f["length"][:self.count])
        sums = {name: self._crc.get(name, 0) for name in self._array_names()}
        sums.update(clip_id=_ids_crc(self._ids), length=zlib.crc32(lengths))
        f.attrs["checksums"] = json.dumps(sums, sort_keys=True)
        f.attrs.update({"soundbench_version": soundbench.__version__,
                        "created": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        for key, value in self.attrs.items():
            f.attrs[key] = value if not isinstance(value, dict) else json.dumps(value, sort_keys=True)
        f.close()
        if self.count < self.n_items:
            self._repack()

    def _repack(self) -> None:
        """Copy the first `count` rows into a new file of exact size (contiguous data cannot shrink)."""
        packed = self.tmp.with_name(self.tmp.name + ".pack")
        try:
            with h5py.File(self.tmp, "r") as src, h5py.File(packed, "w") as dst:
                dst.attrs.update(dict(src.attrs))
                for name, ds in src.items():
                    if name == "clip_id":
                        src.copy(ds, dst, name)
                        continue
                    out = dst.create_dataset(name, shape=(self.count, *ds.shape[1:]), dtype=ds.dtype)
                    for i in range(self.count):  # row by row: a shard can be larger than memory allows
                        out[i] = ds[i]
            os.replace(packed, self.tmp)
        finally:
            if packed.exists():
                packed.unlink()

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc_type is None:
                self._finish()
                os.replace(self.tmp, self.path)
        finally:
            if self._file is not None and self._file.id.valid:
                self._file.close()
            self._file = None
            if self.tmp.exists():
                self.tmp.unlink()
        return False


def read_attrs(path: str | os.PathLike) -> dict:
    with open_shard(path) as f:
        return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}


def check_attrs(path, attrs: dict, spec_hash: str, source_hash: str | None = None) -> None:
    """Raise ShardMismatch when the attributes of shard `path` disagree with the expected hashes."""
    for key, expected in (("spec_hash", spec_hash), ("source_hash", source_hash)):
        if expected is None:
            continue
        found = attrs.get(key)
        if found != expected:
            raise ShardMismatch(f"{path}: {key} is {found!r}, expected {expected!r} "
                                f"({'feature spec' if key == 'spec_hash' else 'manifest rows'} changed; "
                                f"re-extract this shard)")


def check_shard(path: str | os.PathLike, spec_hash: str, source_hash: str | None = None) -> None:
    """Raise ShardMismatch naming the file and the differing hash; FileNotFoundError if it is absent."""
    if not Path(path).exists():
        raise FileNotFoundError(f"shard {path} does not exist")
    check_attrs(path, read_attrs(path), spec_hash, source_hash)
