"""Disk footprint: local and file:// sources are hard-linked (a copy where the file system refuses), and
`keep_archives: false` deletes the verified archives after a successful extraction; they are fetched again, verified
against the sha256 recorded at the first fetch, only when the extraction is redone."""
from __future__ import annotations

import errno
import importlib
import io
import json
import os
import tarfile

import pytest

from soundbench import sources
from soundbench.datasets.base import Release, RemoteFile, Unpack

dl = importlib.import_module("soundbench.fetch.download")  # the package exports the function of that name


def _archive(path, members=(("data/a.txt", b"alpha"), ("data/b.txt", b"beta"))):
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in members:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


def test_local_sources_are_hard_linked(tmp_path):
    src = _archive(tmp_path / "server" / "x.tar.gz")
    out = dl.download(src.as_uri(), tmp_path / "archives" / "x.tar.gz", progress=False)
    assert os.path.samefile(src, out) and src.stat().st_nlink == 2
    out.unlink()  # deleting the fetched name keeps the source
    assert src.read_bytes()[:2] == b"\x1f\x8b"


def test_a_refused_link_falls_back_to_a_copy(tmp_path, monkeypatch):
    src = _archive(tmp_path / "server" / "x.tar.gz")

    def cross_device(a, b, **kw):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(dl.os, "link", cross_device)
    out = dl.download(str(src), tmp_path / "archives" / "x.tar.gz", progress=False)
    assert not os.path.samefile(src, out) and out.read_bytes() == src.read_bytes()


def _release(src) -> Release:
    return Release((RemoteFile(src.name, src.as_uri()),), (Unpack((src.name,), "tar"),))


def test_keep_archives_false_deletes_after_extraction_and_refetches_to_redo_it(tmp_path):
    src = _archive(tmp_path / "server" / "x.tar.gz")
    archives, root = tmp_path / "resources" / "archives" / "d", tmp_path / "resources" / "datasets" / "d"
    sources.fetch("d", _release(src), archives, None, progress=False, keep_archives=False)
    record = json.loads((archives / "release.json").read_text())
    assert record["keep_archives"] is False and len(record["files"][0]["sha256"]) == 64  # recorded for a re-fetch
    release = sources.release_from_json((archives / "release.json").read_text())
    assert sources.unpack(release, archives, root) == 2
    assert not (archives / "x.tar.gz").exists() and (root / "data" / "b.txt").read_bytes() == b"beta"
    assert src.exists()  # the source (here the "server") is untouched

    # the extraction is redone (e.g. its marker deleted): the archive is fetched again, verified, and deleted again
    assert sources.unpack(release, archives, root) == 2
    assert not (archives / "x.tar.gz").exists() and (root / "data" / "a.txt").read_bytes() == b"alpha"

    # a changed source no longer matches what was extracted: refused, naming the file
    _archive(src, members=(("data/a.txt", b"changed"),))
    with pytest.raises(sources.SourceError, match=r"x.tar.gz was deleted after its extraction.*sha256"):
        sources.unpack(release, archives, root)
    src.unlink()  # a vanished source (the demo release, removed once fetched): says how to make it again
    with pytest.raises(sources.SourceError, match=r"delete .*release.json \(or run Snakemake with --forcerun fetch"):
        sources.unpack(release, archives, root)


def test_archives_are_kept_by_default(tmp_path):
    src = _archive(tmp_path / "server" / "x.tar.gz")
    archives = tmp_path / "archives"
    sources.fetch("d", _release(src), archives, None, progress=False)
    sources.unpack(sources.release_from_json((archives / "release.json").read_text()), archives, tmp_path / "root")
    assert (archives / "x.tar.gz").exists()


@pytest.mark.slow
def test_the_demo_keeps_neither_its_release_nor_its_archives(tmp_path):
    """Through Snakemake: the demo release is temporary (removed once fetched) and the fetched archive is deleted
    after extraction; deleting release.json and the extraction's marker makes, fetches and extracts it again (the
    way unpack's error names when the demo's extraction alone is to be redone: test above)."""
    from workflow_runs import snakemake

    cfg = {"datasets": {"speech_commands": {"source": "demo", "keep_archives": False,
                                            "demo": {"per_word": 2, "speakers": 6}}},
           "features": {}, "experiments": {}}
    done = "resources/datasets/speech_commands.done"
    archives = tmp_path / "resources" / "archives" / "speech_commands"
    for attempt in range(2):
        r = snakemake(tmp_path, cfg, "--cores", "1", done)
        assert r.returncode == 0, r.stderr[-3000:]
        assert not (tmp_path / "resources" / "demo" / "speech_commands").exists()
        assert sorted(p.name for p in archives.iterdir() if not p.name.endswith(".lock")) == ["release.json"]
        assert (tmp_path / "resources" / "datasets" / "speech_commands" / "validation_list.txt").exists()
        (archives / "release.json").unlink()
        (tmp_path / done).unlink()
