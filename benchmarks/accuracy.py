"""Accuracy on `rotten-tomatoes`: every architecture trained with `textclf train` (Ray Train) against
TF-IDF (1-2 grams) + logistic regression and fastText supervised (word bigrams) on the same train
split, all in one run.

    python benchmarks/accuracy.py [--workers 2] [--archs bilstm,cnn,bow,mlp] [--data DIR]
    python benchmarks/accuracy.py --archs ""     # the two baselines only

Prints a markdown table: test accuracy, macro-F1, training time (driver wall time, Ray start-up
excluded; for the baselines, the whole validation grid), best epoch, and padding efficiency of the
training batches.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from harness import WORK, emit, prepared_data, table


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


def fasttext_supervised(data: Path) -> dict:
    """fastText with word bigrams, its epochs and learning rate picked on the validation split.
    Texts get fastText's usual preprocessing: lowercased, punctuation split off (the seed's regex)."""
    import fasttext
    from sklearn.metrics import accuracy_score, f1_score

    train, val, test = (pq.read_table(data / s).to_pandas() for s in ("train", "validation", "test"))
    best = (-1.0, None, None)  # (validation accuracy, (epoch, lr), model); one model kept: each is ~800 MB
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
        f.writelines(f"__label__{y} {x}\n" for x, y in zip(_fasttext_lines(train.text), train.label))
        f.flush()
        started = time.monotonic()
        for epoch in (5, 10, 25):
            for lr in (0.1, 0.25, 0.5, 1.0):
                # thread=1 makes fastText deterministic for a given seed
                model = fasttext.train_supervised(f.name, wordNgrams=2, epoch=epoch, lr=lr, thread=1, seed=0,
                                                  verbose=0)
                score = accuracy_score(val.label, _fasttext_predict(model, val.text))
                if score > best[0]:
                    best = (score, (epoch, lr), model)
        elapsed = time.monotonic() - started
    _, (epoch, lr), model = best
    predicted = _fasttext_predict(model, test.text)
    return {"model": f"fastText bigrams (epoch={epoch}, lr={lr})", "accuracy": accuracy_score(test.label, predicted),
            "macro_f1": f1_score(test.label, predicted, average="macro"), "train_s": elapsed}


def _fasttext_lines(texts) -> list[str]:
    from seed_style import tokenize

    return [" ".join(tokenize(t)) for t in texts]


def _fasttext_predict(model, texts) -> list[str]:
    # model.predict breaks under numpy 2 (np.array(copy=False)); the C++ binding's predict does not
    return [model.f.predict(line + "\n", 1, 0.0, "strict")[0][1].removeprefix("__label__")
            for line in _fasttext_lines(texts)]


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
    parser.add_argument("--archs", default="bilstm,cnn,bow,mlp", help='comma-separated; "" for the baselines only')
    parser.add_argument("--data", default=None, help="prepared rotten-tomatoes folder (default: runs/bench/data)")
    args = parser.parse_args()

    data = Path(args.data) if args.data else prepared_data()
    rows = [tfidf_logreg(data), fasttext_supervised(data)]
    archs = [a for a in args.archs.split(",") if a]
    if archs:
        rows += textclf_rows(data, archs, args.workers)
    test_rows = pq.read_metadata(next((data / "test").glob("*.parquet"))).num_rows
    cells = [[r["model"], f"{r['accuracy']:.4f}", f"{r['macro_f1']:.4f}", f"{r['train_s']:.1f}",
              r.get("best_epoch", ""), f"{r['padding']:.3f}" if "padding" in r else ""] for r in rows]
    headers = ["model", "test accuracy", "macro-F1", "training time (s)", "best epoch", "padding efficiency"]
    emit("accuracy", f"Accuracy on rotten-tomatoes (test split, {test_rows:,} rows)", table(headers, cells),
         [f"seed-style batches (64 rows in file order): padding efficiency {file_order_padding(data):.3f}"])


def textclf_rows(data: Path, archs: list[str], workers: int) -> list[dict]:
    from textclf.config import TrainConfig
    from textclf.evaluate import evaluate
    from textclf.raysession import ray_session
    from textclf.train import train

    work = WORK / "accuracy"
    rows = []
    with ray_session():
        for arch in archs:
            summary = train(TrainConfig(arch=arch, workers=workers), str(data / "train"),
                            str(data / "validation"), work / arch)
            metrics = evaluate(str(work / arch), str(data / "test"))
            rows.append({"model": f"textclf {arch} ({workers} workers)", "accuracy": metrics["accuracy"],
                         "macro_f1": metrics["macro_f1"], "train_s": summary["training_time_s"],
                         "best_epoch": summary["best_epoch"], "padding": summary["padding_efficiency"]})
    return rows


if __name__ == "__main__":
    main()
