import numpy as np
import pytest
import torch

from textclf.config import TrainConfig
from textclf.errors import ConfigError
from textclf.inference import Predictor
from textclf.precision import compute_dtype

from test_bundle import TEXTS, _bundle


def test_auto_is_bf16_on_gpus_and_native_bf16_cpus_only():
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert compute_dtype("auto", torch.device("cpu")) == (torch.bfloat16 if native else None)
    assert compute_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert compute_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    assert compute_dtype("fp32", torch.device("cuda")) is None


@pytest.mark.parametrize("make", [lambda: compute_dtype("fp16", torch.device("cpu")),
                                  lambda: TrainConfig(precision="half")])
def test_unknown_precision_is_a_config_error(make):
    with pytest.raises(ConfigError, match="precision must be one of auto, bf16, fp32"):
        make()


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
