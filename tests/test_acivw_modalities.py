"""ACIVW's three modalities (issue 14): 2-s samples of consecutive records, the acoustic image (MAT v5 and v7.3)
and video frames into shards, a malformed video reported and skipped, the real split counts."""
from __future__ import annotations

import io
import logging
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from soundbench import manifest as mf
from soundbench.datasets import acivw, get
from soundbench.features.extract import extract_shard
from soundbench.features.frames import frame_indices, resized_size
from soundbench.features.reader import ShardDataset
from soundbench.features.spec import FeatureSpec

MICS, W, H = 3, 40, 30


def _image(k: int, i: int) -> np.ndarray:
    """A distinct acoustic image per (class, frame): value = 1000 k + i + position code."""
    y, x, c = np.mgrid[0:36, 0:48, 0:12]
    return (1000.0 * k + i + y * 1e-2 + x * 1e-4 + c * 1e-6).astype(np.float32)


def _frame(k: int, i: int) -> np.ndarray:
    f = np.zeros((H, W, 3), np.uint8)
    f[..., 0], f[..., 1], f[..., 2] = 10 * k, i, 200  # R, G, B
    f[: H // 2, :, 2] = 100  # top half differs: an up-down flip would show
    return f


def _write_mat73(path: Path, mfcc: np.ndarray) -> None:
    """A MAT v7.3 file as MATLAB writes it: HDF5 behind a 512-byte header, the dimensions reversed."""
    with h5py.File(path, "w", userblock_size=512) as f:
        d = f.create_dataset("MFCC", data=np.ascontiguousarray(mfcc.T))
        d.attrs["MATLAB_class"] = np.bytes_("single")
    with open(path, "r+b") as fh:
        text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Wed Jan  1 00:00:00 2020 HDF5 schema 1.00 ."
        fh.write(text.ljust(116, b" ") + bytes(8) + b"\x00\x02IM")


def make_tree(root: Path, videos: dict[tuple[int, int], int], mat73: tuple = (), drop_mat: tuple = ()) -> Path:
    """class_<k>/data_<nnn>/{audio/A_*.dc, MFCC_Image/Data_<n>.mat, video/I_*.bmp}: `frames` per (class, video)."""
    for (k, v), frames in videos.items():
        d = root / f"class_{k}" / f"data_{v:03d}"
        for sub in ("audio", "MFCC_Image", "video"):
            (d / sub).mkdir(parents=True)
        for i in range(1, frames + 1):
            block = np.full((MICS, 1024), -7, dtype="<i4")
            block[0] = np.arange(1024) + 10000 * i + 1000000 * k
            block.flatten(order="F").tofile(d / "audio" / f"A_{i:06d}.dc")  # (mics x 1024), Fortran order
            buf = io.BytesIO()
            Image.fromarray(_frame(k, i), "RGB").save(buf, format="BMP")  # 24-bit BMP
            (d / "video" / f"I_{i:06d}.bmp").write_bytes(buf.getvalue())
            if ((k, v) in drop_mat) and i == frames:
                continue
            mat = d / "MFCC_Image" / f"Data_{i}.mat"
            if (k, v) in mat73:
                _write_mat73(mat, _image(k, i))
            else:
                savemat(mat, {"MFCC": _image(k, i)}, do_compression=True, format="5")
    return root


@pytest.fixture
def tree(tmp_path):
    # class 0: videos 1 (50 frames: 4 s), 2 (37 frames: 3 s, an odd second left over); class 1: video 4 in
    # MAT v7.3, video 5 malformed (one .mat missing)
    return make_tree(tmp_path / "ACIVW", {(0, 1): 50, (0, 2): 37, (1, 4): 26, (1, 5): 24}, mat73=((1, 4),),
                     drop_mat=((1, 5),))


def test_two_second_samples_never_across_videos(tree, caplog):
    lists = tree / "lists"
    lists.mkdir()
    (lists / "training.txt").write_text("".join(f"/Dataset/class_0/data_001/Data_{s:03d}.tfrecord\n"
                                                for s in (1, 2, 3, 4)) +
                                        "/Dataset/class_0/data_002/Data_001.tfrecord\n"  # partner in validation
                                        "/Dataset/class_1/data_004/Data_001.tfrecord\n"
                                        "/Dataset/class_1/data_004/Data_002.tfrecord\n"
                                        "/Dataset/class_1/data_005/Data_001.tfrecord\n"
                                        "/Dataset/class_1/data_005/Data_002.tfrecord\n")
    (lists / "validation.txt").write_text("/Dataset/class_0/data_002/Data_002.tfrecord\n"
                                          "/Dataset/class_0/data_002/Data_003.tfrecord\n")
    (lists / "testing.txt").write_text("")
    with caplog.at_level(logging.WARNING, logger="soundbench.datasets.acivw"):
        m = get("acivw").parse(tree)
    t = m.table.set_index("clip_id")
    assert sorted(t.index) == ["class_0/data_001/001-002", "class_0/data_001/003-004", "class_0/data_002/002-003",
                               "class_1/data_004/001-002"]
    assert t.loc["class_0/data_002/002-003", "split"] == "validation"
    assert t.loc["class_0/data_001/003-004", "start"] == 2.0 and t.loc["class_0/data_001/003-004", "duration"] == 2.0
    # the malformed video is named in the log and skipped; the unpaired record is counted
    assert "class_1/data_005 has 24 .bmp, 24 .dc and 23 .mat frames" in caplog.text
    assert "1 listed record(s) have no 1 consecutive partner(s)" in caplog.text
    # audio: mic 0 of the 24 frames of seconds 3-4
    audio, sr = acivw.load_audio(t.loc["class_0/data_001/003-004"].to_dict() | {"clip_id": "x"})
    assert sr == 12288 and audio.shape == (1, 24576)
    expected = np.concatenate([np.arange(1024) + 10000 * i for i in range(25, 49)]).astype(np.float32)
    assert np.array_equal(audio[0], expected)


def test_without_lists_whole_samples_per_video(tree):
    m = get("acivw").parse(tree)
    ids = set(m.table["clip_id"])
    assert ids == {"class_0/data_001/001-002", "class_0/data_001/003-004", "class_0/data_002/001-002",
                   "class_1/data_004/001-002"}
    assert m.table.groupby("group")["split"].nunique().max() == 1
    with pytest.raises(mf.ManifestError, match="sample_seconds must be a positive integer"):
        get("acivw").parse(tree, sample_seconds=0)


def _extract(tree, tmp_path, name, cfg):
    m = get("acivw").parse(tree)
    mpath = tmp_path / "manifest.csv"
    mf.write(m, mpath)
    spec = FeatureSpec.from_config(name, cfg)
    out = tmp_path / f"{name}.h5"
    stats = extract_shard(mpath, spec, 0, 1, out, load_audio=acivw.load_audio, load_frames=acivw.load_frames,
                          clip_seconds=2.0, skipped_path=tmp_path / f"{name}.skipped.csv", progress=False)
    ds = ShardDataset([out], m.table["clip_id"].tolist(), spec_hash=spec.resolved(2.0).hash())
    return stats, {cid: ds[i]["x"].numpy() for i, cid in enumerate(ds.clip_ids)}


def test_acoustic_images_flipped_from_mat_v5_and_v73(tree, tmp_path):
    stats, x = _extract(tree, tmp_path, "aimg", {"kind": "acoustic_image", "sample_rate": 12, "flip": "both"})
    assert stats["written"] == 4 and stats["skipped"] == 0
    a = x["class_0/data_001/003-004"]
    assert a.shape == (24, 36, 48, 12) and a.dtype == np.float32
    assert np.array_equal(a[0], _image(0, 25)[::-1, ::-1])  # frame 25 = the first of second 3, flipped
    v73 = x["class_1/data_004/001-002"]  # MAT v7.3 read back in MATLAB's order
    assert np.array_equal(v73[23], _image(1, 24)[::-1, ::-1])
    _, plain = _extract(tree, tmp_path, "aimg_noflip", {"kind": "acoustic_image", "sample_rate": 12})
    assert np.array_equal(plain["class_1/data_004/001-002"][5], _image(1, 6))


def test_video_frames_two_per_sample_resized(tree, tmp_path):
    cfg = {"kind": "video", "sample_rate": 12, "n_frames": 2, "short_side": 60}
    stats, x = _extract(tree, tmp_path, "video", cfg)
    assert stats["written"] == 4
    v = x["class_0/data_001/003-004"]
    assert v.shape == (2, 60, 80, 3) and v.dtype == np.uint8  # 40 x 30 -> 80 x 60, 2 of 24 frames
    assert list(frame_indices(FeatureSpec.from_config("v", cfg).resolved(2.0))) == [0, 23]
    assert v[1, 40, 10, 1] == 48 and v[0, 40, 10, 1] == 25  # green = frame number: frames 25 and 48
    assert v[0, 5, 5, 2] == 100 and v[0, 55, 5, 2] == 200  # top half blue 100, not flipped
    _, bgr = _extract(tree, tmp_path, "video_bgr", {**cfg, "channel_order": "bgr"})
    assert np.array_equal(bgr["class_0/data_001/003-004"], v[..., ::-1])
    assert resized_size(480, 640, 224) == (224, 298)  # the converter's 640 x 480 -> 298 x 224


def test_frame_specs_validated_and_audio_hashes_unchanged():
    with pytest.raises(ValueError, match="does not apply"):
        FeatureSpec.from_config("v", {"kind": "video", "sample_rate": 12, "n_mels": 3})
    with pytest.raises(ValueError, match="flip='x'"):
        FeatureSpec.from_config("a", {"kind": "acoustic_image", "sample_rate": 12, "flip": "x"})
    with pytest.raises(ValueError, match="dtype"):
        FeatureSpec.from_config("v", {"kind": "video", "sample_rate": 12, "dtype": "float32"})
    # the frame-only fields stay out of the audio specs' hashes
    spec = FeatureSpec.from_config("s", {"kind": "waveform", "sample_rate": 16000, "clip_seconds": 1.0})
    assert "flip" not in spec.fields() and "short_side" not in spec.fields()


def test_real_split_counts_from_lists_of_that_shape(tmp_path):
    # the original lists/*.txt: records per class and data directories per split (seed-specs 5.2); every video
    # here has an even number of seconds, so 2-s samples are exactly half
    shape = {"training": ((1274, 1336, 1274, 1348, 1348, 1346, 1346, 1344, 1292, 1348), 122),
             "validation": ((258, 240, 254, 240, 260, 260, 234, 218, 202, 258), 46),
             "testing": ((262, 322, 270, 246, 286, 270, 262, 268, 348, 264), 98)}
    root = tmp_path / "ACIVW"
    (root / "lists").mkdir(parents=True)
    (root / "class_0").mkdir()
    vid = 0
    for name, (per_class, dirs) in shape.items():
        lines = []
        for k, n in enumerate(per_class):
            n_dirs = dirs // 10 + (k < dirs % 10)
            pairs = np.full(n_dirs, (n // 2) // n_dirs)
            pairs[: (n // 2) % n_dirs] += 1
            for p in pairs:
                vid += 1
                lines += [f"/Dataset/class_{k}/data_{vid:03d}/Data_{s:03d}.tfrecord" for s in range(1, 2 * p + 1)]
        (root / "lists" / f"{name}.txt").write_text("\n".join(lines) + "\n")
    assert vid == 266
    ones = get("acivw").parse(root, allow_missing_audio=True, sample_seconds=1).table
    assert ones["split"].value_counts().to_dict() == {"train": 13256, "test": 2798, "validation": 2424}
    assert ones["group"].nunique() == 266
    twos = get("acivw").parse(root, allow_missing_audio=True).table
    assert twos["split"].value_counts().to_dict() == {"train": 6628, "test": 1399, "validation": 1212}


def test_an_unreadable_acoustic_image_skips_its_sample_naming_the_file(tree, tmp_path):
    (tree / "class_0" / "data_002" / "MFCC_Image" / "Data_5.mat").write_bytes(b"not a MATLAB file")
    m = get("acivw").parse(tree)
    mpath = tmp_path / "manifest.csv"
    mf.write(m, mpath)
    spec = FeatureSpec.from_config("aimg", {"kind": "acoustic_image", "sample_rate": 12})
    stats = extract_shard(mpath, spec, 0, 1, tmp_path / "a.h5", load_frames=acivw.load_frames, clip_seconds=2.0,
                          max_failed_fraction=0.5, skipped_path=tmp_path / "a.skipped.csv", progress=False)
    assert stats["skipped"] == 1 and stats["written"] == 3
    text = (tmp_path / "a.skipped.csv").read_text()
    assert "class_0/data_002/001-002" in text and "Data_5.mat: not a readable MATLAB file" in text
