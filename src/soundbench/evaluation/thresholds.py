"""Decision thresholds of the thresholded metrics (F1, subset accuracy, decoded events): fixed or tuned on validation.

A threshold configuration is one of
  0.5                          the same threshold for every class
  [0.3, 0.5, ...]              one per class, in class order
  {method: max_f1, ...}        tuned per class on validation targets and scores; the other keys are the method's
                               options, e.g. {method: perturbation, restarts: 100}
A score at or above its class threshold is positive, everywhere (metrics.multi_label, sed.decode), and the
tuning methods binarise the same way so the thresholds they find are the ones that get applied.
"""
from __future__ import annotations

import inspect
from collections.abc import Mapping

import numpy as np


def _f1_per_class(y: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """F1 of each column; 0 where it is undefined (no positives on either side), as scikit-learn's default."""
    tp = (positive & y).sum(axis=0)
    wrong = (positive != y).sum(axis=0)  # false positives + false negatives
    denominator = 2 * tp + wrong
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def max_f1(y: np.ndarray, p: np.ndarray, *, grid=None) -> np.ndarray:
    """Per class, the grid threshold with the best validation F1.

    Ties go to the threshold closest to 0.5 (then the lower one), so a flat F1 plateau does not push the threshold
    to an edge of the grid. A class without positives on validation keeps 0.5: any threshold above its top score
    would "win" with F1 = 0 vs 0 and tell nothing.
    """
    grid = np.round(np.arange(1, 100) / 100, 2) if grid is None else np.sort(np.asarray(grid, dtype=np.float64))
    order = np.lexsort((grid, np.abs(grid - 0.5)))  # preference among equal F1: nearest 0.5, then lower
    out = np.full(y.shape[1], 0.5)
    for k in range(y.shape[1]):
        if not y[:, k].any():
            continue
        f1 = _f1_per_class(y[:, [k]].repeat(len(grid), axis=1), p[:, [k]] >= grid[None, :])
        out[k] = grid[order[np.argmax(f1[order])]]  # argmax takes the first maximum in preference order
    return out


def perturbation(y: np.ndarray, p: np.ndarray, *, seed: int = 0, restarts: int = 100, iterations: int = 30,
                 init_low: float = 0.40, init_high: float = 0.60, center: float = 0.5, sigma: float = 0.08,
                 weight: float = 0.07, decay_divisor: float = 1.9, as_shipped: bool = False) -> np.ndarray:
    """The random-perturbation ("simulated annealing") search of the IJCNN 2019 code (seed-specs 4.6), read in
    topel/ijcnn19_submission utils/Binarizer.py: the per-class thresholds with the best mean per-class F1.

    The best starts as 0.5 for every class. Each restart draws every class's threshold uniformly from the 0.01 grid
    of [init_low, init_high] (randint(40, 60) / 100 in the original), then runs `iterations` steps:
      g = exp(-(t - center)^2 / (2 sigma^2));  t += uniform(-g, g) * w;  w -= weight / (iterations * decay_divisor)
    with w starting at `weight`, i.e. a uniform step whose size shrinks as t leaves `center` and as w decays
    linearly (to about half after the last step). Every step is scored; a strictly better mean F1 is kept.

    Differences from the original: seeded (it used Python's unseeded `random`); positives are score >= t (it used
    > t) to match how the thresholds are applied here; any number of classes (it had 10 hard-coded).
    `as_shipped=True` reproduces one defect of the original: it kept a reference to the array it went on updating,
    so it returned the thresholds at the end of the restart that held the best step, not the best step itself.
    """
    rng = np.random.default_rng(seed)
    n_classes = y.shape[1]

    def mean_f1(t):
        return _f1_per_class(y, p >= t[None, :]).mean()

    best_t, best_score = np.full(n_classes, 0.5), mean_f1(np.full(n_classes, 0.5))
    grid_low, grid_high = round(init_low * 100), round(init_high * 100)
    for _ in range(restarts):
        t = rng.integers(grid_low, grid_high, size=n_classes, endpoint=True) / 100
        w, decay = weight, weight / (iterations * decay_divisor)
        improved = False
        for _ in range(iterations):
            g = np.exp(-((t - center) ** 2) / (2 * sigma**2))
            t = t + (rng.random(n_classes) * 2 * g - g) * w
            w -= decay
            score = mean_f1(t)
            if score > best_score:
                best_t, best_score, improved = t.copy(), score, True
        if as_shipped and improved:
            best_t = t.copy()
    return best_t


METHODS = {"max_f1": max_f1, "perturbation": perturbation}


def _tune(cfg: Mapping, classes: list[str], y_val, p_val, seed: int) -> np.ndarray:
    options = dict(cfg)
    name = options.pop("method", None)
    if name not in METHODS:
        raise ValueError(f"unknown threshold method {name!r}; known: {sorted(METHODS)}")
    method = METHODS[name]
    allowed = [a for a, prm in inspect.signature(method).parameters.items() if prm.kind is prm.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"threshold method {name} has no option(s) {unknown}; it takes {allowed}")
    if y_val is None or p_val is None:
        raise ValueError(f"threshold method {name} needs validation predictions")
    y, p = np.asarray(y_val).astype(bool), np.asarray(p_val, dtype=np.float64)
    if y.ndim != 2 or y.shape != p.shape or y.shape[1] != len(classes):
        raise ValueError(f"validation targets {y.shape} and scores {p.shape} must both be (clips, {len(classes)})")
    if not np.isfinite(p).all():
        raise ValueError("validation scores contain NaN or inf")
    if "seed" in allowed:
        options.setdefault("seed", seed)
    return np.asarray(method(y, p, **options), dtype=np.float64)


def resolve(cfg, classes: list[str], y_val=None, p_val=None, seed: int = 0) -> np.ndarray:
    """The thresholds (n_classes,) that a configuration stands for; tuned ones need validation y (multi-hot) and p."""
    if isinstance(cfg, Mapping):
        return _tune(cfg, classes, y_val, p_val, seed)
    if isinstance(cfg, (int, float, np.number)) and not isinstance(cfg, bool):
        return np.full(len(classes), float(cfg))
    if isinstance(cfg, (list, tuple, np.ndarray)):
        values = np.asarray(cfg, dtype=np.float64).ravel()
        if len(values) != len(classes):
            raise ValueError(f"{len(values)} thresholds given for {len(classes)} classes")
        return values
    raise ValueError(f"a threshold is a number, a per-class list or a mapping with a method, not {cfg!r}")


def describe(cfg) -> str:
    """A short text of a threshold configuration, for metrics.json."""
    if isinstance(cfg, Mapping):
        options = ", ".join(f"{k}={v}" for k, v in sorted(cfg.items()) if k != "method")
        return f"{cfg.get('method')} on validation" + (f" ({options})" if options else "")
    if isinstance(cfg, (list, tuple, np.ndarray)):
        return "per-class list"
    return f"{cfg:g}" if isinstance(cfg, (int, float, np.number)) and not isinstance(cfg, bool) else str(cfg)
