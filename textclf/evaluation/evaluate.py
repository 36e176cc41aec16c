"""Score a bundle on labeled Parquet data: accuracy, macro P/R/F1, per class, confusion matrix."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc

from textclf.errors import DataError
from textclf.evaluation.metrics import confusion_matrix, metrics_from_confusion
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
    index = {name: i for i, name in enumerate(predictor.labels)}
    gold = table[label_column].cast("string").to_pylist()
    unknown = sorted(set(gold) - set(index))
    if unknown:
        raise DataError(f"evaluation data has label(s) the model does not know: {', '.join(unknown[:5])}")
    probs = predictor.predict_proba(table[text_column].cast("string").to_pylist())
    y_true = np.fromiter((index[g] for g in gold), dtype=np.int64, count=len(gold))
    confusion = confusion_matrix(y_true, probs.argmax(axis=1), len(predictor.labels))
    return metrics_from_confusion(confusion, predictor.labels)
