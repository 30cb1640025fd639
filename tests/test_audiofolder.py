"""audiofolder (one's own recordings): both layouts, the grouped split, inferred and set tasks, a pinned class order,
metadata errors named by file and line, the config checks, and FSDD arranged as class folders."""
from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict

import numpy as np
import pytest
import soundfile as sf

from soundbench import configuration
from soundbench import manifest as mf
from soundbench.datasets import audiofolder, splits, task_of, type_of
from soundbench.manifest import ManifestError


def _wav(path, sr=8000, seconds=0.1, channels=1):
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(sr * seconds)
    sf.write(path, np.zeros((n, channels), dtype=np.float32) + 0.01, sr)


def _folders(root, classes=("dog", "cat", "bird"), speakers=("ann", "bob", "cyd", "dan", "eve"), takes=2):
    for c in classes:
        for s in speakers:
            for t in range(takes):
                _wav(root / c / f"{s}_{t}.wav")
    return root


def _csv(root, text, name="metadata.csv"):
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(text)
    return root / name


# ------------------------------------------------------------------------------------------------ folders
def test_folders_layout_grouped_split_and_inferred_task(tmp_path):
    root = _folders(tmp_path / "data")
    _wav(root / "dog" / "sub" / "fay_0.flac", sr=44100, channels=2)  # any depth, format, rate, channels
    (root / "dog" / "notes.txt").write_text("not audio")
    m = audiofolder.parse(root, group_pattern="^([a-z]+)_", fractions={"train": 0.6, "validation": 0.2,
                                                                        "test": 0.2})
    t = m.table
    assert m.classes == ["bird", "cat", "dog"]  # sorted from the data
    assert len(t) == 31 and set(t["labels"]) == {"bird", "cat", "dog"}
    assert "dog/sub/fay_0" in set(t["clip_id"])
    row = t.set_index("clip_id").loc["dog/sub/fay_0"]
    assert (row["sample_rate"], row["channels"]) == (44100, 2)
    sides = t.groupby("group")["split"].nunique()
    assert (sides == 1).all()  # no speaker on two sides
    assert set(t["split"]) == {"train", "validation", "test"}
    assert audiofolder.infer_task(root) == "multiclass"


def test_grouped_split_keeps_groups_apart_and_follows_the_fractions():
    rng = np.random.default_rng(0)
    groups, labels = [], []
    for g in range(60):  # 60 speakers of uneven sizes, each saying a few of 5 words
        words = rng.choice(list("abcde"), size=rng.integers(1, 5), replace=False)
        for _ in range(rng.integers(2, 12)):
            groups.append(f"spk{g}")
            labels.append([str(rng.choice(words))])
    fractions = {"train": 0.7, "validation": 0.15, "test": 0.15}
    out = splits.grouped_stratified(groups, labels, fractions, seed=3)
    by_group = defaultdict(set)
    for g, s in zip(groups, out):
        by_group[g].add(s)
    assert all(len(v) == 1 for v in by_group.values())
    for c in "abcde":  # every class near its share in every split (groups are whole, so not exact)
        n = sum(lab == [c] for lab in labels)
        for s, f in fractions.items():
            got = sum(lab == [c] and o == s for lab, o in zip(labels, out))
            assert abs(got - f * n) <= 0.1 * n + 3, (c, s, got, f * n)
    assert out == splits.grouped_stratified(groups, labels, fractions, seed=3)  # deterministic
    # whatever the key order of the fractions (YAML order, the workflow's sorted JSON)
    assert out == splits.grouped_stratified(groups, labels, dict(sorted(fractions.items())), seed=3)
    assert out != splits.grouped_stratified(groups, labels, fractions, seed=4)  # the seed draws another
    # clips without a group are each their own group
    solo = splits.grouped_stratified([""] * 10, [["a"]] * 10, {"train": 0.8, "test": 0.2})
    assert solo.count("test") == 2


# ------------------------------------------------------------------------------------------------ metadata
def test_metadata_multilabel_with_split_column_and_label_separator(tmp_path):
    root = tmp_path / "d"
    for name in ("a.wav", "b.wav", "sub/c.flac"):
        _wav(root / name)
    _csv(root, "path\tlabels\tsplit\tspeaker\na.wav\tdog,cat\ttrain\tx\nb.wav\tcat\ttest\ty\n"
               "sub/c.flac\tbird\tvalidation\tz\n", name="metadata.tsv")
    opts = {"label_sep": ",", "group_column": "speaker"}
    m = audiofolder.parse(root, **opts)
    t = m.table.set_index("clip_id")
    assert t.loc["a", "labels"] == "dog;cat" and t.loc["sub/c", "split"] == "validation"
    assert t.loc["b", "group"] == "y" and m.classes == ["bird", "cat", "dog"]
    assert audiofolder.infer_task(root, **opts) == "multilabel"
    with pytest.raises(ManifestError, match=r"metadata.tsv.*task multiclass needs exactly one label"):
        audiofolder.parse(root, task="multiclass", **opts)


def test_metadata_sed_events(tmp_path):
    root = tmp_path / "d"
    for name in ("x.wav", "y.wav", "z.wav"):
        _wav(root / name, seconds=1.0)
    _csv(root, "path,onset,offset,event_label,split\n"
               "x.wav,0.1,0.4,Speech,train\nx.wav,0.3,0.9,Dog,train\ny.wav,,,,test\nz.wav,0.0,1.0,Dog,test\n")
    m = audiofolder.parse(root)
    t = m.table.set_index("clip_id")
    assert mf.events_from_json(t.loc["x", "events"]) == [(0.1, 0.4, "Speech"), (0.3, 0.9, "Dog")]
    assert t.loc["x", "labels"] == "Speech;Dog" and t.loc["y", "labels"] == "" and t.loc["y", "events"] == ""
    assert audiofolder.infer_task(root) == "sed"
    with pytest.raises(ManifestError, match="has events; task multilabel would ignore them"):
        audiofolder.infer_task(root, task="multilabel")


def test_list_files_split(tmp_path):
    root = _folders(tmp_path / "d", classes=("a", "b"), speakers=("p", "q"), takes=1)
    (root / "val.txt").write_text("a/p_0.wav\n")
    (root / "test.txt").write_text("b/q_0.wav\r\nb/p_0.wav")
    m = audiofolder.parse(root, lists={"validation": "val.txt", "test": "test.txt"})
    assert dict(zip(m.table["clip_id"], m.table["split"])) == {"a/p_0": "validation", "a/q_0": "train",
                                                               "b/p_0": "test", "b/q_0": "test"}
    (root / "test.txt").write_text("b/q_0.wav\nb/nope.wav\n")
    with pytest.raises(ManifestError, match=r"test.txt:2: b/nope.wav is not a clip"):
        audiofolder.parse(root, lists={"validation": "val.txt", "test": "test.txt"})


@pytest.mark.parametrize("text, message", [
    ("path,labels,split\na.wav,dog,train\nb.wav,cat,dev\n", r"metadata.csv:3: split 'dev' is not one of"),
    ("path,labels\na.wav,dog\na.wav,cat\n", r"metadata.csv:3: a.wav is already listed at .*metadata.csv:2"),
    ("path,labels\n,dog\n", r"metadata.csv:2: empty 'path'"),
    ("path,labels\na.wav,dog,extra\n", r"metadata.csv:2: malformed line, expected 2 fields"),
    ("path,onset,offset,event_label\na.wav,0.5,x,Dog\n", r"metadata.csv:2: column 'offset' is not a number"),
    ("path,onset,offset,event_label\na.wav,0.5,0.2,Dog\n", r"metadata.csv:2: event 'Dog' from 0.5 to 0.2"),
    ("path,onset,offset,event_label\na.wav,0.1,,Dog\n", r"metadata.csv:2: an event needs onset, offset"),
    ("path,labels\nb.wav,dog\nmissing.wav,cat\n", r"missing.wav is missing \(listed at .*metadata.csv:3\)"),
    ("path,labels\na.wav,do;g\n", r"metadata.csv:2: label 'do;g' contains ';'"),
    ("file,labels\na.wav,dog\n", r"metadata.csv:1: missing column\(s\) \['path'\]"),
    ("path,labels\na.wav,dog\nb.wav,\n", r"metadata.csv:3: task multiclass needs exactly one label per clip, b.wav"),
])
def test_bad_metadata_rows_are_named_by_file_and_line(tmp_path, text, message):
    root = tmp_path / "d"
    _wav(root / "a.wav")
    _wav(root / "b.wav")
    _csv(root, text)
    with pytest.raises(ManifestError, match=message):
        audiofolder.parse(root, label_sep="|")


def test_bad_options(tmp_path):
    root = _folders(tmp_path / "d", classes=("a",), speakers=("p",), takes=1)
    with pytest.raises(ManifestError, match=r"parse\.fraction: unknown option of dataset audiofolder; known: "):
        audiofolder.parse(root, fraction=0.5)
    with pytest.raises(ManifestError, match="group_pattern needs a capture group"):
        audiofolder.parse(root, group_pattern="^p")
    with pytest.raises(ManifestError, match=r"group_pattern '\^\(q\)' does not match the file name 'p_0'"):
        audiofolder.parse(root, group_pattern="^(q)")


def test_pinned_class_order_through_the_manifest_command(tmp_path):
    root = _folders(tmp_path / "d", classes=("b", "a", "c"), speakers=("p", "q", "r"), takes=1)
    out = tmp_path / "m" / "manifest.csv"
    cmd = [sys.executable, "-m", "soundbench", "manifest", "audiofolder", "--root", str(root), "--out", str(out),
           "--classes", "c", "a", "b", "--set", "seed=2"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "m" / "classes.txt").read_text().split() == ["c", "a", "b"]
    assert mf.read(out).classes == ["c", "a", "b"]
    r = subprocess.run(cmd[:9] + ["--classes", "a", "b"], capture_output=True, text=True)
    assert r.returncode == 1 and "labels ['c'] are not among the pinned classes" in r.stderr


# ------------------------------------------------------------------------------------------------ config
def _config(**dataset):
    return {"datasets": {"mine": {"source": "local", "root": "x", **dataset}},
            "features": {"mel": {"kind": "logmel", "sample_rate": 16000}},
            "experiments": {"e": {"system": "baseline", "dataset": "mine", "feature": "mel"}}}


def test_config_names_own_data_by_type(tmp_path):
    with pytest.raises(configuration.ConfigError, match="unknown dataset type 'mine'.*set `type: audiofolder`"):
        configuration.check_references(_config())
    with pytest.raises(configuration.ConfigError, match="datasets.mine.clip_seconds: own recordings"):
        configuration.check_references(_config(type="audiofolder"))
    with pytest.raises(configuration.ConfigError, match="datasets.mine.source: a audiofolder dataset is your own"):
        configuration.check_references({**_config(type="audiofolder", clip_seconds=1.0),
                                        "datasets": {"mine": {"type": "audiofolder", "source": "official"}}})
    configuration.check_references(_config(type="audiofolder", clip_seconds=1.0))
    root = _folders(tmp_path / "d", classes=("a", "b"), speakers=("p",), takes=1)
    assert type_of("mine", {"type": "audiofolder"}) == "audiofolder" and type_of("mtt", {}) == "mtt"
    assert task_of("mine", {"type": "audiofolder", "root": str(root)}) == "multiclass"
    assert task_of("mine", {"type": "audiofolder", "root": str(root), "parse": {"task": "multilabel"}}) == \
        "multilabel"


# ------------------------------------------------------------------------------------------------ real data
def test_fsdd_as_class_folders_split_by_speaker(tmp_path, shared_data):
    from fsdd_folders import build

    root = build(shared_data / "fsdd", tmp_path / "fsdd", takes=10)
    m = audiofolder.parse(root, group_pattern="^[0-9]+_([a-z]+)_",
                          fractions={"train": 0.7, "validation": 0.15, "test": 0.15})
    t = m.table
    assert len(t) == 600 and len(m.classes) == 10 and set(t["sample_rate"]) == {8000}
    speakers = t.groupby("split")["group"].unique().map(set).to_dict()
    assert all(not (speakers[a] & speakers[b]) for a in speakers for b in speakers if a < b)
    assert json.dumps(sorted(t["split"].unique())) == '["test", "train", "validation"]'


def test_the_workflow_plans_own_data_with_its_inferred_task(tmp_path):
    """A dry run: the manifest and features jobs get the type (audiofolder), train the task the metadata implies."""
    from workflow_runs import arg, planned

    root = tmp_path / "tags"
    for i in range(4):
        _wav(root / f"c{i}.wav")
    _csv(root, "path,labels,split\nc0.wav,dog;cat,train\nc1.wav,cat,train\nc2.wav,dog,validation\nc3.wav,cat,test\n")
    cfg = {"datasets": {"my.tags": {"type": "audiofolder", "source": "local", "root": str(root), "clip_seconds": 0.5}},
           "features": {"mel": {"kind": "logmel", "sample_rate": 8000, "n_fft": 256, "hop_length": 128,
                                "n_mels": 16}},
           "experiments": {"tags_cnn": {"system": "smallcnn", "dataset": "my.tags", "feature": "mel"}}}
    jobs = {j["rule"]: j for j in planned(tmp_path, cfg)}
    assert jobs["manifest"]["shell"][3:5] == ["manifest", "audiofolder"]
    assert arg(jobs["features"]["shell"], "--dataset") == "audiofolder"
    assert '"clip_seconds": 0.5' in arg(jobs["features"]["shell"], "--spec")
    assert arg(jobs["train"]["shell"], "--task") == "multilabel"
    assert jobs["train"]["wildcards"]["dataset"] == "my.tags"
    assert arg(jobs["features"]["shell"], "--n-shards") == "2"  # the schema's default reaches own data
