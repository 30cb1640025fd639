"""Metrics follow scikit-learn and the original evaluations' conventions."""
from __future__ import annotations

import numpy as np
import pytest

from soundbench import tasks


def score(task, y, p, classes, threshold=0.5):
    """A task's metrics on hand-made targets and scores (what `evaluate` computes on a split)."""
    pred = tasks.Predictions("test", [str(i) for i in range(len(y))], {"y": y}, p)
    return tasks.get(task).metrics(pred, tasks.EvalContext(classes, np.full(len(classes), threshold)))


def test_single_label():
    y = np.array([0, 1, 2, 2])
    p = np.array([[.8, .1, .1], [.2, .7, .1], [.1, .3, .6], [.5, .1, .4]])
    m, per = score("multiclass", y, p, ["a", "b", "c"])
    assert m["accuracy"] == 0.75
    # thresholded exact match (SampleCNN's Speech Commands accuracy): the 0.5 row counts, the 0.4 one does not
    assert m["subset_accuracy"] == 0.75
    assert list(per["accuracy"]) == [1.0, 1.0, 0.5]


def test_multi_label_leaves_out_unscorable_classes():
    y = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
    p = np.array([[.9, .2, .1], [.1, .8, .3], [.7, .6, .2], [.2, .1, .4]])
    m, per = score("multilabel", y, p, ["a", "b", "c"], threshold=0.5)
    assert m["n_classes_scored"] == 2  # class c has no positive
    assert m["roc_auc_macro"] == 1.0 and np.isnan(per["roc_auc"][2])
    assert m["subset_accuracy"] == 1.0


def test_nan_predictions_are_refused():
    with pytest.raises(ValueError, match="NaN"):
        score("multiclass", np.array([0, 1]), np.array([[np.nan, 1], [0, 1]]), ["a", "b"])


def test_per_class_thresholds():
    y = np.array([[1, 0], [0, 1], [1, 1]])
    p = np.array([[.3, .1], [.2, .8], [.35, .7]])
    m, per = score("multilabel", y, p, ["a", "b"], threshold=0.5)
    assert m["subset_accuracy"] == pytest.approx(1 / 3)  # class a's scores all sit below 0.5
    pred = tasks.Predictions("test", ["0", "1", "2"], {"y": y}, p)
    m, per = tasks.get("multilabel").metrics(pred, tasks.EvalContext(["a", "b"], np.array([0.25, 0.5])))
    assert m["subset_accuracy"] == 1.0 and list(per["f1"]) == [1.0, 1.0]
