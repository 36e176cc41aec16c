"""spaCy's rule-based tokenizer (no pipeline, no model download), remembering the tokens of each word."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain, filterfalse, islice
from operator import and_, itemgetter
from typing import NamedTuple

from textclf.errors import ConfigError

# spaCy refuses texts over nlp.max_length (1,000,000) and slows down long before; cutting first keeps
# a 5-million-character document from crashing or stalling a batch. Tokens past max_tokens are
# dropped anyway, so the cut only matters for texts far longer than any model reads.
DEFAULT_MAX_CHARS = 100_000
# Distinct whitespace-separated chunks whose tokens a process keeps (about 60 MB); past it, it starts over.
CHUNK_CACHE_SIZE = 200_000
_tokens, _heads, _tails = itemgetter(0), itemgetter(1), itemgetter(2)


# The tokenizer's definition: what turns a text into tokens (spaCy's rules for `lang`, lowercasing, the cut
# at max_chars). Bundles record it; a change to what a text tokenizes to takes a new version, and a bundle
# whose version this textclf does not know is refused rather than scored with other tokens.
TOKENIZER_VERSION = 1


@dataclass(frozen=True)
class TokenizerConfig:
    lang: str = "en"
    lowercase: bool = True
    max_chars: int = DEFAULT_MAX_CHARS
    version: int = TOKENIZER_VERSION  # bundles written before versions existed read as 1

    def __post_init__(self) -> None:
        if not 1 <= self.max_chars <= 1_000_000:
            raise ConfigError(f"tokenizer max_chars must be in 1..1000000, got {self.max_chars}")
        if self.version != TOKENIZER_VERSION:
            raise ConfigError(
                f"tokenizer version {self.version} is not this textclf's ({TOKENIZER_VERSION}); "
                "use the textclf version that wrote the bundle"
            )


class Tokenizer:
    """Splits texts into word tokens, exactly as `spacy.blank(lang).tokenizer` does.

    spaCy tokenizes each whitespace-separated chunk of a text on its own (prefixes, suffixes, infixes,
    special cases), so the tokens of chunks seen before are kept and new ones are tokenized together,
    once: most words of a corpus repeat, and building a spaCy `Doc` per text was three quarters of
    tokenizing time. One step of spaCy looks across chunks: special cases made of several tokens (":)",
    "that's") are matched over the whole text, and a match across whitespace suppresses the ones it
    overlaps ("[ :)%" keeps ":" and ")" apart). A text in which two neighbouring chunks could begin such
    a match goes through spaCy whole.

    Non-string values must be filtered out by the caller; they are a data error, not a text.
    """

    def __init__(self, config: TokenizerConfig = TokenizerConfig()) -> None:
        spacy = _import_spacy()
        try:
            nlp = spacy.blank(config.lang)
        except (ImportError, KeyError) as e:
            raise ConfigError(f"spaCy has no tokenizer for language {config.lang!r}") from e
        # Each new word becomes a spaCy lexeme with ~20 attributes (shape, like_num, ...) computed at once;
        # textclf reads only is_space, so only it is computed: a quarter of tokenizing new text went there.
        from spacy.attrs import IS_SPACE

        getters = nlp.vocab.lex_attr_getters
        if IS_SPACE in getters:
            nlp.vocab.lex_attr_getters = {IS_SPACE: getters[IS_SPACE]}
        self.config = config
        self._spacy = nlp.tokenizer
        self._chunks = _ChunkCache(self._spacy)

    def __call__(self, text: str) -> list[str]:
        return self.tokenize_batch([text])[0]

    def tokenize_batch(self, texts: Sequence[str]) -> list[list[str]]:
        prepared = [self._prepare(t) for t in texts]
        split = [t.split() for t in prepared]
        self._chunks.learn(split)
        return [self._tokenize(text, chunks) for text, chunks in zip(prepared, split)]

    def split_batch(self, texts: Sequence[str]) -> list[list[str]]:
        """Each text's whitespace-separated chunks, cut and lowercased as configured (str.split splits
        where spaCy does). Their tokens come from `chunks`, unless two neighbours meet in a special case
        (`before.tails & after.heads`): that text takes `tokenize_whole`."""
        return [self._prepare(t).split() for t in texts]

    def chunks(self, chunks: Sequence[str]) -> list[Chunk]:
        """The Chunk of each of the distinct `chunks`, tokenized together and not remembered here: a
        caller that asks for chunks (TextEncoder) keeps its own table of them, the one cache it needs."""
        return self._chunks.read(list(chunks))

    def tokenize_whole(self, text: str) -> list[str]:
        return self._spacy_tokens(self._prepare(text))

    def _spacy_tokens(self, prepared: str) -> list[str]:
        return [t.text for t in self._spacy(prepared) if not t.is_space]

    def _prepare(self, text: str) -> str:
        text = text[: self.config.max_chars]
        return text.lower() if self.config.lowercase else text

    def _tokenize(self, text: str, chunks: list[str]) -> list[str]:
        known = list(map(self._chunks.__getitem__, chunks))
        if any(map(and_, map(_tails, known), map(_heads, islice(known, 1, None)))):
            return self._spacy_tokens(text)
        return list(chain.from_iterable(map(_tokens, known)))


class Chunk(NamedTuple):
    tokens: tuple[str, ...]
    # Bit k is set where the chunk may begin (heads) or end (tails) with the second or first token of
    # the k-th pair of neighbours in a special case, as spaCy's special-case matcher sees its tokens: so
    # `before.tails & after.heads` is non-zero where a special case may span the whitespace between.
    heads: int
    tails: int


class _ChunkCache(dict):
    """chunk -> Chunk, for the chunks tokenize_batch has seen (bounded by CHUNK_CACHE_SIZE)."""

    def __init__(self, spacy_tokenizer) -> None:
        super().__init__()
        self._spacy = spacy_tokenizer
        self._affixes_only = _affix_tokenizer(spacy_tokenizer)
        self._rules = _MatchedSpecialCases(spacy_tokenizer, self._affixes_only)

    def learn(self, texts: list[list[str]]) -> None:
        """Tokenize the chunks of `texts` not known yet, together."""
        new = set(filterfalse(self.__contains__, chain.from_iterable(texts)))
        if len(self) + len(new) > CHUNK_CACHE_SIZE:
            self.clear()
            new = set(chain.from_iterable(texts))
        if new:
            new = list(new)
            self.update(zip(new, self.read(new)))

    def read(self, new: list[str]) -> list[Chunk]:
        """The Chunks of `new` (distinct chunks), from one spaCy call, remembering none of them."""
        if not new:
            return []
        rules = self._rules
        tokenized = _tokenize_apart(self._spacy, new)
        heads = [rules.head_bits.get(tokens[0], 0) for tokens in tokenized]
        tails = [rules.tail_bits.get(tokens[-1], 0) for tokens in tokenized]
        # Where a special case may have been applied at an edge after matching, the matcher saw that
        # edge as the affix rules split it.
        edited = [
            i
            for i, tokens in enumerate(tokenized)
            if tokens[0] in rules.first_pieces or tokens[-1] in rules.last_pieces
        ]
        for i, tokens in zip(edited, _tokenize_apart(self._affixes_only, [new[i] for i in edited])):
            heads[i] |= rules.head_bits.get(tokens[0], 0)
            tails[i] |= rules.tail_bits.get(tokens[-1], 0)
        return list(map(Chunk, tokenized, heads, tails))


def _tokenize_apart(spacy_tokenizer, chunks: list[str]) -> list[tuple[str, ...]]:
    """Each chunk's tokens, from one spaCy call: a newline between chunks is a whitespace token of
    its own, in no special case, so no chunk's tokens depend on its neighbours."""
    if not chunks:
        return []
    pieces: list[tuple[str, ...]] = []
    tokens: list[str] = []
    for token in spacy_tokenizer("\n".join(chunks)):
        if token.is_space:
            pieces.append(tuple(tokens))
            tokens = []
        else:
            tokens.append(token.text)
    pieces.append(tuple(tokens))
    assert len(pieces) == len(chunks)
    return pieces


class _MatchedSpecialCases:
    """The special cases that spaCy's matcher finds over a whole text (it applies the others to a
    whole chunk only), as bits per token for Chunk.heads and Chunk.tails: the matcher sees a special
    case as its string split by the affix rules alone, and the pairs of neighbours come from there."""

    def __init__(self, spacy_tokenizer, affixes_only) -> None:
        from spacy.attrs import ORTH, intify_attrs

        t = spacy_tokenizer
        matched = {
            case: [token.text for token in affixes_only(case)]
            for case in t.rules
            if not t.faster_heuristics
            or t.find_prefix(case)
            or t.find_suffix(case)
            or t.find_infix(case)
            or " " in case
        }
        pairs = sorted({pair for tokens in matched.values() for pair in zip(tokens, tokens[1:])})
        self.head_bits: dict[str, int] = {}
        self.tail_bits: dict[str, int] = {}
        for k, (first, second) in enumerate(pairs):
            self.tail_bits[first] = self.tail_bits.get(first, 0) | 1 << k
            self.head_bits[second] = self.head_bits.get(second, 0) | 1 << k
        pieces = [[intify_attrs(piece, _do_deprecated=True)[ORTH] for piece in t.rules[case]] for case in matched]
        self.first_pieces = {p[0] for p in pieces}
        self.last_pieces = {p[-1] for p in pieces}


def _affix_tokenizer(t):
    """A spaCy tokenizer with `t`'s affix rules and no special cases."""
    from spacy.tokenizer import Tokenizer as SpacyTokenizer

    return SpacyTokenizer(
        t.vocab,
        rules={},
        prefix_search=t.prefix_search,
        suffix_search=t.suffix_search,
        infix_finditer=t.infix_finditer,
        token_match=t.token_match,
        url_match=t.url_match,
    )


def _import_spacy():
    """spaCy's thinc imports torch where it is installed, for models that textclf never runs through
    thinc: most of spaCy's import time, in every tokenizing worker of
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
