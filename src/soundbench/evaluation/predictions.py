"""predictions.h5: every predicted split of a run, in a format that holds frame-level scores and embeddings.

Layout: one group per split (validation, test, train for embeddings) with
  clip_id  (n,) str
  scores   (n, classes) clip-level probabilities, or (n, dim) embeddings
  frames   (n, frames, classes) frame-level probabilities (sed only)
  extra/<name>  (n, dim) the model's other embeddings of the same clips (a multimodal model's video side)
Attributes: classes (json), thresholds (json, one per class), frame_seconds (sed), task, primary split, the
manifest's path and the inputs' feature specs (json).
A later experiment reads it (`predictions_from:`), e.g. the SED second pass takes the tagging pass's tags.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np

from soundbench.tasks import Predictions


def write(path: str | os.PathLike, predictions: dict[str, Predictions], attrs: dict) -> None:
    """Write atomically (a temporary file renamed over `path`)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with h5py.File(tmp, "w") as f:
            for key, value in attrs.items():
                f.attrs[key] = json.dumps(value) if isinstance(value, (list, dict, tuple)) else value
            for split, pred in predictions.items():
                g = f.create_group(split)
                g.create_dataset("clip_id", data=np.array(pred.clip_ids, dtype=object), dtype=h5py.string_dtype())
                g.create_dataset("scores", data=np.asarray(pred.scores, dtype=np.float32))
                if pred.frames is not None:
                    g.create_dataset("frames", data=np.asarray(pred.frames, dtype=np.float32))
                for name, value in (pred.extra or {}).items():
                    g.create_dataset(f"extra/{name}", data=np.asarray(value, dtype=np.float32))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read(path: str | os.PathLike) -> tuple[dict[str, Predictions], dict]:
    """-> ({split: Predictions without targets, with the run's thresholds}, attributes)."""
    out = {}
    with h5py.File(path, "r") as f:
        attrs = {}
        for key, value in f.attrs.items():
            value = value.decode() if isinstance(value, bytes) else value
            try:
                attrs[key] = json.loads(value) if isinstance(value, str) else value
            except json.JSONDecodeError:
                attrs[key] = value
        thresholds = np.asarray(attrs["thresholds"], dtype=np.float64) if "thresholds" in attrs else None
        for split, g in f.items():
            extra = {k: v[()] for k, v in g["extra"].items()} if "extra" in g else None
            out[split] = Predictions(split, list(g["clip_id"].asstr()[()]), {}, g["scores"][()],
                                     g["frames"][()] if "frames" in g else None, thresholds, extra)
    return out, attrs
