"""From a manifest and feature shards to the torch datasets a system trains and is evaluated on."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from soundbench import manifest as mf
from soundbench.features.extract import shard_rows
from soundbench.features.reader import ShardDataset, available_clip_ids
from soundbench.features.shards import check_shard, source_hash


def targets(m: mf.Manifest, frame, task: str) -> np.ndarray:
    """Clip targets in class order: an int class id (single-label tasks) or a multi-hot float vector."""
    index = {c: i for i, c in enumerate(m.classes)}
    labels = m.label_lists(frame)
    if task in ("multiclass", "multimodal"):
        bad = [cid for cid, labs in zip(frame["clip_id"], labels) if len(labs) != 1]
        if bad:
            raise mf.ManifestError(f"clip {bad[0]!r} has {len(labels[0])} labels; a {task} task needs exactly one")
        return np.array([index[labs[0]] for labs in labels], dtype=np.int64)
    y = np.zeros((len(labels), len(m.classes)), dtype=np.float32)
    for row, labs in enumerate(labels):
        y[row, [index[lab] for lab in labs]] = 1.0
    return y


def verify_shards(m: mf.Manifest, shard_paths: list[Path], spec_hash: str) -> None:
    """Each shard was made with this feature spec from these manifest rows (shard k of n, in path order);
    otherwise ShardMismatch names the shard and the differing hash."""
    for k, path in enumerate(shard_paths):
        check_shard(path, spec_hash, source_hash(shard_rows(m.table, k, len(shard_paths))))


@dataclass
class Split:
    name: str
    clip_ids: list[str]
    targets: np.ndarray
    dataset: ShardDataset | None  # None when the split has no clips

    def __len__(self) -> int:
        return len(self.clip_ids)


def load_split(m: mf.Manifest, shard_paths: list[Path], split: str, task: str, spec_hash: str, view=None,
               normalize=None) -> Split:
    """The available, successfully featurised clips of a split (clips skipped at extraction are left out)."""
    frame = m.split(split)
    have = available_clip_ids(shard_paths)
    frame = frame[frame["clip_id"].isin(have)]
    ids = frame["clip_id"].tolist()
    y = targets(m, frame, task)
    ds = ShardDataset(shard_paths, ids, y, spec_hash=spec_hash, view=view, normalize=normalize) if ids else None
    return Split(split, ids, y, ds)
