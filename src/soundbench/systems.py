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
    # embedding task: other model outputs evaluated as embeddings too (knn_accuracy/<name>), and (query, gallery)
    # output pairs scored by cross-modal retrieval with retrieval_distance(query, Q, gallery, G, params) -> (nq, ng)
    # (None: squared Euclidean distance of the L2-normalised embeddings); evaluation/embedding.py
    embeddings: tuple = ()
    retrieval: tuple = ()
    retrieval_distance: Callable | None = None


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


def _senot(n_classes, task, shapes, **params):
    from soundbench.models import senot

    return senot.build(n_classes, shapes, dims=3, **params)


def _senot2d(n_classes, task, shapes, **params):
    from soundbench.models import senot

    return senot.build(n_classes, shapes, dims=2, **params)


def _senot_view(params, spec):
    from soundbench.models import senot

    return senot.view(params, spec, stacked=True)


def _senot2d_view(params, spec):
    from soundbench.models import senot

    return senot.view(params, spec, stacked=False)


def _senot_swap(batch, rng, params):
    from soundbench.models import senot

    return senot.channel_swap(batch, rng, params)


def _senot_inflate(state, source, model):
    from soundbench.models import senot

    return senot.inflate(state, source, model)


def _senot_normalization(dataset):
    from soundbench.models import senot

    return senot.paper_normalization(dataset)


def _senot_shapes(params):
    from soundbench.models import senot

    return senot.input_shapes(params, stacked=True)


def _senot2d_shapes(params):
    from soundbench.models import senot

    return senot.input_shapes(params, stacked=False)


# SeNoT-Net (zlw9161/SeNoT-Net train.py, command_train_dcase2019.sh): SGD Nesterov 0.9, lr 0.002 x 0.1 every 40
# epochs (floor 1e-5; max_epoch 251), batch 16 with drop_last, no weight decay, BatchNorm decay
# min(0.99, 1 - 0.5 * 0.5^floor(step / 40 epochs)), the dcase_mean.py constants, the epoch chosen on fold-1
# evaluate (the test split here: the original's test-set selection; select_on: validation, train_on: [train] is
# the honest protocol)
_SENOT_TRAIN = {"optimizer": "sgd", "momentum": 0.9, "nesterov": True, "lr": 0.002, "batch_size": 16,
                "drop_last": True, "normalize": "paper", "select_on": "test", "train_on": ["train", "validation"],
                "select_metric": "accuracy",
                "bn_momentum": {"start": 0.5, "factor": 0.5, "every_epochs": 40, "max_decay": 0.99},
                "stages": [{"lr": 0.002, "epochs": 40}, {"lr": 0.0002, "epochs": 40, "reset_optimizer": False},
                           {"lr": 0.00002, "epochs": 40, "reset_optimizer": False},
                           {"lr": 0.00001, "epochs": 131, "reset_optimizer": False}]}
_SENOT_SEGMENTS = {"segments": 8, "segment_frames": 80, "segment_hop": None, "channel_swap": True}
_SENOT_TRUNK = {"trunk": "resnet18", "widths": [64, 128, 256, 512], "dropout": 0.5}


def _acivw_hook(name, kind):
    def hook(*args, **kwargs):
        from soundbench.models import acoustic_ssl

        fn = getattr(acoustic_ssl, name)
        return fn(kind, *args, **kwargs) if kind is not None else fn(*args, **kwargs)
    return hook


def _acivw_build(kind):
    def build(n_classes, task, shapes, **params):
        from soundbench.models import acoustic_ssl

        return acoustic_ssl.build(kind, n_classes, shapes, **params)
    return build


# Acoustic images SSL (Sanguineti et al., ECCV 2020; soundbench/models/acoustic_ssl.py): supervised baselines per
# modality (cross-entropy, Adam 1e-3, batch 32, 100 epochs), the self-supervised audio-video and acoustic-image-
# video matching (triplet margin 0.2, batch all then batch hard from epoch 4, Adam 1e-5, batch 64, 20 epochs, the
# last epoch kept) and the distillation into HearNet from the frozen acoustic-image teacher (`teacher:`)
_ACIVW_SUP_TRAIN = {"optimizer": "adam", "lr": 1e-3, "batch_size": 32, "stages": [{"epochs": 100}],
                    "select_metric": "accuracy"}
_ACIVW_SSL_TRAIN = {"optimizer": "adam", "lr": 1e-5, "batch_size": 64, "stages": [{"epochs": 20}],
                    "select_on": "last"}
_HEARNET_WIDTHS = [128, 256, 256, 1024, 1024, 1000]
_ACIVW_SSL = {"margin": 0.2, "hard_from": 4, "l2": 5e-4, "widths": [64, 128, 256], "video_map_size": None,
              "dualcam_width": 32, "hearnet_widths": _HEARNET_WIDTHS}
_AV_RETRIEVAL = (("audio", "video"), ("video", "audio"))


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
                       "segment_samples": 59049, "segment_within": "clip", "init": "original", "init_features": 128,
                       "res_dropout": 0.2},
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
                       "init": "keras", "bce": "keras", "pools": [[4, 2], [4, 1], [4, 1]]},
               train=_SED_AT_TRAIN, loss=_sed_at_loss, input_shapes=_sed_shapes,
               threshold={"method": "perturbation"}),
        System("sed_crnn", "IJCNN 2019 MIL CRNN with the cosine penalty (pass 2)", "torch", _sed_crnn,
               params={"glu": True, "channels": 64, "gru_units": 64, "dense_units": 64, "dropout": 0.1,
                       "gru_dropout": 0.1, "recurrent_dropout": 0.1, "gru": "keras", "init": "keras",
                       "alpha": 0.1, "bce": "keras", "tags": "at", "edge": 3, "window": 19, "weight": 2.0,
                       "counting": "original", "frame": "clip", "blocks": 3, "pool": 4},
               train=_SED_CRNN_TRAIN, loss=_sed_crnn_loss, postprocess=_sed_postprocess, decode=_sed_decode,
               frame_seconds=_sed_frame_seconds, input_shapes=_sed_shapes, threshold=0.03),
        # SeNoT-Net (soundbench/models/senot.py): 8 segments of 80 frames stacked per clip, the inflated 3-D
        # ResNet-18 or PreAct-18 with SeNoT modules (k = 4) after both blocks of groups 1 and 2
        System("senot", "SeNoT-Net (Zhang, Han, Shi; IEEE SPL 2020)", "torch", _senot,
               view=_senot_view,
               params={**_SENOT_TRUNK, "modules": True, "module_groups": [1, 2], "k": 4, "shrink": [2, None],
                       **_SENOT_SEGMENTS},
               train=_SENOT_TRAIN, augment=_senot_swap, convert=_senot_inflate,
               paper_normalization=_senot_normalization,
               input_shapes=_senot_shapes),
        # its 2-D pre-training network on single segments (the original's tensorpack pre-training recipe is not
        # published: the SeNoT-Net schedule); a senot experiment names it with init_from
        System("senot2d", "SeNoT-Net's 2-D ResNet-18 / PreAct-18 pre-training", "torch", _senot2d,
               view=_senot2d_view,
               params={**_SENOT_TRUNK, **_SENOT_SEGMENTS}, train=_SENOT_TRAIN, augment=_senot_swap,
               paper_normalization=_senot_normalization,
               input_shapes=_senot2d_shapes),
        System("hearnet", "HearNet supervised (Sanguineti et al., ECCV 2020)", "torch", _acivw_build("hearnet"),
               params={"l2": 5e-4, "hearnet_widths": _HEARNET_WIDTHS},
               train={**_ACIVW_SUP_TRAIN, "normalize": "per_band"},
               loss=_acivw_hook("supervised_loss", None), input_shapes=_acivw_hook("input_shapes", "hearnet")),
        System("dualcamnet", "DualCamNet supervised on acoustic images (ECCV 2020)", "torch",
               _acivw_build("dualcamnet"), params={"l2": 0.0, "dualcam_width": 32}, train=_ACIVW_SUP_TRAIN,
               loss=_acivw_hook("supervised_loss", None), input_shapes=_acivw_hook("input_shapes", "dualcamnet")),
        System("resnet18_video", "ResNet18_v1 video trunk supervised (ECCV 2020)", "torch",
               _acivw_build("resnet18_video"), params={"l2": 5e-4, "widths": [64, 128, 256]},
               train=_ACIVW_SUP_TRAIN, loss=_acivw_hook("supervised_loss", None),
               input_shapes=_acivw_hook("input_shapes", "resnet18_video")),
        System("ssl_audio_video", "HearNet-video matching, self-supervised (ECCV 2020)", "torch",
               _acivw_build("ssl_audio_video"), task="embedding", predict_key="audio", params=dict(_ACIVW_SSL),
               train={**_ACIVW_SSL_TRAIN, "normalize": {"audio": "per_band"}}, loss=_acivw_hook("ssl_loss", None),
               input_shapes=_acivw_hook("input_shapes", "ssl_audio_video"), embeddings=("video",),
               retrieval=_AV_RETRIEVAL, retrieval_distance=_acivw_hook("retrieval_distance", None)),
        System("ssl_aimage_video", "DualCamNet-video matching, self-supervised (ECCV 2020)", "torch",
               _acivw_build("ssl_aimage_video"), task="embedding", predict_key="aimage", params=dict(_ACIVW_SSL),
               train=_ACIVW_SSL_TRAIN, loss=_acivw_hook("ssl_loss", None),
               input_shapes=_acivw_hook("input_shapes", "ssl_aimage_video"), embeddings=("video",)),
        System("distill_audio", "HearNet distilled from acoustic images (ECCV 2020)", "torch",
               _acivw_build("distill_audio"), task="embedding", predict_key="audio",
               params={**_ACIVW_SSL, "alpha": 0.5},
               train={**_ACIVW_SSL_TRAIN, "normalize": {"audio": "per_band"}}, loss=_acivw_hook("distill_loss", None),
               input_shapes=_acivw_hook("input_shapes", "distill_audio"), embeddings=("video",),
               retrieval=_AV_RETRIEVAL, retrieval_distance=_acivw_hook("retrieval_distance", None)),
    )
}


def get(name: str) -> System:
    if name not in SYSTEMS:
        raise KeyError(f"unknown system {name!r}; known: {', '.join(SYSTEMS)}")
    return SYSTEMS[name]
