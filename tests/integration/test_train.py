"""Ray Train end to end on a tiny corpus, on the shared local Ray instance."""

import json

import numpy as np
import pytest

from textclf.bundle import load_bundle
from textclf.errors import ConfigError, DataError
from textclf.evaluation.evaluate import evaluate
from textclf.inference.predictor import Predictor
from textclf.training.config import TrainConfig
from textclf.training.driver import WORKER_MALLOC, train, worker_malloc_env

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


@pytest.mark.parametrize("rows, workers", [(1201, 3), (2, 3)])
def test_worker_shards_hold_every_row_once_and_differ_by_one_at_most(ray_local, rows, workers):
    import pyarrow as pa

    from textclf.training.driver import _shards
    from textclf.training.loop import _table

    data = ray_local.data.from_arrow(pa.table({"ids": [[i] for i in range(rows)], "label": [0] * rows})).materialize()
    shards = [_table(refs) for refs in _shards(data, workers)]
    sizes = [t.num_rows for t in shards]
    assert len(shards) == workers and max(sizes) - min(sizes) <= 1
    ids = sorted(i for t in shards for row in t.column("ids").to_pylist() for i in row)
    assert ids == list(range(rows))


@pytest.mark.parametrize("local_session", [True, False])
def test_trainer_leaves_out_the_helper_actors_textclf_does_not_use(ray_local, local_session):
    from ray.train import ScalingConfig
    from ray.train.v2._internal.callbacks.datasets import DatasetsCallback
    from ray.train.v2._internal.callbacks.placement_group_callback import PlacementGroupCleanerCallback

    from textclf.training.driver import _trainer_class

    trainer = _trainer_class(local_session)(lambda cfg: None, scaling_config=ScalingConfig(num_workers=1))
    kinds = {type(c) for c in trainer._create_default_callbacks()}
    assert DatasetsCallback not in kinds  # each worker reads its shard's blocks itself
    assert (PlacementGroupCleanerCallback in kinds) is not local_session  # kept on a cluster


def test_a_single_worker_trains_without_a_process_group(ray_local, tmp_path):
    from ray.train import RunConfig, ScalingConfig

    from textclf.training.driver import _trainer_class

    def _process_group_state(config):  # nested: pickled by value, the workers cannot import this module
        import ray.train
        import torch.distributed as dist

        return {"process_group": dist.is_initialized(), "world": ray.train.get_context().get_world_size()}

    result = _trainer_class(True)(
        _process_group_state,
        scaling_config=ScalingConfig(num_workers=1),
        run_config=RunConfig(storage_path=str(tmp_path)),
    ).fit()
    assert result.return_value == {"process_group": False, "world": 1}


def test_the_controller_can_load_what_the_trainer_sends_it_without_torch(tmp_path):
    import subprocess
    import sys

    import cloudpickle
    from ray.train import ScalingConfig

    from textclf.training.driver import _trainer_class

    # Ray Train's controller unpickles the callbacks (backend and all); torch would add ~3 s to its start
    trainer = _trainer_class(True, workers=2)(lambda cfg: None, scaling_config=ScalingConfig(num_workers=2))
    (tmp_path / "callbacks.pkl").write_bytes(cloudpickle.dumps(trainer._create_default_callbacks()))
    load = (
        "import pickle, sys; sys.modules['torch'] = None; "
        f"callbacks = pickle.loads(open({str(tmp_path / 'callbacks.pkl')!r}, 'rb').read()); "
        "print(sorted(type(c).__name__ for c in callbacks))"
    )
    out = subprocess.run([sys.executable, "-c", load], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "BackendSetupCallback" in out.stdout and "ImportTorchBackendEarly" in out.stdout


def test_workers_get_textclf_malloc_settings_unless_the_user_has_their_own(monkeypatch):
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    assert worker_malloc_env() == {"GLIBC_TUNABLES": WORKER_MALLOC}
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=4")
    assert worker_malloc_env() == {"GLIBC_TUNABLES": "glibc.malloc.arena_max=4"}


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
    summary = train(
        TrainConfig(epochs=2, **base), str(tiny_corpus / "train"), str(tiny_corpus / "validation"), out, resume=True
    )
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


@pytest.mark.parametrize("rows, blocks", [(1200, 1), (250_000, 3)])
def test_training_data_is_read_in_blocks_of_many_rows(ray_local, tiny_corpus, rows, blocks):
    from textclf.training.data import read_parquet

    # each block is tokenized in a process that loads spaCy first: a small corpus is one block
    files = sorted(str(p) for p in (tiny_corpus / "train").iterdir())
    dataset = read_parquet(files, ["text", "label"], rows).materialize()
    assert dataset.num_blocks() == blocks and dataset.count() == 1200


def test_defaults_learn_a_many_class_corpus_and_the_warning_stays_quiet(multiclass_corpus, ray_local, tmp_path):
    # every option at its default (bow, a million bigram buckets): 12 imbalanced classes, 200 rows per class
    out = tmp_path / "multi"
    summary = train(TrainConfig(), str(multiclass_corpus / "train"), str(multiclass_corpus / "validation"), out)
    test = evaluate(str(out), str(multiclass_corpus / "test"))
    assert test["macro_f1"] > 0.7  # chance is 1/12; the defaults before predicted the majority class
    meta = json.loads((out / "model.json").read_text())
    assert summary["warning"] is None and meta["quality"]["warning"] is None
    assert meta["train_config"]["lr"] == pytest.approx(6e-3)  # bow's default for 12 classes
    assert summary["val_macro_f1"] > meta["quality"]["baselines_macro_f1"]["majority"]


def test_a_job_log_gets_plain_json_progress_and_one_warning_line_for_a_model_that_did_not_learn(
    multiclass_corpus, small_bow_config, tmp_path
):
    import subprocess
    import sys

    # stderr is a pipe, as in a Ray job's log; at lr 1e-7 two epochs leave the model untrained
    out = tmp_path / "untrained"
    args = [
        "--train",
        multiclass_corpus / "train",
        "--validation",
        multiclass_corpus / "validation",
        "--out",
        out,
        "--epochs",
        "2",
        "--lr",
        "1e-7",
        "--config",
        small_bow_config,
    ]
    done = subprocess.run(
        [sys.executable, "-m", "textclf.cli", "train", *map(str, args)], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stderr.splitlines()
    # every progress record, the workers' included, parses as JSON on its own line (no Ray prefix)
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert [r["epoch"] for r in records if r["event"] == "epoch"] == [1, 2]
    assert not [line for line in lines if '{"event"' in line and not line.startswith("{")]
    warnings = [line for line in lines if line.startswith("warning: ")]
    assert len(warnings) == 1 and "--epochs" in warnings[0]  # one line, saying what to try
    assert json.loads((out / "model.json").read_text())["quality"]["warning"] == warnings[0].removeprefix("warning: ")
    # and the end says what the checkpoints beside the bundle weigh and that only --resume needs them
    assert f"checkpoints: {tmp_path / 'untrained.checkpoints'} (" in done.stdout
    assert "only --resume needs them" in done.stdout
