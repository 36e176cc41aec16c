"""Metrics must match scikit-learn (zero_division=0) while deriving everything from the matrix."""

import json

import numpy as np
import pytest
from sklearn import metrics as skm

from textclf.evaluation.metrics import confusion_matrix, format_metrics, metrics_from_confusion


def _compare_with_sklearn(y_true, y_pred, k):
    labels = [f"class_{i}" for i in range(k)]
    cm = confusion_matrix(y_true, y_pred, k)
    m = metrics_from_confusion(cm, labels)
    ids = list(range(k))
    np.testing.assert_array_equal(cm, skm.confusion_matrix(y_true, y_pred, labels=ids))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    for ours, average in (("macro", "macro"), ("weighted", "weighted")):
        p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, labels=ids, average=average, zero_division=0)
        if ours == "macro":
            assert m["macro_precision"] == pytest.approx(p)
            assert m["macro_recall"] == pytest.approx(r)
            assert m["macro_f1"] == pytest.approx(f)
        else:
            assert m["weighted_f1"] == pytest.approx(f)
    p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=ids, zero_division=0)
    for i, label in enumerate(labels):
        row = m["per_class"][label]
        assert row["precision"] == pytest.approx(p[i])
        assert row["recall"] == pytest.approx(r[i])
        assert row["f1"] == pytest.approx(f[i])
        assert row["support"] == s[i]
    assert m["support"] == len(y_true)
    return m


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 2, 300)
    y_pred = np.where(rng.random(300) < 0.7, y_true, 1 - y_true)
    _compare_with_sklearn(y_true, y_pred, 2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multiclass_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 7, 500)
    y_pred = np.where(rng.random(500) < 0.5, y_true, rng.integers(0, 7, 500))
    _compare_with_sklearn(y_true, y_pred, 7)


def test_class_never_predicted_and_class_absent():
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 4, 200)  # class 4 never occurs
    y_pred = rng.integers(0, 3, 200)  # classes 3 and 4 are never predicted
    m = _compare_with_sklearn(y_true, y_pred, 5)
    assert m["per_class"]["class_3"]["precision"] == 0.0
    assert m["per_class"]["class_4"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_summed_per_rank_matrices_equal_global():
    rng = np.random.default_rng(4)
    y_true, y_pred = rng.integers(0, 3, 400), rng.integers(0, 3, 400)
    parts = [confusion_matrix(y_true[i::4], y_pred[i::4], 3) for i in range(4)]
    np.testing.assert_array_equal(sum(parts), confusion_matrix(y_true, y_pred, 3))


def test_empty_input_gives_zeros():
    m = metrics_from_confusion(confusion_matrix([], [], 3), ["a", "b", "c"])
    assert m["accuracy"] == m["macro_f1"] == m["weighted_f1"] == 0.0
    assert m["confusion"] == [[0] * 3] * 3


def test_confusion_matrix_dtype_and_errors():
    cm = confusion_matrix([0, 1, 1], [1, 1, 0], 2)
    assert cm.dtype == np.int64 and cm.tolist() == [[0, 1], [1, 1]]
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix([0, 2], [0, 1], 2)
    with pytest.raises(ValueError, match="labels"):
        confusion_matrix([0, 1], [0], 2)
    with pytest.raises(ValueError, match="K = 3"):
        metrics_from_confusion(cm, ["a", "b", "c"])


def test_result_is_json_serialisable():
    m = metrics_from_confusion(np.array([[3, 1], [2, 4]]), ["neg", "pos"])
    assert json.loads(json.dumps(m)) == m
    assert m["labels"] == ["neg", "pos"]


def test_format_metrics_is_aligned_and_truncates():
    long = "an extremely long label name that goes on"
    m = metrics_from_confusion(np.array([[50, 2, 0], [3, 40, 1], [0, 0, 1000]]), ["a", "b", long])
    text = format_metrics(m)
    assert "accuracy 0.9945" in text
    assert long not in text and "an extremely long l…" in text
    table = text.split("\n\n")[1].splitlines()
    assert len({len(line) for line in table[:4]}) == 1  # header and class rows line up
    matrix = text.split("\n\n")[2].splitlines()[1:]
    assert len({len(line) for line in matrix}) == 1
    assert matrix[-1].split()[-1] == "1000"
