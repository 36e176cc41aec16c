"""Multi-label metrics: each label is its own yes/no decision at its own threshold.

Everything derives from per-label (true positive, false positive, false negative) counts at a grid of
thresholds, so training can sum per-rank counts (an all-reduce), tune each label's threshold on the
whole validation split and report exact metrics. Undefined ratios are 0.0, as in metrics.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from textclf.evaluation.metrics import _clip, _safe_divide

THRESHOLDS = np.round(np.linspace(0.05, 0.95, 19), 2)  # the grid each label's threshold is picked from
DEFAULT_THRESHOLD = 0.5  # for a label the validation split cannot tune (no positives, no predictions)


def multi_hot(label_lists: Sequence[np.ndarray], num_labels: int) -> np.ndarray:
    """Lists of label indices -> a [rows, labels] boolean matrix."""
    targets = np.zeros((len(label_lists), num_labels), dtype=bool)
    for row, indices in enumerate(label_lists):
        targets[row, indices] = True
    return targets


def threshold_counts(targets: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """[labels, thresholds, 3] int64: (TP, FP, FN) of each label at each grid threshold."""
    predicted = probs[:, :, None] >= THRESHOLDS[None, None, :]  # [rows, labels, thresholds]
    truth = targets[:, :, None]
    tp = (predicted & truth).sum(axis=0)
    fp = (predicted & ~truth).sum(axis=0)
    fn = (~predicted & truth).sum(axis=0)
    return np.stack([tp, fp, fn], axis=-1).astype(np.int64)


def tune_thresholds(counts: np.ndarray) -> np.ndarray:
    """Each label's threshold with the best validation F1; among equals the one nearest 0.5, and 0.5
    where the label never occurs in validation (nothing to tune on)."""
    tp, fp, fn = (counts[..., i].astype(np.float64) for i in range(3))
    f1 = _safe_divide(2 * tp, 2 * tp + fp + fn)
    nearness = -np.abs(THRESHOLDS - DEFAULT_THRESHOLD) * 1e-6  # breaks ties only
    best = np.argmax(f1 + nearness[None, :], axis=1)
    chosen = THRESHOLDS[best]
    chosen[(tp + fn)[:, 0] == 0] = DEFAULT_THRESHOLD
    return chosen


def counts_at(counts: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """[labels, 3] (TP, FP, FN) of each label at its own threshold (a point of the grid)."""
    positions = np.abs(THRESHOLDS[None, :] - np.asarray(thresholds, np.float64)[:, None]).argmin(axis=1)
    return counts[np.arange(len(positions)), positions]


def multilabel_metrics(counts: np.ndarray, label_names: Sequence[str], exact: int, rows: int) -> dict:
    """Micro and macro precision / recall / F1, a per-label table and subset accuracy (`exact` of `rows`
    texts got exactly their labels) as a JSON-serialisable dict; `counts` is [labels, 3]."""
    labels = [str(name) for name in label_names]
    tp, fp, fn = (np.asarray(counts, np.float64)[:, i] for i in range(3))
    precision, recall = _safe_divide(tp, tp + fp), _safe_divide(tp, tp + fn)
    f1 = _safe_divide(2 * tp, 2 * tp + fp + fn)
    micro_p = float(_safe_divide(tp.sum(), tp.sum() + fp.sum()))
    micro_r = float(_safe_divide(tp.sum(), tp.sum() + fn.sum()))
    return {
        "multi_label": True,
        "micro_precision": micro_p,
        "micro_recall": micro_r,
        "micro_f1": float(_safe_divide(2 * tp.sum(), 2 * tp.sum() + fp.sum() + fn.sum())),
        "macro_precision": float(precision.mean()) if labels else 0.0,
        "macro_recall": float(recall.mean()) if labels else 0.0,
        "macro_f1": float(f1.mean()) if labels else 0.0,
        "accuracy": exact / rows if rows else 0.0,  # subset accuracy: every label of the text right
        "support": rows,
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(tp[i] + fn[i]),
            }
            for i, label in enumerate(labels)
        },
        "counts": np.asarray(counts, np.int64).tolist(),
        "labels": labels,
    }


def format_multilabel_metrics(metrics: dict, label_width: int = 28) -> str:
    """A plain-text report: summary lines and the per-label table."""
    labels = metrics["labels"]
    name_w = max([len("label"), len("macro avg")] + [len(_clip(label, label_width)) for label in labels])
    lines = [
        f"micro precision {metrics['micro_precision']:.4f}   recall {metrics['micro_recall']:.4f}"
        f"   F1 {metrics['micro_f1']:.4f}   (n={metrics['support']} texts)",
        f"macro precision {metrics['macro_precision']:.4f}   recall {metrics['macro_recall']:.4f}"
        f"   F1 {metrics['macro_f1']:.4f}   subset accuracy {metrics['accuracy']:.4f}",
        "",
        f"{'label':<{name_w}}  {'precision':>9}  {'recall':>9}  {'f1':>9}  {'support':>9}",
    ]
    for label in labels:
        row = metrics["per_class"][label]
        lines.append(
            f"{_clip(label, label_width):<{name_w}}  {row['precision']:>9.4f}  {row['recall']:>9.4f}"
            f"  {row['f1']:>9.4f}  {row['support']:>9d}"
        )
    return "\n".join(lines)


def most_frequent_label_micro_f1(targets: np.ndarray, most_frequent: int) -> float:
    """Validation micro-F1 of giving every text the most frequent training label: the bar a model
    that learned anything clears."""
    tp = int(targets[:, most_frequent].sum())
    fp = len(targets) - tp
    fn = int(targets.sum()) - tp
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
