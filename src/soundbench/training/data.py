"""From a manifest and feature shards to the examples a system trains and is evaluated on.

An experiment has one or more named inputs, each a feature spec with its own shards (`feature:` is the single
input "x"; `inputs: {audio: spec_a, video: spec_v}` several). An example is a dict:
    {"inputs": {name: tensor}, "clip": int, <the task's targets: "y", "frames", "strong", "group", ...>}
The first input may have a view (Segments: several examples per clip); the other inputs are read whole, per clip.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from soundbench import manifest as mf
from soundbench.features.extract import shard_rows
from soundbench.features.reader import ShardDataset, available_clip_ids
from soundbench.features.shards import check_shard, source_hash, verify_checksums
from soundbench.features.spec import FeatureSpec

TIME_TARGETS = ("frames",)  # targets with a time axis first: a Segments view with targets_follow cuts them too
NORMALIZE = ("none", "global", "per_band", "per_channel", "paper")


@dataclass(frozen=True)
class Input:
    name: str
    spec: FeatureSpec
    shard_paths: tuple[Path, ...]


def parse_inputs(obj: dict) -> list[Input]:
    """{"NAME": {"spec": {...resolved spec...}, "shards": [paths]}} (the --inputs argument) -> Inputs in order."""
    if not obj:
        raise ValueError("--inputs: no inputs given")
    out = []
    for name, entry in obj.items():
        spec = FeatureSpec.from_config(name, entry["spec"])
        out.append(Input(name, spec, tuple(Path(p) for p in entry["shards"])))
    return out


def verify_shards(m: mf.Manifest, inputs: list[Input]) -> None:
    """Each shard was made with its input's feature spec from these manifest rows (shard k of n, in path order);
    otherwise ShardMismatch names the shard and the differing hash. Its bytes are checked against the checksums
    written with it (once per job, before any read): a damaged shard is moved aside to <shard>.damaged and
    ShardDamaged names it, so the next Snakemake run rebuilds it."""
    for inp in inputs:
        for k, path in enumerate(inp.shard_paths):
            verify_checksums(path, quarantine=True)
            check_shard(path, inp.spec.hash(), source_hash(shard_rows(m.table, k, len(inp.shard_paths))))


def _tensor(v) -> torch.Tensor:
    v = np.asarray(v)
    if v.dtype.kind in "iu":
        return torch.as_tensor(v.astype(np.int64))
    if v.dtype.kind == "b":
        return torch.as_tensor(v)
    return torch.as_tensor(v.astype(np.float32, copy=False))


class RecordDataset(torch.utils.data.Dataset):
    """The examples of one split: the first input's examples (its view), the other inputs per clip, targets."""

    def __init__(self, clip_ids: list[str], targets: dict[str, np.ndarray], readers: dict[str, ShardDataset]):
        self.clip_ids = clip_ids
        self.targets = targets
        self.readers = readers
        self.first = next(iter(readers))
        for name, r in readers.items():
            if name != self.first and r.view is not None:
                raise ValueError(f"input {name!r}: only the first input may have a view")
        self.view = readers[self.first].view

    def __len__(self) -> int:
        return len(self.readers[self.first])

    def examples_per_clip(self) -> np.ndarray:
        return self.readers[self.first].examples_per_clip()

    def __getitem__(self, i: int) -> dict:
        head = self.readers[self.first][i]
        clip, start = head["clip"], head["start"]
        inputs = {self.first: head["x"]}
        for name, r in self.readers.items():
            if name != self.first:
                inputs[name] = r[clip]["x"]
        item = {"inputs": inputs, "clip": clip}
        for key, values in self.targets.items():
            v = values[clip]
            if key in TIME_TARGETS and self.view is not None and self.view.targets_follow:
                n = self.view.length
                v = v[start:start + n]
                if len(v) < n:  # a zero-padded last segment gets zero targets
                    v = np.pad(v, [(0, n - len(v))] + [(0, 0)] * (v.ndim - 1))
            item[key] = _tensor(v)
        return item

    def set_normalize(self, norms: dict) -> None:
        for name, r in self.readers.items():
            r.normalize = None if norms.get(name) is None else tuple(np.asarray(a, np.float32) for a in norms[name])


@dataclass
class Split:
    name: str
    clip_ids: list[str]
    targets: dict[str, np.ndarray]
    dataset: RecordDataset | None  # None when the split has no clips

    def __len__(self) -> int:
        return len(self.clip_ids)


def load_split(m: mf.Manifest, inputs: list[Input], split: str | list[str], task, view=None,
               normalize: dict | None = None, targets: bool = True) -> Split:
    """The available clips of a split (or of several, in manifest order: train_on) that every input has features
    for (clips skipped at extraction are left out). normalize: {input name: (mean, std)}. targets=False: no
    targets (unlabelled clips to predict)."""
    if not isinstance(split, str):
        names = list(split)
        frame = m.table[m.table["split"].isin(names) & m.table["available"]]
        split = "+".join(names)
    else:
        frame = m.split(split)
    for inp in inputs:
        frame = frame[frame["clip_id"].isin(available_clip_ids(inp.shard_paths))]
    ids = frame["clip_id"].tolist()
    targets = task.targets(m, frame, inputs[0].spec) if targets else {}
    if not ids:
        return Split(split, ids, targets, None)
    normalize = normalize or {}
    readers = {inp.name: ShardDataset(inp.shard_paths, ids, spec_hash=inp.spec.hash(), array="x",
                                      view=view if k == 0 else None, normalize=normalize.get(inp.name))
               for k, inp in enumerate(inputs)}
    return Split(split, ids, targets, RecordDataset(ids, targets, readers))


def fit_normalizer(how, split: Split, inp: Input, constants: dict | None = None):
    """None, or (mean, std) of one input broadcast against one example:
    global     scalars over the training clips (SampleCNN)
    per_band   per channel and frequency row, over clips and frames (SubSpectralNet)
    per_channel  per channel (first axis), over everything else (SeNoT-Net's 3 channels)
    paper      the system's published constants for this dataset (`constants`)
    {mean, std}  constants, numbers or one per channel."""
    if how is None or how == "none":
        return None
    shape = split.dataset.readers[inp.name][0]["x"].shape if split.dataset is not None else None
    if how == "paper":
        if constants is None:
            raise ValueError("train.normalize: paper: this system publishes no normalisation constants")
        how = constants
    if isinstance(how, dict):
        mean, std = (np.asarray(how[k], dtype=np.float32) for k in ("mean", "std"))
        if mean.ndim:  # one value per channel: broadcast along the example's other axes
            if shape is not None and len(mean) != shape[0]:
                raise ValueError(f"train.normalize: {len(mean)} means for input {inp.name!r} with {shape[0]} "
                                 f"channels")
            extra = (1,) * (len(shape) - 1 if shape is not None else 0)
            mean, std = mean.reshape(-1, *extra), std.reshape(-1, *extra)
        return mean, std
    if how not in NORMALIZE:
        raise ValueError(f"train.normalize: unknown value {how!r} ({' | '.join(NORMALIZE)} | {{mean, std}})")
    whole = ShardDataset(inp.shard_paths, split.clip_ids, spec_hash=inp.spec.hash())
    s, s2, n = 0.0, 0.0, 0
    for i in range(len(whole)):
        x = whole[i]["x"].numpy().astype(np.float64)
        axes = {"global": tuple(range(x.ndim)), "per_band": (x.ndim - 1,),
                "per_channel": tuple(range(1, x.ndim))}[how]
        s = s + x.sum(axis=axes, keepdims=True)
        s2 = s2 + (x ** 2).sum(axis=axes, keepdims=True)
        n += x.size // np.size(s)
    mean = s / n
    std = np.sqrt(np.maximum(s2 / n - mean ** 2, 1e-12))
    view = split.dataset.readers[inp.name].view if split.dataset is not None else None
    if view is not None and view.stack is not None:  # examples of stacked segments have one more axis
        mean, std = np.expand_dims(mean, view.stack), np.expand_dims(std, view.stack)
    return mean.astype(np.float32), std.astype(np.float32)
