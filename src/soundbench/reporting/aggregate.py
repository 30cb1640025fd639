"""The aggregation step: per-seed metrics -> results/tables.csv and results/figures/*.png.

For every dataset with single-label runs, also each run's confusion over its scored split (the arg-max of the
class columns of predictions.csv against the manifest's labels): results/confusion.csv (every cell, per seed),
results/per_class_accuracy.csv (mean and std over seeds) and the figures confusion_<dataset>.png and
per_class_accuracy_<dataset>.png.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from soundbench import tasks
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


def _task(run: dict) -> str:
    """The run's task: from the plan's run record, else from its train.json."""
    if run.get("task"):
        return run["task"]
    return json.loads((Path(run["run_dir"]) / "train.json").read_text())["task"]


def _manifest_path(run: dict) -> Path:
    # results/<dataset>/<system>/<variant>/seed-<s> -> results/<dataset>/manifest.csv
    return Path(run["manifest"]) if run.get("manifest") else Path(run["run_dir"]).parents[2] / "manifest.csv"


def confusions(runs: list[dict]) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """(long table dataset, system, variant, seed, split (the scored one), true, predicted, count -- every cell,
    zeros included -- of each single-label run; {dataset: classes})."""
    from soundbench import manifest as mf

    manifests: dict[Path, mf.Manifest] = {}
    frames, classes_of = [], {}
    for run in runs:
        if not tasks.get(_task(run)).single_label:
            continue
        path = _manifest_path(run)
        if path not in manifests:
            manifests[path] = mf.read(path)
        m = manifests[path]
        labels = m.table.set_index("clip_id")["labels"]
        pred_path = Path(run["run_dir"]) / "predictions.csv"
        pred = pd.read_csv(pred_path)
        if list(pred.columns[1:]) != list(m.classes):
            raise ValueError(f"{pred_path}: class columns {list(pred.columns[1:])} are not the classes of {path}")
        unknown = ~pred["clip_id"].isin(labels.index)
        if unknown.any():
            raise ValueError(f"{pred_path}: clip {pred['clip_id'][unknown].iloc[0]!r} is not in {path}")
        index = {c: i for i, c in enumerate(m.classes)}
        true = labels.loc[pred["clip_id"]].map(index)
        if true.isna().any():
            bad = pred["clip_id"][true.isna().to_numpy()].iloc[0]
            raise ValueError(f"{path}: clip {bad!r} has no single label of {m.classes}")
        k = len(m.classes)
        counts = np.zeros((k, k), dtype=np.int64)
        np.add.at(counts, (true.to_numpy(int), pred[m.classes].to_numpy().argmax(axis=1)), 1)
        t, p = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
        split = json.loads((Path(run["run_dir"]) / "metrics.json").read_text())["split"]
        frames.append(pd.DataFrame({"dataset": run["dataset"], "system": run["system"], "variant": run["variant"],
                                    "seed": run["seed"], "split": split, "true": np.asarray(m.classes)[t.ravel()],
                                    "predicted": np.asarray(m.classes)[p.ravel()], "count": counts.ravel()}))
        classes_of.setdefault(run["dataset"], list(m.classes))
    columns = ["dataset", "system", "variant", "seed", "split", "true", "predicted", "count"]
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)), classes_of


def class_accuracy(confusion: pd.DataFrame) -> pd.DataFrame:
    """Per run and class: clips of the class and the fraction predicted as it; then mean/std over seeds."""
    keys = ["dataset", "system", "variant"]
    g = confusion.groupby(keys + ["seed", "true"], sort=False)
    per_seed = pd.DataFrame({"n": g["count"].sum(),
                             "right": confusion[confusion["true"] == confusion["predicted"]]
                             .groupby(keys + ["seed", "true"], sort=False)["count"].sum()}).reset_index()
    per_seed["accuracy"] = per_seed["right"] / per_seed["n"].where(per_seed["n"] > 0)
    out = per_seed.groupby(keys + ["true"], sort=False).agg(
        mean=("accuracy", "mean"), std=("accuracy", lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0),
        n_seeds=("seed", "nunique"), n_clips=("n", "first")).reset_index()
    return out.rename(columns={"true": "class"})


def class_figures(runs: list[dict], per_seed: pd.DataFrame, results_dir: Path, figure_dir: Path) -> list[Path]:
    """confusion.csv, per_class_accuracy.csv and the two figures of every dataset with single-label runs."""
    confusion, classes_of = confusions(runs)
    confusion.to_csv(results_dir / "confusion.csv", index=False)
    accuracy = class_accuracy(confusion) if len(confusion) else pd.DataFrame(
        columns=["dataset", "system", "variant", "class", "mean", "std", "n_seeds", "n_clips"])
    accuracy.to_csv(results_dir / "per_class_accuracy.csv", index=False, float_format="%.6g")
    written = []
    for dataset, classes in classes_of.items():
        acc = per_seed[(per_seed["dataset"] == dataset) & (per_seed["metric"] == "accuracy")]
        summary = {v: (float(s.mean()), float(np.std(s, ddof=1)) if len(s) > 1 else 0.0, len(s))
                   for v, s in acc.groupby("variant", sort=False)["value"]}
        c = confusion[confusion["dataset"] == dataset]
        splits = " / ".join(dict.fromkeys(c["split"]))
        out = figure_dir / f"confusion_{dataset}.png"
        figures.confusion_matrices(c, classes, summary, f"{dataset}: confusion on the {splits} clips (% of each "
                                   f"true class, summed over seeds)", out)
        written.append(out)
        out = figure_dir / f"per_class_accuracy_{dataset}.png"
        figures.per_class_accuracy(accuracy[accuracy["dataset"] == dataset], classes,
                                   f"{dataset}: per-class accuracy (mean over seeds)", out)
        written.append(out)
    return written


def run(runs: list[dict], table_path: Path, figure_dir: Path, benchmark_dir: Path | None = None) -> pd.DataFrame:
    from soundbench.reporting import sed_figures

    per_seed = tables.collect(runs)
    table = tables.summarise(per_seed)
    # the "1-best" rows (the paper's Table I reports the best seed too)
    best = sed_figures.one_best_rows(per_seed, runs)
    if len(best):
        table = pd.concat([table, best.astype(table.dtypes.to_dict())], ignore_index=True)
    table_path.parent.mkdir(parents=True, exist_ok=True)
    figure_dir.mkdir(parents=True, exist_ok=True)
    figures.primary_metric_bars(table, per_seed, figure_dir / "primary_metric.png")
    histories = {f"{r['variant']}/seed-{r['seed']}": pd.read_csv(Path(r["run_dir"]) / "history.csv") for r in runs}
    figures.training_curves(histories, figure_dir / "training_curves.png")
    class_figures(runs, per_seed, table_path.parent, figure_dir)
    sed_runs = [r for r in runs if _task(r) == "sed"]
    if sed_runs:
        sed_figures.per_class_event_f(table, figure_dir / "sed_per_class_event_f.png")
        for variant in dict.fromkeys(r["variant"] for r in sed_runs):  # the first seed of each sed experiment
            first = min((r for r in sed_runs if r["variant"] == variant), key=lambda r: r["seed"])
            sed_figures.event_timelines(first["run_dir"], figure_dir / f"sed_events_{variant}.png")
    per_seed.to_csv(table_path.with_name("per_seed.csv"), index=False, float_format="%.6g")
    if benchmark_dir is not None:
        stage_times(benchmark_dir).to_csv(table_path.with_name("stage_times.csv"), index=False)
    tmp = table_path.with_name(table_path.name + ".tmp")
    table.to_csv(tmp, index=False, float_format="%.6g")
    os.replace(tmp, table_path)
    return table
