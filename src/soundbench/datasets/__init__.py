"""Registry of datasets: name -> DatasetInfo (see base.py), and the demo synthesiser of each."""
from __future__ import annotations

import importlib

from soundbench.datasets.base import DatasetInfo, Release

NAMES = ("mtt", "speech_commands", "dcase2017_task4", "dcase2018_task1a", "dcase2019_task1a", "dcase2018_task4",
         "acivw")


def get(name: str) -> DatasetInfo:
    if name not in NAMES:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(NAMES)}")
    return importlib.import_module(f"soundbench.datasets.{name}").DATASET


def make_demo(name: str, out_dir, seed: int = 0, **options) -> Release:
    """Synthesise the demo version of a dataset under out_dir in its real layout; returns its release."""
    get(name)  # validates the name
    return importlib.import_module(f"soundbench.datasets.demo.{name}").make(out_dir, seed=seed, **options)
