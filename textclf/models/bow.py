"""fastText-style classifier: a weighted sum of word and hashed-bigram vectors, then a linear layer.

Words and bigrams live in two tables so that pretrained word vectors can be frozen while the
bigram vectors still learn. Bigram ids are hashed from adjacent word ids with tensor ops
inside ``forward``, so no preprocessing or vocabulary of bigrams is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from textclf.models.registry import (
    TextClassifier,
    check_choice,
    check_int,
    check_probability,
    mask_padding,
    register_model,
)

_HASH_MULTIPLIER = 116_049_371  # fastText's bigram hash multiplier
POOLINGS = ("sublinear", "mean")


@dataclass(frozen=True)
class BoWConfig:
    vocab_size: int
    num_classes: int
    embedding_dim: int = 64  # bigram features, not width, carry the accuracy
    # Hashed bigram buckets (0 disables bigrams). Fewer collide: 100k buckets measured 0.5-1 point
    # lower validation accuracy on rotten-tomatoes. Sparse gradients keep a large table cheap to train.
    num_buckets: int = 1_000_000
    dropout: float = 0.5  # on the pooled vector: regularises like L2 on a linear model
    # How a text's words and bigrams add up. "sublinear": each distinct one once, weighted 1 + log(its
    # count) and the weights scaled to unit length, as TF-IDF's sublinear tf: about a point of micro-F1
    # over the mean on debian-packages' tags at the same width, 1.4 of macro-F1 on fortunes
    # (docs/performance.md). "mean": every occurrence averaged, as fastText.
    pooling: str = "sublinear"
    # what a bundle saved before an option existed was trained with
    LEGACY_OPTIONS: ClassVar[dict] = {"pooling": "mean"}
    # Many tags need a wider vector than one label of a few: on debian-packages' 75 tags 64 dimensions
    # lost 0.3-0.6 points of micro-F1 to 256, and 250,000 buckets keep the table its default size.
    MULTI_LABEL_OPTIONS: ClassVar[dict] = {"embedding_dim": 256, "num_buckets": 250_000}

    def __post_init__(self):
        check_int(self, "vocab_size", 2)
        check_int(self, "num_classes", 2)
        check_int(self, "embedding_dim")
        check_int(self, "num_buckets", 0)
        check_probability(self, "dropout")
        check_choice(self, "pooling", POOLINGS)


@register_model("bow", BoWConfig)
class FastText(TextClassifier):
    builds_on_meta = True
    # Sums of table rows: per-batch work dominates, so large batches score faster (2x the docs/s of
    # 4,096-token batches, for padding 0.91 instead of 0.98), and bf16 only adds casts (0.8-0.9x float32's rate)
    cpu_batch_tokens = 32_768
    bf16_pays = False

    def __init__(self, config: BoWConfig):
        super().__init__()
        self.config = config
        dim = config.embedding_dim
        self.embedding = _table(config.vocab_size, dim)
        # Row 0 of the bigram table is padding too: invalid pairs hash to it and drop out.
        self.bigram_embedding = _table(config.num_buckets + 1, dim) if config.num_buckets else None
        self.dropout = nn.Dropout(config.dropout)
        self.fc = nn.Linear(dim, config.num_classes)
        # fastText's initialisation: input vectors U(-1/dim, 1/dim), output layer zero.
        for table in (self.embedding, self.bigram_embedding):
            if table is not None:
                nn.init.uniform_(table.weight, -1.0 / dim, 1.0 / dim)
                with torch.no_grad():
                    table.weight[0].zero_()
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def sparse_tables(self) -> list[nn.EmbeddingBag]:
        """Tables a step touches only a few rows of: trained with sparse gradients on CPU."""
        return [t for t in (self.embedding, self.bigram_embedding) if t is not None]

    def bigram_ids(self, ids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """[B, T-1] bucket ids in 1..num_buckets for pairs inside the row, 0 elsewhere."""
        pairs = ids[:, :-1] * _HASH_MULTIPLIER + ids[:, 1:]
        buckets = pairs % self.config.num_buckets + 1
        return buckets.masked_fill(~valid[:, 1:], 0)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if ids.size(1) < 2:  # keep the bigram table in every step's graph (DDP needs that)
            ids = F.pad(ids, (0, 1))
        ids, valid = mask_padding(ids, lengths)
        bigrams = self.bigram_ids(ids, valid) if self.bigram_embedding is not None else None
        pooled = self._mean(ids, bigrams) if self.config.pooling == "mean" else self._sublinear(ids, bigrams)
        return self.fc(self.dropout(pooled))

    def _mean(self, ids: torch.Tensor, bigrams: torch.Tensor | None) -> torch.Tensor:
        total = _bag(self.embedding, ids)
        count = (ids != 0).sum(dim=1)
        if bigrams is not None:
            total = total + _bag(self.bigram_embedding, bigrams)
            count = count + (bigrams != 0).sum(dim=1)
        return total / count.clamp(min=1).unsqueeze(1).to(total.dtype)

    def _sublinear(self, ids: torch.Tensor, bigrams: torch.Tensor | None) -> torch.Tensor:
        # Per occurrence (1 + log c) / c for a feature seen c times in its row: a bag sum then gives each
        # distinct feature 1 + log c, on padded ids and EmbeddingBag's fast path (padding weighs 0).
        bags = [(self.embedding, *_sublinear_weights(ids))]
        if bigrams is not None:
            bags.append((self.bigram_embedding, *_sublinear_weights(bigrams)))
        scale = sum(squares for _, _, _, squares in bags).clamp(min=1e-12).rsqrt().unsqueeze(1)
        total = None
        for table, features, weights, _ in bags:
            bag = F.embedding_bag(
                features,
                table.weight,
                mode="sum",
                sparse=table.sparse,
                per_sample_weights=(weights * scale).to(table.weight.dtype),
            )
            total = bag if total is None else total + bag
        return total


def _table(rows: int, dim: int) -> nn.EmbeddingBag:
    weight = torch.empty(rows, dim)
    if not weight.is_meta:  # on meta the model is built to load a bundle's weights into: nothing to draw
        weight.normal_()  # EmbeddingBag's own N(0, 1) draw, overwritten below: seeded runs keep their stream
    return nn.EmbeddingBag(rows, dim, mode="sum", padding_idx=0, _weight=weight)


def _bag(table: nn.EmbeddingBag, ids: torch.Tensor) -> torch.Tensor:
    """Per row, the sum of the table rows of its non-zero ids, as `table(ids)` with padding_idx=0
    computes it. Leaving padding out by padding_idx takes CPU embedding_bag off its fast kernel
    (several times slower a row from a 1M-row table). Scoring sums the padding rows too where they are
    zero, as training keeps them: the quickest; otherwise the ids go in flat, padding dropped."""
    if not torch.is_grad_enabled() and not table.weight[0].any():
        return F.embedding_bag(ids, table.weight, mode="sum")
    keep = ids != 0
    counts = keep.sum(dim=1)
    return F.embedding_bag(ids[keep], table.weight, counts.cumsum(0) - counts, mode="sum", sparse=table.sparse)


def _sublinear_weights(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each row's ids sorted, each occurrence's weight (1 + log c) / c where its id occurs c times in
    the row (0 for padding), and per row the sum of the distinct ids' squared weights (1 + log c)^2."""
    features = _sort_rows(ids)
    starts = torch.ones_like(features, dtype=torch.bool)
    starts[:, 1:] = features[:, 1:] != features[:, :-1]
    runs = starts.view(-1).cumsum(0) - 1  # runs of one id never cross rows: each row starts one
    counts = torch.bincount(runs)[runs].view_as(features).to(torch.float32)
    sublinear_tf = counts.log() + 1
    weights = (sublinear_tf / counts).masked_fill_(features == 0, 0)
    return features, weights, (weights * sublinear_tf).sum(dim=1)


def _sort_rows(ids: torch.Tensor) -> torch.Tensor:
    # numpy's vectorised sort is about 13x torch.sort's speed on a [256, 128] CPU batch
    if ids.device.type == "cpu":
        return torch.from_numpy(np.sort(ids.numpy(), axis=1))
    return ids.sort(dim=1).values
