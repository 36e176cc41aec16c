"""Labeling under injected faults: kills, crashing and hanging actors, bad files, bad text, a full disk.

Faults are switched on through TEXTCLF_FAULTS (textclf/runtime/faults.py). Runs that get killed run as a
`textclf label` subprocess in its own session, so the kill takes its local Ray down with it.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import kill_session, random_texts, read_labeled, session_members

from textclf.cli import cli
from textclf.errors import PartialFailure, TextclfError
from textclf.labeling.pipeline import label

pytestmark = pytest.mark.ray


def _corpus(root, files=4, rows=300):
    root.mkdir(parents=True)
    texts = random_texts(files * rows)
    for f in range(files):
        ids = [f"f{f}-{r}" for r in range(rows)]
        pq.write_table(pa.table({"id": ids, "text": texts[f * rows : (f + 1) * rows]}), root / f"{f}.parquet")
    return root


def _label_process(bundle, corpus, out, faults="", *extra):
    env = {**os.environ, "TEXTCLF_FAULTS": faults}
    return subprocess.Popen(
        [sys.executable, "-m", "textclf.cli", "label", bundle, str(corpus), str(out), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _visible(out):
    return sorted(n for n in os.listdir(out) if not n.startswith("."))


def _wait_for(proc, line, timeout=180):
    """Block until the run prints `line` (the pause fault says "paused")."""
    found = threading.Event()

    def watch():
        for text in proc.stdout:
            if line in text:
                found.set()

    threading.Thread(target=watch, daemon=True).start()
    if not found.wait(timeout):
        raise AssertionError(f"no {line!r} from the run (exit {proc.poll()})")


@pytest.mark.slow
def test_kill_9_mid_run_then_rerun_labels_every_row_once(label_bundles, tmp_path, ray_local):
    corpus, out = _corpus(tmp_path / "in"), tmp_path / "out"
    proc = _label_process(label_bundles[0], corpus, out, "pause_after_commits=2", "--runner", "ray")
    try:
        _wait_for(proc, "paused")  # two inputs committed, the others in flight
        # a second run on the same OUTPUT meanwhile is refused, not interleaved
        second = CliRunner().invoke(cli, ["label", label_bundles[0], str(corpus), str(out)])
        assert second.exit_code == 2 and "in use by another" in second.output
    finally:
        kill_session(proc)
    committed = [n for n in _visible(out) if n.startswith("part-")]
    assert len(committed) == 2 and "_SUCCESS" not in _visible(out)
    mtimes = {n: os.stat(out / n).st_mtime_ns for n in committed}
    assert ds.dataset(out, format="parquet").count_rows() == 600  # readers see whole files only

    manifest = label(label_bundles[0], str(corpus), str(out))
    ids = read_labeled(out)["id"].to_pylist()
    assert len(ids) == len(set(ids)) == 1200
    assert {n: os.stat(out / n).st_mtime_ns for n in committed} == mtimes  # not redone
    assert manifest["rows_this_run"] == 600 and (out / "_SUCCESS").exists()
    assert not [n for n in os.listdir(out) if n.startswith(".tmp-")]


@pytest.mark.slow
def test_kill_9_of_an_in_process_run_takes_its_encoding_processes_down(label_bundles, tmp_path):
    corpus, out = _corpus(tmp_path / "in"), tmp_path / "out"
    proc = _label_process(label_bundles[0], corpus, out, "pause_after_commits=2", "--runner", "in-process")
    try:
        _wait_for(proc, "paused")
        encoders = [p for p in session_members(proc.pid) if p != proc.pid]
        assert encoders  # the encoding process, paused with the run
        os.kill(proc.pid, signal.SIGKILL)  # the command alone, as an OOM kill would: nothing can shut down
        proc.wait(timeout=60)
        deadline = time.monotonic() + 15
        while [p for p in encoders if p in session_members(proc.pid)] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [p for p in encoders if p in session_members(proc.pid)], "encoding processes outlived the run"
    finally:
        kill_session(proc)
    manifest = label(label_bundles[0], str(corpus), str(out))
    ids = read_labeled(out)["id"].to_pylist()
    assert len(ids) == len(set(ids)) == 1200 and manifest["rows_this_run"] == 600


@pytest.mark.slow
def test_crash_while_writing_leaves_no_partial_file(label_bundles, tmp_path, ray_local):
    corpus, out = tmp_path / "in", tmp_path / "out"
    corpus.mkdir()
    pq.write_table(pa.table({"id": [str(i) for i in range(3000)], "text": random_texts(3000)}), corpus / "big.parquet")
    proc = _label_process(label_bundles[0], corpus, out, "crash_mid_write=1")
    try:
        assert proc.wait(timeout=300) == -signal.SIGKILL
    finally:
        kill_session(proc)
    assert _visible(out) == ["_run.json"]  # the half-written file is a hidden temporary
    assert [n for n in os.listdir(out) if n.startswith(".tmp-")]
    label(label_bundles[0], str(corpus), str(out))
    ids = read_labeled(out)["id"].to_pylist()
    assert len(ids) == len(set(ids)) == 3000 and not [n for n in os.listdir(out) if n.startswith(".tmp-")]


def test_a_crashing_actor_loses_and_duplicates_nothing(label_bundles, tmp_path, ray_local, monkeypatch):
    corpus, out = _corpus(tmp_path / "in"), tmp_path / "out"
    monkeypatch.setenv("TEXTCLF_FAULTS", f"actor_crash={tmp_path / 'crashes'}:2")
    manifest = label(label_bundles[0], str(corpus), str(out))
    assert len(os.listdir(tmp_path / "crashes")) == 2  # the actor really died twice
    ids = read_labeled(out)["id"].to_pylist()
    assert len(ids) == len(set(ids)) == 1200 and manifest["rows_labeled"] == 1200


@pytest.mark.slow
def test_a_hung_actor_fails_the_run_after_the_stall_timeout(label_bundles, tmp_path):
    corpus, out = _corpus(tmp_path / "in", files=1), tmp_path / "out"
    started = time.monotonic()
    proc = _label_process(
        label_bundles[0], corpus, out, f"actor_hang={tmp_path / 'hangs'}:1", "--stall-timeout", "10", "--runner", "ray"
    )
    try:
        _, stderr = proc.communicate(timeout=240)
    finally:
        kill_session(proc)
    assert proc.returncode == 1 and "labeling stalled: no rows labeled for 10 s" in stderr
    assert "Traceback" not in stderr and time.monotonic() - started < 120
    assert _visible(out) == ["_run.json"]


def test_unreadable_inputs_are_named_and_the_others_complete(label_bundles, tmp_path, ray_local):
    corpus, out = _corpus(tmp_path / "in", files=2), tmp_path / "out"
    whole = (corpus / "0.parquet").read_bytes()
    (corpus / "truncated.parquet").write_bytes(whole[: len(whole) // 2])
    (corpus / "zero.parquet").write_bytes(b"")
    (corpus / "csv.parquet").write_text("id,text\n1,good film\n")
    pq.write_table(
        pa.table({"id": pa.array([], pa.string()), "text": pa.array([], pa.string())}), corpus / "no_rows.parquet"
    )
    with pytest.raises(PartialFailure, match="3 input file"):
        label(label_bundles[0], str(corpus), str(out))
    manifest = json.loads((out / "_manifest.json").read_text())
    failed = {f["path"].rsplit("/", 1)[-1]: f["error"] for f in manifest["failed_files"]}
    assert sorted(failed) == ["csv.parquet", "truncated.parquet", "zero.parquet"]
    assert all(e.startswith("unreadable Parquet") for e in failed.values())
    assert manifest["rows_labeled"] + manifest["rows_error"] == 600 and not (out / "_SUCCESS").exists()
    assert "part-00003-no_rows.parquet" in manifest["outputs"]  # an empty input gets an empty output
    assert pq.read_table(out / "part-00003-no_rows.parquet").num_rows == 0


def test_schema_drift_is_handled_per_file(label_bundles, tmp_path, ray_local):
    corpus, out = tmp_path / "in", tmp_path / "out"
    corpus.mkdir()
    pq.write_table(pa.table({"id": ["a0", "a1"], "text": ["good film", "bad plot"]}), corpus / "a.parquet")
    pq.write_table(pa.table({"id": ["b0", "b1"], "text": [3, 4]}), corpus / "b_int_text.parquet")
    pq.write_table(pa.table({"id": ["c0"], "body": ["good"]}), corpus / "c_no_text.parquet")
    pq.write_table(pa.table({"id": [7, None], "text": ["dull", "great"]}), corpus / "d_int_ids.parquet")
    with pytest.raises(PartialFailure):
        label(label_bundles[0], str(corpus), str(out))
    table = read_labeled(out)
    rows = {r["id"]: r for r in table.to_pylist()}
    assert rows["b0"]["error"] == "text is of type int64, not string" and rows["b0"]["label"] is None
    assert rows["7"]["label"] is not None  # integer ids become strings
    assert any(i.endswith("d_int_ids.parquet:1") for i in rows)  # a null id becomes the derived one
    failed = json.loads((out / "_manifest.json").read_text())["failed_files"]
    assert [(f["path"].rsplit("/", 1)[-1], f["error"]) for f in failed] == [("c_no_text.parquet", "no column 'text'")]


def test_bad_text_gets_a_label_or_an_error(label_bundles, tmp_path, ray_local):
    corpus, out = tmp_path / "in", tmp_path / "out"
    corpus.mkdir()
    texts = [
        None,
        b"",
        b" \t\n",
        b"\xff\xfe good",
        ("good " * 1_000_000).encode(),
        b"bad\x00\x1b[31m\x07 film",
        "great film 🎬🍿".encode(),
        "\u202bgood film\u202c \u200f".encode(),
        b"good film",
    ]
    pq.write_table(
        pa.table({"id": [str(i) for i in range(len(texts))], "text": pa.array(texts, pa.binary())}),
        corpus / "bad.parquet",
    )
    label(label_bundles[0], str(corpus), str(out))
    rows = {r["id"]: r for r in read_labeled(out).to_pylist()}
    errors = [rows[str(i)]["error"] for i in range(len(texts))]
    assert errors[:4] == ["null text", "empty text", "whitespace-only text", "text is not valid UTF-8 (byte 0)"]
    assert errors[4:] == [None] * 5 and all(rows[str(i)]["label"] in ("neg", "pos") for i in range(4, 9))


def test_output_that_cannot_be_written_is_a_clear_error(label_bundles, tmp_path, ray_local, monkeypatch):
    corpus = _corpus(tmp_path / "in", files=2)
    (tmp_path / "a_file").write_text("")
    result = CliRunner().invoke(cli, ["label", label_bundles[0], str(corpus), str(tmp_path / "a_file" / "out")])
    assert result.exit_code == 2 and "cannot write to OUTPUT" in result.output and "Traceback" not in result.output

    out = tmp_path / "out"
    monkeypatch.setenv("TEXTCLF_FAULTS", "disk_full")
    with pytest.raises(TextclfError, match="No space left on device"):
        label(label_bundles[0], str(corpus), str(out))
    assert _visible(out) == ["_run.json"] and not [n for n in os.listdir(out) if n.startswith(".tmp-")]
    monkeypatch.delenv("TEXTCLF_FAULTS")
    manifest = label(label_bundles[0], str(corpus), str(out))  # the rerun recovers
    assert manifest["rows_labeled"] == 600 and (out / "_SUCCESS").exists()


@pytest.mark.slow
def test_bundle_input_and_output_on_s3_survive_kill_9_and_rerun(label_bundles, tmp_path, s3_bucket, monkeypatch):
    """Bundle, INPUT and OUTPUT on an S3 server (moto's, local): the same contract as on disk."""
    import boto3

    s3, bucket = boto3.client("s3"), s3_bucket.removeprefix("s3://")
    for f in Path(label_bundles[0]).iterdir():
        s3.upload_file(str(f), bucket, f"models/m/{f.name}")
    for f in _corpus(tmp_path / "in").iterdir():
        s3.upload_file(str(f), bucket, f"in/{f.name}")
    monkeypatch.setenv("TEXTCLF_CACHE", str(tmp_path / "cache"))  # the bundle is copied from S3, not found
    model, inputs, out = f"{s3_bucket}/models/m", f"{s3_bucket}/in", f"{s3_bucket}/labeled"
    filesystem, _ = pafs.FileSystem.from_uri(out)

    def objects() -> list[str]:
        listing = s3.list_objects_v2(Bucket=bucket, Prefix="labeled/").get("Contents", [])
        return sorted(o["Key"].removeprefix("labeled/") for o in listing if o["Key"] != "labeled/")  # no marker

    proc = _label_process(model, inputs, out, "pause_after_commits=2", "--runner", "ray")
    try:
        _wait_for(proc, "paused")  # two inputs committed, the others in flight
    finally:
        kill_session(proc)
    committed = [k for k in objects() if k.startswith("part-")]
    assert len(committed) == 2 and "_SUCCESS" not in objects()
    assert all(pq.read_table(f"{bucket}/labeled/{k}", filesystem=filesystem).num_rows == 300 for k in committed)

    rerun = _label_process(model, inputs, out)  # small: in-process, resuming what Ray's run left
    assert rerun.wait(timeout=300) == 0, rerun.stderr.read()
    assert [k for k in objects() if not k.startswith("part-")] == ["_SUCCESS", "_manifest.json", "_run.json"]
    parts = [pq.read_table(f"{bucket}/labeled/{k}", filesystem=filesystem) for k in objects() if k.startswith("part-")]
    ids = [i for part in parts for i in part["id"].to_pylist()]
    assert len(ids) == len(set(ids)) == 1200  # every row once
    with filesystem.open_input_stream(f"{bucket}/labeled/_manifest.json") as f:
        manifest = json.loads(f.read())
    assert manifest["rows_this_run"] == 600 and manifest["rows_labeled"] == 1200 and manifest["runner"] == "in-process"
