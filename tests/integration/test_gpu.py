"""CUDA checks (skipped without a GPU): training on GPU with bf16 autocast, and a GPU-trained
bundle loading and predicting on CPU."""

import numpy as np
import pytest

from textclf.inference.predictor import Predictor
from textclf.training.config import TrainConfig
from textclf.training.driver import train

pytestmark = [pytest.mark.gpu, pytest.mark.ray]


@pytest.mark.parametrize("arch", ["bilstm", "cnn", "transformer"])
def test_gpu_trained_bundle_loads_and_predicts_on_cpu(arch, tiny_corpus, tiny_encoder, ray_local, tmp_path):
    out = tmp_path / arch
    # the tiny encoder starts from random weights: a from-scratch learning rate (tests/integration/test_transformer.py)
    options = dict(lr=2e-3, max_tokens=64, model={"pretrained": str(tiny_encoder)}) if arch == "transformer" else {}
    summary = train(
        TrainConfig(arch=arch, epochs=2, workers=1, use_gpu=True, **options),
        str(tiny_corpus / "train"),
        str(tiny_corpus / "validation"),
        out,
    )
    assert summary["val_accuracy"] > 0.8
    texts = ["A great, moving film.", "Boring and dull.", "the plot"] * 20
    on_gpu = Predictor(str(out), device="cuda").predict_proba(texts)
    on_cpu = Predictor(str(out), device="cpu").predict_proba(texts)
    # bf16 autocast on GPU against float32 on CPU: same labels, close probabilities
    assert (on_gpu.argmax(1) == on_cpu.argmax(1)).all()
    np.testing.assert_allclose(on_gpu, on_cpu, atol=0.05)
