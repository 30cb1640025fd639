"""What a dataset module provides: its official release, how to unpack it, how to parse it, how to fake it.

A dataset module (soundbench/datasets/<name>.py) defines one `DatasetInfo` named `DATASET`; the registry
(soundbench/datasets/__init__.py) lists them. The demo synthesiser of a dataset lives in
soundbench/datasets/demo/<name>.py as `make(out_dir, seed, **options) -> Release` and writes the dataset in
its real on-disk layout and archive format, so a demo run walks the same download/extract/parse code.

The layout of every dataset (the contract between parsers and demo synthesisers; the LAYOUTS in a helper's
task text) is written down in LAYOUTS.md beside this file.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from soundbench.manifest import Manifest


@dataclass(frozen=True)
class RemoteFile:
    """One file of a release. `name` is its file name under resources/archives/<dataset>/."""

    name: str
    url: str
    md5: str | None = None
    sha256: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class Unpack:
    """One extraction step into the dataset root.

    parts: names of RemoteFiles; several parts are one split archive, concatenated in this order.
    kind: "zip", "tar" (any compression tarfile reads) or "file" (copied as is).
    dest: sub-directory of the dataset root to extract/copy into.
    """

    parts: tuple[str, ...]
    kind: str
    password: str | None = None
    dest: str = "."


@dataclass(frozen=True)
class Release:
    files: tuple[RemoteFile, ...]
    unpack: tuple[Unpack, ...]
    note: str = ""  # shown when this source cannot be downloaded automatically


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    title: str
    task: str  # the dataset's task (soundbench/tasks.py); an experiment may set another
    sample_rate: int  # of the real audio on disk
    channels: int
    clip_seconds: float  # nominal clip length (feature specs pad/crop to it unless they set their own)
    official: Release
    # parse(root, allow_missing_audio=False) -> Manifest; root is the extracted dataset directory
    parse: Callable[..., Manifest]
    classes: tuple[str, ...] | None = None  # pinned class order (the original code's), None: from the data
    # load_audio(row) -> (float32 array (channels, samples), sample_rate) for records that are not plain
    # audio files (ACIVW); None means: decode row.path with the generic decoder
    load_audio: Callable | None = None
    # load_frames(row, kind, indices) -> (n, H, W, C) frames of a clip for the image feature kinds
    # (acoustic_image, video; features/frames.py); None: an audio-only dataset
    load_frames: Callable | None = None
    options: dict = field(default_factory=dict)  # documented parse options and their defaults


def demo_rng(seed: int, *keys) -> np.random.Generator:
    """A generator that depends only on the seed and the given keys (stable across runs and machines)."""
    import hashlib

    h = hashlib.sha256(repr((seed,) + keys).encode()).digest()
    return np.random.default_rng(int.from_bytes(h[:8], "little"))
