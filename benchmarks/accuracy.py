"""Accuracy on the built-in corpora: every architecture trained with `textclf train` (Ray Train, default
options) against TF-IDF (1-2 grams) + logistic regression and fastText supervised (word bigrams), both
fitted on the same train split with their settings picked on the validation split, all in one run.

    python benchmarks/accuracy.py [--corpora rotten-tomatoes,fortunes,20newsgroups] [--archs bow,cnn,mlp,bilstm]
                                  [--workers 2] [--no-fasttext] [--use-gpu]
    python benchmarks/accuracy.py --archs ""     # the baselines only

Prints one markdown table: test accuracy, macro-F1, macro-F1 as a share of TF-IDF+LR's, training time
(driver wall time, Ray start-up excluded; for the baselines, the whole validation grid) and best epoch.
Rows appear in runs/bench/accuracy.jsonl as they finish, so a long run can be read before it ends.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from functools import partial
from pathlib import Path

import pyarrow.parquet as pq
from harness import WORK, emit, prepared_data, table

CORPORA = ("rotten-tomatoes", "fortunes", "20newsgroups")


def _splits(data: Path):
    return (pq.read_table(data / s).to_pandas() for s in ("train", "validation", "test"))


def _scores(truth, predicted) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": accuracy_score(truth, predicted), "macro_f1": f1_score(truth, predicted, average="macro")}


def tfidf_logreg(data: Path) -> dict:
    """The classic baseline, its C picked on the validation split's macro-F1 (as a practitioner would).
    Terms in a single document are left out (min_df=2): the fit is several times quicker on many classes."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    train, val, test = _splits(data)
    started = time.monotonic()
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    x_train, x_val = vectorizer.fit_transform(train.text), vectorizer.transform(val.text)
    fits = {c: LogisticRegression(C=c, max_iter=3000).fit(x_train, train.label) for c in (1, 4, 16, 64)}
    best_c = max(fits, key=lambda c: _scores(val.label, fits[c].predict(x_val))["macro_f1"])
    elapsed = time.monotonic() - started
    return {
        "model": f"TF-IDF 1-2 grams + LR (C={best_c})",
        "train_s": elapsed,
        **_scores(test.label, fits[best_c].predict(vectorizer.transform(test.text))),
    }


def fasttext_supervised(data: Path) -> dict:
    """fastText with word bigrams, its epochs and learning rate picked on the validation split.
    Texts get fastText's usual preprocessing: lowercased, punctuation split off (the seed's regex)."""
    import fasttext

    train, val, test = _splits(data)
    best = (-1.0, None, None)  # (validation macro-F1, (epoch, lr), model); one model kept: each is ~800 MB
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
        f.writelines(f"__label__{y} {x}\n" for x, y in zip(_fasttext_lines(train.text), train.label))
        f.flush()
        started = time.monotonic()
        for epoch in (5, 10, 25):
            for lr in (0.1, 0.25, 0.5, 1.0):
                # thread=1 makes fastText deterministic for a given seed
                model = fasttext.train_supervised(f.name, wordNgrams=2, epoch=epoch, lr=lr, thread=1, seed=0, verbose=0)
                score = _scores(val.label, _fasttext_predict(model, val.text))["macro_f1"]
                if score > best[0]:
                    best = (score, (epoch, lr), model)
        elapsed = time.monotonic() - started
    _, (epoch, lr), model = best
    return {
        "model": f"fastText bigrams (epoch={epoch}, lr={lr})",
        "train_s": elapsed,
        **_scores(test.label, _fasttext_predict(model, test.text)),
    }


def _fasttext_lines(texts) -> list[str]:
    from seed_style import tokenize

    return [" ".join(tokenize(t)) for t in texts]


def _fasttext_predict(model, texts) -> list[str]:
    # model.predict breaks under numpy 2 (np.array(copy=False)); the C++ binding's predict does not
    return [
        model.f.predict(line + "\n", 1, 0.0, "strict")[0][1].removeprefix("__label__")
        for line in _fasttext_lines(texts)
    ]


def textclf_row(data: Path, arch: str, workers: int, work: Path, use_gpu: bool = False) -> dict:
    from textclf.evaluation.evaluate import evaluate
    from textclf.training.config import TrainConfig
    from textclf.training.driver import train

    out = work / f"{data.name}-{arch}"
    config = TrainConfig(arch=arch, workers=workers, use_gpu=use_gpu)
    summary = train(config, str(data / "train"), str(data / "validation"), out)
    metrics = evaluate(str(out), str(data / "test"))
    return {
        "model": f"textclf {arch}",
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "train_s": summary["training_time_s"],
        "best_epoch": summary["best_epoch"],
        "warning": summary["warning"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", default=",".join(CORPORA))
    parser.add_argument("--archs", default="bow,cnn,mlp,bilstm", help='comma-separated; "" for the baselines only')
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-fasttext", action="store_true", help="leave the fastText baseline out")
    parser.add_argument("--use-gpu", action="store_true", help="train on one GPU per worker (scoring too)")
    args = parser.parse_args()

    from textclf.runtime.ray_session import ray_session

    work, log = WORK / "accuracy", WORK / "accuracy.jsonl"
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    with ray_session():
        for corpus in [c for c in args.corpora.split(",") if c]:
            data = prepared_data(WORK, corpus)
            runs = [partial(tfidf_logreg, data)] + ([] if args.no_fasttext else [partial(fasttext_supervised, data)])
            archs = [arch for arch in args.archs.split(",") if arch]
            runs += [partial(textclf_row, data, arch, args.workers, work, args.use_gpu) for arch in archs]
            reference = None
            for run in runs:
                row = {"corpus": corpus, **run()}
                reference = reference or row["macro_f1"]  # TF-IDF + LR runs first
                row["vs_lr"] = row["macro_f1"] / reference
                rows.append(row)
                with log.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)
    cells = [
        [
            r["corpus"],
            r["model"],
            f"{r['accuracy']:.4f}",
            f"{r['macro_f1']:.4f}",
            f"{r['vs_lr']:.3f}",
            f"{r['train_s']:.1f}",
            r.get("best_epoch", ""),
        ]
        for r in rows
    ]
    headers = [
        "corpus",
        "model",
        "test accuracy",
        "macro-F1",
        "macro-F1 / TF-IDF+LR's",
        "training time (s)",
        "best epoch",
    ]
    sizes = {
        c: {
            s: pq.read_metadata(next((prepared_data(WORK, c) / s).glob("*.parquet"))).num_rows
            for s in ("train", "validation", "test")
        }
        for c in dict.fromkeys(r["corpus"] for r in rows)
    }
    notes = [
        f"{c}: {n['train']:,} / {n['validation']:,} / {n['test']:,} train / validation / test rows"
        for c, n in sizes.items()
    ]
    warned = [f"{r['corpus']} {r['model']}: {r['warning']}" for r in rows if r.get("warning")]
    emit(
        "accuracy",
        "Accuracy on the built-in corpora (test splits)",
        table(headers, cells),
        notes
        + [f"textclf trained with --workers {args.workers}, every other option at its default."]
        + [f"warning: {w}" for w in warned],
    )


if __name__ == "__main__":
    main()
