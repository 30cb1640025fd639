"""Turn the clips of one shard of a manifest into one HDF5 feature shard (a Snakemake job per shard)."""
from __future__ import annotations

import csv
import math
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from tqdm import tqdm

from soundbench import audio, manifest
from soundbench.features.shards import ShardWriter, shard_of, source_hash
from soundbench.features.spec import FeatureSpec


class ExtractError(RuntimeError):
    """Too many clips of a shard failed to decode; the message names the first failing files."""


def clip_feature(x: np.ndarray, sr: int, spec: FeatureSpec) -> tuple[np.ndarray, int]:
    """Decoded audio (C_in, N) at sr -> (feature, valid length) for a resolved spec.

    feature: (C, n_samples) for waveform, (C, n_bins, T) for spectral kinds, in spec.dtype; valid length is
    the number of samples / frames that come from real audio, before padding.
    """
    x = audio.to_channels(audio.resample(np.asarray(x, dtype=np.float32), sr, spec.sample_rate), spec.channels)
    n = spec.n_samples
    n_valid = min(x.shape[-1], n)
    x = audio.fit_length(x, n, spec.pad)
    if spec.peak_norm is not None:
        peak = float(np.abs(x).max())
        if peak > 0:  # ACIVW: peak-normalise to [-1, 1], then scale (x256)
            x = x * np.float32(spec.peak_norm / peak)
    if spec.is_spectral:
        from soundbench.features.logmel import logmel  # torch: ~1.2 s of start-up a waveform job does not need

        x = logmel(x, spec)
    return x.astype(spec.dtype, copy=False), spec.valid_length(n_valid)


def shard_rows(table: pd.DataFrame, shard: int, n_shards: int) -> pd.DataFrame:
    """The available manifest rows that belong to `shard` (manifest order)."""
    rows = table[table["available"]]
    mask = rows["clip_id"].map(lambda c: shard_of(c, n_shards) == shard).astype(bool)
    return rows[mask]


def _default_loader(spec: FeatureSpec) -> Callable:
    def load(row) -> tuple[np.ndarray, int]:
        # decode only what the spec keeps: like librosa.load(duration=...) in the original code, and no
        # wasted mp3 decoding past the clip length
        dur = row["duration"]
        dur = spec.clip_seconds if dur is None or (isinstance(dur, float) and math.isnan(dur)) \
            else min(float(dur), spec.clip_seconds)
        return audio.decode(row["path"], row["start"], dur)
    return load


def _write_skipped(path: str | os.PathLike, failures: list[tuple[str, str, str]]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["clip_id", "path", "reason"])
        w.writerows(failures)
    os.replace(tmp, path)


def _too_many(failures: list, total: int, max_failed_fraction: float) -> bool:
    return len(failures) > max_failed_fraction * total


def _failure_message(failures: list, total: int, max_failed_fraction: float, out_path) -> str:
    first = "; ".join(f"{p} ({reason})" for _, p, reason in failures[:3])
    return (f"{out_path}: {len(failures)} of {total} clips failed to decode (more than "
            f"{max_failed_fraction:.1%}); first: {first}")


def extract_shard(manifest_path: str | os.PathLike, spec: FeatureSpec, shard: int, n_shards: int,
                  out_path: str | os.PathLike, *, load_audio: Callable | None = None,
                  load_frames: Callable | None = None, clip_seconds: float,
                  max_failed_fraction: float = 0.05, skipped_path: str | os.PathLike,
                  progress: bool = True) -> dict:
    """Decode, resample, channel-map, fit and featurise the available clips of one shard; write the shard.

    load_audio(row) -> ((C, N) float32, sr) is the dataset's own loader (None: decode row.path from
    row.start for row.duration, at most the spec's clip length); load_frames(row, kind, indices) the dataset's
    frame loader for the frame kinds (acoustic_image, video: features/frames.py). Clips that fail to load go to the
    skipped CSV (clip_id, path, reason) and not into the shard. More than max_failed_fraction failures
    raise ExtractError and leave no shard (the skipped CSV is still written, for diagnosis).
    Returns stats: shard, n_shards, clips, written, skipped, seconds, spec_hash, source_hash, out_path.
    """
    t0 = time.perf_counter()
    spec = spec.resolved(clip_seconds)
    rows = shard_rows(manifest.read(manifest_path).table, shard, n_shards)
    total = len(rows)
    load = load_audio or _default_loader(spec)
    attrs = {"spec": spec.to_json(), "spec_hash": spec.hash(), "source_hash": source_hash(rows),
             "resampler": audio.RESAMPLER, "shard": int(shard), "n_shards": int(n_shards)}
    failures: list[tuple[str, str, str]] = []
    # a frame kind's shape comes from the dataset's frames: the first clip fixes it
    layout = {} if spec.is_frames else {"x": (spec.output_shape(), spec.dtype)}
    with ShardWriter(out_path, attrs, total, layout=layout) as writer:
        for _, row in tqdm(rows.iterrows(), total=total, desc=Path(out_path).name, unit="clip",
                           disable=not progress, mininterval=2.0):
            try:
                if spec.is_frames:
                    from soundbench.features.frames import clip_frames

                    feat = clip_frames(row, spec, load_frames)
                    writer.add(row["clip_id"], {"x": feat}, len(feat))
                    continue
                x, sr = load(row)
                if np.asarray(x).shape[-1] == 0:
                    raise audio.DecodeError(f"{row['path']}: decoded 0 samples")
            except Exception as exc:  # noqa: BLE001 - any unreadable clip is skipped and reported
                failures.append((row["clip_id"], str(row["path"]), f"{type(exc).__name__}: {exc}"))
                if _too_many(failures, total, max_failed_fraction):  # cannot recover: stop early
                    _write_skipped(skipped_path, failures)
                    Path(out_path).unlink(missing_ok=True)  # no stale shard from an earlier run either
                    raise ExtractError(_failure_message(failures, total, max_failed_fraction, out_path))
                continue
            feat, length = clip_feature(x, sr, spec)
            writer.add(row["clip_id"], {"x": feat}, length)
    _write_skipped(skipped_path, failures)
    return {"shard": int(shard), "n_shards": int(n_shards), "clips": total, "written": total - len(failures),
            "skipped": len(failures), "seconds": round(time.perf_counter() - t0, 3),
            "spec_hash": attrs["spec_hash"], "source_hash": attrs["source_hash"], "out_path": os.fspath(out_path)}
