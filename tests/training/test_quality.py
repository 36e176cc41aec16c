"""The quick baselines and the warning for a model that did not learn."""

import numpy as np
import pyarrow as pa
import pytest

from textclf.training.quality import naive_bayes_macro_f1, quality_warning


def _table(rows: list[list[int]], labels: list[int]) -> pa.Table:
    return pa.table({"ids": pa.array(rows, pa.list_(pa.int32())), "label": pa.array(labels, pa.int32())})


def test_naive_bayes_learns_words_that_mark_a_class():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    # class k's rows hold word 2 + k among filler words 5..9; <unk> (1) everywhere says nothing
    rows = [[2 + int(k), 1, *rng.integers(5, 10, 6).tolist()] for k in labels]
    train, validation = _table(rows[:200], labels[:200].tolist()), _table(rows[200:], labels[200:].tolist())
    assert naive_bayes_macro_f1(train, validation, ["a", "b", "c"], vocab_size=10) == pytest.approx(1.0)


def test_naive_bayes_is_near_chance_without_signal():
    rng = np.random.default_rng(1)
    rows = rng.integers(2, 50, (400, 8)).tolist()
    labels = rng.integers(0, 4, 400).tolist()
    f1 = naive_bayes_macro_f1(_table(rows[:300], labels[:300]), _table(rows[300:], labels[300:]), list("abcd"), 50)
    assert f1 < 0.45


def test_a_single_predicted_class_is_named():
    confusion = np.array([[5, 0, 0], [7, 0, 0], [9, 0, 0]])
    warning = quality_warning(confusion, 0.16, {"majority": 0.2, "naive_bayes": 0.6})
    assert "single class" in warning and "--epochs" in warning and "\n" not in warning


def test_a_model_no_better_than_the_majority_label_or_well_below_naive_bayes_is_named():
    confusion = np.array([[5, 1], [1, 5]])
    assert "most frequent label" in quality_warning(confusion, 0.3, {"majority": 0.33, "naive_bayes": 0.5})
    assert "naive Bayes" in quality_warning(confusion, 0.5, {"majority": 0.33, "naive_bayes": 0.8})


def test_a_model_near_or_above_naive_bayes_gets_no_warning():
    confusion = np.array([[5, 1], [1, 5]])
    assert quality_warning(confusion, 0.77, {"majority": 0.36, "naive_bayes": 0.78}) is None
    assert quality_warning(confusion, 0.9, {"majority": 0.36, "naive_bayes": 0.78}) is None


def test_the_majority_baseline_predicts_the_most_frequent_training_label():
    from textclf.training.quality import baselines_macro_f1

    train = _table([[2], [3], [3]], [0, 1, 1])
    validation = _table([[2], [3], [3], [3]], [0, 1, 1, 1])
    baselines = baselines_macro_f1(train, validation, ["a", "b"], {"a": 1, "b": 2}, vocab_size=4)
    assert baselines["majority"] == pytest.approx((0 + 2 * 3 / (3 + 4)) / 2)  # F1 of "b" 6/7 averaged with 0
    assert baselines["naive_bayes"] == pytest.approx(1.0)
