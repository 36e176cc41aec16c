"""Multi-label metrics from per-label counts at a grid of thresholds, checked against scikit-learn."""

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score

from textclf.evaluation.multilabel import (
    THRESHOLDS,
    counts_at,
    multilabel_metrics,
    threshold_counts,
    tune_thresholds,
)


def _data(seed=0, rows=300, labels=5):
    rng = np.random.default_rng(seed)
    targets = rng.random((rows, labels)) < 0.3
    probs = np.clip(targets * 0.35 + rng.random((rows, labels)) * 0.6, 0, 1).astype(np.float32)
    return targets, probs


def test_metrics_at_given_thresholds_match_sklearn():
    targets, probs = _data()
    thresholds = np.array([0.3, 0.5, 0.65, 0.05, 0.95])
    chosen = probs >= thresholds
    exact = int((chosen == targets).all(axis=1).sum())
    m = multilabel_metrics(counts_at(threshold_counts(targets, probs), thresholds), list("abcde"), exact, len(targets))
    for average in ("micro", "macro"):
        assert m[f"{average}_f1"] == pytest.approx(f1_score(targets, chosen, average=average, zero_division=0))
        assert m[f"{average}_precision"] == pytest.approx(
            precision_score(targets, chosen, average=average, zero_division=0)
        )
        assert m[f"{average}_recall"] == pytest.approx(recall_score(targets, chosen, average=average, zero_division=0))
    assert m["per_class"]["c"]["support"] == targets[:, 2].sum()
    assert m["accuracy"] == pytest.approx(exact / len(targets))


def test_each_label_gets_the_grid_threshold_with_its_best_f1():
    targets, probs = _data(seed=1)
    tuned = tune_thresholds(threshold_counts(targets, probs))
    for j, threshold in enumerate(tuned):
        scores = [f1_score(targets[:, j], probs[:, j] >= t, zero_division=0) for t in THRESHOLDS]
        assert f1_score(targets[:, j], probs[:, j] >= threshold, zero_division=0) == pytest.approx(max(scores))


def test_a_label_absent_from_validation_keeps_the_default_threshold():
    targets, probs = _data(seed=2)
    targets[:, 3] = False
    assert tune_thresholds(threshold_counts(targets, probs))[3] == 0.5
