"""Which labels a scored text gets: the `top_k` most probable with at least `threshold` probability
(fastText's `predict(k, threshold)`). Imports nothing heavy, so checking the options costs nothing at start-up."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textclf.errors import DataError

if TYPE_CHECKING:
    import numpy as np


def check_selection(top_k: int, threshold: float) -> None:
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
        raise DataError(f"--top-k must be a whole number >= 1, got {top_k!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise DataError(f"--threshold must be a probability from 0 to 1, got {threshold!r}")


def selects(top_k: int, threshold: float) -> bool:
    """Whether the options ask for more than the single best label, which every output has anyway."""
    return top_k != 1 or threshold > 0.0


def top_labels(probs: np.ndarray, top_k: int = 1, threshold: float = 0.0) -> list[np.ndarray]:
    """Per row of `probs` ([rows, labels]), the indices of its `top_k` most probable labels whose
    probability is at least `threshold`, most probable first; a row may get none."""
    import numpy as np

    order = np.argsort(-probs, axis=1, kind="stable")[:, : min(top_k, probs.shape[1])]
    kept = np.take_along_axis(probs, order, axis=1) >= threshold
    return [row[keep] for row, keep in zip(order, kept)]
