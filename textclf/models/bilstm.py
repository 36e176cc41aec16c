"""Bidirectional LSTM classifier (after bentrevett's "upgraded sentiment analysis").

Sequences are packed, so padding never reaches the LSTM and a row's output does not
depend on how its batch was padded.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from textclf.models.registry import (
    TextClassifier,
    check_bool,
    check_choice,
    check_int,
    check_probability,
    register_model,
)


@dataclass(frozen=True)
class BiLSTMConfig:
    vocab_size: int
    num_classes: int
    embedding_dim: int = 128
    hidden_dim: int = 256
    num_layers: int = 2
    bidirectional: bool = True
    dropout: float = 0.5
    # "last": the final hidden states (the tutorial's); "max": max over time of the top layer's
    # outputs at real positions, which keeps a strong cue from anywhere in a long snippet
    pooling: str = "last"

    def __post_init__(self):
        check_int(self, "vocab_size", 2)
        check_int(self, "num_classes", 2)
        for name in ("embedding_dim", "hidden_dim", "num_layers"):
            check_int(self, name)
        check_bool(self, "bidirectional")
        check_probability(self, "dropout")
        check_choice(self, "pooling", ("last", "max"))


@register_model("bilstm", BiLSTMConfig)
class BiLSTM(TextClassifier):
    def __init__(self, config: BiLSTMConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim, padding_idx=0)
        self.lstm = nn.LSTM(
            config.embedding_dim,
            config.hidden_dim,
            num_layers=config.num_layers,
            bidirectional=config.bidirectional,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.dropout = nn.Dropout(config.dropout)
        directions = 2 if config.bidirectional else 1
        self.fc = nn.Linear(config.hidden_dim * directions, config.num_classes)
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        # Small embeddings move quickly under Adam; orthogonal recurrent weights and a
        # forget-gate bias of 1 keep gradients alive across long snippets.
        nn.init.normal_(self.embedding.weight, std=0.1)
        self.embedding.weight[0] = 0.0
        hidden = self.config.hidden_dim
        for name, param in self.lstm.named_parameters():
            if name.startswith("weight_hh"):
                nn.init.orthogonal_(param)  # over all four gates at once, as Keras does
            elif name.startswith("weight_ih"):
                nn.init.xavier_uniform_(param)
            elif name.startswith("bias"):
                nn.init.zeros_(param)
                if name.startswith("bias_ih"):
                    param[hidden : 2 * hidden] = 1.0  # gate order: input, forget, cell, output

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        embedded = self.dropout(self.embedding(ids))
        packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        outputs, (hidden, _) = self.lstm(packed)
        if self.config.pooling == "max":
            # padded positions come back as zeros: fill them with -inf so they never win the max
            padded, _ = pad_packed_sequence(outputs, batch_first=True, padding_value=float("-inf"))
            return self.fc(self.dropout(padded.max(dim=1).values))
        # hidden: [num_layers * directions, B, H]; keep the last layer's final states.
        if self.config.bidirectional:
            last = torch.cat([hidden[-2], hidden[-1]], dim=1)
        else:
            last = hidden[-1]
        return self.fc(self.dropout(last))
