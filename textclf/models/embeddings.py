"""Pretrained word vectors for a vocabulary, read from GloVe or word2vec text files.

Files may be gzip-compressed (``.gz``). They are streamed line by line and only the
vocabulary's words are parsed, so multi-GB files cost time, not memory.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import numpy as np
import torch

from textclf.errors import DataError

_SPECIALS = 2  # itos[0] is <pad>, itos[1] is <unk>: never looked up


def _open(path: Path) -> TextIO:
    # errors="replace": one odd byte in a multi-GB file should not stop the load.
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def _header_dim(line: str) -> int | None:
    """The dimension from a word2vec ``N D`` header line, None for a GloVe vector line."""
    parts = line.split()
    if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
        return int(parts[1])
    return None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _vector_lines(path: Path) -> Iterator[tuple[int, int, str, str]]:
    """Yield (line number, dim, word, values text) for each vector line of ``path``."""
    if not path.is_file():
        raise DataError(f"vector file not found: {path}")
    dim = None
    try:
        with _open(path) as lines:
            for number, line in enumerate(lines, 1):
                line = line.rstrip()
                if not line:
                    continue
                if dim is None:
                    dim = _header_dim(line) if number == 1 else None
                    if dim is not None:
                        continue
                    dim = line.count(" ")
                    if dim < 1:
                        raise DataError(f"{path}, line {number}: expected 'word v1 ... vD', got {line[:40]!r}")
                if line.count(" ") == dim:  # fast path: single spaces, one-token word
                    cut = line.index(" ")
                    yield number, dim, line[:cut], line[cut + 1 :]
                    continue
                parts = line.split()
                # GloVe 840B has a few words containing spaces: the last dim fields are the vector.
                if len(parts) < dim + 1 or (len(parts) > dim + 1 and _is_number(parts[-dim - 1])):
                    raise DataError(
                        f"{path}, line {number}: {len(parts) - 1} values where earlier lines have "
                        f"{dim} (inconsistent vector dimensions)"
                    )
                yield number, dim, " ".join(parts[:-dim]), " ".join(parts[-dim:])
    except (OSError, EOFError) as error:  # unreadable file, broken gzip stream
        raise DataError(f"cannot read vector file {path}: {error}") from None


def vectors_dim(path: str | Path) -> int:
    """The dimension of the vectors in ``path`` (read from the header or first line)."""
    for _, dim, _, _ in _vector_lines(Path(path)):
        return dim
    raise DataError(f"no word vectors found in {path}")


def load_vectors(path: str | Path, itos: list[str], seed: int = 0) -> tuple[torch.Tensor, float, int]:
    """Return (matrix [len(itos), dim] float32, coverage, dim) for the vocabulary ``itos``.

    A word takes the file's exact spelling if present, else its lowercase form, else any
    other casing (first in the file). Words not found get seeded random normal rows with
    the found vectors' standard deviation, so they train like the rest; <pad> is zero.
    Coverage is the share of words other than <pad>/<unk> that were found.
    """
    path = Path(path)
    by_folded: dict[str, list[int]] = {}
    for index in range(_SPECIALS, len(itos)):
        by_folded.setdefault(itos[index].lower(), []).append(index)

    found: dict[int, np.ndarray] = {}
    rank: dict[int, int] = {}  # 0 exact, 1 lowercase, 2 other casing; lower is better
    dim = None
    for number, dim, word, values in _vector_lines(path):  # noqa: B007 (dim: every line has the same)
        candidates = by_folded.get(word.lower())
        if not candidates:
            continue
        vector = None
        for index in candidates:
            wanted = itos[index]
            r = 0 if word == wanted else 1 if word == wanted.lower() else 2
            if r >= rank.get(index, 3):
                continue
            if vector is None:
                try:
                    vector = np.array(values.split(), dtype=np.float32)
                except ValueError:
                    raise DataError(f"{path}, line {number}: a vector value is not a number") from None
            found[index], rank[index] = vector, r

    if dim is None:
        raise DataError(f"no word vectors found in {path}")
    if not found:
        raise DataError(f"none of the {len(itos) - _SPECIALS} vocabulary words is in {path}")

    known = np.stack(list(found.values()))
    rng = np.random.default_rng(seed)
    matrix = rng.normal(0.0, float(known.std()) or 1.0, size=(len(itos), dim)).astype(np.float32)
    matrix[list(found)] = known
    matrix[0] = 0.0
    coverage = len(found) / max(len(itos) - _SPECIALS, 1)
    return torch.from_numpy(matrix), coverage, dim
