"""Scaling with work: `textclf label` on corpora of growing size (30,000 and 300,000 mixed-length
documents by default), whole command timed, peak memory of the whole process tree (the command and
every descendant: Ray's GCS, raylet and workers): RSS sampled every 0.2 s, PSS every 2 s (every
0.2 s for up to 3 processes).

    python benchmarks/scaling.py [--docs 30000,300000] [--arch bow] [--runners ray,in-process]

The bow bundle is the default so that the large run fits the time budget; labeling streams, so
memory should stay flat as the corpus grows. Each runner is measured at every size (`--runner`
forced), since `auto` would compare one runner's small run with the other's large one.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from corpus import corpus_dir
from harness import TEXTCLF, WORK, bundle, emit, median, run_timed, table


def label_once(model: Path, corpus: Path, out: Path, runner: str) -> dict:
    command = [TEXTCLF, "label", str(model), str(corpus), str(out), "--overwrite", "--runner", runner]
    timed = run_timed(command, memory=True)
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
    parser.add_argument("--runners", default="ray,in-process", help="comma-separated: ray, in-process")
    parser.add_argument("--repeats", type=int, default=1, help="runs per size; the table shows medians")
    parser.add_argument("--work", type=Path, default=WORK, help="cache folder (default runs/bench)")
    args = parser.parse_args()

    sizes = sorted(int(n) for n in args.docs.split(","))
    model = bundle(args.arch, args.work)
    corpora = {n: corpus_dir(args.work, n) for n in sizes}  # built before any timing starts
    runners = args.runners.split(",")
    runs = {(r, n): [] for r in runners for n in sizes}
    for _ in range(args.repeats):
        for runner in runners:
            for n in sizes:
                out = args.work / "labeled" / f"scaling-{args.arch}-{runner}-{n}"
                runs[runner, n].append(label_once(model, corpora[n], out, runner))
    base = sizes[0]
    stats = {key: {k: median([r[k] for r in found]) for k in found[0]} for key, found in runs.items()}
    rows = [
        [
            runner,
            f"{n:,}",
            f"{n / base:.0f}x",
            s["wall_s"],
            f"{n / s['wall_s']:,.0f}",
            f"{s['wall_s'] / stats[runner, base]['wall_s']:.2f}x",
            s["rss_mb"],
            s["pss_mb"],
            f"{s['pss_mb'] / stats[runner, base]['pss_mb']:.2f}x",
        ]
        for (runner, n), s in stats.items()
    ]
    headers = [
        "runner",
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
            "Wall: whole command, Ray start-up included (runner ray). Memory: summed over the command's process tree; "
            "RSS counts "
            "shared pages (libraries, Ray's object store) once per process, PSS splits them, so PSS is the honest "
            "total."
        ],
    )


if __name__ == "__main__":
    main()
