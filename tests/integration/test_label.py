"""`textclf label` on small corpora with the shared local Ray: exactly once, errors, reruns, resume."""

import json
import os

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import random_texts, read_labeled

import textclf
from textclf.cli import cli
from textclf.errors import BundleError, DataError
from textclf.inference.predictor import Predictor
from textclf.labeling.labeler import probs_labels
from textclf.labeling.pipeline import INFER_ROWS, LabelConfig, _with_actor_errors, call_rows, label
from textclf.runtime import precision

pytestmark = pytest.mark.ray
BAD = [None, "", "   \t\n", "great film " * 200_000, "good\x00\x1b[31m film"]


@pytest.fixture
def corpus(tmp_path):
    """3 files: ids given in two (one with the bad texts), none in the third."""
    texts = random_texts(900)
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    pq.write_table(
        pa.table({"id": [f"a{i}" for i in range(400)], "text": texts[:395] + BAD, "src": ["x"] * 400}),
        root / "a.parquet",
        row_group_size=100,
    )
    pq.write_table(
        pa.table({"id": [f"b{i}" for i in range(300)], "text": texts[400:700], "src": ["y"] * 300}),
        root / "sub" / "b.parquet",
    )
    pq.write_table(pa.table({"text": texts[700:900], "src": ["z"] * 200}), root / "c.parquet")
    return root


@pytest.mark.parametrize("rows, actors", [(30_000, 2), (300_000, 2), (4097, 1), (10**6, 64), (100, 2), (3, 4)])
def test_inference_calls_are_equal_shares_of_the_actors(rows, actors):
    size = call_rows(rows, actors)
    calls = -(-rows // size)
    assert 1 <= size <= INFER_ROWS
    assert calls == rows if rows < actors else calls % actors == 0  # every actor gets as many calls
    assert rows - (calls - 1) * size >= size - calls  # and the last call is (nearly) as large as the others


@pytest.mark.parametrize("fmt", ["parquet", "arrow"])
def test_every_row_exactly_once_with_errors_for_bad_text(label_bundles, corpus, tmp_path, ray_local, fmt):
    out = tmp_path / "out"
    # through the Python API, with the CLI's option names
    manifest = textclf.label(
        label_bundles[0], str(corpus), str(out), format=fmt, keep_columns=["src", "text"], probabilities=True
    )
    table = read_labeled(out)
    ids = table["id"].to_pylist()
    assert len(ids) == len(set(ids)) == 900
    assert {i for i in ids if i.startswith("a")} == {f"a{i}" for i in range(400)}
    assert sum(1 for i in ids if i.endswith(tuple(f"c.parquet:{r}" for r in range(200)))) == 200
    errors = dict(zip(ids, table["error"].to_pylist()))
    assert [errors[f"a{i}"] for i in range(395, 400)] == ["null text", "empty text", "whitespace-only text", None, None]
    assert table["label"].null_count == 3 and table.column_names[:4] == ["id", "label", "confidence", "error"]
    assert manifest["rows_in"] == 900 and manifest["rows_labeled"] == 897 and manifest["rows_error"] == 3
    assert (out / "_SUCCESS").exists() and not [n for n in os.listdir(out) if n.startswith(".tmp-")]
    assert set(table["src"].to_pylist()) == {"x", "y", "z"}
    assert dict(zip(ids, table["text"].to_pylist()))["a395"] is None  # the text column itself can be kept
    assert probs_labels(table.schema) == ["neg", "pos"]
    assert 0 < manifest["padding_efficiency"] <= 1 and manifest["tokens_per_s"] > 0


def test_in_process_labels_as_the_ray_pipeline_does(label_bundles, corpus, tmp_path, ray_local):
    options = dict(keep_columns=["src", "text"], probabilities=True, top_k=2)
    tables = {}
    for runner in ("ray", "in-process"):
        manifest = textclf.label(label_bundles[0], str(corpus), str(tmp_path / runner), runner=runner, **options)
        assert manifest["runner"] == runner and (manifest["rows_in"], manifest["rows_labeled"]) == (900, 897)
        tables[runner] = read_labeled(tmp_path / runner).sort_by("id")
    ray_rows, local_rows = tables["ray"], tables["in-process"]
    assert local_rows.schema == ray_rows.schema and local_rows.num_rows == 900
    for name in local_rows.column_names:
        if name in ("confidence", "confidences", "probs"):  # the batches differ, so sums may round apart
            for a, b in zip(local_rows[name].to_pylist(), ray_rows[name].to_pylist()):
                assert a == b if a is None or b is None else a == pytest.approx(b, abs=1e-5)
        elif name != "scores":  # a struct of the same probabilities as `probs`
            assert local_rows[name].to_pylist() == ray_rows[name].to_pylist(), name


def test_in_process_labels_the_same_with_one_encoding_process_per_core(label_bundles, corpus, tmp_path, monkeypatch):
    from textclf.labeling import pipeline

    tables = {}
    for name, from_rows in (("one", 10**9), ("per-core", 0)):
        monkeypatch.setattr(pipeline, "PARALLEL_ENCODING_ROWS", from_rows)
        textclf.label(label_bundles[0], str(corpus), str(tmp_path / name), runner="in-process", probabilities=True)
        tables[name] = read_labeled(tmp_path / name).sort_by("id")
    assert tables["one"].num_rows == 900 and tables["per-core"].column_names == tables["one"].column_names
    for name in ("id", "label", "error"):
        assert tables["per-core"][name].to_pylist() == tables["one"][name].to_pylist(), name
    assert tables["per-core"]["confidence"].to_pylist() == pytest.approx(
        tables["one"]["confidence"].to_pylist(), abs=1e-5, nan_ok=True
    )


def test_a_small_label_command_runs_without_ray(label_bundles, corpus, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "textclf.cli", "label", label_bundles[0], str(corpus), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert [json.loads(line)["event"] for line in done.stderr.splitlines()][-1] == "done", done.stderr
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["runner"] == "in-process" and manifest["rows_labeled"] == 897 and manifest["rows_per_node"] == {}


def test_chosen_labels_and_scores_read_the_same_in_pyarrow_pandas_and_duckdb(
    label_bundles, corpus, tmp_path, ray_local
):
    import duckdb

    out = tmp_path / "out"
    manifest = label(
        label_bundles[0], str(corpus / "sub"), str(out), LabelConfig(probabilities=True, top_k=2, threshold=0.1)
    )
    path = out / manifest["outputs"][0]
    table = pq.read_table(path)
    frame = pd.read_parquet(path)
    rows = duckdb.sql(
        f"SELECT id, label, labels, confidences, scores.neg, scores.pos FROM '{path}' ORDER BY id"
    ).fetchall()
    assert len(rows) == len(frame) == table.num_rows == 300
    by_id = {r["id"]: r for r in table.to_pylist()}
    for id_, best, chosen, confidences, neg, pos in rows:
        row = by_id[id_]
        assert row["scores"] == {"neg": pytest.approx(neg), "pos": pytest.approx(pos)}
        assert chosen == row["labels"] and chosen[0] == best and confidences == pytest.approx(row["confidences"])
        assert all(c >= 0.1 for c in confidences)
    first = frame.iloc[0]
    assert set(first["scores"]) == {"neg", "pos"} and list(first["labels"]) == by_id[first["id"]]["labels"]
    assert table.schema.metadata[b"textclf.model_sha256"].decode() == manifest["model_sha256"]


def test_labels_equal_predict_for_the_same_text(label_bundles, corpus, tmp_path, ray_local):
    out = tmp_path / "out"
    label(label_bundles[0], str(corpus / "sub"), str(out))
    table = read_labeled(out)
    texts = dict(
        zip(
            pq.read_table(corpus / "sub" / "b.parquet")["id"].to_pylist(),
            pq.read_table(corpus / "sub" / "b.parquet")["text"].to_pylist(),
        )
    )
    predictor = Predictor(label_bundles[0], device="cpu")
    sample = table.slice(0, 100)
    for row in sample.to_pylist():
        probs = predictor.predict_proba([texts[row["id"]]])[0]
        assert row["label"] == ["neg", "pos"][probs.argmax()] and abs(row["confidence"] - probs.max()) < 1e-4


def test_rerun_is_a_no_op_and_another_model_is_refused(label_bundles, corpus, tmp_path, ray_local):
    out = tmp_path / "out"
    label(label_bundles[0], str(corpus), str(out))
    before = {n: os.stat(out / n).st_mtime_ns for n in os.listdir(out)}
    assert label(label_bundles[0], str(corpus), str(out))["already_complete"]
    assert {n: os.stat(out / n).st_mtime_ns for n in os.listdir(out)} == before
    with pytest.raises(DataError, match="different model"):
        label(label_bundles[1], str(corpus), str(out))
    with pytest.raises(DataError, match=r"different --probabilities \(was False\)"):
        label(label_bundles[0], str(corpus), str(out), LabelConfig(probabilities=True))
    # options that do not shape the output may change between runs of the same OUTPUT
    assert label(label_bundles[0], str(corpus), str(out), LabelConfig(concurrency=2, batch_tokens=512))[
        "already_complete"
    ]
    label(label_bundles[1], str(corpus), str(out), overwrite=True)
    assert json.loads((out / "_manifest.json").read_text())["rows_in"] == 900


def test_resume_redoes_only_uncommitted_inputs(label_bundles, corpus, tmp_path, ray_local):
    out = tmp_path / "out"
    label(label_bundles[0], str(corpus), str(out))
    parts = sorted(n for n in os.listdir(out) if n.startswith("part-"))
    kept = {n: os.stat(out / n).st_mtime_ns for n in parts[1:]}
    # as after a crash: one input not committed, a half-written temporary file, no manifest
    (out / parts[0]).unlink()
    (out / "_SUCCESS").unlink()
    (out / "_manifest.json").unlink()
    (out / f".tmp-deadbeef-{parts[0]}").write_bytes(b"half a file")
    label(label_bundles[0], str(corpus), str(out))
    assert {n: os.stat(out / n).st_mtime_ns for n in parts[1:]} == kept
    ids = read_labeled(out)["id"].to_pylist()
    assert len(ids) == len(set(ids)) == 900 and not [n for n in os.listdir(out) if n.startswith(".tmp-")]


def test_cli_exit_codes(label_bundles, corpus, tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["label", label_bundles[0], str(corpus), str(tmp_path / "o"), "--text-column", "body"])
    assert result.exit_code == 2 and "no column 'body'" in result.output
    (tmp_path / "empty").mkdir()
    result = runner.invoke(cli, ["label", label_bundles[0], str(tmp_path / "empty"), str(tmp_path / "o2")])
    assert result.exit_code == 2 and "no Parquet files" in result.output
    result = runner.invoke(cli, ["label", str(tmp_path), str(corpus), str(tmp_path / "o3")])
    assert result.exit_code == 2 and "not a model bundle" in result.output


def test_bf16_on_a_cpu_without_it_is_refused_before_ray_starts(label_bundles, corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "native_bf16_cpu", lambda: False)
    result = CliRunner().invoke(
        cli, ["label", label_bundles[0], str(corpus), str(tmp_path / "o"), "--precision", "bf16"]
    )
    assert result.exit_code == 2 and "precision bf16 needs a GPU or a CPU with native bf16" in result.output
    assert not any((tmp_path / "o").glob("part-*"))


def test_an_error_raised_where_an_actor_starts_surfaces_as_itself():
    def batches():  # what Ray Data raises when every actor's constructor failed
        try:
            raise RuntimeError(
                "The actor died because of an error raised in its creation task, ray::MapWorker "
                "(pid=1)\nTraceback (most recent call last):\n  File ...\n"
                "textclf.errors.BundleError: weights of /m do not match model.json"
            )
        except RuntimeError as died:
            raise RuntimeError("SystemException") from died
        yield

    with pytest.raises(BundleError, match="^weights of /m do not match model.json$"):
        list(_with_actor_errors(batches()))
    with pytest.raises(ValueError):  # anything else is left as it is
        list(_with_actor_errors(iter_raising(ValueError("boom"))))


def iter_raising(error):
    raise error
    yield


def test_an_output_inside_the_input_folder_is_not_read_as_input(label_bundles, corpus, tmp_path, ray_local):
    import shutil

    source = tmp_path / "src"
    shutil.copytree(corpus, source)
    out = source / "labeled"
    first = label(label_bundles[0], str(source), str(out))
    assert label(label_bundles[0], str(source), str(out))["already_complete"]  # was refused: its own outputs
    assert first["rows_in"] == 900 and all("/labeled/" not in i["path"] for i in first["inputs"])


def test_the_manifest_gives_the_rate_the_progress_showed(label_bundles, corpus, tmp_path, ray_local):
    manifest = label(label_bundles[0], str(corpus), str(tmp_path / "out"))
    assert 0 < manifest["labeling_s"] <= manifest["elapsed_s"]
    assert manifest["docs_per_s"] == pytest.approx(manifest["rows_this_run"] / manifest["labeling_s"], rel=0.01)


def test_a_label_command_writes_nothing_but_its_progress_to_stderr(label_bundles, corpus, tmp_path):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "textclf.cli", "label", label_bundles[0], str(corpus), str(tmp_path / "out")]
        + ["--runner", "ray"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # not Ray's "constructor arguments in the object store" line (ray#53727), nor Ray Data's notices
    assert [json.loads(line)["event"] for line in done.stderr.splitlines()][-1] == "done", done.stderr
