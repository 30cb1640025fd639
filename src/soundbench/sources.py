"""Where a dataset comes from (config `datasets: {NAME: {source: ...}}`) and how it becomes a directory.

  official   the real URLs with published sizes/md5 (trust on first use where none is published)
  mirror     `mirror: BASE_URL` replaces the official host: BASE_URL/<file name> (air-gapped clusters, dead hosts)
  local      `root: DIR` an already-extracted dataset, or `archive: PATH` (or a list of archives, where the
             numbered parts of a split archive, NAME.001, NAME.002..., form one)
  demo       synthesised by the workflow in the dataset's real layout and archive format

The file names of a release, the parts and destination of each unpack step are checked to be plain names (no
path can make a download or an extraction land outside the archive or dataset directory). `extract:` in a
dataset's config sets the extraction limits (soundbench.fetch.extract.Limits); `fetch` records it in
release.json, where `unpack` reads it.
"""
from __future__ import annotations

import json
import os
import re
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
    if low.endswith(".zip"):
        return "zip"
    raise SourceError(f"{path}: cannot tell the archive format (expected .zip, .tar, .tar.gz, .tgz)")


_PART = re.compile(r"(.+)\.(\d{3})")  # NAME.001: a byte-range part of the split archive NAME


def _local_units(key: str, paths: list[str]) -> tuple[Unpack, ...]:
    """One unpack step per archive; the numbered parts of a split archive (NAME.001, NAME.002...), listed in
    order, are one step."""
    groups: list[tuple[str, list[str]]] = []  # (archive name, part names)
    for p in paths:
        name = Path(p).name
        m = _PART.fullmatch(name)
        base = m.group(1) if m else None
        if base is not None and groups and groups[-1][0] == base and len(groups[-1][1]) > 0 \
                and _PART.fullmatch(groups[-1][1][-1]):
            groups[-1][1].append(name)
        else:
            groups.append((base or name, [name]))
    units = []
    for base, names in groups:
        if _PART.fullmatch(names[0]):
            numbers = [int(_PART.fullmatch(n).group(2)) for n in names]
            if numbers != list(range(1, len(names) + 1)):
                raise SourceError(f"{key}: the parts of the split archive {base} must be listed in order from "
                                  f".001 without gaps, got {', '.join(names)}")
        units.append(Unpack(tuple(names), _archive_kind(base)))
    return tuple(units)


def plain_name(name: str, where: str) -> str:
    """A file name without any directory part (release files and archive parts are such names)."""
    if not name or name in (".", "..") or any(c in name for c in "/\\\x00"):
        raise SourceError(f"{where}: {name!r} is not a plain file name")
    return name


def _safe_dest(dest: str, where: str) -> str:
    """An unpack destination: a relative path inside the dataset root."""
    unified = dest.replace("\\", "/")
    if "\x00" in dest or unified.startswith("/") or re.match(r"[A-Za-z]:", unified) or ".." in unified.split("/"):
        raise SourceError(f"{where}: destination {dest!r} must be a relative path inside the dataset root")
    return dest


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
        key = f"datasets.{name}.archive"
        paths = [archives] if isinstance(archives, str) else list(archives)
        seen: dict[str, str] = {}
        for p in paths:
            if not Path(p).exists():
                raise SourceError(f"{key}: {p} does not exist")
            if Path(p).is_dir():
                raise SourceError(f"{key}: {p} is a directory; list the archive files in it, or use `source: "
                                  f"mirror` with `mirror: {Path(p).resolve().as_uri()}` to take the official "
                                  f"release's files (verified) from it")
            if Path(p).name in seen:  # both would be fetched to one file under resources/archives
                raise SourceError(f"{key}: {seen[Path(p).name]} and {p} have the same file name")
            seen[Path(p).name] = p
        files = tuple(RemoteFile(Path(p).name, Path(p).resolve().as_uri()) for p in paths)
        return Release(files, _local_units(key, paths))
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


def extract_limits(name: str, cfg: dict):
    """The extraction limits of a dataset config's `extract:` block (defaults for the keys it omits)."""
    from soundbench.fetch.extract import Limits

    try:
        return Limits.from_config(cfg.get("extract"), f"datasets.{name}.extract")
    except ValueError as e:
        raise SourceError(str(e)) from None


def fetch(name: str, release: Release, archive_dir: Path, lock_path: Path | None, progress: bool = True,
          extract: dict | None = None, keep_archives: bool = True) -> None:
    """Download and verify every file of a release into archive_dir; record it in archive_dir/release.json,
    with the dataset's name, its `extract:` limits and `keep_archives` for `unpack`. With keep_archives false
    the record carries the sha256 of every file (`unpack` deletes them after extracting, and fetches them again,
    verified against it, only if it must extract again)."""
    from soundbench.fetch.checksums import ChecksumLock
    from soundbench.fetch.download import download, file_digest

    extract_limits(name, {"extract": extract})  # a wrong limit fails now, not after hours of downloads
    _check_release(release, f"{name} release")
    archive_dir.mkdir(parents=True, exist_ok=True)
    lock = ChecksumLock(lock_path) if lock_path else None
    for f in release.files:
        dest = archive_dir / f.name
        download(f.url, dest, md5=f.md5, sha256=f.sha256, size=f.size, progress=progress)
        if lock is not None and not (f.md5 or f.sha256):
            lock.verify_or_record(f"{name}/{f.name}", dest, f.url)  # trust on first use
    if not keep_archives:  # what a later re-fetch is verified against
        release = replace(release, files=tuple(f if f.sha256 else replace(f, sha256=file_digest(archive_dir / f.name))
                                               for f in release.files))
    record = {**asdict(release), "dataset": name, "extract": dict(extract or {}), "keep_archives": keep_archives}
    tmp = archive_dir / "release.json.tmp"
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
    os.replace(tmp, archive_dir / "release.json")


def _check_release(release: Release, where: str) -> None:
    for f in release.files:
        plain_name(f.name, f"{where}: file")
    for u in release.unpack:
        for p in u.parts:
            plain_name(p, f"{where}: unpack part")
        _safe_dest(u.dest, f"{where}: unpack of {', '.join(u.parts)}")


def unpack(release: Release, archive_dir: Path, root: Path, limits=None) -> int:
    """Extract every unit of a release into root, all or nothing: a staging directory is renamed at the end.

    The units are extracted one after the other into the same staging tree, each checked against what the
    earlier ones left there (a symlink from one archive cannot carry another archive's member outside), and
    under one Budget: `limits` (default: the `extract` block recorded in archive_dir/release.json) caps the
    whole set.
    """
    from soundbench.fetch.extract import Budget, Limits, extract
    from soundbench.fetch.lock import exclusive

    recorded = archive_dir / "release.json"
    meta = json.loads(recorded.read_text()) if recorded.exists() else {}
    if limits is None:
        limits = Limits.from_config(meta.get("extract"), f"datasets.{meta.get('dataset', root.name)}.extract")
    _check_release(release, str(archive_dir / "release.json"))
    refetch_deleted(release, archive_dir, meta)
    budget = Budget(limits)
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = root.with_name(root.name + ".staging")
    n = 0
    with exclusive(root.with_name(root.name + ".lock"), f"unpacking into {root}"):
        shutil.rmtree(staging, ignore_errors=True)  # left by a killed run
        staging.mkdir()
        try:
            for u in release.unpack:  # (dest is relative without `..`; the links in staging were checked)
                n += len(extract([archive_dir / p for p in u.parts], staging / u.dest, kind=u.kind,
                                 password=u.password, budget=budget))
            shutil.rmtree(root, ignore_errors=True)
            os.replace(staging, root)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    if meta.get("keep_archives") is False:  # extracted and in place: the verified archives are not needed
        for f in release.files:
            (archive_dir / f.name).unlink(missing_ok=True)
    return n


def refetch_deleted(release: Release, archive_dir: Path, meta: dict) -> None:
    """Fetch again, verified against the sha256 recorded at the first fetch, the archives that an earlier
    extraction deleted (keep_archives: false): the extraction is being redone."""
    from soundbench.fetch.download import DownloadError, download

    missing = [f for f in release.files if not (archive_dir / f.name).exists()]
    if not missing:
        return
    if meta.get("keep_archives") is not False:
        return  # extract() names the missing archive
    for f in missing:
        try:
            download(f.url, archive_dir / f.name, md5=f.md5, sha256=f.sha256, size=f.size, progress=False)
        except DownloadError as e:
            raise SourceError(f"{archive_dir / f.name} was deleted after its extraction (keep_archives: false) and "
                              f"cannot be fetched again: {e}. If it came from the demo release (removed once "
                              f"fetched), delete {archive_dir / 'release.json'} (or run Snakemake with --forcerun "
                              f"fetch): the demo is made and fetched again") from None
