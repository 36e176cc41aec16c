"""A pretrained transformer encoder (any `transformers` AutoModel) with a pooled linear head, fine-tuned whole.

The encoder is rebuilt from its Hugging Face config, which the model config carries, so a bundle loads
with no network and no cache; the pretrained weights are loaded once, by the training driver
(`pretrained_encoder_state`). Ids are word pieces from the encoder's own tokenizer (textclf.text.wordpiece).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from textclf.errors import ConfigError, one_line
from textclf.models.pretrained import DEFAULT_PRETRAINED
from textclf.models.registry import TextClassifier, check_choice, check_int, check_probability, register_model

POOLINGS = ("mean", "cls")


@dataclass(frozen=True)
class TransformerConfig:
    vocab_size: int
    num_classes: int
    pretrained: str = DEFAULT_PRETRAINED  # where the weights came from: a record, not read to load a bundle
    encoder: dict = field(default_factory=dict)  # the encoder's Hugging Face config (config.json)
    pooling: str = "mean"  # mean of the text's pieces' last hidden states, or the first ([CLS]) piece's
    dropout: float = 0.1  # before the head, as BERT's own classification head

    def __post_init__(self):
        check_int(self, "vocab_size", 2)
        check_int(self, "num_classes", 2)
        check_choice(self, "pooling", POOLINGS)
        check_probability(self, "dropout")
        if not isinstance(self.encoder, dict) or "model_type" not in self.encoder:
            raise ConfigError("model option encoder must be a Hugging Face config with a model_type")


def build_encoder(encoder_config: dict) -> nn.Module:
    """A randomly initialised AutoModel from config.json's fields; `transformers` does the architecture."""
    from transformers import AutoConfig, AutoModel

    fields = dict(encoder_config)
    try:
        config = AutoConfig.for_model(fields.pop("model_type"), **fields)
    except (ValueError, KeyError) as e:
        raise ConfigError(f"the encoder's config is not one transformers knows: {one_line(e)}") from None
    with _quiet_transformers():
        try:  # the [CLS] pooler is not used: left out, or DDP would wait for its gradients
            return AutoModel.from_config(config, add_pooling_layer=False)
        except TypeError:  # an architecture without one
            return AutoModel.from_config(config)


def encoder_config(folder: Path) -> dict:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(folder), local_files_only=True).to_dict()
    except (OSError, ValueError) as e:
        raise ConfigError(f"--pretrained {folder}: config.json is not a Hugging Face config: {one_line(e)}") from None


def pretrained_encoder_state(folder: Path) -> dict[str, torch.Tensor]:
    """The encoder's pretrained weights, as `build_encoder(encoder_config(folder))` names them."""
    from transformers import AutoModel

    with _quiet_transformers():
        try:
            try:
                model = AutoModel.from_pretrained(str(folder), local_files_only=True, add_pooling_layer=False)
            except TypeError:
                model = AutoModel.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError, RuntimeError) as e:
            raise ConfigError(f"--pretrained {folder}: cannot load its weights: {one_line(e)}") from None
    return {k: v.detach().contiguous() for k, v in model.state_dict().items()}


@contextlib.contextmanager
def _quiet_transformers():
    """transformers reports the weights it leaves out (the pooler) as warnings, expected here, and shows a
    progress bar for loading weights that take a second."""
    from transformers.utils import logging

    level, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()


@register_model("transformer", TransformerConfig)
class TransformerClassifier(TextClassifier):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = config
        self.encoder = build_encoder(config.encoder)
        if self.encoder.config.vocab_size != config.vocab_size:
            raise ConfigError(
                f"model option vocab_size is {config.vocab_size}, the encoder's is {self.encoder.config.vocab_size}"
            )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(self.encoder.config.hidden_size, config.num_classes)

    @property
    def embedding(self) -> nn.Embedding:  # the word-piece vectors, as other models' embedding
        return self.encoder.get_input_embeddings()

    def load_pretrained(self, state: dict[str, torch.Tensor], freeze: bool = False) -> None:
        """The encoder's pretrained weights (`pretrained_encoder_state`); the head stays as initialised."""
        self.encoder.load_state_dict(state, strict=True)
        self.encoder.requires_grad_(not freeze)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.size(1), device=ids.device)
        valid = positions.unsqueeze(0) < lengths.to(ids.device).unsqueeze(1)
        hidden = self.encoder(input_ids=ids.masked_fill(~valid, 0), attention_mask=valid.long()).last_hidden_state
        if self.config.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = valid.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
        return self.head(self.dropout(pooled))
