"""Issue 15, break 6: a damaged shard is named (with how to rebuild it) instead of failing with an HDF5 message
that names no file, or of being used silently; the job moves it aside so the next Snakemake run rebuilds it."""
from __future__ import annotations

import json
import logging

import h5py
import numpy as np
import pytest

from soundbench.features import shards
from soundbench.features.reader import ShardDataset, read_index
from soundbench.features.shards import ShardDamaged, ShardWriter, verify_checksums


def _write(path, n=6, planned=None, shape=(1, 8, 50)):
    rng = np.random.default_rng(0)
    with ShardWriter(path, {"spec_hash": "s" * 16}, n_items=planned or n) as w:
        for i in range(n):
            w.add(f"clip{i}", {"x": rng.standard_normal(shape).astype(np.float32)}, length=shape[-1] - i)
    return path


def _zero_bytes(path, name="x", at=0.5, count=64):
    """Overwrite `count` bytes in the middle of a stored array with zeros (what a bad disk block does)."""
    with h5py.File(path, "r") as f:
        ds = f[name]
        offset = ds.id.get_offset() + int(ds.id.get_storage_size() * at)
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(b"\0" * count)


def test_a_clean_shard_verifies_also_after_a_repack(tmp_path):
    assert verify_checksums(_write(tmp_path / "a.h5"))
    assert verify_checksums(_write(tmp_path / "b.h5", n=4, planned=9))  # decode failures: repacked to 4 rows
    with h5py.File(tmp_path / "b.h5", "r") as f:
        assert set(json.loads(f.attrs["checksums"])) == {"x", "length", "clip_id"}


def test_zeroed_bytes_are_caught_and_the_shard_moved_aside(tmp_path):
    path = _write(tmp_path / "shard-0.h5")
    _zero_bytes(path)
    with pytest.raises(ShardDamaged) as err:
        verify_checksums(path, quarantine=True)
    msg = str(err.value)
    assert f"shard {path}: array 'x' fails its checksum" in msg and "rerun snakemake" in msg
    assert f"moved to {path}.damaged" in msg
    assert not path.exists() and (tmp_path / "shard-0.h5.damaged").exists()
    with pytest.raises(ShardDamaged, match="moved to .*shard-0.h5.damaged; rerun snakemake"):
        verify_checksums(path, quarantine=True)  # a second job of the same run


def test_damaged_lengths_are_caught(tmp_path):
    path = _write(tmp_path / "shard-0.h5")
    with h5py.File(path, "r+") as f:  # a valid HDF5 write, as a stray tool would do it
        f["length"][2] = 7
    with pytest.raises(ShardDamaged, match="array 'length' fails its checksum"):
        verify_checksums(path)
    assert path.exists()  # quarantine only when asked (the jobs ask)


@pytest.mark.parametrize("keep", [0.5, 0.02])
def test_a_truncated_shard_is_named(tmp_path, keep):
    path = _write(tmp_path / "shard-1.h5")
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(ShardDamaged) as err:
        verify_checksums(path, quarantine=True)
    assert f"shard {path}: " in str(err.value) and "rerun snakemake" in str(err.value)
    assert (tmp_path / "shard-1.h5.damaged").exists()


def test_readers_name_a_shard_that_cannot_be_opened(tmp_path):
    path = _write(tmp_path / "shard-0.h5")
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ShardDamaged, match=f"shard {path} cannot be read"):
        read_index(path)
    with pytest.raises(ShardDamaged, match=f"shard {path} cannot be read"):
        ShardDataset([path], ["clip0"], spec_hash="s" * 16)


def test_a_shard_written_before_checksums_is_used_with_a_warning(tmp_path, caplog):
    path = _write(tmp_path / "old.h5")
    with h5py.File(path, "r+") as f:
        del f.attrs["checksums"]
    with caplog.at_level(logging.WARNING, logger="soundbench.features"):
        assert verify_checksums(path) is False
    assert "without checksums" in caplog.text and str(path) in caplog.text


def test_an_array_missing_from_the_checksums_is_damage(tmp_path):
    path = _write(tmp_path / "s.h5")
    with h5py.File(path, "r+") as f:
        f.create_dataset("extra", data=np.zeros((6, 2), np.float32))
    with pytest.raises(ShardDamaged, match="array 'extra' is not listed in its checksums"):
        verify_checksums(path)


def test_verification_reads_in_bounded_blocks(tmp_path, monkeypatch):
    """Blocks smaller than the array give the same CRC as one read (the writer's running CRC)."""
    path = _write(tmp_path / "s.h5", n=5)
    monkeypatch.setattr(shards, "CHECKSUM_BLOCK_BYTES", 3000)  # < 2 rows of 1600 bytes
    assert verify_checksums(path)


@pytest.mark.slow
def test_snakemake_rebuilds_a_shard_that_fails_its_check(tmp_path):
    """A zeroed block in a shard: the train job fails naming it and moves it aside; the next run rebuilds it
    (rule features) and trains."""
    from workflow_runs import snakemake

    cfg = {"datasets": {"speech_commands": {"source": "demo", "demo": {"per_word": 2}, "shards": 1}},
           "features": {"lm": {"kind": "logmel", "sample_rate": 16000, "n_fft": 512, "hop_length": 256,
                               "n_mels": 20}},
           "experiments": {"sc_base": {"system": "baseline", "dataset": "speech_commands", "feature": "lm"}}}
    model = "results/speech_commands/baseline/sc_base/seed-0/model.pt"
    # mtime triggers: the runs below rerun what the damaged shard's mtime and the missing shard call for, nothing else
    r = snakemake(tmp_path, cfg, "--cores", "2", model, "--rerun-triggers", "mtime")
    assert r.returncode == 0, r.stderr[-3000:]
    shard = tmp_path / "results/speech_commands/features/lm/shard-0.h5"
    with h5py.File(shard, "r") as f:
        before = f["x"][()]
    _zero_bytes(shard, at=0.3, count=256)
    r = snakemake(tmp_path, cfg, "--cores", "2", "--forcerun", "train", model, "--rerun-triggers", "mtime")
    assert r.returncode != 0
    log = (tmp_path / "logs/train/speech_commands/baseline/sc_base/seed-0.log").read_text()
    assert f"shard {shard.relative_to(tmp_path)}: array 'x' fails its checksum" in log
    assert "rerun snakemake" in log and not shard.exists()
    r = snakemake(tmp_path, cfg, "--cores", "2", model, "--rerun-triggers", "mtime")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "rule features" in r.stdout + r.stderr
    assert verify_checksums(shard)
    with h5py.File(shard, "r") as f:
        assert np.array_equal(f["x"][()], before)  # the rebuilt shard holds the good bytes again
