"""Training faults, injected on purpose (issue 6, items 10-12): a DDP worker killed mid-epoch, the
training command killed with SIGKILL then resumed, corrupted bundles and checkpoints."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.fs as pafs
import pytest
import torch
from click.testing import CliRunner
from conftest import kill_session

from textclf.bundle import sha256_file
from textclf.cli import cli
from textclf.evaluation.evaluate import evaluate
from textclf.training.config import TrainConfig
from textclf.training.driver import train

# lr 1e-2 converges in 3 epochs, far from the decision boundary: at the default lr two uninterrupted
# runs already differ by up to 2 of 201 validation rows (Ray Data's block order varies run to run)
# A small bigram table: the fault paths are the same, the checkpoints 1/1000 of the default's size.
RUN = dict(
    arch="bow",
    workers=2,
    epochs=3,
    batch_tokens=512,
    seed=0,
    patience=10,
    max_failures=1,
    lr=1e-2,
    model={"num_buckets": 1000},
)
SNAPSHOT = "checkpoint_manager_snapshot.json"  # Ray Train's JSON record of the reported checkpoints


def _train(tiny_corpus, out: Path) -> tuple[dict, float]:
    started = time.monotonic()
    summary = train(TrainConfig(**RUN), str(tiny_corpus / "train"), str(tiny_corpus / "validation"), out)
    return summary, time.monotonic() - started


def _latest_checkpoint(run_dir: Path) -> Path | None:
    latest = _latest_checkpoint_name(_read_json(run_dir / SNAPSHOT))
    return run_dir / latest if latest else None


def _latest_checkpoint_name(snapshot: dict | None) -> str | None:
    latest = (snapshot or {}).get("latest_checkpoint_result")
    return latest["checkpoint_dir_name"] if latest else None


def _read_json(path: Path | str) -> dict | None:
    """A JSON file on disk or at an `s3://` URI; None while missing or mid-write."""
    try:
        if isinstance(path, Path):
            return json.loads(path.read_text())
        filesystem, key = pafs.FileSystem.from_uri(path)  # the endpoint from AWS_ENDPOINT_URL, as textclf's
        with filesystem.open_input_stream(key) as f:
            return json.loads(f.read())
    except (OSError, ValueError):
        return None


@pytest.fixture(scope="module")
def uninterrupted(tiny_corpus, ray_local, tmp_path_factory):
    """The reference run, and the bundle and checkpoints that the corruption tests spoil copies of."""
    out = tmp_path_factory.mktemp("uninterrupted") / "bow"
    summary, seconds = _train(tiny_corpus, out)
    return out, summary, seconds


# -- 10. a DDP worker killed mid-epoch -----------------------------------------------------------


@pytest.mark.ray
@pytest.mark.slow
def test_a_worker_killed_mid_epoch_resumes_and_matches_an_uninterrupted_run(
    uninterrupted, tiny_corpus, tmp_path, monkeypatch
):
    reference, reference_summary, reference_s = uninterrupted
    fired = tmp_path / "fired"
    # rank 1 exits (os._exit) at step 3 of the last epoch, once: the restarted worker finds the marker.
    # Ray registers a checkpoint when every rank's report is polled (every 2 s); a rank that reached
    # epoch 3 had epoch 1's report taken, so the restart resumes after epoch 1 or 2.
    monkeypatch.setenv("TEXTCLF_FAULTS", f"train_worker_kill_at=3:3:1;train_worker_kill={fired}:1")
    out = tmp_path / "bow"
    summary, seconds = _train(tiny_corpus, out)

    assert sorted(p.name for p in fired.iterdir()) == ["train_worker_kill-0"]  # the worker died once
    assert summary["resumed_after_epochs"] in ([1], [2])  # restarted from a checkpoint, not from scratch
    meta = json.loads((out / "model.json").read_text())
    assert [h["epoch"] for h in meta["history"]] == [1, 2, 3]
    assert meta["resumed_after_epochs"] == summary["resumed_after_epochs"]
    assert all(h["train_rows"] == 1200 for h in meta["history"])  # the redone epoch saw every row once

    test_accuracy = evaluate(str(out), str(tiny_corpus / "test"))["accuracy"]
    reference_test_accuracy = evaluate(str(reference), str(tiny_corpus / "test"))["accuracy"]
    assert abs(summary["val_accuracy"] - reference_summary["val_accuracy"]) <= 0.01
    assert abs(test_accuracy - reference_test_accuracy) <= 0.01
    # the restart continued from trained weights: training from scratch after the kill ends far worse
    loss = meta["history"][-1]["val_loss"]
    reference_loss = json.loads((reference / "model.json").read_text())["history"][-1]["val_loss"]
    assert loss < 2 * reference_loss
    print(
        f"\n[worker kill] resumed after epoch {summary['resumed_after_epochs'][0]} of 3; "
        f"validation accuracy {summary['val_accuracy']:.4f} vs {reference_summary['val_accuracy']:.4f} "
        f"uninterrupted, test {test_accuracy:.4f} vs {reference_test_accuracy:.4f}; "
        f"val loss {loss:.4f} vs {reference_loss:.4f}; {seconds:.1f} s vs {reference_s:.1f} s"
    )


# -- 11. the training command killed with SIGKILL, then --resume -----------------------------------


def _textclf(*args, log: Path) -> subprocess.Popen:
    """`textclf ARGS` in a new session, stdout and stderr to `log`."""
    # a fresh environment: the RAY_* variables of the test session's own Ray must not leak in
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "TEXTCLF_FAULTS"))}
    with open(log, "wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "textclf.cli", *map(str, args)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _epoch_events(log: Path) -> list[dict]:
    events = []
    for line in log.read_text(errors="replace").splitlines():
        start = line.find('{"event": ')
        if start >= 0:
            try:
                events.append(json.loads(line[start:]))
            except ValueError:  # another process's output cut into the line
                pass
    return events


@pytest.mark.slow
def test_training_killed_with_sigkill_resumes_from_its_last_checkpoint(tiny_corpus, tmp_path, s3_bucket):
    """Checkpoints on S3 (`--storage`, moto's local server): the kill leaves them there, --resume reads them."""
    out = tmp_path / "bow"
    run_dir = f"{s3_bucket}/checkpoints/train"
    small_table = tmp_path / "small.yaml"  # as RUN: same paths, small checkpoints
    small_table.write_text("model:\n  num_buckets: 1000\n")
    common = [
        "train",
        "--train",
        tiny_corpus / "train",
        "--validation",
        tiny_corpus / "validation",
        "--out",
        out,
        "--arch",
        "bow",
        "--workers",
        "1",
        "--batch-tokens",
        "512",
        "--patience",
        "0",
        "--config",
        small_table,
        "--storage",
        f"{s3_bucket}/checkpoints",
    ]
    # far more epochs than it will live for: killed as soon as one checkpoint is stored
    first = _textclf(*common, "--epochs", "200", log=tmp_path / "first.log")
    try:
        deadline = time.monotonic() + 240
        while _latest_checkpoint_name(_read_json(f"{run_dir}/{SNAPSHOT}")) is None:
            assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint after 240 s"
            time.sleep(0.2)
    finally:
        gone_s = kill_session(first)
    assert first.returncode == -signal.SIGKILL and not out.exists()
    assert not (tmp_path / "bow.checkpoints").exists()  # nothing went to the local default

    # read after the kill: what the resumed run must start from
    latest = _latest_checkpoint_name(_read_json(f"{run_dir}/{SNAPSHOT}"))
    state = _read_json(f"{run_dir}/{latest}/state.json")
    done = state["epoch"]
    assert done >= 1 and [h["epoch"] for h in state["history"]] == list(range(1, done + 1))

    second = _textclf(*common, "--epochs", done + 1, "--resume", log=tmp_path / "second.log")
    try:
        second.wait(timeout=300)
    finally:
        kill_session(second)
    log = (tmp_path / "second.log").read_text(errors="replace")
    assert second.returncode == 0, log[-3000:]
    assert "best epoch" in log and "Traceback" not in log

    events = _epoch_events(tmp_path / "second.log")
    assert {"event": "resume", "after_epoch": done} in events
    assert [e["epoch"] for e in events if e["event"] == "epoch"] == [done + 1]  # no epoch redone
    meta = json.loads((out / "model.json").read_text())
    assert meta["resumed_after_epochs"] == [done]
    assert [h["epoch"] for h in meta["history"]] == list(range(1, done + 2))
    # the epochs before the kill are the killed run's own records (timings included), not re-runs
    kept = [{k: v for k, v in h.items() if k != "val_confusion"} for h in state["history"]]
    assert meta["history"][:done] == kept
    assert evaluate(str(out), str(tiny_corpus / "test"))["accuracy"] > 0.9  # a valid, loadable bundle
    print(
        f"\n[kill -9] killed after epoch {done}'s checkpoint; processes gone in {gone_s:.1f} s; "
        f"resume ran epoch {done + 1} only"
    )


# -- 12. corrupted bundles and checkpoints ------------------------------------------------------


class _Payload:
    """Unpickling this creates `marker`: proof that something was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _payload(marker: Path) -> bytes:
    data = pickle.dumps(_Payload(marker))
    pickle.loads(data).close()  # the payload is live: unpickled, it leaves the marker
    assert marker.exists()
    marker.unlink()
    return data


def _torch_payload(path: Path, marker: Path) -> None:
    torch.save({"weight": _Payload(marker)}, path)
    torch.load(path, weights_only=False)["weight"].close()
    assert marker.exists()
    marker.unlink()


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def _spoil(folder: Path, how: str, weights: str, marker: Path) -> None:
    if how == "truncated":
        (folder / weights).write_bytes((folder / weights).read_bytes()[:200])
    elif how == "sha256 mismatch":
        _flip_last_byte(folder / weights)
    elif how == "pickle as safetensors":
        (folder / weights).write_bytes(_payload(marker))
    elif how == "pickle dropped in":
        (folder / "optimizer.pkl").write_bytes(_payload(marker))
        _torch_payload(folder / "model.pt", marker)


def _one_line_error(result, *fragments) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


CASES = {
    "truncated": "does not match the sha256",
    "sha256 mismatch": "does not match the sha256",
    "pickle as safetensors": "is not a readable safetensors file",
    "pickle dropped in": "holds pickle file(s) model.pt, optimizer.pkl",
}


@pytest.mark.ray
@pytest.mark.parametrize("how", list(CASES))
def test_a_corrupt_bundle_is_refused_by_every_command(uninterrupted, tiny_corpus, tmp_path, how):
    bundle, marker = tmp_path / "bundle", tmp_path / "UNPICKLED"
    shutil.copytree(uninterrupted[0], bundle)
    _spoil(bundle, how, "model.safetensors", marker)
    if how == "pickle as safetensors":  # a consistent fake: the recorded hash is the payload's own
        meta = json.loads((bundle / "model.json").read_text())
        meta["weights_sha256"] = sha256_file(bundle / "model.safetensors")
        (bundle / "model.json").write_text(json.dumps(meta))
    run = CliRunner().invoke
    started = time.monotonic()
    _one_line_error(run(cli, ["evaluate", str(bundle), str(tiny_corpus / "test")]), CASES[how])
    _one_line_error(run(cli, ["predict", str(bundle), "a great film"]), CASES[how])
    _one_line_error(run(cli, ["label", str(bundle), str(tiny_corpus / "test"), str(tmp_path / "labeled")]), CASES[how])
    assert time.monotonic() - started < 30
    assert not (tmp_path / "labeled").exists()  # refused before anything was written
    assert not marker.exists()


CHECKPOINT_CASES = {
    "truncated": ("model.safetensors", "does not match the sha256"),
    "sha256 mismatch": ("best.safetensors", "does not match the sha256"),
    "pickle as safetensors": ("optimizer.safetensors", "is not a readable safetensors file"),
    "pickle dropped in": (None, "holds pickle file(s) model.pt, optimizer.pkl"),
}


@pytest.mark.ray
@pytest.mark.parametrize("how", list(CHECKPOINT_CASES))
def test_resume_refuses_a_corrupt_checkpoint_before_starting(uninterrupted, tiny_corpus, tmp_path, how):
    out, marker = tmp_path / "bow", tmp_path / "UNPICKLED"
    shutil.copytree(uninterrupted[0].with_name("bow.checkpoints"), tmp_path / "bow.checkpoints")
    checkpoint = _latest_checkpoint(tmp_path / "bow.checkpoints" / "train")
    weights, fragment = CHECKPOINT_CASES[how]
    _spoil(checkpoint, how, weights, marker)
    if how == "pickle as safetensors":  # a consistent fake: the recorded hash is the payload's own
        state = json.loads((checkpoint / "state.json").read_text())
        state["sha256"][weights] = sha256_file(checkpoint / weights)
        (checkpoint / "state.json").write_text(json.dumps(state))
    before = sorted(p.name for p in checkpoint.parent.iterdir())
    started = time.monotonic()
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--train",
            str(tiny_corpus / "train"),
            "--out",
            str(out),
            "--arch",
            "bow",
            "--epochs",
            "4",
            "--resume",
        ],
    )
    assert checkpoint.name in _one_line_error(result, "--resume:", fragment)
    assert time.monotonic() - started < 30  # refused up front, not after failed worker retries
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == before  # no training started
    assert not out.exists() and not marker.exists()
