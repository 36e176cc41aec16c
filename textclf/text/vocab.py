"""Token vocabulary: counting (mergeable across shards), building, and encoding to int32 ids."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from textclf.errors import ConfigError

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1


@dataclass(frozen=True)
class VocabConfig:
    min_freq: int = 2
    max_size: int = 25_000

    def __post_init__(self) -> None:
        if self.min_freq < 1:
            raise ConfigError(f"vocabulary min_freq must be >= 1, got {self.min_freq}")
        if self.max_size < 3:
            raise ConfigError(f"vocabulary max_size must be >= 3 (room for words), got {self.max_size}")


def count_tokens(token_lists: Iterable[Sequence[str]]) -> Counter:
    """Token counts of one shard; shards merge with `+` (Counter addition)."""
    counts: Counter = Counter()
    for tokens in token_lists:
        counts.update(tokens)
    return counts


class Vocab:
    """Maps tokens to ids; id 0 is padding and id 1 stands for every unknown token."""

    def __init__(self, itos: Sequence[str]) -> None:
        if list(itos[:2]) != [PAD, UNK]:
            raise ConfigError(f"a vocabulary must start with {PAD!r}, {UNK!r}")
        self.itos = list(itos)
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ConfigError("the vocabulary has duplicate tokens")

    @classmethod
    def build(cls, counts: Counter, config: VocabConfig = VocabConfig()) -> Vocab:
        """Most frequent tokens first (ties alphabetical, so builds are reproducible)."""
        kept = [(t, c) for t, c in counts.items() if c >= config.min_freq and t not in (PAD, UNK)]
        kept.sort(key=lambda tc: (-tc[1], tc[0]))
        return cls([PAD, UNK] + [t for t, _ in kept[: config.max_size - 2]])

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: Sequence[str], max_tokens: int) -> np.ndarray:
        """int32 ids of the first max_tokens tokens; an empty text becomes one <unk>."""
        get = self.stoi.get
        ids = [get(t, UNK_ID) for t in tokens[:max_tokens]]
        return np.asarray(ids or [UNK_ID], dtype=np.int32)

    def encode_batch(self, token_lists: Iterable[Sequence[str]], max_tokens: int) -> list[np.ndarray]:
        return [self.encode(tokens, max_tokens) for tokens in token_lists]
