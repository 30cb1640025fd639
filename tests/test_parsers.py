"""Dataset parsers: real metadata counts (../shared/data) and small synthetic trees in every real layout."""
from __future__ import annotations

import ast
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from soundbench.datasets import NAMES, get
from soundbench.datasets.common import allocate_groups, read_table, stable_unit
from soundbench.manifest import ManifestError, events_from_json, split_labels
from soundbench.tasks import TASKS


def wav(path: Path, seconds: float = 0.1, sr: int = 16000, channels: int = 1, subtype: str = "PCM_16",
        fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (int(seconds * sr), channels) if channels > 1 else (int(seconds * sr),)
    sf.write(str(path), np.zeros(shape, dtype=np.float32), sr, subtype=subtype, format=fmt)
    return path


def text(path: Path, content: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    return path


def split_counts(m) -> dict[str, int]:
    return m.table["split"].value_counts().to_dict()


# ============================================================================================ registry
@pytest.mark.parametrize("name", NAMES)
def test_dataset_info_is_complete(name):
    d = get(name)
    assert d.name == name and d.task in TASKS and callable(d.parse)
    assert d.sample_rate > 0 and d.channels > 0 and d.clip_seconds > 0
    names = [f.name for f in d.official.files]
    assert len(names) == len(set(names))
    for u in d.official.unpack:
        assert set(u.parts) <= set(names) and u.kind in ("zip", "tar", "file")
    for f in d.official.files:
        assert f.url.startswith(("http://", "https://"))
        assert f.md5 is None or re.fullmatch(r"[0-9a-f]{32}", f.md5)
    if d.classes is not None:
        assert len(d.classes) == len(set(d.classes))
    with pytest.raises(ManifestError, match=r"parse\.no_such_option: unknown option of dataset"):
        d.parse("/nonexistent", no_such_option=1)


def test_release_file_lists():
    tut, tau = get("dcase2018_task1a").official, get("dcase2019_task1a").official
    assert len(tut.files) == 15 and sum(".audio." in f.name for f in tut.files) == 13
    assert len(tau.files) == 23 and sum(".audio." in f.name for f in tau.files) == 21
    assert all(f.md5 and f.size for f in tut.files + tau.files)
    assert get("acivw").official.files == () and "request" in get("acivw").official.note
    assert "local" in get("dcase2018_task4").official.note
    mtt = get("mtt").official
    zips = [u for u in mtt.unpack if u.kind == "zip"]
    assert zips[0].parts == ("mp3.zip.001", "mp3.zip.002", "mp3.zip.003") and zips[0].dest == "mp3"
    d17 = {f.name: f for f in get("dcase2017_task4").official.files}
    assert d17["DCASE_2017_evaluation_set_audio_files.zip"].md5 == "676b0b4a956db2445b16d7b13522808b"
    assert "drive.usercontent.google.com" in d17["Task_4_DCASE_2017_training_set.zip"].url
    assert {u.password for u in get("dcase2017_task4").official.unpack if u.kind == "zip"} == {
        "DCASE_2017_training_set", "DCASE_2017_testing_set", "DCASE_2017_evaluation_set"}
    assert get("dcase2017_task4").classes[:2] == ("Train horn", "Air horn, truck horn")
    assert get("dcase2018_task4").classes[:3] == ("Alarm_bell_ringing", "Speech", "Dog")


# ============================================================================================ common helpers
def test_read_table_reports_file_and_line(tmp_path):
    p = text(tmp_path / "t.csv", "a\tb\r\n1\t2\r\n\r\n3\n")
    with pytest.raises(ManifestError, match=r"t\.csv:4: malformed line"):
        read_table(p, header=True)
    with pytest.raises(ManifestError, match=r"t\.csv:1: missing column"):
        read_table(p, header=True, required=("c",))
    rows = read_table(text(tmp_path / "u.csv", "\ufeffa\tb\n1\t2"), header=True, required=("a",))
    assert rows[0].values == {"a": "1", "b": "2"} and rows[0].number == 2


def test_allocate_groups_is_stable_and_covers_splits():
    groups = {"x": [f"g{i}" for i in range(10)], "y": ["h0", "h1", "h2"]}
    a = allocate_groups(groups, {"train": 0.7, "validation": 0.15, "test": 0.15}, salt="s")
    assert a == allocate_groups(groups, {"train": 0.7, "validation": 0.15, "test": 0.15}, salt="s")
    for stratum in groups.values():
        assert {a[g] for g in stratum} == {"train", "validation", "test"}
    assert sum(a[g] == "train" for g in groups["x"]) == 7
    assert 0 <= stable_unit("k") < 1 and stable_unit("k") == stable_unit("k") != stable_unit("k", "salt")


# ============================================================================================ MTT
MTT_TAGS = ["guitar", "classical", "slow", "no voice"]


def _mtt_tree(tmp_path, quoted=True, rows=None):
    root = tmp_path / "mtt"
    rows = rows or [  # clip_id, folder, tags
        ("2", "0", ["guitar", "slow"]),
        ("6", "b", ["guitar"]),
        ("10", "c", ["classical", "guitar"]),
        ("11", "d", ["slow", "classical"]),
        ("12", "f", ["no voice"]),  # only the rarest tag: dropped with top_tags=3
        ("13", "e", []),  # no tag at all: dropped
    ]
    q = (lambda s: f'"{s}"') if quoted else (lambda s: s)
    lines = ["\t".join(q(c) for c in ["clip_id", *MTT_TAGS, "mp3_path"])]
    for cid, folder, tags in rows:
        mp3 = f"{folder}/artist-album-01-track_{cid}-0-29.mp3"
        lines.append("\t".join([q(cid), *(q(str(int(t in tags))) for t in MTT_TAGS), q(mp3)]))
        wav(root / "mp3" / mp3, seconds=1.0, sr=16000, fmt="MP3", subtype="MPEG_LAYER_III")
    text(root / "annotations_final.csv", "\n".join(lines) + "\n")
    return root


@pytest.mark.parametrize("quoted", [True, False])
def test_mtt_synthetic(tmp_path, quoted):
    root = _mtt_tree(tmp_path, quoted)
    m = get("mtt").parse(root, top_tags=3)
    assert m.classes == ["classical", "slow", "guitar"]  # ascending by count, as the original's tail(N)
    t = m.table.set_index("clip_id")
    assert list(t.index) == ["2", "6", "10", "11"]
    assert t["split"].to_dict() == {"2": "train", "6": "train", "10": "validation", "11": "test"}
    assert split_labels(t.loc["10", "labels"]) == ["classical", "guitar"]
    assert t["available"].all() and (t["sample_rate"] == 16000).all() and (t["channels"] == 1).all()
    assert t["duration"].between(0.9, 1.2).all()
    assert split_labels(t.loc["11", "labels"]) == ["classical", "slow"]
    assert len(get("mtt").parse(root, top_tags=4).table) == 5  # clip 12 kept, 13 (no tag) still dropped


def test_mtt_errors(tmp_path):
    root = _mtt_tree(tmp_path)
    with pytest.raises(ManifestError, match="fewer than top_tags"):
        get("mtt").parse(root, top_tags=5)
    mp3 = next((root / "mp3" / "c").glob("*.mp3"))
    mp3.unlink()
    missing = rf"{re.escape(str(mp3))} is missing \(listed at .*annotations_final\.csv:4\)"
    with pytest.raises(ManifestError, match=missing):
        get("mtt").parse(root, top_tags=3)
    m = get("mtt").parse(root, allow_missing_audio=True, top_tags=3)
    row = m.table.set_index("clip_id").loc["10"]
    assert not row["available"] and math.isnan(row["duration"]) and row["sample_rate"] == 0
    assert m.counts() == {"train": 2, "validation": 1, "test": 1, "missing": 1}

    ann = root / "annotations_final.csv"
    good = ann.read_text()
    ann.write_text(good.replace('"mp3_path"', '"path"'))
    with pytest.raises(ManifestError, match=r"annotations_final\.csv:1: missing column"):
        get("mtt").parse(root, allow_missing_audio=True, top_tags=3)
    lines = good.splitlines()
    lines[2] = lines[2].replace('"0"', '"2"', 1)
    ann.write_text("\n".join(lines))
    with pytest.raises(ManifestError, match=r"annotations_final\.csv:3: tag .* expected 0 or 1"):
        get("mtt").parse(root, allow_missing_audio=True, top_tags=3)
    lines = good.splitlines()
    lines[2] = lines[2].replace('"b/', '"g/')
    ann.write_text("\n".join(lines))
    with pytest.raises(ManifestError, match=r"annotations_final\.csv:3: mp3_path .* hex folders"):
        get("mtt").parse(root, allow_missing_audio=True, top_tags=3)
    lines = good.splitlines()
    lines[3] = lines[3].rsplit("\t", 1)[0]
    ann.write_text("\n".join(lines))
    with pytest.raises(ManifestError, match=r"annotations_final\.csv:4: malformed line"):
        get("mtt").parse(root, allow_missing_audio=True, top_tags=3)


def test_mtt_single_top_folder(tmp_path):
    root = _mtt_tree(tmp_path)
    outer = tmp_path / "outer"
    outer.mkdir()
    root.rename(outer / "magnatagatune")
    assert len(get("mtt").parse(outer, top_tags=3).table) == 4


def _mtt_real_annotations(shared: Path, out: Path, extra_all: bool) -> None:
    """annotations_final.csv rebuilt from musicnn's index + val/test top-50 ground truth (train unknown)."""
    meta = shared / "mtt_meta"
    classes = json.loads((meta / "classes_MagnaTT.json").read_text())
    tags = [t for t, _ in sorted(classes.items(), key=lambda kv: kv[1]) if t != "clip_id"]
    gt = {}
    for f in ("val_gt_mtt.tsv", "test_gt_mtt.tsv"):
        for line in (meta / f).read_text().splitlines():
            if line.strip():
                cid, vec = line.split("\t")
                gt[cid] = [int(float(x)) for x in ast.literal_eval(vec)]
    cols = tags + (["all clips"] if extra_all else [])
    lines = ["\t".join(f'"{c}"' for c in ["clip_id", *cols, "mp3_path"])]
    for line in (meta / "index_mtt.tsv").read_text().splitlines():
        if not line.strip():
            continue
        cid, mp3 = line.split("\t")
        vec = gt.get(cid, [0] * len(tags)) + ([1] if extra_all else [])
        lines.append("\t".join(f'"{v}"' for v in [cid, *vec, mp3]))
    text(out / "annotations_final.csv", "\n".join(lines) + "\n")
    real = meta / "audio" / "e" / "joram-moments_of_clarity-08-solipsism-59-88.mp3"
    (out / "mp3" / "e").mkdir(parents=True)
    (out / "mp3" / "e" / real.name).symlink_to(real)


def test_mtt_real_index_and_ground_truth(shared_data, tmp_path):
    # every MTT path, each with one tag: the folder split over all 25,863 clips
    _mtt_real_annotations(shared_data, tmp_path / "all", extra_all=True)
    m = get("mtt").parse(tmp_path / "all", allow_missing_audio=True, top_tags=51)
    assert len(m.table) == 25863
    assert split_counts(m) == {"train": 18709, "validation": 1825, "test": 5329}
    # the real top-50 vectors of the val/test clips: the published 1,529 / 4,332 (tagless clips dropped)
    _mtt_real_annotations(shared_data, tmp_path / "gt", extra_all=False)
    m = get("mtt").parse(tmp_path / "gt", allow_missing_audio=True)
    assert split_counts(m) == {"validation": 1529, "test": 4332}
    clip = m.table.set_index("clip_id").loc["37386"]  # the real mp3, in folder e
    assert clip["available"] and clip["split"] == "test" and clip["labels"] == "techno"
    assert clip["sample_rate"] == 16000 and clip["channels"] == 1 and 29 < clip["duration"] < 30
    assert m.counts()["missing"] == len(m.table) - 1


# ============================================================================================ Speech Commands
def _sc_tree(root: Path) -> Path:
    for rel in ["yes/aaaa1111_nohash_0.wav", "yes/aaaa1111_nohash_1.wav", "yes/bbbb2222_nohash_0.wav",
                "no/bbbb2222_nohash_0.wav", "no/cccc3333_nohash_0.wav", "zero/dddd4444_nohash_0.wav"]:
        wav(root / rel, seconds=1.0)
    wav(root / "_background_noise_" / "white_noise.wav", seconds=2.0)
    text(root / "validation_list.txt", "yes/bbbb2222_nohash_0.wav\nno/cccc3333_nohash_0.wav")  # no final newline
    text(root / "testing_list.txt", "zero/dddd4444_nohash_0.wav\n")
    text(root / "README.md", "x")
    return root


def test_speech_commands_synthetic(tmp_path):
    root = _sc_tree(tmp_path / "sc")
    m = get("speech_commands").parse(root)
    t = m.table.set_index("clip_id")
    assert m.classes == list(get("speech_commands").classes) and len(m.classes) == 35
    assert t["split"].to_dict() == {"yes/bbbb2222_nohash_0": "validation", "no/cccc3333_nohash_0": "validation",
                                    "zero/dddd4444_nohash_0": "test", "no/bbbb2222_nohash_0": "train",
                                    "yes/aaaa1111_nohash_0": "train", "yes/aaaa1111_nohash_1": "train"}
    assert t.loc["yes/aaaa1111_nohash_1", "group"] == "aaaa1111" and t.loc["no/bbbb2222_nohash_0", "labels"] == "no"
    assert (t["duration"] == 1.0).all() and (t["sample_rate"] == 16000).all()
    assert not any("background" in p for p in t["path"])


def test_speech_commands_errors(tmp_path):
    root = _sc_tree(tmp_path / "sc")
    (root / "zero" / "dddd4444_nohash_0.wav").unlink()
    with pytest.raises(ManifestError, match=r"dddd4444_nohash_0\.wav is missing \(listed at .*testing_list\.txt:1\)"):
        get("speech_commands").parse(root)
    m = get("speech_commands").parse(root, allow_missing_audio=True)
    assert m.counts() == {"train": 3, "validation": 2, "test": 1, "missing": 1}
    text(root / "testing_list.txt", "zero/dddd4444_nohash_0.wav\nzero\n")
    with pytest.raises(ManifestError, match=r"testing_list\.txt:2: malformed line"):
        get("speech_commands").parse(root, allow_missing_audio=True)
    text(root / "testing_list.txt", "")
    wav(root / "marvel" / "eeee_nohash_0.wav")
    with pytest.raises(ManifestError, match="marvel"):
        get("speech_commands").parse(root)


def test_speech_commands_real_lists(shared_data, tmp_path):
    root = tmp_path / "sc"
    root.mkdir()
    for f in ("validation_list.txt", "testing_list.txt"):
        src = shared_data / "speech_commands_meta" / "v0.02" / f
        assert not src.read_bytes().endswith(b"\n")  # the real quirk
        (root / f).symlink_to(src)
    real = shared_data / "speech_commands_meta" / "audio_samples"
    (root / "yes").mkdir()
    (root / "yes" / "zzzzzzzz_nohash_0.wav").symlink_to(real / "yes_1000ms.wav")  # a train clip
    m = get("speech_commands").parse(root, allow_missing_audio=True)
    assert split_counts(m) == {"test": 11005, "validation": 9981, "train": 1}
    assert m.counts() == {"train": 1, "validation": 9981, "test": 11005, "missing": 20986}
    t = m.table.set_index("clip_id")
    assert t.loc["right/a69b9b3e_nohash_0", "group"] == "a69b9b3e"
    assert t.loc["yes/zzzzzzzz_nohash_0", "sample_rate"] == 16000


# ============================================================================================ DCASE 2017 Task 4
D17_TRAIN_DIR = "unbalanced_train_segments_training_set_audio_formatted_and_segmented_downloads"
D17_TEST_DIR = "unbalanced_train_segments_testing_set_audio_formatted_and_segmented_downloads"
D17_EVAL_DIR = "evaluation_set_formatted_audio_segments"


def _d17_tree(tmp_path) -> Path:
    root = tmp_path / "d17"
    train = [(f"tr{i:02d}_0.000_10.000.wav", ["Car"] if i % 2 else ["Car", "Bus"]) for i in range(20)]
    test = [("te00_30.000_40.000.wav", ["Bus"]), ("te01_30.000_40.000.wav", ["Train horn"])]
    ev = [("ev00_0.000_10.000.wav", ["Car passing by", "Air horn, truck horn"])]
    for name, rows, d in (("training", train, D17_TRAIN_DIR), ("testing", test, D17_TEST_DIR),
                          ("evaluation", ev, D17_EVAL_DIR)):
        lines = [f"{f}\t0.000\t10.000\t{lab}" for f, labs in rows for lab in labs]
        text(root / f"groundtruth_weak_label_{name}_set.csv", "\r\n".join(lines) + "\r\n")
        for f, _ in rows:
            wav(root / "audio" / d / ("Y" + f), seconds=0.5, sr=44100)
    return root


def test_dcase2017_synthetic(tmp_path):
    root = _d17_tree(tmp_path)
    m = get("dcase2017_task4").parse(root, validation_fraction=0.3)
    t = m.table.set_index("clip_id")
    assert m.classes == list(get("dcase2017_task4").classes)
    assert t.loc["ev00_0.000_10.000", "split"] == "test"
    assert split_labels(t.loc["ev00_0.000_10.000", "labels"]) == ["Air horn, truck horn", "Car passing by"]
    assert split_labels(t.loc["tr00_0.000_10.000", "labels"]) == ["Car", "Bus"]  # pinned class order
    # the original's procedure: per class, pandas sample(frac, random_state) of that class's rows
    rows = [(f"tr{i:02d}_0.000_10.000.wav", lab) for i in range(20) for lab in (["Car"] if i % 2 else ["Car", "Bus"])]
    rows += [("te00_30.000_40.000.wav", "Bus"), ("te01_30.000_40.000.wav", "Train horn")]
    df = pd.DataFrame(rows, columns=["file", "label"])
    val = set()
    for c in df["label"].unique():
        val |= set(df[df["label"] == c].sample(frac=0.3, random_state=123)["file"])
    assert {i + ".wav" for i in t.index[t["split"] == "validation"]} == val
    assert (t["sample_rate"] == 44100).all() and t["available"].all()
    assert split_counts(get("dcase2017_task4").parse(root, validation_fraction=0.0)) == {"train": 22, "test": 1}


def test_dcase2017_errors(tmp_path):
    root = _d17_tree(tmp_path)
    missing = root / "audio" / D17_TEST_DIR / "Yte01_30.000_40.000.wav"
    missing.unlink()
    with pytest.raises(ManifestError, match=r"Yte01_30\.000_40\.000\.wav is missing \(listed at "
                                            r".*groundtruth_weak_label_testing_set\.csv:2\)"):
        get("dcase2017_task4").parse(root)
    assert get("dcase2017_task4").parse(root, allow_missing_audio=True).counts()["missing"] == 1
    p = root / "groundtruth_weak_label_evaluation_set.csv"
    p.write_text("ev00_0.000_10.000.wav\t0.000\t10.000\tCar horn\n")
    with pytest.raises(ManifestError, match=r"evaluation_set\.csv:1: label 'Car horn'"):
        get("dcase2017_task4").parse(root, allow_missing_audio=True)
    p.write_text("ev00_0.000_10.000.wav\t0.000\tCar\n")
    with pytest.raises(ManifestError, match=r"evaluation_set\.csv:1: malformed line"):
        get("dcase2017_task4").parse(root, allow_missing_audio=True)
    p.unlink()
    with pytest.raises(ManifestError, match="groundtruth_weak_label_evaluation_set.csv not found"):
        get("dcase2017_task4").parse(root, allow_missing_audio=True)


def test_dcase2017_real_counts(shared_data):
    m = get("dcase2017_task4").parse(shared_data / "dcase2017_task4_meta", allow_missing_audio=True)
    assert split_counts(m) == {"train": 46042, "validation": 5618, "test": 1103}
    assert m.counts()["missing"] == 46042 + 5618 + 1103
    assert m.table["labels"].str.contains(";").any()
    assert set(m.table["clip_id"]).isdisjoint({""})
    with pytest.raises(ManifestError, match=r"is missing \(listed at .*groundtruth_weak_label_training_set\.csv:1\)"):
        get("dcase2017_task4").parse(shared_data / "dcase2017_task4_meta")


# ============================================================================================ TUT 2018 / TAU 2019
SCENES = ["airport", "bus", "park"]


def _scene_tree(root: Path, year: int, n_loc: int = 4, seg: int = 2, audio: bool = True) -> Path:
    top = root / ("TUT-urban-acoustic-scenes-2018-development" if year == 2018
                  else "TAU-urban-acoustic-scenes-2019-development")
    meta = ["filename\tscene_label\tidentifier\tsource_label"]
    train, evaluate = [], []
    for si, scene in enumerate(SCENES):
        for loc in range(n_loc):
            city = ["barcelona", "helsinki"][loc % 2]
            for s in range(seg):
                f = f"audio/{scene}-{city}-{si * 100 + loc}-{s}-a.wav"
                meta.append(f"{f}\t{scene}\t{city}-{si * 100 + loc}\ta")
                (evaluate if loc == n_loc - 1 else train).append(f"{f}\t{scene}")
                if audio:
                    wav(top / f, seconds=0.05, sr=48000, channels=2, subtype="PCM_24")
    ext = "txt" if year == 2018 else "csv"
    head = [] if year == 2018 else ["filename\tscene_label"]
    text(top / "meta.csv", "\n".join(meta) + "\n")
    text(top / "evaluation_setup" / f"fold1_train.{ext}", "\n".join(head + train) + "\n")
    text(top / "evaluation_setup" / f"fold1_evaluate.{ext}", "\n".join(head + evaluate) + "\n")
    text(top / "evaluation_setup" / f"fold1_test.{ext}",
         "\n".join((["filename"] if year == 2019 else []) + [e.split("\t")[0] for e in evaluate]) + "\n")
    return top


@pytest.mark.parametrize("year", [2018, 2019])
def test_scenes_synthetic(tmp_path, year):
    name = f"dcase{year}_task1a"
    _scene_tree(tmp_path / "root", year)
    m = get(name).parse(tmp_path / "root")  # the single top folder is found
    assert m.classes == SCENES
    assert split_counts(m) == {"train": 18, "test": 6}
    t = m.table.set_index("clip_id")
    assert t.loc["bus-helsinki-101-1-a", "group"] == "helsinki-101"
    assert (t["channels"] == 2).all() and (t["sample_rate"] == 48000).all()
    assert np.allclose(t["duration"], 0.05)
    h = get(name).parse(tmp_path / "root", validation="holdout", validation_fraction=0.34)
    ht = h.table
    assert split_counts(h) == {"train": 12, "validation": 6, "test": 6}
    # whole locations move, one per scene here; deterministic
    val_groups = set(ht.loc[ht["split"] == "validation", "group"])
    assert len(val_groups) == 3 and val_groups.isdisjoint(ht.loc[ht["split"] == "train", "group"])
    assert sorted(ht.loc[ht["split"] == "validation", "labels"].unique()) == SCENES  # one location per scene
    h2 = get(name).parse(tmp_path / "root", validation="holdout", validation_fraction=0.34)
    assert h2.table.equals(ht)
    with pytest.raises(ManifestError, match="validation must be"):
        get(name).parse(tmp_path / "root", validation="evaluate")


@pytest.mark.parametrize("year", [2018, 2019])
def test_scenes_errors(tmp_path, year):
    name = f"dcase{year}_task1a"
    top = _scene_tree(tmp_path / "root", year)
    ext = "txt" if year == 2018 else "csv"
    (top / "audio" / "park-helsinki-201-1-a.wav").unlink()
    line = 2 if year == 2018 else 3  # the clip's line in fold1_evaluate
    with pytest.raises(ManifestError, match=rf"park-helsinki-201-1-a\.wav is missing \(listed at "
                                            rf".*fold1_train\.{ext}:\d+\)"):
        get(name).parse(top)
    m = get(name).parse(top, allow_missing_audio=True)
    assert m.counts() == {"train": 18, "validation": 0, "test": 6, "missing": 1}
    fold = top / "evaluation_setup" / f"fold1_evaluate.{ext}"
    good = fold.read_text().splitlines()
    bad = list(good)
    bad[line - 1] = bad[line - 1] + "\textra"
    fold.write_text("\n".join(bad) + "\n")
    with pytest.raises(ManifestError, match=rf"fold1_evaluate\.{ext}:{line}: malformed line"):
        get(name).parse(top, allow_missing_audio=True)
    bad = list(good)
    bad[line - 1] = bad[line - 1].replace("\tairport", "\tbus")
    fold.write_text("\n".join(bad) + "\n")
    with pytest.raises(ManifestError, match=rf"fold1_evaluate\.{ext}:{line}: scene_label 'bus' contradicts"):
        get(name).parse(top, allow_missing_audio=True)
    if year == 2019:
        fold.write_text("file\tscene_label\n" + "\n".join(good[1:]))
        with pytest.raises(ManifestError, match=r"fold1_evaluate\.csv:1: missing column"):
            get(name).parse(top, allow_missing_audio=True)


def test_tau2019_real_meta(shared_data):
    root = shared_data / "tau2019_task1a_meta"
    m = get("dcase2019_task1a").parse(root, allow_missing_audio=True)
    assert split_counts(m) == {"train": 9185, "test": 4185}
    assert len(m.classes) == 10 and m.classes == sorted(m.classes)
    assert m.table.set_index("clip_id").loc["airport-lisbon-1000-40000-a", "group"] == "lisbon-1000"
    h = get("dcase2019_task1a").parse(root, allow_missing_audio=True, validation="holdout")
    c = split_counts(h)
    assert c["test"] == 4185 and c["train"] + c["validation"] == 9185 and 0.05 < c["validation"] / 9185 < 0.15
    t = h.table
    assert set(t.loc[t.split == "validation", "group"]).isdisjoint(t.loc[t.split == "train", "group"])
    assert set(t.loc[t.split == "validation", "labels"]) == set(m.classes)


def test_tau2019_real_clip(shared_data):
    # soundata's truncated real metadata + one real clip; the development folder is picked among three
    m = get("dcase2019_task1a").parse(shared_data / "soundata_clips" / "tau2019uas", allow_missing_audio=True)
    t = m.table.set_index("clip_id")
    assert split_counts(m) == {"train": 3, "test": 3}
    clip = t.loc["airport-barcelona-0-0-a"]
    assert clip["available"] and clip["sample_rate"] == 48000 and clip["channels"] == 2
    assert clip["duration"] == pytest.approx(1.0) and clip["group"] == "barcelona-0"
    assert m.counts()["missing"] == 5


# ============================================================================================ DCASE 2018 Task 4
def _d18_tree(root: Path) -> Path:
    weak = [("Ya_0.000_10.000.wav", "Dog"), ("Yb_0.000_10.000.wav", "Cat,Dog"), ("Yc_0.000_10.000.wav", "Dog"),
            ("Yd_0.000_10.000.wav", "Dog"), ("Ye_0.000_10.000.wav", "Cat"), ("Yf_0.000_10.000.wav", "Speech")]
    text(root / "metadata" / "train" / "weak.csv",
         "filename\tevent_labels\n" + "".join(f"{f}\t{lab}\n" for f, lab in weak))
    test = ["filename\tonset\toffset\tevent_label",
            "Yt1_0.000_10.000.wav\t0.500\t2.000\tDog",
            "Yt1_0.000_10.000.wav\t3.000\t9.000\tSpeech",
            "Yt1_0.000_10.000.wav\t5.000\t6.000\tDog",
            "Yt2_30.000_40.000.wav\t0.000\t10.000\tVacuum_cleaner",
            "Yt3_30.000_40.000.wav\t\t\t"]
    text(root / "metadata" / "test" / "test.csv", "\n".join(test) + "\n")
    text(root / "metadata" / "test" / "files_to_remove.csv", "filename\nYt2_30.000_40.000.wav\n")
    for f, _ in weak:
        wav(root / "audio" / "train" / "weak" / f, seconds=0.2, sr=44100)
    for f in ("Yt1_0.000_10.000.wav", "Yt2_30.000_40.000.wav", "Yt3_30.000_40.000.wav"):
        wav(root / "audio" / "test" / f, seconds=0.2, sr=44100)
    return root


def test_dcase2018_task4_synthetic(tmp_path):
    _d18_tree(tmp_path / "dataset")
    m = get("dcase2018_task4").parse(tmp_path, validation_fraction=0.25)  # single top folder `dataset/`
    t = m.table.set_index("clip_id")
    assert m.classes == list(get("dcase2018_task4").classes)
    # buckets: Dog [a, b, c, d] -> int(4 * 0.25) = 1 -> a; Cat [b, e] -> 0; Speech [f] -> 0
    s = t["split"].to_dict()
    assert s["Ya_0.000_10.000"] == "validation"
    assert [k for k, v in s.items() if v == "validation"] == ["Ya_0.000_10.000"]
    m5 = get("dcase2018_task4").parse(tmp_path, validation_fraction=0.5)
    s5 = m5.table.set_index("clip_id")["split"]
    # Dog: a, b -> validation; Cat [b, e]: b; Speech: 1*0.5 -> 0. b is validation once (no duplicate in train)
    assert sorted(s5.index[s5 == "validation"]) == ["Ya_0.000_10.000", "Yb_0.000_10.000"]
    assert t.loc["Yb_0.000_10.000", "labels"] == "Dog;Cat"  # the code's class index order
    assert split_counts(m) == {"train": 5, "validation": 1, "test": 3}
    ev = events_from_json(t.loc["Yt1_0.000_10.000", "events"])
    assert ev == [(0.5, 2.0, "Dog"), (3.0, 9.0, "Speech"), (5.0, 6.0, "Dog")]
    assert split_labels(t.loc["Yt1_0.000_10.000", "labels"]) == ["Speech", "Dog"]
    assert t.loc["Yt3_30.000_40.000", "events"] == "" and t.loc["Yt3_30.000_40.000", "labels"] == ""
    assert t["available"].all() and (t["sample_rate"] == 44100).all()
    r = get("dcase2018_task4").parse(tmp_path, remove_files_to_remove=True)
    assert "Yt2_30.000_40.000" not in set(r.table["clip_id"]) and split_counts(r)["test"] == 2


def test_dcase2018_task4_errors(tmp_path):
    root = _d18_tree(tmp_path)
    (root / "audio" / "test" / "Yt2_30.000_40.000.wav").unlink()
    with pytest.raises(ManifestError, match=r"Yt2_30\.000_40\.000\.wav is missing \(listed at .*test\.csv:5\)"):
        get("dcase2018_task4").parse(root)
    assert get("dcase2018_task4").parse(root, allow_missing_audio=True).counts()["missing"] == 1
    test_csv = root / "metadata" / "test" / "test.csv"
    good = test_csv.read_text()
    test_csv.write_text(good.replace("0.500", "soon"))
    with pytest.raises(ManifestError, match=r"test\.csv:2: column 'onset' is not a number"):
        get("dcase2018_task4").parse(root, allow_missing_audio=True)
    test_csv.write_text(good.replace("Vacuum_cleaner", "Hoover"))
    with pytest.raises(ManifestError, match=r"test\.csv:5: label 'Hoover'"):
        get("dcase2018_task4").parse(root, allow_missing_audio=True)
    test_csv.write_text(good.replace("onset", "start"))
    with pytest.raises(ManifestError, match=r"test\.csv:1: missing column"):
        get("dcase2018_task4").parse(root, allow_missing_audio=True)
    test_csv.write_text(good)
    weak = root / "metadata" / "train" / "weak.csv"
    weak.write_text(weak.read_text() + "Yz_0.000_10.000.wav\n")
    with pytest.raises(ManifestError, match=r"weak\.csv:8: malformed line"):
        get("dcase2018_task4").parse(root, allow_missing_audio=True)


def test_dcase2018_task4_real_meta(shared_data, tmp_path):
    (tmp_path / "metadata").symlink_to(shared_data / "dcase2018_task4_meta")
    m = get("dcase2018_task4").parse(tmp_path, allow_missing_audio=True)
    test = m.table[m.table["split"] == "test"]
    assert len(test) == 288 and sum(len(events_from_json(e)) for e in test["events"]) == 908
    for labels, events in zip(test["labels"], test["events"]):
        assert set(split_labels(labels)) == {lab for _, _, lab in events_from_json(events)}
    c = split_counts(m)
    assert c["train"] + c["validation"] == 1578 and c == {"train": 1217, "validation": 361, "test": 288}
    assert split_counts(get("dcase2018_task4").parse(tmp_path, allow_missing_audio=True,
                                                     remove_files_to_remove=True))["test"] == 288


# ============================================================================================ ACIVW
MICS = 4


def _acivw_tree(root: Path, classes=(0, 3), videos=3, frames=25) -> Path:
    for k in classes:
        for v in range(1, videos + 1):
            d = root / f"class_{k}" / f"data_{v:03d}"
            (d / "video").mkdir(parents=True)
            (d / "audio").mkdir()
            (d / "MFCC_Image").mkdir()
            for i in range(1, frames + 1):
                (d / "video" / f"I_{i:06d}.bmp").write_bytes(b"BM")
                (d / "MFCC_Image" / f"Data_{i}.mat").write_bytes(b"")
                block = np.zeros((MICS, 1024), dtype="<i4")
                block[0] = np.arange(1024) + 10000 * i + 1000000 * k  # mic 0
                block[1:] = -7
                block.flatten(order="F").tofile(d / "audio" / f"A_{i:06d}.dc")
    return root


def test_acivw_by_video(tmp_path):
    root = _acivw_tree(tmp_path / "acivw")
    d = get("acivw")
    m = d.parse(root, sample_seconds=1)  # the 1-s records (default: 2-s samples, tests/test_acivw_modalities.py)
    t = m.table
    assert len(t) == 2 * 3 * 2  # floor(25 / 12) = 2 s per video
    assert m.classes == ["train", "fountain"]
    assert set(t["clip_id"]) >= {"class_0/data_001/001", "class_3/data_003/002"}
    r = t.set_index("clip_id").loc["class_3/data_002/002"]
    assert r["start"] == 1.0 and r["duration"] == 1.0 and r["group"] == "class_3/data_002"
    assert r["labels"] == "fountain" and r["sample_rate"] == 12288 and Path(r["path"]).name == "data_002"
    # whole videos per split, every split present in each class (3 videos per class)
    for k in ("class_0", "class_3"):
        sub = t[t["group"].str.startswith(k)]
        assert set(sub["split"]) == {"train", "validation", "test"}
        assert sub.groupby("group")["split"].nunique().max() == 1
    assert m.table.equals(d.parse(root, sample_seconds=1).table)
    audio, sr = d.load_audio(r)
    assert sr == 12288 and audio.dtype == np.float32 and audio.shape == (1, 12288)
    expected = np.concatenate([np.arange(1024) + 10000 * i + 3000000 for i in range(13, 25)])
    assert np.array_equal(audio[0], expected.astype(np.float32))
    audio2, _ = d.load_audio(r.to_dict())
    assert np.array_equal(audio, audio2)


def test_acivw_lists_and_errors(tmp_path):
    root = _acivw_tree(tmp_path / "acivw")
    text(root / "lists" / "training.txt", "/Dataset/class_0/data_001/Data_001.tfrecord\n"
                                          "/Dataset/class_0/data_001/Data_002.tfrecord\n"
                                          "/Dataset/class_3/data_001/Data_001.tfrecord")
    text(root / "lists" / "validation.txt", "/Dataset/class_0/data_002/Data_001.tfrecord\n")
    text(root / "lists" / "testing.txt", "/dataset/class_3/data_003/Data_002.tfrecord\n")
    m = get("acivw").parse(root, sample_seconds=1)
    assert split_counts(m) == {"train": 3, "validation": 1, "test": 1}
    assert m.table.set_index("clip_id").loc["class_3/data_003/002", "split"] == "test"
    text(root / "lists" / "testing.txt", "/dataset/class_3/data_003/Data_003.tfrecord\n")  # only 2 s exist
    with pytest.raises(ManifestError, match=r"A_000026\.dc of record class_3/data_003/003 is missing "
                                            r"\(listed at .*testing\.txt:1\)"):
        get("acivw").parse(root, sample_seconds=1)
    m = get("acivw").parse(root, allow_missing_audio=True, sample_seconds=1)
    assert m.counts()["missing"] == 1
    text(root / "lists" / "testing.txt", "/dataset/class_3/data_003/Data_003.npz\n")
    with pytest.raises(ManifestError, match=r"testing\.txt:1: malformed line"):
        get("acivw").parse(root)
    for f in (root / "lists").iterdir():
        f.unlink()
    (root / "class_0" / "data_001" / "audio" / "A_000005.dc").unlink()
    # 25 .bmp and .mat but 24 .dc: the converter's assertion; the video is skipped (named in the log)
    assert "class_0/data_001" not in set(get("acivw").parse(root).table["group"])


def test_acivw_real_list_format():
    # the original lists' first lines (IIT-PAVIS/acoustic-images-self-supervision lists/*.txt)
    from soundbench.datasets.acivw import LIST_RE

    for line in ("/Dataset/class_0/data_046/Data_001.tfrecord", "/dataset/class_9/data_006/Data_123.tfrecord"):
        assert LIST_RE.search(line)


# ============================================================================================ header edge cases
def test_unreadable_header_is_not_an_error(tmp_path):
    root = _sc_tree(tmp_path / "sc")
    (root / "yes" / "aaaa1111_nohash_0.wav").write_bytes(b"not a wav file at all")
    t = get("speech_commands").parse(root).table.set_index("clip_id")
    r = t.loc["yes/aaaa1111_nohash_0"]
    assert r["available"] and math.isnan(r["duration"]) and r["channels"] == 0 and r["sample_rate"] == 0
