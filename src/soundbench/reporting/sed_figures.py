"""Sound event detection in the report: what a run detected on a few test clips, the class-wise event F-scores
against the paper's, and the papers' "1-best" rows (the best of the trained models, IJCNN 2019 Table I).

  event_timelines(run_dir, out)                        per clip, the log-mel over its reference events (top
                                                        bar of each class) and the run's events from events.tsv
                                                        (bottom bar, outlined), on one time axis
  per_class_event_f(table, out)                         per SED variant, the class-wise event F (mean +- std
                                                        over seeds) next to the paper's where it has one
  one_best_rows(per_seed, runs)                         tables.csv rows "<variant> (1-best)": every metric of
                                                        the seed with the best primary metric, with the paper's
                                                        "1-best:<metric>" numbers of the experiment's `paper:`
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from soundbench import manifest as mf  # noqa: E402

PER_CLASS_PREFIX = "f1_event/"  # the sed task's class-wise event F metrics
BEST_PREFIX = "1-best:"  # an experiment's paper numbers of its best model


def read_events(path) -> dict[str, list[tuple[float, float, str]]]:
    """events.tsv (filename, onset, offset, event_label) -> {filename: [(onset, offset, label)]}."""
    t = pd.read_csv(path, sep="\t", dtype={"filename": str, "event_label": str})
    missing = {"filename", "onset", "offset", "event_label"} - set(t.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}")
    out: dict[str, list] = {}
    for f, on, off, lab in zip(t["filename"], t["onset"], t["offset"], t["event_label"]):
        out.setdefault(f, []).append((float(on), float(off), lab))
    return out


def _pick_clips(test: pd.DataFrame, n: int) -> list[str]:
    """Deterministic: the clips with the most reference events (then by id)."""
    counts = test["events"].map(lambda e: len(mf.events_from_json(e)))
    order = sorted(zip(-counts, test["clip_id"]))
    return [c for _, c in order[:n]]


def _logmel(row, spec):
    from soundbench import audio
    from soundbench.features.extract import clip_feature
    from soundbench.features.spec import FeatureSpec

    if isinstance(spec, dict):
        spec = FeatureSpec.from_config("figure", spec)
    spec = spec.resolved(spec.clip_seconds)
    x, sr = audio.decode(row["path"], row["start"], spec.clip_seconds)
    return clip_feature(x, sr, spec)[0][0], spec.clip_seconds


def event_timelines(run_dir, out, manifest_path=None, spec=None, clip_ids=None, n_clips: int = 4) -> list[str]:
    """The figure for `n_clips` test clips of a finished sed run (or the given clip_ids); returns the clip ids.

    manifest_path and spec (the input's feature spec: a config mapping with clip_seconds, or a resolved FeatureSpec;
    the log-mel is computed from the clip's audio with it) default to what the run's predictions.h5 records."""
    if manifest_path is None or spec is None:
        from soundbench.evaluation import predictions

        attrs = predictions.read(Path(run_dir) / "predictions.h5")[1]
        manifest_path = attrs["manifest"] if manifest_path is None else manifest_path
        spec = next(iter(attrs["inputs"].values())) if spec is None else spec
    m = mf.read(manifest_path)
    test = m.split("test")
    test = test[test["events"] != ""]
    if clip_ids is None:
        clip_ids = _pick_clips(test, n_clips)
    rows = m.table.set_index("clip_id")
    unknown = [c for c in clip_ids if c not in rows.index]
    if unknown:
        raise ValueError(f"{manifest_path}: no clip {unknown[0]!r}")
    estimated = read_events(Path(run_dir) / "events.tsv")
    classes = m.classes
    colors = plt.get_cmap("tab10")
    fig, axes = plt.subplots(2 * len(clip_ids), 1, figsize=(9, 3.6 * len(clip_ids)), squeeze=False,
                             gridspec_kw={"height_ratios": [1.2, 1] * len(clip_ids)})
    for k, clip in enumerate(clip_ids):
        row = rows.loc[clip]
        mel, seconds = _logmel(row, spec)
        top, bottom = axes[2 * k, 0], axes[2 * k + 1, 0]
        top.imshow(mel, origin="lower", aspect="auto", cmap="magma", extent=(0, seconds, 0, mel.shape[0]))
        top.set_ylabel("mel band")
        top.set_title(f"{clip}", fontsize=8)
        top.set_xlim(0, seconds)
        top.tick_params(labelbottom=False)
        reference = mf.events_from_json(row["events"])
        detected = estimated.get(Path(row["path"]).name, [])
        shown = [c for c in classes if any(e[2] == c for e in reference + detected)]
        for y, label in enumerate(shown):
            color = colors(classes.index(label) % 10)
            for on, off, lab in reference:
                if lab == label:
                    bottom.broken_barh([(on, off - on)], (y + 0.05, 0.4), color=color, alpha=0.45)
            for on, off, lab in detected:
                if lab == label:
                    bottom.broken_barh([(on, off - on)], (y - 0.45, 0.4), color=color, edgecolor="black",
                                       linewidth=0.6)
        bottom.set_yticks(range(len(shown)), [s.replace("_", " ") for s in shown], fontsize=7)
        bottom.set_ylim(-0.6, max(len(shown), 1) - 0.4)
        bottom.set_xlim(0, seconds)
        bottom.set_xlabel("time (s): reference events (upper bars, pale) and detected events (lower bars, outlined)",
                          fontsize=8)
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return list(clip_ids)


def per_class_event_f(table: pd.DataFrame, out) -> bool:
    """One panel per SED variant (every variant with class-wise event F rows, so the file exists exactly when the
    table has SED runs): our mean +- std over seeds, and the paper's bar where it has a number; False (no file)
    without SED rows."""
    rows = table[table["metric"].str.startswith(PER_CLASS_PREFIX)]
    variants = list(dict.fromkeys(rows["variant"]))
    if not variants:
        return False
    fig, axes = plt.subplots(len(variants), 1, figsize=(9, 2.8 * len(variants)), squeeze=False)
    for ax, variant in zip(axes[:, 0], variants):
        t = rows[rows["variant"] == variant]
        x = np.arange(len(t))
        ax.bar(x - 0.2, t["mean"], 0.4, yerr=t["std"].fillna(0), capsize=2, color="#4c78a8", label="ours")
        if np.isfinite(pd.to_numeric(t["paper"], errors="coerce")).any():
            ax.bar(x + 0.2, t["paper"], 0.4, color="#e45756", label="paper")
        ax.set_xticks(x, [m.removeprefix(PER_CLASS_PREFIX).replace("_", " ") for m in t["metric"]], rotation=30,
                      ha="right", fontsize=7)
        ax.set_ylabel("event F")
        ax.set_ylim(0, 1)
        ax.set_title(variant, fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return True


def one_best_rows(per_seed: pd.DataFrame, runs: list[dict]) -> pd.DataFrame:
    """Rows in the tables.csv columns for every experiment whose `paper:` has "1-best:" numbers: the metrics of its
    seed with the best primary metric (the highest; the paper picked its best model on the test set), variant
    "<variant> (1-best)", std NaN, paper = the "1-best:" numbers."""
    from soundbench.reporting.tables import COLUMNS

    best_paper: dict[str, dict] = {}
    for run in runs:
        numbers = {k.removeprefix(BEST_PREFIX): v for k, v in run.get("paper", {}).items() if k.startswith(BEST_PREFIX)}
        if numbers:
            best_paper[run["variant"]] = numbers
    out = []
    for variant, numbers in best_paper.items():
        mine = per_seed[per_seed["variant"] == variant]
        primary = mine[mine["primary"]]
        if primary.empty:
            continue
        seed = primary.sort_values(["value", "seed"], ascending=[False, True])["seed"].iloc[0]
        for _, r in mine[mine["seed"] == seed].iterrows():
            out.append({**{k: r[k] for k in ("dataset", "system", "metric", "n_train", "n_test", "n_missing",
                                             "primary", "config_hash", "train_seconds", "device")},
                        "variant": f"{variant} (1-best)", "mean": r["value"], "std": np.nan,
                        "n_seeds": int(mine["seed"].nunique()), "paper": numbers.get(r["metric"], np.nan)})
    return pd.DataFrame(out, columns=COLUMNS)
