"""Choosing labels from probabilities: top-k with a threshold, as fastText's predict(k, threshold)."""

import numpy as np
import pytest

from textclf.errors import DataError
from textclf.inference.selection import check_selection, selects, top_labels

PROBS = np.array([[0.1, 0.6, 0.3], [0.34, 0.33, 0.33], [0.0, 0.0, 1.0]], dtype=np.float32)


def test_top_k_gives_the_most_probable_first():
    assert [list(row) for row in top_labels(PROBS, top_k=2)] == [[1, 2], [0, 1], [2, 0]]
    assert [list(row) for row in top_labels(PROBS)] == [[1], [0], [2]]
    assert [len(row) for row in top_labels(PROBS, top_k=10)] == [3, 3, 3]  # k beyond the labels: all


def test_a_threshold_keeps_only_labels_at_or_above_it_and_a_row_may_get_none():
    assert [list(row) for row in top_labels(PROBS, top_k=3, threshold=0.3)] == [[1, 2], [0, 1, 2], [2]]
    assert [list(row) for row in top_labels(PROBS, top_k=1, threshold=0.5)] == [[1], [], [2]]


def test_only_top_1_without_threshold_selects_nothing_extra():
    assert not selects(1, 0.0) and selects(2, 0.0) and selects(1, 0.2)


@pytest.mark.parametrize(
    "top_k, threshold, named",
    [(0, 0.0, "--top-k"), (-1, 0.0, "--top-k"), (1.5, 0.0, "--top-k"), (True, 0.0, "--top-k")]
    + [(1, -0.1, "--threshold"), (1, 1.5, "--threshold"), (1, "0.5", "--threshold")],
)
def test_bad_options_are_refused_by_name(top_k, threshold, named):
    with pytest.raises(DataError, match=named):
        check_selection(top_k, threshold)


def test_a_multi_label_model_chooses_every_label_at_or_above_its_own_threshold():
    thresholds = [0.5, 0.05, 0.9]
    assert [list(row) for row in top_labels(PROBS, thresholds=thresholds)] == [[1], [1], [2]]
    # --threshold replaces the tuned thresholds, --top-k caps the count
    assert [list(row) for row in top_labels(PROBS, threshold=0.3, thresholds=thresholds)] == [[1, 2], [0, 1, 2], [2]]
    assert [list(row) for row in top_labels(PROBS, top_k=1, thresholds=thresholds)] == [[1], [], [2]]
    assert selects(None, None, multi_label=True) and not selects(None, None)
