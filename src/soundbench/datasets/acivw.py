"""ACIVW (ACoustic Images and Videos in the Wild), the dataset of the acoustic-image self-supervision system
(IIT-PAVIS/acoustic-images-self-supervision). Not public: available on request from the authors.

Raw layout (root = the dataset directory, or the single folder inside it):
    class_<k>/data_<nnn>/video/I_<6-digit>.bmp          RGB frames, 12 per second, numbered from 1
    class_<k>/data_<nnn>/audio/A_<6-digit>.dc           per video frame: int32, (mics x 1024) in Fortran
                                                        order (real: 128 mics); numbered from 1
    class_<k>/data_<nnn>/MFCC_Image/Data_<n>.mat        per frame: acoustic image `MFCC` 36x48x12 (n from 1,
                                                        not zero-padded)
    lists/{training,validation,testing}.txt             optional: `/Dataset/class_<k>/data_<nnn>/Data_<sss>.tfrecord`

A clip is a 1-s record, as the original's converter writes one TFRecord per second: a data directory has
floor(#bmp / 12) seconds (framecount.py); second s (1-based) holds frames 12(s-1)+1 ... 12s.
clip_id `class_<k>/data_<nnn>/<sss>`, path = the data directory, start = s-1, duration 1.0,
group = `class_<k>/data_<nnn>` (the video / location). Labels: the class names below (`class_<k>` for an
index without a known name), classes in class-index order.

Splits: from lists/*.txt when present (any prefix before `class_<k>/` is dropped, so `/Dataset/` and
`/dataset/` both work; records present on disk but in no list are left out, as in the original), else by
video: within each class the data directories are ordered by a stable hash and cut by `split_fractions`
(train, validation, test; default 0.7 / 0.15 / 0.15), whole videos per split.

Audio (load_audio): mic 0 of the 12 `.dc` frames of the second, concatenated: float32 (1, 12288) at
12,288 Hz, unscaled int32 values as the original. The mic count is inferred from the file size.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from soundbench.datasets.base import DatasetInfo, Release
from soundbench.datasets.common import allocate_groups, option, read_lines
from soundbench.manifest import Manifest, ManifestError, build

NAME = "acivw"
FPS = 12
SAMPLES_PER_FRAME = 1024
SAMPLE_RATE = FPS * SAMPLES_PER_FRAME  # 12,288 Hz
CLASS_NAMES = {0: "train", 1: "boat", 2: "drone", 3: "fountain", 4: "drill", 5: "razor", 6: "hair dryer",
               7: "hoover", 8: "shopping cart", 9: "traffic"}
LISTS = (("training.txt", "train"), ("validation.txt", "validation"), ("testing.txt", "test"))
OPTIONS = {"split_fractions": [0.7, 0.15, 0.15]}  # train, validation, test (only without lists/)
_CLASS_RE = re.compile(r"^class_(\d+)$")
_DATA_RE = re.compile(r"^data_(\d+)$")
LIST_RE = re.compile(r"(?:^|/)class_(\d+)/data_(\d+)/Data_(\d+)\.tfrecord$")


def class_name(k: int) -> str:
    return CLASS_NAMES.get(k, f"class_{k}")


def audio_frame_path(data_dir, index: int) -> Path:
    """1-based frame index -> audio/A_<6-digit>.dc (convert_data.py: '{:06d}'.format(index + 1))."""
    return Path(data_dir) / "audio" / f"A_{index:06d}.dc"


def _find_base(root) -> Path:
    root = Path(root).absolute()  # manifest paths are absolute
    if not root.is_dir():
        raise ManifestError(f"{NAME}: dataset root {root} is not a directory")

    def has_classes(d: Path) -> bool:
        return any(_CLASS_RE.match(p.name) and p.is_dir() for p in d.iterdir())

    if has_classes(root):
        return root
    subs = [p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".") and has_classes(p)]
    if len(subs) == 1:
        return subs[0]
    raise ManifestError(f"{NAME}: no class_<k>/ folders in {root} nor in a single folder directly below it")


def _scan(base: Path) -> dict[tuple[int, int], dict]:
    """(class, video) -> {dir, seconds, audio (set of .dc names)} for every data directory on disk."""
    videos = {}
    for cdir in sorted(base.iterdir()):
        mc = _CLASS_RE.match(cdir.name)
        if not mc or not cdir.is_dir():
            continue
        for ddir in sorted(cdir.iterdir()):
            md = _DATA_RE.match(ddir.name)
            if not md or not ddir.is_dir():
                continue
            key = (int(mc.group(1)), int(md.group(1)))
            if key in videos:
                raise ManifestError(f"{NAME}: {ddir} and {videos[key]['dir']} are the same video")
            vdir, adir = ddir / "video", ddir / "audio"
            n_bmp = sum(1 for n in os.listdir(vdir) if n.lower().endswith(".bmp")) if vdir.is_dir() else 0
            audio = {n for n in os.listdir(adir) if n.endswith(".dc")} if adir.is_dir() else set()
            videos[key] = {"dir": ddir, "seconds": n_bmp // FPS, "audio": audio}
    return videos


def _record(base: Path, key: tuple[int, int], second: int, split: str, videos: dict, where: str | None) -> dict:
    k, loc = key
    v = videos.get(key)
    ddir = v["dir"] if v else base / f"class_{k}" / f"data_{loc:03d}"
    group = f"{ddir.parent.name}/{ddir.name}"
    frames = [f"A_{i:06d}.dc" for i in range((second - 1) * FPS + 1, second * FPS + 1)]
    absent = [f for f in frames if not v or f not in v["audio"]]
    return {"clip_id": f"{group}/{second:03d}", "path": str(ddir), "start": float(second - 1), "split": split,
            "labels": class_name(k), "group": group, "_class": k, "_absent": absent, "listed_at": where}


def parse(root, allow_missing_audio: bool = False, **options) -> Manifest:
    opts = option(options, OPTIONS, NAME)
    base = _find_base(root)
    videos = _scan(base)
    rows: list[dict] = []
    list_dir = base / "lists"
    list_files = [(list_dir / f, s) for f, s in LISTS if (list_dir / f).is_file()]
    if list_files:
        if len(list_files) != len(LISTS):
            raise ManifestError(f"{NAME}: {list_dir} must hold all of {', '.join(f for f, _ in LISTS)}")
        seen: dict[tuple, str] = {}
        for path, split in list_files:
            for num, text in read_lines(path, NAME):
                m = LIST_RE.search(text.strip().replace("\\", "/"))
                if not m:
                    raise ManifestError(f"{path}:{num}: malformed line, expected "
                                        f".../class_<k>/data_<nnn>/Data_<sss>.tfrecord: {text!r}")
                key, second = (int(m.group(1)), int(m.group(2))), int(m.group(3))
                if second < 1:
                    raise ManifestError(f"{path}:{num}: seconds are numbered from 1: {text!r}")
                if (key, second) in seen:
                    raise ManifestError(f"{path}:{num}: record already listed at {seen[(key, second)]}")
                seen[(key, second)] = f"{path}:{num}"
                rows.append(_record(base, key, second, split, videos, f"{path}:{num}"))
    else:
        fractions = tuple(float(x) for x in opts["split_fractions"])
        if len(fractions) != 3 or min(fractions) < 0 or sum(fractions) <= 0:
            raise ManifestError(f"{NAME}: split_fractions must be three non-negative numbers (train, validation, "
                                f"test), got {opts['split_fractions']}")
        by_class: dict[str, list[str]] = {}
        for (k, loc), v in videos.items():
            if v["seconds"] > 0:
                by_class.setdefault(str(k), []).append(f"{v['dir'].parent.name}/{v['dir'].name}")
        assign = allocate_groups(by_class, dict(zip(("train", "validation", "test"), fractions)), salt=NAME)
        for key, v in sorted(videos.items()):
            group = f"{v['dir'].parent.name}/{v['dir'].name}"
            for second in range(1, v["seconds"] + 1):
                rows.append(_record(base, key, second, assign[group], videos, None))
    if not rows:
        raise ManifestError(f"{NAME}: no 1-s records found under {base}")

    missing = [r for r in rows if r["_absent"]]
    if missing and not allow_missing_audio:
        r = missing[0]
        where = f" (listed at {r['listed_at']})" if r["listed_at"] else ""
        more = f"; {len(missing) - 1} more record(s) lack audio" if len(missing) > 1 else ""
        raise ManifestError(f"{NAME}: audio frame {Path(r['path']) / 'audio' / r['_absent'][0]} of record "
                            f"{r['clip_id']} is missing{where}{more}. Use allow_missing_audio to keep such "
                            "records as unavailable.")
    classes_seen = sorted({r["_class"] for r in rows})
    for r in rows:
        ok = not r.pop("_absent")
        r.pop("_class")
        r.pop("listed_at")
        r.update(available=ok, duration=1.0 if ok else float("nan"), channels=1 if ok else 0,
                 sample_rate=SAMPLE_RATE if ok else 0)
    return build(rows, [class_name(k) for k in classes_seen], source=str(base))


def _field(row, name):
    try:
        return row[name]
    except (KeyError, TypeError, IndexError):
        return getattr(row, name)


def load_audio(row) -> tuple[np.ndarray, int]:
    """Mic 0 of the 12 frames of the record's second: float32 (1, 12288), sample rate 12,288 (unscaled)."""
    data_dir = Path(_field(row, "path"))
    second = int(round(float(_field(row, "start")))) + 1
    parts = []
    for i in range((second - 1) * FPS + 1, second * FPS + 1):
        path = audio_frame_path(data_dir, i)
        size = path.stat().st_size
        if size == 0 or size % (4 * SAMPLES_PER_FRAME):
            raise ValueError(f"{path}: {size} bytes is not a whole number of int32 x {SAMPLES_PER_FRAME} "
                             "sample frames")
        mics = size // (4 * SAMPLES_PER_FRAME)
        raw = np.fromfile(path, dtype="<i4")
        # (mics, 1024) in Fortran order: sample s of mic m is raw[m + mics * s]
        parts.append(raw[0::mics])
    return np.concatenate(parts).astype(np.float32)[None, :], SAMPLE_RATE


DATASET = DatasetInfo(
    name=NAME,
    title="ACIVW (acoustic images and videos in the wild)",
    task="multiclass",  # class labels per record; self-supervised systems fix the embedding task
    sample_rate=SAMPLE_RATE,
    channels=1,
    clip_seconds=1.0,
    official=Release(
        files=(),
        unpack=(),
        note="ACIVW is not public: it is available on request from the authors (IIT Pattern Analysis and Computer "
             "Vision, contact in the IIT-PAVIS/acoustic-images-self-supervision README) for non-commercial "
             "research. Unpack it and give it as `source: local` (class_<k>/data_<nnn>/{audio,video,MFCC_Image}).",
    ),
    parse=parse,
    classes=None,
    load_audio=load_audio,
    options=dict(OPTIONS),
)
