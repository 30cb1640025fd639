"""Registry of datasets: name -> DatasetInfo (see base.py), and the demo synthesiser of each."""
from __future__ import annotations

import importlib

from soundbench.datasets.base import DatasetInfo, Release

NAMES = ("mtt", "speech_commands", "dcase2017_task4", "dcase2018_task1a", "dcase2019_task1a", "dcase2018_task4",
         "acivw")
# dataset types without a release of their own: configured under any name with `type:` (one's own data)
GENERIC = ("audiofolder",)


def get(name: str) -> DatasetInfo:
    if name not in NAMES + GENERIC:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(NAMES + GENERIC)}")
    return importlib.import_module(f"soundbench.datasets.{name}").DATASET


def type_of(name: str, cfg: dict | None) -> str:
    """The registry name of a configured dataset: its `type:`, else its own name (a published dataset)."""
    kind = (cfg or {}).get("type") or name
    if kind not in NAMES + GENERIC:
        hint = f"; for your own recordings set `type: {GENERIC[0]}`" if not (cfg or {}).get("type") else ""
        raise KeyError(f"datasets.{name}: unknown dataset type {kind!r}; known: {', '.join(NAMES + GENERIC)}{hint}")
    return kind


def task_of(name: str, cfg: dict | None) -> str:
    """A configured dataset's task: the registry's, or for own data the one its metadata implies (or sets)."""
    kind = type_of(name, cfg)
    if kind == "audiofolder":
        from soundbench.datasets.audiofolder import infer_task

        cfg = cfg or {}
        return infer_task(cfg.get("root") or f"resources/datasets/{name}", **cfg.get("parse", {}))
    return get(kind).task


def make_demo(name: str, out_dir, seed: int = 0, **options) -> Release:
    """Synthesise the demo version of a dataset under out_dir in its real layout; returns its release."""
    get(name)  # validates the name
    return importlib.import_module(f"soundbench.datasets.demo.{name}").make(out_dir, seed=seed, **options)
