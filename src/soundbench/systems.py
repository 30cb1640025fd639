"""Registry of systems: a system is data (model factory, hooks, defaults, paper numbers), not DAG code.

Adding a system = a model module + one entry here; the training loop, the evaluation and the workflow are
generic. Every hook is optional; without it the task's behaviour applies (soundbench/tasks.py).

  build(n_classes, task, shapes, **params) -> model
        shapes: {input name: one example's shape}; a single `feature:` input is named "x". The model's forward
        takes the inputs as keyword arguments of those names and returns logits (a tensor) or a dict of outputs
        of which `predict_key` is the one predictions and the task's default loss use.
  view(params, spec) -> a features.reader view of the first input (None: one example per clip)
  loss(outputs: dict, batch: dict, ctx: training.loop.LossContext) -> scalar tensor
        replaces the task's default loss; ctx has the global epoch (a loss may change with it), the params and
        the frozen `teacher` model of a `teacher:` experiment
  augment(batch: dict, rng: numpy Generator, params) -> batch: training batches only; draws only from rng,
        which the loop derives from (seed, stage, epoch, step), so a resumed run is the uninterrupted one
  convert(state_dict, source_record, model) -> state_dict: maps an `init_from:` experiment's weights onto this
        model (e.g. 2-D kernels inflated to 3-D); default: the source weights as they are; tensors whose name and
        shape match are loaded, the rest of the model stays as initialised (train.json counts both)
  postprocess(predictions: {split: tasks.Predictions}, upstream: {split: tasks.Predictions} | None, params)
        -> predictions: after inference, before metrics; `upstream` holds a `predictions_from:` experiment's
  paper_normalization(dataset) -> {mean, std}: the original's constants (train.normalize: paper)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class System:
    name: str
    title: str
    kind: str  # "torch" (trained by training.loop) or "sklearn" (fit once on pooled features)
    build: Callable
    view: Callable = lambda params, spec: None
    params: dict = field(default_factory=dict)  # model defaults (the paper's, for published systems)
    train: dict = field(default_factory=dict)  # training defaults
    paper: dict = field(default_factory=dict)  # the paper's numbers: {(dataset, metric): value}
    task: str | None = None  # a task the system fixes (e.g. embedding); None: the dataset's
    predict_key: str = "logits"
    loss: Callable | None = None
    augment: Callable | None = None
    convert: Callable | None = None
    postprocess: Callable | None = None
    paper_normalization: Callable | None = None


def _baseline(n_classes, task, shapes, **params):
    from soundbench.models import baseline

    return baseline.build(task, **params)


def _smallcnn(n_classes, task, shapes, **params):
    from soundbench.models.smallcnn import SmallCNN

    return SmallCNN(n_classes, in_channels=shapes["x"][0], **params)


def _samplecnn(n_classes, task, shapes, **params):
    from soundbench.models.samplecnn import SampleCNN

    params = {k: v for k, v in params.items() if k != "segment_samples"}
    return SampleCNN(n_classes, segment_samples=shapes["x"][-1], **params)


def _samplecnn_view(params, spec):
    from soundbench.features.reader import Segments

    return Segments(int(params.get("segment_samples", 59049)))


def _samplecnn_normalization(dataset):
    from soundbench.models.samplecnn import STANDARDISATION

    if dataset not in STANDARDISATION:
        raise ValueError(f"train.normalize: paper: SampleCNN published no constants for {dataset!r} "
                         f"(only {', '.join(STANDARDISATION)}); use global")
    mean, std = STANDARDISATION[dataset]
    return {"mean": mean, "std": std}


SYSTEMS = {
    s.name: s
    for s in (
        System("baseline", "Logistic regression on log-mel mean/std", "sklearn", _baseline,
               params={"C": 1.0, "max_iter": 2000}),
        System("smallcnn", "Small log-mel CNN", "torch", _smallcnn,
               params={"widths": [16, 32, 64], "dropout": 0.2},
               train={"optimizer": "adam", "lr": 1e-3, "batch_size": 16, "stages": [{"epochs": 15}]}),
        System("samplecnn", "SampleCNN (Kim, Lee, Nam; JSTSP 2019)", "torch", _samplecnn, view=_samplecnn_view,
               params={"block": "se", "multi": True, "amplifying_ratio": 0.125, "dropout": 0.5,
                       "segment_samples": 59049, "init": "original"},
               # the original schedule: SGD Nesterov, 5 stages of lr 0.01*0.2^s, early stopping (patience 2)
               train={"optimizer": "sgd", "momentum": 0.9, "nesterov": True, "batch_size": 23, "decay": 1e-6,
                      "reload_best": True,
                      "stages": [{"lr": 0.01 * 0.2 ** s, "epochs": 100, "patience": 2} for s in range(5)]},
               paper={("mtt", "roc_auc_macro"): 0.9111},
               paper_normalization=_samplecnn_normalization),
    )
}


def get(name: str) -> System:
    if name not in SYSTEMS:
        raise KeyError(f"unknown system {name!r}; known: {', '.join(SYSTEMS)}")
    return SYSTEMS[name]
