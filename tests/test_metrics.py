"""Metrics follow scikit-learn and the original evaluations' conventions."""
from __future__ import annotations

import numpy as np
import pytest

from soundbench.evaluation import metrics


def test_single_label():
    y = np.array([0, 1, 2, 2])
    p = np.array([[.8, .1, .1], [.2, .7, .1], [.1, .3, .6], [.5, .1, .4]])
    m, per = metrics.evaluate("multiclass", y, p, ["a", "b", "c"])
    assert m["accuracy"] == 0.75
    # thresholded exact match (SampleCNN's Speech Commands accuracy): the 0.5 row counts, the 0.4 one does not
    assert m["subset_accuracy"] == 0.75
    assert list(per["accuracy"]) == [1.0, 1.0, 0.5]


def test_multi_label_leaves_out_unscorable_classes():
    y = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
    p = np.array([[.9, .2, .1], [.1, .8, .3], [.7, .6, .2], [.2, .1, .4]])
    m, per = metrics.evaluate("multilabel", y, p, ["a", "b", "c"], threshold=0.5)
    assert m["n_classes_scored"] == 2  # class c has no positive
    assert m["roc_auc_macro"] == 1.0 and np.isnan(per["roc_auc"][2])
    assert m["subset_accuracy"] == 1.0


def test_nan_predictions_are_refused():
    with pytest.raises(ValueError, match="NaN"):
        metrics.evaluate("multiclass", np.array([0, 1]), np.array([[np.nan, 1], [0, 1]]), ["a", "b"])
