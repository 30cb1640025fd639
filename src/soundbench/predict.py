"""`soundbench predict RUN_DIR AUDIO... [--out FILE]`: a trained run applied to new audio files.

RUN_DIR is a finished run (results/<dataset>/<system>/<variant>/seed-<s>/ after `evaluate`): model.pt holds the
system, its parameters, the classes and the normalisation statistics; predictions.h5 the feature spec of every
input and the decision thresholds the evaluation used (tuned ones included). The files take the evaluation's own
path: a one-clip-per-file manifest, `features.extract.extract_shard` with the run's spec (decoding any format and
rate the decoders read, resampled and channel-mapped by the spec), `runner.predict_split` (normalisation, the
system's segmenting view, clip pooling), the system's post-processing and the task's event decoding. So a file
of the test split gets exactly the scores its evaluation gave it.

Output (tab-separated, a header line):
  multiclass   file, rank, class, score: the top-k classes (--top-k, default 3)
  multilabel   file, class, score: every class at or above its threshold, highest first
  sed          the DCASE event format, filename, onset, offset, event_label (events.tsv of `evaluate`)
A run whose post-processing takes another run's predictions (the SED second pass) needs that run too:
--predictions-from TAGGING_RUN_DIR applies it to the same files first.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from soundbench import manifest as mf
from soundbench import systems, tasks

SPLIT = "test"  # the split the new files are put in (any split would do; it is the scored one in evaluate)


def _run_files(run_dir: Path) -> tuple[Path, Path]:
    model, preds = run_dir / "model.pt", run_dir / "predictions.h5"
    for path, what in ((model, "train"), (preds, "evaluate")):
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: RUN_DIR must be a run directory after `{what}`")
    return model, preds


def _manifest(paths: list[str], classes: list[str]) -> mf.Manifest:
    from soundbench.datasets.common import audio_header

    rows, seen = [], {}
    for p in paths:
        full = os.path.abspath(p)
        if not os.path.isfile(full):
            raise FileNotFoundError(f"{p}: no such audio file")
        if full in seen:
            raise ValueError(f"{p}: given twice (also as {seen[full]})")
        seen[full] = p
        duration, channels, sr = audio_header(full)  # NaN when libsndfile cannot read it: decoded in full
        rows.append({"clip_id": p, "path": full, "split": SPLIT, "labels": "", "duration": duration,
                     "channels": channels, "sample_rate": sr})
    return mf.build(rows, classes, source="soundbench predict")


def run_predictions(run_dir, audio: list[str], workdir: Path, device: str = "auto",
                    predictions_from=None) -> tuple[tasks.Predictions, dict, mf.Manifest, dict]:
    """(the post-processed predictions of the files, the run's predictions.h5 attributes, their manifest, the
    run's model record)."""
    from soundbench import runner
    from soundbench.evaluation import predictions as pred_io
    from soundbench.features.extract import extract_shard
    from soundbench.features.spec import FeatureSpec
    from soundbench.training import data, loop
    from soundbench.training.checkpoint import safe_load

    run_dir = Path(run_dir)
    model_path, preds_path = _run_files(run_dir)
    record = safe_load(model_path)
    _, attrs = pred_io.read(preds_path)
    system, task = systems.get(record["system"]), tasks.get(record["task"])
    if not task.classes_at_prediction:
        raise ValueError(f"{run_dir}: a {task.name} run gives embeddings, not classes; predict has nothing to say")
    classes = list(record["classes"])
    m = _manifest(audio, classes)
    workdir.mkdir(parents=True, exist_ok=True)
    manifest_path = workdir / "manifest.csv"
    mf.write(m, manifest_path)
    # the resolved fields evaluate stored, as shards do
    specs = {name: FeatureSpec.from_fields(fields, name) for name, fields in attrs["inputs"].items()}
    runner.check_trained_on(record, specs, model_path)
    inputs = []
    for name, spec in specs.items():
        shard = workdir / f"{name}.h5"
        # every file must decode: max_failed_fraction 0 names the first one that does not
        extract_shard(manifest_path, spec, 0, 1, shard, clip_seconds=spec.clip_seconds, max_failed_fraction=0.0,
                      skipped_path=workdir / f"{name}.skipped.csv", progress=False)
        inputs.append(data.Input(name, spec, (shard,)))
    model, dev = None, None
    if system.kind == "torch":
        dev = loop.device_for(device)
        model = runner.build_model(record).to(dev)
    view = system.view(record["params"], inputs[0].spec)
    pred = runner.predict_split(record, m, inputs, SPLIT, model, dev, view, targets=False)
    preds = {SPLIT: pred}
    if system.postprocess is not None:
        upstream = None
        if predictions_from is not None:
            up, _, _, _ = run_predictions(predictions_from, audio, workdir / "upstream", device)
            upstream = {SPLIT: up}
        try:
            preds = system.postprocess(preds, upstream, record["params"])
        except ValueError as e:
            if predictions_from is not None:
                raise
            raise ValueError(f"{run_dir}: {e} (soundbench predict: give --predictions-from the tagging run's "
                             "directory)") from None
    pred = preds[SPLIT]
    pred.thresholds = np.asarray(attrs["thresholds"], dtype=np.float64)
    return pred, attrs, m, record


def format_rows(pred: tasks.Predictions, attrs: dict, m: mf.Manifest, record_params: dict, system_name: str,
                top_k: int = 3) -> list[str]:
    """The output lines (header first) for the task of the run."""
    task = tasks.get(attrs["task"])
    classes = list(attrs["classes"])
    if task.frame_seconds_needed:  # events, decoded as evaluate decodes them (the system's decode hook)
        import functools

        from soundbench import runner

        system = systems.get(system_name)
        decode = functools.partial(system.decode, params=record_params) if system.decode is not None else None
        ctx = tasks.EvalContext(classes, pred.thresholds, attrs["frame_seconds"], None, {}, decode)
        events = task.events(pred, ctx) or {}
        return runner.event_lines({clip: events.get(clip, []) for clip in pred.clip_ids}, m)
    if task.single_label:
        lines = ["file\trank\tclass\tscore"]
        for clip, row in zip(pred.clip_ids, pred.scores):
            order = np.argsort(-row, kind="stable")[:top_k]
            lines += [f"{clip}\t{r + 1}\t{classes[k]}\t{row[k]:.6f}" for r, k in enumerate(order)]
        return lines
    lines = ["file\tclass\tscore"]
    for clip, row in zip(pred.clip_ids, pred.scores):
        order = np.argsort(-row, kind="stable")
        lines += [f"{clip}\t{classes[k]}\t{row[k]:.6f}" for k in order if row[k] >= pred.thresholds[k]]
    return lines


def predict(run_dir, audio: list[str], out=None, top_k: int = 3, device: str = "auto",
            predictions_from=None) -> list[str]:
    """Predict the files and write the lines to `out` (a path) or return them."""
    if top_k < 1:
        raise ValueError(f"--top-k must be at least 1, got {top_k}")
    if not audio:
        raise ValueError("no audio files given")
    with tempfile.TemporaryDirectory(prefix="soundbench-predict-") as tmp:
        pred, attrs, m, record = run_predictions(run_dir, audio, Path(tmp), device, predictions_from)
    lines = format_rows(pred, attrs, m, record["params"], record["system"], top_k)
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp_out = out.with_name(out.name + ".tmp")
        tmp_out.write_text("\n".join(lines) + "\n")
        os.replace(tmp_out, out)
    return lines
