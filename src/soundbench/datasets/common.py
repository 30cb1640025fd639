"""Helpers shared by the dataset parsers.

- `find_root`: accept the extracted dataset directory itself or the single top folder inside it.
- `read_table`: tab-separated metadata (with or without a header) with line numbers, so every error can name
  the file and line at fault; tolerates CRLF line ends, a UTF-8 BOM and a missing final newline.
- `resolve_audio`: the missing-audio rule (ManifestError naming the file and the metadata line that listed it,
  unless allow_missing_audio) and the header read (soundfile.info: duration, channels, sample rate).
- `stable_unit` / `allocate_groups`: deterministic, machine-independent grouped splits.
"""
from __future__ import annotations

import csv
import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import soundfile as sf

from soundbench.manifest import Manifest, ManifestError

NAN = float("nan")
PROGRESS_MIN = 2000  # show a progress bar over header reads from this many files on


# --------------------------------------------------------------------------------------------- locating files
def find_root(root, markers: str | Sequence[str], dataset: str) -> Path:
    """The directory holding `markers` (relative paths, any one suffices): root itself, else the one
    sub-directory of root that holds it (the single top folder of the real archives)."""
    root = Path(root).absolute()  # manifest paths are absolute
    if not root.is_dir():
        raise ManifestError(f"{dataset}: dataset root {root} is not a directory")
    markers = (markers,) if isinstance(markers, str) else tuple(markers)

    def has(d: Path) -> bool:
        return any((d / m).exists() for m in markers)

    if has(root):
        return root
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    hits = [p for p in subdirs if has(p)]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise ManifestError(f"{dataset}: several folders under {root} hold {markers[0]}: "
                            f"{', '.join(p.name for p in hits)}; pass one of them as the dataset root")
    raise ManifestError(f"{dataset}: {' or '.join(markers)} not found in {root} nor in a folder directly below it")


def find_dirs(root, names: Iterable[str], dataset: str) -> dict[str, Path | None]:
    """Directories with the given names anywhere below root (None when absent); the search does not descend
    into a directory once it is found, nor into hidden ones. Two directories of one name -> ManifestError."""
    wanted = set(names)
    found: dict[str, Path | None] = {n: None for n in wanted}
    for dirpath, dirnames, _ in os.walk(root):
        keep = []
        for d in sorted(dirnames):
            if d.startswith("."):
                continue
            if d in wanted:
                p = Path(dirpath) / d
                if found[d] is not None:
                    raise ManifestError(f"{dataset}: two folders named {d}: {found[d]} and {p}")
                found[d] = p
            else:
                keep.append(d)
        dirnames[:] = keep
    return found


def find_files(root, names: Iterable[str], dataset: str, skip_dirs: Iterable[str] = ()) -> dict[str, Path | None]:
    """Files with the given names anywhere below root (None when absent), not looking into skip_dirs.
    The shallowest match wins; two matches at the same depth -> ManifestError."""
    wanted = set(names)
    skip = set(skip_dirs)
    found: dict[str, tuple[int, Path] | None] = {n: None for n in wanted}
    root = Path(root)
    for dirpath, dirnames, filenames in os.walk(root):
        depth = len(Path(dirpath).relative_to(root).parts)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in skip)
        for f in wanted.intersection(filenames):
            p = Path(dirpath) / f
            prev = found[f]
            if prev is None or depth < prev[0]:
                found[f] = (depth, p)
            elif depth == prev[0]:
                raise ManifestError(f"{dataset}: two files named {f}: {prev[1]} and {p}")
    return {n: (v[1] if v else None) for n, v in found.items()}


# --------------------------------------------------------------------------------------------- metadata tables
@dataclass
class Line:
    """One non-empty metadata line: its file, 1-based line number and fields (or named values)."""

    path: Path
    number: int
    fields: list[str]
    values: dict[str, str]

    @property
    def where(self) -> str:
        return f"{self.path}:{self.number}"

    def error(self, message: str) -> ManifestError:
        return ManifestError(f"{self.where}: {message}")


def read_lines(path, dataset: str = "") -> list[tuple[int, str]]:
    """(line number, text) of the non-empty lines; CRLF, BOM and a missing final newline are fine."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ManifestError(f"{dataset + ': ' if dataset else ''}metadata file {path} is missing") from None
    except UnicodeDecodeError as e:
        raise ManifestError(f"{path}: not UTF-8 text ({e})") from None
    out = []
    for i, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r")
        if line.strip():
            out.append((i, line))
    return out


def read_table(path, *, header: bool = True, names: Sequence[str] | None = None, required: Sequence[str] = (),
               optional: Sequence[str] = (), sep: str | None = "\t", quoted: bool = False,
               dataset: str = "") -> list[Line]:
    """Rows of a separated text table with their line numbers.

    header=True: the first non-empty line names the columns and `required` must be among them.
    header=False: `names` name the columns; a row may omit the trailing `optional` ones.
    sep=None splits on tabs when the line has one, else on any whitespace (DCASE .txt fold files).
    quoted=True honours double quotes around fields (csv module rules).
    A row with the wrong number of fields -> ManifestError naming file and line.
    """
    path = Path(path)
    lines = read_lines(path, dataset)

    def split(text: str) -> list[str]:
        if quoted:
            return next(csv.reader([text], delimiter=sep or "\t"))
        if sep is None:
            return text.split("\t") if "\t" in text else text.split()
        return text.split(sep)

    if header:
        if not lines:
            raise ManifestError(f"{path}: empty file, expected a header line")
        hnum, htext = lines[0]
        columns = [c.strip() for c in split(htext)]
        missing = [c for c in required if c not in columns]
        if missing:
            raise ManifestError(f"{path}:{hnum}: missing column(s) {missing} (header has {columns})")
        body = lines[1:]
    else:
        columns = list(names or [])
        body = lines
    n_min = len(columns) - len([c for c in optional if c in columns]) if not header else len(columns)
    rows = []
    for num, text in body:
        fields = split(text)
        if not header and columns and not (n_min <= len(fields) <= len(columns)):
            raise ManifestError(f"{path}:{num}: malformed line, expected {len(columns)} fields "
                                f"({', '.join(columns)}), found {len(fields)}: {text[:120]!r}")
        if header and len(fields) != len(columns):
            raise ManifestError(f"{path}:{num}: malformed line, expected {len(columns)} fields "
                                f"({', '.join(columns)}), found {len(fields)}: {text[:120]!r}")
        values = dict(zip(columns, fields))
        rows.append(Line(path, num, fields, values))
    return rows


def parse_float(line: Line, column: str) -> float:
    text = line.values.get(column, "")
    try:
        value = float(text)
    except ValueError:
        raise line.error(f"column {column!r} is not a number: {text!r}") from None
    if not math.isfinite(value):
        raise line.error(f"column {column!r} is not finite: {text!r}")
    return value


# --------------------------------------------------------------------------------------------- audio
def audio_header(path) -> tuple[float, int, int]:
    """(duration s, channels, sample rate) from the file header; (NaN, 0, 0) when unreadable (the feature
    stage records undecodable clips; an unreadable header is not a metadata error)."""
    # soundfile.SoundFile reads the same header as soundfile.info without info's format-string formatting,
    # which halves the cost per file (105k Speech Commands files: ~5 s instead of ~9 s here)
    try:
        with sf.SoundFile(str(path)) as f:
            frames, sr, channels = f.frames, int(f.samplerate or 0), int(f.channels or 0)
    except Exception:  # noqa: BLE001 - any libsndfile failure means "unreadable header"
        return NAN, 0, 0
    duration = frames / sr if sr > 0 and frames is not None and frames >= 0 else NAN
    return float(duration), channels, sr


def _progress(items, desc: str, enabled: bool):
    if not enabled or len(items) < PROGRESS_MIN:
        return items
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return items
    return tqdm(items, desc=desc, unit="file", mininterval=1.0, leave=False)


def resolve_audio(rows: list[dict], *, dataset: str, allow_missing_audio: bool, read_headers: bool = True,
                  progress: bool = True) -> list[dict]:
    """Apply the missing-audio rule and read the headers, in place.

    Each row has `path` and may have `listed_at` ("file:line" of the metadata that listed it; removed here).
    Absent audio -> ManifestError naming the file and that line, unless allow_missing_audio: then the row is
    kept with available=False, duration NaN, channels/sample_rate 0.
    """
    missing = []
    for row in rows:
        row["available"] = os.path.isfile(row["path"])
        if not row["available"]:
            missing.append(row)
    if missing and not allow_missing_audio:
        first = missing[0]
        where = f" (listed at {first['listed_at']})" if first.get("listed_at") else ""
        more = f"; {len(missing) - 1} more clip(s) have no audio" if len(missing) > 1 else ""
        raise ManifestError(f"{dataset}: audio file {first['path']} is missing{where}{more}. "
                            "Use allow_missing_audio to keep such clips as unavailable.")
    present = [r for r in rows if r["available"]]
    for row in missing:
        row.update(duration=NAN, channels=0, sample_rate=0)
    if read_headers:
        for row in _progress(present, f"{dataset}: audio headers", progress):
            row["duration"], row["channels"], row["sample_rate"] = audio_header(row["path"])
    for row in rows:
        row.pop("listed_at", None)
    return rows


# --------------------------------------------------------------------------------------------- stable splits
def stable_unit(key: str, salt: str = "") -> float:
    """A number in [0, 1) that depends only on key and salt (sha256; same on every machine and run)."""
    h = hashlib.sha256(f"{salt}\x00{key}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2.0 ** 64


def allocate_groups(groups_by_stratum: dict[str, Iterable[str]], fractions: dict[str, float],
                    salt: str = "") -> dict[str, str]:
    """Assign whole groups to splits, stratified: within each stratum the groups are ordered by a stable hash
    and cut into consecutive runs sized by `fractions` (largest remainder). Every split with a positive
    fraction gets at least one group of a stratum when the stratum has enough groups. Returns group -> split."""
    names = [s for s, f in fractions.items() if f > 0]
    total = sum(fractions[s] for s in names)
    if not names or total <= 0:
        raise ManifestError(f"split fractions {fractions} select nothing")
    out: dict[str, str] = {}
    for stratum in sorted(groups_by_stratum):
        order = sorted(set(groups_by_stratum[stratum]), key=lambda g: (stable_unit(g, salt), g))
        n = len(order)
        exact = {s: fractions[s] / total * n for s in names}
        counts = {s: int(math.floor(exact[s])) for s in names}
        for s in sorted(names, key=lambda s: (-(exact[s] - counts[s]), names.index(s)))[:n - sum(counts.values())]:
            counts[s] += 1
        if n >= len(names):
            for s in names:
                if counts[s] == 0:
                    donor = max(names, key=lambda t: (counts[t], -names.index(t)))
                    counts[donor] -= 1
                    counts[s] += 1
        i = 0
        for s in names:
            for g in order[i:i + counts[s]]:
                out[g] = s
            i += counts[s]
    return out


def option(options: dict, defaults: dict, dataset: str) -> dict:
    """Merge parse options over their defaults; an unknown option or a value of another type than its default's
    is an error (a typo must not pass; soundbench/declared_options.py)."""
    from soundbench.declared_options import problems

    found = problems(options, defaults, "parse", f"dataset {dataset}")
    if found:
        raise ManifestError(f"{dataset}: " + "; ".join(found))
    return {**defaults, **options}


# --------------------------------------------------------------------------------------------- acoustic scenes
SCENE_OPTIONS = {"validation": "none", "validation_fraction": 0.1}


def scene_identifier(filename: str) -> str:
    """`audio/<scene>-<city>-<location>-<segment>-<device>.wav` -> `<city>-<location>` (dcase_util's rule)."""
    stem = Path(filename).stem
    return "-".join(stem.split("-")[1:-2])


def parse_scene_folds(root, *, dataset: str, fold_ext: str, fold_header: bool, allow_missing_audio: bool,
                      options: dict) -> Manifest:
    """TUT 2018 / TAU 2019 development sets: meta.csv + evaluation_setup/fold1_{train,evaluate}.<ext>.

    fold1_train -> train, fold1_evaluate -> test (the official "evaluate" fold). validation="none" (faithful:
    the originals select models on the evaluate fold) or "holdout": per scene, validation_fraction of the train
    recording locations (meta.csv `identifier`) move to validation, chosen by a stable hash. group = identifier.
    """
    from soundbench.manifest import build

    opts = option(options, SCENE_OPTIONS, dataset)
    mode = str(opts["validation"])
    if mode not in ("none", "holdout"):
        raise ManifestError(f"{dataset}: option validation must be 'none' or 'holdout', got {mode!r}")
    fraction = float(opts["validation_fraction"])
    if mode == "holdout" and not 0.0 < fraction < 1.0:
        raise ManifestError(f"{dataset}: validation_fraction must be in (0, 1), got {fraction}")

    setup = "evaluation_setup"
    base = find_root(root, f"{setup}/fold1_train.{fold_ext}", dataset)

    meta: dict[str, tuple[str, str, str]] = {}  # filename -> (scene_label, identifier, "path:line")
    meta_path = base / "meta.csv"
    if meta_path.exists():
        for ln in read_table(meta_path, header=True, required=("filename", "scene_label", "identifier"),
                             dataset=dataset):
            f = ln.values["filename"].strip()
            entry = (ln.values["scene_label"].strip(), ln.values["identifier"].strip(), ln.where)
            if not f:
                raise ln.error("empty filename")
            prev = meta.get(f)
            if prev is not None and prev[:2] != entry[:2]:
                raise ln.error(f"{f} is listed again with a different label/identifier (first at {prev[2]})")
            meta.setdefault(f, entry)

    rows: list[dict] = []
    seen: dict[str, str] = {}
    for part, split in (("train", "train"), ("evaluate", "test")):
        path = base / setup / f"fold1_{part}.{fold_ext}"
        if fold_header:
            lines = read_table(path, header=True, required=("filename", "scene_label"), dataset=dataset)
        else:
            lines = read_table(path, header=False, names=("filename", "scene_label"), sep=None, dataset=dataset)
        for ln in lines:
            f, label = ln.values["filename"].strip(), ln.values["scene_label"].strip()
            if not f or not label:
                raise ln.error("malformed line: empty filename or scene_label")
            if f in seen:
                raise ln.error(f"{f} is already listed at {seen[f]}")
            seen[f] = ln.where
            m = meta.get(f)
            if m is not None and m[0] != label:
                raise ln.error(f"scene_label {label!r} contradicts meta.csv ({m[0]!r} at {m[2]})")
            rows.append({"clip_id": Path(f).stem, "path": str(base / f), "split": split, "labels": label,
                         "group": m[1] if m is not None and m[1] else scene_identifier(f), "listed_at": ln.where})

    if mode == "holdout":
        # a location recorded under two scenes belongs to the scene of its first listed clip
        first: dict[str, str] = {}
        for r in rows:
            if r["split"] == "train":
                first.setdefault(r["group"], r["labels"])
        by_stratum: dict[str, list[str]] = {}
        for g, label in first.items():
            by_stratum.setdefault(label, []).append(g)
        assign = allocate_groups(by_stratum, {"train": 1.0 - fraction, "validation": fraction}, salt=dataset)
        for r in rows:
            if r["split"] == "train" and assign.get(r["group"]) == "validation":
                r["split"] = "validation"

    resolve_audio(rows, dataset=dataset, allow_missing_audio=allow_missing_audio)
    return build(rows, None, source=str(base))


def scene_dataset(*, name: str, title: str, top: str, url: str, packages, fold_ext: str, fold_header: bool):
    """The DatasetInfo of a TUT/TAU acoustic scene development set: zips `<top><suffix>` from `url` with their
    published sizes and md5s (packages: (suffix, size, md5)), folds in `evaluation_setup/fold1_*.<fold_ext>`."""
    from soundbench.datasets.base import DatasetInfo, Release, RemoteFile, Unpack

    def parse(root, allow_missing_audio: bool = False, **options):
        return parse_scene_folds(root, dataset=name, fold_ext=fold_ext, fold_header=fold_header,
                                 allow_missing_audio=allow_missing_audio, options=options)

    return DatasetInfo(
        name=name, title=title, task="multiclass", sample_rate=48000, channels=2, clip_seconds=10.0,
        official=Release(files=tuple(RemoteFile(top + s, url + top + s, md5=md5, size=size)
                                     for s, size, md5 in packages),
                         unpack=tuple(Unpack((top + s,), "zip") for s, _, _ in packages)),
        parse=parse, classes=None, options=dict(SCENE_OPTIONS))
