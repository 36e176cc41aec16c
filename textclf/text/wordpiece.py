"""Word pieces for pretrained encoders: a Hugging Face fast tokenizer (tokenizer.json) run by `tokenizers`.

Texts get the special tokens their encoder was pretrained with ([CLS] ... [SEP] for BERT). A text longer
than `max_tokens` pieces keeps its head: the first pieces, then the closing special token. Only the head
can count, so a text is first cut to CHARS_PER_PIECE characters a piece, which keeps a document of
megabytes from being tokenized whole to be truncated.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np

from textclf.errors import ConfigError, one_line

TOKENIZER_FILE = "tokenizer.json"
# Pieces are rarely over 20 characters; a word longer than 100 becomes one [UNK] anyway (WordPiece's
# max_input_chars_per_word), so the cut cannot change a text's first max_tokens pieces in practice.
CHARS_PER_PIECE = 100


@dataclass(frozen=True)
class WordPieceTokenizer:
    """A tokenizer.json's text: what a transformer bundle records in place of spaCy's TokenizerConfig."""

    definition: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.definition.encode()).hexdigest()


class WordPieceEncoder:
    """Texts -> word-piece ids, `encode_batch` shaped as TextEncoder's: (int64 length of each text's
    ids, int32 ids of all texts one after another)."""

    def __init__(self, tokenizer: WordPieceTokenizer, max_tokens: int) -> None:
        from tokenizers import Tokenizer

        try:
            self.tokenizer = Tokenizer.from_str(tokenizer.definition)
        except Exception as e:  # tokenizers raises a bare Exception for a malformed file
            raise ConfigError(f"{TOKENIZER_FILE} is not a tokenizer definition: {one_line(e)}") from None
        self.tokenizer.no_padding()  # batches are padded later, each to its own longest row
        self.tokenizer.enable_truncation(max_tokens)
        self.max_chars = max_tokens * CHARS_PER_PIECE

    def encode_batch(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        cut = [text[: self.max_chars] for text in texts]
        encodings = self.tokenizer.encode_batch_fast(cut)  # no character offsets: not needed here
        lengths = np.fromiter((len(e.ids) for e in encodings), np.int64, len(encodings))
        ids = np.fromiter(chain.from_iterable(e.ids for e in encodings), np.int32, int(lengths.sum()))
        return lengths, ids


@functools.lru_cache(maxsize=2)
def cached_wordpiece_encoder(tokenizer: WordPieceTokenizer, max_tokens: int) -> WordPieceEncoder:
    """One encoder per process and bundle: Ray reuses worker processes across tasks."""
    return WordPieceEncoder(tokenizer, max_tokens)
