"""Ray Train end to end on a tiny corpus, on the shared local Ray instance."""

import json

import numpy as np
import pytest

from textclf.bundle import load_bundle
from textclf.config import TrainConfig
from textclf.errors import ConfigError, DataError
from textclf.evaluate import evaluate
from textclf.inference import Predictor
from textclf.train import train

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def two_worker_bundle(tiny_corpus, ray_local, tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "cnn"
    config = TrainConfig(arch="cnn", epochs=3, workers=2, batch_tokens=512, seed=0)
    summary = train(config, str(tiny_corpus / "train"), str(tiny_corpus / "validation"), out)
    return out, summary


def test_two_workers_train_a_bundle_that_learns(two_worker_bundle, tiny_corpus):
    out, summary = two_worker_bundle
    assert summary["epochs_run"] == 3 and summary["val_accuracy"] > 0.9
    meta = json.loads((out / "model.json").read_text())
    assert meta["train_config"]["workers"] == 2 and len(meta["history"]) == 3
    assert meta["history"][0]["train_rows"] == 1200  # every row trained once per epoch across ranks
    assert meta["metrics"]["validation"]["support"] == 201  # every validation row scored exactly once
    report = {p.name for p in (out / "report").iterdir()}
    assert {"metrics.json", "training_curves.png", "confusion_matrix.png"} <= report
    assert evaluate(str(out), str(tiny_corpus / "test"))["accuracy"] > 0.9


def test_bundle_loaded_fresh_predicts_like_the_best_epoch(two_worker_bundle, tiny_corpus):
    out, summary = two_worker_bundle
    # the bundle holds the best epoch's weights: re-scoring validation reproduces its accuracy
    assert evaluate(str(out), str(tiny_corpus / "validation"))["accuracy"] == pytest.approx(summary["val_accuracy"])
    texts = ["A great, moving film.", "Boring and dull.", "the plot"]
    first = Predictor(str(out), device="cpu").predict_proba(texts)
    second = Predictor(load_bundle(out), device="cpu").predict_proba(texts)
    np.testing.assert_array_equal(first, second)


def test_resume_continues_from_the_last_checkpoint(tiny_corpus, ray_local, tmp_path):
    out = tmp_path / "bow"
    base = dict(arch="bow", workers=1, batch_tokens=512, seed=0, patience=10, model={"num_buckets": 1000})
    train(TrainConfig(epochs=1, **base), str(tiny_corpus / "train"), str(tiny_corpus / "validation"), out)
    summary = train(TrainConfig(epochs=2, **base), str(tiny_corpus / "train"), str(tiny_corpus / "validation"),
                    out, resume=True)
    history = json.loads((out / "model.json").read_text())["history"]
    assert summary["epochs_run"] == 2 and [h["epoch"] for h in history] == [1, 2]


def test_resume_without_checkpoints_is_a_usage_error(tiny_corpus, tmp_path):
    with pytest.raises(ConfigError, match="no checkpoints"):
        train(TrainConfig(), str(tiny_corpus / "train"), None, tmp_path / "m", resume=True)


def test_missing_text_column_is_a_data_error(tiny_corpus, ray_local, tmp_path):
    with pytest.raises(DataError, match="no column 'body'"):
        train(TrainConfig(text_column="body"), str(tiny_corpus / "train"), None, tmp_path / "m")


def test_pretrained_vectors_set_the_embedding_and_stay_frozen(tiny_corpus, ray_local, tmp_path):
    from conftest import NEGATIVE, NEUTRAL, POSITIVE
    from safetensors.torch import load_file

    rng = np.random.default_rng(0)
    words = POSITIVE + NEGATIVE + NEUTRAL
    vectors = {w: rng.normal(size=16).round(4) for w in words}
    glove = tmp_path / "vectors.txt"
    glove.write_text("".join(f"{w} {' '.join(map(str, v))}\n" for w, v in vectors.items()))
    out = tmp_path / "cnn"
    config = TrainConfig(arch="cnn", epochs=1, workers=1, embeddings=str(glove), freeze_embeddings=True)
    train(config, str(tiny_corpus / "train"), str(tiny_corpus / "validation"), out)
    meta = json.loads((out / "model.json").read_text())
    assert meta["model_config"]["embedding_dim"] == 16 and meta["data"]["embedding_coverage"] > 0.9
    embedding = load_file(str(out / "model.safetensors"))["embedding.weight"].numpy()
    itos = meta["vocab"]
    for word in ("great", "boring", "plot"):
        np.testing.assert_allclose(embedding[itos.index(word)], vectors[word], atol=1e-6)
