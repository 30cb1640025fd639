"""DCASE 2017 Task 4 (large-scale weakly supervised sound events for smart cars), as SampleCNN
(tae-jun/sampleaudio `lib/data/dcs.py`) builds it.

Layout (root = the extracted dataset; everything is found anywhere below it):
    groundtruth_weak_label_{training,testing,evaluation}_set.csv
        TAB-separated, no header: `<ytid>_<start>_<end>.wav  start  end  label`, one row per (clip, label);
        labels contain spaces, commas and parentheses (split on tabs only)
    unbalanced_train_segments_training_set_audio_formatted_and_segmented_downloads/Y<file>
    unbalanced_train_segments_testing_set_audio_formatted_and_segmented_downloads/Y<file>
    evaluation_set_formatted_audio_segments/Y<file>

Split (the original's):
- The training and testing label rows are concatenated (training first, file order kept).
- For every class, `validation_fraction` (0.1) of that class's ROWS is drawn with pandas
  `DataFrame.sample(frac=..., random_state=seed)` (seed 123); a clip whose row was drawn under any of its
  classes goes to validation, the rest to train.
- The evaluation set is the test split.
Real label files: 46,042 train / 5,618 validation / 1,103 test clips.
clip_id = the label file's name without `.wav`; audio = "Y" + that name in the set's folder.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from soundbench.datasets.base import DatasetInfo, Release, RemoteFile, Unpack
from soundbench.datasets.common import find_dirs, find_files, option, read_table, resolve_audio
from soundbench.manifest import Manifest, ManifestError, build, join_labels

NAME = "dcase2017_task4"
CLASSES = ("Train horn", "Air horn, truck horn", "Car alarm", "Reversing beeps", "Ambulance (siren)",
           "Police car (siren)", "Fire engine, fire truck (siren)", "Civil defense siren", "Screaming", "Bicycle",
           "Skateboard", "Car", "Car passing by", "Bus", "Truck", "Motorcycle", "Train")
DIR_TRAIN = "unbalanced_train_segments_training_set_audio_formatted_and_segmented_downloads"
DIR_TEST = "unbalanced_train_segments_testing_set_audio_formatted_and_segmented_downloads"
DIR_EVAL = "evaluation_set_formatted_audio_segments"
LABEL_FILES = (("groundtruth_weak_label_training_set.csv", DIR_TRAIN),
               ("groundtruth_weak_label_testing_set.csv", DIR_TEST),
               ("groundtruth_weak_label_evaluation_set.csv", DIR_EVAL))
COLUMNS = ("file", "start", "end", "label")
OPTIONS = {"validation_fraction": 0.1, "seed": 123}

_GT_URL = ("https://raw.githubusercontent.com/ankitshah009/"
           "Task-4-Large-scale-weakly-supervised-sound-event-detection-for-smart-cars/"
           "96dc262e3869580c0ff4c4de622995a8e3573ad9/groundtruth_release/")
_DRIVE = "https://drive.usercontent.google.com/download?id={}&confirm=t"


def _read_labels(path) -> list[tuple[str, str, str]]:
    """(file, label, "path:line") per row, in file order."""
    out = []
    for ln in read_table(path, header=False, names=COLUMNS, dataset=NAME):
        f, label = ln.values["file"].strip(), ln.values["label"].strip()
        if not f or not label:
            raise ln.error("malformed line: empty file name or label")
        if label not in CLASSES:
            raise ln.error(f"label {label!r} is not one of the 17 DCASE 2017 Task 4 classes")
        out.append((f, label, ln.where))
    if not out:
        raise ManifestError(f"{path}: no label rows")
    return out


def validation_files(rows: list[tuple[str, str]], fraction: float, seed: int) -> set[str]:
    """The original's per-class row sampling: files drawn under any class (pandas sample, random_state=seed)."""
    df = pd.DataFrame(rows, columns=["file", "label"])
    val: set[str] = set()
    for c in CLASSES:
        df_class = df[df["label"] == c]
        val.update(df_class.sample(frac=fraction, random_state=seed)["file"].tolist())
    return val


def parse(root, allow_missing_audio: bool = False, **options) -> Manifest:
    opts = option(options, OPTIONS, NAME)
    fraction = float(opts["validation_fraction"])
    if not 0.0 <= fraction < 1.0:
        raise ManifestError(f"{NAME}: validation_fraction must be in [0, 1), got {fraction}")
    seed = int(opts["seed"])
    root = Path(root).absolute()  # manifest paths are absolute
    if not root.is_dir():
        raise ManifestError(f"{NAME}: dataset root {root} is not a directory")

    dirs = find_dirs(root, [d for _, d in LABEL_FILES], NAME)
    files = find_files(root, [f for f, _ in LABEL_FILES], NAME, skip_dirs=dirs)
    for fname, _ in LABEL_FILES:
        if files[fname] is None:
            raise ManifestError(f"{NAME}: label file {fname} not found below {root}")

    per_set = {fname: _read_labels(files[fname]) for fname, _ in LABEL_FILES}
    dev_rows = per_set[LABEL_FILES[0][0]] + per_set[LABEL_FILES[1][0]]
    val = validation_files([(f, lab) for f, lab, _ in dev_rows], fraction, seed) if fraction > 0 else set()

    clips: dict[str, dict] = {}
    for fname, audio_dir_name in LABEL_FILES:
        audio_dir = dirs[audio_dir_name] or (root / audio_dir_name)
        is_eval = audio_dir_name == DIR_EVAL
        for f, label, where in per_set[fname]:
            clip = clips.get(f)
            if clip is None:
                split = "test" if is_eval else ("validation" if f in val else "train")
                clip_id = f[:-4] if f.lower().endswith(".wav") else f
                clip = clips[f] = {"clip_id": clip_id, "path": str(audio_dir / ("Y" + f)), "split": split,
                                   "labels": set(), "listed_at": where, "_set": fname}
            elif clip["_set"] != fname:
                raise ManifestError(f"{where}: clip {f} is also listed in {clip['_set']} ({clip['listed_at']})")
            clip["labels"].add(label)

    rows = []
    for clip in clips.values():
        labels = clip.pop("labels")
        clip["labels"] = join_labels(c for c in CLASSES if c in labels)
        clip.pop("_set")
        rows.append(clip)
    resolve_audio(rows, dataset=NAME, allow_missing_audio=allow_missing_audio)
    return build(rows, list(CLASSES), source=str(root))


DATASET = DatasetInfo(
    name=NAME,
    title="DCASE 2017 Task 4 (weakly labelled sound events for smart cars)",
    task="multilabel",
    sample_rate=44100,
    channels=1,
    clip_seconds=10.0,
    official=Release(
        files=(
            RemoteFile("Task_4_DCASE_2017_training_set.zip", _DRIVE.format("1HOQaUHbTgCRsS6Sr9I9uE6uCjiNPC3d3")),
            RemoteFile("Task_4_DCASE_2017_testing_set.zip", _DRIVE.format("1GfP5JATSmCqD8p3CBIkk1J90mfJuPI-k")),
            RemoteFile("DCASE_2017_evaluation_set_audio_files.zip",
                       "https://dl.dropboxusercontent.com/s/bbgqfd47cudwe9y/DCASE_2017_evaluation_set_audio_files.zip",
                       md5="676b0b4a956db2445b16d7b13522808b", size=863120639),
            RemoteFile("groundtruth_weak_label_training_set.csv", _GT_URL + "groundtruth_weak_label_training_set.csv",
                       md5="1a98a76221fa5b5a85aaee9dbf02a2bf", size=2942866),
            RemoteFile("groundtruth_weak_label_testing_set.csv", _GT_URL + "groundtruth_weak_label_testing_set.csv",
                       md5="b742b4d6517c82595e09a65d470ff811", size=34199),
            # md5/size measured on the file at the pinned commit (dcase_util lists none for it)
            RemoteFile("groundtruth_weak_label_evaluation_set.csv",
                       _GT_URL + "groundtruth_weak_label_evaluation_set.csv",
                       md5="01b503f8915fdcbc73da46950e35b74e", size=75925),
        ),
        unpack=(
            Unpack(("Task_4_DCASE_2017_training_set.zip",), "zip", password="DCASE_2017_training_set"),
            Unpack(("Task_4_DCASE_2017_testing_set.zip",), "zip", password="DCASE_2017_testing_set"),
            Unpack(("DCASE_2017_evaluation_set_audio_files.zip",), "zip", password="DCASE_2017_evaluation_set"),
            Unpack(("groundtruth_weak_label_training_set.csv",), "file"),
            Unpack(("groundtruth_weak_label_testing_set.csv",), "file"),
            Unpack(("groundtruth_weak_label_evaluation_set.csv",), "file"),
        ),
        note="The training and testing zips are on Google Drive (no published checksum); Drive may answer with an "
             "HTML page instead of the file.",
    ),
    parse=parse,
    classes=CLASSES,
    options=dict(OPTIONS),
)
