"""`soundbench describe-model SYSTEM --set key=value`: architecture summary and trainable parameter count."""
from __future__ import annotations

from soundbench import systems

# input shapes and class counts of the datasets a system is described for (`--set dataset=mtt`)
DATASET_SHAPES = {
    "mtt": {"n_classes": 50, "task": "multilabel", "samples": 59049},
    "speech_commands": {"n_classes": 35, "task": "multiclass", "samples": 22050},
    "dcase2017_task4": {"n_classes": 17, "task": "multilabel", "samples": 22050},
}


def describe(system_name: str, sets: dict) -> dict:
    system = systems.get(system_name)
    sets = dict(sets)
    dataset = sets.pop("dataset", "mtt")
    shape = DATASET_SHAPES.get(dataset, {"n_classes": 10, "task": "multiclass", "samples": 22050})
    n_classes = int(sets.pop("n_classes", shape["n_classes"]))
    params = {**system.params, **sets}
    if system_name == "samplecnn":
        params.setdefault("segment_samples", shape["samples"])
        if "segment_samples" not in sets and dataset in DATASET_SHAPES:
            params["segment_samples"] = shape["samples"]
        input_shape = (1, int(params["segment_samples"]))
    else:
        input_shape = tuple(sets.pop("input_shape", (1, 40, 100)))
    if system.kind != "torch":
        return {"system": system_name, "kind": system.kind, "params": params, "n_params": None}
    model = system.build(n_classes, shape["task"], input_shape, **params)
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"system": system_name, "dataset": dataset, "n_classes": n_classes, "input_shape": list(input_shape),
            "params": params, "n_params": int(n)}
