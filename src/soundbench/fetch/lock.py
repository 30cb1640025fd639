"""An exclusive lock between processes on a sidecar file that is removed when the lock is released.

Used so that two processes never write the same `.part` download or extract into the same directory at once:
the second one waits (saying for whom) and then sees the first one's finished result. flock is released by the
kernel when its holder dies (SIGKILL included), so a crashed run never leaves a lock that blocks the next one;
the file itself may stay behind then and is simply reused.
"""
from __future__ import annotations

import fcntl
import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)


@contextmanager
def exclusive(path: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created if needed) for the duration of the block.

    what: said in the log while waiting, e.g. "the download of URL". OSError (e.g. a read-only directory)
    propagates to the caller, which names the path in its own terms.
    """
    path = Path(path)
    told = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not told:
                    holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
                    log.warning("waiting for process %s, which holds %s for %s", holder, path, what)
                    told = True
                fcntl.flock(fd, fcntl.LOCK_EX)
            # The previous holder removes the file on release: a lock on that unlinked inode protects nothing,
            # so only a lock on the file that is at `path` now counts.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                same = False
        except BaseException:
            os.close(fd)
            raise
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        try:
            os.unlink(path)  # still holding the lock: a waiter then finds its inode gone and opens anew
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)
