"""Issue 15, break 7: a crafted last.pt or model.pt cannot run code on load (torch.load(weights_only=True)), and
what soundbench itself stores loads that way: checkpoints, model records, the sklearn baseline (arrays, no pickle)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from soundbench import runner, tasks
from soundbench.models import baseline
from soundbench.training import checkpoint


class _Payload:
    """Unpickling this runs a shell command that creates a file (what a crafted checkpoint would do)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _crafted(path: Path, marker: Path, **extra) -> Path:
    torch.save({"config_hash": "h", "system": "smallcnn", "payload": _Payload(marker), **extra}, path)
    return path


def test_a_crafted_checkpoint_is_refused_without_running_code(tmp_path):
    marker = tmp_path / "pwned"
    path = _crafted(tmp_path / "last.pt", marker)
    with pytest.raises(ValueError, match=f"{path}: refusing to load it"):
        checkpoint.load(path, "h")
    assert not marker.exists()


def test_a_crafted_model_is_refused_by_evaluate_without_running_code(tmp_path):
    marker = tmp_path / "pwned"
    path = _crafted(tmp_path / "model.pt", marker)
    with pytest.raises(ValueError, match="refusing to load it"):
        runner.evaluate(tmp_path / "manifest.csv", {"x": {"spec": {}, "shards": []}}, path, tmp_path / "out")
    assert not marker.exists()


def _fit(y: np.ndarray, task_name: str, n_features: int = 6):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((len(y), n_features)) * [1, 2, 3, 4, 5, 0] + [0, 1, 0, 1, 0, 7]  # last: constant
    model = baseline.build(tasks.get(task_name), C=0.5, max_iter=500).fit(x, y)
    return model, x + rng.standard_normal(x.shape) * 0.1


@pytest.mark.filterwarnings("ignore:Label not 1 is present")
@pytest.mark.parametrize("case", ["multiclass", "binary", "multilabel", "multilabel_constant"])
def test_the_baseline_as_arrays_predicts_what_scikit_learn_does(tmp_path, case):
    rng = np.random.default_rng(0)
    if case == "multiclass":
        y, task_name, n = rng.integers(0, 4, 40), "multiclass", 4
    elif case == "binary":
        y, task_name, n = rng.integers(0, 2, 40), "multiclass", 2
    else:
        y, task_name, n = (rng.random((40, 3)) < 0.4).astype(int), "multilabel", 3
        if case == "multilabel_constant":
            y[:, 1] = 0  # a label never present in training: one-vs-rest keeps a constant for it
    model, x = _fit(y, task_name)
    task = tasks.get(task_name)
    torch.save({"sklearn": baseline.LinearArrays.of(model).state()}, tmp_path / "model.pt")
    record = torch.load(tmp_path / "model.pt", weights_only=True)  # no pickle of a scikit-learn object
    ours = baseline.predict_proba(baseline.LinearArrays(record["sklearn"]), x, task, n)
    theirs = baseline.predict_proba(model, x, task, n)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)


def test_no_module_loads_with_weights_only_false():
    src = Path(__file__).resolve().parents[1] / "src"
    offenders = [str(p) for p in src.rglob("*.py") if "weights_only=False" in p.read_text()]
    assert offenders == []
