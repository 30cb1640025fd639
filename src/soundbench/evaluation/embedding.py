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


RECALL_AT = (1, 5, 10)


def retrieval_metrics(query: str, q, gallery: str, g, y, distance=None, ks=RECALL_AT, chunk: int = 256) -> dict:
    """Cross-modal retrieval of one split: every clip's `query` embedding searches the `gallery` embeddings of
    the same clips, ranked by increasing distance (the system's distance(query, Q, gallery, G) -> (nq, ng)
    tensor, else the squared Euclidean distance of the L2-normalised embeddings). A gallery item is relevant when
    it has the query's class (clips without one class are left out).

      recall@K/<query>-><gallery>  share of the queries with a relevant item among their K nearest
      map/<query>-><gallery>       mean over the queries of the average precision of the whole ranking (the mean
                                   of precision@rank at the ranks of the relevant items)
    """
    import torch

    y = np.asarray(y)
    keep = y >= 0
    q, g, y = np.asarray(q)[keep], np.asarray(g)[keep], y[keep]
    names = [f"recall@{k}/{query}->{gallery}" for k in ks] + [f"map/{query}->{gallery}"]
    if not len(y):
        return dict.fromkeys(names, float("nan"))
    gt = torch.as_tensor(g, dtype=torch.float32)
    hits = {k: 0 for k in ks}
    ap_sum = 0.0
    with torch.no_grad():
        for start in range(0, len(y), chunk):
            qt = torch.as_tensor(q[start:start + chunk], dtype=torch.float32)
            if distance is None:
                d = torch.cdist(torch.nn.functional.normalize(qt, dim=1),
                                torch.nn.functional.normalize(gt, dim=1)) ** 2
            else:
                d = distance(query, qt, gallery, gt)
            order = np.argsort(d.double().numpy(), axis=1, kind="stable")
            rel = y[order] == y[start:start + chunk, None]  # (chunk, ng): relevant at each rank
            for k in ks:
                hits[k] += int(rel[:, :k].any(axis=1).sum())
            ranks = np.arange(1, rel.shape[1] + 1)
            precision = np.cumsum(rel, axis=1) / ranks
            ap_sum += float(((precision * rel).sum(axis=1) / np.maximum(rel.sum(axis=1), 1)).sum())
    n = len(y)
    return {**{f"recall@{k}/{query}->{gallery}": hits[k] / n for k in ks}, f"map/{query}->{gallery}": ap_sum / n}
