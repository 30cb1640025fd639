"""Threshold configurations: fixed, per class, tuned on validation."""
from __future__ import annotations

import numpy as np
import pytest

from soundbench.evaluation import thresholds

CLASSES = ["a", "b", "c"]


def f1(y, positive):
    tp = (y & positive).sum(axis=0)
    return 2 * tp / (2 * tp + (y != positive).sum(axis=0))


def skewed_case(seed=0, n=300):
    """Class 0's positives score 0.38-0.55 and its negatives below 0.36: 0.5 misses most positives. Class 1 is
    separated around 0.5. Class 2's positives score high but a quarter of its negatives reach 0.5-0.65."""
    rng = np.random.default_rng(seed)
    y = rng.random((n, 3)) < 0.3
    p = np.empty((n, 3))
    p[:, 0] = np.where(y[:, 0], rng.uniform(0.38, 0.55, n), rng.uniform(0.0, 0.36, n))
    p[:, 1] = np.where(y[:, 1], rng.uniform(0.55, 1.0, n), rng.uniform(0.0, 0.45, n))
    noisy = rng.random(n) < 0.25
    p[:, 2] = np.where(y[:, 2], rng.uniform(0.7, 1.0, n), np.where(noisy, rng.uniform(0.5, 0.65, n),
                                                                   rng.uniform(0.0, 0.4, n)))
    return y, p


def test_scalar_and_list():
    assert thresholds.resolve(0.3, CLASSES).tolist() == [0.3, 0.3, 0.3]
    assert thresholds.resolve([0.1, 0.2, 0.3], CLASSES).tolist() == [0.1, 0.2, 0.3]
    with pytest.raises(ValueError, match="2 thresholds given for 3 classes"):
        thresholds.resolve([0.1, 0.2], CLASSES)
    assert thresholds.describe(0.5) == "0.5" and thresholds.describe([0.1, 0.2, 0.3]) == "per-class list"
    assert thresholds.describe({"method": "max_f1"}) == "max_f1 on validation"


def test_max_f1_finds_the_separating_threshold():
    y = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=bool)
    p = np.array([[0.35, 0.1, 0.9], [0.3, 0.8, 0.2], [0.25, 0.7, 0.1], [0.2, 0.1, 0.3]])
    t = thresholds.resolve({"method": "max_f1"}, CLASSES, y, p)
    # class a: any t in (0.25, 0.30] separates, 0.30 is the nearest 0.5; b: best F1 2/3 on (0.1, 0.7], 0.5 is in it;
    # c has no positive on validation and keeps 0.5
    assert t.tolist() == pytest.approx([0.30, 0.5, 0.5])
    assert thresholds.resolve({"method": "max_f1", "grid": [0.2, 0.26, 0.4]}, CLASSES, y, p)[0] == 0.26


def test_tuning_needs_validation_and_a_known_method():
    with pytest.raises(ValueError, match="threshold method max_f1 needs validation predictions"):
        thresholds.resolve({"method": "max_f1"}, CLASSES)
    with pytest.raises(ValueError, match="'youden'.*max_f1.*perturbation"):
        thresholds.resolve({"method": "youden"}, CLASSES, np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="restart"):
        thresholds.resolve({"method": "max_f1", "restarts": 3}, CLASSES, np.zeros((2, 3)), np.zeros((2, 3)))


def test_perturbation_is_seeded_and_beats_one_half():
    y, p = skewed_case()
    cfg = {"method": "perturbation", "restarts": 30}
    t = thresholds.resolve(cfg, CLASSES, y, p, seed=1)
    assert np.array_equal(t, thresholds.resolve(cfg, CLASSES, y, p, seed=1))
    assert not np.array_equal(t, thresholds.resolve(cfg, CLASSES, y, p, seed=2))
    assert f1(y, p >= t).mean() > f1(y, p >= 0.5).mean() + 0.1
    assert t[0] < 0.4  # found the low threshold of class a


def test_perturbation_without_restarts_keeps_one_half():
    y, p = skewed_case()
    t = thresholds.resolve({"method": "perturbation", "restarts": 0}, CLASSES, y, p)
    assert t.tolist() == [0.5, 0.5, 0.5]


def test_perturbation_as_shipped_returns_the_end_of_the_best_restart():
    # the original kept a reference to the array it went on updating: never better than the best step it saw
    y, p = skewed_case()
    best = thresholds.resolve({"method": "perturbation", "restarts": 30}, CLASSES, y, p, seed=1)
    shipped = thresholds.resolve({"method": "perturbation", "restarts": 30, "as_shipped": True}, CLASSES, y, p, seed=1)
    assert not np.array_equal(best, shipped)
    assert f1(y, p >= shipped).mean() <= f1(y, p >= best).mean()
    assert thresholds.describe({"method": "perturbation", "restarts": 30}) == "perturbation on validation (restarts=30)"
