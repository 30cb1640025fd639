"""The demo synthesisers: reproducible releases in the real archive formats, and a make -> extract -> parse
roundtrip through the project's own extractor and parsers (skipped where those are not there yet).

Everything runs on tiny sizes (options of each make()) so the module stays well under a minute.
"""
from __future__ import annotations

import csv
import hashlib
import importlib
import io
import re
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from demo_sizes import SMALL

from soundbench.datasets import NAMES, make_demo
from soundbench.datasets.base import Release


@pytest.fixture(scope="module")
def releases(tmp_path_factory) -> dict[str, tuple[Path, Release]]:
    out = {}
    for name in NAMES:
        d = tmp_path_factory.mktemp(f"demo-{name}")
        out[name] = (d, make_demo(name, d, seed=3, **SMALL[name]))
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------ release files

@pytest.mark.parametrize("name", NAMES)
def test_release_files_match_checksums(releases, name):
    d, rel = releases[name]
    assert rel.files and rel.unpack
    names = {f.name for f in rel.files}
    for f in rel.files:
        path = d / f.name
        assert path.is_file(), f.name
        assert f.url == d.resolve().as_uri() + "/" + f.name
        assert f.size == path.stat().st_size
        assert f.sha256 == _sha256(path)
    for u in rel.unpack:
        assert set(u.parts) <= names
        assert u.kind in ("zip", "tar", "file")
    # every release file is unpacked exactly once
    assert sorted(p for u in rel.unpack for p in u.parts) == sorted(names)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_bytes(releases, tmp_path, name):
    _, rel = releases[name]
    again = make_demo(name, tmp_path, seed=3, **SMALL[name])
    assert [(f.name, f.sha256, f.size) for f in again.files] == [(f.name, f.sha256, f.size) for f in rel.files]


def test_other_seed_other_bytes(releases, tmp_path):
    _, rel = releases["speech_commands"]
    other = make_demo("speech_commands", tmp_path, seed=4, **SMALL["speech_commands"])
    assert other.files[0].sha256 != rel.files[0].sha256


# ------------------------------------------------------------------------------------------ formats

def test_mtt_split_zip_and_quoted_annotations(releases):
    d, rel = releases["mtt"]
    (unpack_ann, unpack_mp3) = rel.unpack
    assert unpack_ann.parts == ("annotations_final.csv",) and unpack_ann.kind == "file"
    assert unpack_mp3.parts == ("mp3.zip.001", "mp3.zip.002", "mp3.zip.003") and unpack_mp3.dest == "mp3"
    data = b"".join((d / p).read_bytes() for p in unpack_mp3.parts)
    assert all((d / p).stat().st_size > 0 for p in unpack_mp3.parts)
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(d / "mp3.zip.001")  # a part alone is not a zip
    zf = zipfile.ZipFile(io.BytesIO(data))
    assert zf.testzip() is None
    mp3s = [n for n in zf.namelist() if not n.endswith("/")]
    pat = re.compile(r"^[0-9a-f]/[a-z0-9_]+-[a-z0-9_]+-\d\d-[a-z0-9_]+-\d+-\d+\.mp3$")
    assert mp3s and all(pat.match(n) for n in mp3s), mp3s[:3]
    raw = (d / "annotations_final.csv").read_bytes()
    assert raw.endswith(b"\r\n")
    rows = list(csv.reader(io.StringIO(raw.decode()), delimiter="\t"))
    header = rows[0]
    assert header[0] == "clip_id" and header[-1] == "mp3_path" and "guitar" in header
    assert raw.startswith(b'"clip_id"\t"')  # every field quoted, as the real file
    assert sorted(r[-1] for r in rows[1:]) == sorted(mp3s)
    ids = [int(r[0]) for r in rows[1:]]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert {v for r in rows[1:] for v in r[1:-1]} <= {"0", "1"}
    x, sr = sf.read(io.BytesIO(zf.read(mp3s[0])))
    assert sr == 16000 and x.ndim == 1 and len(x) >= 2.0 * sr


def test_speech_commands_tarball(releases):
    d, rel = releases["speech_commands"]
    assert rel.files[0].name == "speech_commands_v0.02.tar.gz" and rel.unpack[0].kind == "tar"
    with tarfile.open(d / rel.files[0].name, "r:gz") as tf:
        names = tf.getnames()
        files = {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}
    assert all(n == "." or n.startswith("./") for n in names)  # tarfile shows the "./" entry as "."
    for must in ("./LICENSE", "./README.md", "./validation_list.txt", "./testing_list.txt"):
        assert must in files
    noise = [n for n in files if n.startswith("./_background_noise_/") and n.endswith(".wav")]
    assert noise
    clips = [n for n in files if n.endswith(".wav") and n not in noise]
    pat = re.compile(r"^\./(yes|no|up)/[0-9a-f]{8}_nohash_\d+\.wav$")
    assert clips and all(pat.match(n) for n in clips), clips[:3]
    lengths = []
    for n in clips:
        info = sf.info(io.BytesIO(files[n]))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert info.frames <= 16000
        lengths.append(info.frames)
    assert min(lengths) < 16000 and max(lengths) == 16000  # some clips shorter than 1 s, as real
    nlen = sf.info(io.BytesIO(files[noise[0]])).frames
    assert nlen > 16000
    speakers = {}
    for lst in ("./validation_list.txt", "./testing_list.txt"):
        text = files[lst].decode()
        assert text and not text.endswith("\n")  # no trailing newline, as the real v0.02 lists
        lines = text.split("\n")
        assert all("./" + line in files for line in lines)
        speakers[lst] = {line.split("/")[1].split("_nohash_")[0] for line in lines}
    listed = set(files["./validation_list.txt"].decode().split("\n")) | set(
        files["./testing_list.txt"].decode().split("\n"))
    speakers["train"] = {n.split("/")[2].split("_nohash_")[0] for n in clips if n[2:] not in listed}
    # chosen by speaker hash: a speaker's clips are all in one split
    a_, b_, c_ = speakers.values()
    assert not (a_ & b_) and not (a_ & c_) and not (b_ & c_)


def test_dcase2017_encrypted_zips(releases):
    d, rel = releases["dcase2017_task4"]
    zips = [u for u in rel.unpack if u.kind == "zip"]
    labels = [u for u in rel.unpack if u.kind == "file"]
    assert {u.parts[0] for u in zips} == {"Task_4_DCASE_2017_training_set.zip", "Task_4_DCASE_2017_testing_set.zip",
                                          "DCASE_2017_evaluation_set_audio_files.zip"}
    assert {u.password for u in zips} == {"DCASE_2017_training_set", "DCASE_2017_testing_set",
                                          "DCASE_2017_evaluation_set"}
    audio = {}
    for u in zips:
        zf = zipfile.ZipFile(d / u.parts[0])
        wavs = [i for i in zf.infolist() if not i.filename.endswith("/")]
        assert wavs and all(i.flag_bits & 0x1 for i in wavs)  # encrypted
        with pytest.raises(RuntimeError):
            zf.read(wavs[0])  # no password
        with pytest.raises(RuntimeError):
            zf.read(wavs[0], pwd=b"wrong password")
        for i in wavs:
            audio[i.filename.split("/")[-1]] = (i.filename.split("/")[0], zf.read(i, pwd=u.password.encode()))
    info = sf.info(io.BytesIO(next(iter(audio.values()))[1]))
    assert (info.samplerate, info.channels, info.subtype) == (44100, 1, "PCM_16")
    folders = {"groundtruth_weak_label_training_set.csv":
               "unbalanced_train_segments_training_set_audio_formatted_and_segmented_downloads",
               "groundtruth_weak_label_testing_set.csv":
               "unbalanced_train_segments_testing_set_audio_formatted_and_segmented_downloads",
               "groundtruth_weak_label_evaluation_set.csv": "evaluation_set_formatted_audio_segments"}
    seen = set()
    for u in labels:
        text = (d / u.parts[0]).read_bytes().decode()
        lines = text.splitlines()
        assert lines and text.endswith("\n")
        for line in lines:
            f, start, end, label = line.split("\t")
            assert re.match(r"^[A-Za-z0-9_-]{11}_\d+\.000_\d+\.\d{3}\.wav$", f)
            assert float(end) > float(start)
            assert audio["Y" + f][0] == folders[u.parts[0]]
            seen.add(label)
    assert any("," in s for s in seen) or any("(" in s for s in seen)


@pytest.mark.parametrize("name,top,ext,header", [
    ("dcase2018_task1a", "TUT-urban-acoustic-scenes-2018-development", "txt", False),
    ("dcase2019_task1a", "TAU-urban-acoustic-scenes-2019-development", "csv", True)])
def test_scene_zips(releases, name, top, ext, header):
    d, rel = releases[name]
    assert [f.name for f in rel.files] == [f"{top}.doc.zip", f"{top}.meta.zip", f"{top}.audio.1.zip",
                                           f"{top}.audio.2.zip"]
    members = {}
    for f in rel.files:
        zf = zipfile.ZipFile(d / f.name)
        for n in zf.namelist():
            assert n.startswith(top + "/")
            if not n.endswith("/"):
                members[n[len(top) + 1:]] = zf.read(n)
    meta = members["meta.csv"].decode().splitlines()
    assert meta[0].split("\t") == ["filename", "scene_label", "identifier", "source_label"]
    rows = [r.split("\t") for r in meta[1:]]
    wavs = sorted(n for n in members if n.endswith(".wav"))
    assert sorted(r[0] for r in rows) == wavs
    for fn, scene, ident, src in rows:
        m = re.match(r"^audio/([a-z_]+)-([a-z]+)-(\d+)-(\d+)-a\.wav$", fn)
        assert m and m.group(1) == scene and f"{m.group(2)}-{m.group(3)}" == ident and src == "a"

    def fold(n):
        lines = members[f"evaluation_setup/fold1_{n}.{ext}"].decode().splitlines()
        if header:
            assert lines[0] == ("filename" if n == "test" else "filename\tscene_label")
            lines = lines[1:]
        return [ln.split("\t") for ln in lines]

    train, evaluate, test = fold("train"), fold("evaluate"), fold("test")
    assert [r[0] for r in test] == [r[0] for r in evaluate]
    assert sorted(r[0] for r in train + evaluate) == wavs
    ident = {r[0]: r[2] for r in rows}
    assert not {ident[r[0]] for r in train} & {ident[r[0]] for r in evaluate}  # split by location
    scenes = {r[1] for r in rows}
    assert len(scenes) == 10 and {r[1] for r in train} == scenes == {r[1] for r in evaluate}
    x, sr = sf.read(io.BytesIO(members[wavs[0]]))
    info = sf.info(io.BytesIO(members[wavs[0]]))
    assert (sr, info.channels, info.subtype) == (48000, 2, "PCM_24")
    assert not np.allclose(x[:, 0], x[:, 1])  # a real stereo image, not a copied channel


def test_dcase2018_task4_strong_labels_match_audio(releases):
    d, rel = releases["dcase2018_task4"]
    assert {(u.parts[0], u.dest) for u in rel.unpack} == {("weak.csv", "metadata/train"),
                                                           ("test.csv", "metadata/test"), ("audio.zip", ".")}
    zf = zipfile.ZipFile(d / "audio.zip")
    weak = (d / "weak.csv").read_text().splitlines()
    test = (d / "test.csv").read_text().splitlines()
    assert weak[0] == "filename\tevent_labels" and test[0] == "filename\tonset\toffset\tevent_label"
    for line in weak[1:]:
        f, labels = line.split("\t")
        assert labels and labels.split(",") == sorted(labels.split(","))
        zf.getinfo(f"audio/train/weak/{f}")
    events: dict[str, list] = {}
    for line in test[1:]:
        f, on, off, label = line.split("\t")
        events.setdefault(f, []).append((float(on), float(off), label))
    assert len(events) == 8 and max(len(v) for v in events.values()) > 1
    checked = 0
    for f, evs in events.items():
        x, sr = sf.read(io.BytesIO(zf.read(f"audio/test/{f}")))
        assert sr == 44100 and x.ndim == 1
        dur = len(x) / sr
        inside = np.zeros(len(x), bool)
        for on, off, label in evs:
            assert 0 <= on < off <= dur + 1e-3 and off - on >= 0.25
            inside[int(on * sr):int(off * sr)] = True
        if inside.mean() < 0.9 and (~inside).sum() > 0.3 * sr:
            e_in, e_out = np.mean(x[inside] ** 2), np.mean(x[~inside] ** 2)
            assert e_in > 2 * e_out, (f, 10 * np.log10(e_in / e_out))
            checked += 1
    assert checked >= 1


def test_acivw_raw_layout(releases):
    from PIL import Image
    from scipy.io import loadmat

    d, rel = releases["acivw"]
    zf = zipfile.ZipFile(d / "ACIVW.zip")
    names = set(zf.namelist())
    videos = sorted({"/".join(n.split("/")[:2]) for n in names if n.startswith("class_") and n.count("/") >= 2})
    assert len(videos) == 12
    for v in videos[:4]:
        dc = sorted(n for n in names if n.startswith(v + "/audio/") and n.endswith(".dc"))
        mats = sorted(n for n in names if n.startswith(v + "/MFCC_Image/") and n.endswith(".mat"))
        bmps = sorted(n for n in names if n.startswith(v + "/video/") and n.endswith(".bmp"))
        assert len(dc) == len(mats) == len(bmps) >= 12
        assert f"{v}/audio/A_000001.dc" in names and f"{v}/MFCC_Image/Data_1.mat" in names
        assert f"{v}/video/I_000001.bmp" in names
        raw = np.frombuffer(zf.read(dc[0]), "<i4")
        assert raw.size == 3 * 1024
        frame = raw.reshape((3, 1024), order="F")
        assert np.abs(frame[0]).max() > 0 and np.abs(frame).max() < 2 ** 23
        mfcc = loadmat(io.BytesIO(zf.read(mats[0])))["MFCC"]
        assert mfcc.shape == (36, 48, 12) and mfcc.dtype == np.float32
        img = Image.open(io.BytesIO(zf.read(bmps[0])))
        assert img.format == "BMP" and img.mode == "RGB" and img.size == (64, 48)
    lines = {}
    for split in ("training", "validation", "testing"):
        text = zf.read(f"lists/{split}.txt").decode()
        assert text.endswith("\n")
        lines[split] = text.splitlines()
        for ln in lines[split]:
            m = re.match(r"^/Dataset/(class_\d/data_\d{3})/Data_(\d{3})\.tfrecord$", ln)
            assert m and m.group(1) in videos
            assert f"{m.group(1)}/video/I_{12 * int(m.group(2)):06d}.bmp" in names
    by_split = {s: {ln.split("/")[2] + "/" + ln.split("/")[3] for ln in v} for s, v in lines.items()}
    assert not (by_split["training"] & by_split["testing"]) and not (by_split["training"] & by_split["validation"])
    assert set().union(*by_split.values()) == set(videos)


# ------------------------------------------------------------------------------------------ roundtrip

def _parser(name):
    try:
        mod = importlib.import_module(f"soundbench.datasets.{name}")
    except ImportError as e:
        pytest.skip(f"parser soundbench.datasets.{name} is not there yet ({e})")
    if not hasattr(mod, "DATASET"):
        pytest.skip(f"soundbench.datasets.{name} defines no DATASET yet")
    return mod.DATASET


@pytest.mark.parametrize("name", NAMES)
def test_roundtrip_make_extract_parse(releases, tmp_path, name):
    try:
        from soundbench.fetch.extract import extract
    except ImportError as e:
        pytest.skip(f"soundbench.fetch.extract.extract is not there yet ({e})")
    info = _parser(name)
    d, rel = releases[name]
    root = tmp_path / name
    for u in rel.unpack:
        extract([d / p for p in u.parts], root / u.dest, kind=u.kind, password=u.password)
    manifest = info.parse(root)
    counts = manifest.counts()
    assert counts["train"] > 0 and counts["test"] > 0 and counts["missing"] == 0, counts
    classes = set(manifest.classes)
    for labels in manifest.label_lists():
        assert set(labels) <= classes
    assert any(manifest.label_lists())
