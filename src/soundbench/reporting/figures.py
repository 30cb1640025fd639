"""Figures people would rather look at than tables: the primary metric per system, training curves, and for the
single-label classifiers of each dataset a confusion matrix per variant and the per-class accuracies."""
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


def _grid(n: int, ncols: int) -> tuple[int, int]:
    cols = max(1, min(ncols, n))
    return -(-n // cols), cols


def confusion_matrices(confusion: pd.DataFrame, classes: list[str], accuracy: dict[str, tuple[float, float, int]],
                       title: str, out: Path) -> None:
    """One panel per variant (in the order given): counts summed over seeds, each row normalised to the true
    class's clips (the diagonal is the per-class accuracy). confusion: long table with variant, true, predicted,
    count; accuracy: {variant: (mean, std, n_seeds)}."""
    variants = list(dict.fromkeys(confusion["variant"]))
    k = len(classes)
    rows, cols = _grid(len(variants), 4 if k <= 12 else 3)
    size = max(3.2, 0.15 * k + 1.8)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * size, rows * size + 0.4), squeeze=False)
    index = {c: i for i, c in enumerate(classes)}
    for ax, variant in zip(axes.flat, variants):
        c = confusion[confusion["variant"] == variant]
        m = np.zeros((k, k))
        np.add.at(m, (c["true"].map(index).to_numpy(), c["predicted"].map(index).to_numpy()), c["count"].to_numpy())
        norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
        image = ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
        if k > 12:  # too many cells to print: a colour scale instead
            fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02)
        if k <= 12:
            for i in range(k):
                for j in range(k):
                    if m[i, j]:
                        ax.text(j, i, f"{100 * norm[i, j]:.0f}", ha="center", va="center", fontsize=6,
                                color="white" if norm[i, j] > 0.5 else "black")
        ticks = np.arange(k)
        ax.set_xticks(ticks, classes, rotation=90, fontsize=6)
        ax.set_yticks(ticks, classes, fontsize=6)
        ax.set_xlabel("predicted", fontsize=7)
        ax.set_ylabel("true", fontsize=7)
        mean, std, n = accuracy.get(variant, (np.nan, np.nan, 0))
        ax.set_title(f"{variant}\naccuracy {mean:.3f}" + (f" ± {std:.3f} ({n} seeds)" if n > 1 else ""),
                     fontsize=7)
    for ax in list(axes.flat)[len(variants):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def per_class_accuracy(per_class: pd.DataFrame, classes: list[str], title: str, out: Path) -> None:
    """Variants (rows) x classes (columns): each class's accuracy (its clips predicted right), mean over seeds,
    and the mean over classes (balanced accuracy) in the last column. per_class: variant, class, mean."""
    variants = list(dict.fromkeys(per_class["variant"]))
    table = per_class.pivot(index="variant", columns="class", values="mean").reindex(index=variants, columns=classes)
    values = np.column_stack([table.to_numpy(), table.to_numpy().mean(axis=1)])
    labels = classes + ["mean"]
    k = len(labels)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.42 * k + 2.8), max(2.0, 0.32 * len(variants) + 1.8)))
    image = ax.imshow(values, vmin=0, vmax=1, cmap="Blues", aspect="auto")
    fig.colorbar(image, ax=ax, fraction=0.03, pad=0.01)
    if k <= 16:
        for i in range(values.shape[0]):
            for j in range(k):
                if np.isfinite(values[i, j]):
                    ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=6,
                            color="white" if values[i, j] > 0.6 else "black")
    ax.axvline(k - 1.5, color="k", lw=1)
    ax.set_xticks(np.arange(k), labels, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(np.arange(len(variants)), variants, fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
