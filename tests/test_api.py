"""The Python API on a small bundle (no Ray): textclf.load and the Classifier's predictions."""

import numpy as np
import pytest
import torch

import textclf
from textclf.bundle import save_bundle
from textclf.errors import DataError
from textclf.inference.predictor import Predictor
from textclf.models import create_model
from textclf.text.tokenizer import TokenizerConfig
from textclf.text.vocab import Vocab

LABELS = ["neg", "neu", "pos"]


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    torch.manual_seed(0)
    vocab = Vocab(["<pad>", "<unk>", "good", "bad", "film", "plot", "great", "dull"])
    model = create_model("cnn", vocab_size=len(vocab), num_classes=3).eval()
    return str(save_bundle(tmp_path_factory.mktemp("b") / "m", model, "cnn", vocab, LABELS, TokenizerConfig(), 16))


def test_load_predicts_as_the_predictor_does(bundle_dir):
    clf = textclf.load(bundle_dir)
    texts = ["good film", "dull plot", "great great film", "bad"]
    expected = Predictor(bundle_dir).predict_proba(texts)
    assert clf.labels == LABELS
    np.testing.assert_allclose(clf.predict_proba(texts), expected, atol=1e-6)
    assert clf.predict(texts) == [LABELS[i] for i in expected.argmax(axis=1)]


def test_predict_top_gives_label_probability_pairs_most_probable_first(bundle_dir):
    clf = textclf.load(bundle_dir)
    probs = clf.predict_proba(["good film"])[0]
    top = clf.predict_top(["good film"], top_k=2)[0]
    assert [name for name, _ in top] == [LABELS[i] for i in np.argsort(-probs)[:2]]
    assert [p for _, p in top] == pytest.approx(sorted(probs, reverse=True)[:2])
    assert clf.predict_top(["good film"], top_k=3, threshold=1.0) == [[]]  # none reaches it


def test_texts_that_cannot_be_labeled_get_no_label(bundle_dir):
    clf = textclf.load(bundle_dir)
    texts = ["good film", "", "   ", None]
    probs = clf.predict_proba(texts)
    assert not np.isnan(probs[0]).any() and np.isnan(probs[1:]).all()
    assert clf.predict(texts)[1:] == [None, None, None] and clf.predict_top(texts, top_k=2)[1:] == [[], [], []]


def test_bad_input_is_a_clear_error(bundle_dir):
    clf = textclf.load(bundle_dir)
    with pytest.raises(DataError, match="a list of texts"):
        clf.predict("good film")
    with pytest.raises(DataError, match="strings"):
        clf.predict([1, 2])
    with pytest.raises(DataError, match="--top-k"):
        clf.predict_top(["good"], top_k=0)


def test_unknown_options_are_named(tmp_path):
    with pytest.raises(DataError, match="unknown labeling option.*probabilites"):
        textclf.label("m", "in", str(tmp_path / "out"), probabilites=True)
    with pytest.raises(textclf.errors.ConfigError, match="unknown training option.*epoch\\b"):
        textclf.train("train", str(tmp_path / "m"), epoch=3)
