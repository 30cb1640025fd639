"""Figures people would rather look at than tables: the primary metric per system, and training curves."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def primary_metric_bars(table: pd.DataFrame, per_seed: pd.DataFrame, out: Path) -> None:
    """One panel per dataset: the primary metric of each variant, bars = mean, dots = seeds, x = paper."""
    prim = table[table["primary"]]
    datasets = list(dict.fromkeys(prim["dataset"]))
    width = [max(2.5, 0.45 * (prim["dataset"] == d).sum() + 1) for d in datasets]
    fig, axes = plt.subplots(1, len(datasets), figsize=(sum(width) + 1, 4.2), squeeze=False,
                             gridspec_kw={"width_ratios": width})
    for ax, ds in zip(axes[0], datasets):
        t = prim[prim["dataset"] == ds]
        x = np.arange(len(t))
        ax.bar(x, t["mean"], yerr=t["std"], color="#4c78a8", capsize=3)
        for i, (_, r) in enumerate(t.iterrows()):
            s = per_seed[(per_seed["variant"] == r["variant"]) & (per_seed["metric"] == r["metric"])]
            ax.plot(np.full(len(s), i), s["value"], "k.", ms=4)
            if np.isfinite(r["paper"]):
                ax.plot(i, r["paper"], "rx", ms=8, label="paper" if i == 0 else None)
        ax.set_xticks(x, t["variant"], rotation=40, ha="right", fontsize=7)
        ax.set_title(ds, fontsize=9)
        ax.set_ylabel(t["metric"].iloc[0])
        ax.set_ylim(0, 1)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def training_curves(histories: dict[str, pd.DataFrame], out: Path) -> None:
    """Train (solid) and validation (dashed) loss per epoch, one line pair per run."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, h in histories.items():
        if "train_loss" not in h or h["train_loss"].isna().all():
            continue
        x = np.arange(1, len(h) + 1)
        line, = ax.plot(x, h["train_loss"], label=name, lw=1)
        if "val_loss" in h:
            ax.plot(x, h["val_loss"], "--", color=line.get_color(), lw=1)
    ax.set_xlabel("epoch (all stages)")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    if ax.lines:
        ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
