"""Score a bundle on labeled Parquet data: accuracy, macro P/R/F1, per class, confusion matrix; for a
multi-label model, micro and macro P/R/F1 and a per-label table at the thresholds in the bundle."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from textclf.errors import DataError
from textclf.evaluation.metrics import confusion_matrix, metrics_from_confusion
from textclf.evaluation.multilabel import multi_hot, multilabel_metrics
from textclf.inference.predictor import Predictor
from textclf.training.data import parquet_dataset


def evaluate(
    model_dir: str, data_path: str, text_column: str = "text", label_column: str = "label", precision: str = "auto"
) -> dict:
    predictor = Predictor(model_dir, precision=precision)
    table = parquet_dataset(data_path, [text_column, label_column], "evaluation").to_table(
        columns=[text_column, label_column]
    )
    table = table.filter(pc.and_(pc.is_valid(table[text_column]), pc.is_valid(table[label_column])))
    if table.num_rows == 0:
        raise DataError(f"evaluation data {data_path} has no rows with both a text and a label")
    listed = pa.types.is_list(table[label_column].type) or pa.types.is_large_list(table[label_column].type)
    if listed != predictor.multi_label:
        kinds = ("one label per text", "lists of labels")
        raise DataError(f"the model is for {kinds[predictor.multi_label]} but {data_path} has {kinds[listed]}")
    index = {name: i for i, name in enumerate(predictor.labels)}
    gold = table[label_column].cast(pa.list_(pa.string()) if listed else pa.string()).to_pylist()
    unknown = sorted({g for row in gold for g in (row if listed else [row])} - set(index))
    if unknown:
        raise DataError(f"evaluation data has label(s) the model does not know: {', '.join(unknown[:5])}")
    probs = predictor.predict_proba(table[text_column].cast("string").to_pylist())
    if listed:
        targets = multi_hot([[index[g] for g in row] for row in gold], len(predictor.labels))
        chosen = probs >= np.asarray(predictor.thresholds, np.float32)[None, :]
        counts = np.stack(
            [(chosen & targets).sum(axis=0), (chosen & ~targets).sum(axis=0), (~chosen & targets).sum(axis=0)], axis=1
        )
        exact = int((chosen == targets).all(axis=1).sum())
        return multilabel_metrics(counts, predictor.labels, exact, len(gold))
    y_true = np.fromiter((index[g] for g in gold), dtype=np.int64, count=len(gold))
    confusion = confusion_matrix(y_true, probs.argmax(axis=1), len(predictor.labels))
    return metrics_from_confusion(confusion, predictor.labels)
