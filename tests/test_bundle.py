import json

import numpy as np
import pytest
import torch

from textclf.bundle import load_bundle, save_bundle
from textclf.errors import BundleError
from textclf.inference.predictor import Predictor
from textclf.models import create_model
from textclf.text.tokenizer import TokenizerConfig
from textclf.text.vocab import Vocab

TEXTS = ["A great and moving film.", "Dull, boring, awful.", "", "the plot " * 400]


def _bundle(tmp_path, arch="cnn"):
    torch.manual_seed(0)
    vocab = Vocab(["<pad>", "<unk>", "a", "great", "film", "dull", "boring", "the", "plot", "."])
    model = create_model(arch, vocab_size=len(vocab), num_classes=3).eval()
    directory = save_bundle(
        tmp_path / "bundle",
        model,
        arch,
        vocab,
        ["x", "y", "z"],
        TokenizerConfig(),
        64,
        {"metrics": {"validation": {"accuracy": 0.5}}},
    )
    return directory, model, vocab


@pytest.mark.parametrize("arch", ["bilstm", "cnn", "bow", "mlp"])
def test_round_trip_gives_identical_predictions(tmp_path, arch):
    directory, model, vocab = _bundle(tmp_path, arch)
    ids = torch.tensor([[3, 4, 9, 0], [5, 6, 2, 8]])
    lengths = torch.tensor([3, 4])
    with torch.no_grad():
        before = model(ids, lengths)
    bundle = load_bundle(directory)
    with torch.no_grad():
        after = bundle.model(ids, lengths)
    assert torch.equal(before, after)
    assert bundle.labels == ["x", "y", "z"] and bundle.vocab.itos == vocab.itos and bundle.max_tokens == 64
    assert bundle.info["metrics"]["validation"]["accuracy"] == 0.5


def test_a_bow_bundle_saved_before_pooling_existed_loads_as_the_mean(tmp_path):
    torch.manual_seed(0)
    vocab = Vocab(["<pad>", "<unk>", "a", "great", "film"])
    model = create_model("bow", vocab_size=len(vocab), num_classes=2, pooling="mean", num_buckets=7)
    with torch.no_grad():
        model.fc.weight.normal_()  # bow's output layer starts at zero
    directory = save_bundle(tmp_path / "old", model.eval(), "bow", vocab, ["x", "y"], TokenizerConfig(), 64, {})
    meta = json.loads((directory / "model.json").read_text())
    del meta["model_config"]["pooling"]
    (directory / "model.json").write_text(json.dumps(meta))
    ids, lengths = torch.tensor([[2, 3, 3, 4]]), torch.tensor([4])
    loaded = load_bundle(directory).model
    assert loaded.config.pooling == "mean"
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids, lengths), model(ids, lengths))


def test_bundle_holds_weights_and_metadata_only(tmp_path):
    directory, _, _ = _bundle(tmp_path)
    assert sorted(p.name for p in directory.iterdir()) == ["model.json", "model.safetensors"]
    meta = json.loads((directory / "model.json").read_text())
    assert {"arch", "model_config", "vocab", "labels", "tokenizer", "max_tokens", "versions", "weights_sha256"} <= set(
        meta
    )


def test_predictor_matches_one_at_a_time_predictions(tmp_path):
    directory, _, _ = _bundle(tmp_path, "bilstm")
    predictor = Predictor(str(directory), device="cpu")
    together = predictor.predict_proba(TEXTS)
    alone = np.concatenate([predictor.predict_proba([t]) for t in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(together.sum(axis=1), 1.0, atol=1e-5)


def _corrupt(directory, how):
    weights = directory / "model.safetensors"
    if how == "missing_json":
        (directory / "model.json").unlink()
    elif how == "bad_json":
        (directory / "model.json").write_text("{not json")
    elif how == "truncated_weights":
        weights.write_bytes(weights.read_bytes()[:100])
    elif how == "flipped_byte":
        data = bytearray(weights.read_bytes())
        data[-1] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif how == "not_a_bundle":
        meta = json.loads((directory / "model.json").read_text())
        meta["format"] = "something-else"
        (directory / "model.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("how", ["missing_json", "bad_json", "truncated_weights", "flipped_byte", "not_a_bundle"])
def test_corrupt_bundles_are_refused_with_a_bundle_error(tmp_path, how):
    directory, _, _ = _bundle(tmp_path)
    load_bundle(directory)  # checked intact once: a change after that is still caught
    _corrupt(directory, how)
    with pytest.raises(BundleError):
        load_bundle(directory)


def test_a_folder_that_is_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="not a model bundle"):
        load_bundle(tmp_path)
    with pytest.raises(BundleError, match="no such folder"):
        load_bundle(tmp_path / "nope")


def test_checking_a_bundle_leaves_torch_unimported(label_bundles):
    """The labeling driver checks the bundle before Ray starts and never runs the model: importing
    torch there would add ~2 s to every labeling command."""
    import subprocess
    import sys

    script = (
        "import sys; from textclf.bundle import read_bundle_meta; "
        f"print(read_bundle_meta({label_bundles[0]!r})['arch'], 'torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["bow", "False"]


def test_weights_are_as_readable_as_the_metadata(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        model = create_model("mlp", vocab_size=4, num_classes=2)
        directory = save_bundle(
            tmp_path / "b", model, "mlp", Vocab(["<pad>", "<unk>", "a", "b"]), ["x", "y"], TokenizerConfig(), 16
        )
    finally:
        os.umask(old)
    modes = {name: stat.S_IMODE(os.stat(directory / name).st_mode) for name in ("model.safetensors", "model.json")}
    assert modes == {"model.safetensors": 0o644, "model.json": 0o644}  # safetensors alone writes 0600


def test_a_bundle_on_object_storage_is_copied_once_and_checked(tmp_path, s3_bucket, monkeypatch):
    import boto3

    directory, _, _ = _bundle(tmp_path)
    s3, bucket = boto3.client("s3"), s3_bucket.removeprefix("s3://")
    for f in directory.iterdir():
        if f.is_file():
            s3.upload_file(str(f), bucket, f"m/{f.name}")
    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path / "cache"))
    expected = Predictor(str(directory)).predict_proba(TEXTS)
    np.testing.assert_array_equal(Predictor(f"{s3_bucket}/m").predict_proba(TEXTS), expected)
    copies = list((tmp_path / "cache" / "bundles").iterdir())
    assert len(copies) == 1 and (copies[0] / "model.safetensors").is_file()
    Predictor(f"{s3_bucket}/m")  # the copy is reused
    assert list((tmp_path / "cache" / "bundles").iterdir()) == copies
    # weights changed behind model.json's back: refused, as on disk
    s3.put_object(Bucket=bucket, Key="n/model.json", Body=(directory / "model.json").read_bytes())
    s3.put_object(Bucket=bucket, Key="n/model.safetensors", Body=b"not the weights")
    with pytest.raises(BundleError, match="sha256|corrupt|safetensors"):
        load_bundle(f"{s3_bucket}/n")
    with pytest.raises(BundleError, match="not a readable model bundle"):
        load_bundle(f"{s3_bucket}/nothing-here")
