"""Tokenizer cost: words/s on one core over the mixed-length corpus of textclf's tokenizer (spaCy's rules,
each word's tokens remembered), of spaCy's tokenizer making a Doc per text, of the whole per-row
encoding to ids that labeling runs (textclf.labeling.labeler.encode_texts) and of the seed's regex; the
same on rotten-tomatoes' train split, whose texts do not repeat; and the share of `textclf label`'s
wall time that this encoding takes.

    python benchmarks/tokenizer.py [--docs 30000] [--repeats 3] [--arch bow]

The labeling wall time comes from runs/bench/labeling.json when benchmarks/labeling.py ran on the
same corpus; otherwise `textclf label` runs once here with the --arch bundle.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import seed_style
from corpus import corpus_dir
from harness import WORK, bundle, emit, median, prepared_data, table

BATCH = 4096  # texts per call, as labeling's calls have them


def timed(setup: Callable[[], object], run: Callable[[object], object], repeats: int) -> float:
    """Median CPU seconds of `run(setup())` over `repeats` runs, setup untimed. CPU time, not wall
    time, so other work on a shared machine does not count against the tokenizer. Each run gets a fresh
    tokenizer: textclf's remembers every word it has split (spaCy's its first 10,000), and the mixed
    corpus reuses 12,808 snippets, so a warm one would flatter it far beyond a real corpus."""
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

    from textclf.labeling.labeler import bundle_encoder, encode_texts
    from textclf.text.encoding import cached_tokenizer
    from textclf.text.tokenizer import Tokenizer, _import_spacy

    corpus = corpus_dir(args.work, args.docs)
    table_in = pq.read_table(corpus, columns=["id", "text"])
    texts = table_in.column("text").to_pylist()
    words = sum(len(t) for t in Tokenizer().tokenize_batch(texts))
    model_dir = str(bundle(args.arch, args.work).resolve())

    def fresh_encoder() -> None:  # labeling's encoder remembers chunks as the tokenizer does: both start cold
        cached_tokenizer.cache_clear()
        bundle_encoder.cache_clear()
        encode_texts(table_in.slice(0, 1), model_dir)  # builds the tokenizer, loads the vocabulary: untimed

    reviews = pq.read_table(prepared_data(args.work) / "train", columns=["text"]).column("text").to_pylist()
    review_words = sum(len(t) for t in Tokenizer().tokenize_batch(reviews))

    def textclf_tokenizer(corpus: list[str]) -> float:
        return timed(
            Tokenizer,
            lambda t: [t.tokenize_batch(corpus[i : i + BATCH]) for i in range(0, len(corpus), BATCH)],
            args.repeats,
        )

    def spacy_docs(corpus: list[str]) -> float:
        return timed(
            lambda: _import_spacy().blank("en").tokenizer,
            lambda t: [[w.text for w in t(x.lower()) if not w.is_space] for x in corpus],
            args.repeats,
        )

    ours = "textclf tokenizer (spaCy's rules, words remembered)"
    encoding = "labeling's encoding (textclf.labeling.labeler.encode_texts: checks, tokens, ids)"
    seconds = {
        ours: textclf_tokenizer(texts),
        "spaCy's tokenizer, a Doc per text": spacy_docs(texts),
        encoding: timed(fresh_encoder, lambda _: encode_texts(table_in, model_dir), args.repeats),
        "seed's regex (re.findall)": timed(
            lambda: None, lambda _: [seed_style.tokenize(t) for t in texts], args.repeats
        ),
    }
    review_seconds = {ours: textclf_tokenizer(reviews), "spaCy's tokenizer, a Doc per text": spacy_docs(reviews)}
    rows = [[name, f"{words / s:,.0f}", s] for name, s in seconds.items()]
    rows += [
        [
            f"{name}, rotten-tomatoes train ({len(reviews):,} reviews, {review_words:,} words)",
            f"{review_words / s:,.0f}",
            s,
        ]
        for name, s in review_seconds.items()
    ]
    encoding_s = seconds[encoding]
    cpus = os.cpu_count() or 1
    shares = [
        [arch, wall, encoding_s, f"{encoding_s / wall:.0%}", f"{encoding_s / (wall * cpus):.0%}"]
        for arch, wall in labeling_walls(args.work, args.docs, args.arch, corpus).items()
    ]
    emit(
        "tokenizer",
        f"Tokenizer: words/s on one core, {args.docs:,} mixed-length documents ({words:,} spaCy words)",
        table(["tokenizer", "words/s per core", "CPU seconds for the corpus"], rows)
        + "\n\n"
        + table(
            [
                "labeling bundle",
                "`textclf label` wall (s)",
                "encoding (CPU s)",
                "share of wall time",
                f"share of the machine's CPU time ({cpus} cores x wall)",
            ],
            shares,
        ),
        [
            f"Median of {args.repeats} timing(s), one process (the tokenizers are single-threaded), a fresh "
            "tokenizer and encoder each time (caches start cold), words = spaCy tokens that are not whitespace. "
            "Shares: labeling's encoding CPU seconds for the whole corpus over the labeling command's wall time "
            "(start-up included)."
        ],
    )


if __name__ == "__main__":
    main()
