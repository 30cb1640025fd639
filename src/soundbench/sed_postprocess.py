"""The IJCNN 2019 SED system's post-processing (topel/ijcnn19_submission: the notebook's "Score" cells and
utils/Encoder.py; seed-specs §4.6), as the hooks of the `sed_crnn` system (soundbench/systems.py).

`postprocess` (after inference, before the metrics), per predicted split:
  1. tags: the classes tagged by the first pass (the `predictions_from:` tagging run's clip scores at its own tuned
     thresholds, read from its predictions.h5), or the true tags (tags="oracle", the paper's "+AT oracle"), or every
     class (tags="all", the notebook's get_prob_curves_for_all_classes); the other classes' curves become 0
  2. each kept frame curve is min-max rescaled, min and max taken over frames edge ... T-1-edge (edge=3)
  3. moving average over `window` frames (19), the curve extended at both ends by a point reflection around its end
     values (weight 2: 2*x[0] - x[k]), as the Encoder's smoothMovingAvg
  The frames of the predictions become these curves; the clip scores their maximum over frames (the sed task's
  clip = max over frames), so the thresholded tagging metrics of the second pass count the tags it kept.
`decode` (frames -> events, in the sed task's metrics and events.tsv): the Encoder's hysteresis with high = low =
  the class's decision threshold (the system's default threshold 0.03): a frame is active when its value is
  strictly above it. counting="original" converts the runs into events exactly as Encoder.encode/parse count
  frames, which is off by a frame in two places: the first segment counts frame 0 twice, and every
  active-to-inactive change drops the frame where it happens. So the first event of a clip ends one frame late
  (and starts one frame late if the clip starts inactive), and each event after the k-th active-to-inactive change
  is shifted k-1 frames earlier. counting="runs" gives the exact runs [first active frame, last + 1).
`frame_seconds`: frame="clip" (default): clip length / frames, the Encoder's 10 / nbFrame (10/431 s on the real
  10-s clips; a 5-s demo clip with 216 frames gets 5/216 s), from the feature spec; frame="hop": hop / sample rate.
"""
from __future__ import annotations

import numpy as np

from soundbench.tasks import Predictions

OPTIONS = {"tags": "at", "edge": 3, "window": 19, "weight": 2.0, "counting": "original", "frame": "clip"}


def options(params: dict) -> dict:
    """The post-processing options among a run's params (the system's defaults filled in)."""
    out = {k: params.get(k, v) for k, v in OPTIONS.items()}
    if out["tags"] not in ("at", "oracle", "all"):
        raise ValueError(f"params.tags: {out['tags']!r} is not at (the predictions_from tagging run's tags), oracle "
                         f"(the true tags) or all")
    if out["counting"] not in ("original", "runs"):
        raise ValueError(f"params.counting: {out['counting']!r} is not original or runs")
    if out["frame"] not in ("clip", "hop"):
        raise ValueError(f"params.frame: {out['frame']!r} is not clip or hop")
    return out


def rescale(curve: np.ndarray, edge: int = 3) -> np.ndarray:
    """(x - min) / (max - min) with min and max over curve[edge:-edge] (the notebook's `rescale`).

    A curve constant over those frames (a saturated sigmoid) has no scale: the original divides by zero and its
    NaNs never pass the threshold, so it gives no events; here the curve becomes 0 (the same outcome, no NaN)."""
    x = np.asarray(curve, dtype=np.float64)
    inner = x[edge:len(x) - edge] if edge else x
    if len(inner) == 0:
        raise ValueError(f"a curve of {len(x)} frames has nothing left inside {edge} edge frames")
    lo, hi = inner.min(), inner.max()
    if hi <= lo:
        return np.zeros_like(x)
    return (x - lo) / (hi - lo)


def smooth(curve: np.ndarray, window: int = 19, weight: float = 2.0) -> np.ndarray:
    """The Encoder's smoothMovingAvg: a `window`-frame moving average of the curve extended at the start by
    weight*x[0] - x[window-1 ... 0] and at the end by weight*x[-1] - x[-1 ... -(window-1)]; same length."""
    x = np.asarray(curve, dtype=np.float64)
    window = int(window)
    if window < 3:
        return x
    if len(x) < window:
        raise ValueError(f"a curve of {len(x)} frames is shorter than the {window}-frame smoothing window")
    s = np.r_[weight * x[0] - x[window - 1::-1], x, weight * x[-1] - x[-1:-window:-1]]
    y = np.convolve(np.ones(window) / window, s, mode="same")
    return y[window:-window + 1]


def _tags(split: str, pred: Predictions, upstream, how: str) -> np.ndarray:
    """(clips, classes) bool: the classes whose curves are kept."""
    n_classes = pred.frames.shape[2]
    if how == "all":
        return np.ones((len(pred), n_classes), dtype=bool)
    if how == "oracle":
        y = np.asarray(pred.targets["y"])
        if y.ndim != 2 or y.shape[1] != n_classes:
            raise ValueError(f"tags: oracle needs multi-hot targets (clips, {n_classes}), got {y.shape}")
        return y.astype(bool)
    if upstream is None:
        raise ValueError("params.tags: at takes the tags of a first (tagging) pass: give the experiment "
                         "predictions_from: <the tagging experiment>, or set params.tags: oracle")
    if split not in upstream:
        raise ValueError(f"the predictions_from run has no {split!r} predictions (it has {sorted(upstream)})")
    up = upstream[split]
    if up.thresholds is None:
        raise ValueError("the predictions_from run's predictions.h5 holds no thresholds")
    if up.scores.shape[1] != n_classes:
        raise ValueError(f"the predictions_from run scores {up.scores.shape[1]} classes, this run {n_classes}")
    row = {c: i for i, c in enumerate(up.clip_ids)}
    missing = [c for c in pred.clip_ids if c not in row]
    if missing:
        raise ValueError(f"the predictions_from run has no {split} predictions for {len(missing)} clip(s), e.g. "
                         f"{missing[:3]} (was it run on another manifest?)")
    scores = up.scores[[row[c] for c in pred.clip_ids]]
    # positive at or above the threshold, as the tagging run's own metrics count them
    return scores >= np.asarray(up.thresholds, dtype=np.float64)[None, :]


def process_frames(frames: np.ndarray, tags: np.ndarray, opts: dict) -> np.ndarray:
    """(clips, frames, classes) probabilities -> the rescaled, smoothed curves of the tagged classes, 0 elsewhere."""
    out = np.zeros(frames.shape, dtype=np.float32)
    for i, k in zip(*np.nonzero(tags)):
        out[i, :, k] = smooth(rescale(frames[i, :, k], opts["edge"]), opts["window"], opts["weight"])
    return out


def postprocess(predictions: dict[str, Predictions], upstream: dict[str, Predictions] | None, params: dict
                ) -> dict[str, Predictions]:
    """The `postprocess` hook (soundbench/systems.py)."""
    opts = options(params)
    out = {}
    for split, pred in predictions.items():
        if pred.frames is None:
            raise ValueError(f"the {split} predictions have no frame scores to post-process")
        curves = process_frames(pred.frames, _tags(split, pred, upstream, opts["tags"]), opts)
        out[split] = Predictions(pred.split, pred.clip_ids, pred.targets, curves.max(axis=1).astype(np.float64),
                                 curves, pred.thresholds)
    return out


def encoder_segments(values: np.ndarray, high: float, low: float) -> list[tuple[int, int]]:
    """Utils/Encoder.py's __encodeUsingHysteresis on one curve, then `parse`: the (start, end) frame counts of the
    active segments, counted as the original counts them (see the module docstring). A value in (low, high] is
    counted nowhere, as in the original."""
    segments, start = [], 0
    active, count = None, 0
    for i, v in enumerate(values):
        if i == 0:
            active, count = (True, 1) if v > high else (False, 1)
        if v > high and active:
            count += 1
        elif v > high and not active:
            start += count
            active, count = True, 1
        elif v <= low and not active:
            count += 1
        elif v <= low and active:
            segments.append((start, start + count))
            start += count
            active, count = False, 0
    if active:
        segments.append((start, start + count))
    return segments


def decode(frames: np.ndarray, thresholds, frame_seconds: float, classes: list[str], params: dict) -> list:
    """The `decode` hook: one clip's curves (frames, classes) -> [(onset, offset, label)] sorted by onset."""
    opts = options(params)
    thr = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (len(classes),))
    events = []
    for k, label in enumerate(classes):
        active = frames[:, k] > thr[k]
        if not active.any():
            continue
        if opts["counting"] == "runs":
            edges = np.diff(np.r_[0, active.astype(np.int8), 0])
            segments = zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1))
        else:
            segments = encoder_segments(frames[:, k], thr[k], thr[k])
        events += [(a * frame_seconds, b * frame_seconds, label, k) for a, b in segments]
    events.sort(key=lambda e: (e[0], e[3]))
    return [(float(a), float(b), c) for a, b, c, _ in events]


def frame_seconds(spec, params: dict) -> float:
    """The `frame_seconds` hook: the duration of one output frame for decoding."""
    from soundbench.tasks import frame_seconds as hop_seconds

    if options(params)["frame"] == "hop":
        return hop_seconds(spec)
    if spec.clip_seconds is None:
        raise ValueError("frame: clip needs the feature spec's clip_seconds")
    return float(spec.clip_seconds) / spec.output_shape()[-1]
