"""Tokenizer cost: spaCy words/s on one core over the mixed-length corpus (textclf.tokenizer), the
whole per-row encoding that labeling's CPU tasks run (textclf.labeler.encode_texts), the seed's
regex for reference, and the share of `textclf label`'s wall time that tokenizing takes.

    python benchmarks/tokenizer.py [--docs 30000] [--repeats 3] [--arch bow]

The labeling wall time comes from runs/bench/labeling.json when benchmarks/labeling.py ran on the
same corpus; otherwise `textclf label` runs once here with the --arch bundle.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Callable

import pyarrow.parquet as pq
import seed_style
from corpus import corpus_dir
from harness import WORK, bundle, emit, median, table


def timed(setup: Callable[[], object], run: Callable[[object], object], repeats: int) -> float:
    """Median CPU seconds of `run(setup())` over `repeats` runs, setup untimed. CPU time, not wall
    time, so other work on a shared machine does not count against the tokenizer. Each run gets a fresh
    tokenizer: spaCy caches every chunk it has split, and this corpus reuses 12,808 snippets, so a
    warm cache would flatter it far beyond a real corpus."""
    seconds = []
    for _ in range(repeats):
        state = setup()
        started = time.process_time()
        run(state)
        seconds.append(time.process_time() - started)
    return median(seconds)


def labeling_walls(work: Path, docs: int, arch: str, corpus: Path) -> dict[str, float]:
    """`textclf label` whole-command seconds per architecture on this corpus."""
    saved = work / "labeling.json"
    if saved.exists():
        data = json.loads(saved.read_text())
        if data["docs"] == docs:
            return {a: median([r["wall_s"] for r in runs["textclf"]]) for a, runs in data["results"].items()}
    from labeling import run_textclf

    return {arch: run_textclf(arch, corpus, work, caller="tokenizer")["wall_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=30_000, help="documents in the mixed-length corpus")
    parser.add_argument("--repeats", type=int, default=3, help="timings per tokenizer; the table shows medians")
    parser.add_argument("--arch", default="bow", help="bundle to label with when labeling.json has no run")
    parser.add_argument("--work", type=Path, default=WORK, help="cache folder (default runs/bench)")
    args = parser.parse_args()

    from textclf.encoding import cached_tokenizer
    from textclf.labeler import encode_texts
    from textclf.tokenizer import Tokenizer

    corpus = corpus_dir(args.work, args.docs)
    table_in = pq.read_table(corpus, columns=["id", "text"])
    texts = table_in.column("text").to_pylist()
    words = sum(len(t) for t in Tokenizer().tokenize_batch(texts))
    model_dir = str(bundle(args.arch, args.work).resolve())

    def fresh_encoder() -> None:
        cached_tokenizer.cache_clear()
        encode_texts(table_in.slice(0, 1), model_dir)  # builds the tokenizer, loads the vocabulary: untimed

    seconds = {
        "spaCy tokenizer (textclf.tokenizer.Tokenizer)": timed(Tokenizer, lambda t: t.tokenize_batch(texts), args.repeats),
        "labeling's CPU task (textclf.labeler.encode_texts: checks, tokenize, encode)":
            timed(fresh_encoder, lambda _: encode_texts(table_in, model_dir), args.repeats),
        "seed's regex (re.findall)": timed(lambda: None, lambda _: [seed_style.tokenize(t) for t in texts], args.repeats),
    }
    rows = [[name, f"{words / s:,.0f}", s] for name, s in seconds.items()]
    spacy_s = seconds["spaCy tokenizer (textclf.tokenizer.Tokenizer)"]
    cpus = os.cpu_count() or 1
    shares = [[arch, wall, spacy_s, f"{spacy_s / wall:.0%}", f"{spacy_s / (wall * cpus):.0%}"]
              for arch, wall in labeling_walls(args.work, args.docs, args.arch, corpus).items()]
    emit("tokenizer", f"Tokenizer: words/s on one core, {args.docs:,} mixed-length documents ({words:,} spaCy words)",
         table(["tokenizer", "words/s per core", "CPU seconds for the corpus"], rows) + "\n\n" +
         table(["labeling bundle", "`textclf label` wall (s)", "spaCy tokenizing (CPU s)", "share of wall time",
                f"share of the machine's CPU time ({cpus} cores x wall)"], shares),
         [f"Median of {args.repeats} timing(s), one process (spaCy's tokenizer is single-threaded), a fresh "
          "tokenizer each time (spaCy's cache starts cold), words = spaCy tokens that are not whitespace. Shares: spaCy CPU seconds for the whole corpus over the "
          "labeling command's wall time (start-up included)."])


if __name__ == "__main__":
    main()
