"""Training configuration: one frozen dataclass, built from CLI flags and/or a YAML file."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textclf.errors import ConfigError, one_line
from textclf.runtime.precision import check_precision

DEFAULT_ARCH = "bow"
# The registered architectures (textclf.models registers them; a test keeps the two equal). Named here
# so that checking a config does not import torch, which the training driver imports while Ray starts.
ARCHITECTURES = ("bilstm", "bow", "cnn", "mlp", "transformer")
# Architectures fine-tuned from a pretrained encoder (`model.pretrained`): AdamW with warm-up and linear decay.
FINE_TUNED = ("transformer",)
CLASS_WEIGHTS = ("none", "balanced")
OPTIMIZERS = ("adam", "sgd")  # FINE_TUNED architectures take AdamW under warm-up and decay


@dataclass(frozen=True)
class TrainConfig:
    arch: str = DEFAULT_ARCH
    model: dict = field(default_factory=dict)  # architecture hyper-parameters overriding its defaults
    epochs: int | None = None  # a cap: early stopping (patience) usually ends the run sooner
    workers: int = 1
    use_gpu: bool = False
    precision: str = "auto"  # textclf.runtime.precision: bf16 autocast on GPUs and on CPUs with native bf16
    batch_tokens: int | None = None
    max_batch_rows: int | None = None
    max_tokens: int = 256
    optimizer: str | None = None  # OPTIMIZERS; None: default_optimizer(arch, multi-label or not)
    lr: float | None = None  # None: default_lr(arch, number of classes, optimizer)
    weight_decay: float | None = None
    clip_norm: float | None = None
    seed: int = 0
    patience: int | None = None  # epochs in which neither validation score nor loss improved, before stopping;
    # None: default_patience(optimizer)
    min_epochs: int = 5  # no early stop before: a many-class model can sit at the majority class a while
    min_freq: int = 2
    max_vocab: int = 25_000
    lang: str = "en"
    lowercase: bool = True
    text_column: str = "text"
    label_column: str = "label"
    embeddings: str | None = None
    freeze_embeddings: bool = False
    class_weights: str = "none"
    max_failures: int = 0

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ConfigError(f"unknown architecture {self.arch!r}; choose one of {', '.join(ARCHITECTURES)}")
        for name, by_arch in DEFAULTS_BY_ARCH.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, by_arch.get(self.arch, by_arch["*"]))
        positive = (
            "epochs",
            "min_epochs",
            "workers",
            "batch_tokens",
            "max_batch_rows",
            "max_tokens",
            "min_freq",
            "max_vocab",
        )
        for name in positive:
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.lr is not None and not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ConfigError(f"lr must be a number > 0, got {self.lr!r}")
        if self.patience is not None and not (isinstance(self.patience, int) and self.patience >= 0):
            raise ConfigError(f"patience must be an integer >= 0, got {self.patience!r}")
        if self.weight_decay < 0 or self.clip_norm < 0 or self.max_failures < 0:
            raise ConfigError("weight_decay, clip_norm and max_failures must be >= 0")
        if self.class_weights not in CLASS_WEIGHTS:
            raise ConfigError(f"class_weights must be one of {', '.join(CLASS_WEIGHTS)}, got {self.class_weights!r}")
        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.optimizer is not None and self.arch in FINE_TUNED:
            raise ConfigError(f"{self.arch} is fine-tuned with AdamW under warm-up and decay; leave optimizer unset")
        check_precision(self.precision)
        if not isinstance(self.model, dict):
            raise ConfigError("model must be a mapping of architecture hyper-parameters")
        if self.arch in FINE_TUNED and self.embeddings:
            raise ConfigError(f"--embeddings are word vectors for the other architectures; {self.arch}: --pretrained")
        if "pretrained" in self.model and self.arch not in FINE_TUNED:
            raise ConfigError(f"--pretrained needs --arch {' or '.join(FINE_TUNED)}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Defaults that differ by architecture (None in TrainConfig takes them). Fine-tuning a pretrained encoder
# follows the field's recipe: a few epochs of small batches, decoupled weight decay, gradients clipped at 1.
DEFAULTS_BY_ARCH: dict[str, dict[str, Any]] = {
    "epochs": {"*": 20, "transformer": 4},
    "batch_tokens": {"*": 2048, "transformer": 4096},
    "max_batch_rows": {"*": 128, "transformer": 16},
    "weight_decay": {"*": 0.0, "transformer": 0.01},
    "clip_norm": {"*": 5.0, "transformer": 1.0},
}


# bow's learning rate grows with the number of classes. Its output layer starts at zero and each class's
# row of it learns mostly from that class's examples, so at 1e-3 a 12- or 39-class corpus of ten thousand
# rows still predicted the majority class after several epochs, while rotten-tomatoes (2 classes) scores
# best at 1e-3 and a point lower at 5e-3 (its million bigram vectors memorise the snippets sooner).
BOW_LR_PER_CLASS = 5e-4
BOW_MAX_LR = 1e-2
DEFAULT_LR = 1e-3  # the other architectures: Adam's usual rate, fine for 2 to 39 classes
# AdamW's peak rate for a pretrained encoder. BERT's recipe is 5e-5; minilm-l6, a 6-layer 384-wide encoder,
# does better at twice that: in 3 epochs, test macro-F1 0.8418 / 0.8387 on rotten-tomatoes / 20newsgroups
# against 0.8306 / 0.8124 at 5e-5. Its 4 epochs: 20newsgroups was still rising after 3 (validation 0.905,
# then 0.911 in 4; test 0.8484, above TF-IDF+LR's 0.8412), rotten-tomatoes is no worse (docs/performance.md).
FINE_TUNE_LR = 1e-4
# SGD's starting rate per text (the loop sums a batch's loss for it), falling linearly to zero: fastText's.
SGD_LR = 0.5
# bow's sublinear pooling weighs a text's features to unit length, where the mean's weights sum to 1: its
# pooled vector is several times longer, and a tenth of the rate suits it (docs/performance.md).
SGD_LR_SUBLINEAR = 0.05
DEFAULT_PATIENCE = 3


def default_optimizer(arch: str, multi_label: bool) -> str | None:
    """bow on multi-label data trains with SGD: lazy Adam overfits there (docs/performance.md)."""
    if arch in FINE_TUNED:
        return None
    return "sgd" if arch == "bow" and multi_label else "adam"


def default_patience(optimizer: str | None) -> int:
    """SGD's rate falls to zero at the last epoch, so that schedule ends the run: its late, small-rate
    epochs are usually its best (debian-packages: best epoch 18 of 20, where patience 3 stopped at 13)."""
    return 0 if optimizer == "sgd" else DEFAULT_PATIENCE


def default_lr(arch: str, num_classes: int, optimizer: str | None = "adam", pooling: str | None = None) -> float:
    """`pooling`: bow's model option of that name."""
    if optimizer == "sgd":
        return SGD_LR_SUBLINEAR if pooling == "sublinear" else SGD_LR
    if arch == "bow":
        return min(BOW_MAX_LR, BOW_LR_PER_CLASS * num_classes)
    return FINE_TUNE_LR if arch in FINE_TUNED else DEFAULT_LR


def _default_text(name: str, default: Any) -> Any:
    """A default as --help shows it: "20; transformer: 4" where it differs by architecture."""
    by_arch = DEFAULTS_BY_ARCH.get(name)
    if by_arch is None:
        return default
    return "; ".join([f"{by_arch['*']:g}"] + [f"{arch}: {value:g}" for arch, value in by_arch.items() if arch != "*"])


TRAIN_DEFAULTS = {
    f.name: _default_text(f.name, f.default)
    for f in dataclasses.fields(TrainConfig)
    if f.default is not dataclasses.MISSING
}


def load_train_config(yaml_path: str | Path | None, overrides: dict[str, Any]) -> TrainConfig:
    """YAML values first, then flags the user actually gave (None means 'not given')."""
    values: dict[str, Any] = {}
    if yaml_path is not None:
        values.update(_read_yaml(Path(yaml_path)))
    values.update({k: v for k, v in overrides.items() if v is not None and k != "pretrained"})
    if overrides.get("pretrained") is not None:  # a model option, given as its own flag
        model = values.get("model") or {}
        values["model"] = {**model, "pretrained": overrides["pretrained"]} if isinstance(model, dict) else model
    for name in ("lr", "weight_decay", "clip_norm"):  # YAML 1.1 reads 1e-3 (no dot) as a string
        if isinstance(values.get(name), str):
            try:
                values[name] = float(values[name])
            except ValueError:
                raise ConfigError(f"{name} must be a number, got {values[name]!r}") from None
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown training option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    try:
        return TrainConfig(**values)
    except TypeError as e:
        raise ConfigError(f"invalid training configuration: {e}") from None


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {one_line(e)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of option: value")
    return {k.replace("-", "_"): v for k, v in data.items()}
