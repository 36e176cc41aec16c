from collections import Counter

import numpy as np
import pytest

from textclf.errors import ConfigError
from textclf.text.vocab import PAD_ID, UNK_ID, Vocab, VocabConfig, count_tokens


def test_build_respects_min_freq_max_size_and_special_ids():
    counts = count_tokens([["a", "b", "a"], ["c", "a", "b"], ["d"]])
    vocab = Vocab.build(counts, VocabConfig(min_freq=2, max_size=10))
    assert vocab.itos == ["<pad>", "<unk>", "a", "b"]
    assert Vocab.build(counts, VocabConfig(min_freq=1, max_size=3)).itos == ["<pad>", "<unk>", "a"]
    assert vocab.stoi["<pad>"] == PAD_ID and vocab.stoi["<unk>"] == UNK_ID


def test_counts_merge_across_shards_like_one_pass():
    shards = [[["x", "y"], ["y"]], [["y", "z"], ["x"]]]
    merged = count_tokens(shards[0]) + count_tokens(shards[1])
    assert merged == count_tokens(shards[0] + shards[1]) == Counter({"y": 3, "x": 2, "z": 1})


def test_ties_are_ordered_alphabetically_for_reproducible_builds():
    vocab = Vocab.build(Counter({"b": 2, "a": 2, "c": 2}), VocabConfig(min_freq=1))
    assert vocab.itos[2:] == ["a", "b", "c"]


def test_encode_truncates_maps_unknown_and_never_returns_empty():
    vocab = Vocab(["<pad>", "<unk>", "good", "film"])
    ids = vocab.encode(["good", "bad", "film", "good"], max_tokens=3)
    assert ids.dtype == np.int32 and ids.tolist() == [2, UNK_ID, 3]
    assert vocab.encode([], max_tokens=5).tolist() == [UNK_ID]
    assert [a.tolist() for a in vocab.encode_batch([["film"], ["good"]], 5)] == [[3], [2]]


def test_bad_configs_and_vocab_files_are_refused():
    with pytest.raises(ConfigError):
        VocabConfig(min_freq=0)
    with pytest.raises(ConfigError):
        Vocab(["a", "b"])
