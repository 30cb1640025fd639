"""Features of the image modalities (FeatureSpec kinds acoustic_image and video) from a dataset's frames.

A dataset with image modalities gives `load_frames(row, kind, indices) -> array (n, H, W, C)`: the frames of the
clip (manifest row) at the given 0-based frame indices within the clip, as stored on disk (acoustic images as
float, video frames as uint8 RGB). This module picks the indices, flips, resizes and orders channels as the spec
says. The frame rate is the spec's sample_rate.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from soundbench.features.spec import FeatureSpec


def n_clip_frames(spec: FeatureSpec) -> int:
    """Frames in one clip: clip_seconds x frame rate."""
    return int(round(spec.clip_seconds * spec.sample_rate))


def frame_indices(spec: FeatureSpec) -> np.ndarray:
    """The frames a clip keeps: all, or n_frames evenly spaced as tf.to_int32(tf.linspace(0, T - 1, n)) (ACIVW's
    random_pick: truncation, so 2 of 24 frames are 0 and 23)."""
    total = n_clip_frames(spec)
    if spec.n_frames is None:
        return np.arange(total)
    if spec.n_frames > total:
        raise ValueError(f"feature spec {spec.name!r}: n_frames {spec.n_frames} > the clip's {total} frames")
    return np.linspace(0.0, total - 1, spec.n_frames).astype(np.int64)


def resized_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """(new height, new width) with the smaller side = short_side, truncated as the ACIVW converter
    (640 x 480 -> 298 x 224)."""
    scale = short_side / float(width if height > width else height)
    return int(height * scale), int(width * scale)


def resize_bicubic(frame: np.ndarray, short_side: int) -> np.ndarray:
    from PIL import Image

    h, w = frame.shape[:2]
    nh, nw = resized_size(h, w, short_side)
    if (nh, nw) == (h, w):
        return frame
    return np.asarray(Image.fromarray(frame).resize((nw, nh), Image.Resampling.BICUBIC))


def clip_frames(row, spec: FeatureSpec, load_frames: Callable | None) -> np.ndarray:
    """One clip's frame feature: acoustic images (T, H, W, C) or video frames (n_frames, H', W', 3)."""
    if load_frames is None:
        raise ValueError(f"feature spec {spec.name!r} has kind {spec.kind!r}, and this dataset has no frames "
                         "(its module defines no load_frames)")
    idx = frame_indices(spec)
    x = np.asarray(load_frames(row, spec.kind, idx))
    if x.ndim != 4 or len(x) != len(idx):
        raise ValueError(f"{row['path']}: load_frames gave shape {x.shape} for {len(idx)} {spec.kind} frames")
    if spec.kind == "acoustic_image":
        if spec.flip in ("lr", "both"):
            x = x[:, :, ::-1]
        if spec.flip in ("ud", "both"):
            x = x[:, ::-1]
        return np.ascontiguousarray(x).astype(spec.dtype, copy=False)
    if spec.short_side is not None:
        x = np.stack([resize_bicubic(f, spec.short_side) for f in x])
    if spec.channel_order == "bgr":
        x = x[..., ::-1]
    return np.ascontiguousarray(x).astype(np.uint8, copy=False)
