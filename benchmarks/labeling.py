"""Labeling throughput: `textclf label` (whole command, start-up included) against the seed-style
loop (one process, regex tokens, 64-row batches in file order, pad_sequence, no packing), on the same
mixed-length corpus with models of the same size.

    python benchmarks/labeling.py [--docs 30000] [--archs bilstm,bow,cnn] [--repeats 1]
    python benchmarks/labeling.py --docs 3000 --archs transformer
    python benchmarks/labeling.py --archs bilstm --precisions int8 --avx2-only

`transformer` is measured against the plain way with the same fine-tuned bundle instead
(benchmarks/plain_transformer.py: texts in file order, 64-row batches padded to their longest, one process).

Both sides are timed the same way, as a whole command in a subprocess. The seed-style models keep
random weights (speed depends on a model's size, not on its weights); textclf's bundles are trained
for one epoch. On a CPU with native bf16, textclf's default (`--precision auto`) scores in bf16 while
the seed-style loop stays in float32, so textclf also runs with `--precision fp32` there by default;
`--precisions int8` adds int8 runs. Each precision gets a row; the notes give the share of documents
whose label it keeps against float32 and its accuracy on the rotten-tomatoes test split beside
float32's. `--avx2-only` measures what an AVX2-only CPU allows on a newer one: both sides get only the
kernels such a CPU has (float32 where auto would mean bf16; int8 without VNNI). Raw figures go to
runs/bench/labeling.json (benchmarks/tokenizer.py reads them).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pyarrow.dataset as ds
import seed_style
from corpus import corpus_dir
from harness import TEXTCLF, WORK, bundle, cap_isa_to_avx2, emit, median, prepared_data, run_timed, table

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


def label_agreement(arch: str, corpus: Path, work: Path, precision: str, reference: str) -> float:
    """Share of documents with the same label in the `precision` and the `reference` outputs."""

    def labels(precision: str) -> dict:
        table = ds.dataset(labeled_dir(arch, corpus, work, precision=precision)).to_table(columns=["id", "label"])
        return dict(zip(table.column("id").to_pylist(), table.column("label").to_pylist()))

    ours, theirs = labels(precision), labels(reference)
    return sum(ours[doc] == label for doc, label in theirs.items()) / len(theirs)


def test_accuracy(arch: str, work: Path, precision: str) -> float:
    """The benchmark bundle's accuracy on the rotten-tomatoes test split, scored in `precision`."""
    test = prepared_data(work) / "test"
    done = run_timed([TEXTCLF, "evaluate", str(bundle(arch, work)), str(test), "--json", "--precision", precision])
    return json.loads(done.stdout)["accuracy"]


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
        "--precisions",
        help="textclf --precision values run besides auto, comma-separated (fp32, bf16, int8); "
        "default: fp32 on a CPU with native bf16, where auto means bf16, else none",
    )
    parser.add_argument(
        "--avx2-only",
        action="store_true",
        help="both sides run the kernels an AVX2-only CPU would (no AVX512, VNNI, bf16): torch, oneDNN, MKL "
        "and fbgemm capped by their environment variables",
    )
    args = parser.parse_args()
    if args.avx2_only:
        cap_isa_to_avx2()

    from textclf.runtime.precision import native_bf16_cpu

    corpus = corpus_dir(args.work, args.docs)
    archs = args.archs.split(",")
    native = native_bf16_cpu()
    if args.precisions is None:
        extra = ["fp32"] if native else []  # auto means bf16 here: show float32 beside it
    else:
        extra = [p for p in args.precisions.split(",") if p and p != "auto"]
        if native and extra and "fp32" not in extra:  # the float32 labels the others are compared with
            extra.insert(0, "fp32")
    for arch in archs:  # trained / built before any timing starts
        bundle(arch, args.work)
        if arch != "transformer":
            seed_checkpoint(arch, args.work)
    results = {arch: {"textclf": [], "seed": [], **{f"textclf_{p}": [] for p in extra}} for arch in archs}
    for _ in range(args.repeats):  # interleaved, so a noisy spell on the shared machine hits both sides
        for arch in archs:
            results[arch]["textclf"].append(run_textclf(arch, corpus, args.work))
            for precision in extra:
                results[arch][f"textclf_{precision}"].append(run_textclf(arch, corpus, args.work, precision=precision))
            results[arch]["seed"].append(run_seed(arch, corpus, args.work, args.seed_threads))
    auto = "bf16" if native else "fp32"
    reference = "fp32" if "fp32" in extra else "auto"  # float32 labels: auto's where auto means fp32
    rows, notes = [], []
    for arch, runs in results.items():
        rows.append(summarize(f"{arch} ({auto}, default here)" if extra else arch, runs["textclf"], runs["seed"]))
        for precision in extra:
            rows.append(summarize(f"{arch} ({precision})", runs[f"textclf_{precision}"], runs["seed"]))
        for precision in [p for p in ["auto", *extra] if p != reference and not (p == "auto" and not native)]:
            runs[f"{precision}_label_agreement"] = label_agreement(arch, corpus, args.work, precision, reference)
            runs[f"{precision}_test_accuracy"] = [test_accuracy(arch, args.work, p) for p in (precision, reference)]
            ours, theirs = runs[f"{precision}_test_accuracy"]
            notes.append(
                f"{arch}, {auto if precision == 'auto' else precision}: "
                f"{runs[f'{precision}_label_agreement']:.2%} of documents keep their float32 label; "
                f"test accuracy {ours:.4f} against float32's {theirs:.4f}."
            )
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
            "Ray start-up included where textclf's runner is ray; labeling only: textclf's own elapsed time "
            "from `_manifest.json`.",
            "Seed-style: one process, regex tokens, 64 rows per batch in file order, `pad_sequence`, no packing, "
            f"same layer sizes (random weights), torch threads: {args.seed_threads or 'default'}. "
            "For transformer the other side is the plain way with the same fine-tuned bundle: one process, "
            "word pieces of its tokenizer.json, 64 rows per batch in file order padded to their longest. "
            "Padding efficiency: real tokens / padded tokens.",
            *notes,
        ],
    )


if __name__ == "__main__":
    main()
