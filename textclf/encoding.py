"""Arrow-table transforms between raw text and model input (Ray-free; Ray Data maps them).

Token lists and id arrays travel as Arrow list columns; converting through offsets keeps the
per-row cost to a numpy slice instead of Python lists.
"""

from __future__ import annotations

import functools
from collections import Counter
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from textclf.tokenizer import Tokenizer, TokenizerConfig
from textclf.vocab import Vocab, count_tokens


def list_arrays(column: pa.ChunkedArray | pa.Array) -> list[np.ndarray]:
    """An Arrow list<int> column as one numpy array per row (views into one buffer)."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    # offsets index into the whole child array, so sliced arrays need no copy
    offsets = arr.offsets.to_numpy()
    values = arr.values.to_numpy(zero_copy_only=False)
    return [values[offsets[i]:offsets[i + 1]] for i in range(len(arr))]


def ids_column(sequences: Sequence[np.ndarray]) -> pa.ListArray:
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int32, count=len(sequences))
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int32)
    values = np.concatenate(sequences).astype(np.int32) if sequences else np.zeros(0, np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))


@functools.lru_cache(maxsize=4)
def cached_tokenizer(config: TokenizerConfig) -> Tokenizer:
    """One spaCy tokenizer per process: Ray reuses worker processes across tasks."""
    return Tokenizer(config)


def tokenize_table(table: pa.Table, tokenizer: dict, text_column: str, label_column: str) -> pa.Table:
    """text + label columns -> `tokens` (list<string>) + `label`; rows with a null text or label
    are dropped (the caller counts them from the row totals)."""
    text, label = table.column(text_column), table.column(label_column)
    keep = pc.and_(pc.is_valid(text), pc.is_valid(label))
    texts = pc.filter(text, keep).cast(pa.string()).to_pylist()
    labels = pc.filter(label, keep).cast(pa.string())
    tokens = cached_tokenizer(TokenizerConfig(**tokenizer)).tokenize_batch(texts)
    return pa.table({"tokens": pa.array(tokens, type=pa.list_(pa.string())), "label": labels})


def count_table(table: pa.Table) -> Counter:
    return count_tokens(table.column("tokens").to_pylist())


def encode_table(table: pa.Table, vocab: Vocab, labels: list[str], max_tokens: int) -> pa.Table:
    """`tokens` + `label` -> `ids` (list<int32>, truncated to max_tokens) + `label` (int32 index)."""
    sequences = vocab.encode_batch(table.column("tokens").to_pylist(), max_tokens)
    index = {name: i for i, name in enumerate(labels)}
    label_ids = np.fromiter((index[x] for x in table.column("label").to_pylist()), dtype=np.int32)
    return pa.table({"ids": ids_column(sequences), "label": label_ids})
