"""Word pieces of a pretrained encoder's tokenizer.json (the tiny encoder the tests build)."""

import pyarrow as pa
import pytest

from textclf.errors import ConfigError
from textclf.models.pretrained import read_tokenizer
from textclf.text.encoding import wordpiece_table
from textclf.text.wordpiece import WordPieceEncoder, WordPieceTokenizer


def test_batch_encoding_is_per_text_encoding_with_special_tokens(tiny_encoder):
    from tokenizers import Tokenizer

    reference = Tokenizer.from_file(str(tiny_encoder / "tokenizer.json"))
    texts = ["Good plot, great actors.", "dull", "The film of the director and a script that bores."]
    lengths, ids = WordPieceEncoder(read_tokenizer(tiny_encoder), 64).encode_batch(texts)
    expected = [reference.encode(t).ids for t in texts]
    assert lengths.tolist() == [len(e) for e in expected]
    assert ids.tolist() == [i for e in expected for i in e]
    assert {e[0] for e in expected} == {reference.token_to_id("[CLS]")}
    assert {e[-1] for e in expected} == {reference.token_to_id("[SEP]")}


def test_long_texts_keep_their_head_and_the_closing_token(tiny_encoder):
    tokenizer = read_tokenizer(tiny_encoder)
    long = "good film " * 5000 + "awful ending"
    lengths, ids = WordPieceEncoder(tokenizer, 16).encode_batch([long])
    full_lengths, full = WordPieceEncoder(tokenizer, 100_000).encode_batch([long])
    assert lengths.tolist() == [16] and full_lengths[0] > 10_000
    assert ids[:15].tolist() == full[:15].tolist() and ids[-1] == full[-1]  # head, then [SEP]


def test_training_table_drops_rows_without_text_or_label(tiny_encoder):
    table = pa.table({"text": ["good film", None, "bad plot"], "label": ["pos", "neg", None]})
    encoded = wordpiece_table(table, read_tokenizer(tiny_encoder), ["neg", "pos"], 64, "text", "label")
    assert encoded.num_rows == 1 and encoded.column("label").to_pylist() == [1]


def test_a_malformed_tokenizer_file_is_a_config_error():
    with pytest.raises(ConfigError, match="tokenizer.json is not a tokenizer definition"):
        WordPieceEncoder(WordPieceTokenizer('{"model": 3}'), 64)
