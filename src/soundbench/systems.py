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
  input_shapes(params) -> {input name: one example's shape}: the input of the paper configuration these params
        describe (describe-model's default, e.g. SubSpectralNet's (2, n_mels, 500))
  The loss's ctx.model is the model being trained (weight penalties such as Keras regularisers).
  decode(frames, thresholds, frame_seconds, classes, params) -> [(onset, offset, label)]: one clip's frame scores
        (frames, classes) -> its events (sed); default: runs at or above the thresholds (evaluation.sed.decode)
  frame_seconds(spec, params) -> float: the duration of one output frame for decoding (sed); default: the input's
        hop (tasks.frame_seconds)
  threshold: the decision threshold configuration when the experiment sets none (evaluation/thresholds.py)
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
    input_shapes: Callable | None = None
    decode: Callable | None = None
    frame_seconds: Callable | None = None
    threshold: float | list | dict = 0.5


def _baseline(n_classes, task, shapes, **params):
    from soundbench.models import baseline

    return baseline.build(task, **params)


def _smallcnn(n_classes, task, shapes, **params):
    from soundbench.models.smallcnn import SmallCNN

    return SmallCNN(n_classes, in_channels=shapes["x"][0], **params)


def _samplecnn(n_classes, task, shapes, **params):
    from soundbench.models.samplecnn import SampleCNN

    params = {k: v for k, v in params.items() if k not in ("segment_samples", "segment_within")}
    return SampleCNN(n_classes, segment_samples=shapes["x"][-1], **params)


def _samplecnn_view(params, spec):
    from soundbench.features.reader import Segments

    # "clip": as many segments as fit the clip length, short clips' padding included (the original cuts them
    # from the padded clip); "valid": only within the real audio
    return Segments(int(params.get("segment_samples", 59049)), within=params.get("segment_within", "clip"))


def _samplecnn_normalization(dataset):
    from soundbench.models.samplecnn import STANDARDISATION

    if dataset not in STANDARDISATION:
        raise ValueError(f"train.normalize: paper: SampleCNN published no constants for {dataset!r} "
                         f"(only {', '.join(STANDARDISATION)}); use global")
    mean, std = STANDARDISATION[dataset]
    return {"mean": mean, "std": std}


def _subspectralnet(n_classes, task, shapes, **params):
    from soundbench.models import subspectralnet

    return subspectralnet.build(n_classes, shapes, **params)


def _subspectralnet_loss(outputs, batch, ctx):
    from soundbench.models import subspectralnet

    return subspectralnet.loss(outputs, batch, ctx)


def _subspectralnet_shapes(params):
    return {"x": (2, int(params.get("n_mels") or 40), 500)}  # L and R, M mel bins, the first 500 frames


def _sed_at(n_classes, task, shapes, **params):
    from soundbench.models.sed_crnn import ATCNN

    params = {k: v for k, v in params.items() if k != "bce"}
    return ATCNN(n_classes, **params)


def _sed_at_loss(outputs, batch, ctx):
    from soundbench.models.sed_crnn import at_loss

    return at_loss(outputs[ctx.predict_key], batch["y"], ctx.params.get("bce", "keras"))


_SED_LOSS_KEYS = ("alpha", "bce")


def _sed_crnn(n_classes, task, shapes, **params):
    from soundbench import sed_postprocess
    from soundbench.models.sed_crnn import CRNN

    params = {k: v for k, v in params.items() if k not in _SED_LOSS_KEYS and k not in sed_postprocess.OPTIONS}
    return CRNN(n_classes, n_mels=shapes["x"][1], **params)


def _sed_crnn_loss(outputs, batch, ctx):
    from soundbench.models.sed_crnn import mil_loss

    return mil_loss(outputs[ctx.predict_key], batch["y"], float(ctx.params.get("alpha", 0.1)),
                    ctx.params.get("bce", "keras"))


def _sed_postprocess(predictions, upstream, params):
    from soundbench import sed_postprocess

    return sed_postprocess.postprocess(predictions, upstream, params)


def _sed_decode(frames, thresholds, frame_seconds, classes, params):
    from soundbench import sed_postprocess

    return sed_postprocess.decode(frames, thresholds, frame_seconds, classes, params)


def _sed_frame_seconds(spec, params):
    from soundbench import sed_postprocess

    return sed_postprocess.frame_seconds(spec, params)


def _sed_shapes(params):
    return {"x": (1, 64, 431)}  # 64 log-mel bands x 431 frames of a 10-s clip


# the IJCNN 2019 notebook's Keras optimisers: epsilon = keras.backend.epsilon() = 1e-7; the models are kept after
# the last epoch (no selection)
_SED_AT_TRAIN = {"optimizer": "adam", "eps": 1e-7, "batch_size": 32, "select_on": "last",
                 "stages": [{"lr": 1e-3, "epochs": 30}, {"lr": 5e-4, "epochs": 30, "reset_optimizer": False},
                            {"lr": 1e-4, "epochs": 40, "reset_optimizer": False}]}
_SED_CRNN_TRAIN = {"optimizer": "rmsprop", "rho": 0.9, "eps": 1e-7, "batch_size": 32, "select_on": "last",
                   "stages": [{"lr": 1e-3, "epochs": 6}, {"lr": 1e-4, "epochs": 4, "reset_optimizer": False}]}

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
                       "segment_samples": 59049, "segment_within": "clip", "init": "original"},
               # the original schedule: SGD Nesterov, 5 stages of lr 0.01*0.2^s, early stopping (patience 2),
               # a new checkpoint callback per stage (the best restarts every stage), a 10,000-segment shuffle buffer
               train={"optimizer": "sgd", "momentum": 0.9, "nesterov": True, "batch_size": 23, "decay": 1e-6,
                      "reload_best": True, "select_scope": "stage", "shuffle": "buffer", "shuffle_buffer": 10000,
                      "amp": False,  # float32 on GPUs too, as the original trained (amp: auto is the faster option)
                      "stages": [{"lr": 0.01 * 0.2 ** s, "epochs": 100, "patience": 2} for s in range(5)]},
               paper_normalization=_samplecnn_normalization),
        # SubSpectralNet (ssrp/SubSpectralNet): 40 mels, sub-spectrograms of 20 bins at a 10-bin hop, n + 1
        # classifiers and losses; Adam 1e-3 (Keras epsilon 1e-7), batch 16, 200 epochs, per-band z-normalisation
        # on the training clips, the best epoch of the global classifier's accuracy chosen on the test set (the
        # original's protocol: the whole training fold trained on, even where the manifest carved a validation
        # split; the honest protocol sets select_on: validation, train_on: [train])
        System("subspectralnet", "SubSpectralNet (Phaye, Benetos, Wang; ICASSP 2019)", "torch", _subspectralnet,
               params={"n_mels": None, "sub_size": 20, "sub_hop": 10, "sub_classifiers": True,
                       "global_classifier": True, "bn": "frequency", "bn_decay": 0.99, "bn_eps": 1e-3,
                       "bn_l2": 1e-4, "channels": [32, 64], "kernel": 7, "pool_time": [5, 100], "pool_freq2": 4,
                       "band_features": 32, "dropout": 0.3},
               train={"optimizer": "adam", "lr": 1e-3, "eps": 1e-7, "batch_size": 16, "stages": [{"epochs": 200}],
                      "normalize": "per_band", "select_on": "test", "train_on": ["train", "validation"],
                      "select_metric": "accuracy"},
               loss=_subspectralnet_loss, input_shapes=_subspectralnet_shapes),
        # Pellegrini & Cances, IJCNN 2019 (soundbench/models/sed_crnn.py, soundbench/sed_postprocess.py): pass 1
        # tags the clips (thresholds tuned on validation by the original's random perturbation search), pass 2
        # detects events (GLU CRNN, MIL loss + cosine penalty alpha 0.1) in the curves of the classes pass 1 tagged
        # (predictions_from), rescaled, smoothed and cut at 0.03
        System("sed_at", "IJCNN 2019 tagging CNN (pass 1)", "torch", _sed_at, task="multilabel",
               params={"widths": [64, 128, 256], "dense": 1024, "spatial_dropout": 0.2, "dropout": 0.5,
                       "init": "keras", "bce": "keras"},
               train=_SED_AT_TRAIN, loss=_sed_at_loss, input_shapes=_sed_shapes,
               threshold={"method": "perturbation"}),
        System("sed_crnn", "IJCNN 2019 MIL CRNN with the cosine penalty (pass 2)", "torch", _sed_crnn,
               params={"glu": True, "channels": 64, "gru_units": 64, "dense_units": 64, "dropout": 0.1,
                       "gru_dropout": 0.1, "recurrent_dropout": 0.1, "gru": "keras", "init": "keras",
                       "alpha": 0.1, "bce": "keras", "tags": "at", "edge": 3, "window": 19, "weight": 2.0,
                       "counting": "original", "frame": "clip"},
               train=_SED_CRNN_TRAIN, loss=_sed_crnn_loss, postprocess=_sed_postprocess, decode=_sed_decode,
               frame_seconds=_sed_frame_seconds, input_shapes=_sed_shapes, threshold=0.03),
    )
}


def get(name: str) -> System:
    if name not in SYSTEMS:
        raise KeyError(f"unknown system {name!r}; known: {', '.join(SYSTEMS)}")
    return SYSTEMS[name]
