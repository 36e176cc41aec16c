"""Labeling one Arrow batch, in two steps:

- `encode_texts`: text -> token ids with the bundle's tokenizer and vocabulary, or an `error` saying
  why the row cannot be labeled (null, empty, whitespace-only, wrong type, bad UTF-8). CPU tasks run it
  ahead of GPU actors; CPU actors run it themselves (`text_column`);
- `BatchLabeler` (inference actors, GPU or CPU): loads the bundle once, then turns ids into `label`,
  `confidence` (+ `labels` / `confidences`, + `probs` / `scores`) with length-bucketed, padded batches.
  A multi-label model's `label` is its most probable label and `labels` every label it chose.

Every input row comes out, in order, so no row is ever dropped.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from textclf.bundle import read_bundle_meta, read_bundle_tokenizer
from textclf.errors import DataError
from textclf.inference.selection import selects, top_labels
from textclf.runtime.faults import fire_limited
from textclf.text.batching import PaddingStats
from textclf.text.encoding import list_arrays, text_encoder
from textclf.text.tokenizer import TokenizerConfig
from textclf.text.vocab import Vocab

PROBS_LABELS_KEY = b"textclf.probs_labels"  # schema metadata: label names in `probs` order
# per-call figures, carried on the call's first row (null or 0 on the others): padded and real tokens,
# rows, and the node that labeled them
STATS = ("_real_tokens", "_padded_tokens", "_rows", "_node")


@functools.lru_cache(maxsize=2)
def bundle_encoder(model_dir: str):
    meta = read_bundle_meta(model_dir, verify_weights=False)  # encoding needs the JSON, not the weights
    tokenizer = read_bundle_tokenizer(model_dir, meta)
    vocab = Vocab(meta["vocab"]) if isinstance(tokenizer, TokenizerConfig) else None
    return text_encoder(tokenizer, vocab, int(meta["max_tokens"]))


def check_texts(batch: pa.Table, text_column: str) -> pa.Table:
    """Replace the text column with a string one (null where unreadable) and add `error` saying why.
    Done where a file is read, so batches merged from files of different text types share a schema."""
    if text_column not in batch.column_names:
        raise DataError(f"input has no column {text_column!r} (columns: {', '.join(batch.column_names)})")
    texts, errors = readable_texts(batch.column(text_column))
    index = batch.column_names.index(text_column)
    return batch.set_column(index, text_column, pa.array(texts, pa.string())).append_column(
        "error", pa.array(errors, pa.string())
    )


def encode_texts(batch: pa.Table, model_dir: str, text_column: str = "text") -> pa.Table:
    """Replace the text column with `_ids` (list<int32>) and `error` (null when encodable)."""
    if "error" not in batch.column_names:  # not checked where it was read
        batch = check_texts(batch, text_column)
    ok = batch.column("error").is_null()
    texts = batch.column(text_column).filter(ok).to_pylist()
    text_lengths, ids = bundle_encoder(model_dir).encode_batch(texts)
    lengths = np.zeros(batch.num_rows, np.int64)  # rows with an error get no ids
    lengths[ok.to_numpy(zero_copy_only=False)] = text_lengths
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    column = pa.ListArray.from_arrays(pa.array(offsets), pa.array(ids, pa.int32()))
    return batch.set_column(batch.column_names.index(text_column), "_ids", column)


class BatchLabeler:
    """Callable for Ray Data's actor pool: `_ids` + `error` (or `text_column`, encoded here) -> id, label,
    confidence, error (+ probs, + kept columns, + the batch's padding figures in `_real_tokens` /
    `_padded_tokens`)."""

    def __init__(
        self,
        model_dir: str,
        keep_columns: Sequence[str] = (),
        probabilities: bool = False,
        top_k: int | None = None,
        threshold: float | None = None,
        device: str | None = None,
        batch_tokens: int | None = None,
        precision: str = "auto",
        text_column: str | None = None,
        actors_per_node: int | None = None,
    ) -> None:
        import torch  # here, not at the top: the driver imports this module and never needs torch

        from textclf.inference.predictor import Predictor

        if actors_per_node:  # CPU: this actor's share of the node's cores (Ray would give it one thread)
            torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // actors_per_node))
        self.model_dir, self.text_column = model_dir, text_column
        self.predictor = Predictor(model_dir, device=device, batch_tokens=batch_tokens, precision=precision)
        self.keep_columns = list(keep_columns)
        self.node = _node_id()
        self.probabilities = probabilities
        self.top_k, self.threshold = top_k, threshold

    @property
    def labels(self) -> list[str]:
        return self.predictor.labels

    def output_schema(self, batch_schema: pa.Schema) -> pa.Schema:
        kept = [batch_schema.field(name) for name in self.keep_columns]
        stats = [pa.field(n, pa.int64()) for n in STATS[:-1]] + [pa.field("_node", pa.string())]
        chosen = selects(self.top_k, self.threshold, self.predictor.multi_label)
        return output_schema(self.labels, self.probabilities, kept + stats, chosen)

    def __call__(self, batch: pa.Table) -> pa.Table:
        if fire_limited("actor_crash"):
            os._exit(1)  # as a segfault or an OOM kill would: Ray restarts the actor and retries the batch
        if fire_limited("actor_hang"):
            time.sleep(24 * 3600)
        if self.text_column:
            batch = encode_texts(batch, self.model_dir, self.text_column)
        errors = batch.column("error").to_pylist()
        ok = np.array([e is None for e in errors], dtype=bool)
        sequences = list_arrays(batch.column("_ids"))
        probs = np.zeros((batch.num_rows, len(self.labels)), dtype=np.float32)
        self.predictor.padding = padding = PaddingStats()
        if ok.any():
            probs[ok] = self.predictor.predict_encoded([s for s, good in zip(sequences, ok) if good])
        best = probs.argmax(axis=1)
        names = np.array(self.labels, dtype=object)[best]
        columns = {
            "id": batch.column("id").cast(pa.string()),
            "label": pa.array(np.where(ok, names, None).tolist(), pa.string()),
            "confidence": pa.array(probs[np.arange(len(best)), best], pa.float32(), mask=~ok),
            "error": batch.column("error"),
        }
        if selects(self.top_k, self.threshold, self.predictor.multi_label):
            columns["labels"], columns["confidences"] = chosen_columns(
                probs, ok, self.labels, self.top_k, self.threshold, self.predictor.thresholds
            )
        if self.probabilities:
            columns["probs"], columns["scores"] = score_columns(probs, ok, self.labels)
        for name in self.keep_columns:
            columns[name] = batch.column(name)
        for name, value in zip(STATS, (padding.real_tokens, padding.padded_tokens, batch.num_rows)):
            columns[name] = pa.array([value] + [0] * (batch.num_rows - 1), pa.int64())
        columns["_node"] = pa.array([self.node] + [None] * (batch.num_rows - 1), pa.string())
        return pa.Table.from_pydict(columns, schema=self.output_schema(batch.schema))


def chosen_columns(
    probs: np.ndarray,
    ok: np.ndarray,
    labels: Sequence[str],
    top_k: int | None,
    threshold: float | None,
    thresholds: Sequence[float] | None = None,
):
    """`labels` (list<string>) and `confidences` (list<float32>): each row's chosen labels, most probable
    first (see top_labels); null where the row has an error."""
    chosen = top_labels(probs, top_k, threshold, thresholds)
    counts = [len(c) for c in chosen]
    offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
    flat = np.concatenate(chosen) if chosen else np.zeros(0, np.int64)
    scores = probs[np.repeat(np.arange(len(chosen)), counts), flat]
    mask = pa.array(~ok)
    return (
        pa.ListArray.from_arrays(offsets, pa.array(labels).take(flat), mask=mask),
        pa.ListArray.from_arrays(offsets, pa.array(scores, pa.float32()), mask=mask),
    )


def score_columns(probs: np.ndarray, ok: np.ndarray, labels: Sequence[str]):
    """`probs` (list<float32>, label order in the schema metadata) and `scores` (a struct with one float32
    field per label name, which any reader shows by name); null where the row has an error."""
    mask = pa.array(~ok)
    offsets = pa.array(np.arange(0, probs.size + 1, len(labels), dtype=np.int32))
    listed = pa.ListArray.from_arrays(offsets, pa.array(probs.ravel(), pa.float32()), mask=mask)
    fields = [pa.field(name, pa.float32()) for name in labels]
    named = pa.StructArray.from_arrays(
        [pa.array(probs[:, i], pa.float32()) for i in range(len(labels))], fields=fields, mask=mask
    )
    return listed, named


def _node_id() -> str | None:
    ray = sys.modules.get("ray")  # the labeler also runs without Ray (in-process), which it must not import
    return ray.get_runtime_context().get_node_id() if ray is not None and ray.is_initialized() else None


def output_schema(
    labels: Sequence[str], probabilities: bool, extra: Sequence[pa.Field] = (), selection: bool = False
) -> pa.Schema:
    """id, label, confidence, error (+ labels, confidences) (+ probs, label names in the metadata, and
    scores, a struct of one field per label) + extra fields."""
    fields = [
        pa.field("id", pa.string()),
        pa.field("label", pa.string()),
        pa.field("confidence", pa.float32()),
        pa.field("error", pa.string()),
    ]
    if selection:
        fields += [pa.field("labels", pa.list_(pa.string())), pa.field("confidences", pa.list_(pa.float32()))]
    if probabilities:
        fields.append(pa.field("probs", pa.list_(pa.float32())))
        fields.append(pa.field("scores", pa.struct([pa.field(name, pa.float32()) for name in labels])))
    metadata = {PROBS_LABELS_KEY: "\t".join(labels).encode()} if probabilities else None
    return pa.schema(fields + list(extra), metadata=metadata)


def readable_texts(column: pa.ChunkedArray | pa.Array) -> tuple[list[str | None], list[str | None]]:
    """(texts, errors): each row has a text or an error saying why it cannot be labeled."""
    kind = column.type
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        values = [_decode(v) for v in column.to_pylist()]
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
        values = [(v, None) for v in column.to_pylist()]
    else:
        return [None] * len(column), [f"text is of type {kind}, not string"] * len(column)
    texts, errors = [], []
    for text, error in values:
        if error is None and text is None:
            error = "null text"
        elif error is None and not text.strip():
            error = "empty text" if text == "" else "whitespace-only text"
        texts.append(text if error is None else None)
        errors.append(error)
    return texts, errors


def _decode(value: bytes | None) -> tuple[str | None, str | None]:
    if value is None:
        return None, None
    try:
        return value.decode("utf-8"), None
    except UnicodeDecodeError as e:
        return None, f"text is not valid UTF-8 (byte {e.start})"


def probs_labels(schema: pa.Schema) -> list[str]:
    """Label names of a labeled file's `probs` column, from its schema metadata."""
    return (schema.metadata or {}).get(PROBS_LABELS_KEY, b"").decode().split("\t")
