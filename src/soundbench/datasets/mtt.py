"""MagnaTagATune (MTT), as SampleCNN (tae-jun/sampleaudio `lib/data/mtt.py`) builds it.

Layout (root = the extracted dataset, or the single folder inside it):
    annotations_final.csv            TAB-separated, header `clip_id, <188 tag columns>, mp3_path`, values 0/1
                                     (fields may be double-quoted; both forms are read)
    mp3/<hex>/<artist>-<album>-<track>-<start>-<end>.mp3    16 folders 0..f (from mp3.zip.001-003)

Rules (the original's):
- Tags: the `top_tags` (50) columns with the largest total count. Classes are written in the original's order,
  ascending by count (pandas `sum().sort_values().tail(N)`; ties are broken stably here, by column order,
  where the original's quicksort leaves them unspecified).
- Clips with none of those tags are dropped.
- Split by the mp3's first folder: 0-b train, c validation, d-f test (15,250 / 1,529 / 4,332 on the real file).
- clip_id = the annotation's clip_id.
"""
from __future__ import annotations

import numpy as np

from soundbench.datasets.base import DatasetInfo, Release, RemoteFile, Unpack
from soundbench.datasets.common import find_root, option, read_table, resolve_audio
from soundbench.manifest import Manifest, ManifestError, build, join_labels

NAME = "mtt"
BASE_URL = "https://mirg.city.ac.uk/datasets/magnatagatune/"  # the old host mi.soi.city.ac.uk serves the same tree
ANNOTATIONS = "annotations_final.csv"
OPTIONS = {"top_tags": 50}
# The original's pinned top-50 list (lib/data/mtt.py CLASSES), ascending by count: what the derivation rule above
# gives on the real annotations_final.csv (tests/test_samplecnn_original.py checks it against the real top-50 of
# musicnn's metadata).
ORIGINAL_TOP50 = (
    "choral", "female voice", "metal", "country", "weird", "no voice", "cello", "harp", "beats", "female vocal",
    "male voice", "dance", "new age", "voice", "choir", "classic", "man", "solo", "sitar", "soft", "pop",
    "no vocal", "male vocal", "woman", "flute", "quiet", "loud", "harpsichord", "no vocals", "vocals", "singing",
    "male", "opera", "indian", "female", "synth", "vocal", "violin", "beat", "ambient", "piano", "fast", "rock",
    "electronic", "drums", "strings", "techno", "slow", "classical", "guitar")


def split_of_folder(folder: str) -> str | None:
    """0-b -> train, c -> validation, d-f -> test (None for anything that is not one hex digit)."""
    if len(folder) != 1:
        return None
    try:
        part = int(folder, 16)
    except ValueError:
        return None
    if part < 12:
        return "train"
    if part == 12:
        return "validation"
    return "test"


def parse(root, allow_missing_audio: bool = False, **options) -> Manifest:
    opts = option(options, OPTIONS, NAME)
    top_n = int(opts["top_tags"])
    if top_n < 1:
        raise ManifestError(f"{NAME}: top_tags must be >= 1, got {top_n}")
    base = find_root(root, ANNOTATIONS, NAME)
    ann_path = base / ANNOTATIONS
    lines = read_table(ann_path, header=True, required=("clip_id", "mp3_path"), quoted=True, dataset=NAME)
    if not lines:
        raise ManifestError(f"{ann_path}: no clips listed")
    columns = list(lines[0].values)
    tags = [c for c in columns if c not in ("clip_id", "mp3_path")]
    if len(tags) < top_n:
        raise ManifestError(f"{ann_path}: {len(tags)} tag columns, fewer than top_tags={top_n}")
    tag_idx = [columns.index(t) for t in tags]
    try:
        values = np.array([[ln.fields[i] for i in tag_idx] for ln in lines]).astype(np.int64)
    except ValueError:  # slow path: find the offending value, or accept what int() accepts (" 1")
        def as_int(ln, tag, text):
            try:
                return int(text)
            except ValueError:
                raise ln.error(f"tag {tag!r} has value {text!r}, expected 0 or 1") from None

        values = np.array([[as_int(ln, t, ln.fields[i]) for t, i in zip(tags, tag_idx)] for ln in lines],
                          dtype=np.int64)
    bad = np.argwhere((values != 0) & (values != 1))
    if len(bad):
        r, c = bad[0]
        raise lines[r].error(f"tag {tags[c]!r} has value {values[r, c]}, expected 0 or 1")

    totals = values.sum(axis=0)
    order = np.argsort(totals, kind="stable")  # ascending, as pandas sort_values; stable for ties
    top = [int(i) for i in order[-top_n:]]
    classes = [tags[i] for i in top]
    audio_dir = base / "mp3"

    rows = []
    for r, ln in enumerate(lines):
        positive = [tags[i] for i in top if values[r, i]]
        if not positive:
            continue
        mp3_path = ln.values["mp3_path"].strip()
        folder = mp3_path.split("/")[0] if "/" in mp3_path else ""
        split = split_of_folder(folder)
        if split is None:
            raise ln.error(f"mp3_path {mp3_path!r} does not start with one of the hex folders 0-f")
        clip_id = ln.values["clip_id"].strip()
        if not clip_id:
            raise ln.error("empty clip_id")
        rows.append({"clip_id": clip_id, "path": str(audio_dir / mp3_path), "split": split,
                     "labels": join_labels(positive), "listed_at": ln.where})
    if not rows:
        raise ManifestError(f"{ann_path}: no clip has any of the top {top_n} tags")
    resolve_audio(rows, dataset=NAME, allow_missing_audio=allow_missing_audio)
    return build(rows, classes, source=str(ann_path))


DATASET = DatasetInfo(
    name=NAME,
    title="MagnaTagATune",
    task="multilabel",
    sample_rate=16000,
    channels=1,
    clip_seconds=29.1,
    official=Release(
        files=(
            RemoteFile("annotations_final.csv", BASE_URL + "annotations_final.csv"),
            RemoteFile("mp3.zip.001", BASE_URL + "mp3.zip.001"),
            RemoteFile("mp3.zip.002", BASE_URL + "mp3.zip.002"),
            RemoteFile("mp3.zip.003", BASE_URL + "mp3.zip.003"),
        ),
        unpack=(
            Unpack(("annotations_final.csv",), "file", dest="."),
            Unpack(("mp3.zip.001", "mp3.zip.002", "mp3.zip.003"), "zip", dest="mp3"),
        ),
        note="MagnaTagATune publishes no checksums; the project records its own hashes of the downloaded files.",
    ),
    parse=parse,
    classes=None,
    options=dict(OPTIONS),
)
