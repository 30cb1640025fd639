"""DCASE 2018 Task 4 (weakly labelled sound event detection in domestic environments), as the cosine-penalty
SED system (topel/ijcnn19_submission `utils/datasetGenerator.py`) uses it.

Layout (root = the dataset directory, or the single folder inside it, e.g. the baseline's `dataset/`):
    metadata/train/weak.csv        TAB, header `filename event_labels` (labels comma-joined)
    metadata/test/test.csv         TAB, header `filename onset offset event_label` (strong labels, one row per
                                   event; a row with empty onset/offset/label is a clip without events)
    metadata/test/files_to_remove.csv   header `filename` (only read with remove_files_to_remove)
    audio/train/weak/Y<ytid>_<start>_<end>.wav, audio/test/Y<...>.wav     10 s, 44.1 kHz (YouTube-derived)

Splits:
- test: every clip of test.csv, with its events (onset, offset, label); labels = the set of its event labels
  (288 clips, 908 events on the real file).
- train/validation: the original's "balanced split" of weak.csv: one bucket per class, in the code's class
  index order, holding the clips of that class in file order (a multi-label clip is in the bucket of each of
  its labels); the first int(len(bucket) * validation_fraction) clips of every bucket (0.2) are validation.
  DEPARTURE: the original keeps the buckets as lists of instances, so a multi-label clip is DUPLICATED and can
  be in train and in validation at once (1,763 train / 438 validation instances from 1,578 clips). A manifest
  has one row per clip, so here a clip is validation if it is in the validation part of ANY of its buckets,
  train otherwise (no leakage, every clip once): split="clean", the default.
  split="original" keeps the original's instances: one row per (clip, label bucket), in the split its bucket
  gives it, so a multi-label clip appears once per label, possibly in train and validation at once (1,802 train /
  445 validation rows from the real weak.csv, 149 clips on both sides; the notebook printed 1,763 / 438, the
  instances whose feature files it had). A clip's first instance (its first label in the code's class order)
  keeps the clip id; the others are `<clip id>@<label>` (`@<label>@2` for a label listed twice on one line, which
  the original buckets twice); same audio file, same labels; `group` is the clip id of every instance. (The
  original also shuffles the instances unseeded; the training loop shuffles anyway.)
- remove_files_to_remove (False): drop the clips of metadata/test/files_to_remove.csv from the test split. The
  6 July 2018 test.csv already excludes them, so on the real files this changes nothing.
clip_id = the file name without extension. Unlabelled in/out-of-domain subsets are not used (as the original).
"""
from __future__ import annotations

from soundbench.datasets.base import DatasetInfo, Release, RemoteFile, Unpack
from soundbench.datasets.common import find_root, option, parse_float, read_table, resolve_audio
from soundbench.manifest import Manifest, ManifestError, build, events_to_json, join_labels

NAME = "dcase2018_task4"
# the original code's class index order (DCASE2018.class_correspondance)
CLASSES = ("Alarm_bell_ringing", "Speech", "Dog", "Cat", "Vacuum_cleaner", "Dishes", "Frying",
           "Electric_shaver_toothbrush", "Blender", "Running_water")
OPTIONS = {"validation_fraction": 0.2, "remove_files_to_remove": False, "split": "clean"}
WEAK = "metadata/train/weak.csv"
TEST = "metadata/test/test.csv"
REMOVE = "metadata/test/files_to_remove.csv"

_META_URL = ("https://raw.githubusercontent.com/DCASE-REPO/dcase2018_baseline/"
             "5c5a0f6aff27280c0b86d73d90a84bacf51adb24/task4/dataset/metadata/")
# (name, sub-folder, bytes, md5): md5/size measured on the files at the pinned commit (none are published)
_META_FILES = (
    ("weak.csv", "train", 72813, "e67c0829f5cf578545cca6eb44687f4e"),
    ("unlabel_in_domain.csv", "train", 455056, "dcbbd3aeb815d043ecb1ac9a465fb3b1"),
    ("unlabel_out_of_domain.csv", "train", 1252824, "acd08c63d9ac9ed8d438f6aa71479c3d"),
    ("test.csv", "test", 48327, "88765586917b71a27c83245fb8dd9dfc"),
    ("files_to_remove.csv", "test", 1431, "a38f8c0b5df6d86720de5a199633dba0"),
    ("eval.csv", "eval", 173641, "10ebcd24851d3a92fd7a28bccbb27410"),
)


def _stem(filename: str) -> str:
    return filename.rsplit(".", 1)[0] if "." in filename else filename


def _label(ln, text: str) -> str:
    label = text.strip()
    if label not in CLASSES:
        raise ln.error(f"label {label!r} is not one of the 10 DCASE 2018 Task 4 classes")
    return label


def balanced_instances(clips: list[tuple[str, list[str]]], fraction: float) -> list[tuple[str, str, int, str]]:
    """The original's balanced split: (file name, bucket label, repeat, split) for every instance, bucket by bucket.

    One bucket per class in the code's class order, holding the clips of that class in file order (a label listed
    twice on one line puts the clip twice in its bucket, `repeat` 0 and 1, as the original); the first
    int(len(bucket) * fraction) instances of a bucket are validation."""
    buckets: dict[str, list[str]] = {c: [] for c in CLASSES}
    for f, labels in clips:
        for lab in labels:
            buckets[lab].append(f)
    out = []
    for c in CLASSES:
        cut, seen = int(len(buckets[c]) * fraction), {}
        for i, f in enumerate(buckets[c]):
            seen[f] = seen.get(f, -1) + 1
            out.append((f, c, seen[f], "validation" if i < cut else "train"))
    return out


def balanced_split(clips: list[tuple[str, list[str]]], fraction: float) -> set[str]:
    """File names in the validation part of any class bucket (see the module docstring)."""
    return {f for f, _, _, split in balanced_instances(clips, fraction) if split == "validation"}


def parse(root, allow_missing_audio: bool = False, **options) -> Manifest:
    opts = option(options, OPTIONS, NAME)
    fraction = float(opts["validation_fraction"])
    if not 0.0 <= fraction < 1.0:
        raise ManifestError(f"{NAME}: validation_fraction must be in [0, 1), got {fraction}")
    if opts["split"] not in ("clean", "original"):
        raise ManifestError(f"{NAME}: split must be clean (every clip once) or original (the balanced split's "
                            f"duplicated instances), got {opts['split']!r}")
    base = find_root(root, (WEAK, TEST), NAME)

    # weak -> train / validation
    weak_path = base / WEAK
    weak: list[tuple[str, list[str], str]] = []
    raw_labels: dict[str, list[str]] = {}  # as listed, repeats included (the original buckets every one)
    seen: dict[str, str] = {}
    for ln in read_table(weak_path, header=True, required=("filename", "event_labels"), dataset=NAME):
        f = ln.values["filename"].strip()
        if not f:
            raise ln.error("empty filename")
        if f in seen:
            raise ln.error(f"{f} is already listed at {seen[f]}")
        seen[f] = ln.where
        labels = [_label(ln, x) for x in ln.values["event_labels"].split(",") if x.strip()]
        if not labels:
            raise ln.error("no event_labels for a weakly labelled clip")
        weak.append((f, list(dict.fromkeys(labels)), ln.where))
        raw_labels[f] = labels
    rows = []
    if opts["split"] == "clean":
        val = balanced_split([(f, labs) for f, labs, _ in weak], fraction)
        for f, labels, where in weak:
            rows.append({"clip_id": _stem(f), "path": str(base / "audio" / "train" / "weak" / f),
                         "split": "validation" if f in val else "train",
                         "labels": join_labels(c for c in CLASSES if c in labels), "listed_at": where})
    else:
        per_file: dict[str, list] = {}
        for f, label, repeat, split in balanced_instances([(f, raw_labels[f]) for f, _, _ in weak], fraction):
            per_file.setdefault(f, []).append((CLASSES.index(label), repeat, label, split))
        for f, labels, where in weak:
            ordered = join_labels(c for c in CLASSES if c in labels)
            for k, (_, repeat, label, split) in enumerate(sorted(per_file[f])):
                clip_id = _stem(f) if k == 0 else f"{_stem(f)}@{label}" + (f"@{repeat + 1}" if repeat else "")
                rows.append({"clip_id": clip_id, "path": str(base / "audio" / "train" / "weak" / f), "split": split,
                             "labels": ordered, "group": _stem(f), "listed_at": where})

    # test.csv strong labels -> test
    test_path = base / TEST
    events: dict[str, list[tuple[float, float, str]]] = {}
    listed: dict[str, str] = {}
    for ln in read_table(test_path, header=True, required=("filename", "onset", "offset", "event_label"),
                         dataset=NAME):
        f = ln.values["filename"].strip()
        if not f:
            raise ln.error("empty filename")
        listed.setdefault(f, ln.where)
        evs = events.setdefault(f, [])
        on, off, lab = (ln.values[k].strip() for k in ("onset", "offset", "event_label"))
        if not on and not off and not lab:
            continue  # a clip without events
        onset, offset = parse_float(ln, "onset"), parse_float(ln, "offset")
        if offset < onset:
            raise ln.error(f"offset {offset} is before onset {onset}")
        evs.append((onset, offset, _label(ln, lab)))
    if opts["remove_files_to_remove"]:
        remove_path = base / REMOVE
        for ln in read_table(remove_path, header=True, required=("filename",), dataset=NAME):
            f = ln.values["filename"].strip()
            events.pop(f, None)
            listed.pop(f, None)
    for f, evs in events.items():
        if f in seen:
            raise ManifestError(f"{listed[f]}: test clip {f} is also a weak training clip ({seen[f]})")
        labels = {lab for _, _, lab in evs}
        rows.append({"clip_id": _stem(f), "path": str(base / "audio" / "test" / f), "split": "test",
                     "labels": join_labels(c for c in CLASSES if c in labels), "events": events_to_json(evs),
                     "listed_at": listed[f]})

    resolve_audio(rows, dataset=NAME, allow_missing_audio=allow_missing_audio)
    return build(rows, list(CLASSES), source=str(base))


DATASET = DatasetInfo(
    name=NAME,
    title="DCASE 2018 Task 4 (weakly labelled SED in domestic environments)",
    task="sed",
    sample_rate=44100,
    channels=1,
    clip_seconds=10.0,
    official=Release(
        files=tuple(RemoteFile(name, f"{_META_URL}{sub}/{name}", md5=md5, size=size)
                    for name, sub, size, md5 in _META_FILES),
        unpack=tuple(Unpack((name,), "file", dest=f"metadata/{sub}") for name, sub, _, _ in _META_FILES),
        note="Only the metadata can be downloaded: the audio is cut from YouTube videos (DCASE-REPO/"
             "dcase2018_baseline task4/dataset/download_data.py; many are gone). Bring your copy as a `local` "
             "source laid out as audio/train/weak/*.wav and audio/test/*.wav beside metadata/.",
    ),
    parse=parse,
    classes=CLASSES,
    options=dict(OPTIONS),
)
