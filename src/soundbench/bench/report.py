"""What every bench shares: timing, the machine it ran on, the printed table and the JSON record."""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable, Iterable


def machine() -> dict:
    """The facts a number depends on: CPU model, cores usable, library versions, torch threads."""
    import numpy as np
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": cores, "gpu": gpu, "python": platform.python_version(),
            "torch": torch.__version__, "numpy": np.__version__, "torch_threads": torch.get_num_threads()}


def timings(fn: Callable[[], object], repeat: int = 5, warmup: int = 1, min_seconds: float = 0.0) -> list[float]:
    """Seconds per call of fn, `repeat` times after `warmup` calls; keeps calling until min_seconds passed."""
    for _ in range(warmup):
        fn()
    out: list[float] = []
    start = time.perf_counter()
    while len(out) < repeat or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def interleaved(fns: dict[str, Callable[[], object]], repeat: int = 5) -> dict[str, float]:
    """Median seconds per call of each fn, called in turn `repeat` rounds (after one warm-up round): on a
    shared machine whose speed drifts, fns compared with each other see the same drift."""
    runs: dict[str, list[float]] = {name: [] for name in fns}
    for round_ in range(repeat + 1):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            if round_:
                runs[name].append(time.perf_counter() - t0)
    return {name: best(seconds) for name, seconds in runs.items()}


def best(seconds: Iterable[float]) -> float:
    """The reported time of repeated runs: the median (robust to the odd stall of a shared machine)."""
    return statistics.median(list(seconds))


def table(title: str, rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """A plain-text table of rows: columns = [(key, header)]; floats at 3 significant digits."""
    def cell(v) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1e5 else f"{v:,.0f}"
        return "" if v is None else str(v)

    body = [[cell(r.get(k)) for k, _ in columns] for r in rows]
    widths = [max([len(h)] + [len(b[i]) for b in body]) for i, (_, h) in enumerate(columns)]
    line = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([title, line([h for _, h in columns]), line(["-" * w for w in widths])] + [line(b) for b in body])


def goal(name: str, value: float, target: float, higher_is_better: bool = True, unit: str = "") -> dict:
    """One goal of an issue, met or not, with the measured value."""
    met = value >= target if higher_is_better else value <= target
    return {"goal": name, "value": value, "target": target, "met": bool(met), "unit": unit,
            "direction": ">=" if higher_is_better else "<="}


def goals_text(goals: list[dict]) -> str:
    return "\n".join(f"  [{'met' if g['met'] else 'NOT met'}] {g['goal']}: {g['value']:.3g}{g['unit']} "
                     f"(goal {g['direction']} {g['target']:g}{g['unit']})" for g in goals)


def write(name: str, payload: dict, out_dir: str | os.PathLike = "results/bench") -> Path:
    """results/bench/<name>.json with the machine and time, written atomically."""
    path = Path(out_dir) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"bench": name, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "machine": machine(), **payload}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, default=float) + "\n")
    os.replace(tmp, path)
    return path


@contextlib.contextmanager
def one_core():
    """Pin this process to one CPU and every thread pool (torch, BLAS, OpenMP) to one thread."""
    import torch
    from threadpoolctl import threadpool_limits

    before_cpus = os.sched_getaffinity(0) if hasattr(os, "sched_setaffinity") else None
    before_threads = torch.get_num_threads()
    if before_cpus:
        os.sched_setaffinity(0, {max(before_cpus)})
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(before_threads)
        if before_cpus:
            os.sched_setaffinity(0, before_cpus)
