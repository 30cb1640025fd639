"""The aggregation step: per-seed metrics -> results/tables.csv and results/figures/*.png."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from soundbench.reporting import figures, tables


def stage_times(benchmark_dir: Path) -> pd.DataFrame:
    """Per rule: jobs, total and longest wall seconds, from Snakemake's `benchmark:` files."""
    rows = []
    for tsv in sorted(benchmark_dir.rglob("*.tsv")):
        rule = tsv.relative_to(benchmark_dir).parts[0].removesuffix(".tsv")
        rows.append({"rule": rule, "s": float(pd.read_csv(tsv, sep="\t")["s"].iloc[-1])})
    if not rows:
        return pd.DataFrame(columns=["rule", "jobs", "total_s", "max_s"])
    t = pd.DataFrame(rows).groupby("rule", sort=False)["s"]
    return pd.DataFrame({"jobs": t.size(), "total_s": t.sum().round(2), "max_s": t.max().round(2)}).reset_index()


def run(runs: list[dict], table_path: Path, figure_dir: Path, benchmark_dir: Path | None = None) -> pd.DataFrame:
    per_seed = tables.collect(runs)
    table = tables.summarise(per_seed)
    table_path.parent.mkdir(parents=True, exist_ok=True)
    figure_dir.mkdir(parents=True, exist_ok=True)
    figures.primary_metric_bars(table, per_seed, figure_dir / "primary_metric.png")
    histories = {f"{r['variant']}/seed-{r['seed']}": pd.read_csv(Path(r["run_dir"]) / "history.csv") for r in runs}
    figures.training_curves(histories, figure_dir / "training_curves.png")
    per_seed.to_csv(table_path.with_name("per_seed.csv"), index=False, float_format="%.6g")
    if benchmark_dir is not None:
        stage_times(benchmark_dir).to_csv(table_path.with_name("stage_times.csv"), index=False)
    tmp = table_path.with_name(table_path.name + ".tmp")
    table.to_csv(tmp, index=False, float_format="%.6g")
    os.replace(tmp, table_path)
    return table
