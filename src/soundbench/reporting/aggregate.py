"""The aggregation step: per-seed metrics -> results/tables.csv and results/figures/*.png."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from soundbench.reporting import figures, tables


def run(runs: list[dict], table_path: Path, figure_dir: Path) -> pd.DataFrame:
    per_seed = tables.collect(runs)
    table = tables.summarise(per_seed)
    table_path.parent.mkdir(parents=True, exist_ok=True)
    figure_dir.mkdir(parents=True, exist_ok=True)
    figures.primary_metric_bars(table, per_seed, figure_dir / "primary_metric.png")
    histories = {f"{r['variant']}/seed-{r['seed']}": pd.read_csv(Path(r["run_dir"]) / "history.csv") for r in runs}
    figures.training_curves(histories, figure_dir / "training_curves.png")
    per_seed.to_csv(table_path.with_name("per_seed.csv"), index=False, float_format="%.6g")
    tmp = table_path.with_name(table_path.name + ".tmp")
    table.to_csv(tmp, index=False, float_format="%.6g")
    os.replace(tmp, table_path)
    return table
