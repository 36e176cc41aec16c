"""Scaling with work: `textclf label` on corpora of growing size (30,000 and 300,000 mixed-length
documents by default), whole command timed, peak memory of the whole process tree (the command and
every descendant: Ray's GCS, raylet and workers): RSS sampled every 0.2 s, PSS every 2 s.

    python benchmarks/scaling.py [--docs 30000,300000] [--arch bow]

The bow bundle is the default so that the large run fits the time budget; labeling streams, so
memory should stay flat as the corpus grows.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from corpus import corpus_dir
from harness import TEXTCLF, WORK, bundle, emit, median, run_timed, table


def label_once(model: Path, corpus: Path, out: Path) -> dict:
    timed = run_timed([TEXTCLF, "label", str(model), str(corpus), str(out), "--overwrite"], memory=True)
    manifest = json.loads((out / "_manifest.json").read_text())
    return {
        "wall_s": timed.wall_s,
        "labeling_s": manifest["elapsed_s"],
        "rss_mb": timed.peak_rss_mb,
        "pss_mb": timed.peak_pss_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", default="30000,300000", help="comma-separated corpus sizes, smallest first")
    parser.add_argument("--arch", default="bow", help="bundle architecture (default bow, to fit the time budget)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per size; the table shows medians")
    parser.add_argument("--work", type=Path, default=WORK, help="cache folder (default runs/bench)")
    args = parser.parse_args()

    sizes = sorted(int(n) for n in args.docs.split(","))
    model = bundle(args.arch, args.work)
    corpora = {n: corpus_dir(args.work, n) for n in sizes}  # built before any timing starts
    runs = {n: [] for n in sizes}
    for _ in range(args.repeats):
        for n in sizes:
            runs[n].append(label_once(model, corpora[n], args.work / "labeled" / f"scaling-{args.arch}-{n}"))
    base = sizes[0]
    stats = {n: {k: median([r[k] for r in runs[n]]) for k in runs[n][0]} for n in sizes}
    rows = [
        [
            f"{n:,}",
            f"{n / base:.0f}x",
            s["wall_s"],
            f"{n / s['wall_s']:,.0f}",
            f"{s['wall_s'] / stats[base]['wall_s']:.2f}x",
            s["rss_mb"],
            s["pss_mb"],
            f"{s['pss_mb'] / stats[base]['pss_mb']:.2f}x",
        ]
        for n, s in stats.items()
    ]
    headers = [
        "documents",
        "work",
        "wall (s)",
        "docs/s",
        "time ratio (target <= 1.1x the work ratio)",
        "peak RSS sum (MiB)",
        "peak PSS sum (MiB)",
        "memory ratio (PSS; target <= 1.5x)",
    ]
    emit(
        "scaling",
        f"Scaling with work: `textclf label`, {args.arch} bundle",
        table(headers, rows),
        [
            f"{args.arch} bundle (chosen so the largest run fits the time budget); median of {args.repeats} run(s). "
            "Wall: whole command, Ray start-up included. Memory: summed over the command's process tree; RSS counts "
            "shared pages (libraries, Ray's object store) once per process, PSS splits them, so PSS is the honest "
            "total."
        ],
    )


if __name__ == "__main__":
    main()
