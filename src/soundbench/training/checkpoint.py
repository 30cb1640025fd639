"""Resumable training state: written atomically, read back exactly, never a declared Snakemake output.

Snakemake deletes a job's declared outputs before rerunning it; checkpoints therefore live under checkpoints/
(outside results/) and carry the hash of the configuration that produced them, so a changed experiment never
resumes from a stale run.
"""
from __future__ import annotations

import fcntl
import logging
import os
import signal
import time
from pathlib import Path

import torch


def save(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def safe_load(path) -> dict:
    """torch.load(weights_only=True): tensors, numbers, strings and plain containers only, so a crafted file cannot
    run code on load; anything else is refused with an error naming the file."""
    import pickle

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(f"{path}: refusing to load it: it holds objects other than tensors and plain values, which "
                         f"could run code ({str(e).splitlines()[-1] if str(e) else 'unpickling refused'}); if an "
                         f"older soundbench wrote it, delete it and rerun to retrain") from None


def exclusive(path: Path):
    """Hold an exclusive lock on <checkpoint>.lock for as long as the returned file object lives.

    A killed job's shell may exit before its trainer has written the last checkpoint; a rerun started in that
    window waits here instead of racing the dying trainer for the same file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path.with_name(path.name + ".lock"), "w")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        logging.getLogger("soundbench.train").warning("waiting for another trainer to release %s", path)
        fcntl.flock(fh, fcntl.LOCK_EX)
    return fh


def load(path: Path, config_hash: str) -> dict | None:
    """The saved state if it exists and belongs to this configuration, else None."""
    if not path.exists():
        return None
    # weights_only: a crafted checkpoint cannot run code on load; the state holds tensors, numbers and plain
    # containers only (RNG states are tensors)
    state = safe_load(path)
    if state.get("config_hash") != config_hash:
        return None
    return state


class Timer:
    """Says when a periodic checkpoint is due, and remembers a SIGTERM/SIGUSR1 (walltime or preemption)."""

    def __init__(self, minutes: float):
        self.every = minutes * 60.0
        self.last = time.monotonic()
        self.stop_requested = False
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            try:
                signal.signal(sig, self._on_signal)
            except ValueError:  # not the main thread (e.g. inside a test runner thread)
                pass

    def _on_signal(self, signum, frame):
        self.stop_requested = True

    def due(self) -> bool:
        return self.stop_requested or (self.every > 0 and time.monotonic() - self.last >= self.every)

    def reset(self) -> None:
        self.last = time.monotonic()
