"""results/tables.csv: one row per dataset x system x variant x metric, mean and std over seeds."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = ["dataset", "system", "variant", "metric", "mean", "std", "n_seeds", "n_train", "n_test", "n_missing",
           "paper", "primary", "config_hash", "train_seconds", "device", "precision"]


def collect(runs: list[dict]) -> pd.DataFrame:
    """runs: dicts with dataset, system, variant, seed, config_hash, paper ({metric: value}) and run_dir."""
    rows = []
    for run in runs:
        d = Path(run["run_dir"])
        scores = json.loads((d / "metrics.json").read_text())
        info = json.loads((d / "train.json").read_text())
        for metric, value in scores["metrics"].items():
            rows.append({**{k: run[k] for k in ("dataset", "system", "variant", "seed", "config_hash")},
                         "metric": metric, "value": value, "n_train": info["n_train"], "n_test": scores["n_test"],
                         "n_missing": scores["n_missing"], "primary": metric == scores["primary"],
                         "paper": run.get("paper", {}).get(metric, np.nan),
                         "train_seconds": info["train_seconds"], "device": info.get("device_name", info["device"]),
                         "precision": info.get("precision", "")})
    return pd.DataFrame(rows)


def summarise(per_seed: pd.DataFrame) -> pd.DataFrame:
    keys = ["dataset", "system", "variant", "metric"]
    g = per_seed.groupby(keys, sort=False)
    out = g.agg(mean=("value", "mean"), std=("value", lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0),
                n_seeds=("seed", "nunique"), n_train=("n_train", "first"), n_test=("n_test", "first"),
                n_missing=("n_missing", "first"), paper=("paper", "first"), primary=("primary", "first"),
                config_hash=("config_hash", "first"), train_seconds=("train_seconds", "mean"),
                device=("device", "first"), precision=("precision", "first")).reset_index()
    return out[COLUMNS]
