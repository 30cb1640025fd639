"""Read examples from feature shards for training and evaluation.

`ShardDataset` maps an example index to (shard, row, segment start) through numpy arrays built once, opens
the HDF5 files lazily in each process (a DataLoader worker never inherits an open handle), and reads one
clip row (or one segment of it) per access — never fancy indexing.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import h5py
import numpy as np
import torch

from soundbench.features.shards import ShardMismatch, check_attrs, open_shard

WHOLE_ROW_BYTES = 1 << 20  # clips up to 1 MiB are read whole and segmented in memory


@dataclass(frozen=True)
class Segments:
    """Cut each clip into fixed-length segments along `axis` (default: the last, time), from the start.

    length: segment size (samples or frames); hop: segment step (None = length, non-overlapping);
    drop_remainder: drop a last incomplete segment (else it is zero-padded to `length`);
    targets_follow: targets with a time axis (first axis, e.g. SED (frames, classes)) are cut the same way.
    within: "valid" (segments lie within the clip's real, unpadded length; a clip shorter than one segment
    yields one segment taken from its padded array) or "clip" (over the whole stored clip, padding included:
    every clip gives the same number of segments, as SampleCNN's original cuts them from the padded clip).
    stack: None (one example per segment) or the position of a new axis along which all segments of a clip are
    stacked into ONE example (SeNoT-Net: stack=1 turns (C, F, T) into (C, S, F, length)); needs within="clip", so
    every clip gives the same number of segments.
    """

    length: int
    hop: int | None = None
    drop_remainder: bool = True
    axis: int = -1
    targets_follow: bool = False
    within: str = "valid"
    stack: int | None = None

    def __post_init__(self):
        if self.within not in ("valid", "clip"):
            raise ValueError(f"Segments.within: {self.within!r} is not 'valid' or 'clip'")
        if self.stack is not None and (self.within != "clip" or self.targets_follow or not self.drop_remainder):
            raise ValueError("Segments.stack: stacked segments need within='clip' (the same count for every clip), "
                             "drop_remainder and no targets_follow")

    def starts(self, valid: int) -> np.ndarray:
        """Segment start offsets for a clip with `valid` samples/frames."""
        hop = self.hop or self.length
        if valid <= self.length:
            return np.zeros(1, dtype=np.int64)
        n = 1 + (valid - self.length) // hop
        if not self.drop_remainder and (valid - self.length) % hop:
            n += 1
        return np.arange(n, dtype=np.int64) * hop


def read_index(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, dict]:
    """(clip_ids (N,) str, lengths (N,) int64, attrs) of one shard, reading only the small datasets."""
    with open_shard(path) as f:
        ids = f["clip_id"].asstr()[()] if len(f["clip_id"]) else np.array([], dtype=object)
        lengths = f["length"][()]
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    return np.asarray(ids, dtype=object), np.asarray(lengths, dtype=np.int64), attrs


def available_clip_ids(shard_paths: Sequence[str | os.PathLike]) -> set[str]:
    """Every clip id stored in the given shards (clips that failed to decode are absent)."""
    out: set[str] = set()
    for p in shard_paths:
        out.update(read_index(p)[0].tolist())
    return out


class ShardDataset(torch.utils.data.Dataset):
    """Examples of one stored array from HDF5 shards: dict(x=tensor, clip=int index into clip_ids, start=int).

    x is the stored array of one clip (view=None), e.g. (C, n_mels, T) or (C, N), or one Segments slice of it,
    e.g. (C, n_mels, length); start is the slice's offset along the view axis (0 without a view). Floating
    arrays come as float32, integer ones (uint8 video frames) as stored unless normalised.
    normalize = (mean, std) broadcast against x. Targets are not the reader's business (training/data.py).
    """

    def __init__(self, shard_paths: Sequence[str | os.PathLike], clip_ids: Sequence[str], *,
                 spec_hash: str, view: Segments | None = None, array: str = "x",
                 normalize: tuple[np.ndarray, np.ndarray] | None = None):
        self.shard_paths = [os.fspath(p) for p in shard_paths]
        self.clip_ids = [str(c) for c in clip_ids]
        self.spec_hash = spec_hash
        self.view = view
        self.array = array
        self.normalize = None if normalize is None else tuple(np.asarray(a, dtype=np.float32) for a in normalize)
        shard, row, valid, sizes = self._locate()
        self._build_examples(shard, row, valid, sizes)
        self._files: dict[int, tuple] | None = None  # opened lazily, per process
        self._pid: int | None = None

    # -- index -------------------------------------------------------------------------------------
    def _locate(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
        """Per requested clip: shard index, row and valid length; plus each shard's size along view axis."""
        where: dict[str, tuple[int, int, int]] = {}
        sizes: list[int] = []
        for s, path in enumerate(self.shard_paths):
            ids, lengths, attrs = read_index(path)
            check_attrs(path, attrs, self.spec_hash)
            sizes.append(self._axis_size(path))
            for r, (cid, n) in enumerate(zip(ids, lengths)):
                where[cid] = (s, r, int(n))
        missing = [c for c in self.clip_ids if c not in where]
        if missing:
            raise KeyError(f"clip {missing[0]!r} is in none of the {len(self.shard_paths)} shards "
                           f"({len(missing)} missing clips; drop skipped clips with available_clip_ids first)")
        loc = np.array([where[c] for c in self.clip_ids], dtype=np.int64).reshape(-1, 3)
        return loc[:, 0], loc[:, 1], loc[:, 2], sizes

    def _axis_size(self, path: str) -> int:
        with open_shard(path) as f:
            if self.array not in f:
                if len(f["clip_id"]):
                    raise KeyError(f"{path}: no array {self.array!r} (has {sorted(f)})")
                return 0  # an empty shard without that array contributes no examples
            shape = f[self.array].shape
        return shape[1:][self.view.axis] if self.view is not None else 0

    def _build_examples(self, shard: np.ndarray, row: np.ndarray, valid: np.ndarray, sizes: list[int]) -> None:
        """Flat numpy arrays over examples: clip position, shard, row, segment start."""
        if self.view is not None:  # the clips of a shard share its size along the view axis
            short = np.asarray(sizes, dtype=np.int64)[shard] < self.view.length
            if short.any():
                i = int(np.argmax(short))
                raise ValueError(f"{self.shard_paths[shard[i]]}: clip {self.clip_ids[i]!r} has {sizes[shard[i]]} "
                                 f"steps, shorter than one segment of {self.view.length}")
        if self.view is None or self.view.stack is not None:  # one example per clip (stacked: all its segments)
            self.ex_clip = np.arange(len(self.clip_ids), dtype=np.int64)
            self.ex_start = np.zeros(len(self.clip_ids), dtype=np.int64)
        else:
            extent = valid if self.view.within == "valid" else np.asarray(sizes)[shard]
            starts = [self.view.starts(int(v)) for v in extent]
            self.ex_clip = np.repeat(np.arange(len(self.clip_ids), dtype=np.int64), [len(s) for s in starts])
            self.ex_start = np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)
        self.ex_shard = shard[self.ex_clip]
        self.ex_row = row[self.ex_clip]

    def __len__(self) -> int:
        return len(self.ex_clip)

    def examples_per_clip(self) -> np.ndarray:
        """Number of examples (segments) of each clip, (n_clips,) int64."""
        return np.bincount(self.ex_clip, minlength=len(self.clip_ids))

    # -- reading -----------------------------------------------------------------------------------
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_files"], state["_pid"] = None, None  # never pickle an open HDF5 handle
        return state

    def _dataset(self, s: int) -> tuple[h5py.Dataset, int, int, bool]:
        """(dataset, clip ndim, clip size along the view axis, read whole rows?) of shard s, opened once per
        process; h5py property lookups are slow, so they are cached too."""
        if self._files is None or self._pid != os.getpid():  # first access in this (possibly forked) process
            self._files, self._pid = {}, os.getpid()
        entry = self._files.get(s)
        if entry is None:
            f = open_shard(self.shard_paths[s])
            found = f.attrs.get("spec_hash")
            try:  # the file may have been replaced since the index was built
                check_attrs(self.shard_paths[s], {"spec_hash": found.decode() if isinstance(found, bytes) else found},
                            self.spec_hash)
            except ShardMismatch:
                f.close()
                raise
            ds = f[self.array]
            ndim = ds.ndim - 1
            size = ds.shape[1:][self.view.axis] if self.view is not None else 0
            # small rows: one contiguous read + slicing in memory beats a strided hyperslab (~2x);
            # large rows (29-s waveforms): read only the segment
            whole = ds.dtype.itemsize * int(np.prod(ds.shape[1:])) <= WHOLE_ROW_BYTES
            entry = self._files[s] = (ds, ndim, size, whole)
        return entry

    def _read(self, i: int) -> tuple[np.ndarray, int]:
        ds, ndim, size, whole = self._dataset(int(self.ex_shard[i]))
        row = int(self.ex_row[i])
        if self.view is None:
            return ds[row], 0
        n, axis = self.view.length, self.view.axis % ndim
        if self.view.stack is not None:
            x = ds[row]
            cut = (slice(None),) * axis
            return np.stack([x[cut + (slice(a, a + n),)] for a in self.view.starts(size)], axis=self.view.stack), 0
        start = int(self.ex_start[i])
        stop = min(start + n, size)
        sel = (slice(None),) * axis + (slice(start, stop),)
        x = ds[row][sel] if whole else ds[(row,) + sel]
        if stop - start < n:  # drop_remainder=False: zero-pad the last segment
            pad = [(0, 0)] * ndim
            pad[axis] = (0, n - (stop - start))
            x = np.pad(x, pad)
        return x, start

    def __getitem__(self, i: int) -> dict:
        i = int(i)
        x, start = self._read(i)
        if x.dtype.kind == "f" or self.normalize is not None:
            x = x.astype(np.float32, copy=False)
        if self.normalize is not None:
            mean, std = self.normalize
            x = (x - mean) / std
        return {"x": torch.from_numpy(np.ascontiguousarray(x)), "clip": int(self.ex_clip[i]), "start": start}

    def close(self) -> None:
        if self._files:
            for ds, *_ in self._files.values():
                ds.file.close()
        self._files = None
