"""Clip-level metrics with scikit-learn, as the original evaluations compute them.

Single-label tasks: argmax accuracy, top-5 accuracy, macro F1, and the multi-label metrics below on one-hot targets.
Multi-label tasks (SampleCNN's eval.py): macro ROC-AUC, macro PR-AUC (average precision), and at a threshold
the subset accuracy (exact match) and the sample-averaged F1; micro and macro F1 and the Hamming loss as well (the
IJCNN 2019 tagging pass reports subset accuracy, Hamming loss, micro and macro F1).
Classes without a positive (or without a negative) in the test set have no ROC-AUC: they are left out of the
macro averages and counted in `n_classes_scored`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn import metrics as skm


def _scorable(y: np.ndarray) -> np.ndarray:
    pos = y.sum(axis=0)
    return (pos > 0) & (pos < len(y))


def single_label(y: np.ndarray, p: np.ndarray, classes: list[str], threshold=0.5):
    """Argmax accuracy and macro F1, plus the multi-label metrics on the one-hot targets: what SampleCNN's
    eval.py reports for Speech Commands (its "accuracy" is the thresholded exact match, `subset_accuracy`)."""
    pred = p.argmax(axis=1)
    onehot = np.eye(len(classes))[y]
    out, per_class = multi_label(onehot, p, classes, threshold)
    out = {**out, "accuracy": skm.accuracy_score(y, pred),
           # the true class among the 5 highest scores (SeNoT-Net logs it); every class when there are fewer
           "top5_accuracy": skm.top_k_accuracy_score(y, p, k=min(5, len(classes)), labels=np.arange(len(classes)))
           if len(classes) > 2 else 1.0,
           "f1_macro": skm.f1_score(y, pred, average="macro", zero_division=0)}  # argmax, over classes present
    per_class["accuracy"] = [float((pred[y == k] == k).mean()) if (y == k).any() else np.nan
                             for k in range(len(classes))]
    return out, per_class


def multi_label(y: np.ndarray, p: np.ndarray, classes: list[str], threshold=0.5):
    """threshold: one number, or one per class (n_classes,)."""
    if not np.isfinite(p).all():
        raise ValueError("predictions contain NaN or inf")
    ok = _scorable(y)
    b = (p >= threshold).astype(int)
    out = {
        "roc_auc_macro": skm.roc_auc_score(y[:, ok], p[:, ok], average="macro") if ok.any() else np.nan,
        "pr_auc_macro": skm.average_precision_score(y[:, ok], p[:, ok], average="macro") if ok.any() else np.nan,
        "subset_accuracy": skm.accuracy_score(y, b),
        "f1_samples": skm.f1_score(y, b, average="samples", zero_division=0),
        "f1_micro": skm.f1_score(y, b, average="micro", zero_division=0),
        "f1_macro": skm.f1_score(y, b, average="macro", zero_division=0),
        "hamming_loss": skm.hamming_loss(y, b),
        "n_classes_scored": int(ok.sum()),
    }
    per_class = pd.DataFrame({
        "class": classes,
        "n_test": y.sum(axis=0).astype(int),
        "roc_auc": [skm.roc_auc_score(y[:, k], p[:, k]) if ok[k] else np.nan for k in range(len(classes))],
        "pr_auc": [skm.average_precision_score(y[:, k], p[:, k]) if ok[k] else np.nan for k in range(len(classes))],
        "f1": skm.f1_score(y, b, average=None, zero_division=0),
        "accuracy": (b == y).mean(axis=0),
    })
    return out, per_class
