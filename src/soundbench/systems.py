"""Registry of systems: a system is data (model factory, example view, defaults, paper numbers), not DAG code.

Adding a system = a model module + one entry here. The training loop, the evaluation and the workflow are generic.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class System:
    name: str
    title: str
    kind: str  # "torch" (trained by training.loop) or "sklearn" (fit once on pooled features)
    # build(n_classes, task, input_shape, **params) -> model; input_shape is one example's (channels, ...) shape
    build: Callable
    # view(params, spec) -> a features.reader view (None: one example per clip)
    view: Callable = lambda params, spec: None
    params: dict = field(default_factory=dict)  # model defaults (the paper's, for published systems)
    train: dict = field(default_factory=dict)  # training defaults
    # the paper's numbers: {(dataset, metric): value}
    paper: dict = field(default_factory=dict)


def _baseline(n_classes, task, input_shape, **params):
    from soundbench.models import baseline

    return baseline.build(task, **params)


def _smallcnn(n_classes, task, input_shape, **params):
    from soundbench.models.smallcnn import SmallCNN

    return SmallCNN(n_classes, in_channels=input_shape[0], **params)


def _samplecnn(n_classes, task, input_shape, **params):
    from soundbench.models.samplecnn import SampleCNN

    params = {k: v for k, v in params.items() if k != "segment_samples"}
    return SampleCNN(n_classes, segment_samples=input_shape[-1], **params)


def _samplecnn_view(params, spec):
    from soundbench.features.reader import Segments

    return Segments(int(params.get("segment_samples", 59049)))


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
               paper={("mtt", "roc_auc_macro"): 0.9111}),
    )
}


def get(name: str) -> System:
    if name not in SYSTEMS:
        raise KeyError(f"unknown system {name!r}; known: {', '.join(SYSTEMS)}")
    return SYSTEMS[name]
