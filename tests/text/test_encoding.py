import random

import numpy as np
import pytest
from test_tokenizer import _adversarial_texts

from textclf.text.encoding import TextEncoder
from textclf.text.tokenizer import Tokenizer, TokenizerConfig
from textclf.text.vocab import UNK_ID, Vocab, count_tokens


def _per_text(lengths: np.ndarray, ids: np.ndarray) -> list[list[int]]:
    assert lengths.dtype == np.int64 and ids.dtype == np.int32 and lengths.sum() == len(ids)
    return [part.tolist() for part in np.split(ids, np.cumsum(lengths)[:-1])] if len(lengths) else []


@pytest.mark.parametrize("lowercase", [True, False])
def test_batch_ids_are_the_tokenizer_then_the_vocabulary(lowercase):
    # special cases across whitespace (spaCy tokenizes those texts whole), texts without a token,
    # texts cut by max_tokens, unknown words; batches in shuffled order, so later ones reuse remembered
    # chunks and texts of one batch sit next to different neighbours
    texts = [
        "[ :)%",
        "it 's a film .",
        "Dontve\nShan't  Gotta",
        "   ",
        "\u200f",
        "good " * 40,
        "and/or ( ok )",
    ] + _adversarial_texts(1500, seed=3)
    config = TokenizerConfig(lowercase=lowercase)
    reference_tokens = Tokenizer(config).tokenize_batch(texts)
    vocab = Vocab(["<pad>", "<unk>"] + [t for t, _ in count_tokens(reference_tokens[::2]).most_common(500)])
    for max_tokens in (1, 6, 256):
        encoder = TextEncoder(Tokenizer(config), vocab, max_tokens)
        expected = [ids.tolist() for ids in vocab.encode_batch(reference_tokens, max_tokens)]
        order = list(range(len(texts)))
        for repeat in range(2):
            random.Random(repeat).shuffle(order)
            for start in range(0, len(order), 97):
                part = order[start : start + 97]
                got = _per_text(*encoder.encode_batch([texts[i] for i in part]))
                assert got == [expected[i] for i in part]
    assert TextEncoder(Tokenizer(config), vocab, 8).encode_batch(["   "])[1].tolist() == [UNK_ID]


def test_an_empty_batch_has_no_ids():
    lengths, ids = TextEncoder(Tokenizer(), Vocab(["<pad>", "<unk>", "a"]), 5).encode_batch([])
    assert len(lengths) == 0 and len(ids) == 0


def test_remembered_chunks_are_bounded(monkeypatch):
    import textclf.text.encoding as encoding

    monkeypatch.setattr(encoding, "CHUNK_CACHE_SIZE", 50)
    vocab = Vocab(["<pad>", "<unk>", ","] + [f"w{i}x{j}" for i in range(30) for j in range(0, 20, 3)])
    encoder, tokenizer = TextEncoder(Tokenizer(), vocab, 64), Tokenizer()
    texts = [" ".join(f"w{i}x{j}," for j in range(20)) for i in range(30)]  # 20 new chunks each
    for i in range(0, 30, 2):
        got = _per_text(*encoder.encode_batch(texts[i : i + 2]))
        assert got == [ids.tolist() for ids in vocab.encode_batch(tokenizer.tokenize_batch(texts[i : i + 2]), 64)]
        assert len(encoder._row) <= 50


def test_encoding_keeps_one_cache_of_chunks_its_own():
    from textclf.text.encoding import TextEncoder
    from textclf.text.tokenizer import Tokenizer
    from textclf.text.vocab import Vocab

    tokenizer = Tokenizer()
    encoder = TextEncoder(tokenizer, Vocab(["<pad>", "<unk>", "good", "film"]), 16)
    lengths, ids = encoder.encode_batch(["A good film.", "good"])
    assert lengths.tolist() == [4, 1] and ids.tolist() == [1, 2, 3, 1, 2]
    assert len(tokenizer._chunks) == 0  # the tokenizer remembered none of the encoder's chunks


def test_a_tokenizer_definition_of_another_version_is_refused():
    import pytest

    from textclf.errors import ConfigError
    from textclf.text.tokenizer import TOKENIZER_VERSION, TokenizerConfig

    assert TokenizerConfig().version == TOKENIZER_VERSION == TokenizerConfig(**{"lang": "en"}).version
    with pytest.raises(ConfigError, match="tokenizer version 2"):
        TokenizerConfig(version=2)
