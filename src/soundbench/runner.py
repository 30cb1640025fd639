"""Train and evaluate one (experiment, seed): the bodies of `soundbench train` and `soundbench evaluate`.

Outputs of a run directory (results/<dataset>/<system>/<variant>/seed-<s>/):
  model.pt        the selected model with everything needed to evaluate it (task, classes, inputs and their spec
                  hashes, normalisation, params)
  history.csv     one row per epoch (stage, epoch, lr, train_loss, val_loss, val_<select_metric>)
  train.json      wall time, device, clip counts, examples/s, what init_from loaded
  predictions.csv (the scored split, clip level), predictions.h5 (every predicted split, frame level and
                  embeddings included), per_class.csv, metrics.json, events.tsv (the detected events of the scored
                  split in the DCASE format; header only for tasks without events): written by evaluate
"""
from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from soundbench import configuration, declared_options, devices, systems, tasks
from soundbench import manifest as mf
from soundbench.training import checkpoint as ckpt
from soundbench.training import data, loop


def _atomic_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=float) + "\n")
    os.replace(tmp, path)


def _inputs(inputs) -> list[data.Input]:
    return inputs if isinstance(inputs, list) else data.parse_inputs(inputs)


def _pooled(split: data.Split) -> np.ndarray:
    from soundbench.models.baseline import pooled_stats

    if len(split.dataset.readers) != 1:
        raise ValueError("the sklearn baseline takes a single input")
    reader = next(iter(split.dataset.readers.values()))
    return np.concatenate([pooled_stats(reader[i]["x"].numpy()[None]) for i in range(len(reader))])


def _load_record(path) -> dict:
    # weights_only: tensors and plain containers only, so a crafted model.pt cannot run code on load (the
    # baseline is stored as arrays, the normalisation as tensors)
    return ckpt.safe_load(path)


def _norms_storable(norms: dict) -> dict:
    """{input: (mean, std) arrays or None} as tensors (what torch.load(weights_only=True) reads back)."""
    return {k: None if v is None else [torch.as_tensor(np.asarray(a)) for a in v] for k, v in norms.items()}


def build_model(record: dict) -> torch.nn.Module:
    """The trained torch model of a run record (model.pt), on the CPU, in eval mode."""
    system = systems.get(record["system"])
    shapes = {n: tuple(v["shape"]) for n, v in record["inputs"].items()}
    model = system.build(len(record["classes"]), tasks.get(record["task"]), shapes, **record["params"])
    model.load_state_dict(record["state_dict"])
    return model.eval()


def init_weights(model: torch.nn.Module, system, source_path, source: dict) -> dict:
    """Load an `init_from:` run's weights (its record `source`, read from source_path) into `model` through the
    system's conversion; tensors whose name and shape match are loaded, the rest stays as initialised. A
    same-named tensor of another shape is an error."""
    if "state_dict" not in source:
        raise ValueError(f"{source_path}: a {source['system']} run has no weights to initialise from")
    state = source["state_dict"]
    if system.convert is not None:
        state = system.convert(state, source, model)
    own = model.state_dict()
    bad = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if bad:
        raise ValueError(f"{source_path}: tensor {bad[0]!r} has shape {tuple(state[bad[0]].shape)}, the model's "
                         f"is {tuple(own[bad[0]].shape)} (give the system a `convert` hook)")
    loaded = {k: v for k, v in state.items() if k in own}
    if not loaded:
        raise ValueError(f"{source_path}: no tensor of the {source['system']} run matches this model's names")
    model.load_state_dict(loaded, strict=False)
    return {"path": str(source_path), "run_hash": source["run_hash"], "loaded": len(loaded),
            "fresh": len(own) - len(loaded), "unused": len(state) - len(loaded)}


def load_teacher(record: dict, device) -> torch.nn.Module:
    """A `teacher:` run's model (its record), frozen (no gradients, eval mode) on the device."""
    teacher = build_model(record).to(device)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def _eval_context(task, m: mf.Manifest, spec, thresholds, clip_ids, other=None, system=None,
                  params=None) -> tasks.EvalContext:
    """What the metrics need; the system's `frame_seconds` and `decode` hooks replace the task's defaults."""
    frame_seconds, events, decode = None, None, None
    if task.frame_seconds_needed:
        hook = getattr(system, "frame_seconds", None)
        frame_seconds = hook(spec, params or {}) if hook is not None else tasks.frame_seconds(spec)
        rows = m.table.set_index("clip_id").loc[clip_ids, "events"]
        events = {c: mf.events_from_json(e) for c, e in rows.items()}
        if getattr(system, "decode", None) is not None:
            decode = functools.partial(system.decode, params=params or {})
    ctx = tasks.EvalContext(m.classes, thresholds, frame_seconds, events, other or {}, decode)
    if system is not None:  # a multimodal system's embeddings: their names, retrieval pairs and distance
        ctx.embedding_name, ctx.retrieval = system.predict_key, tuple(system.retrieval)
        if system.retrieval_distance is not None:
            ctx.distance = functools.partial(system.retrieval_distance, params=params or {})
    return ctx


def _val_scorer(task, m, inputs, va: data.Split, metric: str, device, cfg, predict_key, system=None, params=None):
    """scorer(model, forward) -> the validation value of `metric` (model selection on a metric)."""
    # built once: the events and hooks of the validation clips do not change between epochs
    ctx = _eval_context(task, m, inputs[0].spec, np.full(len(m.classes), 0.5), va.clip_ids, system=system,
                        params=params)

    def score(model, forward):
        scores, frames = loop.predict(model, va.dataset, len(va), task, device, cfg["eval_batch_size"],
                                      predict_key=predict_key, forward=forward)
        pred = tasks.Predictions(va.name, va.clip_ids, va.targets, scores, frames)
        values = task.metrics(pred, ctx)[0]
        if metric not in values:
            raise ValueError(f"train.select_metric: {metric!r} is not a metric of the {task.name} task "
                             f"({', '.join(values)})")
        return values[metric]
    return score


def train(dataset: str, manifest_path, inputs, system_name: str, task_name: str, params: dict, train_cfg: dict,
          seed: int, out_dir, checkpoint_path, device: str = "auto", progress: bool = True, init_from=None,
          teacher=None) -> dict:
    t0 = time.time()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    system = systems.get(system_name)
    task = tasks.get(task_name)
    # the config checks of a Snakemake run, for a `soundbench train` without it: a typo or a wrong type is named
    declared_options.check_params(system_name, params, "--params")
    declared_options.check_train(train_cfg, "--train")
    params = {**system.params, **params}
    cfg = {**loop.DEFAULTS, **system.train, **train_cfg}
    inputs = _inputs(inputs)
    m = mf.read(manifest_path)
    data.verify_shards(m, inputs)
    view = system.view(params, inputs[0].spec)
    train_on = [cfg["train_on"]] if isinstance(cfg["train_on"], str) else list(cfg["train_on"])
    select_on = cfg["select_on"]
    if select_on in train_on:
        raise ValueError(f"train.select_on: {select_on!r} is also trained on (train.train_on: {train_on})")
    tr = data.load_split(m, inputs, train_on, task, view)
    if not len(tr):
        raise ValueError(f"{manifest_path}: no training clips with features (train.train_on: {train_on})")
    va = data.load_split(m, inputs, select_on, task, view) if select_on != "last" else None
    if va is not None and not len(va):
        raise ValueError(f"{manifest_path}: the {select_on!r} split is empty; set train.select_on to 'test' "
                         f"(the original's test-set selection) or 'last', or give the dataset a validation split")
    names = [inp.name for inp in inputs]
    per_input = configuration.normalize_per_input(cfg["normalize"], names)
    # the published constants only when asked for (a system publishes them for its papers' datasets only)
    constants = system.paper_normalization(dataset) \
        if system.paper_normalization is not None and "paper" in per_input.values() else None
    norms = {inp.name: data.fit_normalizer(how, tr, inp, constants) for inp, how in zip(inputs, per_input.values())}
    for split in (tr, va):
        if split is not None:
            split.dataset.set_normalize(norms)
    upstream = {k: _load_record(p) for k, p in (("init_from", init_from), ("teacher", teacher)) if p}
    run_hash = loop.config_hash([system_name, task.name, params, cfg, seed, [(i.name, i.spec.hash()) for i in inputs],
                                 str(manifest_path), {k: r["run_hash"] for k, r in upstream.items()}])
    n_classes = len(m.classes)
    first = tr.dataset[0]["inputs"]
    shapes = {n: tuple(first[n].shape) for n in names}
    torch.manual_seed(seed)
    np.random.seed(seed)
    dev = loop.device_for(device)
    record = {"system": system_name, "task": task.name, "params": params, "train": cfg, "seed": seed,
              "classes": m.classes, "normalize": _norms_storable(norms), "run_hash": run_hash,
              "inputs": {i.name: {"spec_hash": i.spec.hash(), "shape": list(shapes[i.name])} for i in inputs}}
    info = {}
    if system.kind == "sklearn":
        model = system.build(n_classes, task, shapes, **params, seed=seed)
        model.fit(_pooled(tr), tr.targets["y"])
        from soundbench.models.baseline import LinearArrays

        record["sklearn"] = LinearArrays.of(model).state()  # arrays, no pickle
        history = pd.DataFrame([{"stage": 0, "epoch": 0}])
        seconds = time.time() - t0
    else:
        model = system.build(n_classes, task, shapes, **params)
        if init_from:
            info["init_from"] = init_weights(model, system, init_from, upstream["init_from"])
        with torch.no_grad():  # a wrong output shape fails here, not after an epoch
            model.eval()
            out = model(**{n: t[None].float() if t.dtype.is_floating_point else t[None] for n, t in first.items()})
            task.check_output(out[system.predict_key] if isinstance(out, dict) else out, n_classes)
        hooks = loop.Hooks.of(system, params, load_teacher(upstream["teacher"], dev) if teacher else None)
        scorer = None
        if cfg["select_metric"] != "loss" and va is not None:
            scorer = _val_scorer(task, m, inputs, va, cfg["select_metric"], dev, cfg, system.predict_key, system,
                                 params)
        model, hist = loop.fit(model, tr.dataset, va.dataset if va is not None else None, task, cfg, seed,
                               Path(checkpoint_path), run_hash, dev, progress, hooks, scorer)
        record["state_dict"] = {k: v.cpu() for k, v in model.state_dict().items()}
        # no epoch at all (stages of 0 epochs: an init_from run's weights as they are) still writes the columns
        history = pd.DataFrame(hist) if hist else pd.DataFrame(columns=["stage", "epoch", "lr", "train_loss"])
        seconds = model.train_seconds
    n_examples = len(tr.dataset) * len(history) if system.kind == "torch" else 0  # examples seen in training
    info.update({"wall_seconds": round(time.time() - t0, 3), "train_seconds": round(seconds, 3), "device": str(dev),
                 "device_name": devices.describe(dev), "task": task.name,
                 "precision": loop.precision(cfg, dev) if system.kind == "torch" else "float64 (scikit-learn)",
                 "n_train": len(tr), "n_validation": len(va) if va is not None else 0,
                 "n_epochs": int(len(history)), "n_examples_train": len(tr.dataset),
                 "n_params": int(sum(p.numel() for p in model.parameters())) if system.kind == "torch" else 0,
                 "examples_per_second": round(n_examples / seconds, 2) if n_examples and seconds else None})
    torch.save(record, out_dir / "model.pt.tmp")
    os.replace(out_dir / "model.pt.tmp", out_dir / "model.pt")
    history.to_csv(out_dir / "history.csv", index=False)
    _atomic_json(out_dir / "train.json", info)
    return info


def _one_hot(y: np.ndarray, n: int) -> np.ndarray:
    return np.eye(n)[y] if y.ndim == 1 else y


def event_lines(events: dict[str, list] | None, m: mf.Manifest) -> list[str]:
    """The DCASE event format (filename, onset, offset, event_label; TAB, header), as test.csv lists the reference:
    sed_eval and dcase_util read it as it is. Header only for a task without events."""
    lines = ["filename\tonset\toffset\tevent_label"]
    if events:
        names = m.table.set_index("clip_id")["path"].map(lambda p: Path(p).name)
        for clip, clip_events in events.items():
            lines += [f"{names[clip]}\t{on:.6f}\t{off:.6f}\t{label}" for on, off, label in clip_events]
    return lines


def write_events(path: Path, events: dict[str, list] | None, m: mf.Manifest) -> None:
    """events.tsv (event_lines), written atomically."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(event_lines(events, m)) + "\n")
    os.replace(tmp, path)


def check_trained_on(record: dict, specs: dict, where) -> None:
    """Each input's feature spec ({name: FeatureSpec}) is the one the run was trained on; else ValueError naming
    `where` (the model file) and the input."""
    for name, spec in specs.items():
        want = record["inputs"].get(name, {}).get("spec_hash")
        if want != spec.hash():
            raise ValueError(f"{where}: input {name!r} was trained on features {want}, not {spec.hash()}")


def predict_split(record: dict, m: mf.Manifest, inputs: list[data.Input], split: str, model, device, view,
                  targets: bool = True) -> tasks.Predictions | None:
    """A trained run's predictions (before any post-processing) of one manifest split, None when it has no clips
    with features: the run's normalisation and view, the sklearn or torch path. targets=False: unlabelled clips
    (`soundbench predict`), the Predictions carry no targets."""
    system, task = systems.get(record["system"]), tasks.get(record["task"])
    s = data.load_split(m, inputs, split, task, view, normalize=record["normalize"], targets=targets)
    if not len(s):
        return None
    extra = None
    if system.kind == "sklearn":
        from soundbench.models.baseline import LinearArrays, predict_proba

        scores, frames = predict_proba(LinearArrays(record["sklearn"]), _pooled(s), task, len(m.classes)), None
    else:
        extra = dict.fromkeys(system.embeddings) if system.embeddings else None
        scores, frames = loop.predict(model, s.dataset, len(s), task, device, speed=record["train"],
                                      predict_key=system.predict_key, extra=extra)
    return tasks.Predictions(split, s.clip_ids, s.targets, scores, frames, extra=extra)


def evaluate(manifest_path, inputs, model_path, out_dir, threshold=None, device: str = "auto", split: str = "test",
             predictions_from=None) -> dict:
    """threshold: a threshold configuration (evaluation/thresholds.py); None: the system's default."""
    from soundbench.evaluation import predictions as pred_io
    from soundbench.evaluation import thresholds as thr

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    record = _load_record(model_path)
    system = systems.get(record["system"])
    task = tasks.get(record["task"])
    inputs = _inputs(inputs)
    m = mf.read(manifest_path)
    if m.classes != record["classes"]:
        raise ValueError(f"{model_path}: trained on other classes than {manifest_path} lists")
    check_trained_on(record, {inp.name: inp.spec for inp in inputs}, model_path)
    data.verify_shards(m, inputs)
    view = system.view(record["params"], inputs[0].spec)
    model, dev = None, None
    if system.kind == "torch":
        dev = loop.device_for(device)
        model = build_model(record).to(dev)
    preds: dict[str, tasks.Predictions] = {}
    for name in task.prediction_splits(split):
        p = predict_split(record, m, inputs, name, model, dev, view)
        if p is None:
            if name == split:
                raise ValueError(f"{manifest_path}: no {split} clips with features")
            continue
        preds[name] = p
    if system.postprocess is not None:
        upstream = pred_io.read(predictions_from)[0] if predictions_from else None
        preds = system.postprocess(preds, upstream, record["params"])
    n_classes = len(m.classes)
    threshold = system.threshold if threshold is None else threshold
    val = preds.get("validation")
    thresholds = thr.resolve(threshold, m.classes,
                             _one_hot(val.targets["y"], n_classes) if val is not None else None,
                             val.scores if val is not None else None, seed=record["seed"]) \
        if task.classes_at_prediction else np.full(n_classes, np.nan)
    test = preds[split]
    ctx = _eval_context(task, m, inputs[0].spec, thresholds, test.clip_ids, preds, system, record["params"])
    scores_, per_class = task.metrics(test, ctx)
    write_events(out_dir / "events.tsv", task.events(test, ctx), m)
    scores_ = {k: float(v) for k, v in scores_.items()}
    if task.classes_at_prediction:
        table = pd.DataFrame(test.scores, columns=m.classes)
    else:
        table = pd.DataFrame({"label": [m.classes[y] if y >= 0 else "" for y in test.targets["y"]]})
    table.insert(0, "clip_id", test.clip_ids)
    table.to_csv(out_dir / "predictions.csv", index=False, float_format="%.6g")
    pred_io.write(out_dir / "predictions.h5", preds,
                  {"classes": m.classes, "thresholds": [float(t) for t in thresholds], "task": task.name,
                   "scored_split": split, "manifest": str(manifest_path),
                   "inputs": {inp.name: inp.spec.fields() for inp in inputs},
                   **({"frame_seconds": ctx.frame_seconds} if ctx.frame_seconds else {})})
    per_class.to_csv(out_dir / "per_class.csv", index=False, float_format="%.6g")
    counts = m.counts()
    out = {"metrics": scores_, "primary": task.primary, "split": split, "n_test": len(test),
           "n_missing": counts["missing"], "threshold": thr.describe(threshold),
           "n_skipped": int(len(m.split(split)) - len(test))}
    _atomic_json(out_dir / "metrics.json", out)
    return out
