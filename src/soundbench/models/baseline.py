"""The weak reference system: logistic regression on time-pooled log-mel statistics (per band mean and std).

It sees which frequencies are present and how much they vary, never their order in time: a model that beats it
has learned temporal structure.
"""
from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def pooled_stats(x: np.ndarray) -> np.ndarray:
    """(n, channels, mels, frames) -> (n, 2 * channels * mels): mean and std over frames."""
    x = x.reshape(x.shape[0], -1, x.shape[-1])
    return np.concatenate([x.mean(axis=-1), x.std(axis=-1)], axis=1)


def build(task, C: float = 1.0, max_iter: int = 2000, seed: int = 0):
    """task: a soundbench.tasks.Task with clip-level class scores (multiclass, multilabel)."""
    if not task.classes_at_prediction or task.frame_seconds_needed:
        raise ValueError(f"the baseline predicts clip-level classes; it cannot serve the {task.name} task "
                         f"(set the experiment's task: multilabel for tagging)")
    lr = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
    head = lr if task.single_label else OneVsRestClassifier(lr)
    return make_pipeline(StandardScaler(), head)


def predict_proba(model, feats: np.ndarray, task, n_classes: int) -> np.ndarray:
    """Class probabilities (n, n_classes), also for classes absent from the training data."""
    p = model.predict_proba(feats)
    classes = model.classes_ if task.single_label else np.arange(n_classes)
    out = np.zeros((len(feats), n_classes), dtype=np.float64)
    out[:, np.asarray(classes, dtype=int)] = p
    return out
