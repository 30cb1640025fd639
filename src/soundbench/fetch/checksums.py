"""Trust on first use for files whose release publishes no checksum.

The first download of a file records its sha256 and size in a JSON lock file; every later download must match
it, so a silently changed upstream file (or a corrupted mirror) is noticed instead of changing the results.
"""
from __future__ import annotations

import fcntl
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from soundbench.fetch.download import ChecksumError, DownloadError, file_digest


class ChecksumLock:
    """A JSON file mapping a key (e.g. "mtt/mp3.zip.001") to {"sha256", "size", "url"}."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        # flock on a sidecar, not on the JSON itself: the JSON is replaced atomically, which would
        # leave a lock held on the old, unlinked inode.
        self._guard = self.path.with_name(self.path.name + ".lock")

    def entries(self) -> dict[str, dict]:
        """The recorded entries (empty when the lock file does not exist yet)."""
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text())
        except ValueError as e:
            raise DownloadError(f"checksum lock file {self.path} is not valid JSON ({e}); "
                                f"fix or delete it (it will be recorded again)") from e
        if not isinstance(data, dict):
            raise DownloadError(f"checksum lock file {self.path} must hold a JSON object")
        return data

    def get(self, key: str) -> dict | None:
        return self.entries().get(key)

    def verify_or_record(self, key: str, file_path: str | os.PathLike, url: str | None = None) -> str:
        """Check `file_path` against the entry `key`, or record it when unknown; returns its sha256.

        Raises ChecksumError naming the file, the lock file and both digests on a mismatch.
        """
        file_path = Path(file_path)
        digest = file_digest(file_path, "sha256")  # hash outside the lock: it may take minutes
        size = file_path.stat().st_size
        with self._locked():
            entries = self.entries()
            known = entries.get(key)
            if known is None:
                entries[key] = {"sha256": digest, "size": size, "url": url}
                self._write(entries)
                return digest
        if str(known.get("sha256", "")).lower() != digest:
            raise ChecksumError(
                f"{file_path} (from {url or known.get('url')}) does not match the checksum recorded for "
                f"{key!r} in {self.path}: expected sha256 {known.get('sha256')}, got {digest}. If upstream "
                f"published a new version on purpose, delete the {key!r} entry from {self.path} to accept it; "
                f"otherwise delete {file_path} and download it again.")
        return digest

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive lock across processes (concurrent Snakemake jobs recording different keys)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._guard, "a") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(guard, fcntl.LOCK_UN)

    def _write(self, entries: dict[str, dict]) -> None:
        """Atomic rewrite: readers see the old or the new file, never half of one."""
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", suffix=".tmp", dir=self.path.parent)
        try:
            os.chmod(tmp, 0o644)  # mkstemp makes it 0600; the lock file is shared project state
            with os.fdopen(fd, "w") as f:
                json.dump(entries, f, indent=2, sort_keys=True)
                f.write("\n")
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
