"""The labeling callable on plain Arrow batches (no cluster): one output row per input row."""

import numpy as np
import pyarrow as pa
import pytest
import torch

from textclf.bundle import save_bundle
from textclf.errors import DataError
from textclf.inference.predictor import Predictor
from textclf.labeling.labeler import BatchLabeler, encode_texts, probs_labels
from textclf.models import create_model
from textclf.text.tokenizer import TokenizerConfig
from textclf.text.vocab import Vocab


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    torch.manual_seed(0)
    vocab = Vocab(["<pad>", "<unk>", "good", "bad", "film", "plot", "great", "dull"])
    model = create_model("bilstm", vocab_size=len(vocab), num_classes=3, hidden_dim=16, embedding_dim=8).eval()
    return str(
        save_bundle(
            tmp_path_factory.mktemp("b") / "m", model, "bilstm", vocab, ["neg", "neu", "pos"], TokenizerConfig(), 16
        )
    )


def label_batch(bundle_dir, batch, text_column="text", **options):
    return BatchLabeler(bundle_dir, **options)(encode_texts(batch, bundle_dir, text_column))


def test_every_row_out_in_order_with_errors_for_unlabelable_text(bundle_dir):
    texts = ["a good film", None, "", "   \n\t", "bad plot " * 10_000, "great\x00\x07 film \u200f😀"]
    batch = pa.table({"id": ["a", "b", "c", "d", "e", "f"], "text": texts, "source": [1, 2, 3, 4, 5, 6]})
    out = label_batch(bundle_dir, batch, keep_columns=["source"], probabilities=True)
    assert out.column_names == [
        "id",
        "label",
        "confidence",
        "error",
        "probs",
        "scores",
        "source",
        "_real_tokens",
        "_padded_tokens",
        "_rows",
        "_node",
    ]
    real, padded = out["_real_tokens"].to_pylist(), out["_padded_tokens"].to_pylist()
    assert out["_rows"].to_pylist() == [6, 0, 0, 0, 0, 0]  # per call, on its first row
    assert real[0] > 0 and padded[0] >= real[0] and sum(real[1:]) == sum(padded[1:]) == 0
    assert out["id"].to_pylist() == ["a", "b", "c", "d", "e", "f"] and out["source"].to_pylist() == [1, 2, 3, 4, 5, 6]
    assert out["error"].to_pylist() == [None, "null text", "empty text", "whitespace-only text", None, None]
    labels = out["label"].to_pylist()
    assert [label is None for label in labels] == [False, True, True, True, False, False]
    assert out["confidence"].type == pa.float32() and out["confidence"].null_count == 3
    assert probs_labels(out.schema) == ["neg", "neu", "pos"]
    probs = out["probs"].to_pylist()
    assert probs[1] is None and abs(sum(probs[0]) - 1) < 1e-5


def test_top_k_and_threshold_add_the_chosen_labels_and_scores_name_every_label(bundle_dir):
    texts = ["good film", "dull plot", None, "great great great film"]
    out = label_batch(
        bundle_dir, pa.table({"id": list("abcd"), "text": texts}), top_k=2, threshold=0.2, probabilities=True
    )
    assert out.column_names[:8] == ["id", "label", "confidence", "error", "labels", "confidences", "probs", "scores"]
    assert out.schema.field("scores").type == pa.struct([(name, pa.float32()) for name in ["neg", "neu", "pos"]])
    scores, probs = out["scores"].to_pylist(), out["probs"].to_pylist()
    chosen, confidences = out["labels"].to_pylist(), out["confidences"].to_pylist()
    assert scores[2] is None and chosen[2] is None and confidences[2] is None  # the null text
    for i in (0, 1, 3):
        assert list(scores[i]) == ["neg", "neu", "pos"] and list(scores[i].values()) == pytest.approx(probs[i])
        expected = sorted((p, name) for name, p in scores[i].items() if p >= 0.2)[::-1][:2]
        assert chosen[i] == [name for _, name in expected] and confidences[i] == pytest.approx([p for p, _ in expected])
        assert chosen[i][0] == out["label"][i].as_py()  # the best label is the first chosen (when it passes)


def test_labels_and_confidences_match_predict(bundle_dir):
    texts = ["good film", "dull plot", "great great great film", "bad", "film " * 40]
    out = label_batch(bundle_dir, pa.table({"id": [str(i) for i in range(5)], "text": texts}))
    single = np.concatenate([Predictor(bundle_dir).predict_proba([t]) for t in texts])
    names = ["neg", "neu", "pos"]
    assert out["label"].to_pylist() == [names[i] for i in single.argmax(axis=1)]
    np.testing.assert_allclose(out["confidence"].to_numpy(), single.max(axis=1), atol=1e-4)


def test_binary_text_is_decoded_and_invalid_utf8_is_an_error(bundle_dir):
    batch = pa.table({"id": pa.array([1, 2, 3]), "text": pa.array([b"good film", b"\xff\xfe bad", None], pa.binary())})
    out = label_batch(bundle_dir, batch)
    assert out["id"].to_pylist() == ["1", "2", "3"]
    assert out["error"].to_pylist() == [None, "text is not valid UTF-8 (byte 0)", "null text"]


def test_text_of_the_wrong_type_is_an_error_on_every_row(bundle_dir):
    out = label_batch(bundle_dir, pa.table({"id": ["x", "y"], "text": [1, 2]}))
    assert out["label"].null_count == 2 and out["error"].to_pylist() == ["text is of type int64, not string"] * 2


def test_missing_columns_are_named(bundle_dir):
    with pytest.raises(DataError, match="no column 'body'"):
        label_batch(bundle_dir, pa.table({"id": ["x"], "text": ["good"]}), text_column="body")


def test_int8_labeling_scores_as_int8_predict_does(bundle_dir):
    texts = ["a good film", "bad plot", "great dull film " * 5, "plot"]
    out = label_batch(bundle_dir, pa.table({"id": list("abcd"), "text": texts}), probabilities=True, precision="int8")
    int8 = Predictor(bundle_dir, precision="int8").predict_proba(texts)
    np.testing.assert_allclose(np.array(out["probs"].to_pylist()), int8, rtol=1e-5, atol=1e-6)
    assert not np.array_equal(int8, Predictor(bundle_dir, precision="fp32").predict_proba(texts))
