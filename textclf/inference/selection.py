"""Which labels a scored text gets: the `top_k` most probable with at least `threshold` probability
(fastText's `predict(k, threshold)`). A multi-label model's default is every label at or above its own
threshold, tuned on the validation split. Imports nothing heavy, so checking the options costs nothing
at start-up."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from textclf.errors import DataError

if TYPE_CHECKING:
    import numpy as np


def check_selection(top_k: int | None, threshold: float | None) -> None:
    """None means the model's default: 1 label (single-label) or all above their tuned thresholds."""
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
        raise DataError(f"--top-k must be a whole number >= 1, got {top_k!r}")
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0
    ):
        raise DataError(f"--threshold must be a probability from 0 to 1, got {threshold!r}")


def selects(top_k: int | None, threshold: float | None, multi_label: bool = False) -> bool:
    """Whether outputs carry the chosen labels (`labels`, `confidences`): always for a multi-label model,
    otherwise only when the options ask for more than the single best label, which every output has."""
    return multi_label or (top_k or 1) != 1 or (threshold or 0.0) > 0.0


def top_labels(
    probs: np.ndarray,
    top_k: int | None = None,
    threshold: float | None = None,
    thresholds: Sequence[float] | None = None,
) -> list[np.ndarray]:
    """Per row of `probs` ([rows, labels]), the indices of its most probable labels, most probable first:
    at most `top_k` (None: all with `thresholds`, else 1), each at least `threshold`, or, where that is
    None, at least its own entry of `thresholds` (a multi-label model's tuned ones; None: no floor).
    A row may get none."""
    import numpy as np

    k = top_k if top_k is not None else (probs.shape[1] if thresholds is not None else 1)
    order = np.argsort(-probs, axis=1, kind="stable")[:, : min(k, probs.shape[1])]
    if threshold is not None:
        floor = np.full(probs.shape[1], threshold, np.float32)
    elif thresholds is not None:
        floor = np.asarray(thresholds, np.float32)
    else:
        floor = np.zeros(probs.shape[1], np.float32)
    kept = np.take_along_axis(probs, order, axis=1) >= floor[order]
    return [row[keep] for row, keep in zip(order, kept)]
