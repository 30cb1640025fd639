"""`soundbench describe-model SYSTEM --set key=value`: trainable parameter count and the shape of every output.

Input shapes: `--set input_shape=[C, ...]` (the single input "x"), `--set input_shapes={audio: [...], ...}` for
several named inputs, `--set dataset=NAME` for SampleCNN's datasets (its segment length), else the system's
`input_shapes(params)` (SubSpectralNet: (2, n_mels, 500)). `--set n_classes=N`
and `--set task=NAME` set the head; the other keys are model params over the system's defaults.
"""
from __future__ import annotations

from soundbench import systems, tasks

DEFAULT_SHAPE = (1, 40, 100)


def _samplecnn_preset(dataset: str, sets: dict) -> tuple[int, int]:
    """SampleCNN's (n_classes, segment samples) of a dataset of the paper, unless set explicitly."""
    from soundbench.models.samplecnn import DATASET_DEFAULTS

    if dataset not in DATASET_DEFAULTS:
        raise ValueError(f"--set dataset: SampleCNN's datasets are {', '.join(DATASET_DEFAULTS)}")
    d = DATASET_DEFAULTS[dataset]
    return d["n_classes"], int(sets.get("segment_samples", d["segment_samples"]))


def describe(system_name: str, sets: dict) -> dict:
    import torch

    system = systems.get(system_name)
    sets = dict(sets)
    dataset = sets.pop("dataset", None)
    n_classes = sets.pop("n_classes", None)
    task = tasks.get(sets.pop("task", system.task or "multiclass"))
    if "input_shapes" in sets:
        shapes = {k: tuple(v) for k, v in sets.pop("input_shapes").items()}
    elif "input_shape" in sets:
        shapes = {"x": tuple(sets.pop("input_shape"))}
    elif system_name == "samplecnn":  # the paper's datasets fix its segment length and classes
        default_classes, samples = _samplecnn_preset(dataset or "mtt", sets)
        n_classes, shapes = n_classes or default_classes, {"x": (1, samples)}
        sets["segment_samples"] = samples
    elif system.input_shapes is not None:  # the system's paper input for these params
        shapes = {k: tuple(v) for k, v in system.input_shapes({**system.params, **sets}).items()}
    else:
        shapes = {"x": DEFAULT_SHAPE}
    params = {**system.params, **sets}
    n_classes = int(n_classes or 10)
    out = {"system": system_name, "kind": system.kind, "task": task.name, "n_classes": n_classes,
           "input_shapes": {k: list(v) for k, v in shapes.items()}, "params": params}
    if dataset:
        out["dataset"] = dataset
    if system.kind != "torch":
        return {**out, "n_params": None, "outputs": None}
    model = system.build(n_classes, task, shapes, **params).eval()
    with torch.no_grad():  # a batch of two: batch norm and pooling see a real batch
        y = model(**{k: torch.zeros(2, *v) for k, v in shapes.items()})
    y = y if isinstance(y, dict) else {system.predict_key: y}
    out["outputs"] = {k: list(v.shape[1:]) for k, v in y.items()}
    out["n_params"] = int(sum(p.numel() for p in model.parameters() if p.requires_grad))
    note = getattr(model, "describe_note", None)  # a model may explain its count against the original's
    if note:
        out["note"] = note
    return out
