"""Evaluation of embeddings by k-nearest-neighbour classification (the ACIVW protocol, seed-specs 5.6).

scikit-learn's KNeighborsClassifier is fitted on the training embeddings; k is chosen from a list by validation
accuracy (the smallest k among ties), and test accuracy is reported at that k. Clips without exactly one class
(target -1) are left out.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def knn_metrics(train_x, train_y, test_x, test_y, val_x, val_y, classes: list[str], k_choices=(7, 9, 11, 13, 15)):
    """-> ({knn_accuracy, knn_k, knn_val_accuracy}, per-class DataFrame (class, n_test, accuracy))."""
    from sklearn.neighbors import KNeighborsClassifier

    def labelled(x, y):
        keep = np.asarray(y) >= 0
        return np.asarray(x)[keep], np.asarray(y)[keep]

    train_x, train_y = labelled(train_x, train_y)
    test_x, test_y = labelled(test_x, test_y)
    ks = [k for k in k_choices if k <= len(train_y)] or [max(1, len(train_y))]
    best_k, best_val = ks[0], np.nan
    if val_x is not None:
        val_x, val_y = labelled(val_x, val_y)
        if len(val_y):
            scores = [KNeighborsClassifier(k).fit(train_x, train_y).score(val_x, val_y) for k in ks]
            best_k, best_val = ks[int(np.argmax(scores))], float(max(scores))
    pred = KNeighborsClassifier(best_k).fit(train_x, train_y).predict(test_x)
    per_class = pd.DataFrame({
        "class": classes,
        "n_test": [int((test_y == k).sum()) for k in range(len(classes))],
        "accuracy": [float((pred[test_y == k] == k).mean()) if (test_y == k).any() else np.nan
                     for k in range(len(classes))],
    })
    return {"knn_accuracy": float((pred == test_y).mean()), "knn_k": best_k, "knn_val_accuracy": best_val}, per_class
