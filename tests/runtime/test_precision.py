import random

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from test_bundle import TEXTS, _bundle

from textclf.bundle import save_bundle
from textclf.cli import cli
from textclf.errors import ConfigError, DataError
from textclf.inference.predictor import Predictor
from textclf.labeling.config import LabelConfig
from textclf.models import create_model
from textclf.runtime import precision
from textclf.runtime.precision import compute_dtype, native_bf16_cpu, quantizes
from textclf.text.tokenizer import TokenizerConfig
from textclf.text.vocab import Vocab
from textclf.training.config import TrainConfig


@pytest.mark.parametrize("native", [True, False])
def test_auto_is_bf16_on_gpus_and_native_bf16_cpus_only(monkeypatch, native):
    monkeypatch.setattr(precision, "native_bf16_cpu", lambda: native)  # both kinds of CPU on any machine
    assert compute_dtype("auto", torch.device("cpu")) == (torch.bfloat16 if native else None)
    assert compute_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert compute_dtype("bf16", torch.device("cuda")) == torch.bfloat16
    assert compute_dtype("fp32", torch.device("cuda")) is None
    if native:
        assert compute_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    else:
        with pytest.raises(ConfigError, match="needs a GPU or a CPU with native bf16"):
            compute_dtype("bf16", torch.device("cpu"))


def test_bf16_on_a_cpu_without_it_is_a_one_line_error(monkeypatch, tmp_path):
    # on such a CPU oneDNN cannot build a bf16 LSTM: without the check, predict died with a RuntimeError
    monkeypatch.setattr(precision, "native_bf16_cpu", lambda: False)
    directory, _, _ = _bundle(tmp_path, "bilstm")
    result = CliRunner().invoke(cli, ["predict", str(directory), "--precision", "bf16", "a fine film"])
    assert result.exit_code == 2, result.output
    assert "precision bf16 needs a GPU or a CPU with native bf16" in result.output


@pytest.mark.parametrize(
    "make", [lambda: compute_dtype("fp16", torch.device("cpu")), lambda: TrainConfig(precision="half")]
)
def test_unknown_precision_is_a_config_error(make):
    with pytest.raises(ConfigError, match="precision must be one of auto, bf16, fp32"):
        make()


@pytest.mark.parametrize("arch", ["bilstm", "cnn", "bow", "mlp"])
def test_int8_scoring_quantizes_weights_and_keeps_labels(tmp_path, arch):
    torch.manual_seed(0)
    vocab = Vocab(["<pad>", "<unk>", *"a great and moving film dull boring awful the plot".split()])
    model = create_model(arch, vocab_size=len(vocab), num_classes=3).eval()
    with torch.no_grad():  # output layers that tell classes apart (bow's starts at zero)
        for layer in model.modules():
            if isinstance(layer, torch.nn.Linear):
                layer.weight.normal_(std=0.3)
    directory = save_bundle(tmp_path / "b", model, arch, vocab, ["x", "y", "z"], TokenizerConfig(), 64, {})
    texts = TEXTS + [" ".join(random.Random(i).choices(vocab.itos[2:], k=i % 20 + 1)) for i in range(60)]
    full = Predictor(str(directory), device="cpu", precision="fp32").predict_proba(texts)
    quantized = Predictor(str(directory), device="cpu", precision="int8")
    probs = quantized.predict_proba(texts)
    float_layers = [m for m in quantized.bundle.model.modules() if type(m) in (torch.nn.Linear, torch.nn.LSTM)]
    assert not float_layers  # all replaced by torch's dynamically quantized layers
    # an approximation of the float32 scores, close enough to keep nearly every label
    assert not np.array_equal(probs, full) and np.abs(probs - full).mean() < 0.02
    assert (probs.argmax(1) == full.argmax(1)).mean() >= 0.9


def test_int8_is_for_scoring_on_cpu_only(tmp_path):
    assert quantizes("int8", torch.device("cpu")) and not quantizes("fp32", torch.device("cpu"))
    assert compute_dtype("int8", torch.device("cpu")) is None  # no autocast on top
    with pytest.raises(ConfigError, match="int8 is for scoring on CPU"):
        quantizes("int8", torch.device("cuda"))
    with pytest.raises(DataError, match="int8 is for scoring on CPU"):
        LabelConfig(precision="int8", use_gpu=True)
    result = CliRunner().invoke(cli, ["train", "--train", "x.parquet", "--out", "m", "--precision", "int8"])
    assert result.exit_code == 2 and "'int8' is not one of 'auto', 'bf16', 'fp32'" in result.output
    directory, _, _ = _bundle(tmp_path, "bilstm")
    result = CliRunner().invoke(cli, ["predict", str(directory), "--precision", "int8", "--json", "a great film"])
    assert result.exit_code == 0, result.output
    assert result.output.count("label") >= 1


@pytest.mark.skipif(not native_bf16_cpu(), reason="needs a CPU with native bf16 (AVX512-BF16 or AMX)")
def test_bf16_scoring_keeps_labels_and_is_really_bf16(tmp_path):
    directory, _, _ = _bundle(tmp_path, "bilstm")
    texts = TEXTS + [f"great film number {i} with a dull plot" for i in range(50)]
    full = Predictor(str(directory), device="cpu", precision="fp32").predict_proba(texts)
    half = Predictor(str(directory), device="cpu", precision="bf16").predict_proba(texts)
    assert not np.array_equal(full, half)  # bf16 arithmetic did run
    np.testing.assert_allclose(half, full, atol=0.02)
    margin = np.sort(full, axis=1)[:, -1] - np.sort(full, axis=1)[:, -2]
    clear = margin > 0.04  # rows not on a class boundary keep their label
    assert (half.argmax(1)[clear] == full.argmax(1)[clear]).all()


def test_training_in_bf16_on_a_cpu_without_it_is_refused_before_ray_starts(monkeypatch, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    monkeypatch.setattr(precision, "native_bf16_cpu", lambda: False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    pq.write_table(pa.table({"text": ["good", "bad"] * 8, "label": ["pos", "neg"] * 8}), tmp_path / "train.parquet")
    result = CliRunner().invoke(
        cli, ["train", "--train", str(tmp_path / "train.parquet"), "--out", str(tmp_path / "m"), "--precision", "bf16"]
    )
    assert result.exit_code == 2 and "precision bf16 needs a GPU or a CPU with native bf16" in result.output
    assert not (tmp_path / "m").exists()


def test_auto_scores_bow_in_float32_and_large_batches(monkeypatch, tmp_path):
    # bow's sums of table rows gain nothing from bf16 and score faster in large batches; the BiLSTM is the opposite
    monkeypatch.setattr(precision, "native_bf16_cpu", lambda: True)
    for arch, dtype, tokens in [("bow", None, 32_768), ("bilstm", torch.bfloat16, 4096)]:
        directory, _, _ = _bundle(tmp_path / arch, arch)
        predictor = Predictor(str(directory), device="cpu")
        assert (predictor.dtype, predictor.batching.batch_tokens) == (dtype, tokens)
    assert Predictor(str(directory), device="cpu", batch_tokens=512).batching.batch_tokens == 512
    bf16 = Predictor(str(tmp_path / "bow" / "bundle"), device="cpu", precision="bf16")
    assert bf16.dtype == torch.bfloat16  # asked for by name: honoured
