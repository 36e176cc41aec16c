"""Padding efficiency (real tokens / padded tokens) of textclf's training and labeling batches against
the seed's 64-row batches in file order, on rotten-tomatoes train and on the mixed-length corpus.

    python benchmarks/padding.py [--docs 30000]

No model runs: texts are tokenized with textclf's tokenizer and cut into batches with
textclf.text.batching exactly as the training loop and the labeling actors configure it.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import seed_style
from corpus import corpus_dir
from harness import WORK, emit, prepared_data, table

SEED_ROWS = seed_style.BATCH_ROWS


def efficiency(lengths: np.ndarray, batches: Iterable[np.ndarray]) -> float:
    from textclf.text.batching import PaddingStats

    stats = PaddingStats()
    for rows in batches:
        stats.add(lengths[rows])
    return stats.efficiency


def file_order(count: int, rows: int = SEED_ROWS) -> Iterable[np.ndarray]:
    return (np.arange(start, min(start + rows, count)) for start in range(0, count, rows))


def training_batches(lengths: np.ndarray, seed: int = 0) -> Iterable[np.ndarray]:
    """As the training loop makes them: windows of rows, shuffled, sorted by length, cut under the
    token budget (one worker's view of one epoch)."""
    from textclf.text.batching import BatchingConfig, bucket_batches
    from textclf.training.config import TrainConfig
    from textclf.training.loop import WINDOW_ROWS

    config = TrainConfig()
    batching = BatchingConfig(config.batch_tokens, config.max_batch_rows, WINDOW_ROWS)
    rng = np.random.default_rng(seed)
    for start in range(0, len(lengths), WINDOW_ROWS):
        window = np.arange(start, min(start + WINDOW_ROWS, len(lengths)))
        order = window[rng.permutation(len(window))]
        for positions in bucket_batches(lengths[order], batching, rng):
            yield order[positions]


def labeling_batches(lengths: np.ndarray) -> Iterable[np.ndarray]:
    """As the labeling actors make them: each inference call's rows sorted by length and cut under
    the inference token budget (equal calls of consecutive rows, one actor per core as local Ray runs)."""
    from textclf.inference.predictor import INFERENCE_BATCHING
    from textclf.labeling.pipeline import call_rows
    from textclf.text.batching import bucket_batches

    size = call_rows(len(lengths), os.cpu_count() or 1)
    for start in range(0, len(lengths), size):
        call = np.arange(start, min(start + size, len(lengths)))
        for positions in bucket_batches(lengths[call], INFERENCE_BATCHING):
            yield call[positions]


def token_lengths(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(textclf's, the seed's) token counts per text, both cut at textclf's max_tokens and at least 1."""
    from textclf.text.tokenizer import Tokenizer
    from textclf.training.config import TrainConfig

    cap = TrainConfig().max_tokens
    ours = np.array([len(t) for t in Tokenizer().tokenize_batch(texts)])
    seed = np.array([len(seed_style.tokenize(t)) for t in texts])
    return np.clip(ours, 1, cap), np.clip(seed, 1, cap)


def row(name: str, texts: list[str]) -> list:
    ours, seed = token_lengths(texts)
    return [
        name,
        f"{len(texts):,}",
        f"{ours.mean():.1f}",
        efficiency(ours, training_batches(ours)),
        efficiency(ours, labeling_batches(ours)),
        efficiency(ours, file_order(len(ours))),
        efficiency(seed, file_order(len(seed))),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=30_000, help="documents in the mixed-length corpus")
    parser.add_argument("--work", type=Path, default=WORK, help="cache folder (default runs/bench)")
    args = parser.parse_args()
    train = pq.read_table(prepared_data(args.work) / "train", columns=["text"]).column("text").to_pylist()
    corpus = pq.read_table(corpus_dir(args.work, args.docs), columns=["text"]).column("text").to_pylist()
    rows = [row("rotten-tomatoes train", train), row(f"mixed-length corpus ({args.docs:,} docs)", corpus)]
    headers = [
        "data",
        "rows",
        "mean tokens",
        "textclf training batches",
        "textclf labeling batches",
        "64 rows in file order (textclf tokens)",
        "64 rows in file order (seed regex tokens)",
    ]
    emit(
        "padding",
        "Padding efficiency: real tokens / padded tokens (target >= 0.95)",
        table(headers, rows),
        [
            "Training: one worker's epoch (windows shuffled, sorted by length, cut under the token budget). "
            "Labeling: inference calls of consecutive rows in file order; the real run's figure is in "
            "`_manifest.json` (Ray Data may form calls across chunk boundaries)."
        ],
    )


if __name__ == "__main__":
    main()
