"""`soundbench bench loader`: can the shard reader feed training? And which shard layout reads fastest?

1. Examples/s from HDF5 shards through the training loop's own DataLoader (0, 1, 2 workers, random order,
   the system's batch size), for the input of every published system, against the training step's
   consumption of each system measured on this machine (`soundbench bench train`). Goal: reader >= 5x model.
2. The layout study behind the shard format: chunking, compression, dtype and shard size, each written
   and read back through the same reader (random order, one process): write MB/s, size on disk, examples/s.

Files are just written, so reads come from the page cache: this measures the reader's CPU cost, not a disk.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from soundbench.bench import report
from soundbench.features.paper_specs import paper_spec
from soundbench.features.reader import Segments, ShardDataset
from soundbench.features.shards import ShardWriter

RATIO_GOAL = 5.0
SPEC_HASH = "bench"

# (case, system whose training consumes it, per-example shape, clips, batch size, view): the stored inputs
# of the published systems; SampleCNN reads 59,049-sample segments of 29-s clips (10 per clip).
CASES = [
    ("samplecnn", "samplecnn", paper_spec("samplecnn").output_shape(), 24, 23, Segments(59049)),
    ("smallcnn (demo log-mel)", "smallcnn", (1, 40, 63), 800, 16, None),
    ("senot", None, paper_spec("senot").output_shape(), 200, 16, None),
    ("subspectralnet", None, paper_spec("subspectralnet").output_shape(), 400, 16, None),
    ("sed_crnn", None, paper_spec("sed_crnn").output_shape(), 400, 64, None),
    ("acivw", None, paper_spec("acivw").output_shape(), 400, 32, None),
]


def _features(rng: np.random.Generator, n: int, shape: tuple[int, ...]) -> np.ndarray:
    """Stand-in features with the statistics that matter to storage: log-mel-like smooth rows plus noise
    (compressibility), not constants."""
    base = np.cumsum(rng.standard_normal((n, *shape), dtype=np.float32) * 0.1, axis=-1)
    return (base - 40.0).astype(np.float32)


def write_shards(directory: Path, shape: tuple[int, ...], clips: int, n_shards: int = 1, *,
                 chunks: bool = False, compression: str | None = None, dtype: str = "float32",
                 seed: int = 0) -> tuple[list[Path], list[str], float]:
    """Shards of `clips` examples; contiguous float32 goes through our ShardWriter, other layouts through
    h5py with the same datasets and attributes. Returns (paths, clip ids, seconds spent writing)."""
    ids = [f"clip{i:05d}" for i in range(clips)]
    small = np.prod(shape) * clips < 4e8
    every = _features(np.random.default_rng(seed), clips, shape) if small else None

    def data(i: int) -> np.ndarray:  # the same clip has the same data whatever the layout
        return every[i] if small else _features(np.random.default_rng([seed, i]), 1, shape)[0]

    paths, seconds = [], 0.0
    for s in range(n_shards):
        mine = range(s, clips, n_shards)
        path = directory / f"shard-{s}.h5"
        t0 = time.perf_counter()
        if not chunks and compression is None and dtype == "float32":
            with ShardWriter(path, {"spec_hash": SPEC_HASH}, len(mine), layout={"x": (shape, dtype)}) as w:
                for i in mine:
                    w.add(ids[i], {"x": data(i)}, shape[-1])
        else:
            with h5py.File(path, "w") as f:
                f.attrs["spec_hash"] = SPEC_HASH
                f.create_dataset("clip_id", data=np.array([ids[i] for i in mine], dtype=object),
                                 dtype=h5py.string_dtype())
                f.create_dataset("length", data=np.full(len(mine), shape[-1], dtype=np.int64))
                x = f.create_dataset("x", shape=(len(mine), *shape), dtype=dtype,
                                     chunks=(1, *shape) if chunks or compression else None,
                                     compression=compression)
                for row, i in enumerate(mine):
                    x[row] = data(i)
        seconds += time.perf_counter() - t0
        paths.append(path)
    return paths, ids, seconds


def loader_rate(paths: list[Path], ids: list[str], view, batch_size: int, workers: int, batches: int) -> float:
    """Examples/s of the training loop's DataLoader over random batches (a worker's start-up included once)."""
    from soundbench.training.data import RecordDataset
    from soundbench.training.loop import batch_loader, epoch_batches

    reader = ShardDataset(paths, ids, spec_hash=SPEC_HASH, view=view)
    ds = RecordDataset(ids, {"y": np.zeros(len(ids), dtype=np.int64)}, {"x": reader})
    order = epoch_batches(len(ds), batch_size, seed=0, stage=0, epoch=0)
    order = (order * (1 + batches // max(len(order), 1)))[:batches]
    t0 = time.perf_counter()
    n = sum(len(b["clip"]) for b in batch_loader(ds, order, workers))
    rate = n / (time.perf_counter() - t0)
    reader.close()
    return rate


def consumption(out_dir: str | os.PathLike, quick: bool) -> dict[str, float]:
    """Training samples/s per system on this machine: the train bench's record, measured now if absent."""
    record = Path(out_dir) / "train.json"
    if not record.exists():
        from soundbench.bench import train

        report.write("train", train.run(quick=quick), out_dir)
    rows = json.loads(record.read_text())["rows"]
    rates: dict[str, float] = {}
    for row in rows:
        if row.get("device", "cpu") == "cpu" and row.get("samples_per_s"):
            rates[row["system"]] = max(rates.get(row["system"], 0.0), float(row["samples_per_s"]))
    return rates


def loader_rows(quick: bool, rates: dict[str, float]) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case, system, shape, clips, batch, view in CASES:
            if quick:
                clips = max(2 * batch, clips // 8) if view is None else 4
            directory = Path(tmp) / case.split()[0]
            directory.mkdir()
            paths, ids, _ = write_shards(directory, shape, clips, n_shards=2)
            batches = 10 if quick else 40
            row = {"case": case, "shape": "x".join(map(str, shape)), "batch": batch}
            for workers in (0, 1, 2):
                row[f"workers_{workers}"] = loader_rate(paths, ids, view, batch, workers, batches)
            row["loader_best"] = max(row[f"workers_{w}"] for w in (0, 1, 2))
            if system in rates:
                row["model_samples_per_s"] = rates[system]
                row["ratio"] = row["loader_best"] / rates[system]
            rows.append(row)
    return rows


LAYOUTS = [
    ("contiguous float32 (ours)", dict()),
    ("chunk per example", dict(chunks=True)),
    ("chunk per example + lzf", dict(compression="lzf")),
    ("chunk per example + gzip", dict(compression="gzip")),
    ("contiguous float16", dict(dtype="float16")),
    ("contiguous float32, 8 shards", dict(n_shards=8)),
]


def layout_rows(quick: bool) -> list[dict]:
    """The SeNoT input (3, 128, 469; 720 kB) in each layout: write, size, random reads through the reader."""
    shape, clips = paper_spec("senot").output_shape(), (60 if quick else 300)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, options in LAYOUTS:
            directory = Path(tmp) / str(len(rows))
            directory.mkdir()
            options = dict(options)
            paths, ids, seconds = write_shards(directory, shape, clips, options.pop("n_shards", 1), **options)
            size = sum(p.stat().st_size for p in paths)
            raw = clips * int(np.prod(shape)) * 4
            rate = report.best(loader_rate(paths, ids, None, 16, 0, clips // 16) for _ in range(3))
            rows.append({"layout": name, "write_mb_per_s": raw / 1e6 / seconds, "size_vs_float32": size / raw,
                         "examples_per_s": rate, "mb_per_s": rate * raw / clips / 1e6})
    return rows


def run(quick: bool = False, out_dir: str | os.PathLike = "results/bench") -> dict:
    rates = consumption(out_dir, quick)
    rows = loader_rows(quick, rates)
    print(report.table("Shard reader through the training DataLoader (examples/s, random batches) vs the "
                       "training step (samples/s, `bench train`)", rows,
                       [("case", "input"), ("shape", "example"), ("batch", "batch"), ("workers_0", "0 workers"),
                        ("workers_1", "1 worker"), ("workers_2", "2 workers"), ("model_samples_per_s", "model"),
                        ("ratio", "reader / model")]))
    layouts = layout_rows(quick)
    print()
    print(report.table("Shard layouts, SeNoT input (3x128x469 float32 = 720 kB), random reads, 0 workers", layouts,
                       [("layout", "layout"), ("write_mb_per_s", "write MB/s"), ("size_vs_float32", "size"),
                        ("examples_per_s", "examples/s"), ("mb_per_s", "read MB/s")]))
    goals = [report.goal(f"{r['case']}: reader / training step", r["ratio"], RATIO_GOAL, unit="x")
             for r in rows if "ratio" in r]
    print(report.goals_text(goals))
    return {"quick": quick, "rows": rows, "layouts": layouts, "goals": goals}
