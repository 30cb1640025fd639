"""audiofolder: one's own recordings, in one of two layouts (source `local` only).

Configured under any dataset name with `type: audiofolder` (see README "Your own recordings"):

    datasets:
      my_words:
        type: audiofolder
        source: local
        root: /data/my_words
        clip_seconds: 1.0          # the length features pad or crop to (own data has no nominal length)
        classes: [yes, no, maybe]  # optional: pin the class order (default: sorted from the data)
        parse: {group_pattern: "^([a-z]+)_", fractions: {train: 0.8, validation: 0.1, test: 0.1}}

Layouts (parse option `layout`, default auto: `metadata` when the metadata file exists, else `folders`):
  folders    root/<class>/**/<file>.<ext>: one label per clip, the folder's name (single-label)
  metadata   a csv (`,`, double quotes honoured) or tsv file (default root/metadata.csv or metadata.tsv) with a
             header: `path` (relative to the metadata file's folder, or absolute), `labels` (several joined by
             `label_sep`), optionally `split` (train | validation | test), a group column, and for sound event
             detection `onset`, `offset`, `event_label` (DCASE style: one row per event, several rows per file; a
             file without events has one row with these three empty). Column names are options.

Splits (option `splits`, default auto: the `split` column when present, else list files when `lists` is given,
else by fraction):
  column     the metadata's split column
  lists      `lists: {validation: FILE, test: FILE}`: files of paths relative to root, one per line (the Speech
             Commands convention); every other clip is train
  fraction   `fractions` (default 0.8 / 0.1 / 0.1), seeded (`seed`), stratified by class and grouped: a group
             (the `group` column, or the first capture group of `group_pattern` matched against the file name
             without its extension) is never on two sides (soundbench.datasets.splits)

Task (option `task`, default auto): events -> sed; a clip with several labels -> multilabel; else multiclass.
A set task is checked against the data (multiclass with two labels on a line is an error naming the line).
Audio: any format, rate and channel count the decoders read (soundfile, then ffmpeg); the feature spec
resamples and maps channels. Every metadata error names the file and line.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from soundbench.datasets.base import DatasetInfo, Release
from soundbench.datasets.common import Line, option, parse_float, read_lines, read_table, resolve_audio
from soundbench.manifest import LABEL_SEP, SPLITS, Manifest, ManifestError, build, events_to_json

NAME = "audiofolder"
TASKS = ("multiclass", "multilabel", "sed")
EXTENSIONS = [".wav", ".flac", ".mp3", ".ogg", ".opus", ".aiff", ".aif", ".m4a"]
DEFAULT_FRACTIONS = {"train": 0.8, "validation": 0.1, "test": 0.1}
METADATA_NAMES = ("metadata.csv", "metadata.tsv")
OPTIONS = {
    "layout": "auto",  # auto | folders | metadata
    "metadata": None,  # the metadata file, relative to root (default: metadata.csv or metadata.tsv in root)
    "sep": None,  # the metadata's column separator (default: tab for .tsv, comma otherwise)
    "path_column": "path",
    "label_column": "labels",
    "label_sep": ";",  # between several labels of one clip
    "split_column": "split",
    "group_column": "group",  # used when the metadata has it
    "group_pattern": None,  # regex; its first group, searched in the file name without extension, is the group
    "onset_column": "onset",
    "offset_column": "offset",
    "event_column": "event_label",
    "splits": "auto",  # auto | column | lists | fraction
    "lists": None,  # {validation: FILE, test: FILE}, relative to root
    "fractions": None,  # {train: f, validation: f, test: f}; None: DEFAULT_FRACTIONS
    "seed": 0,  # of the fraction split
    "task": "auto",  # auto | multiclass | multilabel | sed
    "extensions": list(EXTENSIONS),  # audio files of the folders layout (case-insensitive)
}


def _options(options: dict) -> dict:
    opts = option(options, OPTIONS, NAME)
    for key, allowed in (("layout", ("auto", "folders", "metadata")), ("splits", ("auto", "column", "lists",
                                                                                 "fraction")),
                         ("task", ("auto",) + TASKS)):
        if opts[key] not in allowed:
            raise ManifestError(f"{NAME}: parse option {key} must be one of {', '.join(allowed)}, got {opts[key]!r}")
    if opts["group_pattern"] is not None:
        try:
            pattern = re.compile(opts["group_pattern"])
        except re.error as e:
            raise ManifestError(f"{NAME}: parse option group_pattern {opts['group_pattern']!r}: {e}") from None
        if pattern.groups < 1:
            raise ManifestError(f"{NAME}: parse option group_pattern needs a capture group, e.g. '^([a-z]+)_'")
        opts["group_pattern"] = pattern
    if not opts["label_sep"]:
        raise ManifestError(f"{NAME}: parse option label_sep must not be empty")
    return opts


def _metadata_path(root: Path, opts: dict) -> Path | None:
    if opts["metadata"]:
        path = Path(opts["metadata"])
        path = path if path.is_absolute() else root / path
        if not path.is_file():
            raise ManifestError(f"{NAME}: parse option metadata: {path} is not a file")
        return path
    for name in METADATA_NAMES:
        if (root / name).is_file():
            return root / name
    return None


def _layout(root: Path, opts: dict) -> tuple[str, Path | None]:
    root = Path(root).absolute()
    if not root.is_dir():
        raise ManifestError(f"{NAME}: dataset root {root} is not a directory")
    meta = _metadata_path(root, opts) if opts["layout"] != "folders" else None
    if opts["layout"] == "metadata" and meta is None:
        raise ManifestError(f"{NAME}: layout metadata but neither {' nor '.join(METADATA_NAMES)} is in {root} "
                            "(or set parse option metadata)")
    return ("metadata", meta) if meta is not None else ("folders", None)


# --------------------------------------------------------------------------------------------- reading layouts
def _group_of(path: str, opts: dict, where: str) -> str:
    pattern = opts["group_pattern"]
    if pattern is None:
        return ""
    stem = Path(path).name.rsplit(".", 1)[0]
    m = pattern.search(stem)
    if m is None or not m.group(1):
        raise ManifestError(f"{where}: group_pattern {pattern.pattern!r} does not match the file name {stem!r}")
    return m.group(1)


def _read_folders(root: Path, opts: dict) -> list[dict]:
    exts = tuple(e.lower() for e in opts["extensions"])
    rows = []
    with os.scandir(root) as it:
        classes = sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))
    for label in classes:
        if LABEL_SEP in label:
            raise ManifestError(f"{NAME}: class folder {root / label}: a class name cannot contain {LABEL_SEP!r}")
        for dirpath, dirnames, filenames in os.walk(root / label):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for f in sorted(filenames):
                if f.startswith(".") or not f.lower().endswith(exts):
                    continue
                path = Path(dirpath) / f
                rel = path.relative_to(root).as_posix()
                rows.append({"clip_id": rel.rsplit(".", 1)[0], "path": str(path), "labels": label, "events": [],
                             "group": _group_of(rel, opts, str(path)), "listed_at": None, "rel": rel})
    if not rows:
        raise ManifestError(f"{NAME}: no audio files ({', '.join(exts)}) in class folders under {root}")
    return rows


def _cell(line: Line, column: str | None) -> str:
    return line.values.get(column, "").strip() if column else ""


def _read_metadata(path: Path, opts: dict) -> tuple[list[dict], bool]:
    """Rows (one per clip, events gathered) and whether the table has a split column."""
    sep = opts["sep"] or ("\t" if path.suffix.lower() == ".tsv" else ",")
    lines = read_table(path, header=True, required=(opts["path_column"],), sep=sep, quoted=sep != "\t",
                       dataset=NAME)
    columns = set(lines[0].values) if lines else set()
    has = {k: opts[f"{k}_column"] in columns for k in ("label", "split", "group", "onset", "offset", "event")}
    sed_columns = [has["onset"], has["offset"], has["event"]]
    if any(sed_columns) and not all(sed_columns):
        raise ManifestError(f"{path}: events need all three columns {opts['onset_column']}, {opts['offset_column']}"
                            f", {opts['event_column']}")
    if not has["label"] and not all(sed_columns):
        raise ManifestError(f"{path}: no {opts['label_column']!r} column (nor event columns); header has "
                            f"{sorted(columns)}")
    base = path.parent
    rows: dict[str, dict] = {}
    for ln in lines:
        rel = _cell(ln, opts["path_column"]).replace("\\", "/")
        if not rel:
            raise ln.error(f"empty {opts['path_column']!r}")
        full = Path(rel) if Path(rel).is_absolute() else base / rel
        labels = [lab.strip() for lab in _cell(ln, opts["label_column"] if has["label"] else None)
                  .split(opts["label_sep"]) if lab.strip()]
        for lab in labels:
            if LABEL_SEP in lab:
                raise ln.error(f"label {lab!r} contains {LABEL_SEP!r}: set parse option label_sep to the separator "
                               "of several labels")
        split = _cell(ln, opts["split_column"] if has["split"] else None)
        if has["split"] and split not in SPLITS:
            raise ln.error(f"split {split!r} is not one of {', '.join(SPLITS)}")
        group = _cell(ln, opts["group_column"] if has["group"] else None) or _group_of(rel, opts, ln.where)
        event = None
        if all(sed_columns):
            on, off, lab = (_cell(ln, opts[f"{k}_column"]) for k in ("onset", "offset", "event"))
            if on or off or lab:
                if not (on and off and lab):
                    raise ln.error(f"an event needs {opts['onset_column']}, {opts['offset_column']} and "
                                   f"{opts['event_column']} (or all three empty for a file without events)")
                onset, offset = parse_float(ln, opts["onset_column"]), parse_float(ln, opts["offset_column"])
                if onset < 0 or offset <= onset:
                    raise ln.error(f"event {lab!r} from {onset} to {offset}: need 0 <= onset < offset")
                if LABEL_SEP in lab:
                    raise ln.error(f"event label {lab!r} contains {LABEL_SEP!r}")
                event = (onset, offset, lab)
        clip_id = rel.rsplit(".", 1)[0] if not Path(rel).is_absolute() else full.as_posix().rsplit(".", 1)[0]
        row = rows.get(rel)
        if row is None:
            rows[rel] = {"clip_id": clip_id, "path": str(full.absolute()), "labels": labels, "split": split,
                         "group": group, "events": [event] if event else [], "listed_at": ln.where,
                         "rel": rel, "has_event_row": event is not None}
            continue
        # a file listed again: only as another event of the same clip
        if event is None or not row["has_event_row"]:
            raise ln.error(f"{rel} is already listed at {row['listed_at']} (one row per file, or one row per "
                           "event with onset, offset, event_label)")
        for key, value in (("split", split), ("group", group)):
            if value != row[key]:
                raise ln.error(f"{key} {value!r} of {rel} differs from {row[key]!r} at {row['listed_at']}")
        row["events"].append(event)
        row["labels"] += [lab for lab in labels if lab not in row["labels"]]
    out = list(rows.values())
    for row in out:
        row.pop("has_event_row")
        for _, _, lab in row["events"]:  # a clip's tags include its event labels
            if lab not in row["labels"]:
                row["labels"].append(lab)
        row["labels"] = list(dict.fromkeys(row["labels"]))
    return out, has["split"]


def _read(root, opts: dict) -> tuple[Path, list[dict], bool, str]:
    layout, meta = _layout(root, opts)
    root = Path(root).absolute()
    if layout == "folders":
        rows = _read_folders(root, opts)
        for r in rows:
            r["labels"] = [r["labels"]]
        return root, rows, False, f"{root} (class folders)"
    rows, has_split = _read_metadata(meta, opts)
    return root, rows, has_split, str(meta)


def _task(rows: list[dict], wanted: str, source: str) -> str:
    inferred = ("sed" if any(r["events"] for r in rows)
                else "multilabel" if any(len(r["labels"]) > 1 for r in rows) else "multiclass")
    if wanted == "auto":
        wanted = inferred
    if wanted == "multiclass":
        bad = next((r for r in rows if len(r["labels"]) != 1), None)
        if bad is not None:
            raise ManifestError(f"{bad['listed_at'] or bad['path']}: task multiclass needs exactly one label per "
                                f"clip, {bad['rel']} has {len(bad['labels'])}")
    if wanted != "sed" and inferred == "sed":
        raise ManifestError(f"{source}: the metadata has events; task {wanted} would ignore them (drop the event "
                            "columns or set task: sed)")
    return wanted


def infer_task(root, **options) -> str:
    """The task of an audiofolder dataset from its metadata alone (no audio is read): the workflow needs it to
    plan the jobs before the manifest exists."""
    opts = _options(options)
    _, rows, _, source = _read(root, opts)
    return _task(rows, opts["task"], source)


# --------------------------------------------------------------------------------------------- splits
def _lists(root: Path, lists, rows: list[dict]) -> None:
    if not isinstance(lists, dict) or not lists or set(lists) - {"validation", "test", "train"}:
        raise ManifestError(f"{NAME}: parse option lists must map validation/test (and optionally train) to list "
                            f"files, got {lists!r}")
    by_rel = {r["rel"]: r for r in rows}
    seen: dict[str, str] = {}
    for split, name in lists.items():
        path = Path(name) if Path(name).is_absolute() else root / name
        for num, text in read_lines(path, NAME):
            rel = text.strip().replace("\\", "/").removeprefix("./")
            where = f"{path}:{num}"
            if rel in seen:
                raise ManifestError(f"{where}: {rel} is already listed at {seen[rel]}")
            seen[rel] = where
            if rel not in by_rel:
                raise ManifestError(f"{where}: {rel} is not a clip of the dataset (paths are relative to {root})")
            by_rel[rel]["split"] = split
    for r in rows:
        if not r.get("split"):
            r["split"] = "train"


def _fraction_split(rows: list[dict], fractions, seed) -> None:
    from soundbench.datasets.splits import grouped_stratified

    fractions = DEFAULT_FRACTIONS if fractions is None else fractions
    if not isinstance(fractions, dict) or set(fractions) - set(SPLITS) or \
            not all(isinstance(v, (int, float)) and v >= 0 for v in fractions.values()):
        raise ManifestError(f"{NAME}: parse option fractions must map train/validation/test to numbers >= 0, got "
                            f"{fractions!r}")
    splits = grouped_stratified([r["group"] for r in rows], [r["labels"] for r in rows], fractions, seed=int(seed))
    for r, s in zip(rows, splits):
        r["split"] = s


def parse(root, allow_missing_audio: bool = False, **options) -> Manifest:
    opts = _options(options)
    root, rows, has_split, source = _read(root, opts)
    _task(rows, opts["task"], source)  # a set task that contradicts the data fails here, naming the line
    mode = opts["splits"]
    if mode == "auto":
        mode = "column" if has_split else "lists" if opts["lists"] else "fraction"
    if mode == "column":
        if not has_split:
            raise ManifestError(f"{source}: splits column, but there is no {opts['split_column']!r} column")
    elif mode == "lists":
        for r in rows:
            r["split"] = ""
        _lists(root, opts["lists"], rows)
    else:
        _fraction_split(rows, opts["fractions"], opts["seed"])
    for r in rows:
        r["labels"] = LABEL_SEP.join(r["labels"])
        r["events"] = events_to_json(r["events"])
        r.pop("rel")
    resolve_audio(rows, dataset=NAME, allow_missing_audio=allow_missing_audio)
    return build(rows, None, source=source)


DATASET = DatasetInfo(
    name=NAME,
    title="Own recordings (class folders or a metadata table)",
    task="multiclass",  # inferred per configured dataset by `infer_task` (soundbench.datasets.task_of)
    sample_rate=0,  # any: read from each file's header
    channels=0,
    clip_seconds=0.0,  # none: the dataset's config must set clip_seconds
    official=Release(files=(), unpack=(), note="audiofolder is your own data: use source: local with root: DIR"),
    parse=parse,
    classes=None,
    options=dict(OPTIONS),
)
