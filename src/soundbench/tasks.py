"""Tasks: what the targets of a problem are, its default loss, how outputs become predictions, and its metrics.

A task is data the code asks; nothing compares task names. Four tasks:

  multiclass   one class per clip; cross-entropy on logits; softmax; argmax accuracy (primary), macro F1 and the
               thresholded multi-label metrics on one-hot targets (SampleCNN's eval.py for Speech Commands)
  multilabel   any number of classes per clip; BCE on logits; sigmoid; macro ROC-AUC (primary), PR-AUC, subset
               accuracy and F1 at the thresholds
  sed          sound event detection: the model gives frame-level logits (batch, frames, classes); targets are the
               clip's tags (weak labels, every clip) and frame targets built from the manifest's events at the
               input spec's hop (strongly labelled clips only, `strong` says which); default loss: BCE of the
               maximum over frames against the tags (multiple-instance learning); clip scores are the maximum of
               the frame probabilities; metrics: the tagging metrics on clip scores plus event-based and
               segment-based F-scores (sed_eval) of the events decoded at the thresholds, on the strongly
               labelled clips; primary: event-based macro F-score
  embedding    the model gives an embedding per clip (no classes at prediction time); no default loss (the system
               brings one, e.g. a triplet loss); metrics: kNN classification of the test embeddings from the
               training embeddings, k chosen on validation (primary: knn_accuracy)

Per clip, `targets()` gives named arrays: "y" always (class id or multi-hot tags), plus "frames" and "strong" for
sed and "group" (the manifest's grouping, e.g. the video) for embedding. Batches carry them under those names.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from soundbench import manifest as mf

if TYPE_CHECKING:
    import torch


@dataclass
class Predictions:
    """One split's predictions: clip-level scores (n, classes) or embeddings (n, dim), optional frame scores."""

    split: str
    clip_ids: list[str]
    targets: dict[str, np.ndarray]
    scores: np.ndarray
    frames: np.ndarray | None = None  # (n, frames, classes), sed only
    thresholds: np.ndarray | None = None  # the run's decision thresholds (read back from predictions.h5)
    # embedding: the other embeddings of the same clips, by model output name (a multimodal model's video side)
    extra: dict[str, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.clip_ids)


@dataclass
class EvalContext:
    """What metrics may need beyond one split's predictions."""

    classes: list[str]
    thresholds: np.ndarray  # (classes,)
    frame_seconds: float | None = None
    events: dict[str, list] | None = None  # clip_id -> reference events, strongly labelled clips
    other: dict[str, Predictions] | None = None  # the other predicted splits (embedding: train, validation)
    # one clip's frame scores (frames, classes), thresholds, frame_seconds, classes -> [(onset, offset, label)]: a
    # system's own decoding (systems.py `decode`); None: runs at or above the thresholds (evaluation.sed.decode)
    decode: Callable | None = None
    # embedding: the name of the primary embedding (the system's predict_key), the (query, gallery) embedding
    # pairs scored by cross-modal retrieval, and the system's distance(query name, Q, gallery name, G, params) ->
    # (nq, ng) tensor (None: squared Euclidean distance of the L2-normalised embeddings)
    embedding_name: str = "embedding"
    retrieval: tuple = ()
    distance: Callable | None = None


class Task:
    name = ""
    primary = ""
    single_label = False  # one class per clip (targets are class ids)
    classes_at_prediction = True  # False: the model predicts embeddings, not class scores
    frame_seconds_needed = False  # metrics need the frame duration and the reference events (sed)
    lower_is_better: tuple[str, ...] = ()  # metrics where smaller is better (model selection)

    def targets(self, m: mf.Manifest, frame, spec=None) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def loss(self, prediction: torch.Tensor, batch: dict) -> torch.Tensor:
        raise ValueError(f"the {self.name} task has no default loss; the system must define `loss`")

    def activate(self, prediction: torch.Tensor) -> torch.Tensor:
        """Logits -> scores (probabilities, or the embedding as it is)."""
        return prediction

    def clip_scores(self, scores: torch.Tensor) -> torch.Tensor:
        """Scores of one example (batch, ...) -> clip-level (batch, classes or dim)."""
        return scores

    def frame_scores(self, scores: torch.Tensor) -> torch.Tensor | None:
        return None

    def prediction_splits(self, eval_split: str) -> list[str]:
        """The splits `evaluate` predicts: validation (threshold tuning, a later pass) and the scored split."""
        return list(dict.fromkeys(["validation", eval_split]))

    def metrics(self, pred: Predictions, ctx: EvalContext):
        """-> (scalar metrics, per-class DataFrame)."""
        raise NotImplementedError

    def events(self, pred: Predictions, ctx: EvalContext) -> dict[str, list] | None:
        """clip_id -> the detected events [(onset, offset, label)] of every clip (events.tsv), or None for a task
        without events."""
        return None

    def check_output(self, prediction: torch.Tensor, n_classes: int) -> None:
        if prediction.dim() != 2 or prediction.shape[1] != n_classes:
            raise ValueError(f"the {self.name} task expects outputs (batch, {n_classes}), the model gave "
                             f"{tuple(prediction.shape)}")


def _class_ids(m: mf.Manifest, frame, task: str) -> np.ndarray:
    index = {c: i for i, c in enumerate(m.classes)}
    out = []
    for cid, labs in zip(frame["clip_id"], m.label_lists(frame)):
        if len(labs) != 1:
            raise mf.ManifestError(f"clip {cid!r} has {len(labs)} labels; a {task} task needs exactly one")
        out.append(index[labs[0]])
    return np.array(out, dtype=np.int64)


def _multi_hot(m: mf.Manifest, frame) -> np.ndarray:
    index = {c: i for i, c in enumerate(m.classes)}
    labels = m.label_lists(frame)
    y = np.zeros((len(labels), len(m.classes)), dtype=np.float32)
    for row, labs in enumerate(labels):
        y[row, [index[lab] for lab in labs]] = 1.0
    return y


class Multiclass(Task):
    name, primary, single_label = "multiclass", "accuracy", True
    lower_is_better = ("hamming_loss",)

    def targets(self, m, frame, spec=None):
        return {"y": _class_ids(m, frame, self.name)}

    def loss(self, prediction, batch):
        import torch.nn.functional as F

        return F.cross_entropy(prediction, batch["y"])

    def activate(self, prediction):
        return prediction.softmax(-1)

    def metrics(self, pred, ctx):
        from soundbench.evaluation import metrics

        return metrics.single_label(pred.targets["y"], pred.scores, ctx.classes, ctx.thresholds)


class Multilabel(Task):
    name, primary = "multilabel", "roc_auc_macro"
    lower_is_better = ("hamming_loss",)

    def targets(self, m, frame, spec=None):
        return {"y": _multi_hot(m, frame)}

    def loss(self, prediction, batch):
        import torch.nn.functional as F

        return F.binary_cross_entropy_with_logits(prediction, batch["y"])

    def activate(self, prediction):
        return prediction.sigmoid()

    def metrics(self, pred, ctx):
        from soundbench.evaluation import metrics

        return metrics.multi_label(pred.targets["y"], pred.scores, ctx.classes, ctx.thresholds)


def frame_seconds(spec) -> float:
    """Duration of one feature frame (its hop) of a spectral spec: the time axis of frame targets and events."""
    if spec is None or not spec.is_spectral:
        raise ValueError("the sed task needs a spectral input (frames at a hop); got "
                         f"{getattr(spec, 'kind', None)!r}")
    return spec.hop_length / spec.sample_rate


class Sed(Multilabel):
    name, primary, frame_seconds_needed = "sed", "f1_event_macro", True
    lower_is_better = ("error_rate_event", "error_rate_segment", "hamming_loss")

    def targets(self, m, frame, spec=None):
        from soundbench.evaluation.sed import frame_targets

        n_frames, hop = spec.output_shape()[-1], frame_seconds(spec)
        events = [mf.events_from_json(e) for e in frame["events"]]
        frames = np.zeros((len(frame), n_frames, len(m.classes)), dtype=np.float32)
        for i, ev in enumerate(events):
            if ev:
                frames[i] = frame_targets(ev, m.classes, n_frames, hop)
        strong = np.array([bool(ev) for ev in events])
        return {"y": _multi_hot(m, frame), "frames": frames, "strong": strong}

    def check_output(self, prediction, n_classes):
        if prediction.dim() != 3 or prediction.shape[2] != n_classes:
            raise ValueError(f"the sed task expects frame-level outputs (batch, frames, {n_classes}), the model "
                             f"gave {tuple(prediction.shape)}; for clip-level tagging on this dataset set the "
                             f"experiment's task: multilabel")

    def loss(self, prediction, batch):
        import torch.nn.functional as F

        # max over frames commutes with the sigmoid: BCE of the max frame probability, computed on logits
        return F.binary_cross_entropy_with_logits(prediction.amax(dim=1), batch["y"])

    def clip_scores(self, scores):
        return scores.amax(dim=1)

    def frame_scores(self, scores):
        return scores

    def events(self, pred, ctx):
        from soundbench.evaluation import sed

        if pred.frames is None:
            return None
        decode = ctx.decode or sed.decode
        return {c: decode(f, ctx.thresholds, ctx.frame_seconds, ctx.classes)
                for c, f in zip(pred.clip_ids, pred.frames)}

    def metrics(self, pred, ctx):
        from soundbench.evaluation import sed

        out, per_class = super().metrics(pred, ctx)
        strong = pred.targets["strong"]
        if not strong.any() or pred.frames is None:
            return out, per_class
        ids = [c for c, s in zip(pred.clip_ids, strong) if s]
        strong_pred = Predictions(pred.split, ids, {}, pred.scores[strong], pred.frames[strong])
        estimated = self.events(strong_pred, ctx)
        reference = {c: ctx.events[c] for c in ids}
        ev, ev_class = sed.event_metrics(reference, estimated, ctx.classes)
        out.update(ev, n_strong_clips=len(ids))
        # beyond the paper: PSDS1 on the same (post-processed) frame scores, what today's SED systems report
        out["psds1"] = sed.psds(dict(zip(ids, strong_pred.frames)), reference, ctx.classes, ctx.frame_seconds)
        # the class-wise event F-scores as metrics too (the papers' tables list them; NaN without reference events)
        out.update({f"f1_event/{c}": float(f) for c, f in zip(ev_class["class"], ev_class["f1_event"])})
        per_class = per_class.merge(ev_class.drop(columns=[c for c in ("n_test",) if c in ev_class]), on="class",
                                    how="left")
        return out, per_class


class Embedding(Task):
    name, primary, classes_at_prediction = "embedding", "knn_accuracy", False
    K_CHOICES = (7, 9, 11, 13, 15)  # the ACIVW evaluation's k, chosen on validation

    def targets(self, m, frame, spec=None):
        labels = m.label_lists(frame)
        index = {c: i for i, c in enumerate(m.classes)}
        y = np.array([index[labs[0]] if len(labs) == 1 else -1 for labs in labels], dtype=np.int64)
        groups = {g: i for i, g in enumerate(sorted(set(frame["group"])))}
        return {"y": y, "group": np.array([groups[g] for g in frame["group"]], dtype=np.int64)}

    def check_output(self, prediction, n_classes):
        if prediction.dim() != 2:
            raise ValueError(f"the embedding task expects outputs (batch, dim), the model gave "
                             f"{tuple(prediction.shape)}")

    def prediction_splits(self, eval_split):
        return list(dict.fromkeys(["train", "validation", eval_split]))

    def metrics(self, pred, ctx):
        from soundbench.evaluation import embedding

        train, val = ctx.other.get("train"), ctx.other.get("validation")
        if train is None or not len(train):
            raise ValueError("kNN evaluation needs embeddings of the training split")
        has_val = val is not None and len(val)

        def emb(p: Predictions) -> dict[str, np.ndarray]:  # every embedding of the clips, by model output name
            return {ctx.embedding_name: p.scores, **(p.extra or {})}

        def knn(name):
            return embedding.knn_metrics(emb(train)[name], train.targets["y"], emb(pred)[name], pred.targets["y"],
                                         emb(val)[name] if has_val else None, val.targets["y"] if has_val else None,
                                         ctx.classes, self.K_CHOICES)

        out, per_class = knn(ctx.embedding_name)
        # every other embedding of the model (e.g. the video side): the same kNN protocol, metrics named
        # knn_accuracy/<output>
        for name in pred.extra or {}:
            more, more_class = knn(name)
            out.update({f"{k}/{name}": v for k, v in more.items()})
            per_class[f"accuracy/{name}"] = more_class["accuracy"].to_numpy()
        for query, gallery in ctx.retrieval:
            out.update(embedding.retrieval_metrics(query, emb(pred)[query], gallery, emb(pred)[gallery],
                                                   pred.targets["y"], ctx.distance))
        return out, per_class


TASKS = {t.name: t for t in (Multiclass(), Multilabel(), Sed(), Embedding())}


def get(name: str) -> Task:
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; known: {', '.join(TASKS)}")
    return TASKS[name]


def resolve_name(experiment_task: str | None, system_name: str, dataset_name: str,
                 dataset_task: str | None = None) -> str:
    """The task of an experiment: its own `task:`, else the one its system fixes, else its dataset's
    (`dataset_task`, the configured dataset's: soundbench.datasets.task_of; None: the registry's)."""
    from soundbench import datasets, systems

    name = experiment_task or systems.get(system_name).task or dataset_task or datasets.get(dataset_name).task
    get(name)
    return name
