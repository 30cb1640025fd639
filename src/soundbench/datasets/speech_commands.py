"""Speech Commands v0.02, as SampleCNN (tae-jun/sampleaudio `lib/data/scd.py`) builds it.

Layout (root = the extracted tarball, or the single folder inside it):
    <word>/<speakerhash>_nohash_<n>.wav      16 kHz mono 16-bit, <= 1 s; 35 word folders
    _background_noise_/*.wav                 long noise recordings, not clips (skipped)
    validation_list.txt, testing_list.txt    relative paths `<word>/<file>.wav`, one per line
                                             (the real v0.02 files end without a newline)

Split: listed in validation_list.txt -> validation, in testing_list.txt -> test, every other `*/*.wav`
except `_background_noise_` -> train (84,843 / 9,981 / 11,005). Label = the word folder (35 classes, pinned
in the original's order); group = the speaker hash; clip_id = `<word>/<file name without .wav>`.
"""
from __future__ import annotations

import os

from soundbench.datasets.base import DatasetInfo, Release, RemoteFile, Unpack
from soundbench.datasets.common import find_root, option, read_lines, resolve_audio
from soundbench.manifest import Manifest, ManifestError, build

NAME = "speech_commands"
CLASSES = ("backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward", "four", "go",
           "happy", "house", "learn", "left", "marvin", "nine", "no", "off", "on", "one", "right", "seven",
           "sheila", "six", "stop", "three", "tree", "two", "up", "visual", "wow", "yes", "zero")
NOISE_DIR = "_background_noise_"
LISTS = (("validation_list.txt", "validation"), ("testing_list.txt", "test"))
HASH_DIVIDER = "_nohash_"
OPTIONS: dict = {}


def _clip(rel: str, path: str, split: str, listed_at: str | None) -> dict:
    word, fname = rel.split("/")
    stem = fname[:-4] if fname.lower().endswith(".wav") else fname
    return {"clip_id": f"{word}/{stem}", "path": path, "split": split, "labels": word,
            "group": stem.split(HASH_DIVIDER)[0], "listed_at": listed_at}


def parse(root, allow_missing_audio: bool = False, **options) -> Manifest:
    option(options, OPTIONS, NAME)
    base = find_root(root, "validation_list.txt", NAME)
    listed: dict[str, tuple[str, str]] = {}  # relative path -> (split, "file:line")
    for fname, split in LISTS:
        path = base / fname
        for num, text in read_lines(path, NAME):
            rel = text.strip().replace("\\", "/")
            if rel.startswith("./"):
                rel = rel[2:]
            parts = rel.split("/")
            if len(parts) != 2 or not parts[0] or not parts[1].lower().endswith(".wav"):
                raise ManifestError(f"{path}:{num}: malformed line, expected <word>/<file>.wav: {text!r}")
            if parts[0] == NOISE_DIR:
                raise ManifestError(f"{path}:{num}: lists a background-noise recording: {text!r}")
            if rel in listed:
                prev_split, prev_where = listed[rel]
                raise ManifestError(f"{path}:{num}: {rel} is already listed at {prev_where}")
            listed[rel] = (split, f"{path}:{num}")

    rows = []
    for rel, (split, where) in listed.items():
        rows.append(_clip(rel, str(base / rel), split, where))

    # train: every other <word>/*.wav on disk
    with os.scandir(base) as it:
        words = sorted(e.name for e in it if e.is_dir() and not e.name.startswith(".") and e.name != NOISE_DIR)
    for word in words:
        folder = base / word
        with os.scandir(folder) as it:
            names = sorted(e.name for e in it if e.name.lower().endswith(".wav") and e.is_file())
        if names and word not in CLASSES:
            raise ManifestError(f"{NAME}: folder {folder} holds {len(names)} wav files but {word!r} is not one "
                                f"of the 35 Speech Commands v0.02 words")
        for n in names:
            rel = f"{word}/{n}"
            if rel not in listed:
                rows.append(_clip(rel, str(folder / n), "train", None))

    unknown = sorted({r["labels"] for r in rows} - set(CLASSES))
    if unknown:
        first = next(r for r in rows if r["labels"] == unknown[0])
        raise ManifestError(f"{first['listed_at']}: word {unknown[0]!r} is not one of the 35 Speech Commands "
                            "v0.02 words")
    resolve_audio(rows, dataset=NAME, allow_missing_audio=allow_missing_audio)
    return build(rows, list(CLASSES), source=str(base))


DATASET = DatasetInfo(
    name=NAME,
    title="Speech Commands v0.02",
    task="multiclass",
    sample_rate=16000,
    channels=1,
    clip_seconds=1.0,
    official=Release(
        files=(
            # size and sha256 from tensorflow/datasets url_checksums/speech_commands.txt (also torchaudio's)
            RemoteFile("speech_commands_v0.02.tar.gz",
                       "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz",
                       sha256="af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58",
                       size=2428923189),
        ),
        unpack=(Unpack(("speech_commands_v0.02.tar.gz",), "tar", dest="."),),
    ),
    parse=parse,
    classes=CLASSES,
    options=dict(OPTIONS),
)
