"""Which device a training or evaluation process runs on, and making sure no two processes share one GPU.

`snakemake --resources gpu=N` only caps how many GPU jobs run at once; it never tells a job *which* GPU to use
(snakemake/snakemake#281). So each process takes a free device itself: it holds an exclusive `fcntl.flock` on
one lock file per GPU for as long as it lives (the kernel releases it when the process ends, even on SIGKILL, so
a killed job never leaves a stale lock behind).

    device, lock = acquire_device("auto")   # cuda:K with its lock held, or cpu (lock None)

- `auto`: the first free visible GPU when CUDA is present, otherwise the CPU. When every GPU is taken it waits
  (and says so in the log) until one is released: cap concurrent GPU jobs with `--resources gpu=N` so that
  never happens on a workstation with N GPUs.
- `cuda`: like `auto` but an error without CUDA; `cuda:K`: exactly visible device K (waits for its lock);
  `cpu` (or anything else torch understands, e.g. `mps`): that device, no lock.
- `CUDA_VISIBLE_DEVICES` is honoured: the devices a process can see are the ones it chooses from, and a lock is
  named after the physical GPU (its UUID when torch reports one, else its `CUDA_VISIBLE_DEVICES` entry), so two
  processes that see different subsets still never collide.
- Under a scheduler that hands the job its GPUs itself (SLURM's `--gpus`: `SLURM_JOB_ID` together with
  `CUDA_VISIBLE_DEVICES`), the visible device is already the job's own, so no lock is taken there; set
  `SOUNDBENCH_GPU_LOCK=1` to lock anyway, or `SOUNDBENCH_GPU_LOCK=0` to never lock.
- Lock files live in `$SOUNDBENCH_LOCK_DIR`, default `/tmp/soundbench-gpu-<uid>/` (`gpu-<id>.lock`; the file
  holds the pid and host of its holder, for humans). Point `SOUNDBENCH_LOCK_DIR` at one directory shared by all
  users of a machine to share its GPUs between them.
"""
from __future__ import annotations

import fcntl
import logging
import os
import re
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

log = logging.getLogger("soundbench.devices")

# locks taken by this process: kept referenced so they are held until the process exits
_HELD: list["DeviceLock"] = []


@dataclass
class DeviceLock:
    """An exclusive flock on one GPU's lock file; released by `release()` or when the process ends."""

    path: Path
    fd: int
    key: str
    index: int = -1  # the visible device it is for (cuda:<index>)

    def release(self) -> None:
        if self.fd >= 0:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = -1
        if self in _HELD:
            _HELD.remove(self)

    @property
    def held(self) -> bool:
        return self.fd >= 0


def lock_dir() -> Path:
    d = os.environ.get("SOUNDBENCH_LOCK_DIR")
    return Path(d) if d else Path(tempfile.gettempdir()) / f"soundbench-gpu-{os.getuid()}"


def _visible_entries(count: int) -> list[str]:
    """CUDA_VISIBLE_DEVICES entries of the `count` visible devices (their indices when it is unset)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    entries = [e.strip() for e in env.split(",") if e.strip()] if env else []
    return [entries[k] if k < len(entries) else str(k) for k in range(count)]


def _physical_keys(count: int, cuda: bool) -> list[str]:
    """A name per visible device that is the same for every process on the machine, whatever it sees."""
    keys = _visible_entries(count)
    if cuda:
        for k in range(count):
            try:
                uuid = str(torch.cuda.get_device_properties(k).uuid)
            except (AttributeError, RuntimeError, AssertionError):
                uuid = ""
            if uuid:
                keys[k] = uuid
    return [re.sub(r"[^A-Za-z0-9_.-]", "_", k) for k in keys]


def scheduler_assigned() -> bool:
    """Whether a batch scheduler already gave this process its GPUs (then locking is unnecessary)."""
    setting = os.environ.get("SOUNDBENCH_GPU_LOCK", "").strip().lower()
    if setting in ("1", "true", "yes"):
        return False
    if setting in ("0", "false", "no"):
        return True
    return bool(os.environ.get("SLURM_JOB_ID")) and os.environ.get("CUDA_VISIBLE_DEVICES") is not None


def try_lock(path: Path, key: str) -> DeviceLock | None:
    """An exclusive lock on `path` if nobody holds it, else None (never blocks)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, writable = os.open(path, os.O_RDWR | os.O_CREAT, 0o666), True
    except PermissionError:  # another user's lock file in a shared SOUNDBENCH_LOCK_DIR: flock works read-only
        fd, writable = os.open(path, os.O_RDONLY), False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    if writable:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
    return DeviceLock(path, fd, key)


def acquire_gpu(count: int, *, keys: list[str] | None = None, only: int | None = None, directory: Path | None = None,
                wait: bool = True, poll_seconds: float = 5.0, timeout: float | None = None) -> tuple[int, DeviceLock]:
    """Index of a free visible GPU out of `count` (or exactly `only`) and its held lock.

    Tries the devices in order without blocking; when all are taken, waits (polling every `poll_seconds`) until
    one is free, or raises TimeoutError after `timeout` seconds (`wait=False`: at once)."""
    if count <= 0:
        raise RuntimeError("no CUDA device is visible")
    keys = keys if keys is not None else _physical_keys(count, cuda=False)
    directory = Path(directory) if directory is not None else lock_dir()
    candidates = [only] if only is not None else list(range(count))
    for k in candidates:
        if not 0 <= k < count:
            raise RuntimeError(f"cuda:{k} requested but only {count} CUDA device(s) are visible")
    started, announced = time.monotonic(), False
    while True:
        for k in candidates:
            lock = try_lock(directory / f"gpu-{keys[k]}.lock", keys[k])
            if lock is not None:
                lock.index = k
                _HELD.append(lock)
                if announced:
                    log.warning("got cuda:%d after waiting %.0f s", k, time.monotonic() - started)
                return k, lock
        if not wait or (timeout is not None and time.monotonic() - started >= timeout):
            raise TimeoutError(f"all {len(candidates)} GPU(s) are in use by other soundbench processes "
                               f"(locks in {directory}); cap concurrent jobs with --resources gpu=N")
        if not announced:
            log.warning("all %d GPU(s) are taken (locks in %s); waiting for one to be released. Cap concurrent "
                        "GPU jobs with `snakemake --resources gpu=N`.", len(candidates), directory)
            announced = True
        time.sleep(poll_seconds)


def acquire_device(prefer: str = "auto", *, device_count: int | None = None, directory: Path | None = None,
                   wait: bool = True, poll_seconds: float = 5.0,
                   timeout: float | None = None) -> tuple[torch.device, DeviceLock | None]:
    """(device, lock): the device this process computes on, with the lock that keeps it ours (None: no lock).

    `device_count` replaces `torch.cuda.device_count()` (tests without a GPU)."""
    prefer = (prefer or "auto").strip().lower()
    if not (prefer in ("auto", "cuda") or prefer.startswith("cuda:")):
        return torch.device(prefer), None
    fake = device_count is not None
    count = device_count if fake else (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    if count == 0:
        if prefer == "auto":
            return torch.device("cpu"), None
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        raise RuntimeError(f"device {prefer!r} requested but CUDA is not available "
                           f"(torch {torch.__version__}, CUDA_VISIBLE_DEVICES={visible!r})")
    only = int(prefer.split(":", 1)[1]) if ":" in prefer else None
    for held in _HELD:  # asked again in the same process: the GPU it already holds
        if held.held and (only is None or held.index == only):
            return torch.device(f"cuda:{held.index}"), held
    if scheduler_assigned():
        return torch.device(f"cuda:{only if only is not None else 0}"), None
    keys = _physical_keys(count, cuda=not fake)
    k, lock = acquire_gpu(count, keys=keys, only=only, directory=directory, wait=wait, poll_seconds=poll_seconds,
                          timeout=timeout)
    if not fake:
        torch.cuda.set_device(k)
    log.info("using cuda:%d (lock %s)", k, lock.path)
    return torch.device(f"cuda:{k}"), lock


def describe(device: torch.device) -> str:
    """What the results table shows: `cpu` or `cuda:0 (NVIDIA A100-SXM4-80GB)`."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)
