"""Arrow-table transforms between raw text and model input (Ray-free; Ray Data maps them).

Token lists and id arrays travel as Arrow list columns; converting through offsets keeps the
per-row cost to a numpy slice instead of Python lists.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from itertools import chain, repeat

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from textclf.text.tokenizer import CHUNK_CACHE_SIZE, Tokenizer, TokenizerConfig
from textclf.text.vocab import UNK_ID, Vocab, count_tokens
from textclf.text.wordpiece import WordPieceTokenizer, cached_wordpiece_encoder


def list_arrays(column: pa.ChunkedArray | pa.Array) -> list[np.ndarray]:
    """An Arrow list<int> column as one numpy array per row (views into one buffer)."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    # offsets index into the whole child array, so sliced arrays need no copy
    offsets = arr.offsets.to_numpy()
    values = arr.values.to_numpy(zero_copy_only=False)
    return [values[offsets[i] : offsets[i + 1]] for i in range(len(arr))]


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
    labels = label_names(pc.filter(label, keep))
    tokens = cached_tokenizer(TokenizerConfig(**tokenizer)).tokenize_batch(texts)
    return pa.table({"tokens": pa.array(tokens, type=pa.list_(pa.string())), "label": labels})


def label_names(column):
    """A label column as strings, or as lists of strings where each text has a list (multi-label)."""
    values = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_list(values.type) or pa.types.is_large_list(values.type):
        return values.cast(pa.list_(pa.string()))
    return values.cast(pa.string())


def label_indices(column, labels: list[str]) -> pa.Array:
    """Label names -> their indices in `labels`: int32, or list<int32> for a multi-label column."""
    values = label_names(column)
    index = pa.array(labels, pa.string())
    if pa.types.is_list(values.type):
        flat = pc.index_in(values.flatten(), value_set=index).cast(pa.int32())
        offsets = pc.subtract(values.offsets, values.offsets[0])  # a slice's offsets start past 0
        return pa.ListArray.from_arrays(offsets, flat)
    return pc.index_in(values, value_set=index).cast(pa.int32())


def count_table(table: pa.Table) -> Counter:
    return count_tokens(table.column("tokens").to_pylist())


def encode_table(table: pa.Table, vocab: Vocab, labels: list[str], max_tokens: int) -> pa.Table:
    """`tokens` + `label` -> `ids` (list<int32>, truncated to max_tokens) + `label` (label_indices)."""
    sequences = vocab.encode_batch(table.column("tokens").to_pylist(), max_tokens)
    return pa.table({"ids": ids_column(sequences), "label": label_indices(table.column("label"), labels)})


class TextEncoder:
    """Texts -> token ids, the same as `vocab.encode(tokenizer(text), max_tokens)` for each text, for a
    whole batch at once. Each whitespace-separated chunk's ids are remembered in flat tables, so a batch
    costs one dictionary lookup per chunk and numpy gathers: per token in Python, tokenizing and then
    encoding took twice as long as all the rest of a `bow` labeling call."""

    def __init__(self, tokenizer: Tokenizer, vocab: Vocab, max_tokens: int) -> None:
        self.tokenizer, self.vocab, self.max_tokens = tokenizer, vocab, max_tokens
        self._forget()

    def _forget(self) -> None:
        self._row: dict[str, int] = {}  # chunk -> its row in the tables
        self._ids = np.zeros(0, np.int32)  # every known chunk's ids, one after another
        self._start = np.zeros(0, np.int64)
        self._length = np.zeros(0, np.int64)
        self._heads: list[int] = []  # Chunk.heads / Chunk.tails, and where they are non-zero
        self._tails: list[int] = []
        self._has_head = np.zeros(0, bool)
        self._has_tail = np.zeros(0, bool)

    def encode_batch(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(int64 length of each text's ids, int32 ids of all texts one after another)."""
        split = self.tokenizer.split_batch(texts)
        flat = list(chain.from_iterable(split))
        rows = self._rows(flat)
        chunk_offsets = _offsets(np.fromiter(map(len, split), np.int64, len(split)))
        lengths = self._length[rows]
        token_offsets = _offsets(lengths)
        ids = self._ids[_spans(self._start[rows], lengths, token_offsets)]
        text_lengths = token_offsets[chunk_offsets[1:]] - token_offsets[chunk_offsets[:-1]]
        redo = self._across_whitespace(rows, chunk_offsets)
        redo.update(np.flatnonzero(text_lengths == 0).tolist())  # no tokens: one <unk>, as Vocab.encode
        if redo:
            text_lengths, ids = self._replace(redo, texts, text_lengths, ids)
        if len(texts) and text_lengths.max() > self.max_tokens:
            starts = np.repeat(_offsets(text_lengths)[:-1], text_lengths)
            ids = ids[np.arange(len(ids)) - starts < self.max_tokens]
            text_lengths = np.minimum(text_lengths, self.max_tokens)
        return text_lengths, ids

    def _rows(self, flat: list[str]) -> np.ndarray:
        rows = np.fromiter(map(self._row.get, flat, repeat(-1)), np.int64, len(flat))
        missing = np.flatnonzero(rows < 0)
        if len(missing):
            new = list(dict.fromkeys(flat[i] for i in missing.tolist()))
            if len(self._row) + len(new) > CHUNK_CACHE_SIZE:  # bounded, as the tokenizer's memory
                self._forget()
                new = list(dict.fromkeys(flat))
                missing = np.arange(len(flat))
            self._learn(new)
            rows[missing] = [self._row[flat[i]] for i in missing.tolist()]
        return rows

    def _learn(self, new: list[str]) -> None:
        get = self.vocab.stoi.get
        known = self.tokenizer.chunks(new)
        ids = [np.fromiter((get(t, UNK_ID) for t in chunk.tokens), np.int32, len(chunk.tokens)) for chunk in known]
        length = np.fromiter(map(len, ids), np.int64, len(ids))
        self._row.update(zip(new, range(len(self._row), len(self._row) + len(new))))
        self._start = np.concatenate([self._start, len(self._ids) + _offsets(length)[:-1]])
        self._length = np.concatenate([self._length, length])
        self._ids = np.concatenate([self._ids, *ids])
        self._heads += [chunk.heads for chunk in known]
        self._tails += [chunk.tails for chunk in known]
        self._has_head = np.concatenate([self._has_head, np.array(self._heads[-len(new) :], bool)])
        self._has_tail = np.concatenate([self._has_tail, np.array(self._tails[-len(new) :], bool)])

    def _across_whitespace(self, rows: np.ndarray, chunk_offsets: np.ndarray) -> set[int]:
        """Texts in which two neighbouring chunks may meet in a special case: spaCy tokenizes them whole."""
        maybe = self._has_tail[rows[:-1]] & self._has_head[rows[1:]]
        last = chunk_offsets[1:-1] - 1  # a text's last chunk and the next text's first are not neighbours
        maybe[last[(last >= 0) & (last < len(maybe))]] = False
        texts = set()
        for i in np.flatnonzero(maybe).tolist():
            if self._tails[rows[i]] & self._heads[rows[i + 1]]:
                texts.add(int(np.searchsorted(chunk_offsets, i, side="right")) - 1)
        return texts

    def _replace(
        self, redo: set[int], texts: Sequence[str], text_lengths: np.ndarray, ids: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Encode the texts in `redo` apart, as Vocab.encode would (untruncated; the caller truncates)."""
        offsets, get = _offsets(text_lengths), self.vocab.stoi.get
        pieces, after = [], 0  # the ids between the texts redone, and theirs
        for i in sorted(redo):
            tokens = self.tokenizer.tokenize_whole(texts[i])
            pieces += [
                ids[offsets[after] : offsets[i]],
                np.array([get(t, UNK_ID) for t in tokens] or [UNK_ID], np.int32),
            ]
            text_lengths[i], after = len(pieces[-1]), i + 1
        return text_lengths, np.concatenate([*pieces, ids[offsets[after] :]])


def _offsets(lengths: np.ndarray) -> np.ndarray:
    """[0, cumulative lengths...]: where each piece starts, and the total at the end."""
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def _spans(starts: np.ndarray, lengths: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Indices of the spans [start, start + length), one after another."""
    return np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])


def text_encoder(tokenizer: TokenizerConfig | WordPieceTokenizer, vocab: Vocab | None, max_tokens: int):
    """The encoder a bundle's texts go through: spaCy tokens and the bundle's vocabulary, or the word
    pieces of a pretrained encoder's tokenizer.json. Either has `encode_batch(texts) -> (lengths, ids)`."""
    if isinstance(tokenizer, WordPieceTokenizer):
        return cached_wordpiece_encoder(tokenizer, max_tokens)
    return TextEncoder(cached_tokenizer(tokenizer), vocab, max_tokens)


def wordpiece_table(
    table: pa.Table,
    tokenizer: WordPieceTokenizer,
    labels: list[str],
    max_tokens: int,
    text_column: str,
    label_column: str,
) -> pa.Table:
    """text + label columns -> `ids` (word pieces, list<int32>) + `label` (label_indices), for training a
    pretrained encoder; rows with a null text or label are dropped, as tokenize_table drops them."""
    text, label = table.column(text_column), table.column(label_column)
    keep = pc.and_(pc.is_valid(text), pc.is_valid(label))
    texts = pc.filter(text, keep).cast(pa.string()).to_pylist()
    lengths, ids = cached_wordpiece_encoder(tokenizer, max_tokens).encode_batch(texts)
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
    label_ids = label_indices(pc.filter(label, keep), labels)
    return pa.table({"ids": pa.ListArray.from_arrays(offsets, pa.array(ids, pa.int32())), "label": label_ids})
