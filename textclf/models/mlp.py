"""Bag-of-words MLP (a deep averaging network, Iyyer et al. 2015).

An EmbeddingBag over the vocabulary is a sparse first linear layer on the bag of words;
two ReLU hidden layers follow. Word dropout (drop whole tokens while training) is the
DAN paper's regulariser and matters on small corpora.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from textclf.models.registry import (
    TextClassifier,
    check_choice,
    check_int,
    check_probability,
    mask_padding,
    register_model,
)


@dataclass(frozen=True)
class MLPConfig:
    vocab_size: int
    num_classes: int
    embedding_dim: int = 128
    hidden_dim: int = 256
    mode: str = "mean"  # "mean" or "sum" of the word vectors
    dropout: float = 0.3
    word_dropout: float = 0.3

    def __post_init__(self):
        check_int(self, "vocab_size", 2)
        check_int(self, "num_classes", 2)
        check_int(self, "embedding_dim")
        check_int(self, "hidden_dim")
        check_choice(self, "mode", ("mean", "sum"))
        check_probability(self, "dropout")
        check_probability(self, "word_dropout")


@register_model("mlp", MLPConfig)
class MLP(TextClassifier):
    def __init__(self, config: MLPConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.EmbeddingBag(config.vocab_size, config.embedding_dim, mode=config.mode, padding_idx=0)
        hidden = config.hidden_dim
        self.layers = nn.Sequential(
            nn.Linear(config.embedding_dim, hidden),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(hidden, config.num_classes),
        )
        nn.init.normal_(self.embedding.weight, std=0.1)
        with torch.no_grad():
            self.embedding.weight[0].zero_()
        for layer in self.layers:
            if isinstance(layer, nn.Linear):
                nn.init.kaiming_uniform_(layer.weight, nonlinearity="relu")
                nn.init.zeros_(layer.bias)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        ids, _ = mask_padding(ids, lengths)
        if self.training and self.config.word_dropout > 0:
            dropped = torch.rand(ids.shape, device=ids.device) < self.config.word_dropout
            ids = ids.masked_fill(dropped, 0)  # 0 is <pad>, which the bag skips
        return self.layers(self.embedding(ids))
