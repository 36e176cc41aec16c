"""Model bundle: `model.safetensors` (weights only) + `model.json` (everything to rebuild it), and for a
pretrained encoder its `tokenizer.json`.

Loading never unpickles: weights come from safetensors, the rest from JSON, and the weights'
sha256 must match the one recorded at save time. A folder holding pickle files is refused outright.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import platform
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.fs as pafs

from textclf.errors import BundleError, one_line
from textclf.files import TMP_PREFIX, write_atomically
from textclf.storage import is_uri
from textclf.text.tokenizer import TokenizerConfig
from textclf.text.vocab import Vocab
from textclf.text.wordpiece import TOKENIZER_FILE, WordPieceTokenizer

if TYPE_CHECKING:  # torch loads with the weights: the labeling driver reads model.json only
    import torch

FORMAT = "textclf-bundle"
FORMAT_VERSION = 1
WEIGHTS, META = "model.safetensors", "model.json"
# torch.save / pickle / joblib file names: textclf never writes them, so one in a bundle or
# checkpoint means the folder was tampered with or mixed up
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin", ".joblib")


@dataclass
class Bundle:
    model: torch.nn.Module
    arch: str
    vocab: Vocab | None  # None where the tokenizer is a pretrained encoder's word pieces
    labels: list[str]
    tokenizer: TokenizerConfig | WordPieceTokenizer
    max_tokens: int
    info: dict[str, Any]  # training config, metrics, versions: carried along, not needed to predict

    @property
    def weights_sha256(self) -> str:
        return self.info.get("weights_sha256", "")

    @property
    def multi_label(self) -> bool:
        """Any number of labels per text (a sigmoid each) rather than exactly one (a softmax)."""
        return bool(self.info.get("multi_label", False))

    @property
    def thresholds(self) -> list[float] | None:
        """A multi-label model's per-label decision thresholds, tuned on the validation split."""
        return self.info.get("thresholds") if self.multi_label else None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verified_sha256(path: Path) -> str:
    """sha256_file, hashed once per process while the file stays the same (inode, size, mtime): a
    command checks a bundle before any work and again when it loads it."""
    st = path.stat()
    return _sha256_of_version(str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _sha256_of_version(path: str, inode: int, size: int, mtime_ns: int) -> str:
    return sha256_file(Path(path))


def refuse_pickle_files(directory: Path, what: str) -> None:
    found = sorted(p.name for p in directory.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if found:
        raise BundleError(
            f"{what} {directory} holds pickle file(s) {', '.join(found)}; textclf never loads "
            "pickles and refuses folders that hold them (remove them to go on)"
        )


def check_safetensors(path: Path, expected_sha256: str | None, what: str) -> None:
    """The file's hash matches the recorded one (when given) and its header parses; reads no tensor."""
    from safetensors import SafetensorError, safe_open

    if expected_sha256 is not None and _verified_sha256(path) != expected_sha256:
        raise BundleError(f"{path} does not match the sha256 recorded in {what}: the file is corrupt")
    try:  # the numpy view: reading the header must not import torch (2 s) in the labeling driver
        with safe_open(str(path), framework="numpy") as f:
            f.keys()
    except (OSError, SafetensorError) as e:
        raise BundleError(f"{path} is not a readable safetensors file: {one_line(e)}") from None


def readable_like_other_files(path: Path) -> None:
    """safetensors writes its files mode 0600 whatever the umask (safetensors#782), so another user or a
    non-root pod could not read a bundle whose model.json it can read: give it the mode open() would."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def library_versions() -> dict[str, str]:
    """From the installed packages' metadata: importing spaCy for its version took seconds of a
    training driver that never tokenizes."""
    from importlib.metadata import version

    import textclf

    return {
        "textclf": textclf.__version__,
        **{name: version(name) for name in ("torch", "spacy", "pyarrow")},
        "python": platform.python_version(),
    }


def save_bundle(
    directory: str | Path,
    model: torch.nn.Module,
    arch: str,
    vocab: Vocab | None,
    labels: list[str],
    tokenizer: TokenizerConfig | WordPieceTokenizer,
    max_tokens: int,
    info: dict[str, Any] | None = None,
) -> Path:
    """Write weights (and tokenizer.json) then metadata (with their hashes) into `directory`; returns it."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / WEIGHTS))
    readable_like_other_files(directory / WEIGHTS)
    if isinstance(tokenizer, WordPieceTokenizer):
        write_atomically(directory / TOKENIZER_FILE, lambda tmp: tmp.write_text(tokenizer.definition, encoding="utf-8"))
        tokenizer_meta = {"file": TOKENIZER_FILE, "sha256": tokenizer.sha256}
    else:
        tokenizer_meta = dataclasses.asdict(tokenizer)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": arch,
        "model_config": dataclasses.asdict(model.config),
        "labels": list(labels),
        "tokenizer": tokenizer_meta,
        "max_tokens": max_tokens,
        "vocab": vocab.itos if vocab is not None else [],
        **(info or {}),
        "versions": library_versions(),
        "weights_sha256": sha256_file(directory / WEIGHTS),
    }
    write_atomically(directory / META, lambda tmp: tmp.write_text(json.dumps(meta, indent=1)))
    return directory


def local_bundle(spec: str | Path) -> Path:
    """A bundle folder on disk: a local one as it is; one on an object store or any filesystem pyarrow
    reaches (`s3://...`) copied once into textclf's cache, where it is then checked like any bundle."""
    if not is_uri(spec):
        return Path(spec)
    from textclf.storage import Folder
    from textclf.wheels import cache_dir

    source = Folder(spec)
    try:
        meta = json.loads(source.read_text(META))
        files = [WEIGHTS, META] + ([meta["tokenizer"]["file"]] if "file" in meta.get("tokenizer", {}) else [])
    except (OSError, ValueError, TypeError, AttributeError) as e:
        raise BundleError(f"{spec} is not a readable model bundle: {one_line(e)}") from None
    key = hashlib.sha256(f"{spec}\n{meta.get('weights_sha256')}".encode()).hexdigest()[:16]
    target = cache_dir() / "bundles" / key
    if (target / META).is_file():
        return target
    partial = target.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex}-{key}")
    partial.mkdir(parents=True)
    try:
        for name in files:
            pafs.copy_files(source.path(name), str(partial / name), source_filesystem=source.fs)
        if sha256_file(partial / WEIGHTS) != meta.get("weights_sha256"):  # no bad copy is kept
            raise BundleError(f"{spec}/{WEIGHTS} does not match the sha256 recorded in {META}: the file is corrupt")
        os.rename(partial, target)  # whole or not at all; another process may have got there first
    except OSError as e:
        if not (target / META).is_file():
            raise BundleError(f"cannot copy the bundle {spec}: {one_line(e)}") from None
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


def read_bundle_meta(directory: str | Path, verify_weights: bool = True) -> dict[str, Any]:
    """model.json, after checking the folder is a bundle and (by default) that its weights are intact,
    so commands that start from the metadata (label) refuse a corrupt bundle before any work."""
    directory = local_bundle(directory)
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
    refuse_pickle_files(directory, "bundle")
    if verify_weights:
        check_safetensors(directory / WEIGHTS, meta.get("weights_sha256", ""), META)
    return meta


def read_bundle_tokenizer(directory: str | Path, meta: dict[str, Any]) -> TokenizerConfig | WordPieceTokenizer:
    """The bundle's tokenizer: spaCy's settings from model.json, or its tokenizer.json, hash checked."""
    recorded = meta["tokenizer"]
    if "file" not in recorded:
        return TokenizerConfig(**recorded)
    path = local_bundle(directory) / recorded["file"]
    try:
        tokenizer = WordPieceTokenizer(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise BundleError(f"{directory} is not a loadable bundle: {path.name}: {one_line(e)}") from None
    if tokenizer.sha256 != recorded.get("sha256"):
        raise BundleError(f"{path} does not match the sha256 recorded in {META}: the file is corrupt")
    return tokenizer


def load_bundle(directory: str | Path, device: str | torch.device = "cpu") -> Bundle:
    """Rebuild the model from model.json and load verified weights onto `device` (CPU by default,
    whatever device the bundle was trained on)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from textclf.models import create_model_to_load

    directory = local_bundle(directory)
    meta = read_bundle_meta(directory)
    try:
        model = create_model_to_load(meta["arch"], **meta["model_config"])
        state = load_file(str(directory / WEIGHTS), device="cpu")
        model.load_state_dict(state, strict=True, assign=True)
        tokenizer = read_bundle_tokenizer(directory, meta)
        vocab = Vocab(meta["vocab"]) if isinstance(tokenizer, TokenizerConfig) else None
        labels = list(meta["labels"])
    except (KeyError, TypeError, RuntimeError, SafetensorError) as e:
        raise BundleError(f"{directory} is not a loadable bundle: {one_line(e)}") from None
    model.to(device).eval()
    skip = {"arch", "model_config", "labels", "tokenizer", "max_tokens", "vocab"}
    info = {k: v for k, v in meta.items() if k not in skip}
    return Bundle(model, meta["arch"], vocab, labels, tokenizer, int(meta["max_tokens"]), info)
