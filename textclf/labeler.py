"""Label one Arrow batch with a bundle: the callable that Ray Data's inference actors run.

Loads the bundle once (in `__init__`, once per actor), then `__call__(batch)` returns one output row
per input row, in order: `id`, `label`, `confidence`, `error` (+ `probs`, + kept columns). Rows that
cannot be labeled get a null label and an `error` saying why, so no input row is ever dropped.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa

from textclf.errors import DataError
from textclf.inference import Predictor

PROBS_LABELS_KEY = b"textclf.probs_labels"  # schema metadata: label names in `probs` order


class BatchLabeler:
    def __init__(self, model_dir: str, text_column: str = "text", id_column: str = "id",
                 keep_columns: Sequence[str] = (), probabilities: bool = False, device: str | None = None) -> None:
        self.predictor = Predictor(model_dir, device=device)
        self.text_column, self.id_column = text_column, id_column
        self.keep_columns = list(keep_columns)
        self.probabilities = probabilities

    @property
    def labels(self) -> list[str]:
        return self.predictor.labels

    def output_schema(self, batch_schema: pa.Schema | None = None) -> pa.Schema:
        fields = [pa.field("id", pa.string()), pa.field("label", pa.string()),
                  pa.field("confidence", pa.float32()), pa.field("error", pa.string())]
        if self.probabilities:
            fields.append(pa.field("probs", pa.list_(pa.float32())))
        if batch_schema is not None:
            fields += [batch_schema.field(name) for name in self.keep_columns]
        metadata = {PROBS_LABELS_KEY: "\t".join(self.labels).encode()} if self.probabilities else None
        return pa.schema(fields, metadata=metadata)

    def __call__(self, batch: pa.Table) -> pa.Table:
        for name in [self.text_column, self.id_column, *self.keep_columns]:
            if name not in batch.column_names:
                raise DataError(f"input has no column {name!r} (columns: {', '.join(batch.column_names)})")
        texts, errors = readable_texts(batch.column(self.text_column))
        rows = [i for i, e in enumerate(errors) if e is None]
        probs = np.zeros((batch.num_rows, len(self.labels)), dtype=np.float32)
        if rows:
            probs[rows] = self.predictor.predict_proba([texts[i] for i in rows])
        best = probs.argmax(axis=1)
        ok = np.array([e is None for e in errors], dtype=bool)
        names = np.array(self.labels, dtype=object)[best]
        columns = {
            "id": batch.column(self.id_column).cast(pa.string()),
            "label": pa.array(np.where(ok, names, None).tolist(), pa.string()),
            "confidence": pa.array(probs[np.arange(len(best)), best], pa.float32(), mask=~ok),
            "error": pa.array(errors, pa.string()),
        }
        if self.probabilities:
            flat = pa.array(probs.ravel(), pa.float32())
            offsets = pa.array(np.arange(0, probs.size + 1, len(self.labels), dtype=np.int32))
            columns["probs"] = pa.ListArray.from_arrays(offsets, flat, mask=pa.array(~ok))
        for name in self.keep_columns:
            columns[name] = batch.column(name)
        return pa.Table.from_pydict(columns, schema=self.output_schema(batch.schema))


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
