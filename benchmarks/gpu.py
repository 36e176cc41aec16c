"""GPU throughput: `textclf train --use-gpu` tokens/s, `textclf label --use-gpu` docs/s per GPU for
each architecture and precision, and which side bounds labeling: the GPU running the model or the
CPUs tokenizing for it.

    python benchmarks/gpu.py [--docs 30000] [--archs bilstm,bow] [--precisions auto,fp32] [--epochs 3]
    python benchmarks/gpu.py --archs transformer --pretrained runs/bench/minilm-l6 --epochs 2

For the lent GPU machine (see ../shared/tools/device-ray.md): it calls textclf as `python -m
textclf.cli`, since console scripts are not installed there, and reads the prepared rotten-tomatoes
splits and the labeling corpus from the work folder (carry `runs/bench/data` and
`runs/bench/corpus-N-seed0`), because that machine reaches no package registry. For the same reason the
transformer's encoder comes as a folder (--pretrained): copy the built-in one out of textclf's cache
(`python -c "from textclf.models.pretrained import resolve_pretrained as r; print(r('minilm-l6'))"`).
Bundles are trained here, on the GPU, and their epochs give the training figures. --cpu runs the same steps without a
GPU, to check the script on a machine that has none; its figures say nothing about GPUs.

Bottleneck: the model alone on the GPU (ids encoded beforehand, one process) against the tokenizing
capacity (one core's tokenize-and-encode rate times the CPUs Ray hands the encoding tasks); labeling
runs at most at the smaller of the two. GPU utilization is sampled with nvidia-smi while labeling.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
from corpus import corpus_dir
from harness import WORK, emit, json_events, median, prepared_data, run_timed, table

CLI = [sys.executable, "-m", "textclf.cli"]
SAMPLE_DOCS = 10_000  # documents encoded in-process for the model-only and tokenizing rates


def train_bundle(
    arch: str, data: Path, work: Path, epochs: int, gpu: bool, pretrained: str | None = None
) -> tuple[Path, dict]:
    out = work / "gpu" / f"bundle-{arch}"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(out.with_name(out.name + ".checkpoints"), ignore_errors=True)
    timed = run_timed(
        [
            *CLI,
            "train",
            "--train",
            str(data / "train"),
            "--validation",
            str(data / "validation"),
            "--out",
            str(out),
            "--arch",
            arch,
            "--epochs",
            str(epochs),
            "--patience",
            "0",
            "--workers",
            "1",
            *(["--use-gpu"] if gpu else []),
            *(["--pretrained", pretrained] if pretrained and arch == "transformer" else []),
        ]
    )
    epochs_seen = json_events(timed.stderr, "epoch")
    steady = epochs_seen[1:] or epochs_seen  # the first epoch warms up (CUDA context, kernels)
    return out, {
        "tokens_per_s": median([e["tokens_per_s"] for e in steady]),
        "step_ms": median([1000 * e["train_time_s"] / e["steps"] for e in steady]),
        "startup_s": timed.wall_s - sum(e["epoch_time_s"] for e in epochs_seen),
        "val_accuracy": max(e.get("val_accuracy", 0.0) for e in epochs_seen),
    }


class GpuSampler:
    """nvidia-smi's utilization and memory every 0.5 s, in a thread, while a command runs."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self._proc = None
        if shutil.which("nvidia-smi"):
            self._proc = subprocess.Popen(
                [
                    "nvidia-smi",
                    "--query-gpu=utilization.gpu,memory.used",
                    "--format=csv,noheader,nounits",
                    "-lms",
                    "500",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self._proc.stdout:
            try:
                util, memory = (float(v) for v in line.split(",")[:2])
            except ValueError:
                continue
            self.samples.append((util, memory))

    def stop(self) -> dict:
        if self._proc is None:
            return {"gpu_util": None, "gpu_mem_mib": None}
        self._proc.terminate()
        self._proc.wait()
        busy = [i for i, (util, _) in enumerate(self.samples) if util > 0]
        # from the first to the last busy sample: the labeling, not Ray's start-up
        during = self.samples[busy[0] : busy[-1] + 1] if busy else []
        return {
            "gpu_util": sum(u for u, _ in during) / len(during) if during else 0.0,
            "gpu_mem_mib": max((m for _, m in self.samples), default=None),
        }


def label(bundle: Path, corpus: Path, work: Path, precision: str, gpu: bool) -> dict:
    out = work / "gpu" / f"labeled-{bundle.name}-{precision}"
    sampler = GpuSampler()
    try:
        timed = run_timed(
            [
                *CLI,
                "label",
                str(bundle),
                str(corpus),
                str(out),
                "--overwrite",
                "--precision",
                precision,
                *(["--use-gpu"] if gpu else []),
            ]
        )
    finally:
        gpu_figures = sampler.stop()
    manifest = json.loads((out / "_manifest.json").read_text())
    return {
        "docs": manifest["rows_in"],
        "wall_s": timed.wall_s,
        "labeling_s": manifest["elapsed_s"],
        "padding_efficiency": manifest["padding_efficiency"],
        **gpu_figures,
    }


def sample_texts(corpus: Path, docs: int) -> list[str]:
    texts: list[str] = []
    for path in sorted(corpus.glob("*.parquet")):
        texts += pq.read_table(path, columns=["text"]).column("text").to_pylist()
        if len(texts) >= docs:
            break
    return texts[:docs]


def encoded_sample(bundle: Path, texts: list[str]) -> tuple[list, float]:
    """The texts' ids, and the documents/s one core tokenized and encoded them at, starting cold as an
    encoding task does."""
    from textclf.inference.predictor import Predictor

    predictor = Predictor(str(bundle), device="cpu", precision="fp32")
    started = time.perf_counter()
    sequences = predictor.encode(texts)
    return sequences, len(texts) / (time.perf_counter() - started)


def model_rate(bundle: Path, sequences: list, precision: str, gpu: bool) -> float:
    """Documents/s of the model alone in one process, on ids encoded beforehand."""
    from textclf.inference.predictor import Predictor

    predictor = Predictor(str(bundle), device="cuda" if gpu else "cpu", precision=precision)
    predictor.predict_encoded(sequences[:2000])  # warm-up: CUDA context, kernels, allocator
    started = time.perf_counter()
    predictor.predict_encoded(sequences)
    return len(sequences) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=30_000, help="documents to label (default 30,000)")
    parser.add_argument("--archs", default="bilstm,bow", help="comma-separated architectures")
    parser.add_argument("--pretrained", help="transformer: the encoder folder (the GPU machine reaches no registry)")
    parser.add_argument(
        "--precisions", default="auto,fp32", help="labeling arithmetic, comma-separated (auto is bf16 on a GPU)"
    )
    parser.add_argument("--epochs", type=int, default=3, help="training epochs per architecture (default 3)")
    parser.add_argument("--cpu", action="store_true", help="the same steps without a GPU: checks the script only")
    parser.add_argument("--work", type=Path, default=WORK, help="cache folder (default runs/bench)")
    args = parser.parse_args()

    import torch

    gpu = not args.cpu
    if gpu and not torch.cuda.is_available():
        sys.exit("benchmarks/gpu.py: no CUDA GPU here (torch sees none); --cpu checks the script without one")
    device = torch.cuda.get_device_name(0) if gpu else "CPU (--cpu: a check of the script, not a GPU figure)"
    data, corpus = prepared_data(args.work), corpus_dir(args.work, args.docs)
    texts = sample_texts(corpus, min(SAMPLE_DOCS, args.docs))
    cpus = os.cpu_count() or 1
    results = {"device": device, "cpus": cpus, "train": {}, "label": []}
    for arch in args.archs.split(","):
        bundle, trained = train_bundle(arch, data, args.work, args.epochs, gpu, args.pretrained)
        results["train"][arch] = trained
        print(f"{arch}: trained, {trained['tokens_per_s']:,.0f} tokens/s", flush=True)
        sequences, per_core = encoded_sample(bundle, texts)
        for precision in args.precisions.split(","):
            run = {
                "arch": arch,
                "precision": precision,
                **label(bundle, corpus, args.work, precision, gpu),
                "model_docs_per_s": model_rate(bundle, sequences, precision, gpu),
                # on the GPU path the encoding tasks get every CPU but the one the driver writes with
                "tokenizing_docs_per_core": per_core,
                "tokenizing_docs_per_s": per_core * max(1, cpus - 1),
            }
            results["label"].append(run)
            print(f"{arch} {precision}: {run['docs'] / run['wall_s']:,.0f} docs/s", flush=True)
    (args.work / "gpu.json").write_text(json.dumps(results, indent=1))

    train_rows = [
        [arch, f"{r['tokens_per_s']:,.0f}", f"{r['step_ms']:.1f}", r["startup_s"], r["val_accuracy"]]
        for arch, r in results["train"].items()
    ]
    label_rows = []
    for r in results["label"]:
        labeling = r["docs"] / r["labeling_s"]
        bound = "model" if r["model_docs_per_s"] < r["tokenizing_docs_per_s"] else "tokenizing"
        util = "n/a" if r["gpu_util"] is None else f"{r['gpu_util']:.0f}%"
        label_rows.append(
            [
                r["arch"],
                r["precision"],
                f"{r['docs'] / r['wall_s']:,.0f}",
                f"{labeling:,.0f}",
                f"{r['model_docs_per_s']:,.0f}",
                f"{r['tokenizing_docs_per_s']:,.0f}",
                bound,
                util,
                r["gpu_mem_mib"] or "n/a",
                r["padding_efficiency"],
            ]
        )
    emit(
        "gpu",
        f"GPU: training and labeling on {device}",
        "\n\n".join(
            [
                table(
                    ["model", "train tokens/s (1 worker)", "ms/step", "start-up and other (s)", "best val accuracy"],
                    train_rows,
                ),
                table(
                    [
                        "model",
                        "precision",
                        "label docs/s (whole command)",
                        "docs/s (labeling only)",
                        "model alone docs/s",
                        "tokenizing capacity docs/s",
                        "bound by",
                        "GPU util while labeling",
                        "GPU memory peak (MiB)",
                        "padding efficiency",
                    ],
                    label_rows,
                ),
            ]
        ),
        [
            f"Training: rotten-tomatoes train split, {args.epochs} epochs, tokens/s the median over epochs after the "
            f"first. Labeling: {args.docs:,} mixed-length documents, one inference actor per GPU. Model alone: "
            f"{len(texts):,} documents encoded beforehand, scored in one process. Tokenizing capacity: one core's "
            f"tokenize-and-encode rate (cold) x {max(1, cpus - 1)} CPUs; labeling runs at most at the smaller of "
            "the two, and `bound by` names it."
        ],
    )


if __name__ == "__main__":
    main()
