"""Is the trained model better than doing almost nothing? Two baselines on the same validation rows.

- majority: every row gets the most frequent training label;
- naive Bayes: multinomial naive Bayes over which vocabulary words a text holds (binary counts,
  add-one smoothing), fitted on the training rows in seconds. A text classifier worth keeping beats
  it; one far below it (or predicting a single class) usually did not train, and the user should know.

A multi-label model is held to the first bar only (by micro-F1): every text given the most frequent label.

Plain numpy over the encoded id columns: no Ray, no torch.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from textclf.evaluation.metrics import confusion_matrix, metrics_from_confusion
from textclf.evaluation.multilabel import most_frequent_label_micro_f1, multi_hot
from textclf.text.encoding import list_arrays

# A model this far below naive Bayes did not learn; closer than that, the baselines trade places by
# corpus and seed (on rotten-tomatoes naive Bayes and the default bow are within a point).
BASELINE_MARGIN = 0.9


def _flat(table: pa.Table, vocab_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row of each token, token ids, labels) with each row's ids made unique (binary counts)."""
    ids = table.column("ids").combine_chunks()
    rows = np.repeat(np.arange(len(ids), dtype=np.int64), np.diff(ids.offsets.to_numpy()))
    pairs = np.unique(rows * vocab_size + ids.values.to_numpy())
    return pairs // vocab_size, pairs % vocab_size, table.column("label").to_numpy()


def naive_bayes_macro_f1(train: pa.Table, validation: pa.Table, labels: list[str], vocab_size: int) -> float:
    """Validation macro-F1 of multinomial naive Bayes fitted on `train` (tables of `ids`, `label`)."""
    k = len(labels)
    rows, ids, y = _flat(train, vocab_size)
    counts = np.bincount(y[rows].astype(np.int64) * vocab_size + ids, minlength=k * vocab_size)
    counts = counts.reshape(k, vocab_size) + 1.0  # add-one smoothing
    counts[:, :2] = 0  # <pad> and <unk> say nothing about the class
    log_word = np.log(counts / counts.sum(axis=1, keepdims=True) + 1e-30)
    log_prior = np.log(np.bincount(y, minlength=k) + 1.0)
    v_rows, v_ids, v_y = _flat(validation, vocab_size)
    scores = np.stack(
        [
            prior + np.bincount(v_rows, weights=log_word[c, v_ids], minlength=validation.num_rows)
            for c, prior in enumerate(log_prior)
        ],
        axis=1,
    )
    confusion = confusion_matrix(v_y, scores.argmax(axis=1), k)
    return metrics_from_confusion(confusion, labels)["macro_f1"]


def baselines_macro_f1(
    train: pa.Table, validation: pa.Table, labels: list[str], label_counts: dict[str, int], vocab_size: int
) -> dict[str, float]:
    """Validation macro-F1 of the majority training label and of naive Bayes, to tell a model that did
    not learn from one that did."""
    majority = labels.index(max(labels, key=lambda name: label_counts.get(name, 0)))
    confusion = np.zeros((len(labels), len(labels)), np.int64)
    confusion[:, majority] = np.bincount(validation.column("label").to_numpy(), minlength=len(labels))
    return {
        "majority": metrics_from_confusion(confusion, labels)["macro_f1"],
        "naive_bayes": naive_bayes_macro_f1(train, validation, labels, vocab_size),
    }


def quality_warning(confusion: np.ndarray, macro_f1: float, baselines: dict[str, float]) -> str | None:
    """One line when the model predicts a single class, does no better than the majority label or
    stays well below naive Bayes (`baselines`: macro-F1 of each); None otherwise."""
    predicted = np.flatnonzero(np.asarray(confusion).sum(axis=0))
    advice = (
        "try more --epochs, a higher --lr, --class-weights balanced or another --arch, and check that "
        "the labels follow from the texts"
    )
    if len(predicted) <= 1 and np.asarray(confusion).shape[0] > 1:
        return f"the model predicts a single class for every validation row (macro-F1 {macro_f1:.4f}): {advice}"
    if macro_f1 <= baselines["majority"]:
        return (
            f"the model's validation macro-F1 {macro_f1:.4f} is no better than predicting the most frequent "
            f"label ({baselines['majority']:.4f}): {advice}"
        )
    if macro_f1 < BASELINE_MARGIN * baselines["naive_bayes"]:
        return (
            f"the model's validation macro-F1 {macro_f1:.4f} is well below a naive Bayes baseline's "
            f"{baselines['naive_bayes']:.4f} on the same rows: {advice}"
        )
    return None


def multi_label_baselines(validation: pa.Table, labels: list[str], label_counts: dict[str, int]) -> dict[str, float]:
    """Validation micro-F1 of giving every text the most frequent training label."""
    targets = multi_hot(list_arrays(validation.column("label")), len(labels))
    most_frequent = labels.index(max(labels, key=lambda name: label_counts.get(name, 0)))
    return {"most_frequent_label": most_frequent_label_micro_f1(targets, most_frequent)}


def multi_label_warning(counts, micro_f1: float, baselines: dict[str, float]) -> str | None:
    """One line when a multi-label model chooses no label for any validation text or does no better
    than giving every text the most frequent label (`counts`: [labels, 3] TP, FP, FN)."""
    advice = "try more --epochs, a higher --lr or another --arch, and check that the labels follow from the texts"
    chosen = np.asarray(counts)[:, :2].sum()
    if chosen == 0:
        return f"the model chooses no label for any validation text (micro-F1 {micro_f1:.4f}): {advice}"
    if micro_f1 <= baselines["most_frequent_label"]:
        return (
            f"the model's validation micro-F1 {micro_f1:.4f} is no better than giving every text the most "
            f"frequent label ({baselines['most_frequent_label']:.4f}): {advice}"
        )
    return None
