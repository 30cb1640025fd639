"""HDF5 shards (writer, checks), the ShardDataset reader and extract_shard."""
from __future__ import annotations

import csv

import h5py
import numpy as np
import pytest
import soundfile as sf
import torch

from soundbench import manifest
from soundbench.features.extract import ExtractError, clip_feature, extract_shard
from soundbench.features.reader import Segments, ShardDataset, available_clip_ids
from soundbench.features.shards import ShardMismatch, ShardWriter, check_shard, shard_of, source_hash
from soundbench.features.spec import FeatureSpec
from soundbench.training.data import RecordDataset

ATTRS = {"spec": "{}", "spec_hash": "s" * 16, "source_hash": "r" * 16, "resampler": "soxr_hq"}


def _write(path, arrays: dict[str, np.ndarray], lengths=None, attrs=ATTRS) -> list[str]:
    """Write a shard whose clip i holds arrays[name][i]; returns the clip ids."""
    n = len(next(iter(arrays.values())))
    ids = [f"clip{i:03d}" for i in range(n)]
    with ShardWriter(path, attrs, n) as w:
        for i, cid in enumerate(ids):
            w.add(cid, {k: v[i] for k, v in arrays.items()}, length=lengths[i] if lengths is not None else 7)
    return ids


# -- shard_of, writer, checks ---------------------------------------------------------------------
def test_shard_of_is_stable():
    # fixed values: sha1-based, so they hold on every machine and Python version
    ids = ("a", "clip-1", "airport-barcelona-0-0-a")
    assert [shard_of(c, 16) for c in ids] == [12, 10, 0]
    assert [shard_of(c, 1000) for c in ids] == [108, 418, 288]
    assert shard_of("a", 16) == int.from_bytes(bytes.fromhex("86f7e437faa5a7fc"), "big") % 16
    counts = np.bincount([shard_of(f"id{i}", 8) for i in range(4000)], minlength=8)
    assert counts.min() > 400  # roughly uniform


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_roundtrip_and_attrs(tmp_path, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 2, 8, 10)).astype(dtype)
    audio = rng.standard_normal((5, 1, 100)).astype(np.float32)
    path = tmp_path / "s.h5"
    ids = _write(path, {"x": x, "audio": audio}, lengths=[10, 9, 8, 7, 6])
    with h5py.File(path) as f:
        assert f["x"].dtype == dtype and f["x"].shape == (5, 2, 8, 10) and f["x"].chunks is None
        np.testing.assert_array_equal(f["x"][()], x)
        np.testing.assert_array_equal(f["audio"][()], audio)
        assert list(f["clip_id"].asstr()[()]) == ids and list(f["length"][()]) == [10, 9, 8, 7, 6]
        assert f.attrs["spec_hash"] == "s" * 16 and f.attrs["soundbench_version"] and f.attrs["created"]
    check_shard(path, "s" * 16, "r" * 16)


def test_fewer_clips_than_announced_are_repacked(tmp_path):
    path = tmp_path / "s.h5"
    with ShardWriter(path, ATTRS, 4) as w:
        for i in range(2):
            w.add(f"c{i}", {"x": np.full((3,), i, np.float32)}, 3)
    with h5py.File(path) as f:
        assert f["x"].shape == (2, 3) and f["length"].shape == (2,) and f["clip_id"].shape == (2,)
        np.testing.assert_array_equal(f["x"][1], [1, 1, 1])
        assert f.attrs["spec_hash"] == "s" * 16
    assert not (tmp_path / "s.h5.tmp").exists()


def test_empty_shard_is_valid(tmp_path):
    path = tmp_path / "empty.h5"
    with ShardWriter(path, ATTRS, 0, layout={"x": ((2, 4, 5), "float16")}):
        pass
    check_shard(path, "s" * 16)
    with h5py.File(path) as f:
        assert f["x"].shape == (0, 2, 4, 5) and f["clip_id"].shape == (0,)
    assert available_clip_ids([path]) == set()
    ds = ShardDataset([path], [], spec_hash="s" * 16, view=Segments(3))
    assert len(ds) == 0


def test_exception_leaves_no_file_and_keeps_old_shard(tmp_path):
    path = tmp_path / "s.h5"
    with pytest.raises(RuntimeError):
        with ShardWriter(path, ATTRS, 2) as w:
            w.add("a", {"x": np.zeros(3, np.float32)}, 3)
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    _write(path, {"x": np.ones((1, 3), np.float32)})
    with pytest.raises(ValueError, match="shape"):
        with ShardWriter(path, ATTRS, 2) as w:
            w.add("a", {"x": np.zeros(3, np.float32)}, 3)
            w.add("b", {"x": np.zeros(4, np.float32)}, 3)
    with h5py.File(path) as f:
        np.testing.assert_array_equal(f["x"][0], [1, 1, 1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]


def test_check_shard_names_file_and_hash(tmp_path):
    path = tmp_path / "s.h5"
    _write(path, {"x": np.zeros((1, 3), np.float32)})
    with pytest.raises(ShardMismatch, match=r"s\.h5.*spec_hash"):
        check_shard(path, "0" * 16)
    with pytest.raises(ShardMismatch, match=r"s\.h5.*source_hash"):
        check_shard(path, "s" * 16, "0" * 16)
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        check_shard(tmp_path / "nope.h5", "s" * 16)


def test_source_hash_depends_on_rows():
    rows = [{"clip_id": "a", "path": "/x/a.wav", "start": 0.0, "duration": float("nan")},
            {"clip_id": "b", "path": "/x/b.wav", "start": 1.0, "duration": 1.0}]
    assert source_hash(rows) == source_hash(rows[::-1])
    assert source_hash(rows) != source_hash([rows[0], {**rows[1], "start": 2.0}])


# -- reader ---------------------------------------------------------------------------------------
@pytest.fixture
def two_shards(tmp_path):
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((4, 2, 3, 20)).astype(np.float32), rng.standard_normal((3, 2, 3, 20)).astype(np.float32)]
    paths, ids = [], []
    for s, x in enumerate(xs):
        p = tmp_path / f"shard{s}.h5"
        with ShardWriter(p, ATTRS, len(x)) as w:
            for i in range(len(x)):
                w.add(f"s{s}c{i}", {"x": x[i]}, length=20 - 3 * i)
                ids.append(f"s{s}c{i}")
        paths.append(p)
    data = {cid: x[i] for s, x in enumerate(xs) for i, cid in enumerate(c for c in ids if c.startswith(f"s{s}"))}
    return paths, ids, data


def test_reader_whole_clips(two_shards):
    paths, ids, data = two_shards
    order = ids[::-1]
    mean, std = np.array([1.0, 2.0], np.float32)[:, None, None], np.array([2.0, 4.0], np.float32)[:, None, None]
    ds = ShardDataset(paths, order, spec_hash="s" * 16, normalize=(mean, std))
    assert len(ds) == 7 and available_clip_ids(paths) == set(ids)
    item = ds[2]
    assert item["clip"] == 2 and item["start"] == 0 and item["x"].dtype == torch.float32
    np.testing.assert_allclose(item["x"].numpy(), (data[order[2]] - mean) / std, rtol=1e-6)


def test_reader_errors(two_shards):
    paths, ids, _ = two_shards
    with pytest.raises(KeyError, match="'ghost'"):
        ShardDataset(paths, ids + ["ghost"], spec_hash="s" * 16)
    with pytest.raises(ShardMismatch, match="shard0.h5"):
        ShardDataset(paths, ids, spec_hash="0" * 16)
    for view in (Segments(21), Segments(21, stack=1, within="clip")):  # the arrays hold 20 steps: not one segment
        with pytest.raises(ValueError, match=r"shard1.h5: clip 's1c0' has 20 steps, shorter than one segment of 21"):
            ShardDataset(paths, ids[4:] + ids[:4], spec_hash="s" * 16, view=view)


def test_reader_segments_and_targets_follow(two_shards):
    paths, ids, data = two_shards
    targets = np.stack([np.full((20, 2), i, np.float32) + np.arange(20)[:, None] for i in range(len(ids))])
    # lengths 20, 17, 14, 11 -> segments of 6 (hop 6): 3, 2, 2, 1
    reader = ShardDataset(paths, ids, spec_hash="s" * 16, view=Segments(6, targets_follow=True))
    ds = RecordDataset(ids, {"frames": targets, "y": np.arange(len(ids))}, {"x": reader})
    assert list(ds.examples_per_clip()) == [3, 2, 2, 1, 3, 2, 2]
    item = ds[1]  # clip 0, second segment
    assert item["clip"] == 0 and item["inputs"]["x"].shape == (2, 3, 6) and int(item["y"]) == 0
    np.testing.assert_array_equal(item["inputs"]["x"].numpy(), data[ids[0]][..., 6:12])
    np.testing.assert_array_equal(item["frames"].numpy()[:, 0], np.arange(6, 12))
    keep = ShardDataset(paths, ids, spec_hash="s" * 16, view=Segments(6, hop=4, drop_remainder=False))
    assert keep.examples_per_clip()[0] == 5  # starts 0, 4, 8, 12, 16 (the last is zero-padded)
    last = keep[4]["x"].numpy()
    np.testing.assert_array_equal(last[..., :4], data[ids[0]][..., 16:20])
    assert not last[..., 4:].any()


def test_segment_counts():
    assert len(Segments(59049).starts(29 * 22050)) == 10  # SampleCNN MTT
    assert len(Segments(22050).starts(22050)) == 1  # SampleCNN speech commands
    assert list(Segments(80, hop=55).starts(469)) == [0, 55, 110, 165, 220, 275, 330, 385]  # SeNoT
    assert list(Segments(100).starts(30)) == [0]  # shorter than a segment: one, from the padded array


def test_reader_waveform_segments_mtt(tmp_path):
    spec = FeatureSpec.from_config("samplecnn", {"kind": "waveform", "sample_rate": 22050}).resolved(29)
    x = np.random.default_rng(2).standard_normal((2, 1, spec.n_samples)).astype(np.float32)
    with ShardWriter(tmp_path / "w.h5", {**ATTRS, "spec_hash": spec.hash()}, 2) as w:
        w.add("long", {"x": x[0]}, spec.n_samples)
        w.add("short", {"x": x[1]}, 1000)
    ds = ShardDataset([tmp_path / "w.h5"], ["long", "short"], spec_hash=spec.hash(), view=Segments(59049))
    assert list(ds.examples_per_clip()) == [10, 1] and len(ds) == 11
    np.testing.assert_array_equal(ds[9]["x"].numpy(), x[0][:, 9 * 59049: 10 * 59049])
    assert ds[10]["x"].shape == (1, 59049) and ds[10]["clip"] == 1


def test_dataloader_workers_match(two_shards):
    paths, ids, _ = two_shards
    ds = ShardDataset(paths, ids, spec_hash="s" * 16, view=Segments(5))
    ds[0]  # an open handle in the parent must not leak into the workers
    runs = []
    for workers in (0, 2):
        loader = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=False, num_workers=workers)
        runs.append([(b["x"], b["start"], b["clip"]) for b in loader])
    assert len(runs[0]) == len(runs[1]) > 1
    for (x0, y0, c0), (x1, y1, c1) in zip(*runs):
        assert torch.equal(x0, x1) and torch.equal(y0, y1) and torch.equal(c0, c1)


# -- extract --------------------------------------------------------------------------------------
def _dataset(tmp_path, n: int, corrupt: int, sr: int = 16000, seconds: float = 0.5):
    rng = np.random.default_rng(3)
    rows = []
    for i in range(n):
        p = tmp_path / "audio" / f"c{i}.wav"
        p.parent.mkdir(exist_ok=True)
        if i < corrupt:
            p.write_bytes(b"RIFF....WAVEfmt garbage")
        else:
            secs = seconds if i % 2 else seconds / 2  # half the clips are short and get padded
            sf.write(p, (0.1 * rng.standard_normal((int(secs * sr), 2))).astype(np.float32), sr)
        rows.append({"clip_id": f"c{i}", "path": str(p), "split": "train", "labels": "a"})
    m = manifest.build(rows)
    manifest.write(m, tmp_path / "manifest.csv")
    return tmp_path / "manifest.csv"


def test_extract_shard_skips_corrupt_clip(tmp_path):
    man = _dataset(tmp_path, 10, corrupt=1)
    spec = FeatureSpec.from_config("mel", {"kind": "logmel", "sample_rate": 22050, "channels": "stereo",
                                           "n_mels": 16, "n_fft": 512, "hop_length": 256, "dtype": "float16"})
    out, skipped = tmp_path / "feat/shard0.h5", tmp_path / "feat/shard0.skipped.csv"
    stats = extract_shard(man, spec, 0, 1, out, clip_seconds=0.5, max_failed_fraction=0.2,
                          skipped_path=skipped, progress=False)
    assert stats["clips"] == 10 and stats["written"] == 9 and stats["skipped"] == 1
    rows = list(csv.DictReader(open(skipped)))
    assert [r["clip_id"] for r in rows] == ["c0"] and "c0.wav" in rows[0]["path"] and rows[0]["reason"]
    resolved = spec.resolved(0.5)
    check_shard(out, resolved.hash(), stats["source_hash"])
    ids = sorted(available_clip_ids([out]))
    assert "c0" not in ids and len(ids) == 9
    ds = ShardDataset([out], ids, spec_hash=resolved.hash())
    x1 = ds[ids.index("c1")]["x"].numpy()
    y, sr = sf.read(tmp_path / "audio/c1.wav", dtype="float32", always_2d=True)
    expected, length = clip_feature(y.T, sr, resolved)
    assert x1.shape == resolved.output_shape() == (2, 16, 44)
    np.testing.assert_allclose(x1, expected.astype(np.float32), atol=1e-2)
    with h5py.File(out) as f:
        lengths = dict(zip(f["clip_id"].asstr()[()], f["length"][()]))
        assert f.attrs["resampler"] == "soxr_hq" and f["x"].dtype == np.float16
    assert lengths["c1"] == 44 and lengths["c2"] == 1 + 5512 // 256  # c2 is 0.25 s, zero-padded


def test_extract_shard_threshold(tmp_path):
    man = _dataset(tmp_path, 10, corrupt=2)
    spec = FeatureSpec.from_config("wave", {"kind": "waveform", "sample_rate": 8000, "pad": "repeat"})
    out, skipped = tmp_path / "shard0.h5", tmp_path / "skipped.csv"
    with pytest.raises(ExtractError, match=r"c0\.wav"):
        extract_shard(man, spec, 0, 1, out, clip_seconds=0.5, skipped_path=skipped, progress=False)
    assert not out.exists() and not (tmp_path / "shard0.h5.tmp").exists()
    # a looser threshold passes; waveform features are the samples, sample-and-hold padded
    stats = extract_shard(man, spec, 0, 1, out, clip_seconds=0.5, max_failed_fraction=0.25,
                          skipped_path=skipped, progress=False)
    assert stats["written"] == 8
    with h5py.File(out) as f:
        assert f["x"].shape == (8, 1, 4000)


def test_extract_shard_partition_and_loader(tmp_path):
    man = _dataset(tmp_path, 12, corrupt=0)
    spec = FeatureSpec.from_config("wave", {"kind": "waveform", "sample_rate": 16000, "channels": "mono"})

    def load(row):  # a dataset's own loader (e.g. ACIVW) gets the manifest row
        y, sr = sf.read(row["path"], dtype="float32", always_2d=True)
        return y.T * 0 + 1.0, sr

    seen = []
    for shard in range(3):
        out = tmp_path / f"s{shard}.h5"
        extract_shard(man, spec, shard, 3, out, clip_seconds=0.5, load_audio=load,
                      skipped_path=tmp_path / f"s{shard}.csv", progress=False)
        seen += sorted(available_clip_ids([out]))
        with h5py.File(out) as f:
            assert f["x"].shape[1:] == (1, 8000)
            valid = f["length"][()]
            for row, n in enumerate(valid):
                x = f["x"][row, 0]
                assert (x[:n] == 1).all() and not x[n:].any()
    assert sorted(seen) == sorted(f"c{i}" for i in range(12))


@pytest.mark.shared
def test_extract_real_tau_clip(tmp_path, shared_data):
    wav = (shared_data / "soundata_clips/tau2019uas/TAU-urban-acoustic-scenes-2019-development/audio/"
           "airport-barcelona-0-0-a.wav")
    manifest.write(manifest.build([{"clip_id": "airport-barcelona-0-0-a", "path": str(wav), "split": "train",
                                    "labels": "airport"}]), tmp_path / "manifest.csv")
    spec = FeatureSpec.from_config("senot", {"kind": "logmel", "sample_rate": 48000, "channels": "lrd",
                                             "n_fft": 2048, "hop_length": 1024, "n_mels": 128, "mel_scale": "htk",
                                             "mel_norm": "none", "log": "ln", "log_eps": 1e-8})
    stats = extract_shard(tmp_path / "manifest.csv", spec, 0, 1, tmp_path / "s.h5", clip_seconds=10,
                          skipped_path=tmp_path / "s.csv", progress=False)
    assert stats["written"] == 1
    with h5py.File(tmp_path / "s.h5") as f:
        n = sf.info(wav).frames
        assert f["x"].shape == (1, 3, 128, 469) and f["length"][0] == 1 + n // 1024
