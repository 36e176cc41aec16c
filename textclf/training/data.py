"""Training data on Ray Data: read Parquet, tokenize once, build the vocabulary, encode.

The encoded datasets are materialized before training starts, so the training workers (which may
hold every CPU of a small machine) never wait on Ray Data tasks that cannot be scheduled.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads

from textclf.errors import DataError, one_line
from textclf.text.encoding import count_table, encode_table, tokenize_table, wordpiece_table
from textclf.text.tokenizer import TokenizerConfig
from textclf.text.vocab import Vocab, VocabConfig
from textclf.text.wordpiece import WordPieceTokenizer
from textclf.training.config import TrainConfig


@dataclass
class TrainingData:
    train: object  # ray.data.Dataset of {ids: list<int32>, label: int32}
    validation: object
    tokenizer: TokenizerConfig | WordPieceTokenizer
    vocab: Vocab | None  # built from the training texts; None for word pieces (the encoder has its own)
    vocab_size: int
    labels: list[str]
    label_counts: dict[str, int]  # training texts per label
    rows: dict[str, int]  # rows read, kept and dropped per split
    multi_label: bool  # the label column holds lists: any number of labels per text


def parquet_dataset(path: str, columns: list[str], what: str) -> pads.Dataset:
    """Open a Parquet file or folder, checking it exists, has rows and has the needed columns."""
    if "://" not in path and not Path(path).exists():
        raise DataError(f"{what} data {path} does not exist")
    try:
        dataset = pads.dataset(path, format="parquet")
    except Exception as e:  # pyarrow raises several types for unreadable input
        raise DataError(f"cannot read {what} data {path} as Parquet: {one_line(e)}") from None
    missing = [c for c in columns if c not in dataset.schema.names]
    if missing:
        raise DataError(f"{what} data {path} has no column {missing[0]!r} (columns: {', '.join(dataset.schema.names)})")
    if not dataset.files:
        raise DataError(f"{what} data {path} holds no Parquet files")
    if dataset.count_rows() == 0:  # from the files' footers: cheap
        raise DataError(f"{what} data {path} has no rows")
    return dataset


def is_multi_label(dataset: pads.Dataset, column: str) -> bool:
    kind = dataset.schema.field(column).type
    return pa.types.is_list(kind) or pa.types.is_large_list(kind)


def label_counts(dataset: pads.Dataset, column: str) -> Counter:
    """Texts per label; a multi-label column's lists are counted label by label."""
    values = dataset.to_table(columns=[column]).column(column).drop_null()
    if is_multi_label(dataset, column):
        values = pa.chunked_array([chunk.flatten() for chunk in values.chunks], values.type.value_type)
    counts = values.drop_null().cast("string").value_counts()
    return Counter({v["values"].as_py(): v["counts"].as_py() for v in counts})


def check_inputs(config: TrainConfig, train_path: str, validation_path: str | None) -> None:
    columns = [config.text_column, config.label_column]
    parquet_dataset(train_path, columns, "training")
    if validation_path:
        parquet_dataset(validation_path, columns, "validation")


# Rows per Ray Data block when reading training data. Each block is read and tokenized by one task, in a
# worker process that loads spaCy first: a block should hold far more tokenizing than that start costs,
# and a small corpus is best read as one block.
READ_BLOCK_ROWS = 100_000


def read_parquet(files: list[str], columns: list[str], rows: int):
    """Ray Data's V1 Parquet reader, one block per READ_BLOCK_ROWS rows. The V2 reader (2.60's default)
    starts footer-reading actors for every read, and both split even a small corpus into blocks for
    parallelism, each tokenized in a new process that loads spaCy (docs/performance.md has the figures)."""
    import ray.data

    context = ray.data.DataContext.get_current()
    saved, context.use_datasource_v2 = context.use_datasource_v2, False  # read when the read is planned
    try:
        return ray.data.read_parquet(files, columns=columns, override_num_blocks=max(1, -(-rows // READ_BLOCK_ROWS)))
    finally:
        context.use_datasource_v2 = saved


def prepare_training_data(
    config: TrainConfig,
    train_path: str,
    validation_path: str | None,
    wordpieces: WordPieceTokenizer | None = None,
    wordpiece_vocab_size: int = 0,
) -> TrainingData:
    """The encoded splits: spaCy tokens and a vocabulary built from the training split, or, given a
    pretrained encoder's tokenizer (`wordpieces`), its word pieces."""
    columns = [config.text_column, config.label_column]
    train_files = parquet_dataset(train_path, columns, "training")
    counts = label_counts(train_files, config.label_column)
    multi_label = is_multi_label(train_files, config.label_column)
    if len(counts) < 2:
        raise DataError(f"training data {train_path} needs at least 2 labels, found {len(counts)}")
    labels = sorted(counts)
    names = dict(text_column=config.text_column, label_column=config.label_column)
    if wordpieces is not None:
        tokenizer, vocab = wordpieces, None
        steps = [(wordpiece_table, dict(tokenizer=wordpieces, labels=labels, max_tokens=config.max_tokens, **names))]
        train = read(train_files, columns, steps)
    else:
        tokenizer = TokenizerConfig(lang=config.lang, lowercase=config.lowercase)
        tokenize = (tokenize_table, dict(tokenizer=tokenizer.__dict__, **names))
        tokens = read(train_files, columns, [tokenize]).materialize()  # kept: counted, then encoded
        token_counts = Counter()
        for batch in tokens.iter_batches(batch_format="pyarrow", batch_size=4096):
            token_counts += count_table(batch)
        vocab = Vocab.build(token_counts, VocabConfig(config.min_freq, config.max_vocab))
        encode = (encode_table, dict(vocab=vocab, labels=labels, max_tokens=config.max_tokens))
        steps = [tokenize, encode]
        train = mapped(tokens, [encode])
    # One seeded shuffle so files sorted by label or source do not give the workers skewed shards.
    train = train.random_shuffle(seed=config.seed).materialize()
    rows = {"train_read": train_files.count_rows(), "train": train.count()}

    if validation_path:
        val_files = parquet_dataset(validation_path, columns, "validation")
        if is_multi_label(val_files, config.label_column) != multi_label:
            kinds = ("one label per text", "lists of labels")
            raise DataError(
                f"training labels are {kinds[multi_label]} but validation labels are {kinds[not multi_label]}"
            )
        unknown = sorted(set(label_counts(val_files, config.label_column)) - set(labels))
        if unknown:
            raise DataError(f"validation data has label(s) never seen in training: {', '.join(unknown[:5])}")
        validation = read(val_files, columns, steps).materialize()
        rows["validation_read"] = val_files.count_rows()
    else:  # hold out 10% of the training rows for validation and early stopping
        train, validation = (d.materialize() for d in train.train_test_split(test_size=0.1, seed=config.seed))
        rows["validation_read"] = 0
    rows["validation"] = validation.count()
    rows["train"] = train.count()
    if rows["train"] == 0 or rows["validation"] == 0:
        raise DataError("no usable rows: every text or label is null")
    vocab_size = len(vocab) if vocab is not None else wordpiece_vocab_size
    return TrainingData(train, validation, tokenizer, vocab, vocab_size, labels, dict(counts), rows, multi_label)


def read(files: pads.Dataset, columns: list[str], steps: list):
    """The files read with Ray Data and mapped through `steps`."""
    return mapped(read_parquet(files.files, columns, files.count_rows()), steps)


def mapped(dataset, steps: list):
    """`dataset` mapped through `steps`, (function, keyword arguments) pairs of Arrow-table transforms."""
    for function, kwargs in steps:
        dataset = dataset.map_batches(function, fn_kwargs=kwargs, batch_format="pyarrow")
    return dataset
