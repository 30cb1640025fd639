"""ACIVW (ACoustic Images and Videos in the Wild), the dataset of the acoustic-image self-supervision system
(IIT-PAVIS/acoustic-images-self-supervision). Not public: available on request from the authors.

Raw layout (root = the dataset directory, or the single folder inside it):
    class_<k>/data_<nnn>/video/I_<6-digit>.bmp          RGB frames, 12 per second, numbered from 1
    class_<k>/data_<nnn>/audio/A_<6-digit>.dc           per video frame: int32, (mics x 1024) in Fortran
                                                        order (real: 128 mics); numbered from 1
    class_<k>/data_<nnn>/MFCC_Image/Data_<n>.mat        per frame: acoustic image `MFCC` 36x48x12 (n from 1,
                                                        not zero-padded)
    lists/{training,validation,testing}.txt             optional: `/Dataset/class_<k>/data_<nnn>/Data_<sss>.tfrecord`

A record is one second, as the original's converter writes one TFRecord per second: a data directory has
floor(#bmp / 12) seconds (framecount.py); second s (1-based) holds frames 12(s-1)+1 ... 12s. A clip (manifest
row) is a sample of `sample_seconds` consecutive records of one video (default 2, the original's
--sample_length 2, read from consecutive records): seconds s ... s+S-1, taken greedily from the video's first
second (first listed second), all listed in the same split; never across videos; a record left without partners
is dropped (logged).
clip_id `class_<k>/data_<nnn>/<sss>-<eee>` (first and last second; `<sss>` alone for sample_seconds 1),
path = the data directory, start = s-1, duration S, group = `class_<k>/data_<nnn>` (the video / location).
A video whose .bmp, .dc and .mat counts differ (the converter asserts they are equal) is reported by name
(logged) and skipped. Labels: the class names below (`class_<k>` for an
index without a known name), classes in class-index order.

Splits: from lists/*.txt when present (any prefix before `class_<k>/` is dropped, so `/Dataset/` and
`/dataset/` both work; records present on disk but in no list are left out, as in the original), else by
video: within each class the data directories are ordered by a stable hash and cut by `split_fractions`
(train, validation, test; default 0.7 / 0.15 / 0.15), whole videos per split.

Audio (load_audio): mic 0 of the 12·S `.dc` frames of the sample, concatenated: float32 (1, 12288·S) at
12,288 Hz, unscaled int32 values as the original. The mic count is inferred from the file size.
Frames (load_frames, features/frames.py): the acoustic image `MFCC` (36 x 48 x 12) of MATLAB v5 files
(scipy) and v7.3 (HDF5: MATLAB stores the dimensions reversed) and the RGB `.bmp` frames.
"""
from __future__ import annotations

import logging
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
# split_fractions: train, validation, test (only without lists/); sample_seconds: records per sample
OPTIONS = {"split_fractions": [0.7, 0.15, 0.15], "sample_seconds": 2}
IMAGE_SHAPE = (36, 48, 12)  # the acoustic image `MFCC` of one frame
log = logging.getLogger("soundbench.datasets.acivw")
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
            vdir, adir, mdir = ddir / "video", ddir / "audio", ddir / "MFCC_Image"
            n_bmp = sum(1 for n in os.listdir(vdir) if n.lower().endswith(".bmp")) if vdir.is_dir() else 0
            n_mat = sum(1 for n in os.listdir(mdir) if n.endswith(".mat")) if mdir.is_dir() else 0
            audio = {n for n in os.listdir(adir) if n.endswith(".dc")} if adir.is_dir() else set()
            bad = None
            if not n_bmp == n_mat == len(audio):
                bad = f"{n_bmp} .bmp, {len(audio)} .dc and {n_mat} .mat frames"
            videos[key] = {"dir": ddir, "seconds": n_bmp // FPS, "audio": audio, "malformed": bad}
    return videos


def _record(base: Path, key: tuple[int, int], second: int, split: str, videos: dict, where: str | None,
            seconds: int = 1) -> dict:
    """The sample of `seconds` records from `second` (1-based) of one video."""
    k, loc = key
    v = videos.get(key)
    ddir = v["dir"] if v else base / f"class_{k}" / f"data_{loc:03d}"
    group = f"{ddir.parent.name}/{ddir.name}"
    frames = [f"A_{i:06d}.dc" for i in range((second - 1) * FPS + 1, (second + seconds - 1) * FPS + 1)]
    absent = [f for f in frames if not v or f not in v["audio"]]
    last = second + seconds - 1
    cid = f"{group}/{second:03d}" if seconds == 1 else f"{group}/{second:03d}-{last:03d}"
    return {"clip_id": cid, "path": str(ddir), "start": float(second - 1), "split": split, "labels": class_name(k),
            "group": group, "_class": k, "_absent": absent, "listed_at": where, "_seconds": seconds}


def pair_records(listed: dict[tuple, list[tuple[int, str]]], seconds: int) -> tuple[list[tuple], int]:
    """Samples of `seconds` consecutive listed records of one video and split: (key, first second, split,
    where); greedy from the first second, s ... s+S-1 all listed in the same split. -> (samples, records left)."""
    out, left = [], 0
    for (key, split), recs in listed.items():
        at = dict(recs)
        secs = sorted(at)
        i = 0
        while i < len(secs):
            s = secs[i]
            if all(s + j in at for j in range(seconds)):
                out.append((key, s, split, at[s]))
                i += seconds
            else:
                left += 1
                i += 1
    return out, left


def parse(root, allow_missing_audio: bool = False, **options) -> Manifest:
    opts = option(options, OPTIONS, NAME)
    per = opts["sample_seconds"]
    if not isinstance(per, int) or isinstance(per, bool) or per < 1:
        raise ManifestError(f"{NAME}: sample_seconds must be a positive integer, got {per!r}")
    base = _find_base(root)
    videos = _scan(base)
    malformed = {key for key, v in videos.items() if v["malformed"]}
    for key in sorted(malformed):
        v = videos[key]
        log.warning("%s: video %s/%s has %s (the converter asserts equal counts): skipped", NAME,
                    v["dir"].parent.name, v["dir"].name, v["malformed"])
    rows: list[dict] = []
    list_dir = base / "lists"
    list_files = [(list_dir / f, s) for f, s in LISTS if (list_dir / f).is_file()]
    if list_files:
        if len(list_files) != len(LISTS):
            raise ManifestError(f"{NAME}: {list_dir} must hold all of {', '.join(f for f, _ in LISTS)}")
        seen: dict[tuple, str] = {}
        listed: dict[tuple, list[tuple[int, str]]] = {}
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
                if key not in malformed:
                    listed.setdefault((key, split), []).append((second, f"{path}:{num}"))
        samples, left = pair_records(listed, per)
        if left:
            log.warning("%s: %d listed record(s) have no %d consecutive partner(s) in their video and split: "
                        "left out", NAME, left, per - 1)
        rows = [_record(base, key, s, split, videos, where, per) for key, s, split, where in sorted(samples)]
    else:
        fractions = tuple(float(x) for x in opts["split_fractions"])
        if len(fractions) != 3 or min(fractions) < 0 or sum(fractions) <= 0:
            raise ManifestError(f"{NAME}: split_fractions must be three non-negative numbers (train, validation, "
                                f"test), got {opts['split_fractions']}")
        by_class: dict[str, list[str]] = {}
        for (k, loc), v in videos.items():
            if v["seconds"] >= per and not v["malformed"]:
                by_class.setdefault(str(k), []).append(f"{v['dir'].parent.name}/{v['dir'].name}")
        assign = allocate_groups(by_class, dict(zip(("train", "validation", "test"), fractions)), salt=NAME)
        for key, v in sorted(videos.items()):
            if key in malformed or v["seconds"] < per:
                continue
            group = f"{v['dir'].parent.name}/{v['dir'].name}"
            for second in range(1, v["seconds"] - per + 2, per):
                rows.append(_record(base, key, second, assign[group], videos, None, per))
    if not rows:
        raise ManifestError(f"{NAME}: no {per}-s samples found under {base}")

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
        seconds = r.pop("_seconds")
        r.update(available=ok, duration=float(seconds) if ok else float("nan"), channels=1 if ok else 0,
                 sample_rate=SAMPLE_RATE if ok else 0)
    return build(rows, [class_name(k) for k in classes_seen], source=str(base))


def _field(row, name):
    try:
        return row[name]
    except (KeyError, TypeError, IndexError):
        return getattr(row, name)


def _first_frame(row) -> int:
    """The 1-based number of the clip's first frame."""
    return int(round(float(_field(row, "start")))) * FPS + 1


def load_audio(row) -> tuple[np.ndarray, int]:
    """Mic 0 of the 12 frames per second of the sample: float32 (1, 12288 x seconds), 12,288 Hz (unscaled)."""
    data_dir = Path(_field(row, "path"))
    first = _first_frame(row)
    n = int(round(float(_field(row, "duration")) * FPS))
    parts = []
    for i in range(first, first + n):
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


def read_acoustic_image(path) -> np.ndarray:
    """The variable `MFCC` of a MATLAB file, v5 (scipy) or v7.3 (HDF5), as float32 (36, 48, 12)."""
    import h5py
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    path = Path(path)
    if h5py.is_hdf5(path):  # MAT v7.3 is HDF5 behind a 512-byte header; MATLAB writes the dimensions reversed
        with h5py.File(path, "r") as f:
            mfcc = f["MFCC"][()].T if "MFCC" in f else None
    else:
        try:
            mfcc = loadmat(path, variable_names=["MFCC"]).get("MFCC")
        except (ValueError, NotImplementedError, MatReadError) as exc:
            raise ValueError(f"{path}: not a readable MATLAB file ({exc})") from exc
    if mfcc is None:
        raise ValueError(f"{path}: no variable MFCC")
    if mfcc.shape != IMAGE_SHAPE:
        raise ValueError(f"{path}: MFCC has shape {mfcc.shape}, expected {IMAGE_SHAPE}")
    return np.asarray(mfcc, dtype=np.float32)


def read_bmp(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def load_frames(row, kind: str, indices) -> np.ndarray:
    """Frames `indices` (0-based within the clip) of the clip: acoustic images (n, 36, 48, 12) float32 as stored
    (features/frames.py flips them) or video frames (n, H, W, 3) uint8 RGB."""
    data_dir = Path(_field(row, "path"))
    numbers = [_first_frame(row) + int(i) for i in indices]
    if kind == "acoustic_image":
        return np.stack([read_acoustic_image(data_dir / "MFCC_Image" / f"Data_{n}.mat") for n in numbers])
    if kind == "video":
        return np.stack([read_bmp(data_dir / "video" / f"I_{n:06d}.bmp") for n in numbers])
    raise ValueError(f"{NAME}: no frames of kind {kind!r} (acoustic_image, video)")


DATASET = DatasetInfo(
    name=NAME,
    title="ACIVW (acoustic images and videos in the wild)",
    task="multiclass",  # class labels per record; self-supervised systems fix the embedding task
    sample_rate=SAMPLE_RATE,
    channels=1,
    clip_seconds=2.0,  # a sample of sample_seconds records (the original's sample_length 2)
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
    load_frames=load_frames,
    options=dict(OPTIONS),
)
