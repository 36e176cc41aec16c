"""Model bundle: `model.safetensors` (weights only) + `model.json` (everything to rebuild it).

Loading never unpickles: weights come from safetensors, the rest from JSON, and the weights'
sha256 must match the one recorded at save time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from textclf.errors import BundleError
from textclf.tokenizer import TokenizerConfig
from textclf.vocab import Vocab

FORMAT = "textclf-bundle"
FORMAT_VERSION = 1
WEIGHTS, META = "model.safetensors", "model.json"


@dataclass
class Bundle:
    model: torch.nn.Module
    arch: str
    vocab: Vocab
    labels: list[str]
    tokenizer: TokenizerConfig
    max_tokens: int
    info: dict[str, Any]  # training config, metrics, versions: carried along, not needed to predict

    @property
    def weights_sha256(self) -> str:
        return self.info.get("weights_sha256", "")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    import pyarrow
    import spacy

    import textclf

    return {"textclf": textclf.__version__, "torch": torch.__version__, "spacy": spacy.__version__,
            "pyarrow": pyarrow.__version__, "python": platform.python_version()}


def save_bundle(directory: str | Path, model: torch.nn.Module, arch: str, vocab: Vocab, labels: list[str],
                tokenizer: TokenizerConfig, max_tokens: int, info: dict[str, Any] | None = None) -> Path:
    """Write weights then metadata (with the weights' hash) into `directory`; returns it."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS))
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": arch,
        "model_config": dataclasses.asdict(model.config),
        "labels": list(labels),
        "tokenizer": dataclasses.asdict(tokenizer),
        "max_tokens": max_tokens,
        "vocab": vocab.itos,
        **(info or {}),
        "versions": library_versions(),
        "weights_sha256": sha256_file(directory / WEIGHTS),
    }
    tmp = directory / (META + ".tmp")
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, directory / META)
    return directory


def read_bundle_meta(directory: str | Path) -> dict[str, Any]:
    directory = Path(directory)
    if not directory.is_dir():
        raise BundleError(f"{directory} is not a model bundle: no such folder")
    for name in (META, WEIGHTS):
        if not (directory / name).is_file():
            raise BundleError(f"{directory} is not a model bundle: {name} is missing")
    try:
        meta = json.loads((directory / META).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"{directory / META} is not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise BundleError(f"{directory} is not a textclf model bundle ({META} has no format {FORMAT!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{directory}: bundle format_version {meta.get('format_version')} is not supported")
    return meta


def load_bundle(directory: str | Path, device: str | torch.device = "cpu") -> Bundle:
    """Rebuild the model from model.json and load verified weights onto `device` (CPU by default,
    whatever device the bundle was trained on)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from textclf.models import create_model

    directory = Path(directory)
    meta = read_bundle_meta(directory)
    actual = sha256_file(directory / WEIGHTS)
    if actual != meta.get("weights_sha256"):
        raise BundleError(f"{directory / WEIGHTS} does not match the sha256 in {META}: the bundle is corrupt")
    try:
        model = create_model(meta["arch"], **meta["model_config"])
        state = load_file(str(directory / WEIGHTS), device="cpu")
        model.load_state_dict(state, strict=True)
        vocab = Vocab(meta["vocab"])
        tokenizer = TokenizerConfig(**meta["tokenizer"])
        labels = list(meta["labels"])
    except (KeyError, TypeError, RuntimeError, SafetensorError) as e:
        raise BundleError(f"{directory} is not a loadable bundle: {str(e).splitlines()[0]}") from None
    model.to(device).eval()
    skip = {"arch", "model_config", "labels", "tokenizer", "max_tokens", "vocab"}
    info = {k: v for k, v in meta.items() if k not in skip}
    return Bundle(model, meta["arch"], vocab, labels, tokenizer, int(meta["max_tokens"]), info)
