"""spaCy's rule-based tokenizer (no pipeline, no model download), batched."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Iterable, Sequence

from textclf.errors import ConfigError

# spaCy refuses texts over nlp.max_length (1,000,000) and slows down long before; cutting first keeps
# a 5-million-character document from crashing or stalling a batch. Tokens past max_tokens are
# dropped anyway, so the cut only matters for texts far longer than any model reads.
DEFAULT_MAX_CHARS = 100_000


@dataclass(frozen=True)
class TokenizerConfig:
    lang: str = "en"
    lowercase: bool = True
    max_chars: int = DEFAULT_MAX_CHARS

    def __post_init__(self) -> None:
        if not 1 <= self.max_chars <= 1_000_000:
            raise ConfigError(f"tokenizer max_chars must be in 1..1000000, got {self.max_chars}")


class Tokenizer:
    """Splits texts into word tokens with `spacy.blank(lang).tokenizer`.

    Non-string values must be filtered out by the caller; they are a data error, not a text.
    """

    def __init__(self, config: TokenizerConfig = TokenizerConfig()) -> None:
        spacy = _import_spacy()
        try:
            self._nlp = spacy.blank(config.lang)
        except (ImportError, KeyError) as e:
            raise ConfigError(f"spaCy has no tokenizer for language {config.lang!r}") from e
        self.config = config

    def __call__(self, text: str) -> list[str]:
        return self.tokenize_batch([text])[0]

    def tokenize_batch(self, texts: Sequence[str], batch_size: int = 1000) -> list[list[str]]:
        return [[t.text for t in doc if not t.is_space] for doc in self._pipe(texts, batch_size)]

    def _pipe(self, texts: Iterable[str], batch_size: int):
        return self._nlp.tokenizer.pipe((self._prepare(t) for t in texts), batch_size=batch_size)

    def _prepare(self, text: str) -> str:
        text = text[: self.config.max_chars]
        return text.lower() if self.config.lowercase else text


def _import_spacy():
    """spaCy's thinc imports torch where it is installed, for models that textclf never runs through
    thinc: two thirds of spaCy's import time (3 of 4.5 s on a slow CPU) in every tokenizing worker of
    training, where nothing else needs torch. It is hidden while spaCy loads, unless this process has
    it already; `import torch` works as usual afterwards."""
    if "torch" in sys.modules:
        import spacy

        return spacy
    sys.modules["torch"] = None  # import torch raises ImportError, which thinc takes as "not installed"
    try:
        import spacy
    finally:
        del sys.modules["torch"]
    return spacy
