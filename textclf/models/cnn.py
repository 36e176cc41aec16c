"""Kim (2014) TextCNN: parallel convolutions, ReLU, max-over-time pooling, dropout, linear.

Pooling only sees windows that start inside a row (a row shorter than a filter keeps its
first window, filled out with zero <pad> vectors), so batch padding never changes a row.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from textclf.errors import ConfigError
from textclf.models.registry import (
    TextClassifier,
    check_int,
    check_probability,
    mask_padding,
    register_model,
)


@dataclass(frozen=True)
class CNNConfig:
    vocab_size: int
    num_classes: int
    embedding_dim: int = 128
    filter_sizes: tuple[int, ...] = (3, 4, 5)
    num_filters: int = 100
    dropout: float = 0.5

    def __post_init__(self):
        check_int(self, "vocab_size", 2)
        check_int(self, "num_classes", 2)
        check_int(self, "embedding_dim")
        check_int(self, "num_filters")
        check_probability(self, "dropout")
        sizes = self.filter_sizes
        if (
            not isinstance(sizes, (list, tuple))
            or not sizes
            or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in sizes)
        ):
            raise ConfigError(f"model option filter_sizes must be a list of integers >= 1, got {sizes!r}")
        object.__setattr__(self, "filter_sizes", tuple(sizes))  # JSON brings it back as a list


@register_model("cnn", CNNConfig)
class TextCNN(TextClassifier):
    def __init__(self, config: CNNConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(config.embedding_dim, config.num_filters, k) for k in config.filter_sizes)
        self.dropout = nn.Dropout(config.dropout)
        self.fc = nn.Linear(config.num_filters * len(config.filter_sizes), config.num_classes)
        # Kim's U(-0.25, 0.25) for random word vectors: the variance of pretrained ones.
        nn.init.uniform_(self.embedding.weight, -0.25, 0.25)
        with torch.no_grad():
            self.embedding.weight[0].zero_()

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        ids, _ = mask_padding(ids, lengths)
        shortfall = max(self.config.filter_sizes) - ids.size(1)
        if shortfall > 0:
            ids = F.pad(ids, (0, shortfall))
        embedded = self.embedding(ids).transpose(1, 2)  # [B, D, T]
        lengths = lengths.to(ids.device).unsqueeze(1)
        pooled = []
        for conv in self.convs:
            k = conv.kernel_size[0]
            features = conv(embedded)  # [B, F, T - k + 1]
            starts = torch.arange(features.size(2), device=ids.device).unsqueeze(0)
            valid = starts + k <= lengths.clamp(min=k)  # [B, T - k + 1]
            # in place (a convolution's backward does not need its output), and ReLU after the max,
            # which it commutes with: two passes fewer over the largest tensor
            features.masked_fill_(~valid.unsqueeze(1), float("-inf"))
            pooled.append(F.relu(features.amax(dim=2)))
        return self.fc(self.dropout(torch.cat(pooled, dim=1)))
