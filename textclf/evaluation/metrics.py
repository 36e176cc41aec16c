"""Classification metrics computed from a confusion matrix.

Everything derives from the [K, K] confusion matrix so that training can sum per-rank matrices
(an all-reduce) and get exact global metrics. Undefined ratios are 0.0, like scikit-learn's
``zero_division=0``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """Count (true, predicted) pairs: an int64 [K, K] matrix, rows = true, columns = predicted."""
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} labels but y_pred has {y_pred.size}")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{name} holds label ids outside 0..{num_classes - 1}")
    # One bincount over flattened (true, pred) cell indices is far faster than a Python loop.
    counts = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    out = np.zeros_like(numerator, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def metrics_from_confusion(confusion, label_names: Sequence[str]) -> dict:
    """Accuracy, macro/weighted scores and a per-class table as a JSON-serialisable dict."""
    cm = np.asarray(confusion, dtype=np.int64)
    labels = [str(name) for name in label_names]
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(labels):
        raise ValueError(f"confusion must be [K, K] with K = {len(labels)} labels, got {cm.shape}")
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    total = int(support.sum())
    precision = _safe_divide(tp, predicted)
    recall = _safe_divide(tp, support)
    # 2TP / (2TP + FP + FN) equals 2PR / (P + R) and stays defined when only one of P, R is.
    f1 = _safe_divide(2 * tp, support + predicted)
    return {
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "macro_precision": float(precision.mean()) if labels else 0.0,
        "macro_recall": float(recall.mean()) if labels else 0.0,
        "macro_f1": float(f1.mean()) if labels else 0.0,
        "weighted_f1": float((f1 * support).sum() / total) if total else 0.0,
        "support": total,
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "confusion": cm.tolist(),
        "labels": labels,
    }


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def format_metrics(metrics: dict, label_width: int = 20, column_width: int = 8) -> str:
    """A plain-text report: summary line, per-class table and the labeled confusion matrix.

    Labels longer than ``label_width`` (row names) or ``column_width`` (confusion column headers)
    are cut and end with an ellipsis.
    """
    labels = metrics["labels"]
    name_w = max([len("label"), len("weighted avg")] + [len(_clip(label, label_width)) for label in labels])
    lines = [
        f"accuracy {metrics['accuracy']:.4f}   macro precision {metrics['macro_precision']:.4f}"
        f"   recall {metrics['macro_recall']:.4f}   F1 {metrics['macro_f1']:.4f}"
        f"   (n={metrics['support']})",
        "",
        f"{'label':<{name_w}}  {'precision':>9}  {'recall':>9}  {'f1':>9}  {'support':>9}",
    ]
    for label in labels:
        row = metrics["per_class"][label]
        lines.append(
            f"{_clip(label, label_width):<{name_w}}  {row['precision']:>9.4f}  {row['recall']:>9.4f}"
            f"  {row['f1']:>9.4f}  {row['support']:>9d}"
        )
    lines.append(
        f"{'macro avg':<{name_w}}  {metrics['macro_precision']:>9.4f}  {metrics['macro_recall']:>9.4f}"
        f"  {metrics['macro_f1']:>9.4f}  {metrics['support']:>9d}"
    )
    lines.append(f"{'weighted avg':<{name_w}}  {'':>9}  {'':>9}  {metrics['weighted_f1']:>9.4f}")

    confusion = metrics["confusion"]
    headers = [_clip(label, column_width) for label in labels]
    largest = max((len(str(c)) for row in confusion for c in row), default=1)
    cell_w = max([largest] + [len(h) for h in headers])
    lines += ["", "confusion matrix (rows = true, columns = predicted)"]
    lines.append(" " * name_w + "".join(f"  {h:>{cell_w}}" for h in headers))
    for label, row in zip(labels, confusion):
        cells = "".join(f"  {c:>{cell_w}d}" for c in row)
        lines.append(f"{_clip(label, label_width):<{name_w}}{cells}")
    return "\n".join(lines)
