"""Fine-tuning a pretrained encoder with Ray Train and labeling with Ray Data, on an encoder the tests
build (tests/conftest.py: make_tiny_encoder), on the shared local Ray instance. Resuming the schedule
from a checkpoint: tests/training/test_optim.py."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from textclf.bundle import load_bundle
from textclf.evaluation.evaluate import evaluate
from textclf.inference.predictor import Predictor
from textclf.labeling.pipeline import label
from textclf.training.checkpoint import load_training_state
from textclf.training.config import TrainConfig
from textclf.training.driver import train

pytestmark = pytest.mark.ray

# The tiny encoder starts from random weights, so it needs a from-scratch learning rate to learn in two
# epochs; every other fine-tuning default (AdamW, warm-up and decay, batches of 16) is kept.
OPTIONS = dict(arch="transformer", lr=2e-3, max_tokens=64, workers=2)


@pytest.fixture(scope="module")
def fine_tuned(tiny_encoder, tiny_corpus, ray_local, tmp_path_factory):
    out = tmp_path_factory.mktemp("transformer") / "model"
    config = TrainConfig(**OPTIONS, epochs=2, model={"pretrained": str(tiny_encoder)})
    return out, train(config, str(tiny_corpus / "train"), str(tiny_corpus / "validation"), out)


def test_two_workers_fine_tune_and_learn(fine_tuned, tiny_corpus, tiny_encoder):
    out, summary = fine_tuned
    assert summary["epochs_run"] == 2 and summary["val_macro_f1"] > 0.9
    meta = json.loads((out / "model.json").read_text())
    assert meta["history"][0]["train_rows"] == 1200  # every row once per epoch across the two ranks
    assert meta["model_config"]["pretrained"] == str(tiny_encoder)
    assert meta["model_config"]["encoder"]["num_hidden_layers"] == 2 and meta["vocab"] == []
    assert (out / "tokenizer.json").read_text() == (tiny_encoder / "tokenizer.json").read_text()
    assert evaluate(str(out), str(tiny_corpus / "test"))["accuracy"] > 0.9


def test_the_schedule_spans_the_run_and_ends_at_zero(fine_tuned):
    out, _ = fine_tuned
    checkpoints = sorted(p for p in (out.parent / "model.checkpoints" / "train").glob("checkpoint_*") if p.is_dir())
    _, _, optimizer, state = load_training_state(checkpoints[-1])
    schedule = optimizer["scheduler"]
    assert schedule["last_epoch"] == sum(epoch["steps"] for epoch in state["history"])
    assert all(lr == pytest.approx(0.0, abs=1e-12) for lr in schedule["_last_lr"])
    assert [g["weight_decay"] for g in optimizer["param_groups"]] == [0.01, 0.0]  # no decay on biases/norms


def test_bundle_loads_alone_and_label_equals_predict(fine_tuned, tiny_corpus, tiny_encoder, tmp_path, ray_local):
    out, _ = fine_tuned
    bundle = load_bundle(out)  # model.json, weights and tokenizer.json: no encoder folder, no network
    assert bundle.vocab is None and bundle.arch == "transformer"
    texts = pq.read_table(tiny_corpus / "test").column("text").to_pylist()
    predictor = Predictor(bundle, device="cpu")
    probs = predictor.predict_proba(texts)
    label(str(out), str(tiny_corpus / "test"), str(tmp_path / "labeled"))
    labeled = pq.read_table(next((tmp_path / "labeled").glob("*.parquet")))
    assert labeled.column("label").to_pylist() == [bundle.labels[i] for i in probs.argmax(1)]
    # bf16 (auto on a CPU with native bf16) rounds differently as rows are batched differently by Ray's actors
    tolerance = 1e-5 if predictor.dtype is None else 1e-3
    np.testing.assert_allclose(labeled.column("confidence").to_numpy(), probs.max(1), atol=tolerance)


def test_a_tampered_tokenizer_is_refused(fine_tuned, tmp_path):
    import shutil

    from textclf.errors import BundleError

    out, _ = fine_tuned
    copy = shutil.copytree(out, tmp_path / "copy")
    (copy / "tokenizer.json").write_text((copy / "tokenizer.json").read_text().replace("[UNK]", "[UNX]"))
    with pytest.raises(BundleError, match="tokenizer.json does not match the sha256"):
        load_bundle(copy)
