"""Training throughput in real (unpadded) tokens/s: `textclf train` with 1 and 2 Ray Train workers,
against the seed-style loop at the same model size, and against textclf's own training loop run in
one process without Ray (same model, batcher, step and worker malloc settings), which gives Ray's
overhead per step.

    python benchmarks/training.py [--arch bilstm] [--rows 10246] [--epochs 2] [--workers 1,2] [--repeats 1]

Throughput is per epoch of training steps (validation excluded), the median over epochs after the
first (the first warms up). Start-up (Ray, tokenizing, vocabulary, bundle writing) is reported apart:
the command's wall time minus its epochs. With --repeats, the no-Ray loop and 1-worker `textclf train`
run that many times, alternated, and the table gives medians.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import seed_style
from harness import TEXTCLF, WORK, emit, json_events, median, prepared_data, run_timed, table

VALIDATION_ROWS = 256  # validation runs every epoch but is not measured: keep it small


def subset(data: Path, rows: int | None, work: Path) -> tuple[Path, Path]:
    """Train and validation files of the requested size (the first rows of each split)."""
    out = work / f"train-bench-{rows or 'all'}"
    if not (out / "validation.parquet").exists():
        out.mkdir(parents=True, exist_ok=True)
        train = pq.read_table(data / "train")
        pq.write_table(train.slice(0, rows) if rows else train, out / "train.parquet")
        pq.write_table(pq.read_table(data / "validation").slice(0, VALIDATION_ROWS), out / "validation.parquet")
    return out / "train.parquet", out / "validation.parquet"


def steady(values: list[float]) -> float:
    return median(values[1:] if len(values) > 1 else values)


def run_textclf(arch: str, train: Path, validation: Path, epochs: int, workers: int, work: Path) -> dict:
    out = work / "train-bench-runs" / f"{arch}-w{workers}"
    timed = run_timed(
        [
            TEXTCLF,
            "train",
            "--train",
            str(train),
            "--validation",
            str(validation),
            "--out",
            str(out),
            "--arch",
            arch,
            "--epochs",
            str(epochs),
            "--workers",
            str(workers),
            "--patience",
            "0",
        ]
    )
    records = json_events(timed.stderr, "epoch")
    if len(records) != epochs:
        raise RuntimeError(f"expected {epochs} epoch records from textclf train, got {len(records)}")
    return {
        "tokens_per_s": steady([r["tokens_per_s"] for r in records]),
        "step_ms": steady([1000 * r["train_time_s"] / r["steps"] for r in records]),
        "startup_s": timed.wall_s - sum(r["epoch_time_s"] for r in records),
        "wall_s": timed.wall_s,
    }


def run_seed(arch: str, train: Path, epochs: int) -> dict:
    started = time.monotonic()
    *_, history = seed_style.train(arch, train, epochs)
    return {
        "tokens_per_s": steady([h["tokens_per_s"] for h in history]),
        "step_ms": steady([h["step_ms"] for h in history]),
        "startup_s": time.monotonic() - started - sum(h["train_time_s"] for h in history),
    }


def run_without_ray(arch: str, train: Path, epochs: int, threads: int) -> dict:
    """textclf's own epoch loop in a process of its own, set up as a training worker is (its malloc
    settings are read at process start): `--loop-without-ray` runs `loop_without_ray` there."""
    from textclf.training.driver import worker_malloc_env

    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--loop-without-ray",
            "--arch",
            arch,
            "--epochs",
            str(epochs),
            "--threads",
            str(threads),
            "--train-file",
            str(train),
        ],
        env={**os.environ, **worker_malloc_env()},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def loop_without_ray(arch: str, train: Path, epochs: int, threads: int, seed: int = 0) -> dict:
    """textclf's own epoch loop (`train_loop._Loop`: batcher, model, step) in this process, fed from
    an in-memory table encoded by textclf's own functions, with the threads one worker would get."""
    import torch

    from textclf.models import create_model
    from textclf.text.batching import BatchingConfig
    from textclf.text.encoding import count_table, encode_table, tokenize_table
    from textclf.text.vocab import Vocab, VocabConfig
    from textclf.training.config import TrainConfig, default_lr
    from textclf.training.loop import WINDOW_ROWS, _Loop
    from textclf.training.optim import Adam, SparseTables
    from textclf.training.plan import WorkerPlan

    started = time.monotonic()
    config = TrainConfig(arch=arch, epochs=epochs, seed=seed)
    table = pq.read_table(train, columns=[config.text_column, config.label_column])
    tokens = tokenize_table(
        table, {"lang": config.lang, "lowercase": config.lowercase}, config.text_column, config.label_column
    )
    vocab = Vocab.build(count_table(tokens), VocabConfig(config.min_freq, config.max_vocab))
    labels = sorted(set(tokens.column("label").to_pylist()))
    encoded = encode_table(tokens, vocab, labels, config.max_tokens)
    encoded = encoded.take(np.random.default_rng(seed).permutation(encoded.num_rows))  # as random_shuffle

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = create_model(arch, vocab_size=len(vocab), num_classes=len(labels), **config.model)
    config = dataclasses.replace(config, lr=default_lr(arch, len(labels)))
    optimizer = Adam(model, SparseTables(model, torch.device("cpu")), lr=config.lr, weight_decay=config.weight_decay)
    plan = WorkerPlan(
        config=config,
        model_config={},
        labels=labels,
        train_rows=encoded.num_rows,
        threads_per_worker=threads,
        class_weights=None,
        vectors=None,
        interactive=False,
        events=None,
        checkpoint_dir=None,
        train_shards=[],
        validation_blocks=[],
    )
    loop = _Loop(
        model,
        model,
        optimizer,
        torch.nn.CrossEntropyLoss(reduction="sum"),
        torch.device("cpu"),
        plan,
        0,
        1,
        BatchingConfig(config.batch_tokens, config.max_batch_rows, WINDOW_ROWS),
    )
    startup = time.monotonic() - started
    tokens_per_s, step_ms = [], []
    for epoch in range(1, epochs + 1):
        with contextlib.redirect_stderr(io.StringIO()):  # the loop's progress lines
            record = loop.train_epoch(encoded, np.random.default_rng([seed, epoch, 0]), epoch)
        tokens_per_s.append(record["tokens_per_s"])
        step_ms.append(1000 * record["train_time_s"] / record["steps"])
    return {"tokens_per_s": steady(tokens_per_s), "step_ms": steady(step_ms), "startup_s": startup}


def combine(runs: list[dict]) -> dict:
    """Medians over repeats of each figure."""
    return {key: median([r[key] for r in runs]) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="bilstm", help="architecture (default bilstm, the seed's model)")
    parser.add_argument("--rows", type=int, help="train rows (default: the whole rotten-tomatoes train split)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per run; the first is left out when > 1")
    parser.add_argument("--workers", default="1,2", help="comma-separated Ray Train worker counts")
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="runs of the seed-style loop, the no-Ray loop and 1-worker textclf train, alternated (medians)",
    )
    parser.add_argument("--work", type=Path, default=WORK, help="cache folder (default runs/bench)")
    parser.add_argument("--loop-without-ray", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--train-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loop_without_ray:
        print(json.dumps(loop_without_ray(args.arch, args.train_file, args.epochs, args.threads)))
        return

    train, validation = subset(prepared_data(args.work), args.rows, args.work)
    rows_used = pq.read_metadata(train).num_rows
    workers = [int(n) for n in args.workers.split(",")]
    # Both targets are ratios of noisy figures: the runs alternate, so a busy spell on this shared
    # machine hits every side rather than one.
    seed_runs, no_ray_runs, ray_runs = [], [], {n: [] for n in workers}
    for repeat in range(args.repeats):
        seed_runs.append(run_seed(args.arch, train, args.epochs))
        no_ray_runs.append(run_without_ray(args.arch, train, args.epochs, threads=os.cpu_count() or 1))
        for n in workers if repeat == 0 else [n for n in workers if n == 1]:
            ray_runs[n].append(run_textclf(args.arch, train, validation, args.epochs, n, args.work))
    seed, no_ray = combine(seed_runs), combine(no_ray_runs)

    def ratio(tps: float) -> str:
        return f"{tps / seed['tokens_per_s']:.2f}x"

    rows = [
        [
            "seed-style loop (64 rows in file order, no packing)",
            "1 process",
            seed["tokens_per_s"],
            "1.00x",
            f"{seed['step_ms']:.1f}",
            seed["startup_s"],
        ],
        [
            "textclf loop without Ray (same batcher, model, step)",
            "1 process",
            no_ray["tokens_per_s"],
            ratio(no_ray["tokens_per_s"]),
            f"{no_ray['step_ms']:.1f}",
            no_ray["startup_s"],
        ],
    ]
    for n, runs in ray_runs.items():
        run = combine(runs)
        rows.append(
            [
                f"`textclf train --workers {n}`",
                f"{n} worker(s)",
                run["tokens_per_s"],
                ratio(run["tokens_per_s"]),
                f"{run['step_ms']:.1f}",
                run["startup_s"],
            ]
        )
    notes = [
        f"{args.arch}, {rows_used:,} train rows, {args.epochs} epoch(s) per run; tokens/s is the median over "
        "epochs after the first. Start-up: everything but the epochs (for textclf train: Ray, tokenizing, "
        "vocabulary, bundle; for the one-process runs: tokenizing and vocabulary)."
    ]
    if 1 in ray_runs:
        pairs = [no["tokens_per_s"] / ray["tokens_per_s"] - 1 for no, ray in zip(no_ray_runs, ray_runs[1])]
        overhead = no_ray["tokens_per_s"] / combine(ray_runs[1])["tokens_per_s"] - 1
        each = f" (each repeat: {', '.join(f'{p:+.1%}' for p in pairs)})" if len(pairs) > 1 else ""
        vs_seed = [ray["tokens_per_s"] / seed_run["tokens_per_s"] for seed_run, ray in zip(seed_runs, ray_runs[1])]
        each_seed = f" (each repeat: {', '.join(f'{r:.2f}x' for r in vs_seed)})" if len(vs_seed) > 1 else ""
        notes.append(
            f"Ray's overhead per step, 1 worker against the loop without Ray: {overhead:+.1%}{each}, "
            f"medians of {args.repeats} alternated run(s) each (target within 10%). "
            f"1 worker against the seed-style loop: {ratio(combine(ray_runs[1])['tokens_per_s'])}{each_seed} "
            "(target >= 2x)."
        )
    headers = ["run", "processes", "real tokens/s", "vs seed-style", "ms/step", "start-up and other (s)"]
    emit("training", f"Training throughput ({args.arch})", table(headers, rows), notes)


if __name__ == "__main__":
    main()
