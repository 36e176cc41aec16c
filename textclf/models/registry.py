"""Model registry (timm-style) and the interface every registered classifier shares.

A model is built from plain keyword arguments, so a bundle's JSON rebuilds it:
``create_model(name, **dataclasses.asdict(model.config))``.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable

import torch
from torch import nn

from textclf.errors import ConfigError

_REGISTRY: dict[str, tuple[type, type[nn.Module]]] = {}


def register_model(name: str, config_cls: type) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: make ``name`` buildable by :func:`create_model` from ``config_cls`` fields."""

    def wrap(module_cls: type[nn.Module]) -> type[nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = (config_cls, module_cls)
        module_cls.name = name
        return module_cls

    return wrap


def model_names() -> list[str]:
    """The names :func:`create_model` accepts, sorted."""
    return sorted(_REGISTRY)


def _lookup(name: str) -> tuple[type, type[nn.Module]]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(model_names())}") from None


def config_class(name: str) -> type:
    """The frozen config dataclass of model ``name``."""
    return _lookup(name)[0]


def create_model(name: str, /, **cfg) -> nn.Module:
    """Build model ``name`` from its config fields; ConfigError on unknown names, keys or values."""
    config_cls, module_cls = _lookup(name)
    fields = dataclasses.fields(config_cls)
    valid = [f.name for f in fields]
    for key in cfg:
        if key not in valid:
            raise ConfigError(f"unknown option {key!r} for model {name!r}; valid options: {', '.join(valid)}")
    for f in fields:
        if f.default is dataclasses.MISSING and f.name not in cfg:
            raise ConfigError(f"model {name!r} needs option {f.name!r}")
    return module_cls(config_cls(**cfg))


def create_model_to_load(name: str, /, **cfg) -> nn.Module:
    """`create_model` for a model whose every weight is loaded next, with
    ``load_state_dict(state, assign=True)``. A model that builds on the meta device without drawing
    random numbers (``builds_on_meta``) is built there: no initial weights are drawn only to be
    overwritten (about 1 s of every bow bundle load, for its million-row bigram table)."""
    config_cls, module_cls = _lookup(name)
    # options a model gained later take the value its older bundles were trained with
    cfg = {**getattr(config_cls, "LEGACY_OPTIONS", {}), **cfg}
    with torch.device("meta") if module_cls.builds_on_meta else contextlib.nullcontext():
        return create_model(name, **cfg)


# --- config validation helpers, called from each config's __post_init__ ---


def check_int(config, name: str, minimum: int = 1) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"model option {name} must be an integer >= {minimum}, got {value!r}")


def check_probability(config, name: str) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ConfigError(f"model option {name} must be a number in [0, 1), got {value!r}")


def check_bool(config, name: str) -> None:
    value = getattr(config, name)
    if not isinstance(value, bool):
        raise ConfigError(f"model option {name} must be true or false, got {value!r}")


def check_choice(config, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(config, name)
    if value not in choices:
        raise ConfigError(f"model option {name} must be one of {', '.join(choices)}, got {value!r}")


# --- shared model behaviour ---


def mask_padding(ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero every id at or past its row's length; also return the [B, T] validity mask.

    Models that look at every position use this so that whatever sits in the padding
    cannot change a row's output.
    """
    positions = torch.arange(ids.size(1), device=ids.device)
    valid = positions.unsqueeze(0) < lengths.to(ids.device).unsqueeze(1)
    return ids.masked_fill(~valid, 0), valid


class TextClassifier(nn.Module):
    """Base of registered models: ``forward(ids [B,T], lengths [B]) -> logits [B,K]``.

    Subclasses set ``self.config`` and ``self.embedding`` (its first ``vocab_size`` rows are
    the word vectors; row 0 is ``<pad>`` and stays zero).
    """

    name: str
    config: object
    embedding: nn.Embedding | nn.EmbeddingBag
    # True where building on the meta device draws nothing: torch routes a meta tensor's normal_ through
    # torch._dynamo, a 2.5 s import, so only models that avoid it there are built there to be loaded
    builds_on_meta: bool = False
    # Scoring on CPU: padded tokens per batch (None: textclf.inference.predictor's default) and whether
    # `--precision auto` runs bf16 autocast where the CPU has it natively
    cpu_batch_tokens: int | None = None
    bf16_pays: bool = True
    # what scoring in int8 quantizes (textclf.runtime.precision); torch has dynamic int8 for these only
    int8_layers: tuple[type[nn.Module], ...] = (nn.Linear,)

    def to_int8(self) -> TextClassifier:
        """This model, for scoring on CPU, with its `int8_layers` weights quantized to int8 (in place)."""
        from textclf.runtime.compat import quantize_dynamic_int8

        return quantize_dynamic_int8(self, self.int8_layers)

    @torch.no_grad()
    def load_pretrained(self, vectors: torch.Tensor, freeze: bool = False) -> None:
        """Copy ``vectors`` [vocab_size, embedding_dim] into the word rows of ``self.embedding``.

        ``freeze`` stops training of those word vectors (bow's bigram vectors still learn).
        """
        expected = (self.config.vocab_size, self.config.embedding_dim)
        if tuple(vectors.shape) != expected:
            raise ConfigError(
                f"pretrained vectors have shape {tuple(vectors.shape)}, model {self.name!r} needs "
                f"{expected}; set embedding_dim to the vectors' dimension"
            )
        weight = self.embedding.weight
        weight[: expected[0]].copy_(vectors.to(weight.device, weight.dtype))
        weight[0].zero_()
        weight.requires_grad_(not freeze)
