"""The mixed-length labeling corpus: N documents, each 1 to 8 Rotten Tomatoes snippets joined by
spaces, in 6 Parquet files with columns `id`, `text`. Deterministic for a given N and seed.

    python benchmarks/corpus.py OUT [--docs 30000] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

FILES = 6
MAX_SNIPPETS = 8


def build_corpus(out: Path, docs: int = 30_000, seed: int = 0) -> Path:
    """Write the corpus under `out` (skipped when it is already there) and return `out`."""
    from textclf.data.corpus import corpus_frame

    done = out / "_COMPLETE"
    if done.exists():
        return out
    snippets = corpus_frame("rotten-tomatoes").text.to_numpy(dtype=object)
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, MAX_SNIPPETS + 1, size=docs)  # uniform: lengths spread over 8x
    picks = rng.integers(0, len(snippets), size=int(counts.sum()))
    bounds = np.concatenate([[0], np.cumsum(counts)])
    texts = [" ".join(snippets[picks[bounds[i] : bounds[i + 1]]]) for i in range(docs)]
    out.mkdir(parents=True, exist_ok=True)
    for index, rows in enumerate(np.array_split(np.arange(docs), FILES)):
        ids = [f"doc-{i:07d}" for i in rows]
        table = pa.table({"id": pa.array(ids, pa.string()), "text": pa.array([texts[i] for i in rows], pa.string())})
        pq.write_table(table, out / f"part-{index:02d}.parquet")
    done.touch()
    return out


def corpus_dir(work: Path, docs: int, seed: int = 0) -> Path:
    """The cached corpus of `docs` documents under the benchmarks' work folder."""
    return build_corpus(work / f"corpus-{docs}-seed{seed}" / "input", docs, seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--docs", type=int, default=30_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    build_corpus(args.out, args.docs, args.seed)
    print(f"{args.docs:,} documents in {FILES} files under {args.out}")


if __name__ == "__main__":
    main()
