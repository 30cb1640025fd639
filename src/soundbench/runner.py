"""Train and evaluate one (experiment, seed): the bodies of `soundbench train` and `soundbench evaluate`.

Outputs of a run directory (results/<dataset>/<system>/<variant>/seed-<s>/):
  model.pt       the selected model with everything needed to evaluate it (classes, normalisation, spec hash)
  history.csv    one row per epoch (stage, epoch, lr, train_loss, val_loss)
  train.json     wall time, device, clip counts, examples/s
  predictions.csv, per_class.csv, metrics.json   written by evaluate
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from soundbench import devices, systems
from soundbench import manifest as mf
from soundbench.features.spec import FeatureSpec
from soundbench.training import data, loop


def _atomic_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=float) + "\n")
    os.replace(tmp, path)


def _normalizer(how, split: data.Split):
    """None, or (mean, std) from the training clips: "global" (scalars, SampleCNN) or "per_band" (per channel and
    mel band, over clips and frames); a dict {mean, std} gives constants (the originals' published values)."""
    if how in (None, "none"):
        return None
    if isinstance(how, dict):
        return np.float32(how["mean"]), np.float32(how["std"])
    whole = data.ShardDataset(split.dataset.shard_paths, split.clip_ids, split.targets,
                              spec_hash=split.dataset.spec_hash)
    s, s2, n = 0.0, 0.0, 0
    for i in range(len(whole)):
        x = whole[i]["x"].numpy().astype(np.float64)
        axes = tuple(range(x.ndim)) if how == "global" else (x.ndim - 1,)
        s = s + x.sum(axis=axes, keepdims=True)
        s2 = s2 + (x ** 2).sum(axis=axes, keepdims=True)
        n += x.size // np.size(s)
    if how not in ("global", "per_band"):
        raise ValueError(f"train.normalize: unknown value {how!r} (none | global | per_band | {{mean, std}})")
    mean = s / n
    std = np.sqrt(np.maximum(s2 / n - mean ** 2, 1e-12))
    return mean.astype(np.float32), std.astype(np.float32)


def _pooled(split: data.Split) -> np.ndarray:
    from soundbench.models.baseline import pooled_stats

    return np.concatenate([pooled_stats(split.dataset[i]["x"].numpy()[None]) for i in range(len(split))])


def train(manifest_path, shard_paths, spec_json: str, system_name: str, task: str, params: dict, train_cfg: dict,
          seed: int, out_dir, checkpoint_path, device: str = "auto", progress: bool = True) -> dict:
    t0 = time.time()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    system = systems.get(system_name)
    params = {**system.params, **params}
    cfg = {**loop.DEFAULTS, **system.train, **train_cfg}
    spec = FeatureSpec.from_config("spec", json.loads(spec_json))
    m = mf.read(manifest_path)
    data.verify_shards(m, shard_paths, spec.hash())
    view = system.view(params, spec)
    tr = data.load_split(m, shard_paths, "train", task, spec.hash(), view)
    if not len(tr):
        raise ValueError(f"{manifest_path}: no training clips with features")
    select_on = cfg.get("select_on", "validation")
    va = data.load_split(m, shard_paths, select_on, task, spec.hash(), view) if select_on != "last" else None
    if va is not None and not len(va):
        raise ValueError(f"{manifest_path}: the {select_on!r} split is empty; set train.select_on to 'test' "
                         f"(the original's test-set selection) or 'last', or give the dataset a validation split")
    norm = _normalizer(cfg["normalize"], tr)
    for split in (tr, va):
        if split is not None:
            split.dataset.normalize = norm
    run_hash = loop.config_hash([system_name, params, cfg, seed, spec.hash(), str(manifest_path)])
    n_classes = len(m.classes)
    input_shape = tuple(tr.dataset[0]["x"].shape)
    torch.manual_seed(seed)
    np.random.seed(seed)
    dev = loop.device_for(device)
    record = {"system": system_name, "task": task, "params": params, "train": cfg, "seed": seed,
              "classes": m.classes, "spec_hash": spec.hash(), "normalize": norm, "input_shape": input_shape,
              "run_hash": run_hash}
    if system.kind == "sklearn":
        model = system.build(n_classes, task, input_shape, **params, seed=seed)
        y = tr.targets
        model.fit(_pooled(tr), y)
        record["sklearn"] = model
        history = pd.DataFrame([{"stage": 0, "epoch": 0}])
        seconds = time.time() - t0
    else:
        model = system.build(n_classes, task, input_shape, **params)
        model, hist = loop.fit(model, tr.dataset, va.dataset if va is not None else None, task, cfg, seed,
                               Path(checkpoint_path), run_hash, dev, progress)
        record["state_dict"] = {k: v.cpu() for k, v in model.state_dict().items()}
        history = pd.DataFrame(hist)
        seconds = model.train_seconds
    n_examples = len(tr.dataset) * len(history) if system.kind == "torch" else 0  # examples seen in training
    info = {"wall_seconds": round(time.time() - t0, 3), "train_seconds": round(seconds, 3), "device": str(dev),
            "device_name": devices.describe(dev),
            "n_train": len(tr), "n_validation": len(va) if va is not None else 0,
            "n_epochs": int(len(history)), "n_examples_train": len(tr.dataset),
            "n_params": int(sum(p.numel() for p in model.parameters())) if system.kind == "torch" else 0,
            "examples_per_second": round(n_examples / seconds, 2) if n_examples and seconds else None}
    torch.save(record, out_dir / "model.pt.tmp")
    os.replace(out_dir / "model.pt.tmp", out_dir / "model.pt")
    history.to_csv(out_dir / "history.csv", index=False)
    _atomic_json(out_dir / "train.json", info)
    return info


def evaluate(manifest_path, shard_paths, model_path, out_dir, threshold: float = 0.5, device: str = "auto",
             split: str = "test") -> dict:
    from soundbench.evaluation import metrics  # sklearn: ~0.8 s of start-up a training job does not need

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    record = torch.load(model_path, map_location="cpu", weights_only=False)
    system = systems.get(record["system"])
    task = record["task"]
    m = mf.read(manifest_path)
    if m.classes != record["classes"]:
        raise ValueError(f"{model_path}: trained on other classes than {manifest_path} lists")
    spec_hash = record["spec_hash"]
    data.verify_shards(m, shard_paths, spec_hash)
    view = system.view(record["params"], None)
    te = data.load_split(m, shard_paths, split, task, spec_hash, view, normalize=record["normalize"])
    if not len(te):
        raise ValueError(f"{manifest_path}: no {split} clips with features")
    n_classes = len(m.classes)
    if system.kind == "sklearn":
        from soundbench.models.baseline import predict_proba

        p = predict_proba(record["sklearn"], _pooled(te), task, n_classes)
    else:
        dev = loop.device_for(device)
        model = system.build(n_classes, task, tuple(record["input_shape"]), **record["params"])
        model.load_state_dict(record["state_dict"])
        model.to(dev)
        p = loop.predict(model, te.dataset, len(te), task, dev, speed=record["train"])
    scores, per_class = metrics.evaluate(task, te.targets, p, m.classes, threshold)
    scores = {k: float(v) for k, v in scores.items()}
    pred = pd.DataFrame(p, columns=m.classes)
    pred.insert(0, "clip_id", te.clip_ids)
    pred.to_csv(out_dir / "predictions.csv", index=False, float_format="%.6g")
    per_class.to_csv(out_dir / "per_class.csv", index=False, float_format="%.6g")
    counts = m.counts()
    scores_out = {"metrics": scores, "primary": metrics.PRIMARY[task], "n_test": len(te),
                  "n_missing": counts["missing"], "threshold": threshold,
                  "n_skipped": int(len(m.split(split)) - len(te))}
    _atomic_json(out_dir / "metrics.json", scores_out)
    return scores_out
