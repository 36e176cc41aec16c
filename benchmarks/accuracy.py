"""Accuracy on `rotten-tomatoes`: every architecture trained with `textclf train` (Ray Train) against
TF-IDF (1-2 grams) + logistic regression on the same train split, all in one run.

    python benchmarks/accuracy.py [--workers 2] [--archs bilstm,cnn,bow,mlp] [--data DIR]

Prints a markdown table: test accuracy, macro-F1, training time (driver wall time, Ray start-up
excluded), best epoch, and padding efficiency of the training batches.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq


def tfidf_logreg(data: Path) -> dict:
    """The classic baseline, its C picked on the validation split (as a practitioner would)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    train, val, test = (pq.read_table(data / s).to_pandas() for s in ("train", "validation", "test"))
    started = time.monotonic()
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    x_train = vectorizer.fit_transform(train.text)
    fits = {c: LogisticRegression(C=c, max_iter=5000).fit(x_train, train.label) for c in (0.25, 1, 4, 16)}
    best_c = max(fits, key=lambda c: accuracy_score(val.label, fits[c].predict(vectorizer.transform(val.text))))
    elapsed = time.monotonic() - started
    predicted = fits[best_c].predict(vectorizer.transform(test.text))
    return {"model": f"TF-IDF 1-2 grams + LR (C={best_c})", "accuracy": accuracy_score(test.label, predicted),
            "macro_f1": f1_score(test.label, predicted, average="macro"), "train_s": elapsed}


def file_order_padding(data: Path, rows_per_batch: int = 64) -> float:
    """Padding efficiency of the seed's batching: fixed-size batches in file order."""
    from textclf.tokenizer import Tokenizer

    texts = pq.read_table(data / "train").column("text").to_pylist()
    lengths = np.array([max(1, min(len(t), 256)) for t in Tokenizer().tokenize_batch(texts)])
    real = padded = 0
    for start in range(0, len(lengths), rows_per_batch):
        batch = lengths[start:start + rows_per_batch]
        real, padded = real + batch.sum(), padded + batch.max() * len(batch)
    return real / padded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--archs", default="bilstm,cnn,bow,mlp")
    parser.add_argument("--data", default=None, help="prepared rotten-tomatoes folder (default: prepare one)")
    args = parser.parse_args()

    from textclf.config import TrainConfig
    from textclf.datasets import DataConfig, prepare
    from textclf.evaluate import evaluate
    from textclf.raysession import ray_session
    from textclf.train import train

    work = Path(tempfile.mkdtemp(prefix="textclf-bench-"))
    data = Path(args.data) if args.data else work / "rotten-tomatoes"
    if not args.data:
        prepare("rotten-tomatoes", data, DataConfig())
    rows = [tfidf_logreg(data)]
    with ray_session():
        for arch in args.archs.split(","):
            summary = train(TrainConfig(arch=arch, workers=args.workers), str(data / "train"),
                            str(data / "validation"), work / arch)
            metrics = evaluate(str(work / arch), str(data / "test"))
            rows.append({"model": f"textclf {arch} ({args.workers} workers)", "accuracy": metrics["accuracy"],
                         "macro_f1": metrics["macro_f1"], "train_s": summary["training_time_s"],
                         "best_epoch": summary["best_epoch"], "padding": summary["padding_efficiency"]})
    print(f"\nrotten-tomatoes test split ({pq.read_metadata(next((data / 'test').glob('*.parquet'))).num_rows} rows)\n")
    print("| model | test accuracy | macro-F1 | training time (s) | best epoch | padding efficiency |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | {r['train_s']:.1f} | "
              f"{r.get('best_epoch', '')} | {r['padding']:.3f} |" if "padding" in r else
              f"| {r['model']} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | {r['train_s']:.1f} | | |")
    print(f"\nseed-style batches (64 rows in file order): padding efficiency {file_order_padding(data):.3f}")


if __name__ == "__main__":
    main()
