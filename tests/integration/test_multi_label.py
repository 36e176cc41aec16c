"""Multi-label end to end: train with a sigmoid per label on 2 Ray Train workers, per-label thresholds
tuned on validation and kept in the bundle, then evaluate, predict, the Python API and label agree."""

from __future__ import annotations

import json
import random

import pyarrow as pa
import pytest
from conftest import read_labeled, write_split

from textclf.api import load
from textclf.evaluation.evaluate import evaluate
from textclf.labeling.pipeline import LabelConfig, label
from textclf.training.config import SGD_LR_SUBLINEAR, TrainConfig
from textclf.training.driver import train

TOPICS = ("sport", "music", "food", "travel", "money", "science")


def multi_label_rows(n: int, seed: int) -> list[dict]:
    """Each row carries one to three topics, each shown by one of its cue words among filler words."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        topics = sorted(rng.sample(TOPICS, rng.choice((1, 1, 2, 3))))
        words = [f"{t}{rng.randrange(3)}" for t in topics] + [f"filler{rng.randrange(40)}" for _ in range(6)]
        rng.shuffle(words)
        rows.append({"id": f"r{seed}-{i}", "text": " ".join(words), "label": topics})
    return rows


@pytest.fixture(scope="module")
def multi_label_bundle(ray_local, tmp_path_factory):
    root = tmp_path_factory.mktemp("multi-label")
    for split, n, seed in (("train", 1500, 1), ("validation", 300, 2), ("test", 300, 3)):
        write_split(root / split, multi_label_rows(n, seed))
    config = TrainConfig(workers=2, model={"num_buckets": 1000})  # bow multi-label: SGD by default
    summary = train(config, str(root / "train"), str(root / "validation"), root / "model")
    return root, summary


def test_training_learns_every_label_and_keeps_tuned_thresholds(multi_label_bundle):
    root, summary = multi_label_bundle
    meta = json.loads((root / "model" / "model.json").read_text())
    assert meta["multi_label"] is True and meta["labels"] == sorted(TOPICS)
    assert len(meta["thresholds"]) == len(TOPICS) and all(0 < t < 1 for t in meta["thresholds"])
    assert summary["warning"] is None and summary["val_micro_f1"] > 0.9
    # SGD's rate falls to zero at the last epoch: that schedule, not patience, ends the run
    assert (meta["train_config"]["optimizer"], meta["train_config"]["patience"]) == ("sgd", 0)
    # multi-label bow's own defaults: wider vectors, sublinear pooling and SGD's rate for it
    assert (meta["model_config"]["embedding_dim"], meta["model_config"]["pooling"]) == (256, "sublinear")
    assert meta["train_config"]["lr"] == SGD_LR_SUBLINEAR
    assert summary["epochs_run"] == meta["train_config"]["epochs"]
    metrics = evaluate(str(root / "model"), str(root / "test"))
    assert metrics["multi_label"] and metrics["micro_f1"] > 0.9 and metrics["macro_f1"] > 0.9
    assert set(metrics["per_class"]) == set(TOPICS)


def test_predict_and_label_give_every_chosen_label(multi_label_bundle, tmp_path):
    root, _ = multi_label_bundle
    classifier = load(str(root / "model"))
    assert classifier.multi_label
    assert [sorted(labels) for labels in classifier.predict(["music1 filler3 food2", "filler1 science0"])] == [
        ["food", "music"],
        ["science"],
    ]
    inputs = tmp_path / "in"
    write_split(inputs, [{"id": r["id"], "text": r["text"]} for r in multi_label_rows(200, seed=4)])
    label(str(root / "model"), str(inputs), str(tmp_path / "out"), LabelConfig(probabilities=True))
    table = read_labeled(tmp_path / "out")
    assert table.schema.field("labels").type == pa.list_(pa.string())
    rows = table.to_pylist()
    texts = [r["text"] for r in multi_label_rows(200, seed=4)]
    chosen = classifier.predict_top(texts)
    by_id = {r["id"]: r for r in rows}
    for source, expected in zip(multi_label_rows(200, seed=4), chosen):
        row = by_id[source["id"]]
        assert row["labels"] == [name for name, _ in expected]
        assert row["label"] == max(row["scores"], key=row["scores"].get)  # the most probable label
    correct = sum(sorted(by_id[r["id"]]["labels"]) == r["label"] for r in multi_label_rows(200, seed=4))
    assert correct / 200 > 0.7  # every label of the text right (subset accuracy)
