"""The canonical per-dataset manifest: one row per clip, whatever the source's metadata format.

Columns
- clip_id: unique, stable id (used for shard assignment and in predictions)
- path: absolute path of the audio file (for multimodal records: the record's directory)
- start: offset in seconds of the clip inside that file (0 for whole files; ACIVW's 1-s records)
- split: train | validation | test   (an official "evaluate" fold is `test`)
- labels: class names joined by LABEL_SEP (empty for unlabelled clips)
- duration: seconds (NaN when unavailable)
- channels, sample_rate: of the file on disk (0 when unavailable)
- available: False for clips listed by the metadata but absent on disk (--allow-missing-audio)
- events: JSON list of [onset, offset, label] for strongly labelled clips, "" otherwise
- group: optional grouping key (speaker, recording location, video) for grouped splits / positives

Classes are written beside the manifest (classes.txt, one per line) because their order is part of the
experiment: a dataset module may pin the original code's order; otherwise it is sorted from the data.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

LABEL_SEP = ";"  # DCASE 2017 class names contain commas and spaces, never semicolons
SPLITS = ("train", "validation", "test")
COLUMNS = ["clip_id", "path", "start", "duration", "split", "labels", "events", "group", "channels", "sample_rate",
           "available"]


class ManifestError(ValueError):
    """Metadata that cannot become a valid manifest; the message names the file or clip at fault."""


@dataclass
class Manifest:
    table: pd.DataFrame
    classes: list[str]

    def split(self, name: str, available_only: bool = True) -> pd.DataFrame:
        t = self.table[self.table["split"] == name]
        return t[t["available"]] if available_only else t

    def counts(self) -> dict[str, int]:
        """Clips listed per split (available or not), and how many of them are missing on disk."""
        out = {s: int((self.table["split"] == s).sum()) for s in SPLITS}
        out["missing"] = int((~self.table["available"]).sum())
        return out

    def label_lists(self, frame: pd.DataFrame | None = None) -> list[list[str]]:
        frame = self.table if frame is None else frame
        return [split_labels(s) for s in frame["labels"]]


def split_labels(s) -> list[str]:
    if not isinstance(s, str) or not s:
        return []
    return s.split(LABEL_SEP)


def join_labels(labels) -> str:
    labels = list(labels)
    for lab in labels:
        if LABEL_SEP in lab:
            raise ManifestError(f"class name {lab!r} contains the label separator {LABEL_SEP!r}")
    return LABEL_SEP.join(labels)


def events_to_json(events) -> str:
    """[(onset, offset, label), ...] -> compact JSON (sorted by onset)."""
    if not events:
        return ""
    return json.dumps([[round(float(a), 4), round(float(b), 4), str(c)] for a, b, c in sorted(events)])


def events_from_json(s) -> list[tuple[float, float, str]]:
    if not isinstance(s, str) or not s:
        return []
    return [(float(a), float(b), str(c)) for a, b, c in json.loads(s)]


def build(rows: list[dict], classes: list[str] | None = None, source: str = "metadata") -> Manifest:
    """Validate rows (dicts with at least clip_id, path, split) and fill defaults.

    classes=None derives them from the data (sorted); a given list must cover every label seen.
    """
    if not rows:
        raise ManifestError(f"{source}: no clips found")
    t = pd.DataFrame(rows)
    for col, default in (("start", 0.0), ("labels", ""), ("duration", float("nan")), ("channels", 0),
                         ("sample_rate", 0), ("available", True), ("events", ""), ("group", "")):
        if col not in t:
            t[col] = default
    t = t[COLUMNS].copy()
    dup = t["clip_id"][t["clip_id"].duplicated()]
    if len(dup):
        raise ManifestError(f"{source}: duplicate clip_id {dup.iloc[0]!r} ({len(dup)} duplicates)")
    bad = t[~t["split"].isin(SPLITS)]
    if len(bad):
        raise ManifestError(f"{source}: clip {bad['clip_id'].iloc[0]!r} has split {bad['split'].iloc[0]!r}, "
                            f"expected one of {SPLITS}")
    t["labels"] = t["labels"].fillna("").astype(str)
    t["events"] = t["events"].fillna("").astype(str)
    t["group"] = t["group"].fillna("").astype(str)
    t["available"] = t["available"].astype(bool)
    seen = sorted({lab for s in t["labels"] for lab in split_labels(s)})
    if classes is None:
        classes = seen
    else:
        unknown = sorted(set(seen) - set(classes))
        if unknown:
            raise ManifestError(f"{source}: labels {unknown[:5]} are not among the pinned classes")
    return Manifest(t.reset_index(drop=True), list(classes))


def write(manifest: Manifest, path: str | os.PathLike) -> None:
    """Write manifest.csv and classes.txt beside it, atomically (never a half-written manifest)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    classes_path = path.with_name("classes.txt")
    for target, writer in (
        (path, lambda p: manifest.table.to_csv(p, index=False)),
        (classes_path, lambda p: Path(p).write_text("".join(c + "\n" for c in manifest.classes))),
    ):
        tmp = target.with_name(target.name + ".tmp")
        writer(tmp)
        os.replace(tmp, target)


def read(path: str | os.PathLike) -> Manifest:
    path = Path(path)
    t = pd.read_csv(path, dtype={"clip_id": str, "labels": str, "events": str, "group": str, "path": str},
                    keep_default_na=False, na_values={"duration": [""]})
    missing = [c for c in COLUMNS if c not in t]
    if missing:
        raise ManifestError(f"{path}: missing columns {missing}")
    t["available"] = t["available"].astype(str).str.lower().isin(["true", "1"])
    classes_path = path.with_name("classes.txt")
    classes = [c for c in classes_path.read_text().splitlines() if c] if classes_path.exists() else None
    return build(t.to_dict("records"), classes, source=str(path))
