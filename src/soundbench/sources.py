"""Where a dataset comes from (config `datasets: {NAME: {source: ...}}`) and how it becomes a directory.

  official   the real URLs with published sizes/md5 (trust on first use where none is published)
  mirror     `mirror: BASE_URL` replaces the official host: BASE_URL/<file name> (air-gapped clusters, dead hosts)
  local      `root: DIR` an already-extracted dataset, or `archive: PATH` (or a list of paths) on disk
  demo       synthesised by the workflow in the dataset's real layout and archive format
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, replace
from pathlib import Path

from soundbench import datasets
from soundbench.datasets.base import Release, RemoteFile, Unpack

SOURCES = ("official", "mirror", "local", "demo")


class SourceError(ValueError):
    pass


def release_to_json(release: Release) -> str:
    return json.dumps(asdict(release), indent=1, sort_keys=True)


def release_from_json(text: str) -> Release:
    d = json.loads(text)
    return Release(files=tuple(RemoteFile(**f) for f in d["files"]),
                   unpack=tuple(Unpack(**{**u, "parts": tuple(u["parts"])}) for u in d["unpack"]),
                   note=d.get("note", ""))


def _archive_kind(path: str) -> str:
    low = path.lower()
    if low.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
        return "tar"
    if ".zip" in low:
        return "zip"
    raise SourceError(f"{path}: cannot tell the archive format (expected .zip, .tar, .tar.gz, .tgz)")


def release_for(name: str, cfg: dict, demo_release: str | os.PathLike | None = None) -> Release | None:
    """The release to download for a dataset config; None when `local` with `root:` (nothing to fetch)."""
    source = cfg.get("source", "official")
    key = f"datasets.{name}.source"
    if source == "demo":
        if demo_release is None:
            raise SourceError(f"{key}: demo release file not given")
        return release_from_json(Path(demo_release).read_text())
    if source == "local":
        if cfg.get("root"):
            return None
        archives = cfg.get("archive")
        if not archives:
            raise SourceError(f"datasets.{name}: source 'local' needs `root: DIR` or `archive: PATH`")
        paths = [archives] if isinstance(archives, str) else list(archives)
        for p in paths:
            if not Path(p).exists():
                raise SourceError(f"datasets.{name}.archive: {p} does not exist")
        files = tuple(RemoteFile(Path(p).name, Path(p).resolve().as_uri()) for p in paths)
        return Release(files, tuple(Unpack((f.name,), _archive_kind(f.name)) for f in files))
    official = datasets.get(name).official
    if not official.files:
        raise SourceError(f"{key}: {name} has no downloadable release. {official.note}".strip())
    if source == "official":
        return official
    if source == "mirror":
        base = cfg.get("mirror")
        if not base:
            raise SourceError(f"datasets.{name}: source 'mirror' needs `mirror: BASE_URL`")
        return replace(official, files=tuple(replace(f, url=base.rstrip("/") + "/" + f.name) for f in official.files))
    raise SourceError(f"{key}: unknown source {source!r}; expected one of {', '.join(SOURCES)}")


def fetch(name: str, release: Release, archive_dir: Path, lock_path: Path | None, progress: bool = True) -> None:
    """Download and verify every file of a release into archive_dir; record it in archive_dir/release.json."""
    from soundbench.fetch.checksums import ChecksumLock
    from soundbench.fetch.download import download

    archive_dir.mkdir(parents=True, exist_ok=True)
    lock = ChecksumLock(lock_path) if lock_path else None
    for f in release.files:
        dest = archive_dir / f.name
        download(f.url, dest, md5=f.md5, sha256=f.sha256, size=f.size, progress=progress)
        if lock is not None and not (f.md5 or f.sha256):
            lock.verify_or_record(f"{name}/{f.name}", dest, f.url)  # trust on first use
    tmp = archive_dir / "release.json.tmp"
    tmp.write_text(release_to_json(release))
    os.replace(tmp, archive_dir / "release.json")


def unpack(release: Release, archive_dir: Path, root: Path) -> int:
    """Extract every unit of a release into root, all or nothing: a staging directory is renamed at the end."""
    from soundbench.fetch.extract import extract

    staging = root.with_name(root.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    n = 0
    try:
        for u in release.unpack:
            dest = staging / u.dest
            n += len(extract([archive_dir / p for p in u.parts], dest, kind=u.kind, password=u.password))
        shutil.rmtree(root, ignore_errors=True)
        os.replace(staging, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return n
