"""Every benchmark in one go, at sizes that fit about 15 minutes on a quiet 2-core machine (bundles,
corpora and prepared data are cached under runs/bench after the first run, which takes longer).

    python benchmarks/run_all.py [--quick]

Each script prints its table and writes it to runs/bench/NAME.md; this collects them all in
runs/bench/all.md. --quick runs everything at toy sizes, to check the harness itself.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from harness import WORK

HERE = Path(__file__).resolve().parent

# (script, arguments at bench size, arguments for --quick). Sizes follow measured costs on 2 quiet
# cores: labeling stays at 4,000 documents and leaves cnn out (the full 30,000-document comparison
# takes about 4 minutes for bilstm alone); bow labels ~1,300 docs/s, so the 300,000-document run needs
# about 4 minutes; training epochs of 3,000 rows (36 steps, 3-4 s) are long enough that per-epoch costs
# do not hide the per-step ones, and the seed-style, no-Ray and 1-worker runs alternate twice. labeling runs
# before tokenizer, which reuses its wall times.
STEPS = [
    ("padding", ["--docs", "30000"], ["--docs", "2000"]),
    ("labeling", ["--docs", "4000", "--archs", "bilstm,bow"], ["--docs", "2000", "--archs", "bow"]),
    ("tokenizer", ["--docs", "4000", "--repeats", "3"], ["--docs", "2000", "--repeats", "1"]),
    (
        "training",
        ["--rows", "3000", "--epochs", "4", "--repeats", "2"],
        ["--rows", "512", "--epochs", "2", "--workers", "1"],
    ),
    ("scaling", ["--docs", "30000,300000"], ["--docs", "2000,20000"]),
    ("accuracy", ["--archs", "bow"], ["--archs", ""]),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="toy sizes: checks the scripts, measures nothing (overwrites runs/bench/*.md)",
    )
    parser.add_argument("--only", help="comma-separated subset of: " + ", ".join(s[0] for s in STEPS))
    args = parser.parse_args()

    chosen = args.only.split(",") if args.only else [s[0] for s in STEPS]
    timings, failed = [], []
    for name, bench_args, quick_args in STEPS:
        if name not in chosen:
            continue
        started = time.monotonic()
        cmd = [sys.executable, str(HERE / f"{name}.py"), *(quick_args if args.quick else bench_args)]
        print(f"\n$ {' '.join(cmd[1:])}", flush=True)
        if subprocess.run(cmd).returncode != 0:
            failed.append(name)
        timings.append(f"{name}: {time.monotonic() - started:.0f} s")
    tables = [
        (WORK / f"{name}.md").read_text() for name in chosen if name not in failed and (WORK / f"{name}.md").exists()
    ]
    (WORK / "all.md").write_text("\n".join(tables))
    print(f"\ntimes: {', '.join(timings)}; tables in {WORK / 'all.md'}")
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
