"""The command line: the same steps without Snakemake."""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import pytest


def sb(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "soundbench", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


@pytest.mark.parametrize("dataset, tree, expect", [
    ("speech_commands", {"speech_commands_meta/v0.02/validation_list.txt": "validation_list.txt",
                         "speech_commands_meta/v0.02/testing_list.txt": "testing_list.txt"},
     "validation 9981, test 11005"),
    ("dcase2019_task1a", {"tau2019_task1a_meta/meta.csv": "meta.csv",
                          "tau2019_task1a_meta/evaluation_setup": "evaluation_setup"},
     "train 9185, validation 0, test 4185"),
    ("dcase2018_task4", {"dcase2018_task4_meta/train": "metadata/train", "dcase2018_task4_meta/test": "metadata/test"},
     "test 288"),
])
def test_manifest_reproduces_official_counts(shared_data, tmp_path, dataset, tree, expect):
    root = tmp_path / "root"
    for src, dst in tree.items():
        (root / dst).parent.mkdir(parents=True, exist_ok=True)
        (root / dst).symlink_to(shared_data / src)
    out = tmp_path / "manifest.csv"
    r = sb("manifest", dataset, "--root", root, "--out", out, "--allow-missing-audio")
    assert r.returncode == 0, r.stderr
    assert expect in r.stdout
    assert out.exists() and (tmp_path / "classes.txt").exists()


def test_manifest_without_allow_missing_names_the_file(shared_data, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    for f in ("validation_list.txt", "testing_list.txt"):
        (root / f).symlink_to(shared_data / "speech_commands_meta/v0.02" / f)
    r = sb("manifest", "speech_commands", "--root", root, "--out", tmp_path / "m.csv")
    assert r.returncode == 1
    assert "right/a69b9b3e_nohash_0.wav" in r.stderr or ".wav is missing" in r.stderr
    assert not (tmp_path / "m.csv").exists()


def test_describe_model_prints_the_parameter_count():
    r = sb("describe-model", "samplecnn", "--set", "block=se", "--set", "multi=true", "--set", "dataset=mtt")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["n_params"] == 2858066


def test_download_and_extract_commands(tmp_path):
    src = tmp_path / "a.zip"
    with zipfile.ZipFile(src, "w") as z:
        z.writestr("d/x.txt", "hello")
    import hashlib

    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    r = sb("download", src.as_uri(), tmp_path / "b.zip", "--sha256", sha, "--quiet")
    assert r.returncode == 0, r.stderr
    r = sb("download", src.as_uri(), tmp_path / "c.zip", "--sha256", "0" * 64, "--quiet")
    assert r.returncode == 1 and "sha256" in r.stderr.lower() and not (tmp_path / "c.zip").exists()
    r = sb("extract", tmp_path / "b.zip", tmp_path / "out")
    assert r.returncode == 0 and (tmp_path / "out/d/x.txt").read_text() == "hello"


def test_hostile_archive_is_refused_and_leaves_nothing(tmp_path):
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("ok.txt", "fine")
        z.writestr("../evil.txt", "escape")
    r = sb("extract", bad, tmp_path / "out")
    assert r.returncode == 1 and "evil.txt" in r.stderr
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.zip"]


def test_describe_model_takes_any_input_shape_and_reports_outputs():
    r = sb("describe-model", "smallcnn", "--set", "input_shape=[3, 128, 80]", "--set", "n_classes=7")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    # 3 conv blocks (3x3, no bias, BN) and the head: hand count
    convs = 3 * 16 * 9 + 16 * 32 * 9 + 32 * 64 * 9
    assert out["n_params"] == convs + 2 * (16 + 32 + 64) + 2 * 64 * 7 + 7
    assert out["outputs"] == {"logits": [7]} and out["input_shapes"] == {"x": [3, 128, 80]}
    r = sb("describe-model", "samplecnn", "--set", "dataset=speech_commands", "--set", "block=basic")
    out = json.loads(r.stdout)
    assert out["input_shapes"] == {"x": [1, 22050]} and out["outputs"] == {"logits": [35]}
