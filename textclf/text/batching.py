"""Length-bucketed batching under a token budget (no Ray: used by training and labeling alike).

Rows are sorted by length inside a window of consecutive rows, then cut into batches whose padded
size (rows x longest row) stays under `batch_tokens`, so each batch pads only to its own longest
row. Each batch is an array of the rows' original positions, so results can be put back in order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from textclf.errors import ConfigError
from textclf.text.vocab import PAD_ID


@dataclass(frozen=True)
class BatchingConfig:
    """batch_tokens: cap on rows x longest row per batch (a single longer row still gets a batch).
    max_rows: cap on rows per batch, so batches of very short rows stay a sane size.
    window_rows: rows sorted together; larger pads less, smaller keeps memory and order local.
    """

    batch_tokens: int = 4096
    max_rows: int = 256
    window_rows: int = 16_384

    def __post_init__(self) -> None:
        for name in ("batch_tokens", "max_rows", "window_rows"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}")


def bucket_batches(
    lengths: Sequence[int] | np.ndarray,
    config: BatchingConfig = BatchingConfig(),
    rng: np.random.Generator | None = None,
) -> Iterator[np.ndarray]:
    """Yield arrays of row positions, one per batch; with `rng`, batch order inside each window is
    shuffled (training), otherwise batches come shortest first per window (inference)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    for start in range(0, len(lengths), config.window_rows):
        window = np.arange(start, min(start + config.window_rows, len(lengths)))
        order = window[np.argsort(lengths[window], kind="stable")]
        batches = list(_cut(order, lengths, config))
        if rng is not None:
            rng.shuffle(batches)
        yield from batches


def _cut(order: np.ndarray, lengths: np.ndarray, config: BatchingConfig) -> Iterator[np.ndarray]:
    # Rows come sorted ascending, so the row being added is always the batch's longest.
    begin = 0
    for i in range(len(order)):
        rows = i - begin + 1
        if rows > 1 and (rows > config.max_rows or rows * lengths[order[i]] > config.batch_tokens):
            yield order[begin:i]
            begin = i
    if begin < len(order):
        yield order[begin:]


def pad_batch(sequences: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stack int32 id arrays into an int64 [rows, longest] matrix padded with PAD_ID, plus lengths."""
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    ids = np.full((len(sequences), int(lengths.max(initial=1))), PAD_ID, dtype=np.int64)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = seq
    return ids, lengths


@dataclass
class PaddingStats:
    """Real tokens / padded tokens over many batches (1.0 means no padding at all)."""

    real_tokens: int = 0
    padded_tokens: int = 0

    def add(self, lengths: np.ndarray) -> None:
        self.real_tokens += int(lengths.sum())
        self.padded_tokens += int(lengths.max(initial=0)) * len(lengths)

    @property
    def efficiency(self) -> float:
        return self.real_tokens / self.padded_tokens if self.padded_tokens else 1.0
