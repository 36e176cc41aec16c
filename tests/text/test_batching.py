import numpy as np
import pytest

from textclf.errors import ConfigError
from textclf.text.batching import BatchingConfig, PaddingStats, bucket_batches, pad_batch


def test_every_row_once_and_budgets_respected():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 120, size=5000)
    config = BatchingConfig(batch_tokens=1000, max_rows=64, window_rows=1024)
    batches = list(bucket_batches(lengths, config))
    seen = np.concatenate(batches)
    assert sorted(seen.tolist()) == list(range(len(lengths)))
    for b in batches:
        assert len(b) <= 64
        assert len(b) == 1 or len(b) * lengths[b].max() <= 1000


def test_a_row_longer_than_the_budget_gets_its_own_batch():
    batches = list(bucket_batches([5, 500, 6], BatchingConfig(batch_tokens=100)))
    assert [b.tolist() for b in batches] == [[0, 2], [1]]


def test_bucketing_pads_far_less_than_file_order():
    lengths = np.random.default_rng(1).integers(1, 200, size=20_000)
    bucketed, file_order = PaddingStats(), PaddingStats()
    for b in bucket_batches(lengths, BatchingConfig(batch_tokens=4096, max_rows=256)):
        bucketed.add(lengths[b])
    for start in range(0, len(lengths), 64):
        file_order.add(lengths[start : start + 64])
    assert bucketed.efficiency > 0.97 and file_order.efficiency < 0.6


def test_windows_keep_rows_local_and_rng_shuffles_batch_order():
    lengths = np.arange(100)[::-1]
    config = BatchingConfig(batch_tokens=10_000, max_rows=10, window_rows=50)
    plain = list(bucket_batches(lengths, config))
    assert all(b.max() < 50 for b in plain[:5]) and all(b.min() >= 50 for b in plain[5:])
    shuffled = list(bucket_batches(lengths, config, rng=np.random.default_rng(3)))
    as_tuples = lambda batches: [tuple(b.tolist()) for b in batches]  # noqa: E731
    assert sorted(as_tuples(shuffled)) == sorted(as_tuples(plain)) and as_tuples(shuffled) != as_tuples(plain)


def test_pad_batch_pads_to_the_batch_longest_with_zeros():
    ids, lengths = pad_batch([np.array([3, 4, 5], np.int32), np.array([7], np.int32)])
    assert ids.tolist() == [[3, 4, 5], [7, 0, 0]] and lengths.tolist() == [3, 1]
    assert ids.dtype == np.int64


def test_config_validation():
    with pytest.raises(ConfigError):
        BatchingConfig(batch_tokens=0)
