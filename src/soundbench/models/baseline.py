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


class LinearArrays:
    """A fitted baseline as plain arrays, so model.pt holds no pickle (torch.load(weights_only=True) reads it):
    the scaler's mean and scale, and the logistic regression's coefficients, computed as scikit-learn does
    (softmax over classes for more than two, a sigmoid for two classes and for each one-vs-rest label; a label
    that was constant in training keeps its constant)."""

    def __init__(self, arrays: dict):
        self.arrays = {k: (np.asarray(v, dtype=np.float64) if k != "kind" else v) for k, v in arrays.items()}
        self.classes_ = self.arrays["classes"].astype(np.int64)

    @classmethod
    def of(cls, model) -> "LinearArrays":
        scaler, head = model[0], model[-1]
        out = {"mean": scaler.mean_, "scale": scaler.scale_}
        if hasattr(head, "estimators_"):  # one-vs-rest: one binary regression (or a constant) per label
            n = scaler.mean_.shape[0]
            fitted = [hasattr(e, "coef_") for e in head.estimators_]
            out.update(kind="one_vs_rest", classes=np.arange(len(fitted)),
                       coef=np.stack([e.coef_[0] if f else np.zeros(n) for e, f in zip(head.estimators_, fitted)]),
                       intercept=np.array([e.intercept_[0] if f else 0.0 for e, f in zip(head.estimators_, fitted)]),
                       constant=np.array([np.nan if f else float(e.y_[0]) for e, f in zip(head.estimators_, fitted)]))
        else:
            out.update(kind="softmax" if len(head.classes_) > 2 else "binary", classes=head.classes_,
                       coef=head.coef_, intercept=head.intercept_)
        return cls(out)

    def state(self) -> dict:
        """{name: tensor} (and the kind), what model.pt stores."""
        import torch

        return {k: (torch.as_tensor(v) if k != "kind" else v) for k, v in self.arrays.items()}

    def predict_proba(self, feats: np.ndarray) -> np.ndarray:
        a = self.arrays
        z = ((np.asarray(feats, dtype=np.float64) - a["mean"]) / a["scale"]) @ a["coef"].T + a["intercept"]
        if self.arrays["kind"] == "softmax":
            z = z - z.max(axis=1, keepdims=True)
            e = np.exp(z)
            return e / e.sum(axis=1, keepdims=True)
        p = 1.0 / (1.0 + np.exp(-z))
        if self.arrays["kind"] == "binary":
            return np.concatenate([1.0 - p, p], axis=1)
        return np.where(np.isnan(a["constant"]), p, a["constant"])
