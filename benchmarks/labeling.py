"""Labeling throughput: `textclf label` (whole command, start-up included) against the seed-style
loop (one process, regex tokens, 64-row batches in file order, pad_sequence, no packing), on the same
mixed-length corpus with models of the same size.

    python benchmarks/labeling.py [--docs 30000] [--archs bilstm,bow,cnn] [--repeats 1]
    python benchmarks/labeling.py --docs 3000 --archs transformer

`transformer` is measured against the plain way with the same fine-tuned bundle instead
(benchmarks/plain_transformer.py: texts in file order, 64-row batches padded to their longest, one process).

Both sides are timed the same way, as a whole command in a subprocess. The seed-style models keep
random weights (speed depends on a model's size, not on its weights); textclf's bundles are trained
for one epoch. On a CPU with native bf16, textclf's default (`--precision auto`) scores in bf16 while
the seed-style loop stays in float32, so textclf also runs with `--precision fp32` there: the table
shows both, and how many labels bf16 changes. Raw figures go to runs/bench/labeling.json
(benchmarks/tokenizer.py reads them).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pyarrow.dataset as ds
import seed_style
from corpus import corpus_dir
from harness import TEXTCLF, WORK, bundle, emit, median, prepared_data, run_timed, table

SEED_SCRIPT = str(Path(__file__).with_name("seed_style.py"))
PLAIN_TRANSFORMER = str(Path(__file__).with_name("plain_transformer.py"))


def seed_checkpoint(arch: str, work: Path) -> Path:
    """A seed-style model of `arch` with the seed's vocabulary of the train split, random weights."""
    out = work / "seed" / arch
    if not (out / "model.pt").exists():
        model, vocab, labels, _ = seed_style.train(arch, prepared_data(work) / "train", epochs=0)
        seed_style.save(model, arch, vocab, labels, out)
    return out


def run_textclf(arch: str, corpus: Path, work: Path, caller: str = "labeling", precision: str = "auto") -> dict:
    # the caller names the output, so two benchmarks running at once never share an OUTPUT
    out = labeled_dir(arch, corpus, work, caller, precision)
    timed = run_timed(
        [TEXTCLF, "label", str(bundle(arch, work)), str(corpus), str(out), "--overwrite", "--precision", precision]
    )
    manifest = json.loads((out / "_manifest.json").read_text())
    return {
        "wall_s": timed.wall_s,
        "docs": manifest["rows_in"],
        "labeling_s": manifest["elapsed_s"],
        "padding_efficiency": manifest["padding_efficiency"],
        "runner": manifest["runner"],
    }


def labeled_dir(arch: str, corpus: Path, work: Path, caller: str = "labeling", precision: str = "auto") -> Path:
    suffix = "" if precision == "auto" else f"-{precision}"
    return work / "labeled" / f"{caller}-textclf-{arch}-{corpus.parent.name}{suffix}"


def label_agreement(arch: str, corpus: Path, work: Path) -> float:
    """Share of documents whose label is the same in the default (bf16) and the fp32 output."""

    def labels(precision: str) -> dict:
        table = ds.dataset(labeled_dir(arch, corpus, work, precision=precision)).to_table(columns=["id", "label"])
        return dict(zip(table.column("id").to_pylist(), table.column("label").to_pylist()))

    default, fp32 = labels("auto"), labels("fp32")
    return sum(default[doc] == label for doc, label in fp32.items()) / len(fp32)


def run_seed(arch: str, corpus: Path, work: Path, threads: int | None = None) -> dict:
    out = work / "labeled" / f"labeling-seed-{arch}-{corpus.parent.name}"
    if arch == "transformer":  # the same fine-tuned bundle, labeled the plain way
        cmd = [sys.executable, PLAIN_TRANSFORMER, str(bundle(arch, work)), str(corpus), str(out)]
    else:
        cmd = [sys.executable, SEED_SCRIPT, "label", str(seed_checkpoint(arch, work)), str(corpus), str(out)]
    timed = run_timed(cmd + (["--threads", str(threads)] if threads else []))
    result = json.loads(timed.stdout.strip().splitlines()[-1])
    return {
        "wall_s": timed.wall_s,
        "docs": result["docs"],
        "labeling_s": result["seconds"],
        "padding_efficiency": result["padding_efficiency"],
    }


def summarize(model: str, textclf_runs: list[dict], seed_runs: list[dict]) -> list:
    docs = textclf_runs[0]["docs"]
    ours, seed = median([r["wall_s"] for r in textclf_runs]), median([r["wall_s"] for r in seed_runs])
    ours_loop = median([r["labeling_s"] for r in textclf_runs])
    return [
        f"{model}, {textclf_runs[0]['runner']}",
        f"{docs / ours:,.0f}",
        f"{docs / ours_loop:,.0f}",
        f"{docs / seed:,.0f}",
        f"{seed / ours:.2f}x",
        textclf_runs[0]["padding_efficiency"],
        seed_runs[0]["padding_efficiency"],
        ours,
        seed,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=30_000, help="documents in the corpus (default 30,000)")
    parser.add_argument("--archs", default="bilstm,bow,cnn", help="comma-separated: bilstm, bow, cnn, transformer")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each side; the table shows medians")
    parser.add_argument(
        "--seed-threads", type=int, help="torch threads of the seed-style loop (default: torch's, one per core)"
    )
    parser.add_argument("--work", type=Path, default=WORK, help="cache folder (default runs/bench)")
    parser.add_argument(
        "--no-fp32", action="store_true", help="skip textclf's extra --precision fp32 runs on a CPU with native bf16"
    )
    args = parser.parse_args()

    from textclf.runtime.precision import native_bf16_cpu

    corpus = corpus_dir(args.work, args.docs)
    archs = args.archs.split(",")
    also_fp32 = native_bf16_cpu() and not args.no_fp32  # auto means bf16 here: show float32 beside it
    for arch in archs:  # trained / built before any timing starts
        bundle(arch, args.work)
        if arch != "transformer":
            seed_checkpoint(arch, args.work)
    results = {arch: {"textclf": [], "seed": [], **({"textclf_fp32": []} if also_fp32 else {})} for arch in archs}
    for _ in range(args.repeats):  # interleaved, so a noisy spell on the shared machine hits both sides
        for arch in archs:
            results[arch]["textclf"].append(run_textclf(arch, corpus, args.work))
            if also_fp32:
                results[arch]["textclf_fp32"].append(run_textclf(arch, corpus, args.work, precision="fp32"))
            results[arch]["seed"].append(run_seed(arch, corpus, args.work, args.seed_threads))
    rows = []
    for arch, runs in results.items():
        if also_fp32:
            runs["bf16_label_agreement"] = label_agreement(arch, corpus, args.work)
            rows.append(summarize(f"{arch} (bf16, default here)", runs["textclf"], runs["seed"]))
            rows.append(summarize(f"{arch} (fp32)", runs["textclf_fp32"], runs["seed"]))
        else:
            rows.append(summarize(arch, runs["textclf"], runs["seed"]))
    (args.work / "labeling.json").write_text(json.dumps({"docs": args.docs, "results": results}, indent=1))
    headers = [
        "model, textclf's runner",
        "textclf docs/s (whole command)",
        "textclf docs/s (labeling only)",
        "seed-style docs/s (whole command)",
        "speed-up (target >= 3x for bilstm)",
        "textclf padding efficiency",
        "seed-style padding efficiency",
        "textclf wall (s)",
        "seed-style wall (s)",
    ]
    emit(
        "labeling",
        f"Labeling {args.docs:,} mixed-length documents (1-8 snippets each)",
        table(headers, rows),
        [
            f"Median of {args.repeats} run(s) per side, interleaved. Whole command: process start to exit, "
            "Ray start-up included for textclf; labeling only: textclf's own elapsed time from `_manifest.json`.",
            "Seed-style: one process, regex tokens, 64 rows per batch in file order, `pad_sequence`, no packing, "
            f"same layer sizes (random weights), torch threads: {args.seed_threads or 'default'}. "
            "For transformer the other side is the plain way with the same fine-tuned bundle: one process, "
            "word pieces of its tokenizer.json, 64 rows per batch in file order padded to their longest. "
            "Padding efficiency: real tokens / padded tokens.",
            *([precision_note(results)] if also_fp32 else []),
        ],
    )


def precision_note(results: dict) -> str:
    agreement = ", ".join(f"{arch} {runs['bf16_label_agreement']:.2%}" for arch, runs in results.items())
    return (
        "This CPU has native bf16, so textclf's default precision (auto) is bf16; the seed-style loop runs "
        f"float32. Documents with the same label in textclf's bf16 and fp32 outputs: {agreement}."
    )


if __name__ == "__main__":
    main()
